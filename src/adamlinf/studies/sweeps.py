r"""The tuning protocol of the experiment chapters (Sections 4.2 and 4.3).

Per optimizer a grid of >= 4 peak lrs half a decade apart (:math:`\sqrt{10}`), extended past an edge
while the best lr is on it (:func:`tune_grid`). A *tuning seed* picks each best lr; the *measuring seeds*
(never the tuning seed: its winner's loss is biased down) are measured there (:func:`measured`). The
paper's one shared lr for the adaptive methods is a slice of the same grid.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from adamlinf import launch as _launch
from adamlinf import report, tune
from adamlinf import results as _results
from adamlinf.studies.verdicts import Measured, seed_texts

HALF_DECADE = tune.HALF_DECADE


def _window(n_rows: int, window: int | float) -> int:
    if isinstance(window, float) and 0 < window < 1:
        return max(1, int(round(window * n_rows)))
    if int(window) < 1:
        raise ValueError(f"window must be a positive int (rows) or a fraction in (0, 1), got {window}")
    return int(window)


def _diverged(g: pd.DataFrame) -> bool:
    """Whether the run ``g`` logged a non-finite loss (a NaN reads back from CSV as missing)."""
    loss_cols = [c for c in g.columns if c.endswith("_loss")]
    if not loss_cols:
        return False
    if np.isinf(g[loss_cols].to_numpy(dtype=float)).any():
        return True
    marker = next((c for c in ("lr_t", "iter_time") if c in g.columns), None)  # logged on training rows
    if marker is not None and "train_loss" in g.columns:
        train = g.loc[g[marker].notna(), "train_loss"].to_numpy(dtype=float)
        if len(train) and not np.isfinite(train).all():
            return True
    return not np.isfinite(g.iloc[-1][loss_cols].to_numpy(dtype=float)).any()


def final_metrics(df: pd.DataFrame, metric: str = "train_loss", *, window: float = 0.05) -> pd.DataFrame:
    """Per run: ``final_<metric>``, the mean of its last ``window`` (rows, or a share) or ``inf``."""
    if metric not in df.columns:
        raise ValueError(f"metric {metric!r} not in the metrics (columns: {list(df.columns)})")
    _window(1, window)
    rows = []
    for run, g in df.groupby("run", sort=False):
        g = g.sort_values("iter", kind="stable")
        logged = g[metric].dropna().to_numpy(dtype=float)
        last = logged[-_window(len(logged), window) :]
        bad = len(last) == 0 or not bool(np.all(np.isfinite(last))) or _diverged(g)
        row = {"run": run} | {col: g[col].iloc[0] for col in ("optimizer", "lr", "seed") if col in g.columns}
        row[f"final_{metric}"] = math.inf if bad else float(last.mean())
        rows.append(row | {"last_iter": int(g["iter"].max()), "diverged": bool(bad)})
    return pd.DataFrame(rows)


@dataclass
class Sweep:
    """:func:`tune_grid`'s grids, finals, tuned lrs, extensions, optimizers still on an edge, tuning seed."""

    grids: dict[str, list[float]]
    finals: pd.DataFrame
    best_lr: dict[str, float]
    extensions: list[dict] = field(default_factory=list)
    on_edge: list[str] = field(default_factory=list)
    tune_seed: int = 0

    def extension_text(self) -> str:
        """One line saying which grids were extended (or that none was)."""
        if not self.extensions:
            text = "no grid needed extending: every optimum was interior"
        else:
            parts = [f"{e['optimizer']} {e['side']}er to {e['lr']:.3g}" for e in self.extensions]
            text = f"{len(self.extensions)} grid extension(s): " + ", ".join(parts)
        if self.on_edge:
            text += "; still on an edge after the last extension: " + ", ".join(self.on_edge)
        return text


def tune_grid(
    grids: Mapping[str, Sequence[float]],
    evaluate: Callable[[dict[str, list[float]]], pd.DataFrame],
    *,
    max_extensions: int = 3,
    seed: int | None = None,
) -> Sweep:
    """Tune half-decade lr grids on ``seed`` (:func:`adamlinf.tune.search`); ``evaluate(grids) -> finals``."""
    grids = {opt: sorted(float(x) for x in lrs) for opt, lrs in grids.items()}
    for opt, lrs in grids.items():
        if len(lrs) < 4:
            raise ValueError(f"the grid of {opt!r} has {len(lrs)} values; the protocol needs >= 4")
    last = {"seed": seed}

    def scores(todo: dict[str, list[float]]) -> dict[str, dict[float, float]]:
        for opt, lrs in todo.items():
            grids[opt] = sorted({*grids[opt], *lrs})
        finals = evaluate({o: list(v) for o, v in grids.items()}).reset_index(drop=True)
        last["seed"] = int(finals.seed.min()) if seed is None else int(seed)
        last["finals"] = finals
        out = {}
        for opt, lrs in grids.items():
            g = finals[(finals.optimizer == opt) & (finals.seed == last["seed"])]
            have = dict(zip(g.lr.astype(float), g.final.astype(float), strict=True))
            out[opt] = {}
            for x in lrs:
                match = [v for k, v in have.items() if math.isclose(k, x, rel_tol=1e-6)]
                if not match:
                    raise ValueError(f"evaluate returned no seed-{last['seed']} run of {opt!r} at lr {x:g}")
                out[opt][x] = match[0]
        return out

    found = tune.search(scores, grids, digits=4, max_extensions=max_extensions)
    ext = [dict(optimizer=e["key"], side=e["side"], lr=e["lr"], round=e["round"]) for e in found.extensions]
    return Sweep(grids, last["finals"], found.best, ext, found.on_edge, last["seed"])


def measuring(finals: pd.DataFrame) -> pd.DataFrame:
    """The rows of the measuring seeds: all rows when ``finals`` has no ``measuring`` column."""
    return finals[finals["measuring"].astype(bool)] if "measuring" in finals.columns else finals


def measured(finals: pd.DataFrame, optimizer: str, lr: float, value: str = "final") -> Measured:
    """Mean ± std of the measuring seeds' (:func:`measuring`) ``value`` of ``optimizer`` at ``lr``."""
    rows = measuring(finals)
    g = rows[(rows.optimizer == optimizer) & np.isclose(rows.lr.astype(float), lr, rtol=1e-6)]
    if not len(g):
        raise ValueError(f"no measuring run of {optimizer!r} at lr {lr:g}")
    return Measured.from_seeds(g[value].astype(float))


def seed_table(finals: pd.DataFrame, points: Mapping[str, tuple], value: str = "final") -> pd.DataFrame:
    """Per point ``{key: (optimizer, lr)}``: ``mean``, ``std``, ``n_seeds``, ``text`` of measuring seeds."""
    values = [measured(finals, opt, lr, value) for opt, lr in points.values()]
    rows = [
        (key, opt, float(lr), m.value, m.spread, m.n)
        for (key, (opt, lr)), m in zip(points.items(), values, strict=True)
    ]
    out = pd.DataFrame(rows, columns=["key", "optimizer", "lr", "mean", "std", "n_seeds"])
    return out.assign(text=seed_texts(values))


def seeded_points(best_lr: Mapping[str, float], shared: Iterable = ()) -> list[tuple[str, float]]:
    """The (optimizer, lr) points that get extra seeds: each best lr, then the ``shared`` (optimizer, lr)."""
    out: list[tuple[str, float]] = []
    for opt, lr in [*best_lr.items(), *shared]:
        if not any(o == opt and math.isclose(x, lr, rel_tol=1e-6) for o, x in out):
            out.append((opt, float(lr)))
    return out


def nearest(lrs: Iterable[float], target: float) -> float:
    """The grid value closest to ``target`` on a log scale."""
    return float(min(lrs, key=lambda x: abs(math.log(x / target))))


def with_seed(spec: Mapping, seed: int) -> dict:
    """``spec`` at another seed: model init, data order and rotation all change with it."""
    out = _launch.with_train(spec, tags={"seed": int(seed)}, seed=int(seed), rotation_seed=int(seed))
    out["data"]["seed"] = int(seed)
    return out


class RunCollector:
    """Trains run specs into ``root`` (complete runs reused); ``p``: ``tune_seed``, ``seeds``, ``workers``."""

    def __init__(self, p: Mapping, root: str | Path, *, threads_per_worker: int | None = None):
        self.root = Path(root)
        self.tune_seed = int(p["tune_seed"])
        self.seeds = [int(s) for s in p["seeds"]]
        if not self.seeds or self.tune_seed in self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(
                f"seeds must be distinct measuring seeds without the tuning seed; got seeds={p['seeds']}, "
                f"tune_seed={p['tune_seed']}"
            )
        self.frames: dict[str, pd.DataFrame] = {}
        self._kw = {"nproc_per_node": p["nproc_per_node"], "workers": p["workers"]}
        self._kw["threads_per_worker"] = threads_per_worker
        self._t0 = time.perf_counter()

    def train(self, specs: Mapping[str, Mapping]) -> pd.DataFrame:
        """Run ``specs`` and return their tidy metrics (also kept in :attr:`frames`)."""
        m = _launch.run_specs(specs, self.root, verbose=False, progress=False, **self._kw)
        self.frames.update({name: g for name, g in m.groupby("run", sort=False)})
        return m

    def metrics(self) -> pd.DataFrame:
        """The metrics of every run trained so far, one frame, with the column ``measuring``."""
        return self.mark(pd.concat(list(self.frames.values()), ignore_index=True))

    def wall_s(self) -> float:
        """Seconds since the collector was made (this execution's cost)."""
        return time.perf_counter() - self._t0

    def run_s(self) -> float:
        """Training seconds of the collected runs, whenever trained (their completion records)."""
        records = [self.root / name / _launch.COMPLETE_FILE for name in self.frames]
        seconds = [float(json.loads(r.read_text()).get("wall_time_s", 0.0)) for r in records if r.exists()]
        return float(sum(seconds))

    def mark(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` with the column ``measuring``: whether a row's seed is a measuring seed."""
        return frame.assign(measuring=frame.seed.astype(int).isin(self.seeds))


#: One look per optimizer on every training figure (colour, line style and marker all differ).
STYLES = {
    "adam": {"color": "C0", "ls": "-", "marker": "o"},
    "adasgd": {"color": "C1", "ls": "--", "marker": "s"},
    "rotated_adam": {"color": "C3", "ls": "-.", "marker": "^"},
    "sgd": {"color": "C2", "ls": ":", "marker": "D"},
    "blockwise_adam_tensor": {"color": "C4", "ls": (0, (5, 1, 1, 1, 1, 1)), "marker": "v"},
    "blockwise_adam_head": {"color": "C5", "ls": (0, (1, 1)), "marker": "P"},
}


def style(key: str, k: int = 0) -> dict:
    """The line style of optimizer ``key`` (:data:`STYLES`; the ``k``-th default colour otherwise)."""
    return dict(STYLES.get(key, {"color": f"C{k}", "ls": "-", "marker": "o"}))


def show_with_legend(fig, ax, caption: str) -> None:
    """Lay out ``fig``, put one legend (of ``ax``) below it, and show it with ``caption``."""
    fig.tight_layout()
    handles, labels = ax.get_legend_handles_labels()
    where = dict(loc="upper center", bbox_to_anchor=(0.5, 0.0), frameon=False, fontsize=9)
    fig.legend(handles, labels, ncol=min(5, max(1, len(labels))), **where)
    report.figure(fig, caption)


def plot_sweep(
    ax, finals: pd.DataFrame, *, labels: Mapping[str, str], best_lr: Mapping[str, float] | None = None
) -> None:
    """Final loss against peak lr per optimizer (tuning seed); bars: measuring seeds, ×: a diverged run."""
    finite = finals[np.isfinite(finals.final.astype(float))]
    top = float(finite.final.max()) if len(finite) else 1.0
    tuning = finals[~finals.measuring.astype(bool)] if "measuring" in finals else finals
    tune_seed = tuning.seed.min()
    for k, (opt, g) in enumerate(finals.groupby("optimizer", sort=False)):
        st = style(opt, k)
        grid = g[g.seed == tune_seed].sort_values("lr")
        ok = grid[np.isfinite(grid.final.astype(float))]
        ax.plot(ok.lr, ok.final, ms=4, label=labels.get(opt, opt), **st)
        bad = grid[~np.isfinite(grid.final.astype(float))]
        if len(bad):
            ax.plot(bad.lr, [top] * len(bad), "x", ms=8, color=st["color"])
        stats = measuring(g).groupby("lr")["final"].agg(["mean", "std", "count"]).reset_index()
        stats = stats[(stats["count"] > 1) & np.isfinite(stats["mean"])]
        if len(stats):
            ax.errorbar(
                stats.lr, stats["mean"], yerr=stats["std"], fmt="none", capsize=4, color=st["color"], lw=2
            )
        if best_lr and opt in best_lr:
            ax.axvline(best_lr[opt], color=st["color"], ls=":", lw=1)
    ax.set_xscale("log")
    ax.set(xlabel=r"peak learning rate $\eta$", ylabel="final loss")


def plot_curves(
    ax,
    metrics: pd.DataFrame,
    points: Mapping[str, tuple[str, float]],
    *,
    labels: Mapping[str, str],
    value: str = "train_loss",
    smooth: int = 1,
    label_lr: bool = True,
) -> None:
    """Loss curves at ``points = {key: (optimizer, lr)}``, mean ± std over seeds (``smooth``-row means)."""
    for k, (key, (opt, lr)) in enumerate(points.items()):
        g = metrics[(metrics.optimizer == opt) & np.isclose(metrics.lr.astype(float), lr, rtol=1e-6)]
        g = g.dropna(subset=[value])
        if not len(g):
            continue
        per_seed = g.pivot_table(index="iter", columns="seed", values=value)
        per_seed = per_seed.rolling(smooth, min_periods=1).mean()
        mean, std = per_seed.mean(axis=1), per_seed.std(axis=1).fillna(0.0)
        st = style(key, k)
        label = f"{labels.get(key, key)} (lr {lr:.2g})" if label_lr else labels.get(key, key)
        ax.plot(mean.index, mean.values, ms=4, markevery=max(1, len(mean) // 8), label=label, **st)
        lo, hi = (mean - std).values, (mean + std).values
        ax.fill_between(mean.index, lo, hi, color=st["color"], alpha=0.2, lw=0)
    ax.set(xlabel="iteration", ylabel=value.replace("_", " "))


@dataclass
class Published:
    """``published/<notebook>/<scale>/``: CSVs by stem, provenance, its problems and staleness."""

    path: Path
    tables: dict[str, pd.DataFrame]
    provenance: dict
    problems: list[str] = field(default_factory=list)
    stale: str | None = None

    @property
    def warning(self) -> str | None:
        """``stale`` and ``problems`` in one line (None when neither)."""
        return "; ".join(([self.stale] if self.stale else []) + self.problems) or None


def make_command(notebook: str, scale: str = "gpu") -> str:
    """The one command that makes (and publishes) a notebook's results at ``scale``."""
    return f"python -m adamlinf.run --scale {scale} --only {notebook} --publish"


def load_published(
    notebook: str, scale: str = "gpu", *, folder: str | Path | None = None
) -> Published | None:
    """The published results of ``notebook`` at ``scale`` (None if none), their problems and staleness."""
    path = Path(folder) if folder is not None else _results.published_dir(notebook, scale)
    csvs = sorted(path.glob("*.csv")) if path is not None and path.is_dir() else []
    if not csvs:
        return None
    problems, tables = [], {}
    for p in csvs:
        try:
            tables[p.stem] = pd.read_csv(p)
        except (OSError, ValueError, UnicodeDecodeError) as exc:  # EmptyDataError, ParserError: ValueError
            problems.append(f"{p.name} cannot be read ({type(exc).__name__}: {str(exc).splitlines()[0]})")
    prov: dict = {}
    for name in ("provenance.json", *sorted(p.name for p in path.glob("*.provenance.json"))):
        if (path / name).exists():
            try:
                record = json.loads((path / name).read_text())
            except (OSError, ValueError, UnicodeDecodeError) as exc:
                problems.append(f"{name} cannot be read ({type(exc).__name__})")
                continue
            prov = record if isinstance(record, dict) else {}
            break
    if prov:
        if prov.get("scale") not in (None, path.name):
            problems.append(
                f"its provenance says scale {prov.get('scale')!r}, but it is published as {path.name!r}"
            )
        problems += _results.check_digests(path, prov)
    if problems:
        fix = make_command(notebook, path.name if path.name in ("ci", "gpu", "paper") else scale)
        problems.append(f"re-make them: {fix}")
    return Published(path, tables, prov, problems, _results.check_fresh(notebook, path))


def published_note(notebook: str, pub: Published | None, scale: str = "gpu") -> str:
    """One paragraph for a page: where the published results come from, or how to make them."""
    if pub is None:
        return (
            f"**Published `{scale}` results: missing.** No results of this page at the `{scale}` "
            f"scale are published yet. To make them on one GPU (about 15 minutes) and publish them: "
            f"`{make_command(notebook, scale)}`."
        )
    prov = pub.provenance
    wall = prov.get("wall_time_s")
    took = f" in {wall / 60:.1f} min" if isinstance(wall, (int, float)) else ""
    text = (
        f"**Published `{scale}` results** made on {prov.get('device', 'unknown hardware')} at commit "
        f"`{str(prov.get('git_commit', 'unknown'))[:12]}`{took}."
    )
    if pub.problems:
        text += " **Not as published:** " + "; ".join(pub.problems) + "."
    if pub.stale:
        text += f" **Stale:** {pub.stale}"
    return text
