r"""Analysis shared by the experiment chapters (Section 4.2, GPT-2; Section 4.3, ResNet18).

The run machinery (specs, run folders, launches) is :mod:`adamlinf.runs`.

=====================================  =========================================================
``final_metrics(df)``                  one row per run: the final smoothed metric
``best_runs(df)``                      the tuned learning rate per optimizer (lowest final loss)
``claims_table(values, claims)``       the paper's pairwise "a is better than b" claims, checked
``hessian_table(run_dirs, ...)``       Table 2/4 metrics of final checkpoints on a fixed batch set
``table_layout(tidy)``                 the paper's "Optimizer | metric | upper bound | value" view
``ordering_check(table, finals)``      "smaller norm <-> faster optimizer"
=====================================  =========================================================

Costs at the paper's scale are :mod:`adamlinf.studies.costs`.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from adamlinf.runs import OPTIMIZER_LABELS

__all__ = [
    "final_metrics", "best_runs", "claims_table", "fixed_batches", "hessian_table", "table_layout",
    "ordering_check",
]


# --------------------------------------------------------------------------------------------
# picking runs
# --------------------------------------------------------------------------------------------
def _window(n_rows: int, window: int | float) -> int:
    if isinstance(window, float) and 0 < window < 1:
        return max(1, int(round(window * n_rows)))
    if int(window) < 1:
        raise ValueError(f"window must be a positive int (rows) or a fraction in (0, 1), got {window}")
    return int(window)


_TRAIN_ROW_MARKERS = ("lr_t", "iter_time")  # logged on every training row (never NaN there)


def _diverged(g: pd.DataFrame, step: str = "iter") -> bool:
    """Whether the run ``g`` (its metric rows) diverged: a non-finite loss was ever logged.

    In CSV a NaN loss reads back as *missing*, so which rows must hold a loss is told by other
    columns: a *training row* carries the scheduled learning rate ``lr_t`` (or ``iter_time``), and
    the last row of the run (the final evaluation) carries at least one ``*_loss`` value. The run
    diverged if any ``*_loss`` value is ``±inf``, if a training row lacks a finite ``train_loss``
    (at ANY iteration, not only the last: a run that blew up is never scored on an earlier finite
    value), or if its last row has no finite loss at all (the final update made it non-finite)."""
    loss_cols = [c for c in g.columns if c.endswith("_loss")]
    if not loss_cols or not len(g):
        return False
    losses = g[loss_cols].to_numpy(dtype=float)
    if np.isinf(losses).any():
        return True
    marker = next((c for c in _TRAIN_ROW_MARKERS if c in g.columns), None)
    if marker is not None and "train_loss" in g.columns:
        train = g.loc[g[marker].notna(), "train_loss"].to_numpy(dtype=float)
        if len(train) and not np.isfinite(train).all():
            return True
    last = g.sort_values(step, kind="stable").iloc[-1] if step in g.columns else g.iloc[-1]
    return not np.isfinite(last[loss_cols].to_numpy(dtype=float)).any()


def final_metrics(df: pd.DataFrame, metric: str = "train_loss", *, window: int | float = 0.05,
                  by: Sequence[str] = ("run",), step: str = "iter") -> pd.DataFrame:
    """One row per ``by`` group (default: per run): ``metric`` averaged over its last logged values
    (the "final smoothed loss"; ``window`` rows, or that fraction of the logged rows when a float
    in (0, 1): the default is the last 5%), with ``optimizer`` and ``lr`` carried along. A run that
    ever logged a non-finite loss (:func:`_diverged`) gets ``final_<metric> = inf`` and
    ``diverged = True``, so it ranks last and is never scored on the finite values before it blew
    up."""
    if metric not in df.columns:
        raise ValueError(f"metric {metric!r} not in the metrics (columns: {list(df.columns)})")
    _window(1, window)
    rows = []
    for key, g in df.groupby(list(by), sort=False):
        g = g.sort_values(step, kind="stable") if step in g.columns else g
        logged = g[metric].dropna().to_numpy(dtype=float)
        last = logged[-_window(len(logged), window):]
        diverged = len(last) == 0 or not bool(np.all(np.isfinite(last))) or _diverged(g, step)
        row = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        for col in ("optimizer", "lr"):
            if col in g.columns and col not in row:
                row[col] = g[col].iloc[0]
        row[f"final_{metric}"] = float("inf") if diverged else float(last.mean())
        row["last_iter"] = int(g[step].max()) if step in g.columns and len(g) else -1
        row["diverged"] = bool(diverged)
        rows.append(row)
    return pd.DataFrame(rows)


def best_runs(df: pd.DataFrame, metric: str = "train_loss", by: Sequence[str] = ("optimizer",), *,
              window: int | float = 0.05) -> pd.DataFrame:
    """The tuned run of each ``by`` group: the run with the lowest final smoothed ``metric``
    (:func:`final_metrics`; diverged runs rank last). Columns: ``by``, ``run``, ``lr``,
    ``final_<metric>``, ``diverged``, ``n_tried``; sorted by the final metric."""
    keys = tuple(dict.fromkeys(("run", *[b for b in by if b != "run"])))
    finals = final_metrics(df, metric, window=window, by=keys)
    col = f"final_{metric}"
    rows = []
    for _, g in finals.groupby(list(by), sort=False):
        best = g.sort_values(col, kind="stable").iloc[0]
        row = best.to_dict()
        row["n_tried"] = len(g)
        rows.append(row)
    return pd.DataFrame(rows).sort_values(col, kind="stable").reset_index(drop=True)


def _label(key, labels: Mapping[str, str]) -> str:
    if isinstance(key, tuple):  # (optimizer, setting): "Adam (larger lr)"
        return f"{labels.get(key[0], key[0])} ({', '.join(map(str, key[1:]))})"
    return labels.get(key, key)


def claims_table(values: Mapping, claims: Sequence[tuple], *,
                 value_name: str = "final train loss", labels: Mapping[str, str] | None = None
                 ) -> pd.DataFrame:
    """Check the paper's pairwise claims "``a`` is better (lower ``values``) than ``b``":
    ``claims = [("adam", "adasgd", "Adam converges faster than AdaSGD"), ...]``. Keys may be tuples
    such as ``(optimizer, setting)`` to compare one optimizer across settings (Figure 3). A claim
    may carry a fourth element, copied to a ``group`` column. Returns one row per claim: the claim,
    the better and worse run by the paper, both values, ``holds here`` (an infinite value, a
    diverged run, is worse than any finite one; two diverged runs do not confirm a claim)."""
    labels = dict(OPTIMIZER_LABELS, **(labels or {}))
    rows = []
    for claim in claims:
        if len(claim) not in (3, 4):
            raise ValueError(f"a claim is (better, worse, text[, group]), got {claim!r}")
        a, b, text = claim[:3]
        if a not in values or b not in values:
            raise ValueError(f"claim {text!r} needs values of {a!r} and {b!r}; have {sorted(values, key=str)}")
        va, vb = float(values[a]), float(values[b])
        row = {"paper's claim": text, "better (paper)": _label(a, labels), "worse (paper)": _label(b, labels),
               f"{value_name}, better": va, f"{value_name}, worse": vb, "holds here": bool(va < vb)}
        if len(claim) == 4:
            row["group"] = claim[3]
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Hessian metrics of final checkpoints (Tables 2 and 4)
# --------------------------------------------------------------------------------------------
def fixed_batches(task, n_batches: int, *, split: str = "train", step: int = 0) -> list:
    """``n_batches`` batches ``task.batch(split, step, i)``, ``i < n_batches``: deterministic in the
    task's spec, hence the same fixed evaluation set for every run of one data spec."""
    if n_batches < 1:
        raise ValueError(f"n_batches must be >= 1, got {n_batches}")
    return [task.batch(split, step, i) for i in range(n_batches)]


def _digest(batches) -> str:
    import hashlib

    h = hashlib.sha1()
    for b in batches:
        for t in (b if isinstance(b, (tuple, list)) else (b,)):
            h.update(t.detach().cpu().numpy().tobytes())
    return h.hexdigest()[:12]


def hessian_table(run_dirs: Mapping[str, str | Path], n_probes: int = 50, seed: int = 0,
                  n_batches: int = 1, *, split: str = "train", batch_step: int = 0, concat: bool = False,
                  spectral: bool = True, lanczos_iters: int | None = None, variant: str = "iqr",
                  device: str = "cpu", dtype=None, progress: bool = False,
                  verbose: bool = True) -> pd.DataFrame:
    r"""Table 2/4 metrics at the final checkpoint of each run in ``run_dirs = {label: dir}``.

    Each checkpoint is loaded with :func:`adamlinf.train.load_final`; the loss is the mean over ONE
    fixed batch set (:func:`fixed_batches` of the first run's task) for every run; a run whose data
    spec would give other batches is refused with a ``ValueError``, and the digest is a column. :func:`adamlinf.hessian.smoothness_table`
    then estimates, at the final iterate,

    * :math:`\|H\|_{1,1}/d` by ``n_probes`` Cauchy probes (Algorithm 4), where for rotated Adam
      :math:`H` is the Hessian of the loss it optimised, :math:`L\circ\mathcal R` at its own
      iterate :math:`w` (model parameters :math:`x=\mathcal Rw`): :math:`\mathcal R^\top
      \nabla^2L(x)\mathcal R`;
    * :math:`\|H\|_2` by Lanczos (rotation invariant), with ``spectral``.

    ``concat=True`` joins the ``n_batches`` batches into one (the same function, since the batches
    have equal sizes): faster on small models, whose first-order graph is then built once; keep it
    False when one batch of that size does not fit in memory (the paper's 7,680 sequences).

    Returns a tidy frame, one row per (run, quantity): ``quantity`` in ``{"l11_per_dim",
    "spectral_norm"}``, ``hessian`` ``"H"`` or ``"R^T H R"``, ``value``, and ``d``, ``n_probes``,
    ``loss`` (on the fixed batches), ``batch_digest``, ``seconds``. :func:`table_layout` turns it
    into the paper's layout.
    """
    import torch

    from adamlinf import hessian as _hessian
    from adamlinf import train as _train

    if n_probes < 1:
        raise ValueError(f"n_probes must be >= 1, got {n_probes}")
    if not run_dirs:
        raise ValueError("run_dirs is empty: give {label: run directory}")
    rows, fixed, fixed_from = [], None, None
    for label, run_dir in run_dirs.items():
        run_dir = Path(run_dir)
        if not run_dir.exists():
            raise FileNotFoundError(f"run directory {run_dir} of {label!r} does not exist; train it first")
        model, task, cfg, rotation = _train.load_final(run_dir, device=device)
        if rotation is not None and not hasattr(rotation, "apply"):
            rotation = rotation.rotation  # RotatedParametrization -> its map R (apply / apply_T)
        if dtype is not None:
            model = model.to(dtype)
        model.eval()
        if hasattr(model, "set_attention"):
            model.set_attention("math")  # fused attention has no double backward (see hessian)
        own = fixed_batches(task, n_batches, split=split, step=batch_step)
        digest = _digest(own)
        if fixed is None:  # the first run fixes the evaluation set; every other run must match it
            fixed, fixed_digest, fixed_from = own, digest, label
        elif digest != fixed_digest:
            raise ValueError(f"run {label!r} has a different data spec than {fixed_from!r}: its fixed "
                             f"batches differ (digest {digest} vs {fixed_digest}); Table 2 compares "
                             "the runs on ONE fixed batch set, so train them on the same data spec")
        batches = fixed
        if concat:  # one batch of n_batches x batch_size samples: the same mean loss (equal sizes),
            # and one cached first-order graph serves every HVP (hessian.HVP, double backward)
            batches = [tuple(torch.cat(ts) for ts in zip(*batches))]
        batches = [tuple(t.to(device) for t in b) for b in batches]
        t0 = time.perf_counter()
        res = _hessian.smoothness_table(model, task.loss, batches, rotation=rotation, n_probes=n_probes,
                                        seed=seed, variant=variant, spectral=spectral,
                                        lanczos_iters=lanczos_iters, progress=progress)
        seconds = time.perf_counter() - t0
        optimizer = getattr(cfg, "optimizer", None) if not isinstance(cfg, Mapping) else cfg.get("optimizer")
        common = {"run": label, "optimizer": optimizer, "d": int(res["d"]), "n_probes": int(res["n_probes"]),
                  "n_batches": n_batches, "loss": float(res["loss"]), "batch_digest": digest,
                  "seconds": round(seconds, 2)}
        rows.append({**common, "quantity": "l11_per_dim",
                     "hessian": "R^T H R" if rotation is not None else "H",
                     "value": float(res["l11_per_dim"])})
        if spectral:
            rows.append({**common, "quantity": "spectral_norm", "hessian": "H",
                         "value": float(res["spectral_norm"])})
        if verbose:
            msg = ", ".join(f"{r['quantity']}={r['value']:.4g}" for r in rows if r["run"] == label)
            print(f"[experiments] {label}: {msg} ({seconds:.1f} s)", flush=True)
        del model, task
        if str(device).startswith("cuda"):
            torch.cuda.empty_cache()
    return pd.DataFrame(rows)


_METRIC_OF = {  # optimizer -> (quantity, hessian, smoothness metric, upper bound, estimated value)
    "adam": ("l11_per_dim", "H", "H(L, Φ_Adam)", "‖∇²L(x)‖₁,₁", "‖H‖₁,₁/d"),
    "rotated_adam": ("l11_per_dim", "R^T H R", "H(L∘R, Φ_Adam)", "‖Rᵀ∇²L(x)R‖₁,₁", "‖RᵀHR‖₁,₁/d"),
    "adasgd": ("spectral_norm", "H", "H(L, Φ_AdaSGD)", "d‖∇²L(x)‖₂", "‖H‖₂"),
}


def table_layout(tidy: pd.DataFrame) -> pd.DataFrame:
    """The paper's Table 2/4 layout from :func:`hessian_table` output (RECONSTRUCTED layout,
    PAPER_MATH.md §5): ``Optimizer | Smoothness metric | Upper bound | Estimated value``, where the
    estimated value is on the comparable per-coordinate scale: ‖H‖₁,₁/d (Adam), ‖RᵀHR‖₁,₁/d
    (rotated Adam) against ‖H‖₂ (AdaSGD). AdaSGD's ‖H‖₁,₁/d is listed as an extra row."""
    rows = []
    for (run, opt), g in tidy.groupby(["run", "optimizer"], sort=False):
        if opt not in _METRIC_OF:
            continue
        quantity, hess, metric, bound, shown = _METRIC_OF[opt]
        sel = g[(g.quantity == quantity) & (g.hessian == hess)]
        if len(sel):
            rows.append({"Optimizer": OPTIMIZER_LABELS[opt], "Smoothness metric": metric,
                         "Upper bound": bound, "Quantity": shown, "Estimated value": float(sel.value.iloc[0]),
                         "run": run})
        if opt == "adasgd":
            extra = g[(g.quantity == "l11_per_dim") & (g.hessian == "H")]
            if len(extra):
                rows.append({"Optimizer": "AdaSGD", "Smoothness metric": "(for comparison)",
                             "Upper bound": "‖∇²L(x)‖₁,₁", "Quantity": "‖H‖₁,₁/d",
                             "Estimated value": float(extra.value.iloc[0]), "run": run})
    return pd.DataFrame(rows)


def ordering_check(table: pd.DataFrame, finals: pd.DataFrame, *, loss_col: str = "final_train_loss"
                   ) -> pd.DataFrame:
    """"The smaller the norm, the faster the optimizer" (Table 2's takeaway): ranks the optimizers
    by their smoothness constant (the ``Estimated value`` of :func:`table_layout`'s main rows) and by
    final loss. ``finals`` has ``run`` and ``loss_col``. ``df.attrs["agrees"]`` is True when the two
    orders are the same; ``df.attrs["pairs"]`` checks every pair (faster run first)."""
    main = table[table["Smoothness metric"] != "(for comparison)"][["run", "Optimizer", "Estimated value"]]
    merged = main.merge(finals[["run", loss_col]], on="run", how="left")
    merged["rank by norm"] = merged["Estimated value"].rank(method="min").astype(int)
    merged["rank by final loss"] = merged[loss_col].rank(method="min").astype(int)
    merged = merged.sort_values("rank by final loss").reset_index(drop=True)
    merged.attrs["agrees"] = bool((merged["rank by norm"] == merged["rank by final loss"]).all())
    pairs = []
    recs = merged.to_dict("records")
    for i, a in enumerate(recs):
        for b in recs[i + 1:]:  # a has the lower (or equal) final loss
            pairs.append({"faster": a["Optimizer"], "slower": b["Optimizer"],
                          "norm of faster": a["Estimated value"], "norm of slower": b["Estimated value"],
                          "smaller norm is faster": bool(a["Estimated value"] < b["Estimated value"])})
    merged.attrs["pairs"] = pd.DataFrame(pairs)
    return merged
