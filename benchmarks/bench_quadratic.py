"""Batched quadratic runner vs. the same runs one by one with the optimizer classes.

    .venv/bin/python benchmarks/bench_quadratic.py [--d 200] [--steps 100] [--repeats 3] [--threads 1]

Both sides run exactly the same (row, learning rate, seed) combinations of a Table 1 experiment
(:func:`experiment`): the baseline loops over them in Python and calls ``adamlinf.problems.run``
(``adamlinf.optim`` classes, autograd gradients); the batched side is one
``adamlinf.studies.quadratic.run_batched`` call (through ``adamlinf.studies.quadratic.run_experiment``).
Prints median wall times and their ratio, plus the largest relative difference of the final losses (they
must agree). Wall times on a shared machine are noisy: medians over ``--repeats`` runs, measured in the
same process.

    .venv/bin/python benchmarks/bench_quadratic.py --sweep [--d 200] [--steps 1000] [--seeds 5]

times the whole Table 1 sweep of the book page instead (``adamlinf.studies.quadratic.run_sweep``
with the page's spectra, rotations, noise levels and learning-rate tuning). It prints wall and CPU
time: on a shared machine the CPU time of the one-thread run is the estimate of its uncontended
wall time.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from adamlinf import problems as Q
from adamlinf.studies import quadratic as SQ

SWEEP = dict(spectra=list(Q.SPECTRA), theta_sqrt_d=[0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0], sigmas=[0.0, 1e-3])


def sweep(d: int, steps: int, seeds: int) -> None:
    """Time the book's Table 1 sweep (wall and CPU)."""
    t0, c0 = time.perf_counter(), time.process_time()
    res = SQ.run_sweep(d=d, steps=steps, n_seeds=seeds, **SWEEP)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(
        f"Table 1 sweep at d={d}, T={steps}, {seeds} seeds: {len(res.per_lr)} runs, "
        f"{len(res.tuned)} tuned settings"
    )
    print(f"wall {wall:.1f} s, CPU {cpu:.1f} s (torch threads={torch.get_num_threads()})")
    print(f"estimated at d=1000: {SQ.estimate_cost(cpu, res.work, d_target=1000) / 60:.0f} CPU minutes")


def experiment(d: int, n_lr: int, thetas=(0.002, 0.02, 0.05, 1.0), sigma: float = 1e-3) -> SQ.Experiment:
    """Table 1's rows on i^(-1/2) and its rotations (AdaSGD, Adam per rotation, SGD, SignGD)."""
    problems = Q.rotated_family(Q.power_law_spectrum(d, 0.5), Q.rotation_path(d, thetas))
    x0 = torch.randn(d, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    grid, sgd = tuple(np.geomspace(1e-5, 1e-1, n_lr)), tuple(np.geomspace(1e-3, 2.0, n_lr))
    rows = []
    for col, b1, b2 in (("beta1=0", 0.0, 0.99), ("beta1=0.9", 0.9, 0.99)):
        rows.append(SQ.Row("AdaSGD", "adasgd", 0, b1, b2, grid, col))
        rows += [SQ.Row(f"Adam {k}", "adam", k, b1, b2, grid, col) for k in range(len(problems))]
        rows.append(SQ.Row("SGD", "sgd", 0, b1, 0.0, sgd, col))
        if b1 == 0:
            rows.append(SQ.Row("SignGD", "signgd", 0, 0.0, 0.0, grid, col))
    return SQ.Experiment(problems, rows, x0, sigma)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--d", type=int, default=200)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--n-lr", type=int, default=3)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sweep", action="store_true", help="time the whole Table 1 sweep instead")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.sweep:
        sweep(args.d, args.steps, args.seeds)
        return

    exp = experiment(args.d, args.n_lr)
    for p in exp.problems:  # build dense Hessians outside the timings
        _ = p.hessian
    combos = [(row, lr, s) for row in exp.rows for lr in row.lrs for s in range(args.seeds)]
    print(
        f"d={args.d}, T={args.steps}, {len(exp.rows)} rows x {args.n_lr} lrs x {args.seeds} seeds = "
        f"{len(combos)} runs, float64, torch threads={args.threads}"
    )

    t_batched, final = [], None
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        kw = dict(n_seeds=args.seeds, final_window=1, record_every=args.steps)  # final losses only, as ref
        final, _ = SQ.run_experiment(exp, steps=args.steps, **kw)
        t_batched.append(time.perf_counter() - t0)

    t_loop, ref = [], {}
    for _ in range(max(1, args.repeats)):
        t0 = time.perf_counter()
        for row, lr, s in combos:
            ref[(row.name, row.column, lr, s)] = Q.run(
                exp.problems[row.problem],
                exp.x0,
                row.optimizer,
                steps=args.steps,
                lr=lr,
                seed_index=s,
                sigma=exp.sigma,
                betas=(row.beta1, row.beta2),
                momentum=row.beta1,
            )["loss"][-1].item()
        t_loop.append(time.perf_counter() - t0)

    got = {(r.row, r.column, r.lr, r.seed): r.last_loss for r in final.itertuples()}
    rel = max(abs(got[k] - v) / abs(v) for k, v in ref.items() if np.isfinite(v) and v != 0)
    mb, ml = statistics.median(t_batched), statistics.median(t_loop)
    print(
        f"batched runner   : median {mb:8.3f} s  over {len(t_batched)} repeats "
        f"{[round(t, 3) for t in t_batched]}"
    )
    print(
        f"one by one (loop): median {ml:8.3f} s  over {len(t_loop)} repeats {[round(t, 3) for t in t_loop]}"
    )
    print(f"speed-up (one-by-one / batched): {ml / mb:.1f}x")
    print(f"max relative difference of final losses: {rel:.2e}")


if __name__ == "__main__":
    main()
