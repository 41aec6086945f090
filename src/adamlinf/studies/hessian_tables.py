r"""Tables 2 and 4: Hessian norms at the final checkpoints of the tuned runs, with error bands.

:func:`hessian_table`: :math:`\|H\|_{1,1}/d`, :math:`\|\mathcal R^\top H\mathcal R\|_{1,1}/d` (Algorithm 4;
:math:`\mathcal R` rotated Adam's map, at every run's weights) and :math:`\|H\|_2` (Lanczos) on ONE fixed
batch set; an ordering counts only outside the bands (:func:`l11_band`).
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
from adamlinf.studies.verdicts import BOOK, PAPER, Claim, Measured, claims_table

#: Constant of the Theorem 4.1 rate :math:`\varepsilon(n)=\sqrt{C\log(1/\delta)/n}` (the (1 − δ)-quantile of
#: the relative error): conservative for log-normal row norms (σ = 1, d = 60, 50 probes: 27% at 90%, C ≈ 1.6).
THM41_C = 2.0

#: The order of the rows of Tables 2 and 4 in the paper.
PAPER_ORDER = ("adasgd", "adam", "rotated_adam")


def _in_paper_order(df: pd.DataFrame, optimizer: pd.Series, last: pd.Series | None = None) -> pd.DataFrame:
    """``df`` with its rows in :data:`PAPER_ORDER` of ``optimizer`` (rows flagged ``last`` at the end)."""
    rank = optimizer.map({o: k for k, o in enumerate(PAPER_ORDER)}).fillna(len(PAPER_ORDER))
    if last is not None:
        rank = rank + (len(PAPER_ORDER) + 1) * last.astype(int)
    return df.iloc[np.argsort(rank.to_numpy(), kind="stable")].reset_index(drop=True)


def _digest(batches) -> str:
    h = hashlib.sha1()
    for b in batches:
        for t in b if isinstance(b, (tuple, list)) else (b,):
            h.update(t.detach().cpu().numpy().tobytes())
    return h.hexdigest()[:12]


def l11_band(
    estimate: float, n_probes: int, *, lo: float | None = None, hi: float | None = None, delta: float = 0.1
) -> Measured:
    r"""A (1,1)-norm estimate with its band: the estimator's own ``[lo, hi]`` when finite, else the rate.

    From :math:`\widehat N=N(1+e)`, :math:`|e|\le\varepsilon(n)=\sqrt{C\log(1/\delta)/n}` (Theorem 4.1):
    :math:`N\in[\widehat N/(1+\varepsilon),\widehat N/(1-\varepsilon)]`, infinite for :math:`\varepsilon\ge1`.
    """
    if lo is not None and hi is not None and np.isfinite([lo, hi]).all():
        return Measured.band(estimate, min(lo, estimate), max(hi, estimate), n=n_probes)
    eps = math.sqrt(THM41_C * math.log(1 / delta) / n_probes)
    upper = estimate / (1 - eps) if eps < 1 else math.inf
    return Measured.band(estimate, estimate / (1 + eps), upper, n=n_probes)


def _l11(op, n_probes: int, seed: int, variant: str, d: int) -> dict:
    est = _hessian.l11_norm(op, n_probes, seed=seed, variant=variant, partition=None, progress=False)
    m = l11_band(est.total, est.n_probes, lo=est.lo, hi=est.hi)
    band = "bootstrap over probes" if np.isfinite([est.lo, est.hi]).all() else "Theorem 4.1 rate"
    return {"value": m.value / d, "lo": m.lo / d, "hi": m.hi / d, "n_probes": int(est.n_probes), "band": band}


def _load(run_dir, device):
    """``(model, task, cfg, R or None)`` of a run's final checkpoint (R: rotated Adam's map)."""
    model, task, cfg, parametrization = _train.load_final(run_dir, device=device)
    if hasattr(model, "set_attention"):
        model.set_attention("math")  # fused attention has no double backward (see hessian)
    return model, task, cfg, None if parametrization is None else parametrization.rotation


def hessian_table(
    run_dirs: Mapping[str, str | Path],
    n_probes: int = 50,
    seed: int = 0,
    n_batches: int = 1,
    *,
    concat: bool = False,
    spectral: bool = True,
    lanczos_iters: int | None = None,
    variant: str = "iqr",
    device: str = "cpu",
) -> pd.DataFrame:
    r"""Table 2/4 norms at the final checkpoint of each run in ``run_dirs = {label: dir}``.

    The loss: the mean over the first run's ``n_batches`` training batches (``concat``: joined); a run
    with other batches is refused. ``lanczos_iters=None``: ARPACK. A row per (run, ``quantity``,
    ``hessian``) with ``own`` (the run's optimizer saw it), ``value``, ``lo``, ``hi``, ``band``, ``d``, ...
    """
    loaded = {label: _load(d, device) for label, d in run_dirs.items()}
    R = next((rot for *_, rot in loaded.values() if rot is not None), None)
    rows, fixed, fixed_digest, fixed_from = [], None, None, None
    for label, (model, task, cfg, rotation) in loaded.items():
        own = [task.batch("train", 0, i) for i in range(n_batches)]
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
        common = {"run": label, "optimizer": getattr(cfg, "optimizer", None), "d": int(h.d)}
        common |= {"n_batches": n_batches, "loss": float(h.loss()), "batch_digest": digest}
        mine = []
        for hess in ["H", "R^T H R"] if R is not None else ["H"]:
            op = _hessian.rotated(h, rotation if rotation is not None else R) if hess == "R^T H R" else h
            est = _l11(op, n_probes, seed, variant, h.d)
            own_matrix = (hess == "R^T H R") == (rotation is not None)
            mine.append({**common, "quantity": "l11_per_dim", "hessian": hess, "own": own_matrix, **est})
        if spectral:
            s = _hessian.spectral_norm(h, lanczos_iters=lanczos_iters, seed=seed)
            row = {"quantity": "spectral_norm", "hessian": "H", "own": True, "value": s, "lo": s, "hi": s}
            mine.append({**common, **row, "n_probes": 0, "band": "none (Lanczos)"})
        seconds = round(time.perf_counter() - t0, 2)
        rows += [{**r, "seconds": seconds} for r in mine]
        del h
    return pd.DataFrame(rows)


_METRIC_OF = {  # optimizer -> [(quantity, hessian, smoothness metric, upper bound, estimated value)]
    "adam": [("l11_per_dim", "H", "H(L, Φ), Φ of Adam", "‖∇²L(x)‖₁,₁", "‖H‖₁,₁/d")],
    "rotated_adam": [("l11_per_dim", "R^T H R", "H(L∘R, Φ), Φ of Adam", "‖Rᵀ∇²L(x)R‖₁,₁", "‖RᵀHR‖₁,₁/d")],
    "adasgd": [
        ("spectral_norm", "H", "H(L, Φ), Φ of AdaSGD", "d‖∇²L(x)‖₂", "‖H‖₂"),
        ("l11_per_dim", "H", "(for comparison)", "‖∇²L(x)‖₁,₁", "‖H‖₁,₁/d"),
    ],
}


def _pick(g: pd.DataFrame, quantity: str, hess: str) -> pd.Series | None:
    sel = g[(g.quantity == quantity) & (g.hessian == hess)]
    return sel.iloc[0] if len(sel) else None


def table_layout(tidy: pd.DataFrame) -> pd.DataFrame:
    """The paper's Table 2/4 layout (RECONSTRUCTED): each run's own checkpoint, then AdaSGD's ‖H‖₁,₁/d."""
    rows = []
    for (run, opt), g in tidy.groupby(["run", "optimizer"], sort=False):
        for quantity, hess, metric, bound, shown in _METRIC_OF.get(opt, []):
            r = _pick(g, quantity, hess)
            if r is None:
                continue
            row = {"Optimizer": optim.LABELS[opt], "Smoothness metric": metric, "Upper bound": bound}
            row |= {"Quantity": shown, "Estimated value": float(r.value), "lo": float(r.lo)}
            rows.append(row | {"hi": float(r.hi), "run": run, "optimizer": opt})
    out = pd.DataFrame(rows)
    if len(out):
        out = _in_paper_order(out, out.optimizer, last=out["Smoothness metric"] == "(for comparison)")
        out["Estimate"] = [
            Measured.band(v, lo, hi).text(3) if hi > lo else Measured.exact(v).text(3)
            for v, lo, hi in out[["Estimated value", "lo", "hi"]].to_numpy()
        ]
    return out


def same_checkpoint(tidy: pd.DataFrame) -> pd.DataFrame:
    """Per run, ‖H‖₁,₁/d against ‖RᵀHR‖₁,₁/d at the same weights (bands, ratio, ‖H‖₂, raw values)."""
    rows = []
    for (run, opt), g in tidy.groupby(["run", "optimizer"], sort=False):
        a, b = _pick(g, "l11_per_dim", "H"), _pick(g, "l11_per_dim", "R^T H R")
        if a is None or b is None:
            continue
        s = _pick(g, "spectral_norm", "H")
        row = {"run": run, "optimizer": opt, "checkpoint of": optim.LABELS.get(opt, opt)}
        row["‖H‖₁,₁/d"] = Measured.band(a.value, a.lo, a.hi).text(3)
        row["‖RᵀHR‖₁,₁/d"] = Measured.band(b.value, b.lo, b.hi).text(3)
        row["ratio rotated / unrotated"] = float(b.value / a.value)
        row["‖H‖₂"] = float(s.value) if s is not None else math.nan
        rows.append(row)
    out = pd.DataFrame(rows)
    return _in_paper_order(out, out.optimizer) if len(out) else out


def table_views(tidy: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(table, same)``: the shown columns of :func:`table_layout` and :func:`same_checkpoint`."""
    table = table_layout(tidy).drop(columns=["run", "optimizer", "lo", "hi", "Estimated value"])
    same = same_checkpoint(tidy)
    return table, same[["checkpoint of", "‖H‖₁,₁/d", "‖RᵀHR‖₁,₁/d", "ratio rotated / unrotated", "‖H‖₂"]]


def norm_values(tidy: pd.DataFrame) -> dict[str, Measured]:
    """The norms as :class:`Measured`, keyed e.g. ``"l11:H@adam"``, ``"l11:RHR@adam"``, ``"spec@adasgd"``."""
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

_OWN = "each at its own checkpoint"
_FASTER = "the smaller norm is faster: Adam's final loss <"
_AT_ADAM = "same checkpoint (Adam's weights): ‖H‖₁,₁/d <"
_AT_ROTATED = "same checkpoint (rotated Adam's weights): ‖H‖₁,₁/d <"
#: (claim, smaller, larger, origin) of Tables 2 and 4.
_CLAIMS = [
    (f"‖H‖₁,₁/d (Adam) < ‖RᵀHR‖₁,₁/d (rotated Adam), {_OWN}", "l11:H@adam", "l11:RHR@rotated_adam", PAPER),
    (f"‖H‖₁,₁/d (Adam) < ‖H‖₂ (AdaSGD), {_OWN}", "l11:H@adam", "spec@adasgd", PAPER),
    (f"{_FASTER} rotated Adam's", "loss@adam", "loss@rotated_adam", PAPER),
    (f"{_FASTER} AdaSGD's", "loss@adam", "loss@adasgd", PAPER),
    (f"{_AT_ADAM} ‖H‖₂", "l11:H@adam", "spec@adam", BOOK),
    (f"{_AT_ADAM} ‖RᵀHR‖₁,₁/d", "l11:H@adam", "l11:RHR@adam", BOOK),
    (f"{_AT_ROTATED} ‖RᵀHR‖₁,₁/d", "l11:H@rotated_adam", "l11:RHR@rotated_adam", BOOK),
]
#: What the paper reports for a claim of each origin.
_PAPER_SAYS = {PAPER: "stated; values NOT RECOVERED", BOOK: "not measured"}


def norm_claims(
    tidy: pd.DataFrame, losses: Mapping[str, Measured], *, scale: str, where: str, page: str
) -> pd.DataFrame:
    """Table 2's or 4's verdicts (the book's at one checkpoint): norms by their bands, losses by seeds."""
    v = {**norm_values(tidy), **{f"loss@{k}": m for k, m in losses.items()}}
    claims = [Claim(text, a, b, _PAPER_SAYS[origin], where, origin) for text, a, b, origin in _CLAIMS]
    return claims_table(v, claims, scale=scale, labels=NORM_LABELS, page=page)
