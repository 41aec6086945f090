r"""The chapter "Measure your own model": :func:`adamlinf.diagnose.diagnose` on the book's models.

A least-squares problem whose Hessian :math:`H=2X^\top X/n` is known in closed form
(:func:`least_squares`), the tidy tables of several diagnoses (:func:`summary`, :func:`blocks`,
:func:`races`), the closed-form check (:func:`closed_form_check`) and the chapter's verdicts, all
book checks (:func:`verdicts`): the diagnostic agrees with the closed form, and a random rotation
makes each model's loss less :math:`\ell_\infty`-smooth (the mechanism behind Tables 2 and 4,
measured on more models). A race of one seed decides nothing and gets no verdict.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import torch
from torch import nn

from adamlinf import optim
from adamlinf.diagnose import RACERS, Diagnosis, Estimate
from adamlinf.studies.verdicts import BOOK, Measured, compare, rule_text, verdict_row

#: The ``where`` of the chapter's verdict rows.
WHERE = "Diagnostic"


def least_squares(n: int, p: int, *, seed: int = 0, dtype=torch.float64):
    r"""Linear least squares :math:`L(w)=\frac1n\|Xw-y\|^2` with column scales spread over a decade.

    Its Hessian is :math:`H=2X^\top X/n` at every :math:`w`.

    Args:
        n: Rows of :math:`X`.
        p: Columns (the dimension :math:`d`).
        seed: Seed of :math:`X`, :math:`y` and the weights.
        dtype: The dtype.

    Returns:
        ``(model, loss_fn, batches, H)``.
    """
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
        for prefix, e in (
            ("rotated_l11_per_dim", dg.rotated_l11_per_dim),
            ("rotated_advantage", dg.rotated_advantage),
        ):
            row.update({prefix: e.value if e else None, f"{prefix}_lo": e.lo if e else None,
                        f"{prefix}_hi": e.hi if e else None})  # fmt: skip
        row.update(seconds=dg.seconds, n_products=dg.n_products, n_probes=dg.n_probes)
        rows.append(row)
    return pd.DataFrame(rows)


def blocks(diags: Mapping[tuple[str, str], Diagnosis]) -> pd.DataFrame:
    """The blocks tables of several diagnoses, stacked, with ``model`` and ``state`` columns."""
    parts = [dg.blocks.assign(model=m, state=s) for (m, s), dg in diags.items() if len(dg.blocks)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def races(diags: Mapping[tuple[str, str], Diagnosis]) -> pd.DataFrame:
    """The races of several diagnoses, stacked (every learning rate), with ``model`` and ``state``."""
    parts = [dg.race.assign(model=m, state=s) for (m, s), dg in diags.items() if dg.race is not None]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _text(value, lo, hi) -> str:
    if value is None or pd.isna(value):
        return "—"
    return Estimate(float(value), float(lo), float(hi)).text()


def overview(summary_table: pd.DataFrame, race_table: pd.DataFrame) -> pd.DataFrame:
    """The closing table: advantage and rotated advantage with bands, the race's best final losses."""
    rows = []
    for r in summary_table.itertuples():
        row = {
            "model": r.model,
            "state": r.state,
            "d": r.d,
            "advantage d‖H‖₂/‖H‖₁,₁": _text(r.advantage, r.advantage_lo, r.advantage_hi),
            "after a rotation": _text(r.rotated_advantage, r.rotated_advantage_lo, r.rotated_advantage_hi),
        }
        g = (
            race_table[(race_table.model == r.model) & (race_table.state == r.state)]
            if len(race_table)
            else []
        )
        for opt in RACERS:
            label = optim.LABELS[opt]
            best = g[(g.optimizer == opt) & g.best] if len(g) else []
            if len(best):
                edge = "" if best.interior.iloc[0] else ", edge"
                row[f"{label} final loss (lr)"] = (
                    f"{best.final_loss.iloc[0]:.4g} ({best.lr.iloc[0]:.3g}{edge})"
                )
            else:
                row[f"{label} final loss (lr)"] = "—"
        rows.append(row)
    return pd.DataFrame(rows)


def closed_form_check(diag: Diagnosis, H: torch.Tensor) -> pd.DataFrame:
    """The diagnosis of a problem with a known Hessian against the exact numbers."""
    H = H.to(torch.float64)
    d = H.shape[0]
    exact_l11 = float(H.abs().sum()) / d
    exact_spec = float(torch.linalg.eigvalsh(H).abs().max())
    return pd.DataFrame(
        [
            {"quantity": "‖H‖₁,₁/d", "exact": exact_l11, "diagnose": diag.l11_per_dim.value,
             "band": f"[{diag.l11_per_dim.lo:.4g}, {diag.l11_per_dim.hi:.4g}]",
             "agrees": bool(diag.l11_per_dim.lo <= exact_l11 <= diag.l11_per_dim.hi)},
            {"quantity": "‖H‖₂", "exact": exact_spec, "diagnose": diag.spectral_norm, "band": "eigsh",
             "agrees": abs(diag.spectral_norm / exact_spec - 1) <= 1e-6},
            {"quantity": "advantage", "exact": exact_spec / exact_l11, "diagnose": diag.advantage.value,
             "band": f"[{diag.advantage.lo:.4g}, {diag.advantage.hi:.4g}]",
             "agrees": bool(diag.advantage.lo <= exact_spec / exact_l11 <= diag.advantage.hi)},
        ]
    )  # fmt: skip


def verdicts(summary_table: pd.DataFrame, closed_form: pd.DataFrame, *, scale: str) -> pd.DataFrame:
    r"""The chapter's verdicts (book checks, ``where="Diagnostic"``).

    * the diagnostic agrees with the closed form of least squares (every row of
      :func:`closed_form_check` inside its band or tolerance): holds or fails;
    * for every diagnosis with a rotation, "a random rotation makes the loss less
      :math:`\ell_\infty`-smooth": :math:`\|H\|_{1,1}/d` below
      :math:`\|\mathcal R^\top H\mathcal R\|_{1,1}/d`, decided outside the two bands
      (:func:`adamlinf.studies.verdicts.compare`).
    """
    rows = [
        verdict_row(
            "diagnose agrees with the closed form of least squares (H = 2XᵀX/n): ‖H‖₁,₁/d and the advantage "
            "inside their 90% bands, ‖H‖₂ to 1e-6",
            "holds" if bool(closed_form.agrees.all()) else "fails",
            ours="; ".join(
                f"{r.quantity} {r.diagnose:.4g} vs {r.exact:.4g}" for r in closed_form.itertuples()
            ),
            scale=scale,
            rule="band covers the exact value; rtol 1e-6",
            page="diagnose_models",
            where=WHERE,
            origin=BOOK,
        )
    ]
    for r in summary_table.itertuples():
        if r.rotated_l11_per_dim is None or pd.isna(r.rotated_l11_per_dim):
            continue
        a = Measured.band(r.l11_per_dim, r.l11_per_dim_lo, r.l11_per_dim_hi)
        b = Measured.band(r.rotated_l11_per_dim, r.rotated_l11_per_dim_lo, r.rotated_l11_per_dim_hi)
        rows.append(
            verdict_row(
                f"{r.model} ({r.state}): a random rotation makes the loss less ℓ∞-smooth "
                "(‖H‖₁,₁ < ‖RᵀHR‖₁,₁)",
                compare(a, b),
                ours=f"‖H‖₁,₁/d {a.text()} vs ‖RᵀHR‖₁,₁/d {b.text()}",
                scale=scale,
                rule=rule_text(a, b),
                page="diagnose_models",
                where=WHERE,
                origin=BOOK,
            )
        )
    return pd.DataFrame(rows)
