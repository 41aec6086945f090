r"""Section 4.3 (ResNet18 on CIFAR-10): Table 3's tuned, seeded runs, Figure 4, Tables 3-4 claims."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from adamlinf import launch as _launch
from adamlinf import optim, report
from adamlinf.data import images as _images
from adamlinf.studies import hessian_tables, sweeps
from adamlinf.studies.verdicts import Claim, Measured, claims_table

#: The paper's "training loss" Table 3 ranks by: the loss on a fixed augmented training subset at the end.
METRIC = "train_eval_loss"

#: The paper's order of the optimizers in Table 3 and Figure 4.
PAPER_ORDER = ("sgd", "adasgd", "adam", "rotated_adam", "blockwise_adam_tensor")

_STATED = "stated; values NOT RECOVERED"


def _in_paper_order(optimizers) -> list[str]:
    return sorted(optimizers, key=lambda o: PAPER_ORDER.index(o) if o in PAPER_ORDER else 99)


def resolve_source(source: str) -> str:
    """The data source: ``"auto"`` is ``"cifar10"`` when its files are present, else ``"digits"``."""
    if source != "auto":
        return source
    try:
        _images.check_cifar10_files(_images.data_root(), verify_md5=False)
    except (FileNotFoundError, OSError):
        return "digits"
    return "cifar10"


#: The fields of :func:`adamlinf.launch.image_spec`, in its order of old (a spec's key order is kept).
_SPEC_FIELDS = (
    "source batch_size epochs width blocks image_size eval_batch_size data_seed evals_per_epoch betas "
    "momentum schedule grad_clip seed device checkpoint_interval checkpoint_minutes progress"
).split()


def base_spec(p: Mapping, batch_size: int) -> dict:
    """The ResNet training spec of a Table 3 parameter set ``p`` at one batch size."""
    source = resolve_source(p["data_source"])
    derived = {"source": source, "batch_size": batch_size, "data_seed": p["seed"], "betas": list(p["betas"])}
    derived |= {"image_size": p["image_size"] if source == "digits" else None, "grad_clip": None}
    derived["progress"] = False
    return _launch.image_spec(**{k: derived[k] if k in derived else p[k] for k in _SPEC_FIELDS})


@dataclass
class ImageRuns:
    """Everything :func:`table3_runs` trained: sweeps per batch size, metrics, finals, seconds."""

    sweeps: dict[int, sweeps.Sweep]
    metrics: pd.DataFrame
    finals: pd.DataFrame
    wall_s: float
    run_s: float = 0.0


def setup_text(p: Mapping) -> str:
    """The setup in a few words, e.g. ``"digits 16×16 stand-in (not CIFAR-10), ResNet width 8, 3 epochs"``."""
    source = resolve_source(p["data_source"])
    size = f"{p['image_size']}×{p['image_size']}"
    data = "CIFAR-10" if source == "cifar10" else f"{source} {size} stand-in (not CIFAR-10)"
    model = f"ResNet width {p['width']}"
    if (p["width"], list(p["blocks"])) == (64, [2, 2, 2, 2]):
        model = "ResNet18"
    return f"{data}, {model}, {p['epochs']} epochs"


def _finals(metrics: pd.DataFrame, runs: sweeps.RunCollector) -> pd.DataFrame:
    out = sweeps.final_metrics(metrics, METRIC, window=1)
    extra = metrics.groupby("run", sort=False)[["batch_size"]].first().reset_index()
    accs = metrics.dropna(subset=["test_acc"]).groupby("run").last()[["test_loss", "test_acc"]].reset_index()
    out = out.merge(extra, on="run").merge(accs, on="run", how="left")
    out = out.rename(columns={f"final_{METRIC}": "final"})
    return runs.mark(out.astype({"seed": int, "batch_size": int}))


def table3_runs(p: Mapping, root: str | Path) -> ImageRuns:
    """Train Table 3's protocol: per batch size, tuned grids, then the measuring seeds at each best lr."""
    runs = sweeps.RunCollector(p, root, threads_per_worker=p["threads_per_worker"])
    tune_seed = runs.tune_seed
    bases = {bs: base_spec(p, bs) for bs in p["batch_sizes"]}

    def specs(points, seeds) -> dict:  # {run name: spec} of each (batch size, optimizer, lr) and seed
        return {
            _launch.run_name(o, lr, f"bs{bs}_{{optimizer}}_lr{{lr:.2e}}_s{s}"): _launch.with_train(
                sweeps.with_seed(bases[bs], s), optimizer=o, lr=lr
            )
            for bs, o, lr in points
            for s in seeds
        }

    out = {}
    for bs in p["batch_sizes"]:

        def evaluate(grids: dict, bs=bs) -> pd.DataFrame:
            points = [(bs, o, lr) for o, lrs in grids.items() for lr in lrs]
            return _finals(runs.train(specs(points, [tune_seed])), runs)

        grids = {o: list(p["sgd_lrs"] if o == "sgd" else p["adaptive_lrs"]) for o in p["optimizers"]}
        out[int(bs)] = sweeps.tune_grid(grids, evaluate, max_extensions=p["max_extensions"], seed=tune_seed)
    runs.train(specs([(bs, o, lr) for bs, sw in out.items() for o, lr in sw.best_lr.items()], runs.seeds))
    metrics = runs.metrics()
    wall = runs.wall_s()
    return ImageRuns(out, metrics, _finals(metrics, runs), wall, runs.run_s())


def tuned_table(runs: ImageRuns) -> pd.DataFrame:
    """Per (batch size, optimizer), paper's order: tuned lr, loss, edge flag, ``run`` (Table 4 reads it)."""
    rows = []
    for bs, sw in runs.sweeps.items():
        f = sweeps.measuring(runs.finals[runs.finals.batch_size == bs])
        for opt in _in_paper_order(sw.best_lr):
            lr = sw.best_lr[opt]
            m = sweeps.measured(f, opt, lr)
            g = f[(f.optimizer == opt) & np.isclose(f.lr, lr)]
            row = dict(batch_size=bs, optimizer=opt, lr=lr, mean=m.value, std=m.spread, n_seeds=m.n)
            row.update(test_acc=float(g.test_acc.mean()), run=g[g.seed == g.seed.min()].run.iloc[0])
            rows.append({**row, "on edge": opt in sw.on_edge})
    out = pd.DataFrame(rows)
    out["text"] = sweeps.seed_texts([Measured(r.mean, r.std, int(r.n_seeds)) for r in out.itertuples()])
    return out


def measured_of(finals: pd.DataFrame, tuned: pd.DataFrame, batch_size: int) -> dict[str, Measured]:
    """Final training loss over seeds of each optimizer at its tuned lr at ``batch_size``."""
    f = finals[finals.batch_size == batch_size]
    t = tuned[tuned.batch_size == batch_size]
    return {o: sweeps.measured(f, o, lr) for o, lr in zip(t.optimizer, t.lr, strict=False)}


def table3_claims(finals: pd.DataFrame, tuned: pd.DataFrame, *, scale: str, data: str) -> pd.DataFrame:
    """Table 3's verdicts per batch size: Adam's tuned loss below SGD's, AdaSGD's, rotated Adam's."""
    tables = []
    for bs in sorted(tuned.batch_size.unique()):
        values = measured_of(finals, tuned, bs)
        claims = [
            Claim(f"Adam beats {optim.LABELS[o]} (batch {bs}, {data})", "adam", o, _STATED, "Table 3")
            for o in ("sgd", "adasgd", "rotated_adam")
        ]
        tables.append(claims_table(values, claims, scale=scale, labels=optim.LABELS, page="resnet_table3"))
    return pd.concat(tables, ignore_index=True)


def data_name(source: str) -> str:
    """A data source in a few words for a claim: ``"CIFAR-10"`` or ``"digits stand-in"``."""
    return "CIFAR-10" if source == "cifar10" else f"{source} stand-in"


def curves_at(metrics: pd.DataFrame, tuned: pd.DataFrame, batch_size: int) -> pd.DataFrame:
    """The evaluation rows of the tuned runs at ``batch_size`` (measuring seeds), with ``budget``."""
    t = tuned[tuned.batch_size == batch_size]
    metrics = sweeps.measuring(metrics)
    at_batch_size = (metrics.batch_size == batch_size).to_numpy()
    keep = np.zeros(len(metrics), dtype=bool)
    for o, lr in zip(t.optimizer, t.lr, strict=False):
        keep |= (metrics.optimizer == o).to_numpy() & np.isclose(metrics.lr, lr) & at_batch_size
    cols = ["run", "optimizer", "lr", "seed", "iter", "max_iters", METRIC, "test_loss", "test_acc"]
    out = metrics[keep & metrics[METRIC].notna().to_numpy()][cols]
    return out.assign(budget=out["iter"] / out["max_iters"])


def figure4_claims(curves: pd.DataFrame, *, scale: str, batch_size: int, data: str) -> pd.DataFrame:
    """Figure 4's verdicts: Adam's training loss lowest at half the budget and at the end."""
    tables = []
    for when, frac in (("half the budget", 0.5), ("the end", 1.0)):
        values = {}
        for o, g in curves.groupby("optimizer"):
            at = g.loc[(g.budget - frac).abs().groupby(g.seed).idxmin()]  # per seed: the nearest evaluation
            values[o] = Measured.from_seeds(at[METRIC].fillna(np.inf))
        text = "Adam's training loss is lower than {}'s at " + when
        others = [o for o in ("sgd", "adasgd", "rotated_adam") if o in values]
        claims = [Claim(text.format(optim.LABELS[o]), "adam", o, _STATED, "Figure 4") for o in others]
        tables.append(claims_table(values, claims, scale=scale, labels=optim.LABELS, page="resnet_figure4"))
    out = pd.concat(tables, ignore_index=True)
    return out.assign(claim=out["claim"] + f" (batch {batch_size}, {data})")


def table4_claims(tidy: pd.DataFrame, losses: Mapping, *, scale: str, data: str) -> pd.DataFrame:
    """Table 4's verdicts (``hessian_tables.norm_claims``) with Table 3's losses at the page's batch size."""
    out = hessian_tables.norm_claims(tidy, losses, scale=scale, where="Table 4", page="resnet_table4")
    return out.assign(claim=out["claim"] + f" ({data})")


def show_table3(finals: pd.DataFrame, tuned: pd.DataFrame, *, scale: str, what: str) -> None:
    """Render Table 3 (tuned loss per optimizer and batch size, mean ± std) and the sweep figure."""
    import matplotlib.pyplot as plt  # plotting only

    order = list(dict.fromkeys(tuned.optimizer))  # the paper's order (tuned_table)
    shown = tuned.pivot(index="optimizer", columns="batch_size", values=["text", "lr"]).reindex(order)
    headers = {"text": "final train loss", "lr": "tuned peak lr"}
    shown.columns = [f"{headers[a]}, batch {b}" for a, b in shown.columns]
    shown.index = [optim.LABELS.get(o, o) for o in shown.index]
    n_seeds = int(tuned.n_seeds.min())
    report.table(
        shown.rename_axis("optimizer").reset_index(),
        f"Table 3 at scale {scale} ({what}): final training loss at each optimizer's tuned lr, mean ± "
        f"std over {n_seeds} measuring seeds (the tuning seed only picks the lr). The paper's numbers "
        "are NOT RECOVERED.",
    )
    sizes = sorted(finals.batch_size.unique())
    fig, axes = plt.subplots(1, len(sizes), figsize=(7.5, 3.6), sharey=True, squeeze=False)
    for ax, bs in zip(axes[0], sizes, strict=False):
        best = tuned[tuned.batch_size == bs].set_index("optimizer").lr.to_dict()
        sweeps.plot_sweep(ax, finals[finals.batch_size == bs], labels=optim.LABELS, best_lr=best)
        ax.set(yscale="log", ylabel="final training loss" if ax is axes[0][0] else "")
        ax.set_title(f"batch {bs}", fontsize=10)
    sweeps.show_with_legend(
        fig,
        axes[0][0],
        f"Learning-rate sweep of Table 3 at scale {scale} ({what}): final training loss against peak "
        f"lr per optimizer (tuning seed), mean ± std bars over {n_seeds} measuring seeds at the tuned "
        "lr, × diverged. The paper: Adam lowest at every batch size.",
    )


def show_figure4(curves: pd.DataFrame, *, scale: str, batch_size: int, what: str) -> None:
    """Render Figure 4: training and test loss of the tuned runs, mean over seeds with ± std bands."""
    import matplotlib.pyplot as plt  # plotting only

    fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.6))
    for ax, col, title in zip(axes, (METRIC, "test_loss"), ("training loss", "test loss"), strict=False):
        for k, o in enumerate(_in_paper_order(set(curves.optimizer))):
            per = curves[curves.optimizer == o].pivot_table(index="budget", columns="seed", values=col)
            m, s = per.mean(axis=1), per.std(axis=1).fillna(0)
            st = sweeps.style(o, k)
            ax.plot(m.index, m.values, ms=4, label=optim.LABELS.get(o, o), **st)
            ax.fill_between(m.index, m - s, m + s, color=st["color"], alpha=0.2, lw=0)
        ax.set(yscale="log", xlabel="fraction of the training budget", title=title)
    n_seeds = int(curves.groupby("optimizer").seed.nunique().min())
    sweeps.show_with_legend(
        fig,
        axes[0],
        f"Figure 4 at scale {scale} ({what}, batch {batch_size}): the tuned runs, mean over "
        f"{n_seeds} measuring seeds with a ± std band. The paper: Adam optimizes fastest; rotated Adam "
        "is clearly slower.",
    )
