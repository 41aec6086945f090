r"""Tables 2 and 4: Hessian norms at the final checkpoints of the tuned runs, with error bands.

At the final iterate of each run, on ONE fixed batch set shared by all runs (:func:`fixed_batches`),
:func:`hessian_table` estimates

* :math:`\|H\|_{1,1}/d` and :math:`\|\mathcal R^\top H\mathcal R\|_{1,1}/d` by Cauchy probes
  (Algorithm 4), both at the same weights (the *same-checkpoint comparison*: the rotation's effect on
  the geometry, with the training held fixed), where :math:`\mathcal R` is the rotated-Adam run's
  permute-and-rotate map;
* :math:`\|H\|_2` by Lanczos (rotation invariant).

Every (1,1)-norm estimate carries an error band (:func:`l11_band`): the estimator's own band when
:func:`adamlinf.hessian.l11_norm` reports one (``lo``/``hi``), else the Theorem 4.1 rate for its
probe count, :math:`\varepsilon(n)=\sqrt{C\log(1/\delta)/n}` with the constant :data:`THM41_C` fitted
on heavy-tailed test matrices. An ordering of two norms counts only outside the bands
(:func:`adamlinf.studies.verdicts.compare`).

:func:`table_layout` gives the paper's layout (Optimizer | smoothness metric | upper bound |
estimated value, rows in the paper's order), :func:`same_checkpoint` the rotated-vs-unrotated view at
each checkpoint, :func:`norm_values` the :class:`~adamlinf.studies.verdicts.Measured` values the
claims need, and :func:`norm_claims` the verdicts of Tables 2 and 4: the paper's claims (each norm at
its own checkpoint, and the loss orders they predict) and the book's same-checkpoint checks.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from adamlinf import hessian as _hessian
from adamlinf import optim
from adamlinf import train as _train
from adamlinf.studies.verdicts import BOOK, Claim, Measured, claims_table

#: Constant of the Theorem 4.1 rate :math:`\varepsilon(n)=\sqrt{C\log(1/\delta)/n}` for the
#: (1 − δ)-quantile of the relative error of the IQR/median estimate: a conservative value for
#: symmetric matrices with log-normal row norms (σ = 1, d = 60), where 50 probes give a 90% quantile
#: of about 27% (C ≈ 1.6); the bands then cover the exact norm in at least 90% of repeats.
THM41_C = 2.0

#: The order of the rows of Tables 2 and 4 in the paper.
PAPER_ORDER = ("adasgd", "adam", "rotated_adam")


def _in_paper_order(df: pd.DataFrame, optimizer: pd.Series, last: pd.Series | None = None) -> pd.DataFrame:
    """``df`` with its rows in :data:`PAPER_ORDER` of ``optimizer`` (rows flagged ``last`` at the end)."""
    rank = optimizer.map({o: k for k, o in enumerate(PAPER_ORDER)}).fillna(len(PAPER_ORDER))
    if last is not None:
        rank = rank + (len(PAPER_ORDER) + 1) * last.astype(int)
    return df.iloc[np.argsort(rank.to_numpy(), kind="stable")].reset_index(drop=True)


def fixed_batches(task, n_batches: int, *, split: str = "train", step: int = 0) -> list:
    """``n_batches`` batches ``task.batch(split, step, i)``, ``i < n_batches``.

    Deterministic in the task's spec, hence the same fixed evaluation set for every run of one data
    spec.

    Args:
        task: A task of :func:`adamlinf.data.build_task`.
        n_batches: Number of batches.
        split: The data split.
        step: The step index the batches are drawn at.

    Returns:
        The list of batches.
    """
    if n_batches < 1:
        raise ValueError(f"n_batches must be >= 1, got {n_batches}")
    return [task.batch(split, step, i) for i in range(n_batches)]


def _digest(batches) -> str:
    h = hashlib.sha1()
    for b in batches:
        for t in b if isinstance(b, (tuple, list)) else (b,):
            h.update(t.detach().cpu().numpy().tobytes())
    return h.hexdigest()[:12]


def relative_error(n_probes: int, delta: float = 0.1, c: float = THM41_C) -> float:
    r"""The Theorem 4.1 relative error :math:`\varepsilon(n)=\sqrt{C\log(1/\delta)/n}` at ``n`` probes."""
    if n_probes < 1 or not 0 < delta < 1:
        raise ValueError(f"n_probes must be >= 1 and delta in (0, 1), got {n_probes}, {delta}")
    return math.sqrt(c * math.log(1 / delta) / n_probes)


def l11_band(
    estimate: float, n_probes: int, *, lo: float | None = None, hi: float | None = None, delta: float = 0.1
) -> Measured:
    r"""A (1,1)-norm estimate with its error band, as :class:`Measured`.

    Args:
        estimate: The estimate :math:`\widehat N`.
        n_probes: The probes behind it.
        lo: The estimator's own lower band end (e.g. a bootstrap over probes), if any.
        hi: Its upper band end.
        delta: Without ``lo``/``hi``: the band holds :math:`N` with probability about
            :math:`1-\delta` by the Theorem 4.1 rate, :math:`\widehat N = N(1+e)`,
            :math:`|e|\le\varepsilon(n)`, so :math:`N\in[\widehat N/(1+\varepsilon),
            \widehat N/(1-\varepsilon)]` (the upper end is infinite when :math:`\varepsilon\ge1`).

    Returns:
        ``Measured.band(estimate, lo, hi, n=n_probes)``.
    """
    if lo is not None and hi is not None and np.isfinite([lo, hi]).all():
        return Measured.band(estimate, min(lo, estimate), max(hi, estimate), n=n_probes)
    eps = relative_error(n_probes, delta)
    upper = estimate / (1 - eps) if eps < 1 else math.inf
    return Measured.band(estimate, estimate / (1 + eps), upper, n=n_probes)


def _l11(op, n_probes: int, seed: int, variant: str, d: int) -> dict:
    est = _hessian.l11_norm(op, n_probes, seed=seed, variant=variant, partition=None, progress=False)
    lo, hi = getattr(est, "lo", None), getattr(est, "hi", None)
    own = lo is not None and hi is not None and bool(np.isfinite([lo, hi]).all())
    m = l11_band(est.total, est.n_probes, lo=lo, hi=hi)
    return {
        "value": m.value / d,
        "lo": m.lo / d,
        "hi": m.hi / d,
        "n_probes": int(est.n_probes),
        "band": "bootstrap over probes" if own else "Theorem 4.1 rate",
    }


def _load(run_dir, device, dtype):
    model, task, cfg, rotation = _train.load_final(run_dir, device=device)
    if rotation is not None and not hasattr(rotation, "apply"):
        rotation = rotation.rotation  # RotatedParametrization -> its map R (apply / apply_T)
    if dtype is not None:
        model = model.to(dtype)
    model.eval()
    if hasattr(model, "set_attention"):
        model.set_attention("math")  # fused attention has no double backward (see hessian)
    return model, task, cfg, rotation


def hessian_table(
    run_dirs: Mapping[str, str | Path],
    n_probes: int = 50,
    seed: int = 0,
    n_batches: int = 1,
    *,
    split: str = "train",
    batch_step: int = 0,
    concat: bool = False,
    same_checkpoint: bool = True,
    spectral: bool = True,
    lanczos_iters: int | None = None,
    variant: str = "iqr",
    device: str = "cpu",
    dtype=None,
) -> pd.DataFrame:
    r"""Table 2/4 metrics at the final checkpoint of each run in ``run_dirs = {label: dir}``.

    Each checkpoint is loaded with :func:`adamlinf.train.load_final`; the loss is the mean over ONE
    fixed batch set (:func:`fixed_batches` of the first run's task) for every run; a run whose data
    spec would give other batches is refused. At each checkpoint:

    * :math:`\|H\|_{1,1}/d` and, with ``same_checkpoint`` (or for the rotated run itself),
      :math:`\|\mathcal R^\top H\mathcal R\|_{1,1}/d`, where :math:`\mathcal R` is the map of the
      rotated run among ``run_dirs`` (for that run, the Hessian of the loss it optimised,
      :math:`L\circ\mathcal R`, at its own iterate :math:`w`, model parameters :math:`x=\mathcal Rw`);
      each with the error band of :func:`l11_band`;
    * :math:`\|H\|_2` by Lanczos, with ``spectral``.

    Args:
        run_dirs: ``{label: run directory}`` of completed runs.
        n_probes: Cauchy probes per (1,1)-norm estimate (the paper: 50).
        seed: The probe seed (the same probes for every estimate).
        n_batches: Fixed batches in the evaluation set.
        split: Their data split.
        batch_step: Their step index.
        concat: Join the batches into one (one cached first-order graph for all HVPs).
        same_checkpoint: Also estimate the other (rotated / unrotated) norm at every checkpoint.
        spectral: Estimate :math:`\|H\|_2`.
        lanczos_iters: Lanczos steps (None: ARPACK to convergence).
        variant: ``"iqr"`` (the authors' code) or ``"median"`` (Algorithm 4).
        device: Where to evaluate.
        dtype: Cast the models to it (None: keep).

    Returns:
        A tidy frame, one row per (run, quantity, hessian): ``quantity`` in ``{"l11_per_dim",
        "spectral_norm"}``, ``hessian`` ``"H"`` or ``"R^T H R"``, ``own`` (the matrix the run's own
        optimizer saw), ``value``, ``lo``, ``hi`` (the band; equal to ``value`` for the spectral norm),
        ``band``, and ``d``, ``n_probes``, ``loss``, ``batch_digest``, ``seconds``.
    """
    if n_probes < 1:
        raise ValueError(f"n_probes must be >= 1, got {n_probes}")
    if not run_dirs:
        raise ValueError("run_dirs is empty: give {label: run directory}")
    for label, run_dir in run_dirs.items():
        if not Path(run_dir).exists():
            raise FileNotFoundError(f"run directory {run_dir} of {label!r} does not exist; train it first")
    loaded = {label: _load(d, device, dtype) for label, d in run_dirs.items()}
    R = next((rot for *_, rot in loaded.values() if rot is not None), None)
    rows, fixed, fixed_digest, fixed_from = [], None, None, None
    for label, (model, task, cfg, rotation) in loaded.items():
        own = fixed_batches(task, n_batches, split=split, step=batch_step)
        digest = _digest(own)
        if fixed is None:
            fixed, fixed_digest, fixed_from = own, digest, label
        elif digest != fixed_digest:
            raise ValueError(
                f"run {label!r} has a different data spec than {fixed_from!r}: its fixed "
                f"batches differ (digest {digest} vs {fixed_digest}); the table compares the "
                "runs on ONE fixed batch set, so train them on the same data spec"
            )
        batches = [tuple(torch.cat(ts) for ts in zip(*fixed, strict=False))] if concat else fixed
        batches = [tuple(t.to(device) for t in b) for b in batches]
        t0 = time.perf_counter()
        h = _hessian.hvp(model, task.loss, batches)
        optimizer = getattr(cfg, "optimizer", None)
        common = {
            "run": label,
            "optimizer": optimizer,
            "d": int(h.d),
            "n_batches": n_batches,
            "loss": float(h.loss()),
            "batch_digest": digest,
        }
        which = (
            ["H", "R^T H R"]
            if (same_checkpoint and R is not None)
            else (["R^T H R"] if rotation is not None else ["H"])
        )
        for hess in which:
            op = _hessian.rotated(h, rotation if rotation is not None else R) if hess == "R^T H R" else h
            est = _l11(op, n_probes, seed, variant, h.d)
            rows.append(
                {
                    **common,
                    "quantity": "l11_per_dim",
                    "hessian": hess,
                    "own": (hess == "R^T H R") == (rotation is not None),
                    **est,
                }
            )
        if spectral:
            s = _hessian.spectral_norm(h, lanczos_iters=lanczos_iters, seed=seed)
            rows.append(
                {
                    **common,
                    "quantity": "spectral_norm",
                    "hessian": "H",
                    "own": True,
                    "value": s,
                    "lo": s,
                    "hi": s,
                    "n_probes": 0,
                    "band": "none (Lanczos)",
                }
            )
        seconds = time.perf_counter() - t0
        for r in rows:
            if r["run"] == label:
                r["seconds"] = round(seconds, 2)
        del h
    return pd.DataFrame(rows)


_METRIC_OF = {  # optimizer -> (quantity, hessian, smoothness metric, upper bound, estimated value)
    "adam": ("l11_per_dim", "H", "H(L, Φ), Φ of Adam", "‖∇²L(x)‖₁,₁", "‖H‖₁,₁/d"),
    "rotated_adam": ("l11_per_dim", "R^T H R", "H(L∘R, Φ), Φ of Adam", "‖Rᵀ∇²L(x)R‖₁,₁", "‖RᵀHR‖₁,₁/d"),
    "adasgd": ("spectral_norm", "H", "H(L, Φ), Φ of AdaSGD", "d‖∇²L(x)‖₂", "‖H‖₂"),
}


def _pick(g: pd.DataFrame, quantity: str, hess: str) -> pd.Series | None:
    sel = g[(g.quantity == quantity) & (g.hessian == hess)]
    return sel.iloc[0] if len(sel) else None


def table_layout(tidy: pd.DataFrame) -> pd.DataFrame:
    """The paper's Table 2/4 layout from :func:`hessian_table` output (RECONSTRUCTED layout).

    ``Optimizer | Smoothness metric | Upper bound | Quantity | Estimated value | band``: ‖H‖₁,₁/d
    (Adam), ‖RᵀHR‖₁,₁/d (rotated Adam) against ‖H‖₂ (AdaSGD), each at the run's own checkpoint.
    AdaSGD's ‖H‖₁,₁/d is listed as an extra row "(for comparison)".

    Args:
        tidy: The output of :func:`hessian_table`.

    Returns:
        One row per optimizer (plus the comparison row), with ``lo``, ``hi``, ``run`` and
        ``Estimate`` (the value with its band as text; the Lanczos norm carries none).
    """
    rows = []
    for (run, opt), g in tidy.groupby(["run", "optimizer"], sort=False):
        if opt not in _METRIC_OF:
            continue
        quantity, hess, metric, bound, shown = _METRIC_OF[opt]
        r = _pick(g, quantity, hess)
        if r is not None:
            rows.append(
                {
                    "Optimizer": optim.LABELS[opt],
                    "Smoothness metric": metric,
                    "Upper bound": bound,
                    "Quantity": shown,
                    "Estimated value": float(r.value),
                    "lo": float(r.lo),
                    "hi": float(r.hi),
                    "run": run,
                    "optimizer": opt,
                }
            )
        extra = _pick(g, "l11_per_dim", "H") if opt == "adasgd" else None
        if extra is not None:
            rows.append(
                {
                    "Optimizer": "AdaSGD",
                    "Smoothness metric": "(for comparison)",
                    "Upper bound": "‖∇²L(x)‖₁,₁",
                    "Quantity": "‖H‖₁,₁/d",
                    "Estimated value": float(extra.value),
                    "lo": float(extra.lo),
                    "hi": float(extra.hi),
                    "run": run,
                    "optimizer": opt,
                }
            )
    out = pd.DataFrame(rows)
    if len(out):  # the comparison row last
        out = _in_paper_order(out, out.optimizer, last=out["Smoothness metric"] == "(for comparison)")
        out["Estimate"] = [
            Measured.band(v, lo, hi).text(3) if hi > lo else Measured.exact(v).text(3)
            for v, lo, hi in out[["Estimated value", "lo", "hi"]].to_numpy()
        ]
    return out


def same_checkpoint(tidy: pd.DataFrame) -> pd.DataFrame:
    """At each checkpoint, ‖H‖₁,₁/d against ‖RᵀHR‖₁,₁/d with the same R (same trained weights).

    Args:
        tidy: The output of :func:`hessian_table` with ``same_checkpoint=True``.

    Returns:
        One row per run: ``run``, ``optimizer``, ``‖H‖₁,₁/d`` and ``‖RᵀHR‖₁,₁/d`` (as band texts),
        their ``ratio`` (rotated / unrotated), ``‖H‖₂``, and the raw values.
    """
    rows = []
    for (run, opt), g in tidy.groupby(["run", "optimizer"], sort=False):
        a, b = _pick(g, "l11_per_dim", "H"), _pick(g, "l11_per_dim", "R^T H R")
        if a is None or b is None:
            continue
        s = _pick(g, "spectral_norm", "H")
        rows.append(
            {
                "run": run,
                "optimizer": opt,
                "checkpoint of": optim.LABELS.get(opt, opt),
                "‖H‖₁,₁/d": Measured.band(a.value, a.lo, a.hi).text(3),
                "‖RᵀHR‖₁,₁/d": Measured.band(b.value, b.lo, b.hi).text(3),
                "ratio rotated / unrotated": float(b.value / a.value),
                "‖H‖₂": float(s.value) if s is not None else math.nan,
                "h_value": float(a.value),
                "h_lo": float(a.lo),
                "h_hi": float(a.hi),
                "r_value": float(b.value),
                "r_lo": float(b.lo),
                "r_hi": float(b.hi),
            }
        )
    out = pd.DataFrame(rows)
    return _in_paper_order(out, out.optimizer) if len(out) else out


def table_views(tidy: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The two tables a Hessian-norm page shows, from a tidy norms table (live or published).

    Args:
        tidy: The output of :func:`hessian_table`, or the same read back from CSV.

    Returns:
        ``(table, same)``: the paper's table layout (:func:`table_layout`) without its helper
        columns, and the same-checkpoint comparison (:func:`same_checkpoint`) in its shown
        columns.
    """
    table = table_layout(tidy).drop(columns=["run", "optimizer", "lo", "hi", "Estimated value"])
    same = same_checkpoint(tidy)
    return table, same[["checkpoint of", "‖H‖₁,₁/d", "‖RᵀHR‖₁,₁/d", "ratio rotated / unrotated", "‖H‖₂"]]


def norm_values(tidy: pd.DataFrame) -> dict[str, Measured]:
    """The norms as :class:`Measured` bands, keyed ``"<quantity>:<hessian>@<optimizer>"``.

    For example ``"l11:H@adam"`` (‖H‖₁,₁/d at Adam's checkpoint), ``"l11:RHR@adam"`` (the rotated
    norm at the same weights) and ``"spec@adasgd"`` (‖H‖₂ at AdaSGD's, an exact value here: Lanczos
    carries no band).
    """
    out = {}
    for r in tidy.itertuples():
        if r.quantity == "spectral_norm":
            out[f"spec@{r.optimizer}"] = Measured.exact(r.value)
        else:
            key = "l11:H" if r.hessian == "H" else "l11:RHR"
            out[f"{key}@{r.optimizer}"] = Measured.band(r.value, r.lo, r.hi, n=int(r.n_probes))
    return out


#: Display names of the keys of Table 2's and Table 4's claims (:func:`norm_claims`).
NORM_LABELS = {
    "l11:H@adam": "‖H‖₁,₁/d (Adam's checkpoint)",
    "l11:RHR@rotated_adam": "‖RᵀHR‖₁,₁/d (rotated Adam's)",
    "l11:RHR@adam": "‖RᵀHR‖₁,₁/d (Adam's checkpoint)",
    "l11:H@rotated_adam": "‖H‖₁,₁/d (rotated Adam's)",
    "spec@adasgd": "‖H‖₂ (AdaSGD's)",
    "spec@adam": "‖H‖₂ (Adam's checkpoint)",
    "loss@adam": "Adam",
    "loss@rotated_adam": "rotated Adam",
    "loss@adasgd": "AdaSGD",
}


def norm_claims(
    tidy: pd.DataFrame, losses: Mapping[str, Measured], *, scale: str, where: str, page: str
) -> pd.DataFrame:
    """The verdicts of Table 2's or Table 4's claims: norms outside their error bands, losses by seeds.

    The paper's claims (``where``, origin ``paper``): Adam's ‖H‖₁,₁/d below rotated Adam's ‖RᵀHR‖₁,₁/d
    and below AdaSGD's ‖H‖₂, each at its own final checkpoint, and the loss orders these predict
    ("the smaller the norm, the faster the optimizer"). The book's checks (origin ``book``), at one
    and the same checkpoint, which hold the trained weights fixed and so isolate the geometry from
    where each optimizer ended: ‖H‖₁,₁/d against ‖RᵀHR‖₁,₁/d at Adam's and at rotated Adam's
    weights, and ‖H‖₁,₁/d against ‖H‖₂ at Adam's weights (the stronger form of the paper's
    ‖H‖₁,₁ < d‖H‖₂).

    Args:
        tidy: :func:`adamlinf.studies.hessian_tables.hessian_table` output (same-checkpoint rows).
        losses: Final training loss per optimizer over the measuring seeds.
        scale: The scale.
        where: ``"Table 2"`` or ``"Table 4"``.
        page: The notebook.
    """
    v = {**norm_values(tidy), **{f"loss@{k}": m for k, m in losses.items()}}
    stated = "stated; values NOT RECOVERED"
    own = "each at its own checkpoint"
    claims = [
        Claim(
            f"‖H‖₁,₁/d (Adam) < ‖RᵀHR‖₁,₁/d (rotated Adam), {own}",
            "l11:H@adam",
            "l11:RHR@rotated_adam",
            stated,
            where,
        ),
        Claim(f"‖H‖₁,₁/d (Adam) < ‖H‖₂ (AdaSGD), {own}", "l11:H@adam", "spec@adasgd", stated, where),
        Claim(
            "the smaller norm is faster: Adam's final loss < rotated Adam's",
            "loss@adam",
            "loss@rotated_adam",
            stated,
            where,
        ),
        Claim(
            "the smaller norm is faster: Adam's final loss < AdaSGD's",
            "loss@adam",
            "loss@adasgd",
            stated,
            where,
        ),
        Claim(
            "same checkpoint (Adam's weights): ‖H‖₁,₁/d < ‖H‖₂",
            "l11:H@adam",
            "spec@adam",
            "not measured",
            where,
            BOOK,
        ),
        Claim(
            "same checkpoint (Adam's weights): ‖H‖₁,₁/d < ‖RᵀHR‖₁,₁/d",
            "l11:H@adam",
            "l11:RHR@adam",
            "not measured",
            where,
            BOOK,
        ),
        Claim(
            "same checkpoint (rotated Adam's weights): ‖H‖₁,₁/d < ‖RᵀHR‖₁,₁/d",
            "l11:H@rotated_adam",
            "l11:RHR@rotated_adam",
            "not measured",
            where,
            BOOK,
        ),
    ]
    return claims_table(v, claims, scale=scale, labels=NORM_LABELS, page=page)
