"""Is the evaluation device the user asked for there? Checked once, before any test runs.

``auto`` and ``cpu`` always work and need no torch import; ``cuda``, ``cuda:N`` and
``mps`` are checked against what this machine and this torch build offer, so a
missing GPU is one usage error at startup instead of a driver traceback in every test.
"""

from __future__ import annotations

__all__ = ["available_devices", "device_problem"]


def available_devices() -> list[str]:
    """The devices torch can use here, e.g. ``["cpu", "cuda:0", "cuda:1"]``."""
    import torch

    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    return devices


def device_problem(device: str) -> str | None:
    """``None`` when ``device`` can be used, else what is missing and what is available.

    Args:
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (already syntax-checked).
    """
    if device in ("auto", "cpu"):
        return None
    import torch

    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            why = (
                "this torch build has no CUDA support" if torch.version.cuda is None
                else "no CUDA device is visible (no NVIDIA driver, or CUDA_VISIBLE_DEVICES hides them)"
            )
            return f"CUDA is not available: {why}; available: {', '.join(available_devices())}"
        count = torch.cuda.device_count()
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        if index >= count:
            return (
                f"there is no CUDA device {index}: this machine has {count} "
                f"(cuda:0 to cuda:{count - 1}); available: {', '.join(available_devices())}"
            )
        return None
    if device == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            return f"Apple MPS is not available here; available: {', '.join(available_devices())}"
        return None
    return f"unknown device; expected auto, cpu, cuda, cuda:N or mps; available: {', '.join(available_devices())}"
