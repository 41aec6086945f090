"""Benchmark of the training loop (adamlinf.train) on the ci-size GPT.

Model: GPT with 4 layers, width 128, 4 heads, vocabulary 256 (bytes), context 128; batch 16 of the
``pydoc`` corpus (prepared on the fly into a temporary directory). Prints median seconds per
iteration of

* a plain reference loop: ``task.batch`` -> forward/backward -> ``torch.optim.Adam.step`` ->
  ``zero_grad`` (same model, same batches);
* our trainer with Adam (``adamlinf.optim.create("adam", torch_form=True)``), which also sets the
  schedule's learning rate, clips the gradient, logs metrics (JSONL) and updates a progress bar;
* our trainer with rotated Adam (App. D.1 rotation, k = 2, over all parameters);

and the ratios trainer/reference (target <= 1.1) and rotated/Adam (target <= 1.5). The three are
measured in interleaved rounds so that load from other processes affects them alike.

    python benchmarks/bench_train.py [--iters 20] [--rounds 3] [--threads 2]
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch

from adamlinf.data import text
from adamlinf.data.text import LMTask
from adamlinf.models import GPT, GPTConfig
from adamlinf.train import TrainConfig, train

CONFIG = dict(vocab_size=256, block_size=128, n_layer=4, n_head=4, n_embd=128)
BATCH = 16


def make_model(seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(**CONFIG))


def reference(task, iters, start):
    """Plain loop: per-iteration wall times."""
    model = make_model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.95), eps=1e-8)
    times = []
    for it in range(start, start + iters):
        t = time.perf_counter()
        x, y = task.batch("train", it, 0)
        _, loss = model(x, y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()
        times.append(time.perf_counter() - t)
    return times[1:]  # the first step allocates optimizer state


def ours(task, iters, optimizer, out_dir):
    """Our trainer: per-iteration wall times from the metrics' ``time`` column (which includes
    everything the loop does: schedule, clipping, logging, progress bar)."""
    cfg = TrainConfig(out_dir=out_dir, optimizer=optimizer, lr=1e-3, max_iters=iters + 1,
                      warmup_iters=2, eval_interval=0, progress=True, resume=False)
    df = train(make_model(), task, cfg)
    t = df["time"].to_numpy()
    return list((t[2:-1] - t[1:-2]))  # rows 2..iters: pure training iterations (no eval, no setup)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        text.prepare_pydoc(root=tmp)
        task = LMTask(dataset="pydoc", root=tmp, block_size=CONFIG["block_size"], batch_size=BATCH,
                      eval_iters=1)
        times = {"reference (torch Adam)": [], "trainer adam": [], "trainer rotated_adam": []}
        reference(task, 3, 0)  # warm up (lazy imports, allocator)
        for r in range(args.rounds):
            times["reference (torch Adam)"] += reference(task, args.iters, 0)
            times["trainer adam"] += ours(task, args.iters, "adam", f"{tmp}/adam{r}")
            times["trainer rotated_adam"] += ours(task, args.iters, "rotated_adam", f"{tmp}/rot{r}")
    n_params = make_model().num_params()
    print(f"\nGPT {CONFIG} ({n_params:,} parameters), batch {BATCH}, torch {torch.__version__}, "
          f"{args.threads} threads, load average {os.getloadavg()[0]:.1f}")
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in times.items():
        print(f"  {k:24s} median {med[k] * 1e3:8.1f} ms/iter   (n={len(v)}, "
              f"IQR {statistics.quantiles(v, n=4)[0] * 1e3:.1f}-{statistics.quantiles(v, n=4)[2] * 1e3:.1f} ms)")
    r1 = med["trainer adam"] / med["reference (torch Adam)"]
    r2 = med["trainer rotated_adam"] / med["trainer adam"]
    print(f"  trainer / reference loop : {r1:.3f}x  (target <= 1.1)")
    print(f"  rotated Adam / Adam      : {r2:.3f}x  (target <= 1.5)")


if __name__ == "__main__":
    main()
