r"""The quadratic of Section 4.1 (Table 1) and a batched runner for it.

Problem (Section 4.1, RECONSTRUCTED; see the book's reconstruction notes):

.. math::

    L(x) = \tfrac12 x^\top H x, \qquad H = \operatorname{diag}(\lambda_1, \dots, \lambda_d),

and its rotations :math:`L_\theta(x) = L(R_\theta x)` with :math:`R_\theta = \exp(\theta S)`,
:math:`S = M - M^\top`, :math:`M_{ij} \sim \mathcal N(0, 1)` (built by
:func:`adamlinf.rotations.exp_rotation`). The Hessian of :math:`L_\theta` is
:math:`H_\theta = R_\theta^\top H R_\theta`; a run on :math:`L_\theta` starts at
:math:`R_\theta^\top x_0`, so every rotation starts from the same loss :math:`L(x_0)`.

Stochastic gradients follow Assumption 3.4 with the same :math:`\sigma_i = \sigma` for every
coordinate: the optimizer sees :math:`\nabla L_\theta(x) + \sigma \xi_t` with
:math:`\xi_t \sim \mathcal N(0, I_d)` i.i.d. over steps. Isotropic noise is rotation invariant
in law, so all rotations face the same noise and differ only through :math:`H_\theta`.
:math:`\sigma = 0` gives full-batch gradients.

The paper's :math:`d`, spectrum, :math:`\theta` values, step count, learning-rate grid and
number of seeds were NOT RECOVERED; every one of them is a parameter here. :data:`SPECTRA` holds
five spectra normalised to :math:`\|H\|_2 = \lambda_1 = 1` and :func:`rotation_path` the
rotations :math:`R_\theta` (plus a Haar rotation) shared by all of them.

Batched runner
--------------
:func:`run_batched` runs every (row, learning rate, seed) combination at once. The iterates of
all runs are one tensor ``x`` of shape ``(runs, d)``; learning rates are a per-run ``(runs, 1)``
tensor. Runs are ordered by update rule (optimizer, :math:`\beta_1`, :math:`\beta_2`), then by
problem, so that runs sharing an update rule form one contiguous slice (a "group") and, inside it,
runs sharing a Hessian form contiguous sub-slices. Per step there is one batched matrix product
per (group, problem) slice (``x[slice] @ H_theta``; a diagonal Hessian uses an elementwise
product) and one batched optimizer update per group, done by the functional forms of
:mod:`adamlinf.optim` (``adam_update_``, ``signgd_update_``) with the
``(n, 1)`` learning-rate tensor, plus :func:`sgd_update_`. The only Python loops are over steps,
over the handful of update rules and over the problems; none is over learning rates or seeds.
``Experiment.x0`` may hold one start per seed (shape ``(n_seeds, d)``), so that seeds differ in
:math:`x_0` as well as in the noise (the only source of spread when :math:`\sigma = 0`).

The updates are the PyTorch forms the paper's experiments ran (VERIFIED from the authors'
code): Adam = ``torch.optim.Adam`` (bias correction, :math:`\epsilon` outside the root,
:math:`m_0 = v_0 = 0`); AdaSGD = the same with the second moment replaced by the single scalar
:math:`\|g\|_2^2/d` (Algorithm 2, authors' code form); SGD = ``torch.optim.SGD`` with
momentum :math:`\mu = \beta_1` (heavy ball, no dampening); SignGD :math:`x \leftarrow x - \eta
\operatorname{sign}(g)`. :func:`run_one_by_one` runs one combination with the optimizer *classes*
(``adamlinf.optim.create``, whose Adam is
``torch.optim.Adam``) and is the reference the batched maths is tested against.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from scipy.sparse.linalg import eigsh
from tqdm import tqdm

from . import optim, partitions, theory
from .rotations import exp_rotation, haar

__all__ = [
    "power_law_spectrum",
    "SPECTRA",
    "spectrum",
    "rotation_path",
    "rotated_family",
    "Quadratic",
    "RotatedQuadratic",
    "GradientNoise",
    "Row",
    "Experiment",
    "QuadraticResult",
    "default_lr_grids",
    "build_experiment",
    "run_batched",
    "sgd_update_",
    "run_one_by_one",
    "tune",
    "lr_factor",
    "OPTIMIZERS",
    "SCHEDULES",
]

OPTIMIZERS = ("adam", "adasgd", "sgd", "signgd")  # the names of optim.OPTIMIZERS the batched runner runs


# ----------------------------------------------------------------------------------------------
# The problem
# ----------------------------------------------------------------------------------------------
def power_law_spectrum(d: int, alpha: float = 0.5, *, dtype=torch.float64, device="cpu") -> torch.Tensor:
    r"""Eigenvalues of a power law.

    Eigenvalues :math:`\lambda_i = i^{-\alpha}`, :math:`i = 1..d` (our choice; the paper's
    spectrum was NOT RECOVERED).

    For :math:`\alpha > 0` the spectrum is heterogeneous, so for the unrotated (diagonal)
    Hessian :math:`\|H\|_{1,1}/d = \operatorname{tr}(H)/d = \operatorname{mean}_i \lambda_i <
    \lambda_1 = \|H\|_2`. Under a Haar rotation the off-diagonal entries have size about
    :math:`\|\lambda\|_2 / d`, so :math:`\|H_\theta\|_{1,1}/d \approx \sqrt{2/\pi}\,
    \|\lambda\|_2`, which exceeds :math:`\|H\|_2 = 1` when :math:`\|\lambda\|_2 > 1.25`
    (e.g. :math:`\alpha = 0.5, d = 1000`: :math:`\|\lambda\|_2 \approx 2.7`).
    """
    if int(d) != d or d < 1:
        raise ValueError(f"d must be a positive integer, got {d!r}")
    if not math.isfinite(alpha) or alpha < 0:
        raise ValueError(f"alpha must be a finite number >= 0, got {alpha!r}")
    i = torch.arange(1, int(d) + 1, dtype=dtype, device=device)
    return i.pow(-float(alpha))


def _log_uniform(d: int, *, dtype=torch.float64, device="cpu", lo: float = 1e-3) -> torch.Tensor:
    if d == 1:
        return torch.ones(1, dtype=dtype, device=device)
    return torch.logspace(0.0, math.log10(lo), int(d), dtype=dtype, device=device)


def _linear(d: int, *, dtype=torch.float64, device="cpu") -> torch.Tensor:
    return torch.arange(int(d), 0, -1, dtype=dtype, device=device) / int(d)


#: The diagonal spectra of the Table 1 sweep (our choice; the paper's was NOT RECOVERED), by name:
#: :math:`\lambda_i = i^{-1/2}`, :math:`1/i`, :math:`1/i^2`, log-uniform on :math:`[10^{-3}, 1]`
#: (the quantiles :math:`10^{-3(i-1)/(d-1)}`, deterministic) and :math:`i/d` (listed from the
#: largest). Each is normalised to :math:`\lambda_1 = \|H\|_2 = 1`, and listed in decreasing order.
SPECTRA = {
    "i^-1/2": lambda d, **kw: power_law_spectrum(d, 0.5, **kw),
    "1/i": lambda d, **kw: power_law_spectrum(d, 1.0, **kw),
    "1/i^2": lambda d, **kw: power_law_spectrum(d, 2.0, **kw),
    "log-uniform": _log_uniform,
    "i/d": _linear,
}


def spectrum(name: str, d: int, *, dtype=torch.float64, device="cpu") -> torch.Tensor:
    r"""The eigenvalues of a named spectrum.

    The eigenvalues :math:`\lambda_1 \ge \dots \ge \lambda_d > 0` of spectrum ``name`` (a
    key of :data:`SPECTRA`), normalised so that :math:`\|H\|_2 = \lambda_1 = 1`.

    For the diagonal :math:`H`, :math:`\|H\|_{1,1}/d = \operatorname{mean}_i\lambda_i`, which is
    below :math:`\|H\|_2 = 1` for every spectrum here (the coordinate-wise geometry is the good
    one); rotations raise it, a Haar rotation to about
    :math:`\bar\lambda + \sqrt{2/\pi}\,\|\lambda - \bar\lambda\|_2`.

    Raises:
        ValueError: unknown ``name`` or ``d < 1``.
    """
    if name not in SPECTRA:
        raise ValueError(f"spectrum must be one of {list(SPECTRA)}, got {name!r}")
    if int(d) != d or d < 1:
        raise ValueError(f"d must be a positive integer, got {d!r}")
    lam = SPECTRA[name](int(d), dtype=dtype, device=device)
    return lam / lam.abs().max()


class Quadratic:
    r""":math:`L(x) = \frac12 x^\top H x` with :math:`H = R^\top \operatorname{diag}(\lambda) R`.

    ``rotation=None`` means :math:`R = I` (the diagonal problem of Section 4.1); the Hessian is then
    applied as an elementwise product. All methods accept ``x`` of shape ``(d,)`` or ``(n, d)``.

    Args:
        eigenvalues: :math:`\lambda \in \mathbb R^d` (nonnegative for a convex problem; not
            enforced, but the norms below assume a symmetric :math:`H`).
        rotation: orthogonal :math:`R` of shape ``(d, d)`` or ``None``.
        name: label used in result tables.
    """

    def __init__(self, eigenvalues: torch.Tensor, rotation: torch.Tensor | None = None, name: str = "L"):
        lam = torch.as_tensor(eigenvalues)
        if lam.ndim != 1 or lam.numel() == 0:
            raise ValueError(f"eigenvalues must be a non-empty 1-D tensor, got shape {tuple(lam.shape)}")
        if not torch.is_floating_point(lam):
            lam = lam.to(torch.float64)
        if not torch.isfinite(lam).all():
            raise ValueError("eigenvalues must be finite")
        self.eigenvalues = lam
        self.d = lam.numel()
        if rotation is not None:
            rotation = torch.as_tensor(rotation, dtype=lam.dtype, device=lam.device)
            if rotation.shape != (self.d, self.d):
                raise ValueError(
                    f"rotation must have shape ({self.d}, {self.d}), got {tuple(rotation.shape)}"
                )
        self.rotation = rotation
        self.name = name
        self._hessian: torch.Tensor | None = None

    # -- structure -------------------------------------------------------------------------
    @property
    def is_diagonal(self) -> bool:
        """True when :math:`R = I` (the Hessian is applied elementwise)."""
        return self.rotation is None

    @property
    def dtype(self):
        """The floating type of the eigenvalues."""
        return self.eigenvalues.dtype

    @property
    def device(self):
        """The device of the eigenvalues."""
        return self.eigenvalues.device

    @property
    def hessian(self) -> torch.Tensor:
        r"""The dense Hessian.

        The dense :math:`H = R^\top \operatorname{diag}(\lambda) R`, symmetrised exactly
        (:math:`(H + H^\top)/2`) so that :math:`x^\top H` and :math:`Hx` agree bit for bit.
        """
        if self._hessian is None:
            if self.rotation is None:
                self._hessian = torch.diag(self.eigenvalues)
            else:
                R = self.rotation
                H = (R.T * self.eigenvalues) @ R
                self._hessian = 0.5 * (H + H.T)
        return self._hessian

    def to(self, dtype=None, device=None) -> Quadratic:
        """A copy in another dtype / on another device."""
        out = self.__class__.__new__(self.__class__)
        out.__dict__.update(self.__dict__)
        out.eigenvalues = self.eigenvalues.to(dtype=dtype, device=device)
        out.rotation = None if self.rotation is None else self.rotation.to(dtype=dtype, device=device)
        out._hessian = None if self._hessian is None else self._hessian.to(dtype=dtype, device=device)
        return out

    # -- function values ------------------------------------------------------------------
    def _check_x(self, x: torch.Tensor) -> None:
        if x.shape[-1] != self.d or x.ndim not in (1, 2):
            raise ValueError(f"x must have shape ({self.d},) or (n, {self.d}), got {tuple(x.shape)}")

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`\nabla L(x) = H x` (row-wise for a batch)."""
        self._check_x(x)
        if self.rotation is None:
            return x * self.eigenvalues
        return x @ self.hessian  # H symmetric: (H x_r)^T = x_r^T H

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`L(x) = \frac12 x^\top H x`; differentiable (autograd) and batched."""
        return 0.5 * (x * self.grad(x)).sum(-1)

    def start(self, x0: torch.Tensor) -> torch.Tensor:
        r"""The starting point of a rotated run.

        The starting point :math:`R^\top x_0` of a rotated run, so that
        :math:`L_\theta(R^\top x_0) = L(x_0)`.
        """
        self._check_x(x0)
        return x0.clone() if self.rotation is None else x0 @ self.rotation  # (R^T x0)^T = x0^T R

    # -- the two geometry numbers of Table 1 ------------------------------------------------
    def l11_per_dim(self) -> float:
        r"""The (1,1)-norm per dimension.

        :math:`\|H\|_{1,1}/d = \frac1d\sum_{ij}|H_{ij}|`, exact from the dense matrix
        (:math:`\operatorname{tr}(H)/d` when :math:`H` is diagonal and nonnegative).
        """
        if self.rotation is None:
            return float(self.eigenvalues.abs().sum()) / self.d
        return float(self.hessian.abs().sum()) / self.d

    def spectral_norm(self) -> float:
        r"""The spectral norm.

        :math:`\|H\|_2`, the largest :math:`|\text{eigenvalue}|`, computed with
        ``scipy.sparse.linalg.eigsh`` (Lanczos, ``tol=1e-12``) on the dense :math:`H` (rotation invariant,
        so it equals
        :math:`\max_i|\lambda_i|` up to round-off).
        """
        if self.rotation is None:
            return float(self.eigenvalues.abs().max())
        H = self.hessian.detach().to("cpu", torch.float64).numpy()
        v0 = np.ones(self.d) / math.sqrt(self.d)  # deterministic start vector
        return float(abs(eigsh(H, k=1, which="LM", tol=1e-12, v0=v0, return_eigenvectors=False)[0]))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(name={self.name!r}, d={self.d}, diagonal={self.is_diagonal})"


class RotatedQuadratic(Quadratic):
    r"""The rotated quadratic of Section 4.1.

    :math:`L_\theta(x) = L(R_\theta x)` with :math:`R_\theta = \exp(\theta S)` from
    :func:`adamlinf.rotations.exp_rotation` (Section 4.1). Hessian
    :math:`R_\theta^\top H R_\theta`.

    Args:
        base_eigenvalues: the spectrum :math:`\lambda` of the unrotated diagonal :math:`H`.
        theta: rotation strength :math:`\theta \ge 0` (``0`` gives :math:`R = I` exactly).
        seed: seed of the Gaussian :math:`M` (the same seed for every :math:`\theta` gives one
            path :math:`\theta \mapsto R_\theta` through the rotation group).
    """

    def __init__(
        self, base_eigenvalues: torch.Tensor, theta: float, *, seed: int = 0, name: str | None = None
    ):
        if not math.isfinite(theta) or theta < 0:
            raise ValueError(f"theta must be a finite number >= 0, got {theta!r}")
        lam = torch.as_tensor(base_eigenvalues)
        R = exp_rotation(lam.numel(), float(theta), seed=seed, dtype=lam.dtype, device=lam.device)
        super().__init__(lam, R, name=name or f"L_theta={theta:g}")
        self.theta = float(theta)
        self.seed = int(seed)


def rotation_path(
    d: int,
    thetas: Sequence[float],
    *,
    seed: int = 0,
    haar_seed: int | None = None,
    dtype=torch.float64,
    device="cpu",
) -> list[tuple[float, torch.Tensor | None]]:
    r"""The rotations of the Table 1 sweep.

    :math:`R = I` (``None``), :math:`R_\theta = \exp(\theta S)`
    for each ``theta`` (one :math:`S` from ``seed``, so the path leaves the identity along one
    geodesic) and, when ``haar_seed`` is not ``None``, a Haar rotation labelled
    :math:`\theta = \infty`.

    :math:`S`'s eigenvalues fill :math:`[-2\sqrt{2d}, 2\sqrt{2d}]\,i`, so :math:`\theta\sqrt d \ll 1`
    barely rotates and :math:`\theta\sqrt d \gtrsim 3` is close to Haar in the norms that matter
    here. The matrices are shared by every spectrum built on them (:func:`rotated_family`).

    Returns:
        ``[(0.0, None), (theta_1, R_1), ..., (inf, Q)]``.
    """
    thetas = [float(t) for t in thetas]
    if any((not math.isfinite(t)) or t <= 0 for t in thetas):
        raise ValueError(f"thetas must be finite and > 0 (theta = 0 is always included), got {thetas}")
    out: list[tuple[float, torch.Tensor | None]] = [(0.0, None)]
    if thetas:
        Rs = exp_rotation(int(d), thetas, seed=seed, dtype=dtype, device=device)
        out += [(t, Rs[k]) for k, t in enumerate(thetas)]
    if haar_seed is not None:
        out.append((math.inf, haar(int(d), seed=int(haar_seed), dtype=dtype, device=device)))
    return out


def rotated_family(
    eigenvalues: torch.Tensor, rotations: Sequence[tuple[float, torch.Tensor | None]], *, spectrum: str = ""
) -> list[Quadratic]:
    """One quadratic per rotation.

    One :class:`Quadratic` per rotation of :func:`rotation_path`, each with attributes ``theta``
    (``inf`` for Haar) and ``spectrum`` (a label), all with the eigenvalues ``eigenvalues``.
    """
    out = []
    for th, R in rotations:
        q = Quadratic(eigenvalues, R, name=f"{spectrum} θ={th:g}".strip())
        q.theta, q.spectrum = float(th), spectrum
        out.append(q)
    return out


class GradientNoise:
    r"""Additive Gaussian gradient noise :math:`\sigma\xi_t`, one independent stream per seed.

    Stream ``s`` is drawn from ``torch.Generator(device).manual_seed(base_seed * 1_000_003 + s)``,
    one ``randn(d)`` per step, so a run's noise depends only on (``base_seed``, ``s``, step) and not
    on how many runs are batched together; runs with the same seed index share the noise (common
    random numbers across optimizers and learning rates).
    """

    def __init__(
        self, d: int, n_seeds: int, sigma: float, *, base_seed: int = 0, dtype=torch.float64, device="cpu"
    ):
        if n_seeds < 1:
            raise ValueError(f"n_seeds must be >= 1, got {n_seeds}")
        if not math.isfinite(sigma) or sigma < 0:
            raise ValueError(f"sigma must be a finite number >= 0, got {sigma!r}")
        self.d, self.sigma, self.dtype, self.device = int(d), float(sigma), dtype, torch.device(device)
        self.generators = [
            torch.Generator(device=self.device).manual_seed(int(base_seed) * 1_000_003 + s)
            for s in range(n_seeds)
        ]

    def sample(self) -> torch.Tensor:
        r"""The next :math:`\sigma\xi_t` of every stream, shape ``(n_seeds, d)``."""
        return (
            torch.stack(
                [
                    torch.randn(self.d, generator=g, dtype=self.dtype, device=self.device)
                    for g in self.generators
                ]
            )
            * self.sigma
        )

    def sample_one(self, s: int) -> torch.Tensor:
        r"""The next :math:`\sigma\xi_t` of stream ``s`` only (shape ``(d,)``)."""
        return (
            torch.randn(self.d, generator=self.generators[s], dtype=self.dtype, device=self.device)
            * self.sigma
        )


# ----------------------------------------------------------------------------------------------
# Rows of Table 1
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    r"""One optimizer setting in one table row.

    ``optimizer`` in ``OPTIMIZERS``; ``problem`` indexes :attr:`Experiment.problems`;
    ``beta1`` is the momentum :math:`\mu` for SGD and unused by SignGD; ``column`` names the table
    column (``"beta1=0"`` or ``"beta1=0.9"``); ``lrs`` is the learning-rate grid.
    """

    name: str
    optimizer: str
    problem: int
    beta1: float
    beta2: float
    lrs: tuple[float, ...]
    column: str

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ValueError(f"betas must lie in [0, 1), got ({self.beta1}, {self.beta2})")
        if len(self.lrs) == 0 or any((not math.isfinite(v)) or v <= 0 for v in self.lrs):
            raise ValueError(f"lrs must be a non-empty list of positive numbers, got {self.lrs!r}")


@dataclass
class Experiment:
    """Problems (index 0 = unrotated), rows, the start :math:`x_0` and the noise level."""

    problems: list[Quadratic]
    rows: list[Row]
    x0: torch.Tensor
    sigma: float
    thetas: list[float] = field(default_factory=list)

    def geometry(self) -> pd.DataFrame:
        r""":math:`\|H_\theta\|_{1,1}/d` and :math:`\|H_\theta\|_2` per problem (exact)."""
        return pd.DataFrame(
            [
                {
                    "problem": i,
                    "name": p.name,
                    "theta": getattr(p, "theta", 0.0),
                    "l11_per_dim": p.l11_per_dim(),
                    "spectral_norm": p.spectral_norm(),
                }
                for i, p in enumerate(self.problems)
            ]
        )


def _lr_grid(spec) -> tuple[float, ...]:
    """A learning-rate grid from its description.

    ``[lo, hi, n]`` -> ``n`` log-spaced values from ``lo`` to ``hi``; a list of >3 values or of
    a different form is taken as the grid itself.
    """
    if (
        isinstance(spec, (list, tuple))
        and len(spec) == 3
        and float(spec[2]).is_integer()
        and spec[2] >= 2
        and spec[0] < spec[1]
    ):
        return tuple(float(v) for v in np.logspace(math.log10(spec[0]), math.log10(spec[1]), int(spec[2])))
    return tuple(float(v) for v in spec)


def default_lr_grids(n_lr: int = 13) -> dict:
    r"""Our learning-rate grids.

    Our learning-rate grids, ``n_lr`` log-spaced values per row: :math:`[10^{-5}, 10^{-1}]` for
    Adam, AdaSGD and SignGD (the per-step movement of a sign-like method is about :math:`\eta`,
    and :math:`|x_{0,i}| \sim 1`); :math:`[10^{-3}, 2]` for SGD (stable up to
    :math:`2/\lambda_{\max} = 2` without momentum). ``tune`` flags a best value at an edge.
    """
    if n_lr < 2:
        raise ValueError(f"n_lr must be >= 2, got {n_lr}")
    return {
        "adam": [1e-5, 1e-1, n_lr],
        "adasgd": [1e-5, 1e-1, n_lr],
        "sgd": [1e-3, 2.0, n_lr],
        "signgd": [1e-5, 1e-1, n_lr],
    }


def build_experiment(
    *,
    d: int = 1000,
    alpha: float = 0.5,
    thetas: Sequence[float] = (1e-4, 1e-3, 3e-3, 1e-2, 1e-1),
    rotation_seed: int = 0,
    x0_seed: int = 0,
    sigma: float = 1e-3,
    beta2: float = 0.99,
    betas_momentum: tuple[float, float] = (0.9, 0.99),
    lr_grids: dict | None = None,
    sgd_momentum: float = 0.9,
    dtype=torch.float64,
    device="cpu",
) -> Experiment:
    r"""The rows of Table 1 (RECONSTRUCTED layout; see the reconstruction notes).

    Problems: the diagonal :math:`L` (spectrum :func:`power_law_spectrum`) and
    :math:`L_\theta` for each ``theta``. Rows, each in the column ``beta1=0`` with
    :math:`(\beta_1,\beta_2) = (0, \beta_2)` and the column ``beta1=0.9`` with
    ``betas_momentum``: AdaSGD on :math:`L`; Adam on :math:`L`; Adam on each :math:`L_\theta`;
    SGD on :math:`L` (momentum 0 in the first column, ``sgd_momentum`` in the second); SignGD on
    :math:`L` (first column only: it is Adam with :math:`\beta_1 = \beta_2 = 0`).
    AdaSGD and SGD are rotation equivariant, so running them on :math:`L` covers every
    :math:`L_\theta` (see ``tests/test_problems.py``).

    ``x0`` is drawn once, :math:`x_0 \sim \mathcal N(0, I_d)` with ``x0_seed`` (our choice).
    ``lr_grids`` maps optimizer name to ``[lo, hi, n]`` (log-spaced) or an explicit list.
    """
    grids = default_lr_grids(13)
    grids.update(lr_grids or {})
    lam = power_law_spectrum(d, alpha, dtype=dtype, device=device)
    problems: list[Quadratic] = [Quadratic(lam, name="L")]
    for th in thetas:
        problems.append(RotatedQuadratic(lam, float(th), seed=rotation_seed))
    gen = torch.Generator(device=torch.device(device)).manual_seed(int(x0_seed))
    x0 = torch.randn(d, generator=gen, dtype=dtype, device=device)
    b1m, b2m = betas_momentum
    cols = (("beta1=0", 0.0, float(beta2)), ("beta1=0.9", float(b1m), float(b2m)))
    rows: list[Row] = []
    for col, b1, b2 in cols:
        rows.append(Row("AdaSGD", "adasgd", 0, b1, b2, _lr_grid(grids["adasgd"]), col))
        rows.append(Row("Adam", "adam", 0, b1, b2, _lr_grid(grids["adam"]), col))
        for k, th in enumerate(thetas, start=1):
            rows.append(Row(f"Adam (θ={th:g})", "adam", k, b1, b2, _lr_grid(grids["adam"]), col))
        rows.append(
            Row("SGD", "sgd", 0, 0.0 if b1 == 0 else float(sgd_momentum), 0.0, _lr_grid(grids["sgd"]), col)
        )
        if b1 == 0:
            rows.append(Row("SignGD", "signgd", 0, 0.0, 0.0, _lr_grid(grids["signgd"]), col))
    return Experiment(problems, rows, x0, float(sigma), [float(t) for t in thetas])


# ----------------------------------------------------------------------------------------------
# Batched updates: adamlinf.optim's functional forms, plus torch.optim.SGD's maths
# ----------------------------------------------------------------------------------------------
def sgd_update_(x, g, buf, *, lr, momentum: float):
    r"""One in-place step of ``torch.optim.SGD`` on a batch of runs.

    One in-place step of ``torch.optim.SGD`` (momentum :math:`\mu`, no dampening, no Nesterov,
    no weight decay) on a batch of runs: :math:`b \leftarrow \mu b + g` (with :math:`b_0 = 0`,
    so :math:`b_1 = g` exactly as PyTorch's first step), :math:`x \leftarrow x - \eta b`. ``lr`` a
    float or a broadcastable tensor (``adamlinf.optim`` has no SGD class; the paper's SGD is
    ``torch.optim.SGD``).
    """
    buf.mul_(momentum).add_(g)
    return x.sub_(buf * lr)


SCHEDULES = ("constant", "cosine")


def lr_factor(schedule: str, t: int, steps: int) -> float:
    r"""Learning-rate multiplier at step t.

    Learning-rate multiplier at step :math:`t \in [1, T]`: ``"constant"`` gives 1,
    ``"cosine"`` gives :math:`\tfrac12(1 + \cos(\pi (t-1)/T))` (from 1 at the first step
    towards 0 at the last; our choice, the paper's schedule for Section 4.1 was not recovered).
    """
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * (t - 1) / steps))
    raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")


@dataclass
class QuadraticResult:
    r"""Tidy outputs of :func:`run_batched`.

    ``final``: one line per run: ``row, optimizer, problem, theta, column, beta1, beta2, lr,
    lr_index, seed, initial_loss, final_loss, last_loss, diverged``. ``final_loss`` is the mean of
    the (noise-free) loss :math:`L_\theta(x_t)` over the last ``final_window`` iterates
    :math:`t = T-w+1..T`; ``last_loss`` is :math:`L_\theta(x_T)`.
    ``curves``: ``row, column, lr, seed, step, loss`` every ``record_every`` steps (and at ``T``).
    """

    final: pd.DataFrame
    curves: pd.DataFrame
    geometry: pd.DataFrame
    wall_time_s: float


def _expand_runs(exp: Experiment, n_seeds: int):
    """All (row, lr, seed) runs, sorted by update rule (optimizer, beta1, beta2), then problem.

    Returns ``runs``, the update groups ``(optimizer, beta1, beta2, start, stop)`` and the Hessian
    slices ``(problem, start, stop)`` (contiguous runs on one problem inside one group).
    """
    runs = []
    for j, row in enumerate(exp.rows):
        for k, lr in enumerate(row.lrs):
            for s in range(n_seeds):
                runs.append(((row.optimizer, row.beta1, row.beta2), row.problem, j, k, s, lr))
    runs.sort(key=lambda r: (OPTIMIZERS.index(r[0][0]), r[0][1], r[0][2], r[1], r[2], r[3], r[4]))

    def slices(key):
        out, start = [], 0
        for i in range(1, len(runs) + 1):
            if i == len(runs) or key(runs[i]) != key(runs[start]):
                out.append((key(runs[start]), start, i))
                start = i
        return out

    groups = [(*k, a, b) for k, a, b in slices(lambda r: r[0])]
    hess = [(k[1], a, b) for k, a, b in slices(lambda r: (r[0], r[1]))]
    return runs, groups, hess


def run_batched(
    exp: Experiment,
    *,
    steps: int,
    n_seeds: int = 5,
    seed: int = 0,
    eps: float = 1e-8,
    record_every: int = 10,
    final_window: int = 1,
    schedule: str = "constant",
    reach: float | None = None,
    dtype=None,
    device=None,
    progress: bool = False,
) -> QuadraticResult:
    r"""Run every (row, learning rate, seed) at once.

    Run every (row, learning rate, seed) of ``exp`` for ``steps`` steps as one batched tensor
    computation (see the module docstring) and return tidy tables.

    Args:
        exp: The problems, rows, start(s) and noise level. ``exp.x0`` of shape ``(d,)`` is every
            seed's start; of shape ``(S, d)`` with ``S >= n_seeds``, seed ``s`` starts at
            ``x0[s]`` (rotated to :math:`R^\top x_0[s]` on a rotated problem).
        steps: :math:`T`, the same for every row.
        n_seeds: number of seeds (noise stream ``s`` of :class:`GradientNoise`, and start ``s``).
        seed: base seed of the noise.
        eps: :math:`\epsilon` of Adam/AdaSGD (outside the root, torch form).
        record_every: loss-curve resolution.
        final_window: ``final_loss`` averages the last ``final_window`` iterates' losses.
        schedule: learning-rate schedule, see :func:`lr_factor` (``"constant"`` by default).
        reach: if given, ``final`` gets ``steps_to_reach``, the first :math:`t` with
            :math:`L(x_t) \le \text{reach}\cdot L(x_0)` (checked at every step; ``inf`` when never
            within :math:`T`), a criterion that round-off cannot decide when ``reach`` is far above
            the float64 round-off of the loss.
        dtype: defaults to that of ``exp.x0``.
        device: defaults to that of ``exp.x0``.
        progress: show a progress bar over steps.

    Returns:
        A :class:`QuadraticResult`.

    Raises:
        ValueError: bad ``steps``, ``final_window``, ``record_every``, ``schedule`` or ``x0`` shape.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if not 1 <= final_window <= steps:
        raise ValueError(f"final_window must lie in [1, steps={steps}], got {final_window}")
    if record_every < 1:
        raise ValueError(f"record_every must be >= 1, got {record_every}")
    lr_factor(schedule, 1, steps)  # validates the name
    if exp.x0.ndim == 2 and exp.x0.shape[0] < n_seeds:
        raise ValueError(f"x0 holds {exp.x0.shape[0]} starts, fewer than n_seeds={n_seeds}")
    t_start = time.perf_counter()
    dtype = dtype or exp.x0.dtype
    device = torch.device(device) if device is not None else exp.x0.device
    problems = [p.to(dtype=dtype, device=device) for p in exp.problems]
    x0 = exp.x0.to(dtype=dtype, device=device)
    d = x0.shape[-1]
    runs, groups, hess = _expand_runs(exp, n_seeds)
    R = len(runs)
    rows = exp.rows
    lr = torch.tensor([r[5] for r in runs], dtype=dtype, device=device).unsqueeze(1)  # (R, 1)
    seed_idx = torch.tensor([r[4] for r in runs], dtype=torch.long, device=device)
    prob_idx = torch.tensor([r[1] for r in runs], dtype=torch.long, device=device)
    starts = torch.stack([p.start(x0) for p in problems])  # R_theta^T x0, once per problem (and seed)
    x = starts[prob_idx, seed_idx] if x0.ndim == 2 else starts[prob_idx]
    m = torch.zeros_like(x)  # first moment (Adam, AdaSGD) or momentum buffer (SGD)
    v_full = torch.zeros_like(x)  # Adam's coordinate-wise second moment
    v_scalar = x.new_zeros(R, 1)  # AdaSGD's one scalar per run
    noise = GradientNoise(d, n_seeds, exp.sigma, base_seed=seed, dtype=dtype, device=device)
    rec_steps: list[int] = []
    rec = x.new_empty(steps // record_every + 2, R)
    tail = x.new_zeros(R)
    hit = torch.full((R,), -1, dtype=torch.long, device=device)
    g = torch.empty_like(x)

    def clean_grad():
        for p, a, b in hess:
            g[a:b] = problems[p].grad(x[a:b])
        return g

    def track(loss, t):
        if reach is not None:
            new = (hit < 0) & (loss <= reach * initial)
            hit[new] = t

    iterator = (
        tqdm(range(1, steps + 1), desc="quadratic runs", leave=False) if progress else range(1, steps + 1)
    )
    initial = None
    for t in iterator:
        gc = clean_grad()
        loss = 0.5 * (x * gc).sum(1)  # L(x_{t-1})
        if t == 1:
            initial = loss.clone()
        track(loss, t - 1)
        if (t - 1) % record_every == 0:
            rec[len(rec_steps)] = loss
            rec_steps.append(t - 1)
        if t - 1 > steps - final_window:
            tail += loss
        if exp.sigma > 0:
            gc.add_(noise.sample()[seed_idx])
        for opt, beta1, beta2, a, b in groups:
            xs, gs, ms, lrs = x[a:b], gc[a:b], m[a:b], lr[a:b]
            if schedule != "constant":
                lrs = lrs * lr_factor(schedule, t, steps)
            if opt == "adam":
                optim.adam_update_(xs, gs, ms, v_full[a:b], lr=lrs, beta1=beta1, beta2=beta2, eps=eps, step=t)
            elif opt == "adasgd":  # v of shape (runs, 1): one scalar per run
                optim.adam_update_(
                    xs, gs, ms, v_scalar[a:b], lr=lrs, beta1=beta1, beta2=beta2, eps=eps, step=t
                )
            elif opt == "sgd":
                sgd_update_(xs, gs, ms, lr=lrs, momentum=beta1)
            else:
                optim.signgd_update_(xs, gs, lr=lrs)
    last = 0.5 * (x * clean_grad()).sum(1)  # L(x_T)
    track(last, steps)
    tail += last
    rec[len(rec_steps)] = last
    rec_steps.append(steps)
    final = tail / final_window
    wall = time.perf_counter() - t_start

    thetas = [getattr(p, "theta", 0.0) for p in problems]
    meta = pd.DataFrame(
        [
            {
                "row": rows[r[2]].name,
                "optimizer": rows[r[2]].optimizer,
                "problem": r[1],
                "theta": thetas[r[1]],
                "column": rows[r[2]].column,
                "beta1": rows[r[2]].beta1,
                "beta2": rows[r[2]].beta2,
                "lr": r[5],
                "lr_index": r[3],
                "seed": r[4],
            }
            for r in runs
        ]
    )
    final_np = final.cpu().numpy()
    fin = meta.copy()
    fin["initial_loss"] = initial.cpu().numpy() if initial is not None else np.nan
    fin["final_loss"] = final_np
    fin["last_loss"] = last.cpu().numpy()
    fin["diverged"] = ~np.isfinite(final_np) | (final_np > 1e6 * fin["initial_loss"].to_numpy())
    if reach is not None:
        h = hit.cpu().numpy().astype(float)
        fin["steps_to_reach"] = np.where(h < 0, np.inf, h)
    curves_np = rec[: len(rec_steps)].cpu().numpy()  # (n_rec, R)
    curves = meta.loc[
        np.tile(np.arange(R), len(rec_steps)), ["row", "column", "problem", "theta", "lr", "seed"]
    ].reset_index(drop=True)
    curves["step"] = np.repeat(rec_steps, R)
    curves["loss"] = curves_np.reshape(-1)
    geo = pd.DataFrame(
        [
            {
                "problem": i,
                "spectrum": getattr(p, "spectrum", ""),
                "theta": thetas[i],
                "l11_per_dim": p.l11_per_dim(),
                "spectral_norm": p.spectral_norm(),
            }
            for i, p in enumerate(problems)
        ]
    )
    return QuadraticResult(fin, curves, geo, wall)


# ----------------------------------------------------------------------------------------------
# Reference: one run at a time with the optimizer classes
# ----------------------------------------------------------------------------------------------
def run_one_by_one(
    problem: Quadratic,
    x0: torch.Tensor,
    optimizer: str,
    *,
    lr: float,
    beta1: float = 0.9,
    beta2: float = 0.99,
    eps: float = 1e-8,
    steps: int,
    sigma: float = 0.0,
    seed_index: int = 0,
    n_seeds: int | None = None,
    seed: int = 0,
    use_torch_optim: bool = False,
    schedule: str = "constant",
) -> np.ndarray:
    r"""One run with an optimizer class, the reference for the batched runner.

    One run with an optimizer *class* and autograd gradients; returns the losses
    :math:`L(x_0), \dots, L(x_T)` (length ``steps + 1``).

    The optimizer is ``adamlinf.optim.create(optimizer, [x], lr=lr, betas=(beta1, beta2),
    eps=eps, momentum=beta1)``; with ``use_torch_optim=True`` ``"adam"`` uses
    ``torch.optim.Adam`` and ``"sgd"`` ``torch.optim.SGD`` directly. The noise is stream
    ``seed_index`` of :class:`GradientNoise` (``seed``), exactly what :func:`run_batched` adds;
    ``schedule`` sets ``param_groups[...]["lr"]`` before every step.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    w = torch.nn.Parameter(problem.start(x0.to(problem.dtype)).clone())
    if use_torch_optim and optimizer == "adam":
        opt = torch.optim.Adam([w], lr=lr, betas=(beta1, beta2), eps=eps, foreach=False)
    elif use_torch_optim and optimizer == "sgd":
        opt = torch.optim.SGD([w], lr=lr, momentum=beta1, foreach=False)
    else:
        opt = optim.create(optimizer, [w], lr=lr, betas=(beta1, beta2), eps=eps, momentum=beta1)
    noise = GradientNoise(
        problem.d,
        max(n_seeds or 0, seed_index + 1),
        sigma,
        base_seed=seed,
        dtype=problem.dtype,
        device=problem.device,
    )
    losses = []
    for t in range(1, steps + 1):
        for group in opt.param_groups:
            group["lr"] = lr * lr_factor(schedule, t, steps)
        opt.zero_grad()
        loss = problem.loss(w)
        loss.backward()
        losses.append(float(loss.detach()))
        if sigma > 0:
            with torch.no_grad():
                w.grad.add_(noise.sample_one(seed_index))
        opt.step()
    with torch.no_grad():
        losses.append(float(problem.loss(w)))
    return np.asarray(losses)


# ----------------------------------------------------------------------------------------------
# Tables
# ----------------------------------------------------------------------------------------------
def tune(final: pd.DataFrame, metric: str = "final_loss") -> pd.DataFrame:
    """The best learning rate per (row, column).

    For each (row, column): mean and std over seeds of ``metric`` per learning rate, and the
    learning rate with the lowest mean (diverged runs count as ``inf``). ``lr_at_edge`` flags a
    best learning rate at the end of the grid (the grid should then be widened).
    """
    df = final.copy()
    df[metric] = df[metric].where(np.isfinite(df[metric]) & ~df["diverged"], np.inf)
    keys = ["row", "optimizer", "problem", "theta", "column", "beta1", "beta2"]
    per_lr = (
        df.groupby(keys + ["lr", "lr_index"], sort=False)[metric]
        .agg(mean="mean", std=lambda s: s.std(ddof=0) if np.isfinite(s).all() else np.nan, n_seeds="count")
        .reset_index()
    )
    n_lr = per_lr.groupby(keys, sort=False)["lr_index"].transform("max")
    per_lr["n_lr"] = n_lr + 1
    best = per_lr.loc[per_lr.groupby(keys, sort=False)["mean"].idxmin()].copy()
    best["lr_at_edge"] = (best["lr_index"] == 0) | (best["lr_index"] == best["n_lr"] - 1)
    return best.rename(columns={"lr": "best_lr"}).reset_index(drop=True)


# ==============================================================================================
# Theory runners (Section 3). A quadratic with a minimiser x* and coordinate-wise gradient noise
# (Assumptions 3.4 / 3.10), the test Hessians of the theory pages, and batched runs of SignGD and
# RMSProp / blockwise Adam (the functional updates of adamlinf.optim) that the bounds of
# adamlinf.theory are checked on.
# ==============================================================================================
class NoisyQuadratic(Quadratic):
    r"""A :class:`Quadratic` with a minimiser and coordinate-wise gradient noise (Assumptions 3.4, 3.10).

    .. math:: L(x)=\tfrac12(x-x^*)^\top A(x-x^*),\qquad g=A(x-x^*)+\sigma\odot\xi,\quad
              \xi\sim\mathcal N(0,I)\ \text{independent per call}.

    The oracle satisfies Assumption 3.4 with exactly the given :math:`\sigma_i` (unbiased, variance
    :math:`\sigma_i^2`) and Assumption 3.10 with :math:`\sigma_b^2=\mathrm{mean}_{i\in b}\sigma_i^2`.
    The Hessian is kept exactly as given (its eigendecomposition fills :class:`Quadratic`'s
    ``eigenvalues`` and ``rotation``); a diagonal ``A`` is applied elementwise. All methods accept
    ``x`` of shape ``(d,)`` or ``(n, d)`` (independent copies, e.g. one row per seed).
    :class:`GradientNoise` is the isotropic, per-stream noise of the Section 4.1 runner; this class
    draws one coordinate-wise noise vector per row from one generator.

    Args:
        A: the symmetric ``(d, d)`` Hessian.
        sigma: the noise levels :math:`\sigma_i\ge0`, a scalar or ``(d,)``.
        x_star: the minimiser (default 0).
        dtype: dtype of every tensor.
        device: device of every tensor.
        name: label used in result tables.

    Raises:
        ValueError: ``A`` not symmetric, or a negative :math:`\sigma_i`.
    """

    def __init__(self, A, sigma=0.0, x_star=None, *, dtype=torch.float64, device="cpu", name: str = "L"):
        A = theory.as_symmetric(A).to(dtype=dtype, device=device)
        if torch.equal(A, torch.diag(torch.diagonal(A))):
            super().__init__(torch.diagonal(A).clone(), None, name=name)
        else:
            lam, Q = torch.linalg.eigh(A)
            super().__init__(lam, Q.T, name=name)  # R^T diag(lam) R = A for R = Q^T
            self._hessian = A  # exactly the given matrix, so results do not depend on eigh round-off
        self._set_noise(sigma, x_star)

    def _set_noise(self, sigma, x_star) -> None:
        dtype, device, d = self.dtype, self.device, self.d
        self.sigma = torch.broadcast_to(torch.as_tensor(sigma, dtype=dtype, device=device), (d,)).clone()
        if torch.any(self.sigma < 0):
            raise ValueError("sigma must be non-negative")
        self.x_star = (
            torch.zeros(d, dtype=dtype, device=device)
            if x_star is None
            else torch.as_tensor(x_star, dtype=dtype, device=device).reshape(d)
        )

    @classmethod
    def from_quadratic(cls, q: Quadratic, sigma=0.0, x_star=None) -> NoisyQuadratic:
        """``q`` (a :class:`RotatedQuadratic`, say) with noise ``sigma`` and minimiser ``x_star``.

        Keeps ``q``'s eigenvalues, rotation (so :meth:`Quadratic.start` maps starts the same way),
        Hessian and the attributes ``theta`` and ``spectrum`` when present.
        """
        out = cls.__new__(cls)
        Quadratic.__init__(out, q.eigenvalues, q.rotation, name=q.name)
        out._hessian = q.hessian
        out._set_noise(sigma, x_star)
        for attr in ("theta", "spectrum"):
            if hasattr(q, attr):
                setattr(out, attr, getattr(q, attr))
        return out

    @property
    def A(self) -> torch.Tensor:
        """The Hessian :math:`A` (dense)."""
        return self.hessian

    @property
    def min_value(self) -> float:
        r""":math:`\min L`: 0 if :math:`A` is PSD, :math:`-\infty` otherwise."""
        return 0.0 if float(self.eigenvalues.min()) >= -1e-12 else -math.inf

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`\nabla L(x)=A(x-x^*)` (row-wise for a batch)."""
        return super().grad(x - self.x_star)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`L(x)=\tfrac12(x-x^*)^\top A(x-x^*)`, batched."""
        z = x - self.x_star
        return 0.5 * (z * super().grad(z)).sum(-1)

    def stochastic_grad(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        r"""One draw of :math:`A(x-x^*)+\sigma\odot\xi` per row of ``x``."""
        g = self.grad(x)
        if torch.any(self.sigma > 0):
            g = g + self.sigma * torch.randn(g.shape, generator=generator, dtype=g.dtype, device=g.device)
        return g

    def sigma_blocks(self, block_index) -> torch.Tensor:
        r""":math:`\sigma_b=\sqrt{\mathrm{mean}_{i\in b}\sigma_i^2}` (Assumption 3.10), shape ``(B,)``."""
        idx = partitions.check_block_index(block_index, self.d).to(self.sigma.device)
        db = torch.bincount(idx).to(self.sigma.dtype)
        s2 = torch.zeros(len(db), dtype=self.sigma.dtype, device=self.sigma.device)
        s2.index_add_(0, idx, self.sigma**2)
        return (s2 / db).sqrt()


def random_psd(d: int, *, seed: int = 0, eigenvalues=None, dtype=torch.float64, device="cpu") -> torch.Tensor:
    r"""A dense PSD matrix :math:`Q\,\mathrm{diag}(\lambda)\,Q^\top` with :math:`Q` Haar.

    :math:`Q` comes from :func:`adamlinf.rotations.haar`.

    Args:
        d: dimension.
        seed: seed of :math:`Q`.
        eigenvalues: :math:`\lambda` (default :math:`\lambda_i=i^{-1/2}`, :func:`power_law_spectrum`).
        dtype: dtype of the result.
        device: device of the result.

    Returns:
        The symmetric ``(d, d)`` matrix.
    """
    lam = (
        power_law_spectrum(d, 0.5)
        if eigenvalues is None
        else torch.as_tensor(eigenvalues, dtype=torch.float64).reshape(-1)
    )
    if lam.numel() != d:
        raise ValueError(f"need {d} eigenvalues, got {lam.numel()}")
    Q = haar(d, seed=seed, dtype=torch.float64)
    A = (Q * lam) @ Q.T
    return ((A + A.T) / 2).to(dtype=dtype, device=device)


def block_quadratic(
    block_sizes, scales, *, eig_range=(0.5, 1.0), seed: int = 0, dtype=torch.float64, device="cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""A block-diagonal PSD Hessian for Theorem 3.11 and the partition that matches it.

    Block :math:`k` is ``scales[k]`` :math:`\cdot Q_k\,\mathrm{diag}(\lambda)\,Q_k^\top` with
    :math:`Q_k` Haar and :math:`\lambda` evenly spaced in ``eig_range``. Dense (rotated) blocks make
    the coordinate partition pay the off-diagonal :math:`(1,1)`-mass, and different ``scales`` make
    partitions that merge blocks pay :math:`d_b` times the largest scale.

    Args:
        block_sizes: the sizes of the diagonal blocks.
        scales: one scale per block.
        eig_range: the eigenvalue range inside a block.
        seed: block :math:`k`'s rotation uses seed ``seed * 1000 + k``.
        dtype: dtype of the result.
        device: device of the result.

    Returns:
        ``(A, block_index)``: the ``(d, d)`` Hessian and the ``(d,)`` ids of its blocks.
    """
    sizes = [int(k) for k in block_sizes]
    if len(sizes) != len(scales) or min(sizes) < 1:
        raise ValueError("need one positive size per scale")
    d = sum(sizes)
    A = torch.zeros(d, d, dtype=torch.float64)
    start = 0
    for k, (n, s) in enumerate(zip(sizes, scales, strict=True)):
        lam = torch.linspace(eig_range[0], eig_range[1], n, dtype=torch.float64)
        Q = haar(n, seed=seed * 1000 + k, dtype=torch.float64)
        A[start : start + n, start : start + n] = float(s) * (Q * lam) @ Q.T
        start += n
    A = (A + A.T) / 2
    idx = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    return A.to(dtype=dtype, device=device), idx


def _one_thread(fn):
    """Run a small-tensor loop on one intra-op CPU thread (restored afterwards).

    The theory problems have at most a few thousand entries per tensor, where OpenMP hand-offs cost
    far more than they save: on a loaded 2-core machine a 12 000-entry ``sqrt`` took 19 ms with 2
    threads and 6 us with 1. (Only CPU kernels are affected; CUDA runs are unchanged.)
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        saved = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(saved)

    return wrapper


def _lr_column(lr, n_seeds: int, dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
    lrs = torch.as_tensor(lr, dtype=dtype, device=device).reshape(-1)
    if torch.any(lrs <= 0):
        raise ValueError("learning rates must be positive")
    return lrs, lrs.repeat_interleave(n_seeds)[:, None]


@_one_thread
def run_signgd(problem: NoisyQuadratic, x0, *, T: int, lr) -> dict:
    r"""Deterministic SignGD (``adamlinf.optim.signgd_update_``) for a vector of step sizes at once.

    Args:
        problem: the quadratic (its exact gradient is used).
        x0: one start ``(d,)`` or several ``(n_starts, d)``.
        T: number of steps.
        lr: one step size or a vector of them.

    Returns:
        ``{"grad_l1", "loss"}`` of shape ``(T + 1, n_lr)`` (or ``(T + 1, n_lr, n_starts)``) for
        :math:`t=0..T`, and ``"lr"``. Theorem 3.2 bounds ``grad_l1[:T].min(0)``.
    """
    if T < 1:
        raise ValueError("T must be >= 1")
    A = problem.A
    X0 = torch.as_tensor(x0, dtype=A.dtype, device=A.device)
    single = X0.ndim == 1
    X0 = X0.reshape(-1, problem.d)
    ns = X0.shape[0]
    lrs, lr_col = _lr_column(lr, ns, A.dtype, A.device)
    x = X0.repeat(len(lrs), 1)
    shape = (T + 1, len(lrs), ns)
    gl1 = torch.empty(shape, dtype=A.dtype)
    loss = torch.empty(shape, dtype=A.dtype)
    for t in range(T + 1):
        g = problem.grad(x)
        gl1[t] = g.abs().sum(-1).reshape(shape[1:]).cpu()
        loss[t] = problem.loss(x).reshape(shape[1:]).cpu()
        if t < T:
            optim.signgd_update_(x, g, lr=lr_col)
    if single:
        gl1, loss = gl1[..., 0], loss[..., 0]
    return {"grad_l1": gl1, "loss": loss, "lr": lrs.cpu()}


@_one_thread
def run_blockwise_rmsprop(
    problem: NoisyQuadratic,
    x0,
    *,
    T: int,
    lr,
    beta2: float,
    v0: float,
    eps: float = 0.0,
    block_index=None,
    n_seeds: int = 1,
    seed: int = 0,
    lemmas: bool = False,
) -> dict:
    r"""Blockwise Adam with :math:`\beta_1=0` (Algorithm 3) on ``problem``'s stochastic oracle, batched.

    ``block_index=None`` means coordinates, i.e. RMSProp (Algorithm 1 with :math:`\beta_1=0`).
    ``n_seeds`` independent noise streams and a vector of step sizes run at once
    (``adamlinf.optim.adam_update_`` with blocks along the last dimension; no bias correction,
    :math:`\epsilon` inside the root, :math:`v_{0,b}=v_0`).

    With ``lemmas=True`` the run also accumulates, per block, the sums that enter Lemmas 3.14-3.16
    and C.1, with :math:`\bar g_t=\nabla L(x_{t-1})`, :math:`g_t` the stochastic gradient and
    :math:`\tilde v_{t,b}=\beta_2v_{t-1,b}+(1-\beta_2)(\|\bar g_{t,(b)}\|^2/d_b+\sigma_b^2)`:
    ``first_order`` :math:`=\sum_t\bar g_{(b)}^\top g_{(b)}/\sqrt{v_{t,b}+\epsilon}`,
    ``gbar_sq_over_sqrt_vtilde`` :math:`=\sum_t\|\bar g_{(b)}\|^2/\sqrt{\tilde v_{t,b}+\epsilon}`,
    ``log_ratio`` :math:`=\ln((v_{T,b}+\epsilon)/(v_{0,b}+\epsilon))`,
    ``g2_over_v`` :math:`=\sum_t(\|g_{(b)}\|^2/d_b)/(v_{t,b}+\epsilon)`,
    ``sqrt_vtilde_window`` :math:`=\sum_{T/2<t\le T}\sqrt{\tilde v_{t,b}+\epsilon}`,
    ``gbar_norm_sum`` :math:`=\sum_{t\le T}\|\bar g_{(b)}\|/\sqrt{d_b}`.

    Args:
        problem: the noisy quadratic.
        x0: the start ``(d,)``, or one start per seed ``(n_seeds, d)``.
        T: number of steps.
        lr: one step size or a vector of them.
        beta2: :math:`\beta_2\in[0,1)`.
        v0: initial second moment.
        eps: :math:`\epsilon`.
        block_index: ``(d,)`` block ids, or ``None`` for coordinates.
        n_seeds: number of noise streams.
        seed: seed of the noise generator.
        lemmas: also return the lemma sums.

    Returns:
        Tensors of shape ``(T + 1, n_lr, n_seeds)`` for :math:`t=0..T`: ``grad_l1``
        (:math:`\|\nabla L(x_t)\|_1`), ``grad_dual`` (:math:`\|\nabla L(x_t)\|_{\Phi,*}`), ``loss``;
        ``lr``; with ``lemmas=True`` the sums above, shape ``(n_lr, n_seeds, B)``.
    """
    if T < 1 or n_seeds < 1:
        raise ValueError("T and n_seeds must be >= 1")
    if not 0 <= beta2 < 1:
        raise ValueError(f"beta2 must be in [0, 1), got {beta2}")
    A = problem.A
    d = problem.d
    idx = (torch.arange(d) if block_index is None else partitions.check_block_index(block_index, d)).to(
        A.device
    )
    db = torch.bincount(idx).to(A.dtype)
    B = len(db)
    lrs, lr_col = _lr_column(lr, n_seeds, A.dtype, A.device)
    n = len(lrs) * n_seeds
    gen = torch.Generator(device=A.device).manual_seed(seed)
    X0 = torch.as_tensor(x0, dtype=A.dtype, device=A.device)
    if X0.ndim == 2 and X0.shape != (n_seeds, d):
        raise ValueError(
            f"x0 must have shape ({d},) or (n_seeds, {d}) = ({n_seeds}, {d}), got {tuple(X0.shape)}"
        )
    x = X0.repeat(len(lrs), 1) if X0.ndim == 2 else X0.reshape(1, d).repeat(n, 1)
    m = torch.zeros_like(x)
    v = torch.full((n, B), float(v0), dtype=A.dtype, device=A.device)
    sig_b2 = problem.sigma_blocks(idx) ** 2
    shape = (T + 1, len(lrs), n_seeds)
    out = {k: torch.empty(shape, dtype=A.dtype) for k in ("grad_l1", "grad_dual", "loss")}
    names = ("first_order", "gbar_sq_over_sqrt_vtilde", "g2_over_v", "sqrt_vtilde_window", "gbar_norm_sum")
    acc = {k: torch.zeros(n, B, dtype=A.dtype, device=A.device) for k in names} if lemmas else {}

    def blocksum(z: torch.Tensor) -> torch.Tensor:
        return torch.zeros(n, B, dtype=A.dtype, device=A.device).index_add_(1, idx, z)

    for t in range(T + 1):
        gbar = problem.grad(x)
        out["grad_l1"][t] = gbar.abs().sum(-1).reshape(shape[1:]).cpu()
        out["grad_dual"][t] = (db.sqrt() * blocksum(gbar * gbar).sqrt()).sum(-1).reshape(shape[1:]).cpu()
        out["loss"][t] = problem.loss(x).reshape(shape[1:]).cpu()
        if t == T:
            break
        g = problem.stochastic_grad(x, generator=gen)
        if lemmas:
            gbar_b2 = blocksum(gbar * gbar)
            vtilde = beta2 * v + (1 - beta2) * (gbar_b2 / db + sig_b2)
            acc["gbar_sq_over_sqrt_vtilde"] += gbar_b2 / (vtilde + eps).sqrt()
            if t + 1 > T // 2:
                acc["sqrt_vtilde_window"] += (vtilde + eps).sqrt()
            acc["gbar_norm_sum"] += (gbar_b2 / db).sqrt()
        optim.adam_update_(
            x,
            g,
            m,
            v,
            index=idx,
            lr=lr_col,
            beta1=0.0,
            beta2=beta2,
            eps=0.0,
            eps_root=eps,
            step=t + 1,
            sizes=db,
            bias_correction=False,
        )
        if lemmas:
            acc["first_order"] += blocksum(gbar * g) / (v + eps).sqrt()
            acc["g2_over_v"] += blocksum(g * g) / db / (v + eps)
    out["lr"] = lrs.cpu()
    if lemmas:
        acc["log_ratio"] = torch.log((v + eps) / (float(v0) + eps))
        for k, val in acc.items():
            out[k] = val.reshape(len(lrs), n_seeds, B).cpu()
    return out


@_one_thread
def run_trajectory(name: str, A, x0, *, T: int, lr: float, **kwargs) -> torch.Tensor:
    r"""Iterates :math:`x_0..x_T` of ``adamlinf.optim.create(name, ...)`` on :math:`L(x)=\tfrac12x^\top Ax`.

    Full gradients :math:`Ax`, float64 if ``A`` is.

    Args:
        name: the optimizer's name for :func:`adamlinf.optim.create`.
        A: the symmetric Hessian.
        x0: the start ``(d,)``.
        T: number of steps.
        lr: learning rate.
        **kwargs: passed to ``create`` (``betas``, ``eps``, ``eps_root``, ``bias_correction``, ...).

    Returns:
        The ``(T + 1, d)`` iterates.
    """
    A = theory.as_symmetric(A)
    x = torch.nn.Parameter(torch.as_tensor(x0, dtype=A.dtype, device=A.device).reshape(-1).clone())
    opt = optim.create(name, [x], lr=lr, **kwargs)
    xs = [x.detach().clone()]
    for _ in range(T):
        opt.zero_grad(set_to_none=True)
        x.grad = A @ x.detach()
        opt.step()
        xs.append(x.detach().clone())
    return torch.stack(xs)


def lemma_report(
    problem: NoisyQuadratic,
    out: dict,
    *,
    x0,
    T: int,
    eta: float,
    beta2: float,
    v0: float,
    block_index=None,
    c316: float = 2.0,
) -> list[dict]:
    r"""Both sides of Lemmas 3.14-3.16 and C.1 on a :func:`run_blockwise_rmsprop` run with ``lemmas=True``.

    First step size only, averaged over seeds, worst block reported. All forms are RECONSTRUCTED
    (the right-hand sides are :func:`adamlinf.theory.lemma314_rhs` and its neighbours).

    Args:
        problem: the problem the run was on.
        out: the run's output.
        x0: its start.
        T: its number of steps.
        eta: its step size.
        beta2: its :math:`\beta_2`.
        v0: its :math:`v_0`.
        block_index: its partition (``None``: coordinates).
        c316: the constant of Lemma 3.16 reported besides :math:`c=1`.

    Returns:
        One dict per check: ``lemma``, ``relation`` (``<=``, or ``>=`` for Lemma 3.15), ``lhs``,
        ``rhs`` (for the block closest to violation), ``margin`` (the slack, positive when the
        inequality holds), its size in standard errors over seeds ``margin_se``, and ``holds`` (not
        violated by more than 4 standard errors). Lemma 3.14 is pathwise (worst seed and block).
    """
    d = problem.d
    idx = torch.arange(d) if block_index is None else partitions.check_block_index(block_index, d)
    db = torch.bincount(idx).to(torch.float64)
    sb = problem.sigma_blocks(idx).cpu()
    keys = (
        "first_order",
        "gbar_sq_over_sqrt_vtilde",
        "g2_over_v",
        "sqrt_vtilde_window",
        "gbar_norm_sum",
        "log_ratio",
    )
    o = {k: v[0] for k, v in out.items() if k in keys}
    S = o["log_ratio"].shape[0]
    rows = []

    def add(name: str, lhs: torch.Tensor, rhs: torch.Tensor, geq: bool = False) -> None:
        diff = (rhs - lhs) if geq else (lhs - rhs)  # (S, B) per-seed values; > 0 means violated
        mean = diff.mean(0)
        se = diff.std(0) / math.sqrt(S) if S > 1 else torch.zeros_like(mean)
        b = int(mean.argmax())
        rows.append(
            dict(
                lemma=name,
                relation=">=" if geq else "<=",
                lhs=float(lhs.mean(0)[b]),
                rhs=float(rhs.mean(0)[b]),
                margin=float(-mean[b]),
                margin_se=float(-mean[b] / se[b]) if float(se[b]) > 0 else float("inf"),
                holds=bool(float(mean[b]) <= 4 * float(se[b])),
            )
        )

    rhs314 = T + beta2 / (1 - beta2) * o["log_ratio"]
    worst = (o["g2_over_v"] - rhs314).flatten().argmax()
    rows.append(
        dict(
            lemma="3.14 (pathwise, worst seed/block)",
            relation="<=",
            lhs=float(o["g2_over_v"].flatten()[worst]),
            rhs=float(rhs314.flatten()[worst]),
            margin=float((rhs314 - o["g2_over_v"]).min()),
            margin_se=float("nan"),
            holds=bool(torch.all(o["g2_over_v"] <= rhs314 * (1 + 1e-9))),
        )
    )
    rhs315 = theory.lemma315_rhs(
        gbar_sq_over_sqrt_vtilde_sum=o["gbar_sq_over_sqrt_vtilde"],
        d_b=db,
        sigma_b=sb,
        T=T,
        beta2=beta2,
        log_ratio=o["log_ratio"],
    )
    add("3.15", o["first_order"], rhs315, geq=True)
    for c in (1.0, c316):
        rhs316 = theory.lemma316_rhs(
            T=T, beta2=beta2, v0=v0, sigma_b=sb, eps=0.0, gbar_abs_sum=o["gbar_norm_sum"], c=c
        )
        add(
            f"3.16 with c = {c:g}", o["sqrt_vtilde_window"], rhs316 * torch.ones_like(o["sqrt_vtilde_window"])
        )
    # the smallest constant c in Lemma 3.16 that this run needs (worst block, means over seeds)
    other = (2 * beta2 ** (T / 4) * math.sqrt(v0) / (1 - beta2) + T * sb).to(o["sqrt_vtilde_window"].dtype)
    c_needed = ((o["sqrt_vtilde_window"].mean(0) - other) / o["gbar_norm_sum"].mean(0)).max()
    rows.append(
        dict(
            lemma="3.16: smallest c needed",
            relation="",
            lhs=float(c_needed),
            rhs=float("nan"),
            margin=float("nan"),
            margin_se=float("nan"),
            holds=True,
        )
    )
    g0 = problem.grad(torch.as_tensor(x0, dtype=problem.A.dtype, device=problem.A.device)).cpu()
    if block_index is None:
        F = theory.rmsprop_F(
            sigma=problem.sigma.cpu(),
            grad0_inf=float(g0.abs().max()),
            H=theory.coordinatewise_smoothness(problem.A).cpu(),
            eta=eta,
            T=T,
            beta2=beta2,
            v0=v0,
        )
    else:
        F = theory.blockwise_adam_F(
            sigma_b=sb,
            d_b=db,
            grad0_phi=float(partitions.custom(idx).norm(g0, d)),
            H_b=theory.blockwise_smoothness(problem.A.cpu(), idx),
            eta=eta,
            T=T,
            beta2=beta2,
            v0=v0,
        )
    add("C.1", o["log_ratio"], torch.full_like(o["log_ratio"], F))
    return rows


__all__ += [
    "NoisyQuadratic",
    "random_psd",
    "block_quadratic",
    "run_signgd",
    "run_blockwise_rmsprop",
    "run_trajectory",
    "lemma_report",
]
