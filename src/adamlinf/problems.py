r"""The quadratics of Sections 3 and 4.1 and the runners on them.

Table 1 (RECONSTRUCTED, all settings are parameters): :math:`L_\theta(x)=\tfrac12x^\top
R_\theta^\top\operatorname{diag}(\lambda)R_\theta x`, :math:`R_\theta=\exp(\theta S)`, started at
:math:`R_\theta^\top x_0`, run one at a time by :func:`run` (batched: ``studies.quadratic.run_batched``).
Section 3: :class:`NoisyQuadratic` and its runners.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from . import optim, partitions, theory
from .rotations import exp_rotation, haar

__all__ = ["power_law_spectrum", "SPECTRA", "spectrum", "rotation_path", "rotated_family", "Quadratic"]
__all__ += ["GradientNoise", "Trace", "run", "run_signgd", "run_blockwise_rmsprop"]
__all__ += ["lr_factor", "SCHEDULES", "NoisyQuadratic", "random_psd", "block_quadratic"]


def power_law_spectrum(d: int, alpha: float = 0.5, *, dtype=torch.float64, device="cpu") -> torch.Tensor:
    r"""The eigenvalues :math:`\lambda_i=i^{-\alpha}`, :math:`i=1..d` (our choice)."""
    if int(d) != d or d < 1:
        raise ValueError(f"d must be a positive integer, got {d!r}")
    if not math.isfinite(alpha) or alpha < 0:
        raise ValueError(f"alpha must be a finite number >= 0, got {alpha!r}")
    return torch.arange(1, int(d) + 1, dtype=dtype, device=device).pow(-float(alpha))


#: The spectra of the Table 1 sweep (our choice), by name, largest first: :math:`i^{-1/2}`,
#: :math:`1/i`, :math:`1/i^2`, log-uniform quantiles on :math:`[10^{-3},1]` and :math:`i/d`.
SPECTRA = {
    "i^-1/2": lambda d, **kw: power_law_spectrum(d, 0.5, **kw),
    "1/i": lambda d, **kw: power_law_spectrum(d, 1.0, **kw),
    "1/i^2": lambda d, **kw: power_law_spectrum(d, 2.0, **kw),
    "log-uniform": lambda d, **kw: torch.logspace(0.0, -3.0, d, **kw),
    "i/d": lambda d, **kw: torch.arange(d, 0, -1, **kw) / d,
}


def spectrum(name: str, d: int, *, dtype=torch.float64, device="cpu") -> torch.Tensor:
    r"""The eigenvalues of spectrum ``name`` (a key of :data:`SPECTRA`), normalised to :math:`\lambda_1=1`."""
    if name not in SPECTRA:
        raise ValueError(f"spectrum must be one of {list(SPECTRA)}, got {name!r}")
    if int(d) != d or d < 1:
        raise ValueError(f"d must be a positive integer, got {d!r}")
    lam = SPECTRA[name](int(d), dtype=dtype, device=device)
    return lam / lam.abs().max()


class Quadratic:
    r""":math:`L(x)=\tfrac12x^\top R^\top\mathrm{diag}(\lambda)Rx`; ``rotation=None`` is :math:`R=I`."""

    def __init__(self, eigenvalues: torch.Tensor, rotation: torch.Tensor | None = None, name: str = "L"):
        lam = torch.as_tensor(eigenvalues)
        if lam.ndim != 1 or lam.numel() == 0:
            raise ValueError(f"eigenvalues must be a non-empty 1-D tensor, got shape {tuple(lam.shape)}")
        if not torch.is_floating_point(lam):
            lam = lam.to(torch.float64)
        if not torch.isfinite(lam).all():
            raise ValueError("eigenvalues must be finite")
        self.eigenvalues, self.d = lam, lam.numel()
        if rotation is not None:
            rotation = torch.as_tensor(rotation, dtype=lam.dtype, device=lam.device)
            if rotation.shape != (self.d, self.d):
                raise ValueError(f"rotation must be ({self.d}, {self.d}), got {tuple(rotation.shape)}")
        self.rotation, self.name = rotation, name
        self._hessian: torch.Tensor | None = None

    @property
    def dtype(self) -> torch.dtype:
        """The floating type (the eigenvalues')."""
        return self.eigenvalues.dtype

    @property
    def device(self) -> torch.device:
        """The device (the eigenvalues')."""
        return self.eigenvalues.device

    @property
    def hessian(self) -> torch.Tensor:
        r"""The dense :math:`H`, symmetrised exactly (:math:`x^\top H` and :math:`Hx` agree bit for bit)."""
        if self._hessian is None and self.rotation is None:
            self._hessian = torch.diag(self.eigenvalues)
        elif self._hessian is None:
            H = (self.rotation.T * self.eigenvalues) @ self.rotation
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

    def _check_x(self, x: torch.Tensor) -> None:
        if x.shape[-1] != self.d or x.ndim not in (1, 2):
            raise ValueError(f"x must have shape ({self.d},) or (n, {self.d}), got {tuple(x.shape)}")

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`\nabla L(x)=Hx` (row-wise for a batch)."""
        self._check_x(x)
        if self.rotation is None:
            return x * self.eigenvalues
        return x @ self.hessian  # H symmetric: (H x_r)^T = x_r^T H

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`L(x)=\tfrac12x^\top Hx`; differentiable (autograd) and batched."""
        return 0.5 * (x * self.grad(x)).sum(-1)

    def start(self, x0: torch.Tensor) -> torch.Tensor:
        r"""The start :math:`R^\top x_0` of a rotated run: every rotation starts from the same loss."""
        self._check_x(x0)
        return x0.clone() if self.rotation is None else x0 @ self.rotation  # (R^T x0)^T = x0^T R

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, d={self.d}, rotated={self.rotation is not None})"


def rotation_path(
    d: int, thetas: Sequence[float], *, seed=0, haar_seed=None, dtype=torch.float64, device="cpu"
) -> list[tuple[float, torch.Tensor | None]]:
    r"""``[(0, None), (theta_k, exp(theta_k S)), ..., (inf, Q)]``, S from ``seed``, Q Haar."""
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


def rotated_family(eigenvalues: torch.Tensor, rotations: Sequence[tuple], *, spectrum="") -> list[Quadratic]:
    """One :class:`Quadratic` per rotation of :func:`rotation_path`, with ``theta`` and ``spectrum`` set."""
    out = []
    for th, R in rotations:
        q = Quadratic(eigenvalues, R, name=f"{spectrum} θ={th:g}".strip())
        q.theta, q.spectrum = float(th), spectrum
        out.append(q)
    return out


class GradientNoise:
    r"""The noise :math:`\sigma\odot\xi_t`, :math:`\xi_t\sim\mathcal N(0,I_d)` (Assumption 3.4).

    By default row ``s`` has its own generator (seed ``base_seed * 1_000_003 + s``): common random
    numbers across runs with one seed index; ``joint=True``: one generator ``base_seed`` for all rows.
    """

    def __init__(self, d, n_rows, sigma, *, base_seed=0, joint=False, dtype=torch.float64, device="cpu"):
        if n_rows < 1:
            raise ValueError(f"n_rows must be >= 1, got {n_rows}")
        if not torch.is_tensor(sigma) and (not math.isfinite(sigma) or sigma < 0):
            raise ValueError(f"sigma must be a finite number >= 0, got {sigma!r}")
        self.d, self.n_rows, self.joint = int(d), int(n_rows), joint
        self.sigma = sigma if torch.is_tensor(sigma) else float(sigma)
        self.dtype, self.device = dtype, torch.device(device)
        seeds = [int(base_seed)] if joint else [int(base_seed) * 1_000_003 + s for s in range(n_rows)]
        self.generators = [torch.Generator(device=self.device).manual_seed(k) for k in seeds]

    def sample(self, s: int | None = None) -> torch.Tensor:
        r"""The next :math:`\sigma\odot\xi_t` of every row ``(n_rows, d)``, or of row ``s`` ``(d,)``."""
        kw = dict(dtype=self.dtype, device=self.device)
        if self.joint:
            return torch.randn((self.n_rows, self.d), generator=self.generators[0], **kw) * self.sigma
        gens = self.generators if s is None else [self.generators[s]]
        xi = [torch.randn(self.d, generator=g, **kw) for g in gens]
        return (torch.stack(xi) if s is None else xi[0]) * self.sigma


class NoisyQuadratic(Quadratic):
    r""":math:`L(x)=\tfrac12(x-x^*)^\top A(x-x^*)` with gradients :math:`A(x-x^*)+\sigma\odot\xi`.

    ``A`` is kept exactly as given (a diagonal one applied elementwise); ``sigma``: scalar or ``(d,)``.
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
        self.x_star = torch.zeros(d, dtype=dtype, device=device)
        if x_star is not None:
            self.x_star = torch.as_tensor(x_star, dtype=dtype, device=device).reshape(d)

    @classmethod
    def from_quadratic(cls, q: Quadratic, sigma=0.0, x_star=None) -> NoisyQuadratic:
        """``q`` with noise and a minimiser; keeps its rotation, Hessian, ``theta`` and ``spectrum``."""
        out = cls.__new__(cls)
        out.__dict__.update(vars(q))
        out._hessian = q.hessian
        out._set_noise(sigma, x_star)
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

    def sigma_blocks(self, block_index) -> torch.Tensor:
        r""":math:`\sigma_b=\sqrt{\mathrm{mean}_{i\in b}\sigma_i^2}` (Assumption 3.10), shape ``(B,)``."""
        idx = partitions.check_block_index(block_index, self.d).to(self.sigma.device)
        db = torch.bincount(idx).to(self.sigma.dtype)
        s2 = self.sigma.new_zeros(len(db)).index_add_(0, idx, self.sigma**2)
        return (s2 / db).sqrt()


def random_psd(d: int, *, seed: int = 0, dtype=torch.float64, device="cpu") -> torch.Tensor:
    r""":math:`Q\mathrm{diag}(i^{-1/2})Q^\top`, :math:`Q` Haar."""
    lam = power_law_spectrum(d, 0.5)
    Q = haar(d, seed=seed, dtype=torch.float64)
    A = (Q * lam) @ Q.T
    return ((A + A.T) / 2).to(dtype=dtype, device=device)


def block_quadratic(
    block_sizes, scales, *, eig_range=(0.5, 1.0), seed: int = 0, dtype=torch.float64, device="cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""``(A, block_index)`` (Theorem 3.11): blocks ``scales[k]`` :math:`Q_k\Lambda Q_k^\top`.

    :math:`Q_k` Haar (seed ``seed * 1000 + k``), :math:`\Lambda` evenly spaced in ``eig_range``.
    """
    sizes = [int(k) for k in block_sizes]
    if len(sizes) != len(scales) or min(sizes) < 1:
        raise ValueError("need one positive size per scale")
    blocks = []
    for k, (n, s) in enumerate(zip(sizes, scales, strict=True)):
        lam = torch.linspace(eig_range[0], eig_range[1], n, dtype=torch.float64)
        Q = haar(n, seed=seed * 1000 + k, dtype=torch.float64)
        blocks.append(float(s) * (Q * lam) @ Q.T)
    A = torch.block_diag(*blocks)
    A = (A + A.T) / 2
    idx = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    return A.to(dtype=dtype, device=device), idx


@contextlib.contextmanager
def one_thread():
    """Run a small-tensor loop on one intra-op CPU thread (OpenMP hand-offs cost more than they save)."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


@dataclass(frozen=True, eq=False)
class Trace(Mapping):
    r"""What every runner returns: step sizes ``lr``, ``series`` over steps ``t`` (axis 0), per-run ``sums``.

    A mapping over the three: ``out["loss"]``, ``out["lr"]``, ``out["log_ratio"]``.
    """

    lr: torch.Tensor
    t: torch.Tensor
    series: dict[str, torch.Tensor]
    sums: dict[str, torch.Tensor] = field(default_factory=dict)

    def __getitem__(self, key: str) -> torch.Tensor:
        return {"lr": self.lr, **self.series, **self.sums}[key]

    def __iter__(self):
        return iter(["lr", *self.series, *self.sums])

    def __len__(self) -> int:
        return 1 + len(self.series) + len(self.sums)


SCHEDULES = ("constant", "cosine")


def lr_factor(schedule: str, t: int, steps: int) -> float:
    r"""The lr multiplier at step :math:`t\in[1,T]`: 1, or :math:`\tfrac12(1+\cos(\pi(t-1)/T))` (cosine)."""
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * (t - 1) / steps))
    raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")


def run(
    problem,
    x0,
    optimizer,
    *,
    steps: int,
    lr: float,
    seed: int = 0,
    seed_index: int = 0,
    sigma: float = 0.0,
    schedule: str = "constant",
    iterates: bool = False,
    **hyper,
) -> Trace:
    r"""One run of an optimizer class on a quadratic: ``loss`` :math:`L(x_0..x_T)`, with ``iterates`` ``x``.

    ``problem``: a :class:`Quadratic` (start :math:`R^\top x_0`, autograd gradient plus noise stream
    ``seed_index`` of ``GradientNoise(sigma, base_seed=seed)``: the reference of
    ``studies.quadratic.run_batched``) or a matrix :math:`A` (:math:`L=\tfrac12x^\top Ax`, gradient
    :math:`Ax`). ``optimizer``: a name for ``optim.create(name, [x], lr=lr, **hyper)`` or
    ``params -> Optimizer``; lr times :func:`lr_factor`.
    """
    if isinstance(problem, Quadratic):
        A, start = None, problem.start(x0.to(problem.dtype))
    else:
        A = theory.as_symmetric(problem)
        start = torch.as_tensor(x0, dtype=A.dtype, device=A.device).reshape(-1)
    w = torch.nn.Parameter(start.clone())
    opt = optim.create(optimizer, [w], lr=lr, **hyper) if isinstance(optimizer, str) else optimizer([w])
    noise = GradientNoise(w.numel(), seed_index + 1, sigma, base_seed=seed, dtype=w.dtype, device=w.device)
    losses, xs = [], [w.detach().clone()]
    for t in range(1, steps + 1):
        for group in opt.param_groups:
            group["lr"] = lr * lr_factor(schedule, t, steps)
        opt.zero_grad()
        if A is None:
            loss = problem.loss(w)
            loss.backward()
        else:
            w.grad = A @ w.detach()
            loss = 0.5 * (w.detach() * w.grad).sum()
        losses.append(float(loss.detach()))
        if sigma > 0:
            with torch.no_grad():
                w.grad.add_(noise.sample(seed_index))
        opt.step()
        if iterates:
            xs.append(w.detach().clone())
    with torch.no_grad():
        losses.append(float(problem.loss(w) if A is None else 0.5 * (w * (A @ w)).sum()))
    series = {"loss": torch.tensor(losses, dtype=torch.float64)}
    if iterates:
        series["x"] = torch.stack(xs)
    return Trace(torch.tensor([float(lr)], dtype=torch.float64), torch.arange(steps + 1), series)


def _lr_column(lr, n_seeds: int, dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
    lrs = torch.as_tensor(lr, dtype=dtype, device=device).reshape(-1)
    if torch.any(lrs <= 0):
        raise ValueError("learning rates must be positive")
    return lrs, lrs.repeat_interleave(n_seeds)[:, None]


@one_thread()
def run_signgd(problem: NoisyQuadratic, x0, *, steps: int, lr) -> Trace:
    r"""Deterministic SignGD (``optim.signgd_update_``, exact gradients) for a vector of step sizes at once.

    Series ``grad_l1`` and ``loss`` at :math:`t=0..T`: ``(steps + 1, n_lr)`` for one start ``x0`` ``(d,)``,
    ``(steps + 1, n_lr, n_starts)`` for ``(n_starts, d)``.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    A = problem.A
    X0 = torch.as_tensor(x0, dtype=A.dtype, device=A.device)
    single = X0.ndim == 1
    X0 = X0.reshape(-1, problem.d)
    ns = X0.shape[0]
    lrs, lr_col = _lr_column(lr, ns, A.dtype, A.device)
    x = X0.repeat(len(lrs), 1)
    shape = (steps + 1, len(lrs), ns)
    gl1, loss = torch.empty(shape, dtype=A.dtype), torch.empty(shape, dtype=A.dtype)
    for t in range(steps + 1):
        g = problem.grad(x)
        gl1[t] = g.abs().sum(-1).reshape(shape[1:]).cpu()
        loss[t] = problem.loss(x).reshape(shape[1:]).cpu()
        if t < steps:
            optim.signgd_update_(x, g, lr=lr_col)
    if single:
        gl1, loss = gl1[..., 0], loss[..., 0]
    return Trace(lrs.cpu(), torch.arange(steps + 1), {"grad_l1": gl1, "loss": loss})


@one_thread()
def run_blockwise_rmsprop(
    problem, x0, block_index, *, steps: int, lr, beta2: float, v0: float, n_seeds=1, seed=0, lemmas=False
) -> Trace:
    r"""Blockwise Adam with :math:`\beta_1=0` (Algorithm 3) on the noisy oracle, batched over lrs and seeds.

    ``block_index``: the ``(d,)`` block ids :math:`\Phi(i)` (``torch.arange(d)``: RMSProp). No bias
    correction, :math:`\epsilon=0`, :math:`v_{0,b}=v_0`. ``x0``: ``(d,)`` or ``(n_seeds, d)``;
    noise from one generator ``seed``. Series ``grad_l1``, ``grad_dual`` (:math:`\|\cdot\|_{\Phi,*}`) and
    ``loss`` at :math:`x_t`, ``(steps + 1, n_lr, n_seeds)``; with ``lemmas``, sums ``(n_lr, n_seeds, B)``
    of Lemmas 3.14-3.16 and C.1 (:math:`\bar g_t=\nabla L(x_{t-1})`, :math:`\tilde v_{t,b}=\beta_2v_{t-1,b}
    +(1-\beta_2)(\|\bar g_{t,(b)}\|^2/d_b+\sigma_b^2)`).
    """
    if steps < 1 or n_seeds < 1:
        raise ValueError(f"steps and n_seeds must be >= 1, got {steps}, {n_seeds}")
    if not 0 <= beta2 < 1:
        raise ValueError(f"beta2 must be in [0, 1), got {beta2}")
    A, d = problem.A, problem.d
    idx = partitions.check_block_index(block_index, d).to(A.device)
    db = torch.bincount(idx).to(A.dtype)
    B = len(db)
    lrs, lr_col = _lr_column(lr, n_seeds, A.dtype, A.device)
    n = len(lrs) * n_seeds
    noise = GradientNoise(d, n, problem.sigma, base_seed=seed, joint=True, dtype=A.dtype, device=A.device)
    noisy = bool(torch.any(problem.sigma > 0))
    X0 = torch.as_tensor(x0, dtype=A.dtype, device=A.device)
    if X0.ndim == 2 and X0.shape != (n_seeds, d):
        raise ValueError(
            f"x0 must have shape ({d},) or (n_seeds, {d}) = ({n_seeds}, {d}), got {tuple(X0.shape)}"
        )
    x = X0.repeat(len(lrs), 1) if X0.ndim == 2 else X0.reshape(1, d).repeat(n, 1)
    m = torch.zeros_like(x)
    v = torch.full((n, B), float(v0), dtype=A.dtype, device=A.device)
    sig_b2 = problem.sigma_blocks(idx) ** 2
    shape = (steps + 1, len(lrs), n_seeds)
    out = {k: torch.empty(shape, dtype=A.dtype) for k in ("grad_l1", "grad_dual", "loss")}
    names = ("first_order", "gbar_sq_over_sqrt_vtilde", "g2_over_v", "sqrt_vtilde_window", "gbar_norm_sum")
    acc = {k: torch.zeros(n, B, dtype=A.dtype, device=A.device) for k in names} if lemmas else {}

    step_kw = dict(index=idx, lr=lr_col, beta1=0.0, beta2=beta2, eps=0.0, eps_root=0.0, sizes=db)

    def blocksum(z: torch.Tensor) -> torch.Tensor:
        return torch.zeros(n, B, dtype=A.dtype, device=A.device).index_add_(1, idx, z)

    for t in range(steps + 1):
        gbar = problem.grad(x)
        out["grad_l1"][t] = gbar.abs().sum(-1).reshape(shape[1:]).cpu()
        out["grad_dual"][t] = (db.sqrt() * blocksum(gbar * gbar).sqrt()).sum(-1).reshape(shape[1:]).cpu()
        out["loss"][t] = problem.loss(x).reshape(shape[1:]).cpu()
        if t == steps:
            break
        g = gbar + noise.sample() if noisy else gbar.clone()
        if lemmas:
            gbar_b2 = blocksum(gbar * gbar)
            vtilde = beta2 * v + (1 - beta2) * (gbar_b2 / db + sig_b2)
            acc["gbar_sq_over_sqrt_vtilde"] += gbar_b2 / vtilde.sqrt()
            if t + 1 > steps // 2:
                acc["sqrt_vtilde_window"] += vtilde.sqrt()
            acc["gbar_norm_sum"] += (gbar_b2 / db).sqrt()
        optim.adam_update_(x, g, m, v, step=t + 1, bias_correction=False, **step_kw)
        if lemmas:
            acc["first_order"] += blocksum(gbar * g) / v.sqrt()
            acc["g2_over_v"] += blocksum(g * g) / db / v
    if lemmas:
        acc["log_ratio"] = torch.log(v / float(v0))
    sums = {k: val.reshape(len(lrs), n_seeds, B).cpu() for k, val in acc.items()}
    return Trace(lrs.cpu(), torch.arange(steps + 1), out, sums)
