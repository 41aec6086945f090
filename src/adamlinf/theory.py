"""The closed-form quantities of Section 3: smoothness constants and the right-hand sides of the
convergence theorems, exactly as reconstructed in ``PAPER_MATH.md``.

The paper's formulas were lost in its text extraction, so every bound below is **RECONSTRUCTED**
(see ``shared/paper/PAPER_MATH.md``, Section 3); each docstring says which statement it
implements and which parts are uncertain. The numerical checks live in ``tests/test_lemmas.py``
and ``tests/test_theory.py`` and in the notebooks ``thm32_signgd``, ``thm35_rmsprop`` and
``thm311_blockwise``.

Contents
--------
* Smoothness constants of a quadratic ``L(x) = 1/2 (x - x*)^T A (x - x*)`` (its Hessian is ``A``
  everywhere, so the sup over ``x`` in every definition is attained trivially):

  - :func:`linf_smoothness`: Definition 3.1 for ``||.||_inf``: ``H = ||A||_{inf->1}``;
  - :func:`coordinatewise_smoothness`: Definition 3.3: ``H_i = ||A_{i,:}||_1``;
  - :func:`phi_norm`, :func:`phi_dual_norm`: Definition 3.8;
  - :func:`blockwise_smoothness`: Definition 3.12 (valid constants ``H_b``; exact for ``d_b = 1``);
  - :func:`phi_smoothness`: Definition 3.9, ``H(L, Phi)`` by an exact small minimisation.
* Right-hand sides: :func:`signgd_bound` (Theorem 3.2), :func:`rmsprop_bound` (Theorem 3.5),
  :func:`blockwise_adam_bound` (Theorem 3.11), and the lemma right-hand sides
  :func:`lemma314_rhs`, :func:`lemma315_rhs`, :func:`lemma316_rhs`.
* :class:`NoisyQuadratic`: a quadratic with a coordinate-wise Gaussian gradient oracle
  (Assumptions 3.4 / 3.10), batched over independent copies (seeds); :func:`random_psd` and
  :func:`block_quadratic` build the test Hessians.
* Batched runners that call the functional updates of :mod:`adamlinf.optim`:
  :func:`run_signgd` (a grid of step sizes at once), :func:`run_blockwise_rmsprop` (seeds and step
  sizes at once, optionally recording the quantities of Lemmas 3.14-3.16 and C.1, summarised by
  :func:`lemma_report`), :func:`run_trajectory` and :func:`equivariance_gap` (Definition 2.1).
* The theory notebooks' experiments, each returning a tidy ``pandas.DataFrame``:
  :func:`equivariance_trajectories_2d`, :func:`equivariance_gaps` (Theorem 2.2 / Figure 2);
  :func:`signgd_test_problems`, :func:`signgd_bound_grid`, :func:`signgd_tuned_rate` (Theorem 3.2);
  :func:`rmsprop_bound_sweep`, :func:`rmsprop_slopes`, :func:`rmsprop_lemma_table`,
  :func:`lemma316_counterexample` (Theorem 3.5); :func:`blockwise_test_partitions`,
  :func:`blockwise_partition_sweep` (Theorem 3.11).

Numerical findings that changed a reconstruction: Lemma 3.16 needs a constant ``c > 1`` in front
of ``sum_t E||gbar_t||`` (about 1.2 is needed on a deterministic RMSProp run); we use ``c = 2``.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

from .partitions import check_block_index

__all__ = [
    "linf_smoothness", "coordinatewise_smoothness", "block_sizes", "phi_norm", "phi_dual_norm",
    "block_spectral_norms", "blockwise_smoothness", "blockwise_smoothness_tight_lower", "phi_smoothness",
    "signgd_bound", "signgd_tuned_lr", "signgd_tuned_bound",
    "rmsprop_F", "rmsprop_bound", "rmsprop_tuned_lr", "blockwise_adam_F", "blockwise_adam_bound",
    "BoundTerms", "lemma314_rhs", "lemma315_rhs", "lemma316_rhs", "NoisyQuadratic",
    "run_signgd", "run_blockwise_rmsprop", "run_trajectory", "equivariance_gap", "random_psd",
    "block_quadratic", "lemma_report",
    "equivariance_trajectories_2d", "equivariance_gaps", "signgd_test_problems", "signgd_bound_grid",
    "signgd_tuned_rate", "rmsprop_bound_sweep", "loglog_slope", "rmsprop_slopes", "lemma316_counterexample",
    "rmsprop_lemma_table",
    "blockwise_test_partitions", "blockwise_partition_sweep",
]


# ----------------------------------------------------------------------------------------------
# helpers
def _matrix(A) -> torch.Tensor:
    A = torch.as_tensor(A)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"expected a square matrix, got shape {tuple(A.shape)}")
    if not A.is_floating_point():
        A = A.to(torch.float64)
    return A


def _symmetric(A) -> torch.Tensor:
    A = _matrix(A)
    if not torch.allclose(A, A.T, rtol=1e-8, atol=1e-10 * float(A.abs().max().clamp_min(1e-300))):
        raise ValueError("the Hessian of a quadratic must be symmetric")
    return A


def _block_index(block_index, d: int) -> torch.LongTensor:
    return check_block_index(block_index, d)


def block_sizes(block_index) -> torch.LongTensor:
    """``d_b = |Phi^{-1}(b)|`` for a partition given as a (d,) tensor of block ids ``0..B-1``."""
    idx = torch.as_tensor(block_index, dtype=torch.long).reshape(-1)
    idx = _block_index(idx, idx.numel())
    return torch.bincount(idx)


def _check_pos(name, value, *, strict=True):
    v = float(value)
    if not math.isfinite(v) or (v <= 0 if strict else v < 0):
        raise ValueError(f"{name} must be {'positive' if strict else 'non-negative'}, got {value}")
    return v


# ----------------------------------------------------------------------------------------------
# smoothness constants of a quadratic
def linf_smoothness(A, method: str = "auto", max_brute_dim: int = 22) -> float:
    r"""Smoothness constant of ``L(x) = 1/2 x^T A x`` w.r.t. ``||.||_inf`` (Definition 3.1).

    Since ``grad L(x) - grad L(y) = A (x - y)``, the best constant in
    ``||grad L(x) - grad L(y)||_1 <= H ||x - y||_inf`` is the operator norm

    .. math:: H = \|A\|_{\infty\to1} = \max_{\|u\|_\infty\le1}\|Au\|_1
              = \max_{s\in\{\pm1\}^d}\|As\|_1 ,

    (a convex function of ``u`` is maximised at a vertex of the cube). For PSD ``A`` this equals
    ``max_s s^T A s`` (Cauchy--Schwarz in the ``A`` inner product). It is NP-hard in general.

    * ``method="brute"``: the exact value by enumerating the ``2^(d-1)`` sign vectors (``s`` and
      ``-s`` give the same value); allowed for ``d <= max_brute_dim``.
    * ``method="l11"``: the upper bound ``||A||_{1,1} = sum_ij |A_ij|`` (equal to ``sum_i H_i`` of
      Definition 3.3; tight for diagonal ``A``).
    * ``method="auto"``: exact for diagonal ``A`` or small ``d``, else the ``(1,1)`` bound.
    """
    A = _matrix(A).to(torch.float64)
    d = A.shape[0]
    if method not in ("auto", "brute", "l11"):
        raise ValueError(f"unknown method {method!r}")
    if method == "l11" or (method == "auto" and d > max_brute_dim
                           and not torch.equal(A, torch.diag(torch.diagonal(A)))):
        return float(A.abs().sum())
    if d > max_brute_dim and method == "brute":
        raise ValueError(f"brute force over 2^{d - 1} sign vectors refused (d > {max_brute_dim})")
    if torch.equal(A, torch.diag(torch.diagonal(A))):
        return float(A.abs().sum())
    if d == 1:
        return float(A.abs().sum())
    best = 0.0
    # enumerate sign vectors with s_0 = +1, in chunks to bound memory
    n = 2 ** (d - 1)
    chunk = 1 << 14
    bits = torch.arange(d - 1, dtype=torch.long)
    for start in range(0, n, chunk):
        k = torch.arange(start, min(n, start + chunk), dtype=torch.long)
        S = ((k[:, None] >> bits) & 1).to(torch.float64) * 2 - 1          # (m, d-1)
        S = torch.cat([torch.ones(len(k), 1, dtype=torch.float64), S], 1)  # (m, d)
        best = max(best, float((S @ A.T).abs().sum(1).max()))
    return best


def coordinatewise_smoothness(A) -> torch.Tensor:
    r"""Coordinate-wise ``l_inf`` smoothness constants of a quadratic (Definition 3.3).

    ``|grad_i L(x) - grad_i L(y)| = |A_{i,:}(x-y)| <= ||A_{i,:}||_1 ||x-y||_inf`` with equality for
    ``x - y = sign(A_{i,:})``, so the best constants are the row ``l_1`` norms ``H_i = ||A_{i,:}||_1``
    and ``sum_i H_i = ||A||_{1,1}``.
    """
    return _matrix(A).abs().sum(1)


def phi_norm(x, block_index) -> torch.Tensor:
    r"""``||x||_Phi = max_b ||x_(b)||_2 / sqrt(d_b)`` (Definition 3.8, RECONSTRUCTED); batched
    over leading dimensions of ``x`` (last dimension = ``d``)."""
    x = torch.as_tensor(x)
    idx = _block_index(block_index, x.shape[-1]).to(x.device)
    db = torch.bincount(idx).to(x.dtype)
    sq = torch.zeros(*x.shape[:-1], len(db), dtype=x.dtype, device=x.device)
    sq.index_add_(-1, idx, x * x)
    return (sq / db).sqrt().amax(-1)


def phi_dual_norm(x, block_index) -> torch.Tensor:
    r"""The dual norm ``||x||_{Phi,*} = sum_b sqrt(d_b) ||x_(b)||_2`` (Definition 3.8,
    RECONSTRUCTED). ``Phi(i) = i`` gives ``||x||_1``, one block gives ``sqrt(d) ||x||_2``."""
    x = torch.as_tensor(x)
    idx = _block_index(block_index, x.shape[-1]).to(x.device)
    db = torch.bincount(idx).to(x.dtype)
    sq = torch.zeros(*x.shape[:-1], len(db), dtype=x.dtype, device=x.device)
    sq.index_add_(-1, idx, x * x)
    return (db.sqrt() * sq.sqrt()).sum(-1)


def _blocks(A: torch.Tensor, idx: torch.LongTensor):
    B = int(idx.max()) + 1
    members = [torch.nonzero(idx == b).reshape(-1) for b in range(B)]
    return B, members


def block_spectral_norms(H: torch.Tensor, block_index) -> torch.Tensor:
    r"""Spectral norms of all sub-blocks of ``H`` for the partition ``block_index``.

    .. math:: N_{bc} = \|H_{(b),(c)}\|_2 ,\qquad b, c = 1..B,

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


def blockwise_smoothness(A, block_index) -> torch.Tensor:
    r"""Valid blockwise smoothness constants ``H_b`` of Definition 3.12 for a quadratic.

    Definition 3.12 (RECONSTRUCTED) asks ``sqrt(d_b) ||A_(b),: Delta||_2 <= H_b ||Delta||_Phi``.
    By the triangle inequality and ``||Delta_(c)||_2 <= sqrt(d_c) ||Delta||_Phi``,

    .. math:: H_b = \sqrt{d_b}\sum_c \sqrt{d_c}\,\|A_{(b),(c)}\|_2

    satisfies it. This is an upper bound on the smallest such constant, exact when every block is a
    single coordinate (then ``H_i = ||A_{i,:}||_1``, Definition 3.3). Its sum over ``b`` is
    ``adamlinf.hessian.blockwise_bound(A, block_index)``, the Lemma 3.13 bound on ``H(L, Phi)``.
    """
    A = _symmetric(A).to(torch.float64)
    idx = _block_index(block_index, A.shape[0]).to(A.device)
    N = block_spectral_norms(A, idx).cpu()
    db = torch.bincount(idx).to(torch.float64).cpu()
    return db.sqrt() * (N * db.sqrt()[None, :]).sum(1)


def blockwise_smoothness_tight_lower(A, block_index, *, restarts: int = 20, iters: int = 200,
                                     seed: int = 0) -> torch.Tensor:
    r"""Lower bounds on the *smallest* constants of Definition 3.12 for a quadratic.

    The smallest ``H_b`` is ``sqrt(d_b) max { ||A_(b),: Delta||_2 : ||Delta||_Phi <= 1 }``, the
    maximum of a convex function over a product of balls (attained with every
    ``||Delta_(c)||_2 = sqrt(d_c)``). We run the monotone ascent
    ``Delta_(c) <- sqrt(d_c) * normalize(A_(b),(c)^T A_(b),: Delta)`` (maximising the
    linearisation of a convex function never decreases it) from random starts; the best value is
    a certified *lower* bound (and usually the exact value). Used by the tests to check Lemma 3.13
    with the tightest constants one can find: if (2) holds with these smaller ``H_b``, it holds
    with the true ones.
    """
    A = _symmetric(A).to(torch.float64)
    idx = _block_index(block_index, A.shape[0])
    B, members = _blocks(A, idx)
    db = torch.bincount(idx).to(torch.float64)
    g = torch.Generator().manual_seed(seed)
    out = torch.empty(B, dtype=torch.float64)

    def project(delta):
        sq = torch.zeros(delta.shape[0], B, dtype=torch.float64).index_add_(1, idx, delta * delta)
        scale = (db / sq.clamp_min(1e-300)).sqrt()
        return delta * scale[:, idx]

    for b in range(B):
        Ab = A[members[b]]                                   # (d_b, d)
        delta = project(torch.randn(restarts, A.shape[0], generator=g, dtype=torch.float64))
        for _ in range(iters):
            grad = (delta @ Ab.T) @ Ab                       # (restarts, d)
            delta = project(grad + 1e-300)
        out[b] = db[b].sqrt() * (delta @ Ab.T).norm(dim=1).max()
    return out


def phi_smoothness(A, block_index, *, method: str = "exact", max_blocks: int = 12) -> float:
    r"""``H(L, Phi)`` of Definition 3.9 (RECONSTRUCTED) for the quadratic with Hessian ``A``.

    ``H(L,Phi) = min { Tr D : D = diag(r_{Phi(i)}), -D <= A <= D }``. For fixed positive ``r`` the
    smallest feasible multiple of ``D`` is ``||D^{-1/2} A D^{-1/2}||_2 D`` and the objective is
    invariant to scaling ``r``, so

    .. math:: H(L,\Phi) = \min_{r>0}\ \Big(\sum_b d_b r_b\Big)\,\big\|D_r^{-1/2}AD_r^{-1/2}\big\|_2 .

    * ``method="exact"``: minimise this over ``log r`` (``B - 1`` free variables) with
      Nelder--Mead from the Lemma 3.13 point and the identity, refined by Powell; allowed for
      ``B <= max_blocks``. (The problem is a small convex program; ``tests/test_theory.py``
      checks the result against a brute-force grid over ``r`` for ``B = 3``, and that it lies
      between ``sup_{||u||_Phi<=1}|u^T A u|`` and the Lemma 3.13 bound.)
    * ``method="bound"``: the Lemma 3.13 bound ``sum_b H_b`` with ``H_b`` from
      :func:`blockwise_smoothness` (``= adamlinf.hessian.blockwise_bound``).

    Special cases: one block gives ``d ||A||_2`` exactly; ``Phi(i) = i`` gives a value
    ``<= ||A||_{1,1}``.
    """
    from scipy.optimize import minimize

    A = _symmetric(A).to(torch.float64).cpu()
    idx = _block_index(block_index, A.shape[0]).cpu()
    if method == "bound":
        from .hessian import blockwise_bound
        return float(blockwise_bound(A, idx))
    if method != "exact":
        raise ValueError(f"unknown method {method!r}")
    db = torch.bincount(idx).to(torch.float64).numpy()
    B = len(db)
    An = A.numpy()
    if B == 1:
        return float(len(idx) * np.linalg.norm(An, 2))
    if B > max_blocks:
        raise ValueError(f"exact H(L, Phi) refused for B = {B} > max_blocks = {max_blocks}; "
                         "use method='bound'")
    ix = idx.numpy()

    def objective(z):
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
        res = minimize(objective, z0, method="Nelder-Mead",
                       options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 4000 * B})
        res = minimize(objective, res.x, method="Powell", options={"xtol": 1e-10, "ftol": 1e-13})
        best = min(best, float(res.fun))
    return best


# ----------------------------------------------------------------------------------------------
# Theorem 3.2 (SignGD)
def signgd_bound(delta, T, eta, H):
    r"""Theorem 3.2 (RECONSTRUCTED): for SignGD with step ``eta`` on an ``H``-smooth loss w.r.t.
    ``||.||_inf``, ``min_{0<=t<T} ||grad L(x_t)||_1 <= delta / (T eta) + H eta / 2`` with
    ``delta = L(x_0) - min L``. Works elementwise on numpy arrays.

    Proof: sum the one-step inequality (9),
    ``L(x_{t+1}) <= L(x_t) - eta ||grad L(x_t)||_1 + H eta^2 / 2``, over ``t < T``.
    """
    T = np.asarray(T, dtype=float)
    eta = np.asarray(eta, dtype=float)
    if np.any(T < 1) or np.any(eta <= 0) or float(H) < 0 or float(delta) < 0:
        raise ValueError("need T >= 1, eta > 0, H >= 0, delta >= 0")
    out = delta / (T * eta) + H * eta / 2
    return float(out) if out.ndim == 0 else out


def signgd_tuned_lr(delta, T, H):
    """The step minimising :func:`signgd_bound`: ``eta* = sqrt(2 delta / (T H))`` (Theorem 3.2)."""
    _check_pos("H", H)
    return np.sqrt(2 * delta / (np.asarray(T, dtype=float) * H))


def signgd_tuned_bound(delta, T, H):
    """Theorem 3.2 at the tuned step: ``sqrt(2 H delta / T)`` (RECONSTRUCTED)."""
    return np.sqrt(2 * H * delta / np.asarray(T, dtype=float))


# ----------------------------------------------------------------------------------------------
# Theorem 3.5 (RMSProp = Adam with beta1 = 0) and Theorem 3.11 (blockwise)
@dataclass
class BoundTerms:
    """The pieces of the Theorem 3.5 / 3.11 bound ``E + sqrt(E) sqrt(S)``."""
    E: float        # the first-order term E
    F: float        # the log term F (Lemma C.1)
    S: float        # the quantity under the second square root
    total: float    # E + sqrt(E * S)


def rmsprop_F(*, sigma, grad0_inf, H, eta, T, beta2, v0, eps=0.0) -> float:
    r"""``F`` of Theorem 3.5 / Lemma C.1 (RECONSTRUCTED; the constants ``2`` and ``ln 32`` are
    uncertain):

    .. math:: F = 2\ln\Big(1 + \frac{\sum_i\sigma_i^2 + \|\nabla L(x_0)\|_\infty^2
              + \max_i H_i^2\eta^2 T(T + \frac1{1-\beta_2})}{v_0+\epsilon}\Big) + \ln 32 .
    """
    sigma = np.asarray(sigma, dtype=float)
    H = np.asarray(H, dtype=float)
    _check_pos("v0 + eps", v0 + eps)
    if not 0 <= beta2 < 1:
        raise ValueError(f"beta2 must be in [0, 1), got {beta2}")
    num = (sigma ** 2).sum() + grad0_inf ** 2 + H.max() ** 2 * eta ** 2 * T * (T + 1 / (1 - beta2))
    return float(2 * math.log1p(num / (v0 + eps)) + math.log(32))


def rmsprop_bound(*, delta, T, eta, beta2, H, sigma, v0, grad0_inf, eps=0.0,
                  noise_factor: float = 1.0) -> BoundTerms:
    r"""Right-hand side of Theorem 3.5 (RECONSTRUCTED) for RMSProp (Algorithm 1, ``beta1 = 0``,
    ``eps`` inside the root, constant ``eta``):

    .. math::
        \min_{T/2<t\le T}\mathbb E\|\nabla L(x_t)\|_1 \le E + \sqrt E\,
        \sqrt{\frac{\beta_2^{T/4}}{T(1-\beta_2)}d\sqrt{v_0} + \sum_i\sigma_i + d\sqrt\epsilon},

    .. math::
        E = \frac{2\Delta}{\eta T} + \Big(1 + \frac{\beta_2 F}{T(1-\beta_2)}\Big)
            \Big(\eta\sum_i H_i + c\sqrt{1-\beta_2}\sum_i\sigma_i\Big),

    with ``Delta >= E[L(x_0) - L(x_T)]`` (pass ``L(x_0) - min L``), ``H`` the (d,) coordinate-wise
    constants (Definition 3.3), ``sigma`` the (d,) noise levels (Assumption 3.4), ``F`` from
    :func:`rmsprop_F`, and ``c = noise_factor`` (1 in the reconstruction; a third-party note has 2).
    """
    H = np.asarray(H, dtype=float).reshape(-1)
    sigma = np.broadcast_to(np.asarray(sigma, dtype=float), H.shape)
    d = H.size
    _check_pos("T", T)
    _check_pos("eta", eta)
    if not 0 < beta2 < 1:
        raise ValueError(f"beta2 must be in (0, 1), got {beta2}")
    F = rmsprop_F(sigma=sigma, grad0_inf=grad0_inf, H=H, eta=eta, T=T, beta2=beta2, v0=v0, eps=eps)
    E = (2 * delta / (eta * T)
         + (1 + beta2 * F / (T * (1 - beta2)))
         * (eta * H.sum() + noise_factor * math.sqrt(1 - beta2) * sigma.sum()))
    S = beta2 ** (T / 4) / (T * (1 - beta2)) * d * math.sqrt(v0) + sigma.sum() + d * math.sqrt(eps)
    return BoundTerms(E=float(E), F=F, S=float(S), total=float(E + math.sqrt(E * S)))


def rmsprop_tuned_lr(delta, T, H_sum) -> float:
    """The step of Corollaries 3.6/3.7 with constant 1: ``eta = sqrt(delta / (T sum_i H_i))``."""
    return math.sqrt(delta / (T * H_sum))


def blockwise_adam_F(*, sigma_b, d_b, grad0_phi, H_b, eta, T, beta2, v0, eps=0.0) -> float:
    r"""Blockwise analogue of :func:`rmsprop_F` for Theorem 3.11 (RECONSTRUCTED): ``sigma_i^2`` is
    replaced by ``sum_b d_b sigma_b^2``, ``||grad L(x_0)||_inf`` by ``||grad L(x_0)||_Phi`` and
    ``max_i H_i`` by ``max_b H_b / d_b`` (the scale of a block's mean squared gradient change).
    Uses ``min_b v_{0,b}``."""
    sigma_b = np.asarray(sigma_b, dtype=float)
    d_b = np.asarray(d_b, dtype=float)
    H_b = np.asarray(H_b, dtype=float)
    v0min = float(np.min(v0))
    _check_pos("v0 + eps", v0min + eps)
    num = ((d_b * sigma_b ** 2).sum() + grad0_phi ** 2
           + (H_b / d_b).max() ** 2 * eta ** 2 * T * (T + 1 / (1 - beta2)))
    return float(2 * math.log1p(num / (v0min + eps)) + math.log(32))


def blockwise_adam_bound(*, delta, T, eta, beta2, H_phi, H_b, sigma_b, d_b, v0, grad0_phi,
                         eps=0.0, noise_factor: float = 1.0) -> BoundTerms:
    r"""Right-hand side of Theorem 3.11 (RECONSTRUCTED) for blockwise Adam with ``beta1 = 0``:

    .. math::
        \min_{T/2<t\le T}\mathbb E\|\nabla L(x_t)\|_{\Phi,*} \le E + \sqrt E\,
        \sqrt{\frac{\beta_2^{T/4}}{T(1-\beta_2)}\sum_b d_b\sqrt{v_{0,b}} + \sum_b d_b\sigma_b
        + d\sqrt\epsilon},

    .. math::
        E = \frac{2\Delta}{\eta T} + \Big(1 + \frac{\beta_2 F}{T(1-\beta_2)}\Big)
            \Big(\eta H(L,\Phi) + c\sqrt{1-\beta_2}\sum_b d_b\sigma_b\Big).

    ``H_phi``: ``H(L, Phi)`` (Definition 3.9) or any upper bound (Lemma 3.13); ``H_b``, ``d_b``,
    ``sigma_b`` per block (Definition 3.12, Assumption 3.10); ``v0`` a scalar or per block.
    """
    d_b = np.asarray(d_b, dtype=float).reshape(-1)
    sigma_b = np.broadcast_to(np.asarray(sigma_b, dtype=float), d_b.shape)
    v0 = np.broadcast_to(np.asarray(v0, dtype=float), d_b.shape)
    _check_pos("T", T)
    _check_pos("eta", eta)
    if not 0 < beta2 < 1:
        raise ValueError(f"beta2 must be in (0, 1), got {beta2}")
    F = blockwise_adam_F(sigma_b=sigma_b, d_b=d_b, grad0_phi=grad0_phi, H_b=H_b, eta=eta, T=T,
                         beta2=beta2, v0=v0, eps=eps)
    noise = (d_b * sigma_b).sum()
    E = (2 * delta / (eta * T)
         + (1 + beta2 * F / (T * (1 - beta2))) * (eta * H_phi + noise_factor * math.sqrt(1 - beta2) * noise))
    S = (beta2 ** (T / 4) / (T * (1 - beta2)) * (d_b * np.sqrt(v0)).sum() + noise
         + d_b.sum() * math.sqrt(eps))
    return BoundTerms(E=float(E), F=F, S=float(S), total=float(E + math.sqrt(E * S)))


# ----------------------------------------------------------------------------------------------
# the lemmas' right-hand sides
def lemma314_rhs(v, beta2, v0):
    r"""Right side of Lemma 3.14 (RECONSTRUCTED) for a sequence ``v = (v_1..v_T)`` (last dim):

    * ``v0 > 0``: ``T + beta2/(1-beta2) ln(v_T / v_0)``;
    * ``v0 = 0``: ``T + beta2/(1-beta2) (1 + ln(v_T / v_1))`` (the first term ``g_1^2/v_1`` is at
      most ``1/(1-beta2)``).

    bounding ``sum_t g_t^2 / v_t`` whenever ``v_t - beta2 v_{t-1} >= (1-beta2) g_t^2``."""
    v = torch.as_tensor(v)
    T = v.shape[-1]
    c = beta2 / (1 - beta2)
    v0 = torch.as_tensor(v0, dtype=v.dtype)
    if torch.all(v0 > 0):
        return T + c * torch.log(v[..., -1] / v0)
    if torch.all(v0 == 0):
        return T + c * (1 + torch.log(v[..., -1] / v[..., 0]))
    raise ValueError("v0 must be all positive or all zero")


def lemma315_rhs(*, gbar_sq_over_sqrt_vtilde_sum, d_b, sigma_b, T, beta2, log_ratio):
    r"""Right side of Lemma 3.15 (RECONSTRUCTED; constants unverified), per block ``b``:

    ``1/2 E sum_t ||gbar_(b)||^2 / sqrt(vtilde_b + eps) - sqrt(1-beta2) d_b sigma_b
    (T + beta2/(1-beta2) E ln((v_{T,b}+eps)/(v_{0,b}+eps)))``.
    Inputs are the expectations (or per-seed values to be averaged by the caller)."""
    return (0.5 * gbar_sq_over_sqrt_vtilde_sum
            - math.sqrt(1 - beta2) * d_b * sigma_b * (T + beta2 / (1 - beta2) * log_ratio))


def lemma316_rhs(*, T, beta2, v0, sigma_b, eps, gbar_abs_sum, c=1.0):
    r"""Right side of Lemma 3.16 (RECONSTRUCTED; the constant ``c`` was not recovered):
    ``2 beta2^{T/4} sqrt(v0) / (1-beta2) + T sigma_b + T sqrt(eps) + c sum_t E ||gbar_(b)||_2/sqrt(d_b)``.
    """
    return (2 * beta2 ** (T / 4) * math.sqrt(v0) / (1 - beta2) + T * sigma_b + T * math.sqrt(eps)
            + c * gbar_abs_sum)


# ----------------------------------------------------------------------------------------------
# a noisy quadratic (Assumptions 3.4 / 3.10)
class NoisyQuadratic:
    r"""``L(x) = 1/2 (x - x*)^T A (x - x*)`` with the stochastic gradient oracle
    ``g = A (x - x*) + sigma * xi``, ``xi ~ N(0, I)`` independent per call.

    It satisfies Assumption 3.4 with exactly the given ``sigma_i`` (unbiased, variance
    ``sigma_i^2``) and Assumption 3.10 with ``sigma_b^2 = mean_{i in b} sigma_i^2``. All methods
    accept batched points ``x`` of shape ``(..., d)`` (independent copies, e.g. one row per seed).
    Written here because ``adamlinf.problems`` (the Section 4.1 quadratic) has only isotropic
    noise (one ``sigma`` for every coordinate); Theorem 3.5 needs coordinate-wise ``sigma_i``.
    """

    def __init__(self, A, sigma=0.0, x_star=None, *, dtype=torch.float64, device="cpu"):
        A = _symmetric(A).to(dtype=dtype, device=device)
        d = A.shape[0]
        self.A = A
        self.d = d
        self.sigma = torch.broadcast_to(torch.as_tensor(sigma, dtype=dtype, device=device), (d,)).clone()
        if torch.any(self.sigma < 0):
            raise ValueError("sigma must be non-negative")
        self.x_star = (torch.zeros(d, dtype=dtype, device=device) if x_star is None
                       else torch.as_tensor(x_star, dtype=dtype, device=device).reshape(d))

    @property
    def min_value(self) -> float:
        """``min L`` (0 if ``A`` is PSD; ``-inf`` otherwise)."""
        return 0.0 if float(torch.linalg.eigvalsh(self.A).min()) >= -1e-12 else -math.inf

    def loss(self, x):
        z = x - self.x_star
        return 0.5 * ((z @ self.A) * z).sum(-1)

    def grad(self, x):
        return (x - self.x_star) @ self.A

    def stochastic_grad(self, x, generator=None):
        g = self.grad(x)
        if torch.any(self.sigma > 0):
            g = g + self.sigma * torch.randn(g.shape, generator=generator, dtype=g.dtype,
                                             device=g.device)
        return g

    def sigma_blocks(self, block_index) -> torch.Tensor:
        """``sigma_b = sqrt(mean_{i in b} sigma_i^2)`` (Assumption 3.10)."""
        idx = _block_index(block_index, self.d).to(self.sigma.device)
        db = torch.bincount(idx).to(self.sigma.dtype)
        s2 = torch.zeros(len(db), dtype=self.sigma.dtype, device=self.sigma.device)
        s2.index_add_(0, idx, self.sigma ** 2)
        return (s2 / db).sqrt()


# ----------------------------------------------------------------------------------------------
# test problems (our choices: the paper's theory has no numerical instance)
def random_psd(d: int, *, seed: int = 0, eigenvalues=None, dtype=torch.float64, device="cpu") -> torch.Tensor:
    r"""A dense PSD matrix ``Q diag(lambda) Q^T`` with ``Q`` Haar (``adamlinf.rotations.haar``).
    ``eigenvalues`` defaults to ``lambda_i = i^{-1/2}`` (``adamlinf.problems.power_law_spectrum``)."""
    from .problems import power_law_spectrum
    from .rotations import haar

    lam = (power_law_spectrum(d, 0.5) if eigenvalues is None
           else torch.as_tensor(eigenvalues, dtype=torch.float64).reshape(-1))
    if lam.numel() != d:
        raise ValueError(f"need {d} eigenvalues, got {lam.numel()}")
    Q = haar(d, seed=seed, dtype=torch.float64)
    A = (Q * lam) @ Q.T
    return ((A + A.T) / 2).to(dtype=dtype, device=device)


def block_quadratic(block_sizes, scales, *, eig_range=(0.5, 1.0), seed: int = 0,
                    dtype=torch.float64, device="cpu") -> tuple[torch.Tensor, torch.LongTensor]:
    r"""A block-diagonal PSD Hessian for Theorem 3.11: block ``k`` is
    ``scales[k] * Q_k diag(lambda) Q_k^T`` with ``Q_k`` Haar and ``lambda`` evenly spaced in
    ``eig_range``. Dense (rotated) blocks make the coordinate partition pay the off-diagonal
    ``(1,1)``-mass, and different ``scales`` make partitions that merge blocks pay ``d_b`` times the
    largest scale. Returns ``(A, block_index)``, the partition that matches the structure."""
    from .rotations import haar

    sizes = [int(k) for k in block_sizes]
    if len(sizes) != len(scales) or min(sizes) < 1:
        raise ValueError("need one positive size per scale")
    d = sum(sizes)
    A = torch.zeros(d, d, dtype=torch.float64)
    start = 0
    for k, (n, s) in enumerate(zip(sizes, scales)):
        lam = torch.linspace(eig_range[0], eig_range[1], n, dtype=torch.float64)
        Q = haar(n, seed=seed * 1000 + k, dtype=torch.float64)
        A[start:start + n, start:start + n] = float(s) * (Q * lam) @ Q.T
        start += n
    A = (A + A.T) / 2
    idx = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    return A.to(dtype=dtype, device=device), idx


# ----------------------------------------------------------------------------------------------
# batched runners used by the theory notebooks and tests (the updates are adamlinf.optim's)
def _one_thread(fn):
    """Run a small-tensor loop on one intra-op CPU thread (restored afterwards). The theory problems
    have at most a few thousand entries per tensor, where OpenMP hand-offs cost far more than they
    save: on a loaded 2-core machine a 12 000-entry ``sqrt`` took 19 ms with 2 threads and 6 us with
    1. (Only CPU kernels are affected; CUDA runs are unchanged.)"""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        saved = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(saved)

    return wrapper


def _lr_column(lr, n_seeds, dtype, device):
    lrs = torch.as_tensor(lr, dtype=dtype, device=device).reshape(-1)
    if torch.any(lrs <= 0):
        raise ValueError("learning rates must be positive")
    return lrs, lrs.repeat_interleave(n_seeds)[:, None]


@_one_thread
def run_signgd(problem: NoisyQuadratic, x0, *, T: int, lr) -> dict:
    r"""Deterministic SignGD (``adamlinf.optim.signgd_update_``) on ``problem`` for a vector of
    step sizes at once. ``x0``: one start ``(d,)`` or several ``(n_starts, d)``. Returns
    ``grad_l1`` and ``loss`` of shape ``(T + 1, n_lr)`` (or ``(T + 1, n_lr, n_starts)``) for
    ``t = 0..T``. Theorem 3.2 bounds ``grad_l1[:T].min(0)``."""
    from .optim import signgd_update_

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
            signgd_update_(x, g, lr=lr_col)
    if single:
        gl1, loss = gl1[..., 0], loss[..., 0]
    return {"grad_l1": gl1, "loss": loss, "lr": lrs.cpu()}


@_one_thread
def run_blockwise_rmsprop(problem: NoisyQuadratic, x0, *, T: int, lr, beta2: float, v0: float,
                          eps: float = 0.0, block_index=None, n_seeds: int = 1, seed: int = 0,
                          lemmas: bool = False) -> dict:
    r"""Blockwise Adam with ``beta1 = 0`` (Algorithm 3; ``block_index=None`` means coordinates, i.e.
    RMSProp = Algorithm 1 with ``beta1 = 0``) on ``problem`` with its stochastic oracle, for
    ``n_seeds`` independent noise streams and a vector of step sizes, all batched
    (``adamlinf.optim.blockwise_adam_update_`` along the last dimension; no bias correction,
    ``eps`` inside the root, ``v_{0,b} = v0``).

    Returns tensors of shape ``(T + 1, n_lr, n_seeds)`` for ``t = 0..T``: ``grad_l1``
    (``||grad L(x_t)||_1``), ``grad_dual`` (``||grad L(x_t)||_{Phi,*}``), ``loss``.
    With ``lemmas=True`` also the per-block sums (shape ``(n_lr, n_seeds, B)``) that enter
    Lemmas 3.14-3.16 and C.1, with ``gbar_t = grad L(x_{t-1})``, ``g_t`` the stochastic gradient and
    ``vtilde_{t,b} = beta2 v_{t-1,b} + (1-beta2)(||gbar_{t,(b)}||^2/d_b + sigma_b^2)``:
    ``first_order = sum_t gbar_(b)^T g_(b) / sqrt(v_{t,b}+eps)``,
    ``gbar_sq_over_sqrt_vtilde = sum_t ||gbar_(b)||^2 / sqrt(vtilde_{t,b}+eps)``,
    ``log_ratio = ln((v_{T,b}+eps)/(v_{0,b}+eps))``,
    ``g2_over_v = sum_t (||g_(b)||^2/d_b) / (v_{t,b}+eps)``,
    ``sqrt_vtilde_window = sum_{T/2<t<=T} sqrt(vtilde_{t,b}+eps)``,
    ``gbar_norm_sum = sum_{t<=T} ||gbar_(b)||/sqrt(d_b)``.
    """
    from .optim import blockwise_adam_update_

    if T < 1 or n_seeds < 1:
        raise ValueError("T and n_seeds must be >= 1")
    if not 0 <= beta2 < 1:
        raise ValueError(f"beta2 must be in [0, 1), got {beta2}")
    A = problem.A
    d = problem.d
    idx = (torch.arange(d) if block_index is None else _block_index(block_index, d)).to(A.device)
    db = torch.bincount(idx).to(A.dtype)
    B = len(db)
    lrs, lr_col = _lr_column(lr, n_seeds, A.dtype, A.device)
    n = len(lrs) * n_seeds
    gen = torch.Generator(device=A.device).manual_seed(seed)
    x = torch.as_tensor(x0, dtype=A.dtype, device=A.device).reshape(1, d).repeat(n, 1)
    m = torch.zeros_like(x)
    v = torch.full((n, B), float(v0), dtype=A.dtype, device=A.device)
    sig_b2 = problem.sigma_blocks(idx) ** 2
    shape = (T + 1, len(lrs), n_seeds)
    out = {k: torch.empty(shape, dtype=A.dtype) for k in ("grad_l1", "grad_dual", "loss")}
    acc = {k: torch.zeros(n, B, dtype=A.dtype, device=A.device)
           for k in ("first_order", "gbar_sq_over_sqrt_vtilde", "g2_over_v", "sqrt_vtilde_window",
                     "gbar_norm_sum")} if lemmas else None

    def blocksum(z):
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
        blockwise_adam_update_(x, g, m, v, idx, lr=lr_col, beta1=0.0, beta2=beta2, eps=eps,
                               step=t + 1, sizes=db)
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
    r"""Iterates ``x_0..x_T`` (shape ``(T + 1, d)``) of ``adamlinf.optim.create(name, ...)`` on the
    deterministic quadratic ``L(x) = 1/2 x^T A x`` (full gradients). ``kwargs`` go to ``create``
    (e.g. ``betas``, ``eps``, ``momentum``, ``torch_form``)."""
    from .optim import create

    A = _symmetric(A)
    x = torch.nn.Parameter(torch.as_tensor(x0, dtype=A.dtype, device=A.device).reshape(-1).clone())
    opt = create(name, [x], lr=lr, **kwargs)
    xs = [x.detach().clone()]
    for _ in range(T):
        opt.zero_grad(set_to_none=True)
        x.grad = A @ x.detach()
        opt.step()
        xs.append(x.detach().clone())
    return torch.stack(xs)


def equivariance_gap(name: str, A, x0, R, *, T: int, lr: float, **kwargs) -> float:
    r"""Definition 2.1 measured: run ``name`` on ``L(x) = 1/2 x^T A x`` from ``x_0`` and on
    ``L o R`` (Hessian ``R^T A R``) from ``R^T x_0``; return ``max_t ||x~_t - R^T x_t||_2`` divided
    by ``max_t ||x_t||_2`` (0 up to rounding iff the run is equivariant on this instance).
    ``R``: an orthogonal ``(d, d)`` matrix (a permutation matrix for permutations)."""
    A = _symmetric(A)
    R = torch.as_tensor(R, dtype=A.dtype, device=A.device)
    x0 = torch.as_tensor(x0, dtype=A.dtype, device=A.device)
    xs = run_trajectory(name, A, x0, T=T, lr=lr, **kwargs)
    xr = run_trajectory(name, R.T @ A @ R, R.T @ x0, T=T, lr=lr, **kwargs)
    return float((xr - xs @ R).norm(dim=1).max() / xs.norm(dim=1).max())


def lemma_report(problem: NoisyQuadratic, out: dict, *, x0, T: int, eta: float, beta2: float,
                 v0: float, block_index=None, c316: float = 2.0) -> list[dict]:
    r"""Both sides of Lemmas 3.14, 3.15, 3.16 and C.1 on a run of :func:`run_blockwise_rmsprop`
    with ``lemmas=True`` (first step size only), averaged over seeds, worst block reported.

    Each row: ``lemma``, ``relation`` (``<=``, or ``>=`` for Lemma 3.15), ``lhs``, ``rhs`` (for the
    block closest to violation), ``margin`` (the slack, positive when the inequality holds), its size
    in standard errors over seeds ``margin_se``, and ``holds`` (not violated by more than 4 standard
    errors). Lemma 3.14 is pathwise (worst seed and block); Lemma 3.16 is reported with
    ``c = 1`` and ``c = c316``. All forms are RECONSTRUCTED (see the functions above)."""
    d = problem.d
    idx = torch.arange(d) if block_index is None else _block_index(block_index, d)
    db = torch.bincount(idx).to(torch.float64)
    sb = problem.sigma_blocks(idx).cpu()
    o = {k: v[0] for k, v in out.items() if k in ("first_order", "gbar_sq_over_sqrt_vtilde", "g2_over_v",
                                                  "sqrt_vtilde_window", "gbar_norm_sum", "log_ratio")}
    S = o["log_ratio"].shape[0]
    rows = []

    def add(name, lhs, rhs, geq=False):       # lhs, rhs: (S, B) per-seed values
        diff = (rhs - lhs) if geq else (lhs - rhs)
        mean = diff.mean(0)
        se = diff.std(0) / math.sqrt(S) if S > 1 else torch.zeros_like(mean)
        b = int(mean.argmax())
        rows.append(dict(lemma=name, relation=">=" if geq else "<=", lhs=float(lhs.mean(0)[b]),
                         rhs=float(rhs.mean(0)[b]),
                         margin=float(-mean[b]),
                         margin_se=float(-mean[b] / se[b]) if float(se[b]) > 0 else float("inf"),
                         holds=bool(float(mean[b]) <= 4 * float(se[b]))))

    rhs314 = T + beta2 / (1 - beta2) * o["log_ratio"]
    worst = (o["g2_over_v"] - rhs314).flatten().argmax()
    rows.append(dict(lemma="3.14 (pathwise, worst seed/block)", relation="<=", lhs=float(o["g2_over_v"].flatten()[worst]),
                     rhs=float(rhs314.flatten()[worst]),
                     margin=float((rhs314 - o["g2_over_v"]).min()), margin_se=float("nan"),
                     holds=bool(torch.all(o["g2_over_v"] <= rhs314 * (1 + 1e-9)))))
    rhs315 = lemma315_rhs(gbar_sq_over_sqrt_vtilde_sum=o["gbar_sq_over_sqrt_vtilde"], d_b=db, sigma_b=sb,
                          T=T, beta2=beta2, log_ratio=o["log_ratio"])
    add("3.15", o["first_order"], rhs315, geq=True)
    for c in (1.0, c316):
        add(f"3.16 with c = {c:g}", o["sqrt_vtilde_window"],
            lemma316_rhs(T=T, beta2=beta2, v0=v0, sigma_b=sb, eps=0.0, gbar_abs_sum=o["gbar_norm_sum"], c=c)
            * torch.ones_like(o["sqrt_vtilde_window"]))
    # the smallest constant c in Lemma 3.16 that this run needs (worst block, means over seeds)
    other = (2 * beta2 ** (T / 4) * math.sqrt(v0) / (1 - beta2) + T * sb).to(o["sqrt_vtilde_window"].dtype)
    c_needed = ((o["sqrt_vtilde_window"].mean(0) - other) / o["gbar_norm_sum"].mean(0)).max()
    rows.append(dict(lemma="3.16: smallest c needed", relation="", lhs=float(c_needed), rhs=float("nan"),
                     margin=float("nan"), margin_se=float("nan"), holds=True))
    g0 = problem.grad(torch.as_tensor(x0, dtype=problem.A.dtype, device=problem.A.device)).cpu()
    if block_index is None:
        F = rmsprop_F(sigma=problem.sigma.cpu(), grad0_inf=float(g0.abs().max()),
                      H=coordinatewise_smoothness(problem.A).cpu(), eta=eta, T=T, beta2=beta2, v0=v0)
    else:
        F = blockwise_adam_F(sigma_b=sb, d_b=db, grad0_phi=float(phi_norm(g0, idx)),
                             H_b=blockwise_smoothness(problem.A.cpu(), idx), eta=eta, T=T, beta2=beta2, v0=v0)
    add("C.1", o["log_ratio"], torch.full_like(o["log_ratio"], F))
    return rows


# ----------------------------------------------------------------------------------------------
# the theory notebooks' experiments (loops over optimizers, problems and sweeps live here so the
# notebooks only call, save, plot and compare)
def _pandas():
    import pandas as pd
    return pd


def _optimizer_kwargs(cfg: dict) -> tuple[str, float, dict]:
    if "name" not in cfg or "lr" not in cfg:
        raise ValueError(f"an optimizer configuration needs 'name' and 'lr', got {sorted(cfg)}")
    return cfg["name"], float(cfg["lr"]), {k: v for k, v in cfg.items() if k not in ("name", "lr")}


def equivariance_trajectories_2d(optimizers: dict, *, angle_deg: float, T: int, x0=(2.0, 1.5),
                                 eigenvalues=(1.0, 4.0)):
    r"""Figure 2 data (Theorem 2.2): each optimizer on ``L(x) = 1/2 x^T A x``, ``A = diag(eigenvalues)``,
    from ``x0``, and on ``L o R`` (``R`` the planar rotation by ``angle_deg``) from ``R^T x0``, with the
    same hyperparameters.

    ``optimizers`` maps a label to ``dict(name=..., lr=..., **kwargs)`` for :func:`run_trajectory`.
    Returns a tidy ``DataFrame`` with columns ``optimizer, run ("on L" | "on L o R"), t`` and the
    iterate in both frames: ``x1, x2`` (coordinates of ``L``; the rotated run mapped back by ``R``)
    and ``y1, y2`` (coordinates of ``L o R``). An equivariant optimizer gives the same points for
    both runs in either frame.
    """
    pd = _pandas()
    if T < 1:
        raise ValueError("T must be >= 1")
    A = torch.diag(torch.as_tensor(eigenvalues, dtype=torch.float64))
    if A.shape != (2, 2):
        raise ValueError("the Figure 2 example is two-dimensional: give two eigenvalues")
    a = math.radians(angle_deg)
    R = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], dtype=torch.float64)
    x0 = torch.as_tensor(x0, dtype=torch.float64)
    frames = []
    for label, cfg in optimizers.items():
        name, lr, kw = _optimizer_kwargs(cfg)
        xs = run_trajectory(name, A, x0, T=T, lr=lr, **kw)
        xr = run_trajectory(name, R.T @ A @ R, R.T @ x0, T=T, lr=lr, **kw)
        for run, orig, rot in (("on L", xs, xs @ R), ("on L o R", xr @ R.T, xr)):
            frames.append(pd.DataFrame({"optimizer": label, "run": run, "t": np.arange(T + 1),
                                        "x1": orig[:, 0].numpy(), "x2": orig[:, 1].numpy(),
                                        "y1": rot[:, 0].numpy(), "y2": rot[:, 1].numpy()}))
    return pd.concat(frames, ignore_index=True)


def equivariance_gaps(optimizers: dict, *, d: int, T: int, n_transforms: int, seed: int = 0,
                      exponent: float = 0.5):
    r"""Definition 2.1 measured in ``d`` dimensions (Theorem 2.2): for ``n_transforms`` Haar rotations
    and as many random permutation matrices, :func:`equivariance_gap` of every optimizer on
    ``L(x) = 1/2 x^T A x`` with ``A = diag(i^{-exponent})`` (``problems.power_law_spectrum``) and a
    Gaussian ``x_0`` (float64, full gradients, ``T`` steps).

    ``optimizers`` as in :func:`equivariance_trajectories_2d`. Draw ``k`` uses seed ``seed + 1 + k``.
    Returns a tidy ``DataFrame``: ``optimizer, transformation ("rotation" | "permutation"), draw, gap``.
    """
    from .problems import power_law_spectrum
    from .rotations import haar, random_permutation, to_dense

    pd = _pandas()
    if d < 2 or T < 1 or n_transforms < 1:
        raise ValueError("need d >= 2, T >= 1 and n_transforms >= 1")
    A = torch.diag(power_law_spectrum(d, exponent))
    x0 = torch.randn(d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    rows = []
    for k in range(n_transforms):
        transforms = {"rotation": haar(d, seed=seed + 1 + k, dtype=torch.float64),
                      "permutation": to_dense(random_permutation(d, seed=seed + 1 + k, dtype=torch.float64))}
        for kind, R in transforms.items():
            for label, cfg in optimizers.items():
                name, lr, kw = _optimizer_kwargs(cfg)
                rows.append(dict(optimizer=label, transformation=kind, draw=k,
                                 gap=equivariance_gap(name, A, x0, R, T=T, lr=lr, **kw)))
    return pd.DataFrame(rows)


def signgd_test_problems(d: int, *, n_starts: int, delta: float, seed: int = 0, device="cpu") -> dict:
    r"""The two quadratics of the Theorem 3.2 notebook, ``min L = 0``, with their **exact**
    ``l_inf``-smoothness constant (:func:`linf_smoothness` by brute force, so ``d <= 22``):

    * ``"dense"``: ``A = Q diag(i^{-1/2}) Q^T`` with Haar ``Q`` (:func:`random_psd`);
    * ``"diagonal"``: ``A = diag(i^{-1/2})`` (then ``H = tr A``).

    Starts: ``n_starts`` Gaussian directions scaled so that ``L(x_0) = delta``.
    Returns ``{kind: (NoisyQuadratic, H, X0 of shape (n_starts, d))}``.
    """
    _check_pos("delta", delta)
    if n_starts < 1:
        raise ValueError("n_starts must be >= 1")
    problems = {}
    for kind in ("dense", "diagonal"):
        if kind == "dense":
            A = random_psd(d, seed=seed, device=device)
        else:
            A = torch.diag(torch.arange(1, d + 1, dtype=torch.float64) ** -0.5).to(device)
        prob = NoisyQuadratic(A, device=device)
        H = linf_smoothness(A.cpu(), method="brute")
        X0 = torch.randn(n_starts, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(device)
        X0 = X0 * (delta / prob.loss(X0)).sqrt()[:, None]
        problems[kind] = (prob, H, X0)
    return problems


def signgd_bound_grid(problems: dict, *, T_list, etas, delta: float):
    r"""Theorem 3.2 over a grid: one SignGD run of length ``max(T_list)`` per step size
    (:func:`run_signgd`, all step sizes and starts batched) gives ``min_{t<T} ||grad L(x_t)||_1``
    for every ``T`` (a prefix minimum). ``problems`` as returned by :func:`signgd_test_problems`.

    Returns a tidy ``DataFrame``: ``problem, T, eta, measured_mean, measured_max`` (mean and worst
    over the starts), ``bound`` (:func:`signgd_bound`), ``H`` and ``ratio_max = measured_max / bound``.
    """
    pd = _pandas()
    etas = np.asarray(etas, dtype=float)
    Tmax = int(max(T_list))
    rows = []
    for kind, (prob, H, X0) in problems.items():
        out = run_signgd(prob, X0, T=Tmax, lr=etas)
        for T in T_list:
            best = out["grad_l1"][:T].min(0).values          # (n_eta, n_starts)
            bound = signgd_bound(delta, T, etas, H)
            for j, eta in enumerate(etas):
                rows.append(dict(problem=kind, T=int(T), eta=float(eta), measured_mean=float(best[j].mean()),
                                 measured_max=float(best[j].max()), bound=float(bound[j]), H=H))
    grid = pd.DataFrame(rows)
    grid["ratio_max"] = grid.measured_max / grid.bound
    return grid


def signgd_tuned_rate(problems: dict, *, T_list, delta: float):
    r"""Theorem 3.2 at the tuned step ``eta*(T) = sqrt(2 delta / (T H))`` (:func:`signgd_tuned_lr`):
    for each ``T`` a run with its own ``eta*(T)`` (batched over ``T`` and starts), measured
    ``min_{t<T} ||grad L(x_t)||_1`` against ``sqrt(2 H delta / T)``.

    Returns a tidy ``DataFrame``: ``problem, T, eta, measured_mean, measured_max, bound``.
    """
    pd = _pandas()
    Tmax = int(max(T_list))
    rows = []
    for kind, (prob, H, X0) in problems.items():
        eta_star = signgd_tuned_lr(delta, np.asarray(T_list), H)
        out = run_signgd(prob, X0, T=Tmax, lr=eta_star)
        for j, T in enumerate(T_list):
            best = out["grad_l1"][:T, j].min(0).values
            rows.append(dict(problem=kind, T=int(T), eta=float(eta_star[j]), measured_mean=float(best.mean()),
                             measured_max=float(best.max()), bound=float(signgd_tuned_bound(delta, T, H))))
    return pd.DataFrame(rows)


def rmsprop_bound_sweep(A, sigma, x0, *, T_list, v0_list, c_list, n_seeds: int, seed: int = 0,
                        device="cpu"):
    r"""Theorem 3.5 / Corollaries 3.6-3.7 across ``T``, ``v_0`` and ``beta2 = 1 - c log T / T``, in a
    deterministic (``sigma = 0``) and a noisy (coordinate-wise ``sigma_i``, Assumption 3.4) setting.

    For every configuration: ``eta = sqrt(Delta / (T sum_i H_i))`` (:func:`rmsprop_tuned_lr`), RMSProp
    (:func:`run_blockwise_rmsprop`, ``n_seeds`` noise streams batched; one run when deterministic,
    noise seed ``seed + T``), the measured ``min_{T/2<t<=T} E||grad L(x_t)||_1`` (mean over seeds,
    with its standard error at the minimising ``t``) and the bound (:func:`rmsprop_bound`).

    Returns a tidy ``DataFrame``: ``setting, c, v0, T, eta, beta2, measured, measured_se, bound, E, F,
    ratio``.
    """
    pd = _pandas()
    A = _symmetric(A)
    H = coordinatewise_smoothness(A)
    sigma = torch.as_tensor(sigma, dtype=torch.float64)
    x0 = torch.as_tensor(x0, dtype=torch.float64)
    rows = []
    for setting, sig in (("deterministic", 0.0 * sigma), ("noisy", sigma)):
        prob = NoisyQuadratic(A, sigma=sig, device=device)
        delta = float(prob.loss(x0.to(device))) - prob.min_value
        g0 = float(prob.grad(x0.to(device)).abs().max())
        for c in c_list:
            for v0 in v0_list:
                for T in T_list:
                    beta2 = 1 - c * math.log(T) / T
                    eta = rmsprop_tuned_lr(delta, T, float(H.sum()))
                    out = run_blockwise_rmsprop(prob, x0, T=T, lr=eta, beta2=beta2, v0=v0,
                                                n_seeds=n_seeds if setting == "noisy" else 1, seed=seed + T)
                    window = out["grad_l1"][T // 2 + 1:, 0, :]        # T/2 < t <= T, (t, seeds)
                    mean = window.mean(1)
                    k = int(mean.argmin())
                    se = float(window[k].std() / math.sqrt(window.shape[1])) if window.shape[1] > 1 else 0.0
                    b = rmsprop_bound(delta=delta, T=T, eta=eta, beta2=beta2, H=H.cpu(), sigma=sig.cpu(),
                                      v0=v0, grad0_inf=g0)
                    rows.append(dict(setting=setting, c=c, v0=v0, T=T, eta=eta, beta2=beta2,
                                     measured=float(mean[k]), measured_se=se, bound=b.total, E=b.E, F=b.F))
    res = pd.DataFrame(rows)
    res["ratio"] = res.measured / res.bound
    return res


def loglog_slope(x, y, *, floor: float = 1e-12) -> float:
    """Least-squares slope of ``log y`` against ``log x``, ignoring points with ``y <= floor``
    (converged runs at round-off); NaN when fewer than two points remain."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.shape != y.shape:
        raise ValueError("x and y must have the same shape")
    ok = (y > floor) & (x > 0)
    return float(np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)[0]) if ok.sum() >= 2 else float("nan")


def rmsprop_slopes(res):
    r"""Per ``(setting, c, v0)`` of :func:`rmsprop_bound_sweep`'s table: the log-log slopes in ``T``
    of the measured value and of the bound (:func:`loglog_slope`; Corollaries 3.6/3.7 predict
    ``-1/2`` deterministic, ``-1/4`` up to the log noisy) and the largest measured/bound ratio."""
    pd = _pandas()
    rows = []
    for (setting, c, v0), s in res.groupby(["setting", "c", "v0"], sort=True):
        rows.append(dict(setting=setting, c=c, v0=v0, measured_slope=loglog_slope(s["T"], s.measured),
                         bound_slope=loglog_slope(s["T"], s.bound), max_ratio=float(s.ratio.max())))
    return pd.DataFrame(rows)


def lemma316_counterexample() -> dict:
    r"""The deterministic RMSProp run on which the reconstructed Lemma 3.16 with ``c = 1`` fails
    (also in ``tests/test_lemmas.py``): ``d = 6``, ``A = M M^T / 6 + 0.1 I`` (``M`` Gaussian, seed 0),
    ``x* = 1``, ``x_0 = 0``, ``T = 400``, ``beta2 = 1 - log T / T``, ``eta = 0.05``, ``v_0 = 1e-4``.
    Returns ``dict(problem=..., x0=..., T=..., eta=..., beta2=..., v0=...)``."""
    M = torch.randn(6, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    prob = NoisyQuadratic(M @ M.T / 6 + 0.1 * torch.eye(6, dtype=torch.float64),
                          x_star=torch.ones(6, dtype=torch.float64))
    return dict(problem=prob, x0=torch.zeros(6, dtype=torch.float64), T=400, eta=0.05,
                beta2=1 - math.log(400) / 400, v0=1e-4)


def rmsprop_lemma_table(A, sigma, x0, *, T: int, c: float, v0: float, n_seeds: int, seed: int = 0,
                        device="cpu", counterexample: bool = True):
    r"""Both sides of Lemmas 3.14-3.16 and C.1 (:func:`lemma_report`) on RMSProp runs at the tuned
    step ``eta = sqrt(Delta / (T sum_i H_i))`` with ``beta2 = 1 - c log T / T``: a deterministic
    and a noisy run (``n_seeds`` seeds) on ``A, sigma, x0``, and, with ``counterexample=True``,
    the run of :func:`lemma316_counterexample`. Returns a tidy ``DataFrame`` (``setting`` plus the
    columns of :func:`lemma_report`)."""
    pd = _pandas()
    A = _symmetric(A)
    H_sum = float(coordinatewise_smoothness(A).sum())
    sigma = torch.as_tensor(sigma, dtype=torch.float64)
    x0 = torch.as_tensor(x0, dtype=torch.float64)
    beta2 = 1 - c * math.log(T) / T
    rows = []
    for setting, sig in (("deterministic", 0.0 * sigma), ("noisy", sigma)):
        prob = NoisyQuadratic(A, sigma=sig, device=device)
        eta = rmsprop_tuned_lr(float(prob.loss(x0.to(device))) - prob.min_value, T, H_sum)
        out = run_blockwise_rmsprop(prob, x0, T=T, lr=eta, beta2=beta2, v0=v0,
                                    n_seeds=n_seeds if setting == "noisy" else 1, seed=seed, lemmas=True)
        rows += [dict(setting=setting, **r)
                 for r in lemma_report(prob, out, x0=x0, T=T, eta=eta, beta2=beta2, v0=v0)]
    if counterexample:
        ce = lemma316_counterexample()
        out = run_blockwise_rmsprop(ce["problem"], ce["x0"], T=ce["T"], lr=ce["eta"], beta2=ce["beta2"],
                                    v0=ce["v0"], lemmas=True)
        rows += [dict(setting="counterexample (d=6, tests)", **r)
                 for r in lemma_report(ce["problem"], out, x0=ce["x0"], T=ce["T"], eta=ce["eta"],
                                       beta2=ce["beta2"], v0=ce["v0"])]
    return pd.DataFrame(rows)


def blockwise_test_partitions(block_size: int, n_blocks: int) -> dict:
    r"""The partitions compared in the Theorem 3.11 notebook on a Hessian with ``n_blocks`` diagonal
    blocks of ``block_size`` (:func:`block_quadratic`): coordinates (Adam), aligned blocks of half,
    one and two block sizes, blocks of the right size shifted by half a block (misaligned), and one
    block (AdaSGD). Returns ``{name: (d,) block ids}``."""
    if block_size < 2 or block_size % 2 or n_blocks < 2:
        raise ValueError("need an even block_size >= 2 and n_blocks >= 2")
    d = block_size * n_blocks
    i = torch.arange(d)
    return {
        "coordinates (Adam)": i,
        f"aligned, size {block_size // 2}": i // (block_size // 2),
        f"aligned, size {block_size}": i // block_size,
        f"aligned, size {2 * block_size}": i // (2 * block_size),
        f"misaligned, size {block_size}": ((i + block_size // 2) // block_size) % n_blocks,
        "one block (AdaSGD)": torch.zeros(d, dtype=torch.long),
    }


def blockwise_partition_sweep(A, partitions: dict, *, x0, noise: float, T: int, lrs, beta2: float,
                              n_seeds: int, seed: int = 0, exact_max_blocks: int = 8, device="cpu"):
    r"""Theorem 3.11 checked by ranking: for each partition, blockwise Adam with ``beta1 = 0``
    (:func:`run_blockwise_rmsprop`, ``v_0 = 0``, isotropic gradient noise ``noise``, all learning
    rates and seeds batched) on ``L(x) = 1/2 x^T A x`` from ``x0``; the final loss is the mean over
    the last 10% of the steps and over seeds, best over ``lrs``.

    Returns a tidy ``DataFrame``: ``partition, B, bound`` (Lemma 3.13,
    ``adamlinf.hessian.blockwise_bound``), ``H_exact`` (:func:`phi_smoothness` when
    ``B <= exact_max_blocks``, else NaN), ``best_lr, final_loss, edge_of_grid``.
    """
    from .hessian import blockwise_bound

    pd = _pandas()
    A = _symmetric(A)
    lrs = np.asarray(lrs, dtype=float)
    prob = NoisyQuadratic(A, sigma=noise, device=device)
    rows = []
    for name, idx in partitions.items():
        B = int(idx.max()) + 1
        exact = phi_smoothness(A, idx) if B <= exact_max_blocks else float("nan")
        out = run_blockwise_rmsprop(prob, x0, T=T, lr=lrs, beta2=beta2, v0=0.0, block_index=idx,
                                    n_seeds=n_seeds, seed=seed)
        final = out["loss"][-max(1, T // 10):].mean(0).mean(-1)     # (n_lr,)
        k = int(final.argmin())
        rows.append(dict(partition=name, B=B, bound=float(blockwise_bound(A.cpu(), idx)), H_exact=exact,
                         best_lr=float(lrs[k]), final_loss=float(final[k]), edge_of_grid=k in (0, len(lrs) - 1)))
    return pd.DataFrame(rows)
