"""Benchmark of the rotations of Appendix D.1 (adamlinf.rotations).

Prints, measured in the same run:
  * one rotation round trip of RotatedParametrization (push + pull_grad, PermuteRotate k=2) on the
    parameters of a small GPT (4 layers, width 128, vocab 256, context 128, batch 16), divided by
    one training step of that model (forward + backward + torch.optim.Adam(foreach=True) step);
    target <= 0.3;
  * PermuteRotate.apply / apply_T for n = 10^6 and 10^7 (float32, k=2), with the flop rate of the
    O(n (s1+s2+s3)) scheme, and an extrapolation to GPT-2 small (n = 124,439,808);
  * with --big: an actual round trip at n = 124,439,808 (needs ~4 GB of memory).

Usage: python benchmarks/bench_rotations.py [--device cpu|cuda] [--reps 21] [--big]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from _timing import median_time
from _timing import sync as _sync
from adamlinf.rotations import PermuteRotate, RotatedParametrization, split_pieces

GPT2_SMALL_N = 124_439_808


def small_gpt(device):
    try:
        from adamlinf.models.gpt import GPT, GPTConfig

        cfg = GPTConfig(vocab_size=256, block_size=128, n_layer=4, n_head=4, n_embd=128)
        return GPT(cfg).to(device), "adamlinf.models.gpt.GPT"
    except ImportError as err:  # pragma: no cover - fallback if the model module is missing
        raise SystemExit("adamlinf.models.gpt is missing") from err


def stage_flops(n, k=2):
    """2 n (a+b+c) multiply-adds summed over pieces, times k stages (one apply)."""
    return k * sum(2 * a * b * c * ((a > 1) * a + (b > 1) * b + (c > 1) * c) for a, b, c in split_pieces(n))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--reps", type=int, default=21)
    ap.add_argument("--big", action="store_true", help="also run a 124M round trip")
    args = ap.parse_args()
    dev = args.device
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, device {dev}, threads {torch.get_num_threads()}")

    # --- round trip vs training step on a small GPT ------------------------------------------
    model, src = small_gpt(dev)
    n = sum(p.numel() for p in model.parameters())
    B, T, V = 16, 128, 256
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(V, (B, T), generator=g).to(dev)
    tgt = torch.randint(V, (B, T), generator=g).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, foreach=True)

    def train_step():
        opt.zero_grad(set_to_none=True)
        _, loss = model(idx, tgt)
        loss.backward()
        opt.step()  # (the rotated run would step w instead; same cost)

    _, loss = model(idx, tgt)
    loss.backward()
    rp = RotatedParametrization(model, k=2, seed=0)

    def round_trip():
        rp.push()
        rp.pull_grad()  # uses the gradients the last training step left in place

    # interleave the two measurements so that load from other processes hits both alike
    for _ in range(2):
        train_step(), round_trip()
    t_steps, t_rts, c_steps, c_rts = [], [], [], []
    for _ in range(args.reps):
        for fn, acc, cacc in ((train_step, t_steps, c_steps), (round_trip, t_rts, c_rts)):
            _sync(dev)
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            _sync(dev)
            acc.append(time.perf_counter() - t0)
            cacc.append(time.process_time() - c0)
    t_step, t_rt = statistics.median(t_steps), statistics.median(t_rts)
    pair_ratio = statistics.median(r / s for r, s in zip(t_rts, t_steps, strict=False))
    # CPU time of this process: less sensitive to other processes sharing the cores
    cpu_ratio = statistics.median(c_rts) / statistics.median(c_steps)
    t_push = median_time(rp.push, args.reps, dev)
    print(
        f"\nsmall GPT ({src}; 4 layers, width 128, vocab 256, context 128, batch 16): "
        f"n = {n:,} parameters, pieces {rp.rotation.pieces}"
    )
    print(f"  training step (fwd+bwd+torch Adam foreach): median {t_step * 1e3:8.2f} ms")
    print(
        f"  rotation round trip (push + pull_grad, k=2): median {t_rt * 1e3:8.2f} ms"
        f"  (push alone {t_push * 1e3:.2f} ms)"
    )
    print(
        f"  ratio round trip / training step = {t_rt / t_step:.3f} (ratio of medians), "
        f"{pair_ratio:.3f} (median of interleaved pairs)   (target <= 0.3)"
    )
    if torch.device(dev).type == "cpu":
        print(f"  same ratio in process CPU time (robust to other load on the machine): {cpu_ratio:.3f}")
    f_step = 6 * n * B * T + 12 * model.config.n_layer * B * T * T * model.config.n_embd // 2
    f_rt = 2 * stage_flops(n)
    print(
        f"  flop count: round trip {f_rt / 1e9:.2f} GFLOP vs training step ~{f_step / 1e9:.2f} GFLOP "
        f"(6 n B T + causal attention): ratio {f_rt / f_step:.3f}"
    )

    # --- apply at 1e6 and 1e7 --------------------------------------------------------------
    print("\nPermuteRotate(n, k=2), float32, one vector:")
    rate = None
    for nn_ in (10**6, 10**7):
        t0 = time.perf_counter()
        R = PermuteRotate(nn_, k=2, seed=0, device=dev)
        t_build = time.perf_counter() - t0
        x = torch.randn(nn_, device=dev)
        reps = max(3, args.reps // 3)
        t_a = median_time(lambda R=R, x=x: R.apply(x), reps, dev, warmup=1)
        t_t = median_time(lambda R=R, x=x: R.apply_T(x), reps, dev, warmup=1)
        err = (R.apply_T(R.apply(x)) - x).abs().max().item()
        rate = stage_flops(nn_) / t_a
        print(
            f"  n = {nn_:>11,}: pieces {R.pieces}; build {t_build:6.2f} s; apply {t_a * 1e3:8.1f} ms;"
            f" apply_T {t_t * 1e3:8.1f} ms; {rate / 1e9:6.1f} GFLOP/s; max|R^T R x - x| = {err:.1e}"
        )
        del R, x

    f_big = stage_flops(GPT2_SMALL_N)
    print(
        f"\nGPT-2 small, n = {GPT2_SMALL_N:,}: pieces {split_pieces(GPT2_SMALL_N)};"
        f" {f_big / 1e9:.0f} GFLOP per apply (k=2); extrapolated from the 10^7 rate: "
        f"apply ~ {f_big / rate:.1f} s, round trip ~ {2 * f_big / rate:.1f} s on {dev}"
    )
    if args.big:
        t0 = time.perf_counter()
        R = PermuteRotate(GPT2_SMALL_N, k=2, seed=0, device=dev)
        t_build = time.perf_counter() - t0
        x = torch.randn(GPT2_SMALL_N, device=dev)
        _sync(dev)
        t0 = time.perf_counter()
        y = R.apply(x)
        _sync(dev)
        t1 = time.perf_counter()
        z = R.apply_T(y)
        _sync(dev)
        t2 = time.perf_counter()
        err = (z - x).abs().max().item()
        mem = (
            f", peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB"
            if torch.device(dev).type == "cuda"
            else ""
        )
        print(
            f"  measured: build {t_build:.1f} s, apply {t1 - t0:.2f} s, apply_T {t2 - t1:.2f} s, "
            f"max|R^T R x - x| = {err:.1e}{mem} (vector = {x.numel() * 4 / 2**30:.2f} GiB)"
        )


if __name__ == "__main__":
    main()
