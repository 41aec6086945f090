r"""Section 4.2 (GPT-2): Figure 1's tuned, seeded runs, Figure 3's shared-lr view, their claims.

The tuned and seeded runs of Figure 1, the shared-lr view of Figure 3, and the claims of Figure 1,
Figure 3 and Table 2.

:func:`figure1_runs` runs the protocol of :mod:`adamlinf.studies.sweeps` on a GPT: a half-decade
peak-lr grid per optimizer (the adaptive methods share one grid, SGD has its own), extended until
every optimum is interior, then extra seeds at each optimizer's best lr and at the paper's shared lr
:math:`\eta` and its neighbours :math:`\eta/\sqrt{10}`, :math:`\eta\sqrt{10}` (Figure 3's smaller and
larger rates). Runs live in ``root/<optimizer>_lr<lr>_s<seed>/``; a re-execution reuses complete
runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from adamlinf import report
from adamlinf import runs as _runs
from adamlinf.studies import sweeps
from adamlinf.studies.hessian_tables import norm_values
from adamlinf.studies.sweeps import with_seed
from adamlinf.studies.verdicts import Claim, Measured, claims_table, verdict_row

#: The optimizers of Figure 1 that share the paper's single peak lr.
ADAPTIVE = ("adam", "adasgd", "rotated_adam")

#: Figure 1's claims (paper text; the final losses are NOT RECOVERED).
FIGURE1_CLAIMS = (
    Claim("Adam converges faster than AdaSGD", "adam", "adasgd", "Figure 1"),
    Claim("Adam beats rotated Adam", "adam", "rotated_adam", "Figure 1"),
    Claim("AdaSGD beats rotated Adam (rotated Adam 'much worse')", "adasgd", "rotated_adam", "Figure 1"),
    Claim("SGD is slowest: slower than Adam", "adam", "sgd", "Figure 1"),
    Claim("SGD is slowest: slower than AdaSGD", "adasgd", "sgd", "Figure 1"),
    Claim("SGD is slowest: slower than rotated Adam", "rotated_adam", "sgd", "Figure 1"),
)


def base_spec(p: Mapping) -> dict:
    """The GPT training spec of a Figure 1 parameter set ``p`` (the notebook's parameters)."""
    accum = _runs.grad_accum_steps(p["global_batch"], p["batch_size"], p["nproc_per_node"])
    return _runs.lm_spec(
        dataset=p["dataset"],
        vocab_size=p["vocab_size"],
        n_layer=p["n_layer"],
        n_head=p["n_head"],
        n_embd=p["n_embd"],
        block_size=p["block_size"],
        batch_size=p["batch_size"],
        eval_iters=p["eval_iters"],
        lr=p["lr"],
        min_lr=p["min_lr"],
        warmup_iters=p["warmup_iters"],
        max_iters=p["max_iters"],
        grad_accum=accum,
        betas=list(p["betas"]),
        eps=p["eps"],
        momentum=p["momentum"],
        grad_clip=p["grad_clip"],
        eval_interval=p["eval_interval"],
        dtype=p["dtype"],
        compile=p["compile"],
        device=p["device"],
        seed=p["seed"],
        rotation_k=p["rotation_k"],
        rotation_seed=p["seed"],
        checkpoint_interval=p["checkpoint_interval"],
        checkpoint_minutes=p["checkpoint_minutes"],
        progress=False,
    )


def _name(opt: str, lr: float, seed: int) -> str:
    return f"{opt}_lr{lr:.2e}_s{seed}".replace("+", "")


def shared_lrs(p: Mapping, grid: list[float]) -> dict[str, float]:
    """The paper's shared peak lr and Figure 3's smaller/larger rates, as values of ``grid``."""
    eta = sweeps.nearest(grid, p["lr"])
    return {
        "smaller": sweeps.nearest(grid, eta / sweeps.HALF_DECADE),
        "default": eta,
        "larger": sweeps.nearest(grid, eta * sweeps.HALF_DECADE),
    }


@dataclass
class LMRuns:
    """Everything :func:`figure1_runs` trained.

    Attributes:
        sweep: The tuned grids (:class:`~adamlinf.studies.sweeps.Sweep`).
        metrics: Tidy metrics of every run (``seed`` column included).
        finals: One row per run: ``final`` (smoothed final training loss), ``final_val``.
        shared: The paper's shared lr and Figure 3's smaller/larger rates.
        wall_s: Training wall time in this execution.
        run_s: Training wall time of all its runs, summed over runs, whenever they were trained.
    """

    sweep: sweeps.Sweep
    metrics: pd.DataFrame
    finals: pd.DataFrame
    shared: dict[str, float]
    wall_s: float
    run_s: float = 0.0

    def tuned(self) -> dict[str, Measured]:
        """Final training loss at each optimizer's best lr, over seeds."""
        return {o: sweeps.measured(self.finals, o, lr) for o, lr in self.sweep.best_lr.items()}


def _finals(metrics: pd.DataFrame) -> pd.DataFrame:
    tr = sweeps.final_metrics(metrics, "train_loss", by=("run",))
    val = sweeps.final_metrics(metrics, "val_loss", window=1, by=("run",))[["run", "final_val_loss"]]
    out = tr.merge(val, on="run").rename(columns={"final_train_loss": "final", "final_val_loss": "final_val"})
    return out.astype({"seed": int})


def figure1_runs(p: Mapping, root: str | Path, *, max_extensions: int = 3) -> LMRuns:
    """Train Figure 1's protocol: tuned grids, seeds at the tuned and the shared learning rates.

    Args:
        p: The notebook's parameters: the GPT and training fields of :func:`base_spec`, plus
            ``optimizers``, ``extra_optimizers``, ``adaptive_lrs``, ``sgd_lrs``, ``seeds``,
            ``workers``, ``nproc_per_node``.
        root: Where the runs live.
        max_extensions: The most values added to one optimizer's grid.

    Returns:
        An :class:`LMRuns`.
    """
    runs = sweeps.RunCollector(p, root)
    base = base_spec(p)
    adaptive = [*p["optimizers"], *p.get("extra_optimizers", [])]
    grids = {**{o: list(p["adaptive_lrs"]) for o in adaptive}, "sgd": list(p["sgd_lrs"])}
    seed0, extra_seeds = runs.seed0, runs.extra_seeds

    def evaluate(grids_now: dict) -> pd.DataFrame:
        specs = {
            _name(o, lr, seed0): _runs.with_train(
                with_seed(base, seed0), optimizer=o, lr=lr, min_lr=lr * p["min_lr"] / p["lr"]
            )
            for o, lrs in grids_now.items()
            for lr in lrs
        }
        return _finals(runs.train(specs))

    sweep = sweeps.tune_grid(grids, evaluate, max_extensions=max_extensions)
    shared = shared_lrs(p, sweep.grids[adaptive[0]])
    sgd_best = sweep.best_lr["sgd"]
    sgd_slice = [
        sweeps.nearest(sweep.grids["sgd"], sgd_best * f)
        for f in (1 / sweeps.HALF_DECADE, 1, sweeps.HALF_DECADE)
    ]
    points = sweeps.seeded_points(
        sweep.best_lr,
        [(o, lr) for o in adaptive for lr in shared.values()] + [("sgd", lr) for lr in sgd_slice],
    )
    specs = {
        _name(o, lr, s): _runs.with_train(
            with_seed(base, s), optimizer=o, lr=lr, min_lr=lr * p["min_lr"] / p["lr"]
        )
        for o, lr in points
        for s in extra_seeds
    }
    if specs:
        runs.train(specs)
    metrics = runs.metrics()
    wall = runs.wall_s()
    return LMRuns(sweep, metrics, _finals(metrics), shared, wall, runs.run_s())


def figure1_claims(runs: LMRuns, *, scale: str) -> pd.DataFrame:
    """The verdicts of Figure 1's claims, in two views.

    Each optimizer at its own tuned lr, and the adaptive methods at the paper's shared lr (SGD at
    its tuned lr in both views).
    """
    labels = dict(_runs.OPTIMIZER_LABELS)
    tuned = runs.tuned()
    eta = runs.shared["default"]
    shared = {o: sweeps.measured(runs.finals, o, eta) for o in ADAPTIVE if o in tuned}
    shared["sgd"] = tuned["sgd"]
    a = _claims(tuned, FIGURE1_CLAIMS, scale, labels, "each optimizer at its tuned lr")
    b = _claims(shared, FIGURE1_CLAIMS, scale, labels, f"adaptive methods at the shared lr {eta:.2g}")
    return pd.concat([a, b], ignore_index=True)


def _claims(values, claims, scale, labels, view) -> pd.DataFrame:

    table = claims_table(values, list(claims), scale=scale, labels=labels)
    table["claim"] = table["claim"] + f" ({view})"
    return table


def figure3_values(
    finals: pd.DataFrame, shared: Mapping[str, float], sgd_best: float
) -> dict[tuple[str, str], Measured]:
    """Final training loss of each Figure 3 run: ``{(optimizer, setting): Measured}``.

    Args:
        finals: Per-run finals of Figure 1 (:class:`LMRuns` ``finals``).
        shared: The shared lr's slices ``{"smaller": ..., "default": ..., "larger": ...}``.
        sgd_best: SGD's tuned lr; its slices are the neighbouring grid values.

    Returns:
        The adaptive methods at the shared lr's slices, SGD at its tuned lr and its neighbours.
    """
    out = {}
    grid = sorted(finals[finals.optimizer == "sgd"].lr.unique())
    sgd = {
        "smaller": sweeps.nearest(grid, sgd_best / sweeps.HALF_DECADE),
        "default": sgd_best,
        "larger": sweeps.nearest(grid, sgd_best * sweeps.HALF_DECADE),
    }
    present = set(finals.optimizer)
    for setting in ("smaller", "default", "larger"):
        for o in ADAPTIVE:
            if o in present:
                out[(o, setting)] = sweeps.measured(finals, o, shared[setting])
        out[("sgd", setting)] = sweeps.measured(finals, "sgd", sgd[setting])
    return out


def figure3_claims(values: Mapping[tuple[str, str], Measured], *, scale: str) -> pd.DataFrame:
    """The verdicts of Figure 3's claims.

    Every optimizer is worse at the smaller lr; Adam better and rotated Adam worse at the larger
    one; one run fails completely.
    """
    labels = {f"{o}|{s}": f"{_runs.OPTIMIZER_LABELS.get(o, o)} ({s} lr)" for o, s in values}
    flat = {f"{o}|{s}": v for (o, s), v in values.items()}
    opts = list(dict.fromkeys(o for o, _ in values))
    claims = [
        Claim(
            f"{_runs.OPTIMIZER_LABELS.get(o, o)} is worse at the smaller lr",
            f"{o}|default",
            f"{o}|smaller",
            "Figure 3",
        )
        for o in opts
    ]
    claims += [
        Claim("Adam improves at the larger lr", "adam|larger", "adam|default", "Figure 3"),
        Claim(
            "Rotated Adam gets worse at the larger lr",
            "rotated_adam|default",
            "rotated_adam|larger",
            "Figure 3",
        ),
    ]
    table = claims_table(flat, claims, scale=scale, labels=labels)
    failed = [k for k, v in values.items() if math.isinf(v.value)]
    row = verdict_row(
        "One run fails completely (diverges)",
        "holds" if failed else "fails",
        ours=", ".join(f"{o} ({s})" for o, s in failed) or "no run diverged",
        scale=scale,
        paper="Figure 3",
        rule="any seed diverged",
    )
    return pd.concat([table, pd.DataFrame([row])], ignore_index=True)


def table2_claims(tidy: pd.DataFrame, losses: Mapping[str, Measured], *, scale: str) -> pd.DataFrame:
    """The verdicts of Table 2's claims, norms compared outside their error bands.

    Args:
        tidy: :func:`adamlinf.studies.hessian_tables.hessian_table` output (same-checkpoint rows).
        losses: Tuned final training loss per optimizer (Figure 1).
        scale: The scale.

    Returns:
        The verdict table: Adam's ‖H‖₁,₁/d below rotated Adam's ‖RᵀHR‖₁,₁/d (each at its own checkpoint
        and, the same-checkpoint comparison, at Adam's and at rotated Adam's weights), Adam's ‖H‖₁,₁/d
        below AdaSGD's ‖H‖₂, and the loss orders these predict.
    """
    v = {**norm_values(tidy), **{f"loss@{k}": m for k, m in losses.items()}}
    labels = {
        "l11:H@adam": "‖H‖₁,₁/d (Adam's checkpoint)",
        "l11:RHR@rotated_adam": "‖RᵀHR‖₁,₁/d (rotated Adam's)",
        "l11:RHR@adam": "‖RᵀHR‖₁,₁/d (Adam's checkpoint)",
        "l11:H@rotated_adam": "‖H‖₁,₁/d (rotated Adam's)",
        "spec@adasgd": "‖H‖₂ (AdaSGD's)",
        "spec@adam": "‖H‖₂ (Adam's)",
        "loss@adam": "Adam",
        "loss@rotated_adam": "rotated Adam",
        "loss@adasgd": "AdaSGD",
    }
    claims = [
        Claim(
            "‖H‖₁,₁/d (Adam) < ‖RᵀHR‖₁,₁/d (rotated Adam), each at its own checkpoint",
            "l11:H@adam",
            "l11:RHR@rotated_adam",
            "Table 2",
        ),
        Claim(
            "same checkpoint (Adam's weights): ‖H‖₁,₁/d < ‖RᵀHR‖₁,₁/d",
            "l11:H@adam",
            "l11:RHR@adam",
            "Table 2 (our addition)",
        ),
        Claim(
            "same checkpoint (rotated Adam's weights): ‖H‖₁,₁/d < ‖RᵀHR‖₁,₁/d",
            "l11:H@rotated_adam",
            "l11:RHR@rotated_adam",
            "Table 2 (our addition)",
        ),
        Claim("‖H‖₁,₁/d (Adam) < ‖H‖₂ (AdaSGD)", "l11:H@adam", "spec@adasgd", "Table 2"),
        Claim(
            "the smaller norm is faster: Adam's final loss < rotated Adam's",
            "loss@adam",
            "loss@rotated_adam",
            "Table 2",
        ),
        Claim(
            "the smaller norm is faster: Adam's final loss < AdaSGD's", "loss@adam", "loss@adasgd", "Table 2"
        ),
    ]
    return claims_table(v, claims, scale=scale, labels=labels, page="gpt2_table2")


# --------------------------------------------------------------------------------------------
# tables and figures of the pages (the same code renders live ci and published gpu results)
# --------------------------------------------------------------------------------------------
def figure1_tables(runs: LMRuns, *, scale: str) -> dict[str, pd.DataFrame]:
    """The tidy tables a Figure 1 page shows.

    ``finals`` (one row per run), ``curves`` (training and validation loss of the seeded runs),
    ``tuned`` (best lr per optimizer, over seeds), ``extensions``, ``shared`` and ``verdicts``.
    """
    seeded = runs.finals.groupby(["optimizer", "lr"]).seed.transform("nunique") > 1
    keep = runs.finals[seeded].run
    cols = [
        c for c in ("run", "optimizer", "lr", "seed", "iter", "train_loss", "val_loss") if c in runs.metrics
    ]
    curves = runs.metrics[runs.metrics.run.isin(keep)][cols]
    tuned = sweeps.seed_table(runs.finals, {o: (o, lr) for o, lr in runs.sweep.best_lr.items()})
    tuned["val"] = [
        sweeps.measured(runs.finals, o, lr, "final_val").text(4) for o, lr in runs.sweep.best_lr.items()
    ]
    tuned["on edge"] = tuned.optimizer.isin(runs.sweep.on_edge)
    ext = pd.DataFrame(runs.sweep.extensions, columns=["optimizer", "side", "lr", "round"])
    shared = pd.DataFrame([{"setting": k, "lr": v} for k, v in runs.shared.items()])
    return {
        "finals": runs.finals,
        "curves": curves,
        "tuned": tuned,
        "extensions": ext,
        "shared": shared,
        "verdicts": figure1_claims(runs, scale=scale).assign(page="gpt2_figure1"),
    }


COLORS = {
    "adam": "C0",
    "adasgd": "C1",
    "rotated_adam": "C3",
    "sgd": "C2",
    "blockwise_adam_tensor": "C4",
    "blockwise_adam_head": "C5",
}


def show_figure1(tables: Mapping[str, pd.DataFrame], *, scale: str, what: str) -> None:
    """Render a Figure 1 page's results (live or published).

    The sweep figure, the tuned table and the loss curves with seed bands; ``what`` names the
    setup for the captions.
    """
    import matplotlib.pyplot as plt  # plotting only: the studies' numbers never need matplotlib

    labels = dict(_runs.OPTIMIZER_LABELS)
    finals, tuned = tables["finals"], tables["tuned"]
    best = dict(zip(tuned.optimizer, tuned.lr, strict=False))
    fig, ax = plt.subplots(figsize=(7.0, 4.0))
    sweeps.plot_sweep(ax, finals, labels=labels, colors=COLORS, best_lr=best)
    ax.set_ylabel("final training loss (nats/token)")
    ax.legend()
    report.figure(
        fig,
        f"Learning-rate sweep at scale {scale} ({what}): final training loss against peak lr, "
        "one line per optimizer (seed 0); bars: mean ± std over seeds; ×: diverged; dotted: tuned lr. "
        "The paper runs the adaptive methods at one shared lr and tunes only SGD.",
    )
    shown = tuned.assign(optimizer=tuned.optimizer.map(labels))[
        ["optimizer", "lr", "text", "val", "n_seeds", "on edge"]
    ]
    report.table(
        shown.rename(
            columns={
                "lr": "tuned peak lr",
                "text": "final train loss (mean ± std)",
                "val": "final val loss",
                "n_seeds": "seeds",
            }
        ),
        f"Each optimizer at its own tuned lr, scale {scale}; the paper's final losses are NOT RECOVERED.",
    )
    curves = tables["curves"]
    fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.6), sharey=True)
    smooth = max(1, int(curves.iter.max()) // 50)
    pts = {o: (o, lr) for o, lr in best.items()}
    sweeps.plot_curves(axes[0], curves, pts, labels=labels, colors=COLORS, smooth=smooth)
    sweeps.plot_curves(axes[1], curves, pts, labels=labels, colors=COLORS, value="val_loss")
    finite = finals[["final", "final_val"]].replace(float("inf"), float("nan"))
    lo = float(finite.min().min())
    axes[0].set_ylim(lo - 0.1, lo + 1.5)
    axes[1].set_ylabel("")
    axes[0].set_title("training loss")
    axes[1].set_title("validation loss")
    axes[0].legend(fontsize=9)
    fig.tight_layout()
    report.figure(
        fig,
        f"Figure 1 at scale {scale} ({what}): loss curves at each optimizer's tuned lr, "
        "mean over seeds with a ± std band. The paper: Adam fastest, then AdaSGD, rotated Adam much "
        "worse, SGD slowest.",
    )
