"""Counter-based random numbers for the batched torch corruptions, and the uint8 conversion.

Each value is a 32-bit hash of (stream key, image index, counter), computed with
vectorised int32 torch operations, so an image's draws depend only on its dataset
index and the stream (corruption, severity, seed): not on its batch, the chunking
or the device.
"""

from __future__ import annotations

import functools
import hashlib

import torch

#: Levels of the discretised uniform draws: 16 bits per value.
UNIFORM_BITS = 16


def _i32(value: int) -> int:
    """An unsigned 32-bit constant as the signed int32 with the same bits."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


_M1, _M2, _GOLDEN = _i32(0x7FEB352D), _i32(0x846CA68B), _i32(0x9E3779B9)


def _mix32_(h: torch.Tensor) -> torch.Tensor:
    """In place: a 32-bit integer finaliser (xor-shift / multiply) on int32 tensors.

    Multiplication wraps modulo 2^32; shifts are made logical with a mask.
    """
    h ^= (h >> 16) & 0xFFFF
    h *= _M1
    h ^= (h >> 15) & 0x1FFFF
    h *= _M2
    h ^= (h >> 16) & 0xFFFF
    return h


def _stream_key(name: str, severity: int, seed: int) -> int:
    text = f"prunecheck-torch-corruption|{name}|{int(severity)}|{int(seed)}".encode()
    return _i32(int.from_bytes(hashlib.sha256(text).digest()[:4], "little"))


def uniform_bits(
    indices: torch.Tensor, per_image: int, name: str, severity: int, seed: int, bits: int = UNIFORM_BITS
) -> torch.Tensor:
    """Independent uniform integers in [0, 2**bits) per (image index, element).

    Each 32-bit hash of (image key, counter) gives two values: its high and low
    16 bits (``bits`` of each).

    Args:
        indices: int [N] dataset row indices (on the target device).
        per_image: values per image (e.g. 3 * H * W).
        name, severity, seed: the stream key.
        bits: 1..16.

    Returns:
        int32 [N, per_image] (index_select takes int32 indices; no int64 copy of every draw);
        row i depends only on (indices[i], name, severity, seed).
    """
    if not 1 <= bits <= 16:
        raise ValueError(f"uniform_bits: expected 1 <= bits <= 16, found {bits}")
    key = _stream_key(name, severity, seed)
    device = indices.device
    idx = indices.to(torch.int64)
    low = idx & 0xFFFFFFFF
    low = torch.where(low >= 1 << 31, low - (1 << 32), low).to(torch.int32)
    high = (idx >> 32).to(torch.int32)
    base = _mix32_(low ^ key)
    base ^= _mix32_(high + _GOLDEN)
    base = _mix32_(base)
    pairs = (per_image + 1) // 2
    counter = torch.arange(pairs, dtype=torch.int32, device=device) * _GOLDEN
    h = base.view(-1, 1) + counter.view(1, -1)
    _mix32_(h)
    shift = 16 - bits
    out = torch.empty((h.shape[0], 2 * pairs), dtype=torch.int32, device=device)
    torch.bitwise_and(h >> (16 + shift), (1 << bits) - 1, out=out[:, :pairs])
    torch.bitwise_right_shift(h & 0xFFFF, shift, out=out[:, pairs:])
    return out[:, :per_image]



def uniform01(indices: torch.Tensor, per_image: int, name: str, severity: int, seed: int) -> torch.Tensor:
    """float64 [N, per_image] uniform on (0, 1): ``(k + 0.5) / 2^16`` of 16-bit draws."""
    bits = uniform_bits(indices, per_image, name, severity, seed)
    return (bits.to(torch.float64) + 0.5) / (1 << UNIFORM_BITS)


@functools.lru_cache(maxsize=8)
def standard_normal_table(device: str) -> torch.Tensor:
    """float64 [2^16]: ndtri((k + 0.5) / 2^16), the values ``standard_normal`` can take."""
    levels = 1 << UNIFORM_BITS
    return torch.special.ndtri((torch.arange(levels, dtype=torch.float64) + 0.5) / levels).to(device)


def standard_normal(indices: torch.Tensor, per_image: int, name: str, severity: int, seed: int) -> torch.Tensor:
    """float64 [N, per_image]: ``ndtri(uniform01(...))`` (inverse-CDF normal, tails cut at 4.2
    sigma), looked up in a table of its 2^16 possible values instead of computed per value."""
    bits = uniform_bits(indices, per_image, name, severity, seed)
    return standard_normal_table(str(indices.device)).index_select(0, bits.reshape(-1)).view(bits.shape)


def to_uint8(x01: torch.Tensor) -> torch.Tensor:
    """[0, 1] float -> uint8 by truncation, as the reference's ``np.uint8(clip(x) * 255)``."""
    return x01.clamp_(0.0, 1.0).mul_(255.0).to(torch.uint8)


