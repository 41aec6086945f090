r"""The chapter "Measure your own model": :func:`adamlinf.diagnose.diagnose` on the book's models.

The book's checks: the diagnostic agrees with least squares' closed form; a random rotation makes each
loss less :math:`\ell_\infty`-smooth (a race of one seed gets no verdict).
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import torch
from torch import nn

from adamlinf import optim, theory
from adamlinf.diagnose import RACERS, Diagnosis, Estimate
from adamlinf.studies.verdicts import BOOK, Measured, all_hold, compare, rule_text, verdict_row


def least_squares(n: int, p: int, *, seed: int = 0, dtype=torch.float64):
    r"""``(model, loss_fn, batches, H)`` of :math:`L(w)=\frac1n\|Xw-y\|^2`, :math:`H=2X^\top X/n`."""
    g = torch.Generator().manual_seed(seed)
    scales = torch.logspace(-0.5, 0.5, p, dtype=dtype)
    X = torch.randn(n, p, generator=g, dtype=dtype) * scales
    y = torch.randn(n, generator=g, dtype=dtype)
    torch.manual_seed(seed)
    model = nn.Linear(p, 1, bias=False).to(dtype)

    def loss_fn(m, b):
        return ((m(b[0]).squeeze(-1) - b[1]) ** 2).mean()

    return model, loss_fn, [(X, y)], 2 * X.T @ X / n


def summary(diags: Mapping[tuple[str, str], Diagnosis]) -> pd.DataFrame:
    """One row per diagnosis ``(model, state)``: d, the norms, the advantage and its rotated twin."""
    rows = []
    for (model, state), dg in diags.items():
        row = {"model": model, "state": state, "d": dg.d, "loss": dg.loss}
        for prefix, e in (("l11_per_dim", dg.l11_per_dim), ("advantage", dg.advantage)):
            row.update({prefix: e.value, f"{prefix}_lo": e.lo, f"{prefix}_hi": e.hi})
        row["spectral_norm"] = dg.spectral_norm
        for prefix in ("rotated_l11_per_dim", "rotated_advantage"):
            e = getattr(dg, prefix) or Estimate(None, None, None)  # no rotation: empty cells
            row.update({prefix: e.value, f"{prefix}_lo": e.lo, f"{prefix}_hi": e.hi})
        row.update(seconds=dg.seconds, n_products=dg.n_products, n_probes=dg.n_probes)
        rows.append(row)
    return pd.DataFrame(rows)


def stacked(diags: Mapping[tuple[str, str], Diagnosis], table: str) -> pd.DataFrame:
    """The ``"blocks"`` or ``"race"`` tables of several diagnoses, stacked, with ``model`` and ``state``."""
    tables = {key: getattr(dg, table) for key, dg in diags.items()}
    parts = [t.assign(model=m, state=s) for (m, s), t in tables.items() if t is not None and len(t)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _text(r, prefix: str) -> str:
    value, lo, hi = (getattr(r, prefix + end) for end in ("", "_lo", "_hi"))
    return "—" if pd.isna(value) else Estimate(float(value), float(lo), float(hi)).text()


def overview(summary_table: pd.DataFrame, race_table: pd.DataFrame) -> pd.DataFrame:
    """The closing table: advantage and rotated advantage with bands, the race's best final losses."""
    groups = dict(list(race_table.groupby(["model", "state"], sort=False))) if len(race_table) else {}
    rows = []
    for r in summary_table.itertuples():
        row = {"model": r.model, "state": r.state, "d": r.d}
        row["advantage d‖H‖₂/‖H‖₁,₁"] = _text(r, "advantage")
        row["after a rotation"] = _text(r, "rotated_advantage")
        g = groups.get((r.model, r.state), [])
        for opt in RACERS:
            best = g[(g.optimizer == opt) & g.best] if len(g) else []
            edge = "" if len(best) and best.interior.iloc[0] else ", edge"
            text = f"{best.final_loss.iloc[0]:.4g} ({best.lr.iloc[0]:.3g}{edge})" if len(best) else "—"
            row[f"{optim.LABELS[opt]} final loss (lr)"] = text
        rows.append(row)
    return pd.DataFrame(rows)


def _banded(quantity: str, exact: float, e: Estimate) -> dict:
    band = f"[{e.lo:.4g}, {e.hi:.4g}]"
    agrees = bool(e.lo <= exact <= e.hi)
    return dict(quantity=quantity, exact=exact, diagnose=e.value, band=band, agrees=agrees)


def closed_form_check(diag: Diagnosis, H: torch.Tensor) -> pd.DataFrame:
    """The diagnosis of a problem with a known Hessian against the exact numbers (column ``agrees``)."""
    l11, spec = theory.l11_exact(H) / H.shape[0], theory.l2_smoothness(H)
    spectral = dict(quantity="‖H‖₂", exact=spec, diagnose=diag.spectral_norm, band="eigsh")
    spectral["agrees"] = abs(diag.spectral_norm / spec - 1) <= 1e-6
    banded = [_banded("‖H‖₁,₁/d", l11, diag.l11_per_dim), _banded("advantage", spec / l11, diag.advantage)]
    return pd.DataFrame([banded[0], spectral, banded[1]])


def verdicts(summary_table: pd.DataFrame, closed_form: pd.DataFrame, *, scale: str) -> pd.DataFrame:
    """The book checks: the closed form, and per rotation ‖H‖₁,₁ < ‖RᵀHR‖₁,₁ outside the bands."""
    common = dict(scale=scale, page="diagnose_models", where="Diagnostic", origin=BOOK)
    ours = "; ".join(f"{r.quantity} {r.diagnose:.4g} vs {r.exact:.4g}" for r in closed_form.itertuples())
    claim = (
        "diagnose agrees with the closed form of least squares (H = 2XᵀX/n): ‖H‖₁,₁/d and the advantage "
        "inside their 90% bands, ‖H‖₂ to 1e-6"
    )
    rule = "band covers the exact value; rtol 1e-6"
    rows = [verdict_row(claim, all_hold(closed_form.agrees), ours=ours, rule=rule, **common)]
    for r in summary_table.itertuples():
        if pd.isna(r.rotated_l11_per_dim):
            continue
        a = Measured.band(r.l11_per_dim, r.l11_per_dim_lo, r.l11_per_dim_hi)
        b = Measured.band(r.rotated_l11_per_dim, r.rotated_l11_per_dim_lo, r.rotated_l11_per_dim_hi)
        claim = f"{r.model} ({r.state}): a random rotation makes the loss less ℓ∞-smooth (‖H‖₁,₁ < ‖RᵀHR‖₁,₁)"
        ours = f"‖H‖₁,₁/d {a.text()} vs ‖RᵀHR‖₁,₁/d {b.text()}"
        rows.append(verdict_row(claim, compare(a, b), ours=ours, rule=rule_text(a, b), **common))
    return pd.DataFrame(rows)
