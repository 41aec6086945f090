r"""Section 3 for a quadratic with Hessian :math:`A` (dense; :mod:`adamlinf.hessian` for operators).

Smoothness constants as norms of :math:`A` (Definitions 3.1, 3.3, 3.9, 3.12, Lemma 3.13), the bounds of
Theorems 3.2, 3.5, 3.11 and the right-hand sides of Lemmas 3.14-3.16 and C.1. Every bound is
**RECONSTRUCTED** (the paper's formulas were lost in its text extraction; ``book/reconstruction.md``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import minimize
from torch import Tensor

from .partitions import check_block_index

ArrayLike = float | np.ndarray | Tensor


def _matrix(A) -> Tensor:
    A = torch.as_tensor(A)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"expected a square matrix, got shape {tuple(A.shape)}")
    if not A.is_floating_point():
        A = A.to(torch.float64)
    return A


def as_symmetric(A) -> Tensor:
    """``A`` as a floating-point tensor (integers become float64), checked square and symmetric."""
    A = _matrix(A)
    if not torch.allclose(A, A.T, rtol=1e-8, atol=1e-10 * float(A.abs().max().clamp_min(1e-300))):
        raise ValueError("the Hessian of a quadratic must be symmetric")
    return A


def _check_pos(name: str, value) -> None:
    if not math.isfinite(float(value)) or float(value) <= 0:
        raise ValueError(f"{name} must be positive, got {value}")


def _check_run(T, eta, beta2) -> None:
    _check_pos("T", T)
    _check_pos("eta", eta)
    if not 0 < beta2 < 1:
        raise ValueError(f"beta2 must be in (0, 1), got {beta2}")


# norms and smoothness constants
def l11_exact(A: Tensor) -> float:
    r""":math:`\|A\|_{1,1}=\sum_{ij}|A_{ij}|=\sum_iH_i` of a dense matrix (Definition 3.3)."""
    return float(A.abs().sum())


def linf_smoothness(A, max_brute_dim: int = 22) -> float:
    r""":math:`\|A\|_{\infty\to1}=\max_{s\in\{\pm1\}^d}\|As\|_1` (Def. 3.1), by :math:`2^{d-1}` signs.

    Raises:
        ValueError: a non-diagonal ``A`` with ``d > max_brute_dim``.
    """
    A = _matrix(A).to(torch.float64)
    d = A.shape[0]
    if torch.equal(A, torch.diag(torch.diagonal(A))) or d == 1:
        return float(A.abs().sum())
    if d > max_brute_dim:
        raise ValueError(f"brute force over 2^{d - 1} sign vectors refused (d > {max_brute_dim})")
    best, n, chunk = 0.0, 2 ** (d - 1), 1 << 14  # sign vectors with s_0 = +1, in chunks
    bits = torch.arange(d - 1, dtype=torch.long)
    for start in range(0, n, chunk):
        k = torch.arange(start, min(n, start + chunk), dtype=torch.long)
        S = ((k[:, None] >> bits) & 1).to(torch.float64) * 2 - 1  # (m, d-1)
        S = torch.cat([torch.ones(len(k), 1, dtype=torch.float64), S], 1)  # (m, d)
        best = max(best, float((S @ A.T).abs().sum(1).max()))
    return best


def l2_smoothness(A) -> float:
    r""":math:`\|A\|_2=\max_i|\lambda_i(A)|`, the :math:`\ell_2` smoothness constant (Definition 3.1)."""
    return float(torch.linalg.eigvalsh(as_symmetric(A).to(torch.float64)).abs().max())


def coordinatewise_smoothness(A) -> Tensor:
    r"""The constants :math:`H_i=\|A_{i,:}\|_1` of Definition 3.3 (tight)."""
    return _matrix(A).abs().sum(1)


def block_spectral_norms(H: Tensor, block_index) -> Tensor:
    r""":math:`N_{bc}=\|H_{(b),(c)}\|_2` for block ids ``0..B-1``, in ``H``'s dtype."""
    H = _matrix(H)
    idx = check_block_index(block_index, H.shape[0]).to(H.device)
    sizes = torch.bincount(idx)
    order = torch.argsort(idx, stable=True)
    starts = torch.cumsum(sizes, 0) - sizes
    members = {}  # size -> (block ids, (n_blocks, size) coordinate indices)
    for s in torch.unique(sizes).tolist():
        ids = torch.nonzero(sizes == s).reshape(-1)
        members[s] = (ids, order[starts[ids][:, None] + torch.arange(s, device=H.device)[None, :]])
    N = torch.zeros((len(sizes), len(sizes)), dtype=H.dtype, device=H.device)
    for s, (ib, cb) in members.items():
        for t, (ic, cc) in members.items():
            sub = H[cb[:, None, :, None], cc[None, :, None, :]]  # (nb, nc, s, t)
            if s == 1 or t == 1:
                N[ib[:, None], ic[None, :]] = torch.linalg.vector_norm(sub, dim=(-2, -1))
            else:
                N[ib[:, None], ic[None, :]] = torch.linalg.matrix_norm(sub, ord=2)
    return N


def blockwise_smoothness(A, block_index) -> Tensor:
    r"""Valid :math:`H_b=\sqrt{d_b}\sum_c\sqrt{d_c}\|A_{(b),(c)}\|_2` of Def. 3.12 (exact for coordinates)."""
    A = as_symmetric(A).to(torch.float64)
    idx = check_block_index(block_index, A.shape[0]).to(A.device)
    N = block_spectral_norms(A, idx).cpu()
    db = torch.bincount(idx).to(torch.float64).cpu()
    return db.sqrt() * (N * db.sqrt()[None, :]).sum(1)


def blockwise_bound(H: Tensor, block_index) -> float:
    r"""Lemma 3.13: :math:`H(L,\Phi)\le\sum_{b,c}\sqrt{d_bd_c}\|H_{(b),(c)}\|_2`, any block labels."""
    H = _matrix(H)
    ids = check_block_index(block_index, H.shape[0], relabel=True).to(H.device)
    s = torch.sqrt(torch.bincount(ids).to(H.dtype))
    return float((s[:, None] * block_spectral_norms(H, ids) * s[None, :]).sum())


def phi_smoothness(A, block_index, *, max_blocks: int = 12) -> float:
    r""":math:`H(L,\Phi)` of Definition 3.9 (RECONSTRUCTED) for the quadratic with Hessian :math:`A`.

    :math:`H(L,\Phi)=\min\{\mathrm{Tr}\,D: D=\mathrm{diag}(r_{\Phi(i)}),-D\preceq A\preceq D\}
    =\min_{r>0}(\sum_bd_br_b)\|D_r^{-1/2}AD_r^{-1/2}\|_2`, minimised over :math:`\log r` by
    Nelder--Mead then Powell from the identity and the Lemma 3.13 point.

    Raises:
        ValueError: more than ``max_blocks`` blocks.
    """
    A = as_symmetric(A).to(torch.float64).cpu()
    idx = check_block_index(block_index, A.shape[0]).cpu()
    db = torch.bincount(idx).to(torch.float64).numpy()
    B = len(db)
    An = A.numpy()
    if B == 1:
        return float(len(idx) * np.linalg.norm(An, 2))
    if B > max_blocks:
        raise ValueError(f"exact H(L, Phi) refused for B = {B} > max_blocks = {max_blocks}")
    ix = idx.numpy()

    def objective(z: np.ndarray) -> float:
        r = np.exp(np.concatenate([[0.0], z]))
        s = 1.0 / np.sqrt(r[ix])
        return float((db * r).sum() * np.abs(np.linalg.eigvalsh(An * s[:, None] * s[None, :])).max())

    starts = [np.zeros(B - 1)]
    with np.errstate(divide="ignore"):
        rb = np.log(np.maximum(blockwise_smoothness(A, idx).numpy() / db, 1e-300))
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


# Theorem 3.2 (SignGD)
def signgd_bound(delta: float, T: ArrayLike, eta: ArrayLike, H: float) -> float | np.ndarray:
    r"""Theorem 3.2 (RECONSTRUCTED): :math:`\min_{t<T}\|\nabla L(x_t)\|_1\le\Delta/(T\eta)+H\eta/2`.

    :math:`\Delta=L(x_0)-\min L`, :math:`H` the :math:`\ell_\infty` constant. Elementwise in ``T``, ``eta``.
    """
    T, eta = np.asarray(T, dtype=float), np.asarray(eta, dtype=float)
    if np.any(T < 1) or np.any(eta <= 0) or float(H) < 0 or float(delta) < 0:
        raise ValueError("need T >= 1, eta > 0, H >= 0, delta >= 0")
    out = delta / (T * eta) + H * eta / 2
    return float(out) if out.ndim == 0 else out


def signgd_tuned_lr(delta: float, T: ArrayLike, H: float) -> np.ndarray:
    r"""The step :math:`\eta^*=\sqrt{2\Delta/(TH)}` minimising :func:`signgd_bound`."""
    _check_pos("H", H)
    return np.sqrt(2 * delta / (np.asarray(T, dtype=float) * H))


def signgd_tuned_bound(delta: float, T: ArrayLike, H: float) -> np.ndarray:
    r"""Theorem 3.2 at the tuned step: :math:`\sqrt{2H\Delta/T}`."""
    return np.sqrt(2 * H * delta / np.asarray(T, dtype=float))


# Theorem 3.5 (RMSProp = Adam with beta1 = 0) and Theorem 3.11 (blockwise)
@dataclass
class BoundTerms:
    r"""The pieces of the Theorem 3.5 / 3.11 bound ``total`` :math:`=E+\sqrt{ES}`; :math:`F` of Lemma C.1."""

    E: float
    F: float
    S: float
    total: float


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
    r""":math:`F` of Lemma C.1 and Theorems 3.5, 3.11 (RECONSTRUCTED; 2 and :math:`\ln32` uncertain).

    .. math:: F=2\ln\Big(1+\frac{\sum_bd_b\sigma_b^2+\|\nabla L(x_0)\|_\Phi^2
              +\max_b(H_b/d_b)^2\eta^2T(T+\frac1{1-\beta_2})}{\min_bv_{0,b}+\epsilon}\Big)+\ln32 .

    Coordinates (:math:`d_b=1`, :math:`\|\cdot\|_\Phi=\|\cdot\|_\infty`) give Theorem 3.5's :math:`F`.
    """
    sigma_b, d_b, H_b = (np.asarray(x, dtype=float) for x in (sigma_b, d_b, H_b))
    v0min = float(np.min(v0))
    _check_pos("v0 + eps", v0min + eps)
    if not 0 <= beta2 < 1:
        raise ValueError(f"beta2 must be in [0, 1), got {beta2}")
    drift = (H_b / d_b).max() ** 2 * eta**2 * T * (T + 1 / (1 - beta2))
    num = (d_b * sigma_b**2).sum() + grad0_phi**2 + drift
    return float(2 * math.log1p(num / (v0min + eps)) + math.log(32))


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
) -> BoundTerms:
    r"""Theorem 3.5 (RECONSTRUCTED) for RMSProp (:math:`\beta_1=0`, :math:`\epsilon` inside the root).

    :func:`blockwise_adam_bound` on coordinates: :math:`d_b=1`, :math:`H(L,\Phi)=\sum_iH_i`, a bound on
    :math:`\min_{T/2<t\le T}\mathbb E\|\nabla L(x_t)\|_1`.
    """
    H = np.asarray(H, dtype=float).reshape(-1)
    sigma = np.broadcast_to(np.asarray(sigma, dtype=float), H.shape)
    d = H.size
    _check_run(T, eta, beta2)
    F = blockwise_adam_F(
        sigma_b=sigma, d_b=np.ones(d), grad0_phi=grad0_inf, H_b=H, eta=eta, T=T, beta2=beta2, v0=v0, eps=eps
    )
    E = 2 * delta / (eta * T) + (1 + beta2 * F / (T * (1 - beta2))) * (
        eta * H.sum() + math.sqrt(1 - beta2) * sigma.sum()
    )
    S = beta2 ** (T / 4) / (T * (1 - beta2)) * d * math.sqrt(v0) + sigma.sum() + d * math.sqrt(eps)
    return BoundTerms(E=float(E), F=F, S=float(S), total=float(E + math.sqrt(E * S)))


def rmsprop_tuned_lr(delta: float, T: float, H_sum: float) -> float:
    r"""The step of Corollaries 3.6/3.7 with constant 1: :math:`\eta=\sqrt{\Delta/(T\sum_iH_i)}`."""
    return math.sqrt(delta / (T * H_sum))


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
) -> BoundTerms:
    r"""Theorem 3.11 (RECONSTRUCTED) for blockwise Adam (Algorithm 3) with :math:`\beta_1=0`.

    .. math::
        \min_{T/2<t\le T}\mathbb E\|\nabla L(x_t)\|_{\Phi,*}\le E+\sqrt E\,
        \sqrt{\frac{\beta_2^{T/4}}{T(1-\beta_2)}\sum_bd_b\sqrt{v_{0,b}}+\sum_bd_b\sigma_b
        +d\sqrt\epsilon},\quad
        E=\frac{2\Delta}{\eta T}+\Big(1+\frac{\beta_2F}{T(1-\beta_2)}\Big)
          \Big(\eta H(L,\Phi)+\sqrt{1-\beta_2}\sum_bd_b\sigma_b\Big),

    with :math:`H(L,\Phi)` = ``H_phi`` (or a Lemma 3.13 bound), :math:`F` from :func:`blockwise_adam_F`.
    """
    d_b = np.asarray(d_b, dtype=float).reshape(-1)
    sigma_b = np.broadcast_to(np.asarray(sigma_b, dtype=float), d_b.shape)
    v0 = np.broadcast_to(np.asarray(v0, dtype=float), d_b.shape)
    _check_run(T, eta, beta2)
    F = blockwise_adam_F(
        sigma_b=sigma_b, d_b=d_b, grad0_phi=grad0_phi, H_b=H_b, eta=eta, T=T, beta2=beta2, v0=v0, eps=eps
    )
    noise = (d_b * sigma_b).sum()
    E = 2 * delta / (eta * T) + (1 + beta2 * F / (T * (1 - beta2))) * (
        eta * H_phi + math.sqrt(1 - beta2) * noise
    )
    S = beta2 ** (T / 4) / (T * (1 - beta2)) * (d_b * np.sqrt(v0)).sum() + noise + d_b.sum() * math.sqrt(eps)
    return BoundTerms(E=float(E), F=F, S=float(S), total=float(E + math.sqrt(E * S)))


# the lemmas' right-hand sides (RECONSTRUCTED)
def lemma314_rhs(T: int, beta2: float, log_ratio):
    r"""Lemma 3.14: if :math:`v_t-\beta_2v_{t-1}\ge(1-\beta_2)g_t^2`, then the right side below.

    .. math:: \sum_{t=1}^T\frac{g_t^2}{v_t}\le T+\frac{\beta_2}{1-\beta_2}\ln\frac{v_T}{v_0}.

    ``log_ratio`` is :math:`\ln(v_T/v_0)`; for :math:`v_0=0` pass :math:`1+\ln(v_T/v_1)` (the first
    term is then at most :math:`1/(1-\beta_2)`). Elementwise.
    """
    return T + beta2 / (1 - beta2) * log_ratio


def lemma315_rhs(*, gbar_sq_over_sqrt_vtilde_sum, d_b, sigma_b, T: int, beta2: float, log_ratio):
    r"""Lemma 3.15 (constants unverified): per block, a lower bound on the first-order term.

    .. math:: \mathbb E\sum_t\bar g_{(b)}^\top g_{(b)}/\sqrt{v_{t,b}+\epsilon}\ge
              \frac12\mathbb E\sum_t\frac{\|\bar g_{t,(b)}\|_2^2}{\sqrt{\tilde v_{t,b}+\epsilon}}
              -\sqrt{1-\beta_2}\,d_b\sigma_b\Big(T+\frac{\beta_2}{1-\beta_2}
              \mathbb E\ln\frac{v_{T,b}+\epsilon}{v_{0,b}+\epsilon}\Big),

    the parenthesis being :func:`lemma314_rhs`. Elementwise.
    """
    rhs314 = lemma314_rhs(T, beta2, log_ratio)
    return 0.5 * gbar_sq_over_sqrt_vtilde_sum - math.sqrt(1 - beta2) * d_b * sigma_b * rhs314


def lemma316_rhs(*, T: int, beta2: float, v0: float, sigma_b, eps: float, gbar_abs_sum, c: float = 1.0):
    r"""Lemma 3.16: a bound on :math:`\sum_{T/2<t\le T}\mathbb E\sqrt{\tilde v_{t,b}+\epsilon}`, per block.

    .. math:: \frac{2\beta_2^{T/4}\sqrt{v_0}}{1-\beta_2}+T\sigma_b+T\sqrt\epsilon
              +c\sum_t\mathbb E\frac{\|\bar g_{t,(b)}\|_2}{\sqrt{d_b}},

    with ``gbar_abs_sum`` the last sum (elementwise). :math:`c` was not recovered: runs need
    :math:`c>1` (about 1.2 on a deterministic run); the book uses 2.
    """
    v0_term = 2 * beta2 ** (T / 4) * math.sqrt(v0) / (1 - beta2)
    return v0_term + T * sigma_b + T * math.sqrt(eps) + c * gbar_abs_sum
