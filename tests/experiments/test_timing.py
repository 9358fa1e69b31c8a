import os
import time

import pytest
import torch

from cryolearn.experiments import timing
from cryolearn.experiments.timing import format_bytes, measure

N = 50_000_000  # float32: 200 MB
MB200 = 4 * N
linux_proc = pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc")


@linux_proc
def test_cpu_peak_of_a_temporary_allocation():
    # The 200 MB tensor is freed inside the call: only the peak, not the result, can see it.
    m = measure(lambda: float(torch.ones(N).sum()), repeat=2)
    assert m.result == N
    assert 0.9 * MB200 < m.peak_bytes < 1.3 * MB200


@linux_proc
def test_cpu_peak_counts_memory_reused_from_earlier_calls():
    # 10 MB lies below glibc's adaptive mmap threshold: freed, it stays resident unless trimmed.
    for _ in range(3):
        m = measure(lambda: float(torch.ones(N // 20).sum()), warmup=1)
        assert 0.9 * MB200 / 20 < m.peak_bytes < 1.3 * MB200 / 20


@linux_proc
def test_cpu_peak_does_not_count_memory_held_before():
    held = torch.ones(N)
    m = measure(lambda: torch.zeros(10).sum())
    assert m.peak_bytes < 0.1 * MB200
    del held


def test_cpu_fallback_is_an_upper_bound(monkeypatch):
    monkeypatch.setattr(timing, "_reset_rss_peak", lambda: None)
    m = measure(lambda: float(torch.ones(N).sum()))
    assert m.peak_bytes > MB200


def test_seconds_of_a_sleep_and_median():
    assert 0.05 <= measure(time.sleep, 0.05).seconds < 0.15
    delays = [0.3, 0.01, 0.01]
    m = measure(lambda: time.sleep(delays.pop(0)), repeat=3)
    assert m.seconds < 0.1  # the median ignores the one slow call, a mean would not


def test_repeat_and_warmup_count_calls():
    calls = []
    m = measure(lambda x, scale=1: calls.append(x * scale) or len(calls), 2, scale=3, repeat=4, warmup=2)
    assert calls == [6] * 6
    assert m.result == 6  # the last call's return value


def test_bad_arguments():
    with pytest.raises(ValueError, match="repeat"):
        measure(time.sleep, 0, repeat=0)
    with pytest.raises(ValueError, match="warmup"):
        measure(time.sleep, 0, warmup=-1)


def test_format_bytes():
    assert format_bytes(512) == "512 B"
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(3 * 2**20) == "3.0 MiB"
    assert format_bytes(-(2**30)) == "-1.0 GiB"
    assert format_bytes(5 * 2**50) == "5120.0 TiB"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_peak_and_device_inference():
    x = torch.zeros(1, device="cuda")
    m = measure(lambda x: float((x + torch.ones(N, device=x.device)).sum()), x)
    assert 0.99 * MB200 <= m.peak_bytes < 2.1 * MB200
