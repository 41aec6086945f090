"""Timing helpers shared by the benchmark scripts: wall-clock seconds of a call, synchronised
with the device so that asynchronous CUDA work is counted, and medians over repeats."""

from __future__ import annotations

import statistics
import time

import torch


def sync(device) -> None:
    """Wait for queued work on ``device`` (a no-op on the CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, reps: int, warmup: int = 1) -> list[float]:
    """Wall seconds of ``reps`` calls of ``fn`` (after ``warmup`` untimed calls), synchronised."""
    for _ in range(warmup):
        fn()
    sync(device)
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        sync(device)
        out.append(time.perf_counter() - t)
    return out


def median_time(fn, reps: int, device, warmup: int = 2) -> float:
    """Median of :func:`timed`."""
    return statistics.median(timed(fn, device, reps, warmup))


def timeit_interleaved(fns: dict, repeats: int, device) -> dict:
    """Median seconds of each function, timed round-robin (one call of each per round) so that
    load from other processes on a shared machine hits every candidate alike."""
    for fn in fns.values():  # warm-up
        fn()
    sync(device)
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            sync(device)
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}
