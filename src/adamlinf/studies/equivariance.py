r"""Theorem 2.2 (Figure 2): which optimizers are rotation- and permutation-equivariant.

Runs on a 2-d quadratic and its rotation, the gap between a run on :math:`L\circ R` and the mapped run
on :math:`L` over random rotations and permutations, and the page's verdicts.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd
import torch

from .. import optim, problems, report, rotations
from . import verdicts


def _split(cfg: dict) -> tuple[str, float, dict]:
    """``dict(name=..., lr=..., **kwargs)`` as ``(name, lr, kwargs)``."""
    return cfg["name"], float(cfg["lr"]), {k: v for k, v in cfg.items() if k not in ("name", "lr")}


def equivariance_trajectories_2d(
    optimizers: dict, *, angle_deg: float, T: int, x0=(2.0, 1.5), eigenvalues=(1.0, 4.0)
) -> pd.DataFrame:
    r"""Figure 2 data (Theorem 2.2): each optimizer on a 2-D quadratic and on its rotation.

    ``T`` steps on :math:`L(x)=\tfrac12x^\top\mathrm{diag}(\text{eigenvalues})x` from ``x0`` and on
    :math:`L\circ R` (:math:`R` the planar rotation by ``angle_deg``) from :math:`R^\top x_0`;
    ``optimizers``: label -> ``dict(name=..., lr=..., **kwargs)`` for :func:`adamlinf.problems.run`.

    Returns:
        Columns ``optimizer, run ("on L" | "on L o R"), t``, the iterate in the frame of :math:`L`
        (``x1, x2``; the rotated run mapped back by :math:`R`) and of :math:`L\circ R` (``y1, y2``):
        the same points for both runs when the optimizer is equivariant.
    """
    A = torch.diag(torch.as_tensor(eigenvalues, dtype=torch.float64))
    if A.shape != (2, 2):
        raise ValueError("the Figure 2 example is two-dimensional: give two eigenvalues")
    a = math.radians(angle_deg)
    R = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], dtype=torch.float64)
    x0 = torch.as_tensor(x0, dtype=torch.float64)
    frames = []
    for label, cfg in optimizers.items():
        name, lr, kw = _split(cfg)
        xs = problems.run(A, x0, name, steps=T, lr=lr, iterates=True, **kw)["x"]
        xr = problems.run(R.T @ A @ R, R.T @ x0, name, steps=T, lr=lr, iterates=True, **kw)["x"]
        for run, orig, rot in (("on L", xs, xs @ R), ("on L o R", xr @ R.T, xr)):
            points = {"x1": orig[:, 0], "x2": orig[:, 1], "y1": rot[:, 0], "y2": rot[:, 1]}
            columns = {"optimizer": label, "run": run, "t": np.arange(T + 1)}
            frames.append(pd.DataFrame(columns | {k: v.numpy() for k, v in points.items()}))
    return pd.concat(frames, ignore_index=True)


def equivariance_gaps(
    optimizers: dict, *, d: int, T: int, n_transforms: int, seed: int = 0, exponent: float = 0.5
) -> pd.DataFrame:
    r"""Definition 2.1 measured in :math:`d` dimensions (Theorem 2.2), for rotations and permutations.

    :func:`adamlinf.rotations.equivariance_gap` of every optimizer (``optimizers`` as for Figure 2) on
    :math:`L(x)=\tfrac12x^\top\mathrm{diag}(i^{-\text{exponent}})x` from a Gaussian :math:`x_0` (seed
    ``seed``), ``T`` steps, ``n_transforms`` Haar rotations and random permutations (draw :math:`k`: seed
    ``seed + 1 + k``): :math:`\max_t\|\tilde x_t-R^\top x_t\|_2/\max_t\|x_t\|_2` (0 up to rounding iff
    equivariant). Columns ``optimizer, transformation, draw, gap``.
    """
    A = torch.diag(problems.power_law_spectrum(d, exponent))
    x0 = torch.randn(d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)

    def loss_fn(x: torch.Tensor, t: int) -> torch.Tensor:
        return 0.5 * x @ (A @ x)

    rows = []
    with problems.one_thread():  # d x d products: thread hand-offs cost more than they save
        for k in range(n_transforms):
            rotation = rotations.haar(d, seed=seed + 1 + k, dtype=torch.float64)
            perm = rotations.random_permutation(d, seed=seed + 1 + k, dtype=torch.float64)
            transforms = {"rotation": rotation, "permutation": rotations.to_dense(perm)}
            for kind, R in transforms.items():
                for label, cfg in optimizers.items():
                    name, lr, kw = _split(cfg)
                    build = functools.partial(optim.create, name, lr=lr, **kw)
                    res = rotations.equivariance_gap(build, loss_fn, x0, R, T)
                    gap = res.gap / float(torch.linalg.vector_norm(res.xs, dim=1).max())
                    rows.append(dict(optimizer=label, transformation=kind, draw=k, gap=gap))
    return pd.DataFrame(rows)


#: Theorem 2.2: which optimizer is equivariant under which transformation.
EQUIVARIANT = {
    "sgd": ("rotation", "permutation"),
    "adasgd": ("rotation", "permutation"),
    "adam": ("permutation",),
    "signgd": ("permutation",),
}


def equivariance_verdicts(gaps: pd.DataFrame, optimizers: dict, *, scale: str, tol=1e-10) -> pd.DataFrame:
    """The Theorem 2.2 page's verdict table: one row per optimizer and kind of transformation.

    ``gaps``: :func:`equivariance_gaps`'s table for ``optimizers`` (whose ``name`` picks the prediction
    of :data:`EQUIVARIANT`). "Equivariant" holds when every draw's relative gap is below ``tol`` (round-off
    is about 1e-15), "not equivariant" when every one is above ``1e3 * tol``; else inconclusive.
    """
    rule = f"equivariant: every gap < {tol:g}; not: every gap > {1e3 * tol:g}"
    kw = dict(rule=rule, scale=scale, page="thm22_equivariance", where="Theorem 2.2")
    rows = []
    for label, cfg in optimizers.items():
        for kind in ("rotation", "permutation"):
            g = gaps[(gaps.optimizer == label) & (gaps.transformation == kind)].gap
            predicted = kind in EQUIVARIANT[cfg["name"]]
            lo, hi = float(g.min()), float(g.max())
            rows.append(
                verdicts.verdict_row(
                    f"Theorem 2.2: {label} is {'' if predicted else 'not '}{kind}-equivariant",
                    verdicts.threshold_verdict(g, below=predicted, tol=tol),
                    ours=f"relative gap {report.fmt(lo, 2)} to {report.fmt(hi, 2)} over {len(g)} draws",
                    paper="equivariant" if predicted else "not equivariant",
                    **kw,
                )
            )
    return pd.DataFrame(rows, columns=list(verdicts.VERDICT_COLUMNS))
