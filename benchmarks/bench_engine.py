"""Throughput of the prediction harness vs a plain eval loop vs raw forward passes.

All three measured in one run, on the same model and device:

* raw: forward passes over a pre-made, pre-normalised device tensor in slices of
  ``--batch`` (no data work at all): the ceiling;
* plain: what common evaluation scripts do: float host tensors, ``model(x)`` in a
  for loop over DataLoader-like slices of ``--batch``, softmax, results to the host;
* harness: :class:`prunecheck.engine.predictor.PredictionEngine` on a uint8 dataset
  (normalised on the device, prefetching, log-probabilities, cache write), each
  repetition with an empty cache; the model's weight fingerprint and the dataset
  fingerprint are computed once before timing, as in a session.

Each figure is the best of ``--repeats`` interleaved rounds. Usage::

    python benchmarks/bench_engine.py            # DemoNet 32x32, resnet18 32x32 and 224x224
    python benchmarks/bench_engine.py --device cuda --quick
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prunecheck.engine.cache import ArrayCache  # noqa: E402
from prunecheck.data.base import TensorDataset  # noqa: E402
from prunecheck.engine.predictor import PredictionEngine, resolve_device  # noqa: E402
from prunecheck.nn.models import model_from_module  # noqa: E402

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _best(fn, repeats: int, device: torch.device) -> float:
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return min(times)


def make_model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if name == "demonet":
        from prunecheck.demo.net import DemoNet

        return DemoNet(num_classes=10)
    import torchvision

    return torchvision.models.resnet18(num_classes=10)


def bench_model(name: str, size: int, n: int, batch: int, device: torch.device, repeats: int, **engine_kw) -> dict:
    """images/s of raw, plain and harness for one (model, image size)."""
    module = make_model(name).eval()
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
    labels = torch.arange(n) % 10
    dataset = TensorDataset(f"bench{size}", images, labels, 10, MEAN, STD)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    host = (images.float() / 255 - mean) / std  # what a plain script's dataset yields
    on_device = host.to(device)
    module.to(device)

    def raw():
        with torch.inference_mode():
            for start in range(0, n, batch):
                module(on_device[start : start + batch])

    def plain():
        out = []
        with torch.no_grad():
            for start in range(0, n, batch):
                x = host[start : start + batch].to(device)
                out.append(torch.softmax(module(x), dim=1).cpu())
        return torch.cat(out)

    loaded = model_from_module(name, module)  # weight fingerprint: once per model and session
    dataset.fingerprint()  # likewise once per dataset

    def harness():
        with tempfile.TemporaryDirectory() as tmp:
            engine = PredictionEngine(ArrayCache(Path(tmp)), device=str(device), batch_size=batch, **engine_kw)
            engine.predict(loaded, dataset)
        module.to(device)  # the engine hands modules back on the CPU

    raw()  # warm-up (allocator, cuDNN autotune, oneDNN primitives)
    plain()
    harness()
    # Interleaved rounds: a load spike on a shared machine hits all three alike.
    best = {"raw": float("inf"), "plain": float("inf"), "harness": float("inf")}
    for _ in range(repeats):
        for label, fn in (("raw", raw), ("plain", plain), ("harness", harness)):
            best[label] = min(best[label], _best(fn, 1, device))
    results = {label: n / seconds for label, seconds in best.items()}
    module.to("cpu")
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="fewer images")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"))
    parser.add_argument("--channels-last", action="store_true")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    gpu = device.type == "cuda"
    scale = 0.5 if args.quick else 1.0
    cases = [
        ("demonet", 32, int((20000 if gpu else 3000) * scale)),
        ("resnet18", 32, int((20000 if gpu else 1000) * scale)),
        ("resnet18", 224, int((2000 if gpu else 100) * scale)),
    ]
    print(f"# engine throughput on {device} (torch {torch.__version__}, {torch.get_num_threads()} threads), "
          f"batch {args.batch}, best of {args.repeats}, precision {args.precision}"
          + (", channels_last" if args.channels_last else ""))
    print(f"{'model':10s} {'size':>5s} {'images':>7s} {'raw img/s':>10s} {'plain img/s':>12s} "
          f"{'harness img/s':>14s} {'plain/raw':>10s} {'harness/raw':>12s} {'harness/plain':>14s}")
    for name, size, n in cases:
        r = bench_model(name, size, n, args.batch, device, args.repeats,
                        precision=args.precision, channels_last=args.channels_last)
        print(f"{name:10s} {size:5d} {n:7d} {r['raw']:10.0f} {r['plain']:12.0f} {r['harness']:14.0f} "
              f"{r['plain'] / r['raw']:10.2f} {r['harness'] / r['raw']:12.2f} {r['harness'] / r['plain']:14.2f}",
              flush=True)


if __name__ == "__main__":
    main()
