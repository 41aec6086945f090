r"""Section 4.2 (GPT-2): Figure 1's tuned, seeded runs, Figure 3's shared-lr view, their claims.

:func:`figure1_runs`: the :mod:`~adamlinf.studies.sweeps` protocol, plus the adaptive methods at the
paper's shared lr :math:`\eta`, :math:`\eta/\sqrt{10}` and :math:`\eta\sqrt{10}` (Figure 3).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from adamlinf import launch as _launch
from adamlinf import optim, report
from adamlinf.studies import sweeps
from adamlinf.studies.verdicts import BOOK, Claim, Measured, all_hold, claims_table, verdict_row

#: The optimizers of Figure 1 that share the paper's single peak lr.
ADAPTIVE = ("adam", "adasgd", "rotated_adam")

_CURVES = "stated (curves); losses NOT RECOVERED"

#: Figure 1's claims (paper text; the final losses are NOT RECOVERED).
FIGURE1_CLAIMS = (
    Claim("Adam converges faster than AdaSGD", "adam", "adasgd", _CURVES, "Figure 1"),
    Claim("Adam beats rotated Adam", "adam", "rotated_adam", _CURVES, "Figure 1"),
    Claim(
        "AdaSGD beats rotated Adam (rotated Adam 'much worse')", "adasgd", "rotated_adam", _CURVES, "Figure 1"
    ),
    Claim("SGD is slowest: slower than Adam", "adam", "sgd", _CURVES, "Figure 1"),
    Claim("SGD is slowest: slower than AdaSGD", "adasgd", "sgd", _CURVES, "Figure 1"),
    Claim("SGD is slowest: slower than rotated Adam", "rotated_adam", "sgd", _CURVES, "Figure 1"),
)

#: The fields of :func:`adamlinf.launch.lm_spec`, in its order of old (a spec's key order is kept).
_SPEC_FIELDS = (
    "dataset vocab_size n_layer n_head n_embd block_size batch_size eval_iters lr min_lr warmup_iters "
    "max_iters grad_accum betas eps momentum grad_clip eval_interval dtype compile device seed rotation_k "
    "rotation_seed checkpoint_interval checkpoint_minutes progress"
).split()


def base_spec(p: Mapping) -> dict:
    """The GPT training spec of a Figure 1 parameter set ``p`` (the notebook's parameters)."""
    accum = _launch.grad_accum_steps(p["global_batch"], p["batch_size"], p["nproc_per_node"])
    derived = {"grad_accum": accum, "betas": list(p["betas"]), "rotation_seed": p["seed"], "progress": False}
    return _launch.lm_spec(**{k: derived[k] if k in derived else p[k] for k in _SPEC_FIELDS})


@dataclass
class LMRuns:
    """What :func:`figure1_runs` trained: sweep, metrics, per-run finals, shared lrs, seconds."""

    sweep: sweeps.Sweep
    metrics: pd.DataFrame
    finals: pd.DataFrame
    shared: dict[str, float]
    wall_s: float
    run_s: float = 0.0

    def tuned(self) -> dict[str, Measured]:
        """Final training loss at each optimizer's best lr, over seeds."""
        return {o: sweeps.measured(self.finals, o, lr) for o, lr in self.sweep.best_lr.items()}


def _finals(metrics: pd.DataFrame, runs: sweeps.RunCollector) -> pd.DataFrame:
    tr = sweeps.final_metrics(metrics, "train_loss")
    val = sweeps.final_metrics(metrics, "val_loss", window=1)[["run", "final_val_loss"]]
    out = tr.merge(val, on="run").rename(columns={"final_train_loss": "final", "final_val_loss": "final_val"})
    return runs.mark(out.astype({"seed": int}))


def run_name(optimizer: str, lr: float, seed: int) -> str:
    """The folder name of a Figure 1 run, e.g. ``adam_lr6.00e-04_s0`` (also in the page's SLURM snippet)."""
    return _launch.run_name(optimizer, lr, f"{{optimizer}}_lr{{lr:.2e}}_s{seed}")


def figure1_runs(p: Mapping, root: str | Path, *, max_extensions: int = 3) -> LMRuns:
    """Train Figure 1's protocol: tuned grids, measuring seeds at the tuned and the shared lrs."""
    runs = sweeps.RunCollector(p, root)
    base = base_spec(p)
    adaptive = [*p["optimizers"], *p.get("extra_optimizers", [])]
    grids = {**{o: list(p["adaptive_lrs"]) for o in adaptive}, "sgd": list(p["sgd_lrs"])}

    def specs(points, seeds) -> dict:  # {run name: spec} of each (optimizer, lr) and seed
        return {
            run_name(o, lr, s): _launch.with_train(
                sweeps.with_seed(base, s), optimizer=o, lr=lr, min_lr=lr * p["min_lr"] / p["lr"]
            )
            for o, lr in points
            for s in seeds
        }

    def evaluate(grids_now: dict) -> pd.DataFrame:
        points = [(o, lr) for o, lrs in grids_now.items() for lr in lrs]
        return _finals(runs.train(specs(points, [runs.tune_seed])), runs)

    sweep = sweeps.tune_grid(grids, evaluate, max_extensions=max_extensions, seed=runs.tune_seed)
    grid = sweep.grids[adaptive[0]]  # the paper's shared peak lr and Figure 3's smaller/larger rates
    eta = sweeps.nearest(grid, p["lr"])
    shared = {"smaller": sweeps.nearest(grid, eta / sweeps.HALF_DECADE), "default": eta}
    shared["larger"] = sweeps.nearest(grid, eta * sweeps.HALF_DECADE)
    points = sweeps.seeded_points(sweep.best_lr, [(o, lr) for o in adaptive for lr in shared.values()])
    runs.train(specs(points, runs.seeds))
    metrics = runs.metrics()
    wall = runs.wall_s()
    return LMRuns(sweep, metrics, _finals(metrics, runs), shared, wall, runs.run_s())


def figure1_claims(runs: LMRuns, *, scale: str) -> pd.DataFrame:
    """Figure 1's verdicts at each optimizer's tuned lr, and with the adaptive methods at the shared lr."""
    tuned = runs.tuned()
    eta = runs.shared["default"]
    shared = {o: sweeps.measured(runs.finals, o, eta) for o in ADAPTIVE if o in tuned}
    shared["sgd"] = tuned["sgd"]
    views = {"each optimizer at its tuned lr": tuned, f"adaptive methods at the shared lr {eta:.2g}": shared}
    tables = []
    for view, values in views.items():
        table = claims_table(values, list(FIGURE1_CLAIMS), scale=scale, labels=optim.LABELS)
        tables.append(table.assign(claim=table["claim"] + f" ({view})"))
    return pd.concat(tables, ignore_index=True)


def figure3_values(finals: pd.DataFrame, shared: Mapping[str, float]) -> dict[tuple[str, str], Measured]:
    """``{(optimizer, setting): Measured}``: the adaptive methods at the shared lr's three settings."""
    present = [o for o in ADAPTIVE if o in set(finals.optimizer)]
    settings = ("smaller", "default", "larger")
    return {(o, s): sweeps.measured(finals, o, shared[s]) for s in settings for o in present}


def figure3_claims(values: Mapping[tuple[str, str], Measured], *, scale: str) -> pd.DataFrame:
    """Figure 3's verdicts: the paper's claims, and (the book's) Figure 1's ordering at the other rates."""
    name = optim.LABELS
    labels = {f"{o}|{s}": f"{name.get(o, o)} ({s} lr)" for o, s in values}
    flat = {f"{o}|{s}": v for (o, s), v in values.items()}
    opts = list(dict.fromkeys(o for o, _ in values))
    pairs = [(f"{name.get(o, o)} is worse at the smaller lr", f"{o}|default", f"{o}|smaller") for o in opts]
    pairs += [
        ("Adam improves at the larger lr", "adam|larger", "adam|default"),
        ("Rotated Adam gets worse at the larger lr", "rotated_adam|default", "rotated_adam|larger"),
    ]
    claims = [Claim(text, a, b, _CURVES, "Figure 3") for text, a, b in pairs]
    orders = [
        (f"Figure 1's ordering at the {s} lr: Adam beats {name[o]}", f"adam|{s}", f"{o}|{s}")
        for s in ("smaller", "larger")
        for o in ("adasgd", "rotated_adam")
    ]
    stated = "not stated (the paper shows the curves)"
    book = [Claim(text, a, b, stated, "Figure 3", BOOK) for text, a, b in orders]
    table = claims_table(flat, claims, scale=scale, labels=labels)
    failed = [k for k, v in values.items() if math.isinf(v.value)]
    ours = ", ".join(f"{name.get(o, o)} ({s} lr)" for o, s in failed) or "no run diverged"
    claim, rule = "One run fails completely (diverges)", "any measuring seed diverged"
    paper = "stated (probably AdaSGD at the larger lr)"
    row = verdict_row(
        claim, all_hold([len(failed) > 0]), ours=ours, scale=scale, paper=paper, rule=rule, where="Figure 3"
    )
    extra = claims_table(flat, book, scale=scale, labels=labels)
    return pd.concat([table, pd.DataFrame([row]), extra], ignore_index=True)


def figure1_tables(runs: LMRuns, *, scale: str) -> dict[str, pd.DataFrame]:
    """The tables a Figure 1 page shows: finals, curves, tuned, extensions, shared, verdicts."""
    measuring = sweeps.measuring(runs.finals)
    cols = ["run", "optimizer", "lr", "seed", "iter", "train_loss", "val_loss"]
    curves = runs.metrics[runs.metrics.run.isin(measuring.run)][[c for c in cols if c in runs.metrics]]
    points = {o: (o, lr) for o, lr in runs.sweep.best_lr.items()}
    tuned = sweeps.seed_table(runs.finals, points)
    tuned["val"] = sweeps.seed_table(runs.finals, points, "final_val").text.to_numpy()
    tuned["on edge"] = tuned.optimizer.isin(runs.sweep.on_edge)
    ext = pd.DataFrame(runs.sweep.extensions, columns=["optimizer", "side", "lr", "round"])
    shared = pd.DataFrame([{"setting": k, "lr": v} for k, v in runs.shared.items()])
    verdicts = figure1_claims(runs, scale=scale).assign(page="gpt2_figure1")
    return dict(
        finals=runs.finals, curves=curves, tuned=tuned, extensions=ext, shared=shared, verdicts=verdicts
    )


def show_figure1(tables: Mapping[str, pd.DataFrame], *, scale: str, what: str) -> None:
    """Render a Figure 1 page's results, live or published (``what`` names the setup)."""
    import matplotlib.pyplot as plt  # plotting only: the studies' numbers never need matplotlib

    labels = optim.LABELS
    finals, tuned = tables["finals"], tables["tuned"]
    best = dict(zip(tuned.optimizer, tuned.lr, strict=False))
    n_seeds = int(tuned.n_seeds.min())
    tune_seed = int(finals[~finals.measuring.astype(bool)].seed.min())
    fig, ax = plt.subplots(figsize=(7.0, 4.0))
    sweeps.plot_sweep(ax, finals, labels=labels, best_lr=best)
    ax.set_ylabel("final training loss (nats/token)")
    sweeps.show_with_legend(
        fig,
        ax,
        f"Learning-rate sweep at scale {scale} ({what}): final training loss against peak lr, one line "
        f"per optimizer (tuning seed {tune_seed}); bars: mean ± std over the {n_seeds} measuring seeds; "
        "×: diverged; dotted: tuned lr. The paper runs the adaptive methods at one shared lr and tunes "
        "only SGD.",
    )
    shown = tuned.assign(optimizer=tuned.optimizer.map(labels))
    names = {"lr": "tuned peak lr", "text": "final train loss (mean ± std)"}
    names |= {"val": "final val loss (mean ± std)", "n_seeds": "measuring seeds"}
    names["on edge"] = "optimum on a grid edge"
    report.table(
        shown[["optimizer", *names]].rename(columns=names),
        f"Each optimizer at its own tuned lr, scale {scale}, over the measuring seeds (the tuning seed "
        "only picks the lr); the paper's final losses are NOT RECOVERED.",
    )
    curves = tables["curves"]
    fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.6), sharey=True)
    pts = {o: (o, lr) for o, lr in best.items()}
    sweeps.plot_curves(axes[0], curves, pts, labels=labels, smooth=max(1, int(curves.iter.max()) // 50))
    sweeps.plot_curves(axes[1], curves, pts, labels=labels, value="val_loss")
    lo = float(finals[["final", "final_val"]].replace(float("inf"), float("nan")).min().min())
    axes[0].set(ylim=(lo - 0.1, lo + 1.5), ylabel="loss (nats/token)", title="training loss")
    axes[1].set(ylabel="", title="validation loss")
    sweeps.show_with_legend(
        fig,
        axes[0],
        f"Figure 1 at scale {scale} ({what}): loss curves at each optimizer's tuned lr, mean over "
        f"{n_seeds} measuring seeds with a ± std band. The paper: Adam fastest, then AdaSGD, rotated "
        "Adam much worse, SGD slowest.",
    )
