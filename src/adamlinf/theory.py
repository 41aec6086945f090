r"""The closed-form quantities of Section 3: smoothness constants and the theorems' right-hand sides.

The paper's formulas were lost in its text extraction, so every bound below is **RECONSTRUCTED**;
the book's reconstruction notes (``book/reconstruction.md``) say how each one was rebuilt, and
each docstring here says which statement it implements and which parts are uncertain. The
numerical checks live in ``tests/test_lemmas.py`` and ``tests/test_theory.py`` and in the book's
Theorem 3.2, 3.5 and 3.11 pages.

Contents:

* Smoothness constants of a quadratic :math:`L(x)=\tfrac12(x-x^*)^\top A(x-x^*)` (its Hessian is
  :math:`A` everywhere, so the sup over :math:`x` in every definition is attained trivially):

  - :func:`linf_smoothness`: Definition 3.1 for :math:`\|\cdot\|_\infty`,
    :math:`H=\|A\|_{\infty\to1}`;
  - :func:`l2_smoothness`: Definition 3.1 for :math:`\|\cdot\|_2`, :math:`\|A\|_2` (and
    :math:`d\|A\|_2`, the :math:`\ell_\infty` constant an :math:`\ell_2` analysis pays);
  - :func:`coordinatewise_smoothness`: Definition 3.3, :math:`H_i=\|A_{i,:}\|_1`;
  - :func:`block_spectral_norms`, :func:`blockwise_smoothness`: Definition 3.12 (valid constants
    :math:`H_b`; exact for :math:`d_b=1`), :func:`blockwise_smoothness_tight_lower`;
  - :func:`phi_smoothness`: Definition 3.9, :math:`H(L,\Phi)` by an exact small minimisation.

  The :math:`\Phi`-norms of Definition 3.8 are :meth:`adamlinf.partitions.Partition.norm` and
  :meth:`~adamlinf.partitions.Partition.dual_norm`.
* Right-hand sides: :func:`signgd_bound` (Theorem 3.2), :func:`rmsprop_bound` (Theorem 3.5),
  :func:`blockwise_adam_bound` (Theorem 3.11), and the lemma right-hand sides
  :func:`lemma314_rhs`, :func:`lemma315_rhs`, :func:`lemma316_rhs`.

The batched runs that these bounds are checked on are in :mod:`adamlinf.problems` (noisy
quadratics and runners), and the book's sweeps in :mod:`adamlinf.studies.theory`.

Numerical finding that changed a reconstruction: Lemma 3.16 needs a constant :math:`c>1` in front
of :math:`\sum_t\mathbb E\|\bar g_t\|` (about 1.2 is needed on a deterministic RMSProp run); we
use :math:`c=2`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import minimize
from torch import Tensor

from .partitions import check_block_index

__all__ = [
    "as_symmetric",
    "block_sizes",
    "linf_smoothness",
    "l2_smoothness",
    "coordinatewise_smoothness",
    "block_spectral_norms",
    "blockwise_smoothness",
    "blockwise_smoothness_tight_lower",
    "phi_smoothness",
    "signgd_bound",
    "signgd_tuned_lr",
    "signgd_tuned_bound",
    "BoundTerms",
    "rmsprop_F",
    "rmsprop_bound",
    "rmsprop_tuned_lr",
    "blockwise_adam_F",
    "blockwise_adam_bound",
    "lemma314_rhs",
    "lemma315_rhs",
    "lemma316_rhs",
]

ArrayLike = float | np.ndarray | Tensor


# ----------------------------------------------------------------------------------------------
# helpers
def _matrix(A) -> Tensor:
    A = torch.as_tensor(A)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"expected a square matrix, got shape {tuple(A.shape)}")
    if not A.is_floating_point():
        A = A.to(torch.float64)
    return A


def as_symmetric(A) -> Tensor:
    """Return ``A`` as a floating-point tensor after checking that it is square and symmetric.

    Args:
        A: a ``(d, d)`` matrix (tensor, array or nested list); integer input becomes float64.

    Returns:
        The matrix as a tensor (not copied when it already is one).

    Raises:
        ValueError: ``A`` is not square, or not symmetric to a relative tolerance of ``1e-8``.
    """
    A = _matrix(A)
    if not torch.allclose(A, A.T, rtol=1e-8, atol=1e-10 * float(A.abs().max().clamp_min(1e-300))):
        raise ValueError("the Hessian of a quadratic must be symmetric")
    return A


def block_sizes(block_index) -> Tensor:
    r"""The block sizes :math:`d_b=|\Phi^{-1}(b)|` of a partition (Definition 3.8).

    Args:
        block_index: ``(d,)`` block ids ``0..B-1``.

    Returns:
        A ``(B,)`` LongTensor.
    """
    idx = torch.as_tensor(block_index).reshape(-1)
    return torch.bincount(check_block_index(idx, idx.numel()))


def _check_pos(name: str, value, *, strict: bool = True) -> float:
    v = float(value)
    if not math.isfinite(v) or (v <= 0 if strict else v < 0):
        raise ValueError(f"{name} must be {'positive' if strict else 'non-negative'}, got {value}")
    return v


# ----------------------------------------------------------------------------------------------
# smoothness constants of a quadratic
def linf_smoothness(A, method: str = "auto", max_brute_dim: int = 22) -> float:
    r"""Smoothness constant of :math:`\tfrac12x^\top Ax` w.r.t. :math:`\|\cdot\|_\infty` (Definition 3.1).

    Since :math:`\nabla L(x)-\nabla L(y)=A(x-y)`, the best constant in
    :math:`\|\nabla L(x)-\nabla L(y)\|_1\le H\|x-y\|_\infty` is the operator norm

    .. math:: H=\|A\|_{\infty\to1}=\max_{\|u\|_\infty\le1}\|Au\|_1=\max_{s\in\{\pm1\}^d}\|As\|_1

    (a convex function of :math:`u` is maximised at a vertex of the cube). For PSD :math:`A` this
    equals :math:`\max_s s^\top As`. It is NP-hard in general.

    Args:
        A: a square matrix.
        method: ``"brute"``: the exact value by enumerating the :math:`2^{d-1}` sign vectors
            (:math:`s` and :math:`-s` give the same value), allowed for ``d <= max_brute_dim``;
            ``"l11"``: the upper bound :math:`\|A\|_{1,1}=\sum_{ij}|A_{ij}|` (equal to
            :math:`\sum_iH_i` of Definition 3.3; tight for diagonal :math:`A`); ``"auto"``: exact
            for diagonal :math:`A` or small :math:`d`, else the :math:`(1,1)` bound.
        max_brute_dim: the largest :math:`d` enumerated.

    Returns:
        :math:`H` (or its :math:`(1,1)` upper bound).

    Raises:
        ValueError: an unknown method, or ``"brute"`` with ``d > max_brute_dim``.
    """
    A = _matrix(A).to(torch.float64)
    d = A.shape[0]
    if method not in ("auto", "brute", "l11"):
        raise ValueError(f"unknown method {method!r}")
    diagonal = torch.equal(A, torch.diag(torch.diagonal(A)))
    if method == "l11" or (method == "auto" and d > max_brute_dim and not diagonal):
        return float(A.abs().sum())
    if d > max_brute_dim and method == "brute":
        raise ValueError(f"brute force over 2^{d - 1} sign vectors refused (d > {max_brute_dim})")
    if diagonal or d == 1:
        return float(A.abs().sum())
    best = 0.0
    # enumerate sign vectors with s_0 = +1, in chunks to bound memory
    n = 2 ** (d - 1)
    chunk = 1 << 14
    bits = torch.arange(d - 1, dtype=torch.long)
    for start in range(0, n, chunk):
        k = torch.arange(start, min(n, start + chunk), dtype=torch.long)
        S = ((k[:, None] >> bits) & 1).to(torch.float64) * 2 - 1  # (m, d-1)
        S = torch.cat([torch.ones(len(k), 1, dtype=torch.float64), S], 1)  # (m, d)
        best = max(best, float((S @ A.T).abs().sum(1).max()))
    return best


def l2_smoothness(A) -> float:
    r"""Smoothness constant of :math:`L(x)=\tfrac12x^\top Ax` w.r.t. :math:`\|\cdot\|_2` (Definition 3.1).

    The best constant in :math:`\|\nabla L(x)-\nabla L(y)\|_2\le H_2\|x-y\|_2` is
    :math:`H_2=\|A\|_2`. Since :math:`\|u\|_2\le\sqrt d\|u\|_\infty` and
    :math:`\|v\|_1\le\sqrt d\|v\|_2`, an :math:`\ell_2` analysis can only certify

    .. math:: \|A\|_{\infty\to1}\le d\,\|A\|_2 ,

    which is also :math:`H(L,\Phi)` for one block (AdaSGD, Definition 3.9). The ratio
    :math:`d\|A\|_2/\|A\|_{\infty\to1}` is how much an :math:`\ell_2`-based bound loses; it is
    rotation dependent through the denominator only.

    Args:
        A: a symmetric matrix.

    Returns:
        :math:`\|A\|_2=\max_i|\lambda_i(A)|`.
    """
    A = as_symmetric(A).to(torch.float64)
    return float(torch.linalg.eigvalsh(A).abs().max())


def coordinatewise_smoothness(A) -> Tensor:
    r"""Coordinate-wise :math:`\ell_\infty` smoothness constants of a quadratic (Definition 3.3).

    :math:`|\nabla_iL(x)-\nabla_iL(y)|=|A_{i,:}(x-y)|\le\|A_{i,:}\|_1\|x-y\|_\infty` with equality
    for :math:`x-y=\mathrm{sign}(A_{i,:})`, so the best constants are the row :math:`\ell_1` norms
    :math:`H_i=\|A_{i,:}\|_1`, and :math:`\sum_iH_i=\|A\|_{1,1}`.

    Args:
        A: a square matrix.

    Returns:
        The ``(d,)`` vector :math:`(H_1,\dots,H_d)`.
    """
    return _matrix(A).abs().sum(1)


def block_spectral_norms(H: Tensor, block_index) -> Tensor:
    r"""Spectral norms of all sub-blocks of ``H`` for the partition ``block_index``.

    .. math:: N_{bc}=\|H_{(b),(c)}\|_2,\qquad b,c=1..B,

    where :math:`H_{(b),(c)}` is the :math:`d_b\times d_c` sub-matrix of the rows in block
    :math:`b` and the columns in block :math:`c` (Definition 3.8). Computed batched: one
    ``torch.linalg.matrix_norm(ord=2)`` call for all pairs of blocks of the same pair of sizes
    (a vector norm when one side has size 1), on ``H``'s device and in its dtype.

    Args:
        H: a square ``(d, d)`` matrix.
        block_index: ``(d,)`` block ids ``0..B-1`` (:func:`adamlinf.partitions.check_block_index`).

    Returns:
        The ``(B, B)`` matrix ``N``.

    Raises:
        ValueError: ``H`` not square, or invalid block ids.
    """
    H = torch.as_tensor(H)
    d = H.shape[0]
    if H.ndim != 2 or H.shape != (d, d):
        raise ValueError(f"H must be square, got shape {tuple(H.shape)}")
    idx = check_block_index(block_index, d).to(H.device)
    sizes = torch.bincount(idx)
    B = len(sizes)
    order = torch.argsort(idx, stable=True)
    starts = torch.cumsum(sizes, 0) - sizes
    members = {}  # size -> (block ids, (n_blocks, size) coordinate indices)
    for s in torch.unique(sizes).tolist():
        ids = torch.nonzero(sizes == s).reshape(-1)
        members[s] = (ids, order[starts[ids][:, None] + torch.arange(s, device=H.device)[None, :]])
    N = torch.zeros((B, B), dtype=H.dtype, device=H.device)
    for s, (ib, cb) in members.items():
        for t, (ic, cc) in members.items():
            sub = H[cb[:, None, :, None], cc[None, :, None, :]]  # (nb, nc, s, t)
            if s == 1 or t == 1:
                norms = torch.linalg.vector_norm(sub, dim=(-2, -1))
            else:
                norms = torch.linalg.matrix_norm(sub, ord=2)
            N[ib[:, None], ic[None, :]] = norms
    return N


def blockwise_smoothness(A, block_index) -> Tensor:
    r"""Valid blockwise smoothness constants :math:`H_b` of Definition 3.12 for a quadratic.

    Definition 3.12 (RECONSTRUCTED) asks
    :math:`\sqrt{d_b}\|A_{(b),:}\Delta\|_2\le H_b\|\Delta\|_\Phi`. By the triangle inequality and
    :math:`\|\Delta_{(c)}\|_2\le\sqrt{d_c}\|\Delta\|_\Phi`,

    .. math:: H_b=\sqrt{d_b}\sum_c\sqrt{d_c}\,\|A_{(b),(c)}\|_2

    satisfies it. This is an upper bound on the smallest such constant, exact when every block is a
    single coordinate (then :math:`H_i=\|A_{i,:}\|_1`, Definition 3.3). Its sum over :math:`b` is
    the Lemma 3.13 bound on :math:`H(L,\Phi)` (``adamlinf.hessian.blockwise_bound``).

    Args:
        A: a symmetric ``(d, d)`` matrix.
        block_index: ``(d,)`` block ids ``0..B-1``.

    Returns:
        The ``(B,)`` float64 vector :math:`(H_1,\dots,H_B)`.
    """
    A = as_symmetric(A).to(torch.float64)
    idx = check_block_index(block_index, A.shape[0]).to(A.device)
    N = block_spectral_norms(A, idx).cpu()
    db = torch.bincount(idx).to(torch.float64).cpu()
    return db.sqrt() * (N * db.sqrt()[None, :]).sum(1)


def blockwise_smoothness_tight_lower(
    A, block_index, *, restarts: int = 20, iters: int = 200, seed: int = 0
) -> Tensor:
    r"""Lower bounds on the *smallest* constants of Definition 3.12 for a quadratic.

    The smallest :math:`H_b` is :math:`\sqrt{d_b}\max\{\|A_{(b),:}\Delta\|_2:\|\Delta\|_\Phi\le1\}`,
    the maximum of a convex function over a product of balls (attained with every
    :math:`\|\Delta_{(c)}\|_2=\sqrt{d_c}`). We run the monotone ascent
    :math:`\Delta_{(c)}\leftarrow\sqrt{d_c}\,\mathrm{normalize}(A_{(b),(c)}^\top A_{(b),:}\Delta)`
    (maximising the linearisation of a convex function never decreases it) from random starts; the
    best value is a certified *lower* bound (and usually the exact value). The tests check Lemma 3.13
    with these: if (2) holds with these smaller :math:`H_b`, it holds with the true ones.

    Args:
        A: a symmetric ``(d, d)`` matrix.
        block_index: ``(d,)`` block ids ``0..B-1``.
        restarts: random starts per block.
        iters: ascent steps per start.
        seed: seed of the starts.

    Returns:
        The ``(B,)`` float64 vector of lower bounds.
    """
    A = as_symmetric(A).to(torch.float64).cpu()
    idx = check_block_index(block_index, A.shape[0]).cpu()
    db = torch.bincount(idx).to(torch.float64)
    B = len(db)
    g = torch.Generator().manual_seed(seed)
    out = torch.empty(B, dtype=torch.float64)

    def project(delta: Tensor) -> Tensor:
        sq = torch.zeros(delta.shape[0], B, dtype=torch.float64).index_add_(1, idx, delta * delta)
        scale = (db / sq.clamp_min(1e-300)).sqrt()
        return delta * scale[:, idx]

    for b in range(B):
        Ab = A[idx == b]  # (d_b, d)
        delta = project(torch.randn(restarts, A.shape[0], generator=g, dtype=torch.float64))
        for _ in range(iters):
            delta = project((delta @ Ab.T) @ Ab + 1e-300)
        out[b] = db[b].sqrt() * (delta @ Ab.T).norm(dim=1).max()
    return out


def phi_smoothness(A, block_index, *, method: str = "exact", max_blocks: int = 12) -> float:
    r""":math:`H(L,\Phi)` of Definition 3.9 (RECONSTRUCTED) for the quadratic with Hessian :math:`A`.

    :math:`H(L,\Phi)=\min\{\mathrm{Tr}\,D: D=\mathrm{diag}(r_{\Phi(i)}), -D\preceq A\preceq D\}`.
    For fixed positive :math:`r` the smallest feasible multiple of :math:`D` is
    :math:`\|D^{-1/2}AD^{-1/2}\|_2\,D` and the objective is invariant to scaling :math:`r`, so

    .. math:: H(L,\Phi)=\min_{r>0}\Big(\sum_bd_br_b\Big)\big\|D_r^{-1/2}AD_r^{-1/2}\big\|_2 .

    One block gives :math:`d\|A\|_2` exactly; :math:`\Phi(i)=i` gives a value
    :math:`\le\|A\|_{1,1}`.

    Args:
        A: a symmetric ``(d, d)`` matrix.
        block_index: ``(d,)`` block ids ``0..B-1``.
        method: ``"exact"``: minimise the expression above over :math:`\log r` (:math:`B-1` free
            variables) with Nelder--Mead from the Lemma 3.13 point and from the identity, refined
            by Powell (a small convex program; ``tests/test_theory.py`` checks it against a
            brute-force grid for :math:`B=3`); ``"bound"``: the Lemma 3.13 bound
            :math:`\sum_bH_b` with :math:`H_b` from :func:`blockwise_smoothness`.
        max_blocks: the largest :math:`B` for ``"exact"``.

    Returns:
        :math:`H(L,\Phi)` (or its Lemma 3.13 bound).

    Raises:
        ValueError: an unknown method, or ``"exact"`` with ``B > max_blocks``.
    """
    A = as_symmetric(A).to(torch.float64).cpu()
    idx = check_block_index(block_index, A.shape[0]).cpu()
    if method == "bound":
        return float(blockwise_smoothness(A, idx).sum())
    if method != "exact":
        raise ValueError(f"unknown method {method!r}")
    db = torch.bincount(idx).to(torch.float64).numpy()
    B = len(db)
    An = A.numpy()
    if B == 1:
        return float(len(idx) * np.linalg.norm(An, 2))
    if B > max_blocks:
        raise ValueError(
            f"exact H(L, Phi) refused for B = {B} > max_blocks = {max_blocks}; use method='bound'"
        )
    ix = idx.numpy()

    def objective(z: np.ndarray) -> float:
        r = np.exp(np.concatenate([[0.0], z]))
        s = 1.0 / np.sqrt(r[ix])
        M = An * s[:, None] * s[None, :]
        return float((db * r).sum() * np.abs(np.linalg.eigvalsh(M)).max())

    Hb = blockwise_smoothness(A, idx).numpy()
    starts = [np.zeros(B - 1)]
    with np.errstate(divide="ignore"):
        rb = np.log(np.maximum(Hb / db, 1e-300))
    if np.all(np.isfinite(rb)):
        starts.append(rb[1:] - rb[0])
    best = math.inf
    for z0 in starts:
        res = minimize(
            objective, z0, method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 4000 * B}
        )
        res = minimize(objective, res.x, method="Powell", options={"xtol": 1e-10, "ftol": 1e-13})
        best = min(best, float(res.fun))
    return best


# ----------------------------------------------------------------------------------------------
# Theorem 3.2 (SignGD)
def signgd_bound(delta: float, T: ArrayLike, eta: ArrayLike, H: float) -> float | np.ndarray:
    r"""Right-hand side of Theorem 3.2 (RECONSTRUCTED) for SignGD with step :math:`\eta`.

    For an :math:`H`-smooth loss w.r.t. :math:`\|\cdot\|_\infty`,

    .. math:: \min_{0\le t<T}\|\nabla L(x_t)\|_1\le\frac{\Delta}{T\eta}+\frac{H\eta}2,
              \qquad\Delta=L(x_0)-\min L .

    Proof: sum the one-step inequality (9),
    :math:`L(x_{t+1})\le L(x_t)-\eta\|\nabla L(x_t)\|_1+H\eta^2/2`, over :math:`t<T`.

    Args:
        delta: :math:`\Delta\ge0`.
        T: number of steps (elementwise on arrays).
        eta: step size(s) :math:`>0`.
        H: the :math:`\ell_\infty` smoothness constant (:func:`linf_smoothness`).

    Returns:
        The bound, a float or an array broadcast over ``T`` and ``eta``.

    Raises:
        ValueError: ``T < 1``, ``eta <= 0``, ``H < 0`` or ``delta < 0``.
    """
    T = np.asarray(T, dtype=float)
    eta = np.asarray(eta, dtype=float)
    if np.any(T < 1) or np.any(eta <= 0) or float(H) < 0 or float(delta) < 0:
        raise ValueError("need T >= 1, eta > 0, H >= 0, delta >= 0")
    out = delta / (T * eta) + H * eta / 2
    return float(out) if out.ndim == 0 else out


def signgd_tuned_lr(delta: float, T: ArrayLike, H: float) -> np.ndarray:
    r"""The step minimising :func:`signgd_bound`: :math:`\eta^*=\sqrt{2\Delta/(TH)}` (Theorem 3.2).

    Args:
        delta: :math:`\Delta=L(x_0)-\min L`.
        T: number(s) of steps.
        H: the :math:`\ell_\infty` smoothness constant, :math:`>0`.

    Returns:
        :math:`\eta^*`, elementwise in ``T``.
    """
    _check_pos("H", H)
    return np.sqrt(2 * delta / (np.asarray(T, dtype=float) * H))


def signgd_tuned_bound(delta: float, T: ArrayLike, H: float) -> np.ndarray:
    r"""Theorem 3.2 at the tuned step (RECONSTRUCTED): :math:`\sqrt{2H\Delta/T}`.

    Args:
        delta: :math:`\Delta=L(x_0)-\min L`.
        T: number(s) of steps.
        H: the :math:`\ell_\infty` smoothness constant.

    Returns:
        The bound, elementwise in ``T``.
    """
    return np.sqrt(2 * H * delta / np.asarray(T, dtype=float))


# ----------------------------------------------------------------------------------------------
# Theorem 3.5 (RMSProp = Adam with beta1 = 0) and Theorem 3.11 (blockwise)
@dataclass
class BoundTerms:
    r"""The pieces of the Theorem 3.5 / 3.11 bound :math:`E+\sqrt{E}\sqrt{S}`.

    Attributes:
        E: the first-order term :math:`E`.
        F: the log term :math:`F` (Lemma C.1).
        S: the quantity under the second square root.
        total: :math:`E+\sqrt{ES}`.
    """

    E: float
    F: float
    S: float
    total: float


def rmsprop_F(
    *,
    sigma: ArrayLike,
    grad0_inf: float,
    H: ArrayLike,
    eta: float,
    T: float,
    beta2: float,
    v0: float,
    eps: float = 0.0,
) -> float:
    r""":math:`F` of Theorem 3.5 / Lemma C.1 (RECONSTRUCTED; the constants 2 and :math:`\ln32` are uncertain).

    .. math:: F=2\ln\Big(1+\frac{\sum_i\sigma_i^2+\|\nabla L(x_0)\|_\infty^2
              +\max_iH_i^2\eta^2T(T+\frac1{1-\beta_2})}{v_0+\epsilon}\Big)+\ln32 .

    Args:
        sigma: the ``(d,)`` noise levels :math:`\sigma_i` (Assumption 3.4).
        grad0_inf: :math:`\|\nabla L(x_0)\|_\infty`.
        H: the ``(d,)`` constants :math:`H_i` (Definition 3.3).
        eta: step size.
        T: number of steps.
        beta2: :math:`\beta_2\in[0,1)`.
        v0: initial second moment.
        eps: :math:`\epsilon` (inside the root).

    Returns:
        :math:`F`.

    Raises:
        ValueError: ``v0 + eps <= 0`` or ``beta2`` outside ``[0, 1)``.
    """
    sigma = np.asarray(sigma, dtype=float)
    H = np.asarray(H, dtype=float)
    _check_pos("v0 + eps", v0 + eps)
    if not 0 <= beta2 < 1:
        raise ValueError(f"beta2 must be in [0, 1), got {beta2}")
    num = (sigma**2).sum() + grad0_inf**2 + H.max() ** 2 * eta**2 * T * (T + 1 / (1 - beta2))
    return float(2 * math.log1p(num / (v0 + eps)) + math.log(32))


def rmsprop_bound(
    *,
    delta: float,
    T: float,
    eta: float,
    beta2: float,
    H: ArrayLike,
    sigma: ArrayLike,
    v0: float,
    grad0_inf: float,
    eps: float = 0.0,
    noise_factor: float = 1.0,
) -> BoundTerms:
    r"""Right-hand side of Theorem 3.5 (RECONSTRUCTED) for RMSProp (Algorithm 1 with :math:`\beta_1=0`).

    With :math:`\epsilon` inside the root and a constant step :math:`\eta`,

    .. math::
        \min_{T/2<t\le T}\mathbb E\|\nabla L(x_t)\|_1\le E+\sqrt E\,
        \sqrt{\frac{\beta_2^{T/4}}{T(1-\beta_2)}d\sqrt{v_0}+\sum_i\sigma_i+d\sqrt\epsilon},

    .. math::
        E=\frac{2\Delta}{\eta T}+\Big(1+\frac{\beta_2F}{T(1-\beta_2)}\Big)
          \Big(\eta\sum_iH_i+c\sqrt{1-\beta_2}\sum_i\sigma_i\Big),

    with :math:`F` from :func:`rmsprop_F`.

    Args:
        delta: :math:`\Delta\ge\mathbb E[L(x_0)-L(x_T)]` (pass :math:`L(x_0)-\min L`).
        T: number of steps.
        eta: step size.
        beta2: :math:`\beta_2\in(0,1)`.
        H: the ``(d,)`` coordinate-wise constants (Definition 3.3).
        sigma: the ``(d,)`` noise levels (Assumption 3.4), or a scalar.
        v0: initial second moment.
        grad0_inf: :math:`\|\nabla L(x_0)\|_\infty`.
        eps: :math:`\epsilon`.
        noise_factor: :math:`c` (1 in the reconstruction; a third-party note has 2).

    Returns:
        The :class:`BoundTerms`.
    """
    H = np.asarray(H, dtype=float).reshape(-1)
    sigma = np.broadcast_to(np.asarray(sigma, dtype=float), H.shape)
    d = H.size
    _check_pos("T", T)
    _check_pos("eta", eta)
    if not 0 < beta2 < 1:
        raise ValueError(f"beta2 must be in (0, 1), got {beta2}")
    F = rmsprop_F(sigma=sigma, grad0_inf=grad0_inf, H=H, eta=eta, T=T, beta2=beta2, v0=v0, eps=eps)
    E = 2 * delta / (eta * T) + (1 + beta2 * F / (T * (1 - beta2))) * (
        eta * H.sum() + noise_factor * math.sqrt(1 - beta2) * sigma.sum()
    )
    S = beta2 ** (T / 4) / (T * (1 - beta2)) * d * math.sqrt(v0) + sigma.sum() + d * math.sqrt(eps)
    return BoundTerms(E=float(E), F=F, S=float(S), total=float(E + math.sqrt(E * S)))


def rmsprop_tuned_lr(delta: float, T: float, H_sum: float) -> float:
    r"""The step of Corollaries 3.6/3.7 with constant 1: :math:`\eta=\sqrt{\Delta/(T\sum_iH_i)}`.

    Args:
        delta: :math:`\Delta=L(x_0)-\min L`.
        T: number of steps.
        H_sum: :math:`\sum_iH_i` (or :math:`H(L,\Phi)` for blockwise Adam).

    Returns:
        :math:`\eta`.
    """
    return math.sqrt(delta / (T * H_sum))


def blockwise_adam_F(
    *,
    sigma_b: ArrayLike,
    d_b: ArrayLike,
    grad0_phi: float,
    H_b: ArrayLike,
    eta: float,
    T: float,
    beta2: float,
    v0: ArrayLike,
    eps: float = 0.0,
) -> float:
    r"""Blockwise analogue of :func:`rmsprop_F` for Theorem 3.11 (RECONSTRUCTED).

    :math:`\sum_i\sigma_i^2` becomes :math:`\sum_bd_b\sigma_b^2`, :math:`\|\nabla L(x_0)\|_\infty`
    becomes :math:`\|\nabla L(x_0)\|_\Phi` and :math:`\max_iH_i` becomes :math:`\max_bH_b/d_b`
    (the scale of a block's mean squared gradient change):

    .. math:: F=2\ln\Big(1+\frac{\sum_bd_b\sigma_b^2+\|\nabla L(x_0)\|_\Phi^2
              +\max_b(H_b/d_b)^2\eta^2T(T+\frac1{1-\beta_2})}{\min_bv_{0,b}+\epsilon}\Big)+\ln32 .

    Args:
        sigma_b: the ``(B,)`` block noise levels (Assumption 3.10).
        d_b: the ``(B,)`` block sizes.
        grad0_phi: :math:`\|\nabla L(x_0)\|_\Phi`.
        H_b: the ``(B,)`` constants of Definition 3.12.
        eta: step size.
        T: number of steps.
        beta2: :math:`\beta_2`.
        v0: initial second moment, scalar or per block.
        eps: :math:`\epsilon`.

    Returns:
        :math:`F`.
    """
    sigma_b = np.asarray(sigma_b, dtype=float)
    d_b = np.asarray(d_b, dtype=float)
    H_b = np.asarray(H_b, dtype=float)
    v0min = float(np.min(v0))
    _check_pos("v0 + eps", v0min + eps)
    num = (
        (d_b * sigma_b**2).sum() + grad0_phi**2 + (H_b / d_b).max() ** 2 * eta**2 * T * (T + 1 / (1 - beta2))
    )
    return float(2 * math.log1p(num / (v0min + eps)) + math.log(32))


def blockwise_adam_bound(
    *,
    delta: float,
    T: float,
    eta: float,
    beta2: float,
    H_phi: float,
    H_b: ArrayLike,
    sigma_b: ArrayLike,
    d_b: ArrayLike,
    v0: ArrayLike,
    grad0_phi: float,
    eps: float = 0.0,
    noise_factor: float = 1.0,
) -> BoundTerms:
    r"""Right-hand side of Theorem 3.11 (RECONSTRUCTED) for blockwise Adam (Algorithm 3), :math:`\beta_1=0`.

    .. math::
        \min_{T/2<t\le T}\mathbb E\|\nabla L(x_t)\|_{\Phi,*}\le E+\sqrt E\,
        \sqrt{\frac{\beta_2^{T/4}}{T(1-\beta_2)}\sum_bd_b\sqrt{v_{0,b}}+\sum_bd_b\sigma_b
        +d\sqrt\epsilon},

    .. math::
        E=\frac{2\Delta}{\eta T}+\Big(1+\frac{\beta_2F}{T(1-\beta_2)}\Big)
          \Big(\eta H(L,\Phi)+c\sqrt{1-\beta_2}\sum_bd_b\sigma_b\Big),

    with :math:`F` from :func:`blockwise_adam_F`. Theorem 3.5 is the case :math:`\Phi(i)=i`.

    Args:
        delta: :math:`\Delta\ge\mathbb E[L(x_0)-L(x_T)]`.
        T: number of steps.
        eta: step size.
        beta2: :math:`\beta_2\in(0,1)`.
        H_phi: :math:`H(L,\Phi)` (Definition 3.9) or any upper bound (Lemma 3.13).
        H_b: the ``(B,)`` constants of Definition 3.12.
        sigma_b: the ``(B,)`` block noise levels (Assumption 3.10), or a scalar.
        d_b: the ``(B,)`` block sizes.
        v0: initial second moment, scalar or per block.
        grad0_phi: :math:`\|\nabla L(x_0)\|_\Phi`.
        eps: :math:`\epsilon`.
        noise_factor: :math:`c` (1 in the reconstruction).

    Returns:
        The :class:`BoundTerms`.
    """
    d_b = np.asarray(d_b, dtype=float).reshape(-1)
    sigma_b = np.broadcast_to(np.asarray(sigma_b, dtype=float), d_b.shape)
    v0 = np.broadcast_to(np.asarray(v0, dtype=float), d_b.shape)
    _check_pos("T", T)
    _check_pos("eta", eta)
    if not 0 < beta2 < 1:
        raise ValueError(f"beta2 must be in (0, 1), got {beta2}")
    F = blockwise_adam_F(
        sigma_b=sigma_b, d_b=d_b, grad0_phi=grad0_phi, H_b=H_b, eta=eta, T=T, beta2=beta2, v0=v0, eps=eps
    )
    noise = (d_b * sigma_b).sum()
    E = 2 * delta / (eta * T) + (1 + beta2 * F / (T * (1 - beta2))) * (
        eta * H_phi + noise_factor * math.sqrt(1 - beta2) * noise
    )
    S = beta2 ** (T / 4) / (T * (1 - beta2)) * (d_b * np.sqrt(v0)).sum() + noise + d_b.sum() * math.sqrt(eps)
    return BoundTerms(E=float(E), F=F, S=float(S), total=float(E + math.sqrt(E * S)))


# ----------------------------------------------------------------------------------------------
# the lemmas' right-hand sides
def lemma314_rhs(v: Tensor, beta2: float, v0) -> Tensor:
    r"""Right side of Lemma 3.14 (RECONSTRUCTED).

    For :math:`v_t-\beta_2v_{t-1}\ge(1-\beta_2)g_t^2`,

    .. math:: \sum_{t=1}^T\frac{g_t^2}{v_t}\le T+\frac{\beta_2}{1-\beta_2}\ln\frac{v_T}{v_0}
              \quad(v_0>0),\qquad
              \le T+\frac{\beta_2}{1-\beta_2}\Big(1+\ln\frac{v_T}{v_1}\Big)\quad(v_0=0)

    (for :math:`v_0=0` the first term :math:`g_1^2/v_1` is at most :math:`1/(1-\beta_2)`).

    Args:
        v: the sequence :math:`v_1..v_T` along the last dimension.
        beta2: :math:`\beta_2\in(0,1)`.
        v0: :math:`v_0`, all positive or all zero (broadcast against ``v[..., 0]``).

    Returns:
        The right side, of shape ``v.shape[:-1]``.

    Raises:
        ValueError: ``v0`` mixes zero and positive entries.
    """
    v = torch.as_tensor(v)
    T = v.shape[-1]
    c = beta2 / (1 - beta2)
    v0 = torch.as_tensor(v0, dtype=v.dtype)
    if torch.all(v0 > 0):
        return T + c * torch.log(v[..., -1] / v0)
    if torch.all(v0 == 0):
        return T + c * (1 + torch.log(v[..., -1] / v[..., 0]))
    raise ValueError("v0 must be all positive or all zero")


def lemma315_rhs(*, gbar_sq_over_sqrt_vtilde_sum, d_b, sigma_b, T: int, beta2: float, log_ratio):
    r"""Right side of Lemma 3.15 (RECONSTRUCTED; constants unverified), per block :math:`b`.

    .. math:: \frac12\mathbb E\sum_t\frac{\|\bar g_{t,(b)}\|_2^2}{\sqrt{\tilde v_{t,b}+\epsilon}}
              -\sqrt{1-\beta_2}\,d_b\sigma_b\Big(T+\frac{\beta_2}{1-\beta_2}
              \mathbb E\ln\frac{v_{T,b}+\epsilon}{v_{0,b}+\epsilon}\Big).

    Args:
        gbar_sq_over_sqrt_vtilde_sum: the first sum (expectation, or per-seed values).
        d_b: block sizes.
        sigma_b: block noise levels.
        T: number of steps.
        beta2: :math:`\beta_2`.
        log_ratio: :math:`\ln((v_{T,b}+\epsilon)/(v_{0,b}+\epsilon))` (expectation or per seed).

    Returns:
        The right side, broadcast over the inputs.
    """
    return 0.5 * gbar_sq_over_sqrt_vtilde_sum - math.sqrt(1 - beta2) * d_b * sigma_b * (
        T + beta2 / (1 - beta2) * log_ratio
    )


def lemma316_rhs(*, T: int, beta2: float, v0: float, sigma_b, eps: float, gbar_abs_sum, c: float = 1.0):
    r"""Right side of Lemma 3.16 (RECONSTRUCTED; the constant :math:`c` was not recovered).

    .. math:: \frac{2\beta_2^{T/4}\sqrt{v_0}}{1-\beta_2}+T\sigma_b+T\sqrt\epsilon
              +c\sum_t\mathbb E\frac{\|\bar g_{t,(b)}\|_2}{\sqrt{d_b}} ,

    bounding :math:`\sum_{T/2<t\le T}\mathbb E\sqrt{\tilde v_{t,b}+\epsilon}`. The checks in
    ``tests/test_lemmas.py`` need :math:`c>1` (we use 2).

    Args:
        T: number of steps.
        beta2: :math:`\beta_2`.
        v0: initial second moment.
        sigma_b: block noise levels.
        eps: :math:`\epsilon`.
        gbar_abs_sum: :math:`\sum_t\|\bar g_{t,(b)}\|_2/\sqrt{d_b}` (expectation or per seed).
        c: the constant :math:`c`.

    Returns:
        The right side, broadcast over the inputs.
    """
    return (
        2 * beta2 ** (T / 4) * math.sqrt(v0) / (1 - beta2)
        + T * sigma_b
        + T * math.sqrt(eps)
        + c * gbar_abs_sum
    )
