"""Wall time and peak memory of one call, on CPU or CUDA.

:func:`measure` runs a function, synchronising CUDA around the timed calls,
and reports the median wall time per call and the peak memory the calls
needed beyond what was held before. The benchmark script
(``benchmarks/run.py``) and the book's method comparison use it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch

__all__ = ["Measurement", "measure", "format_bytes"]


@dataclass
class Measurement:
    """What :func:`measure` returns.

    Attributes
    ----------
    result : Any
        The return value of the last timed call.
    seconds : float
        Median wall-clock time per timed call, in seconds.
    peak_bytes : int
        Peak memory of the timed calls beyond what was held before them, in
        bytes: CUDA memory allocated by PyTorch on a CUDA device, the
        process's resident set on the CPU (see :func:`measure`).
    """

    result: Any
    seconds: float
    peak_bytes: int


def _proc_status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"{field} not in /proc/self/status")


@functools.lru_cache(maxsize=1)
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or ``None`` where the C library has none."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim
    except (OSError, AttributeError, TypeError):
        return None


def _reset_rss_peak() -> int | None:
    """Reset the kernel's resident high-water mark; return the resident size in bytes, or ``None`` if impossible."""
    trim = _malloc_trim()
    if trim is not None:
        # glibc keeps freed blocks (below its adaptive mmap threshold, up to 32 MB) resident for reuse;
        # hand them back first, so that a call reusing them counts them again.
        trim(0)
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _proc_status_kib("VmRSS") * 1024
    except OSError:
        return None


def _max_rss_bytes() -> int:
    """Lifetime peak resident size from ``getrusage`` (kilobytes on Linux, bytes on macOS)."""
    import resource  # POSIX only

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


def _infer_device(args: tuple, kwargs: dict) -> torch.device:
    for a in (*args, *kwargs.values()):
        if torch.is_tensor(a):
            return a.device
    return torch.device("cpu")


def measure(
    fn: Callable[..., Any], *args: Any, device: str | torch.device | None = None, repeat: int = 1, warmup: int = 0,
    **kwargs: Any,
) -> Measurement:
    """Time ``fn(*args, **kwargs)`` and record its peak memory.

    Parameters
    ----------
    fn : callable
        The function to measure.
    *args, **kwargs
        Passed to ``fn`` at every call.
    device : str or torch.device, optional
        Where the work runs; decides how time is synchronised and which
        memory is measured. ``None``: the device of the first tensor among
        ``args`` and ``kwargs``, else the CPU.
    repeat : int
        Timed calls; :attr:`Measurement.seconds` is their median.
    warmup : int
        Untimed calls before the timed ones (CUDA kernels, cuFFT plans,
        allocator caches).

    Returns
    -------
    Measurement
        ``result`` of the last call, median ``seconds`` per call and
        ``peak_bytes`` over the timed calls.

    Raises
    ------
    ValueError
        If ``repeat < 1`` or ``warmup < 0``.

    Notes
    -----
    On CUDA the device is synchronised before the clock starts and after
    every call, and the peak is ``torch.cuda.max_memory_allocated`` after
    ``torch.cuda.reset_peak_memory_stats``, minus the memory allocated before
    (PyTorch's tensors only, not the caching allocator's reserve or cuFFT
    plans).

    On the CPU the peak is the growth of the process's resident set: the
    kernel's high-water mark is reset by writing ``5`` to
    ``/proc/self/clear_refs`` and ``VmHWM - VmRSS`` is read from
    ``/proc/self/status`` after the calls (Linux), after glibc's cached free
    memory is returned with ``malloc_trim`` so that memory reused from
    earlier calls (warm-up included) counts again. Where ``/proc`` cannot be used (not Linux, or not
    writable), the figure is the process's lifetime peak resident size from
    :func:`resource.getrusage`, which includes everything held before: an
    upper bound.

    The result of each call is released before the next call starts, so
    repeats do not hold two results at once. Source: benchmarks/README.md.
    """
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, got {repeat}")
    if warmup < 0:
        raise ValueError(f"warmup must be non-negative, got {warmup}")
    device = torch.device(device) if device is not None else _infer_device(args, kwargs)
    cuda = device.type == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        fn(*args, **kwargs)
    sync()
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    else:
        before = _reset_rss_peak()
    times = []
    result = None
    for _ in range(repeat):
        result = None
        t0 = time.perf_counter()
        result = fn(*args, **kwargs)
        sync()
        times.append(time.perf_counter() - t0)
    if cuda:
        peak = torch.cuda.max_memory_allocated(device) - before
    elif before is not None:
        peak = _proc_status_kib("VmHWM") * 1024 - before
    else:
        peak = _max_rss_bytes()
    return Measurement(result=result, seconds=statistics.median(times), peak_bytes=max(int(peak), 0))


def format_bytes(n: int | float) -> str:
    """A byte count in binary units, e.g. ``format_bytes(3 * 2**20) == "3.0 MiB"``.

    Parameters
    ----------
    n : int or float
        Bytes (may be negative).

    Returns
    -------
    str
        ``"512 B"``, ``"1.5 KiB"``, ``"3.0 MiB"``, ``"1.2 GiB"`` or ``"2.0 TiB"``.
    """
    sign = "-" if n < 0 else ""
    n = abs(float(n))
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    k = 0
    while n >= 1024 and k < len(units) - 1:
        n /= 1024
        k += 1
    return f"{sign}{n:.0f} B" if k == 0 else f"{sign}{n:.1f} {units[k]}"
