"""Benchmark of the training loop (adamlinf.train) against a nanoGPT-shaped reference loop.

Model: GPT (default the ``ci`` size: 4 layers, width 128, 4 heads, context 128, vocabulary 256
bytes), batch 16 of the ``pydoc`` corpus (prepared on the fly into a temporary directory). Both
loops train the same model from the same initialisation on the same batches for ``warmup + iters``
iterations, with the same schedule, gradient clipping (1.0) and precision:

* **reference**: nanoGPT's ``train.py`` loop: per iteration set the learning rate, forward and
  backward over the micro steps (the next batch fetched right after the forward, pinned and
  non-blocking on CUDA), ``clip_grad_norm_``, ``torch.optim.AdamW(weight_decay=0)`` (fused on
  CUDA, foreach on CPU), ``zero_grad(set_to_none=True)``, ``loss.item()`` every ``log_interval``
  iterations; compiled on CUDA;
* **trainer**: :func:`adamlinf.train.train` with Adam in torch form (= torch.optim.Adam), which
  also writes its metric rows, and evaluates once at iteration 0 (inside the warm-up);
* **rotated** (``--rotated``): the trainer with rotated Adam (App. D.1, k = 2).

Seconds per iteration are timed after ``warmup`` iterations, between two host syncs (the reference
reads the loss; the trainer's metric rows carry the time of their sync). The loops run in
interleaved rounds (reference, trainer, reference, trainer, ...) so that load from other processes
hits them alike; the printed ratio is the median over rounds of trainer/reference.

    python benchmarks/bench_train.py [--iters 20] [--rounds 5] [--threads 2]
    python benchmarks/bench_train.py --device cuda --dtype bfloat16 --n-layer 12 --n-head 12 \\
        --n-embd 768 --block-size 1024 --batch 16
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time

import torch

from _timing import sync
from adamlinf.data import text
from adamlinf.data.text import LMTask
from adamlinf.models import GPT, GPTConfig
from adamlinf.train import TrainConfig, lr_at, train

LR, BETAS, EPS, CLIP = 1e-3, (0.9, 0.95), 1e-8, 1.0


def make_model(args, seed: int = 0) -> GPT:
    """The benchmark's GPT, initialised under ``seed``."""
    torch.manual_seed(seed)
    return GPT(
        GPTConfig(
            vocab_size=256,
            block_size=args.block_size,
            n_layer=args.n_layer,
            n_head=args.n_head,
            n_embd=args.n_embd,
        )
    )


def config(args, out_dir: str, optimizer: str = "adam") -> TrainConfig:
    """The trainer's configuration (also the reference's schedule)."""
    return TrainConfig(
        out_dir=out_dir,
        optimizer=optimizer,
        lr=LR,
        betas=BETAS,
        eps=EPS,
        grad_clip=CLIP,
        warmup_iters=2,
        max_iters=args.warmup + args.iters,
        grad_accum=args.accum,
        eval_interval=0,
        log_interval=args.log_interval,
        checkpoint_interval=0,
        checkpoint_minutes=0,
        device=args.device,
        dtype=args.dtype,
        compile=args.compile,
        progress=False,
        resume=False,
    )


def reference(args, task: LMTask) -> float:
    """nanoGPT's loop; seconds per iteration after the warm-up."""
    device, cuda = args.device, args.device.startswith("cuda")
    cfg = config(args, "unused")
    model = make_model(args).to(device)
    opt = torch.optim.AdamW(
        model.parameters(),
        lr=LR,
        betas=BETAS,
        eps=EPS,
        weight_decay=0.0,
        **({"fused": True} if cuda else {"foreach": True}),
    )
    amp = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(args.dtype)
    ctx = torch.autocast(torch.device(device).type, dtype=amp) if amp else contextlib.nullcontext()
    fwd = torch.compile(model) if args.compile else model

    def get_batch(it: int, micro: int):
        x, y = task.batch("train", it, micro)
        if cuda:
            return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
        return x, y

    x, y = get_batch(0, 0)
    t0 = time.perf_counter()
    for it in range(cfg.max_iters):
        if it == args.warmup:
            sync(device)
            t0 = time.perf_counter()
        lr = lr_at(it, cfg)
        for group in opt.param_groups:
            group["lr"] = lr
        for micro in range(args.accum):
            with ctx:
                _, loss = fwd(x, y)
                loss = loss / args.accum
            nxt = (it, micro + 1) if micro + 1 < args.accum else (it + 1, 0)
            x, y = get_batch(*nxt)
            loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if (it + 1) % args.log_interval == 0:
            loss.item()
    sync(device)
    return (time.perf_counter() - t0) / args.iters


def ours(args, task: LMTask, out_dir: str, optimizer: str = "adam") -> float:
    """The trainer; seconds per iteration after the warm-up, from its metric rows' sync times."""
    df = train(make_model(args), task, config(args, out_dir, optimizer)).set_index("iter")
    t = df["time"]
    return (t[args.warmup + args.iters - 1] - t[args.warmup - 1]) / args.iters


def main() -> None:
    """Run the interleaved rounds and print the medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="torch.compile both loops (default: on CUDA only)",
    )
    parser.add_argument("--log-interval", type=int, default=None, help="default: 1 on CPU, 10 on CUDA")
    parser.add_argument("--accum", type=int, default=1)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--n-layer", type=int, default=4)
    parser.add_argument("--n-head", type=int, default=4)
    parser.add_argument("--n-embd", type=int, default=128)
    parser.add_argument("--block-size", type=int, default=128)
    parser.add_argument("--rotated", action="store_true", help="also time rotated Adam")
    args = parser.parse_args()
    cuda = args.device.startswith("cuda")
    args.compile = cuda if args.compile is None else args.compile
    args.log_interval = args.log_interval or (10 if cuda else 1)
    if args.warmup % args.log_interval or args.iters % args.log_interval:
        parser.error("--warmup and --iters must be multiples of --log-interval")
    torch.set_num_threads(args.threads)
    times: dict[str, list[float]] = {"reference": [], "trainer": []}
    if args.rotated:
        times["rotated"] = []
    with tempfile.TemporaryDirectory() as tmp:
        text.prepare_pydoc(root=tmp)
        task = LMTask(
            dataset="pydoc", root=tmp, block_size=args.block_size, batch_size=args.batch, eval_iters=1
        )
        for r in range(args.rounds):
            times["reference"].append(reference(args, task))
            times["trainer"].append(ours(args, task, f"{tmp}/adam{r}"))
            if args.rotated:
                times["rotated"].append(ours(args, task, f"{tmp}/rot{r}", "rotated_adam"))
    n_params = make_model(args).num_params()
    print(
        f"\nGPT {args.n_layer}x{args.n_embd} ({n_params:,} parameters), "
        f"batch {args.batch}x{args.block_size}, "
        f"accum {args.accum}, {args.device} {args.dtype}, compile={args.compile}, torch {torch.__version__}, "
        f"{args.threads} threads, load average {os.getloadavg()[0]:.1f}"
    )
    for k, v in times.items():
        print(
            f"  {k:10s} median {statistics.median(v) * 1e3:8.2f} ms/iter  (rounds: "
            + ", ".join(f"{x * 1e3:.1f}" for x in v)
            + ")"
        )
    ratios = [a / b for a, b in zip(times["trainer"], times["reference"], strict=True)]
    print(
        f"  trainer / reference : {statistics.median(ratios):.3f}x, median of {len(ratios)} rounds "
        f"(per round: {', '.join(f'{x:.3f}' for x in ratios)}; target <= 1.05 on CPU)"
    )
    if args.rotated:
        rot = [a / b for a, b in zip(times["rotated"], times["trainer"], strict=True)]
        print(f"  rotated / Adam      : {statistics.median(rot):.3f}x")


if __name__ == "__main__":
    main()
