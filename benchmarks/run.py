"""Measured speed of cryolearn: the missing-wedge operator, a training step of each method, SGLD, peak memory.

Usage::

    OMP_NUM_THREADS=2 python benchmarks/run.py [--sizes 32 48 64 96] [--device cpu|cuda] [--out table.md]

For each cubic box size, on the CPU and (unless ``--device`` says otherwise)
on CUDA when present, prints markdown tables of

- the missing-wedge operator ``M x = irfftn(m * rfftn(x))`` against a bare
  ``rfftn``/``irfftn`` pair on the same batch, and their ratio (aim: <= 1.3);
- one training step of each of the four methods (batch 4, default networks
  and settings);
- SGLD steps per second on the Boltzmann posterior of CryoWGEN for K = 8
  chains x B = 2 observations (one step updates all K x B chains);
- the peak memory of each of these (:func:`cryolearn.experiments.measure`: CUDA
  memory allocated by PyTorch, or growth of the resident set on the CPU);
- the cost per voxel relative to the smallest box (1.00: the cost grows like
  the voxel count; an FFT's ``log N`` factor alone gives about 1.3 at 96^3
  against 32^3).

Times are medians of repeated calls after a warm-up call; the operator and
the FFT pair are timed in five alternating rounds and each keeps its fastest
round, so that a change in the machine's load does not bias their ratio. On
Linux CPUs, tensors above glibc's mmap threshold (at most 32 MB) are mapped
and page-faulted afresh at every allocation, which dominates at 96^3 (see
README.md). This is a
benchmark, not a test.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys

import torch

import cryolearn
from cryolearn.methods import BoltzmannPosterior, get_method
from cryolearn.physics import apply_missing_wedge, missing_wedge_mask
from cryolearn.sampling import sgld
from cryolearn.experiments import format_bytes, measure

METHODS = {"cryogen1": "CryoGEN-I", "cryogen2": "CryoGEN-II", "cryowgen1": "CryoWGEN-I", "cryowgen2": "CryoWGEN-II"}
BATCH, K, B, SGLD_STEPS, SIGMA, TILT = 4, 8, 2, 20, 0.5, (-60.0, 60.0)
DIMS = (-3, -2, -1)


def fft_pair(x: torch.Tensor) -> torch.Tensor:
    """The bare ``irfftn(rfftn(x))`` that the operator is compared with."""
    return torch.fft.irfftn(torch.fft.rfftn(x, dim=DIMS, norm="ortho"), s=x.shape[-3:], dim=DIMS, norm="ortho")


def timed(fn, *args, device: torch.device, budget: float, max_repeat: int, **kwargs):
    """Warm-up call (its time sizes the run), then the median of as many calls as fit in ``budget`` seconds."""
    first = measure(fn, *args, device=device, **kwargs)
    repeat = max(1, min(max_repeat, int(budget / max(first.seconds, 1e-9))))
    return measure(fn, *args, device=device, repeat=repeat, **kwargs)


def paired(fa, fb, *args, device: torch.device, budget: float, rounds: int = 5):
    """Time two functions in alternating rounds, so that other processes' load hits both; each keeps its fastest round."""
    first = [measure(f, *args, device=device) for f in (fa, fb)]  # warm-up
    repeat = max(1, min(20, int(budget / rounds / max(first[0].seconds + first[1].seconds, 1e-9))))
    best = [None, None]
    for _ in range(rounds):
        for i, f in enumerate((fa, fb)):
            m = measure(f, *args, device=device, repeat=repeat)
            if best[i] is None or m.seconds < best[i].seconds:
                best[i] = m
    return best


def bench_box(n: int, device: torch.device, budget: float) -> dict[str, tuple[float, int]]:
    """``{item: (seconds, peak_bytes)}`` for one box size ``n``."""
    g = torch.Generator(device=device).manual_seed(0)
    mask = missing_wedge_mask((n, n, n), TILT, device=device)
    x = torch.randn(2 * BATCH, n, n, n, generator=g, device=device)  # (2B, D, H, W)
    noise = torch.randn(x.shape, generator=g, device=device)
    y = apply_missing_wedge(x + SIGMA * noise, mask)  # observations M x + M n
    out = {}
    op, ff = paired(lambda v: apply_missing_wedge(v, mask), fft_pair, y[:BATCH], device=device, budget=budget)
    out["operator"], out["fft"] = (op.seconds, op.peak_bytes), (ff.seconds, ff.peak_bytes)
    for name in METHODS:
        method = get_method(name, mask=mask, sigma=SIGMA, batch_size=BATCH, seed=0).to(device)
        method.generator = torch.Generator(device=device).manual_seed(1)
        m = timed(method.training_step, y[:BATCH], y[BATCH:], device=device, budget=budget, max_repeat=5)
        out[name] = (m.seconds, m.peak_bytes)
        del method
    post = BoltzmannPosterior(y[:B], y[:B], mask, SIGMA)  # centred on the observations themselves
    x0 = post.sample_reference(K, generator=g)  # (K, B, D, H, W)
    eta = 0.1 / (1 / SIGMA**2 + 1.0)  # CryoWGEN-II's default step in the potential's units
    m = timed(sgld, post.potential, x0, eta, SGLD_STEPS, generator=g, keep_samples=False, device=device, budget=budget, max_repeat=5)
    out["sgld"] = (m.seconds / SGLD_STEPS, m.peak_bytes)
    return out


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{model}, {os.cpu_count()} logical CPUs"


def tables(results: dict[int, dict[str, tuple[float, int]]]) -> list[str]:
    """The peak-memory and cost-per-voxel tables (the time table is printed row by row)."""
    sizes = sorted(results)
    n0 = sizes[0]
    items = ["operator", *METHODS, "sgld"]
    heads = ["operator M", *METHODS.values(), "SGLD"]
    lines = ["", "Peak memory (beyond the inputs):", "", "| box | " + " | ".join(heads) + " |", "|---" * (len(heads) + 1) + "|"]
    for n in sizes:
        lines.append(f"| {n}^3 | " + " | ".join(format_bytes(results[n][k][1]) for k in items) + " |")
    heads = ["operator M", "rfftn+irfftn", *METHODS.values(), "SGLD step"]
    lines += ["", f"Cost per voxel relative to {n0}^3 (1.00: time grows like the voxel count):", "",
              "| box | voxels / " + f"{n0}^3 | " + " | ".join(heads) + " |", "|---" * (len(heads) + 2) + "|"]
    for n in sizes:
        v = (n / n0) ** 3
        rel = [(results[n][k][0] / results[n0][k][0]) / v for k in ["operator", "fft", *METHODS, "sgld"]]
        lines.append(f"| {n}^3 | {v:.2f} | " + " | ".join(f"{r:.2f}" for r in rel) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog="example: OMP_NUM_THREADS=2 python benchmarks/run.py --sizes 32 48 --device cpu")
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 48, 64, 96], help="box sizes in voxels (default: 32 48 64 96)")
    parser.add_argument("--device", choices=["cpu", "cuda"], help="one device only (default: cpu, and cuda when available)")
    parser.add_argument("--budget", type=float, default=3.0, help="seconds of repeated calls per item after the warm-up (default: 3)")
    parser.add_argument("--out", help="also write the tables to this markdown file")
    args = parser.parse_args(argv)
    if any(n < 8 or n % 8 for n in args.sizes):
        parser.error(f"box sizes must be positive multiples of 8 (the U-Net pools three times), got {args.sizes}")
    devices = [torch.device(args.device)] if args.device else [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    if any(d.type == "cuda" for d in devices) and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    report = []

    def emit(line: str = "") -> None:
        print(line, flush=True)
        report.append(line)

    for device in devices:
        load = ", ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
        emit(f"### {device.type.upper()}: {describe(device)}")
        emit()
        emit(f"{datetime.date.today().isoformat()}, cryolearn {cryolearn.__version__}, torch {torch.__version__}, "
             f"torch threads: {torch.get_num_threads()}, Python {platform.python_version()}, load average {load} at start. "
             f"Batch {BATCH}, tilt range {TILT[0]:g} to {TILT[1]:g} degrees, default networks; SGLD on K={K} chains x B={B} observations.")
        emit()
        emit("| box | operator M (ms) | rfftn+irfftn (ms) | ratio | " + " | ".join(f"{v} step (s)" for v in METHODS.values()) + " | SGLD (steps/s) |")
        emit("|---" * (5 + len(METHODS)) + "|")
        results = {}
        for n in args.sizes:
            r = results[n] = bench_box(n, device, args.budget)
            op, ff = r["operator"][0], r["fft"][0]
            emit(f"| {n}^3 | {1e3 * op:.2f} | {1e3 * ff:.2f} | {op / ff:.2f} | "
                 + " | ".join(f"{r[k][0]:.3g}" for k in METHODS) + f" | {1 / r['sgld'][0]:.3g} |")
        for line in tables(results):
            emit(line)
        emit()
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(report) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
