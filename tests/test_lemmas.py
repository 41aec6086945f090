"""Numerical checks of the lemmas (and small statements) of Section 3 and Appendices B-D.

Every statement is RECONSTRUCTED (see the book's reconstruction notes, book/reconstruction.md); each
test's docstring says which one it checks. Deterministic inequalities are checked to rounding
(float64); statements about expectations are checked by Monte Carlo and fail only when violated
beyond sampling error (a few standard errors, or a binomial test). The right-hand sides come from
:mod:`adamlinf.theory`.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from adamlinf import partitions as PT
from adamlinf import problems as P
from adamlinf import theory as th

F64 = torch.float64


def phi_norm(x, idx):
    """Definition 3.8's norm through the one implementation, adamlinf.partitions."""
    idx = torch.as_tensor(idx)
    return PT.custom(idx).norm(x, idx.numel())


def phi_dual_norm(x, idx):
    idx = torch.as_tensor(idx)
    return PT.custom(idx).dual_norm(x, idx.numel())


SETTINGS = settings(max_examples=25, deadline=None, derandomize=True)


def random_psd(d, seed, *, indefinite=False, scale_spread=1.0):
    g = torch.Generator().manual_seed(seed)
    M = torch.randn(d, d, generator=g, dtype=F64)
    A = M @ M.T / d
    if scale_spread != 1.0:
        s = torch.exp(scale_spread * torch.randn(d, generator=g, dtype=F64))
        A = s[:, None] * A * s[None, :]
    if indefinite:
        A = A - 0.5 * float(torch.linalg.eigvalsh(A).max()) * torch.eye(d, dtype=F64)
    return A


def random_partition(d, n_blocks, seed):
    """Random block ids 0..B-1 (every block non-empty), not contiguous."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.cat([torch.arange(n_blocks), torch.randint(0, n_blocks, (d - n_blocks,), generator=g)])
    return ids[torch.randperm(d, generator=g)]


def tight_lower(A, idx, *, restarts: int = 20, iters: int = 200, seed: int = 0):
    r"""Lower bounds on the smallest constants H_b of Definition 3.12.

    The smallest H_b is sqrt(d_b) max{||A_(b),: Delta||: ||Delta||_Phi <= 1}, a convex maximum over a
    product of balls. The monotone ascent Delta_(c) <- sqrt(d_c) normalize(A_(b),(c)^T A_(b),: Delta)
    from random starts never decreases it, so its best value is a certified lower bound: if Lemma 3.13
    holds with these smaller constants, it holds with the true ones.
    """
    db = torch.bincount(idx).to(F64)
    B = len(db)
    g = torch.Generator().manual_seed(seed)
    out = torch.empty(B, dtype=F64)

    def project(delta):
        sq = torch.zeros(delta.shape[0], B, dtype=F64).index_add_(1, idx, delta * delta)
        return delta * (db / sq.clamp_min(1e-300)).sqrt()[:, idx]

    for b in range(B):
        Ab = A[idx == b]  # (d_b, d)
        delta = project(torch.randn(restarts, A.shape[0], generator=g, dtype=F64))
        for _ in range(iters):
            delta = project((delta @ Ab.T) @ Ab + 1e-300)
        out[b] = db[b].sqrt() * (delta @ Ab.T).norm(dim=1).max()
    return out


# ----------------------------------------------------------------------------------------------
# Lemma 3.13
@SETTINGS
@given(
    d=st.integers(2, 9),
    n_blocks=st.integers(1, 5),
    seed=st.integers(0, 10_000),
    indefinite=st.booleans(),
    spread=st.sampled_from([1.0, 2.0]),
)
def test_lemma313_diagonal_domination(d, n_blocks, seed, indefinite, spread):
    """Lemma 3.13 (RECONSTRUCTED): with H_b of Definition 3.12,
    |Delta^T A Delta| <= sum_b H_b/d_b ||Delta_(b)||^2 for all Delta, i.e. -D <= A <= D for
    D = diag(H_{Phi(i)}/d_{Phi(i)}). Checked exactly (eigenvalues of D^{-1/2} A D^{-1/2}) for
    (a) the valid constants of theory.blockwise_smoothness and (b) the tightest constants found by
    ascent (lower bounds on the smallest valid ones, hence a stronger check), plus sampled Delta."""
    n_blocks = min(n_blocks, d)
    A = random_psd(d, seed, indefinite=indefinite, scale_spread=spread)
    idx = random_partition(d, n_blocks, seed)
    db = torch.bincount(idx).to(F64)
    # (the ascent's value may sit a hair below the true smallest constant when it has not fully
    # converged: the lemma is tight for one block, so allow 1e-3 there)
    for Hb, tol in (
        (th.blockwise_smoothness(A, idx), 1e-9),
        (tight_lower(A, idx, restarts=8, iters=150, seed=seed), 1e-3),
    ):
        Dinv_sqrt = (db / Hb).sqrt()[idx]
        M = Dinv_sqrt[:, None] * A * Dinv_sqrt[None, :]
        assert float(torch.linalg.eigvalsh(M).abs().max()) <= 1 + tol
        g = torch.Generator().manual_seed(seed + 1)
        Delta = (
            torch.randn(500, d, generator=g, dtype=F64)
            * torch.exp(2 * torch.randn(500, n_blocks, generator=g, dtype=F64))[:, idx]
        )
        lhs = ((Delta @ A) * Delta).sum(1).abs()
        sq = torch.zeros(500, n_blocks, dtype=F64).index_add_(1, idx, Delta * Delta)
        rhs = (sq * Hb / db).sum(1)
        assert torch.all(lhs <= rhs * (1 + tol))
    # ... and the consequence H(L, Phi) <= sum_b H_b (Definition 3.9), with theory.blockwise_bound
    assert float(th.blockwise_smoothness(A, idx).sum()) == pytest.approx(
        th.blockwise_bound(A, idx), rel=1e-10
    )


def test_lemma313_definition312_constants_valid():
    """Definition 3.12: the constants H_b of theory.blockwise_smoothness satisfy
    sqrt(d_b) ||A_(b),: Delta|| <= H_b ||Delta||_Phi on sampled Delta, and for singleton blocks
    equal the row l1 norms of Definition 3.3 (where they are exact)."""
    A = random_psd(7, 3, indefinite=True)
    idx = torch.tensor([0, 0, 1, 2, 2, 2, 1])
    Hb = th.blockwise_smoothness(A, idx)
    db = torch.bincount(idx).to(F64)
    Delta = torch.randn(2000, 7, generator=torch.Generator().manual_seed(0), dtype=F64)
    G = Delta @ A
    for b in range(3):
        lhs = db[b].sqrt() * G[:, idx == b].norm(dim=1)
        assert torch.all(lhs <= Hb[b] * phi_norm(Delta, idx) * (1 + 1e-12))
    assert torch.allclose(th.blockwise_smoothness(A, torch.arange(7)), A.abs().sum(1))


# ----------------------------------------------------------------------------------------------
# Lemma 3.14
@SETTINGS
@given(
    T=st.integers(1, 300),
    beta2=st.floats(0.01, 0.999),
    v0_exp=st.integers(-8, 4),
    zero_v0=st.booleans(),
    seed=st.integers(0, 10_000),
    heavy=st.booleans(),
)
def test_lemma314_sum_g2_over_v(T, beta2, v0_exp, zero_v0, seed, heavy):
    """Lemma 3.14 (RECONSTRUCTED): if v_t - beta2 v_{t-1} >= (1-beta2) g_t^2 then
    sum_t g_t^2/v_t <= T + beta2/(1-beta2) ln(v_T/v_0) (v0 > 0), and
    <= T + beta2/(1-beta2) (1 + ln(v_T/v_1)) when v0 = 0. Random (heavy-tailed, bursty) g and
    random non-negative slack in the recursion."""
    g_ = torch.Generator().manual_seed(seed)
    g = torch.randn(T, generator=g_, dtype=F64)
    if heavy:
        g = g * torch.exp(3 * torch.randn(T, generator=g_, dtype=F64))
    slack = torch.rand(T, generator=g_, dtype=F64) * (torch.rand(T, generator=g_, dtype=F64) < 0.2)
    v0 = 0.0 if zero_v0 else 10.0**v0_exp
    v = torch.empty(T, dtype=F64)
    prev = v0
    for t in range(T):
        prev = beta2 * prev + (1 - beta2) * float(g[t]) ** 2 + float(slack[t]) * float(g[t]) ** 2
        v[t] = prev
    keep = v > 0
    lhs = float((g[keep] ** 2 / v[keep]).sum())
    log_ratio = math.log(float(v[-1]) / v0) if v0 > 0 else 1 + math.log(float(v[-1]) / float(v[0]))
    rhs = float(th.lemma314_rhs(T, beta2, log_ratio))
    assert lhs <= rhs + 1e-9 * max(1.0, abs(rhs))


def test_lemma314_is_tight_for_constant_sequence():
    """Lemma 3.14: for g_t = 1, v_0 = 1 (v_t = 1), both sides equal T (the bound cannot be
    improved in its leading term)."""
    g, v, prev = torch.ones(50, dtype=F64), torch.empty(50, dtype=F64), 1.0
    for t in range(50):
        prev = 0.9 * prev + 0.1 * float(g[t]) ** 2
        v[t] = prev
    assert (
        float((g**2 / v).sum())
        == pytest.approx(50.0)
        == th.lemma314_rhs(50, 0.9, math.log(float(v[-1]) / 1.0))
    )


# ----------------------------------------------------------------------------------------------
# Lemma D.1
@pytest.mark.parametrize("n,t", [(5, 0.1), (11, 0.15), (31, 0.1), (51, 0.2)])
def test_lemmaD1_median_of_uniforms(n, t):
    """Lemma D.1 (RECONSTRUCTED): the median M of n i.i.d. Unif[0,1] satisfies
    P(M >= 1/2 + t) <= exp(-2 n t^2) and P(M <= 1/2 - t) <= exp(-2 n t^2). Simulated with 40 000
    replicates; fails only if a one-sided binomial test rejects 'p <= bound' at level 1e-6."""
    from scipy.stats import binomtest

    reps = 40_000
    U = torch.rand(reps, n, generator=torch.Generator().manual_seed(n), dtype=F64)
    M = U.median(dim=1).values  # n odd: the exact sample median
    bound = math.exp(-2 * n * t * t)
    for k in (int((M >= 0.5 + t).sum()), int((M <= 0.5 - t).sum())):
        p = binomtest(k, reps, min(bound, 1.0), alternative="greater").pvalue
        assert p > 1e-6, f"P(tail) = {k / reps:.4f} > bound {bound:.4f}"


def test_lemmaD1_bound_has_right_order():
    """Lemma D.1 is not vacuous: at n = 51, t = 0.1 the tail is a sizeable fraction of the bound
    (Hoeffding is tight up to a polynomial factor), so the simulation above has power."""
    n, t = 51, 0.1
    U = torch.rand(40_000, n, generator=torch.Generator().manual_seed(1), dtype=F64)
    frac = float((U.median(1).values >= 0.5 + t).double().mean())
    assert 0.05 * math.exp(-2 * n * t * t) < frac < math.exp(-2 * n * t * t)


# ----------------------------------------------------------------------------------------------
# Definition 3.3 => Definition 3.1 (and Theorem 3.2's one-step inequality)
def _logcosh_problem(d, m, seed):
    """L(x) = sum_j log cosh(a_j^T x) + 1/2 x^T diag(c) x: smooth and not quadratic. Its Hessian
    is sum_j sech^2(a_j^T x) a_j a_j^T + diag(c), so |[Hess]_ik| <= (|A|^T|A|)_ik + c_i delta_ik and
    H_i = sum_k (|A|^T |A|)_ik + c_i are valid coordinate-wise constants (Definition 3.3)."""
    g = torch.Generator().manual_seed(seed)
    Amat = torch.randn(m, d, generator=g, dtype=F64)
    c = torch.rand(d, generator=g, dtype=F64)

    def grad(x):
        return torch.tanh(x @ Amat.T) @ Amat + x * c

    def loss(x):
        z = x @ Amat.T
        return (torch.nn.functional.softplus(2 * z) - z - math.log(2)).sum(-1) + 0.5 * (x * x * c).sum(-1)

    H = (Amat.abs().T @ Amat.abs()).sum(1) + c
    return loss, grad, H


@SETTINGS
@given(d=st.integers(1, 10), seed=st.integers(0, 10_000), scale=st.sampled_from([0.01, 1.0, 100.0]))
def test_definition33_implies_definition31(d, seed, scale):
    """Definition 3.3 => Definition 3.1 (RECONSTRUCTED): coordinate-wise constants H_i imply
    ||grad L(x) - grad L(y)||_1 <= (sum_i H_i) ||x - y||_inf. Checked on a random quadratic
    (H_i = row l1 norms, theory.coordinatewise_smoothness) and on a non-quadratic log-cosh loss,
    at sampled pairs (x, y) at several scales; also the coordinate-wise inequality itself."""
    g = torch.Generator().manual_seed(seed)
    x = scale * torch.randn(400, d, generator=g, dtype=F64)
    y = x + scale * torch.randn(400, d, generator=g, dtype=F64) * torch.rand(400, 1, generator=g, dtype=F64)
    A = random_psd(d, seed, indefinite=True)
    loss_l, grad_l, H_l = _logcosh_problem(d, 3, seed)
    for grad, H in ((lambda z: z @ A, th.coordinatewise_smoothness(A)), (grad_l, H_l)):
        diff = (grad(x) - grad(y)).abs()
        dist = (x - y).abs().amax(1)
        assert torch.all(diff <= H * dist[:, None] * (1 + 1e-10) + 1e-12)  # Def. 3.3
        assert torch.all(diff.sum(1) <= H.sum() * dist * (1 + 1e-10) + 1e-12)  # Def. 3.1
    # the implied constant can be much larger than the best l_inf constant, never smaller
    assert th.linf_smoothness(A) <= float(th.coordinatewise_smoothness(A).sum()) + 1e-9


def test_linf_smoothness_exact_value():
    """Definition 3.1 for a quadratic: H = ||A||_{inf->1}. Hand-computed case
    A = [[2, -1], [-1, 2]]: max over s in {+-1}^2 of ||A s||_1 = ||(3, -3)||_1 = 6, while
    sum_i H_i = ||A||_{1,1} = 6 too; and A = [[2, 1], [1, 2]] gives max(6, 2) = 6. For
    A = [[1, 1], [1, 1]] (rank one) ||A||_{inf->1} = 4 = ||A||_{1,1}; for diag(1, 3) it is 4."""
    assert th.linf_smoothness(torch.tensor([[2.0, -1.0], [-1.0, 2.0]], dtype=F64)) == pytest.approx(6.0)
    assert th.linf_smoothness(torch.tensor([[1.0, 1.0], [1.0, 1.0]], dtype=F64)) == pytest.approx(4.0)
    assert th.linf_smoothness(torch.diag(torch.tensor([1.0, 3.0], dtype=F64))) == pytest.approx(4.0)
    # brute force equals the definition's sup over many sampled directions (never below it)
    A = random_psd(6, 0)
    u = torch.rand(20000, 6, generator=torch.Generator().manual_seed(0), dtype=F64) * 2 - 1
    sampled = float(((u @ A).abs().sum(1) / u.abs().amax(1)).max())
    H = th.linf_smoothness(A)
    assert sampled <= H + 1e-9 and H <= float(A.abs().sum()) + 1e-9
    # PSD: equals max_s s^T A s
    S = torch.tensor([[1 if (k >> i) & 1 else -1 for i in range(6)] for k in range(64)], dtype=F64)
    assert H == pytest.approx(float(((S @ A) * S).sum(1).max()), rel=1e-12)


@SETTINGS
@given(d=st.integers(1, 8), seed=st.integers(0, 10_000), log_eta=st.floats(-4, 1))
def test_theorem32_one_step_inequality(d, seed, log_eta):
    """Theorem 3.2's one-step inequality (9) (RECONSTRUCTED): for H-smooth L w.r.t. l_inf,
    L(x - eta sign(grad L(x))) <= L(x) - eta ||grad L(x)||_1 + H eta^2 / 2. Quadratic with the
    exact H = ||A||_{inf->1}, and the log-cosh loss with H = sum_i H_i."""
    eta = 10.0**log_eta
    g = torch.Generator().manual_seed(seed)
    x = 3 * torch.randn(200, d, generator=g, dtype=F64)
    A = random_psd(d, seed)
    loss_l, grad_l, H_l = _logcosh_problem(d, 4, seed)
    cases = (
        (lambda z: 0.5 * ((z @ A) * z).sum(-1), lambda z: z @ A, th.linf_smoothness(A)),
        (loss_l, grad_l, float(H_l.sum())),
    )
    for loss, grad, H in cases:
        gr = grad(x)
        lhs = loss(x - eta * torch.sign(gr))
        rhs = loss(x) - eta * gr.abs().sum(1) + H * eta**2 / 2
        assert torch.all(lhs <= rhs + 1e-9 * (1 + loss(x).abs()))


# ----------------------------------------------------------------------------------------------
# Lemmas 3.14-3.16 and C.1 on simulated RMSProp / blockwise-Adam runs (beta1 = 0)
def _noisy_problem(noisy: bool, d: int = 6):
    g = torch.Generator().manual_seed(0)
    M = torch.randn(d, d, generator=g, dtype=F64)
    A = M @ M.T / d + 0.1 * torch.eye(d, dtype=F64)
    sigma = (0.5 * torch.linspace(0.2, 1.0, d, dtype=F64)) if noisy else torch.zeros(d, dtype=F64)
    return P.NoisyQuadratic(A, sigma=sigma, x_star=torch.ones(d, dtype=F64))


PARTITIONS = {"coordinates": torch.arange(6), "blocks": torch.tensor([0, 0, 1, 1, 1, 2])}
RUNS = [(noisy, part, v0) for noisy in (False, True) for part in PARTITIONS for v0 in (1e-4, 10.0)]
_CACHE: dict = {}


def _blocksum(z, idx):
    return torch.zeros(*z.shape[:-1], int(idx.max()) + 1, dtype=F64).index_add_(-1, idx, z)


def _reference_run(prob, idx, *, T, S, eta, beta2, v0, seed=1):
    """Blockwise RMSProp written out from Algorithm 3 (beta1 = 0, eps = 0, no bias correction), one loop
    over steps, vectorised over S seeds; it draws the noise as the runner does (one generator, one
    (S, d) normal draw per step), so its iterates are the runner's. Returns, per step t = 1..T and block,
    gbar_t = grad L(x_{t-1}), the noisy g_t, v_t and vtilde_t = E[v_t | x_{t-1}]."""
    db = torch.bincount(idx).to(F64)
    sigma_b2 = _blocksum(prob.sigma**2, idx) / db
    gen = torch.Generator().manual_seed(seed)
    x = torch.zeros(S, prob.d, dtype=F64)
    v = torch.full((S, len(db)), float(v0), dtype=F64)
    rec = {k: [] for k in ("gbar", "g", "v", "vtilde")}
    for _ in range(T):
        gbar = (x - prob.x_star) @ prob.A
        g = gbar
        if bool(torch.any(prob.sigma > 0)):
            g = gbar + prob.sigma * torch.randn(S, prob.d, generator=gen, dtype=F64)
        v_new = beta2 * v + (1 - beta2) * _blocksum(g * g, idx) / db
        vtilde = beta2 * v + (1 - beta2) * (_blocksum(gbar * gbar, idx) / db + sigma_b2)
        for k, val in zip(rec, (gbar, g, v_new, vtilde), strict=True):
            rec[k].append(val)
        x = x - eta * g / v_new.sqrt()[:, idx]
        v = v_new
    return {k: torch.stack(val) for k, val in rec.items()}  # (T, S, d) or (T, S, B)


def _simulate(noisy, part, v0, T=400, S=256, eta=0.05):
    key = (noisy, part, v0)
    if key not in _CACHE:
        prob = _noisy_problem(noisy)
        beta2 = 1 - math.log(T) / T
        idx = PARTITIONS[part]
        ref = _reference_run(prob, idx, T=T, S=S, eta=eta, beta2=beta2, v0=v0)
        _CACHE[key] = (prob, idx, beta2, T, S, eta, ref)
    return _CACHE[key]


def _mean_se(z):
    return z.mean(0), z.std(0) / math.sqrt(z.shape[0])


def test_runner_lemma_sums_equal_the_reference_run():
    """problems.run_blockwise_rmsprop(lemmas=True) accumulates the sums of Lemmas 3.14-3.16 and C.1
    (which the Theorem 3.5 page reports); they equal the same sums over the written-out reference run."""
    for noisy, part in ((True, "blocks"), (True, "coordinates"), (False, "blocks")):
        prob, idx, beta2, T, S, eta, ref = _simulate(noisy, part, 1e-4)
        out = P.run_blockwise_rmsprop(
            prob,
            torch.zeros(prob.d, dtype=F64),
            idx,
            steps=T,
            lr=eta,
            beta2=beta2,
            v0=1e-4,
            n_seeds=S,
            seed=1,
            lemmas=True,
        )
        db = torch.bincount(idx).to(F64)
        gbar_b2 = _blocksum(ref["gbar"] ** 2, idx)
        want = {
            "first_order": (_blocksum(ref["gbar"] * ref["g"], idx) / ref["v"].sqrt()).sum(0),
            "gbar_sq_over_sqrt_vtilde": (gbar_b2 / ref["vtilde"].sqrt()).sum(0),
            "g2_over_v": (_blocksum(ref["g"] ** 2, idx) / db / ref["v"]).sum(0),
            "sqrt_vtilde_window": ref["vtilde"][T // 2 :].sqrt().sum(0),
            "gbar_norm_sum": (gbar_b2 / db).sqrt().sum(0),
            "log_ratio": torch.log(ref["v"][-1] / 1e-4),
        }
        for k, val in want.items():
            torch.testing.assert_close(out[k][0], val, rtol=1e-9, atol=1e-12, msg=k)


@pytest.mark.parametrize("noisy,part,v0", RUNS)
def test_lemma314_on_rmsprop_runs(noisy, part, v0):
    """Lemma 3.14 applied as in the proof of Theorem 3.11 (g_t <- ||g_(b)||/sqrt(d_b),
    v_t <- v_{t,b}): sum_t (||g_(b)||^2/d_b)/v_{t,b} <= T + beta2/(1-beta2) ln(v_{T,b}/v_{0,b}),
    for every seed and block of simulated blockwise-RMSProp runs (a pathwise statement)."""
    prob, idx, beta2, T, S, eta, ref = _simulate(noisy, part, v0)
    lhs = (_blocksum(ref["g"] ** 2, idx) / torch.bincount(idx) / ref["v"]).sum(0)
    rhs = th.lemma314_rhs(T, beta2, torch.log(ref["v"][-1] / v0))
    assert torch.all(lhs <= rhs * (1 + 1e-9))


@pytest.mark.parametrize("noisy,part,v0", RUNS)
def test_lemma315_first_order_approximation(noisy, part, v0):
    """Lemma 3.15 (RECONSTRUCTED; constants 1/2 and sqrt(1-beta2) d_b sigma_b unverified):
    E sum_t gbar_(b)^T g_(b)/sqrt(v_{t,b}) >= 1/2 E sum_t ||gbar_(b)||^2/sqrt(vtilde_{t,b})
    - sqrt(1-beta2) d_b sigma_b (T + beta2/(1-beta2) E ln(v_{T,b}/v_{0,b})), per block, by Monte
    Carlo over 256 seeds (fails if violated by more than 4 standard errors)."""
    prob, idx, beta2, T, S, eta, ref = _simulate(noisy, part, v0)
    db = torch.bincount(idx).to(F64)
    first_order = (_blocksum(ref["gbar"] * ref["g"], idx) / ref["v"].sqrt()).sum(0)
    diff = first_order - th.lemma315_rhs(
        gbar_sq_over_sqrt_vtilde_sum=(_blocksum(ref["gbar"] ** 2, idx) / ref["vtilde"].sqrt()).sum(0),
        d_b=db,
        sigma_b=(_blocksum(prob.sigma**2, idx) / db).sqrt(),
        T=T,
        beta2=beta2,
        log_ratio=torch.log(ref["v"][-1] / v0),
    )
    mean, se = _mean_se(diff)
    assert torch.all(mean + 4 * se >= 0), mean


@pytest.mark.parametrize("noisy,part,v0", RUNS)
def test_lemma316_sum_sqrt_vtilde(noisy, part, v0):
    """Lemma 3.16 (RECONSTRUCTED; constant c NOT RECOVERED): per block,
    sum_{T/2<t<=T} E sqrt(vtilde_{t,b}) <= 2 beta2^{T/4} sqrt(v_0)/(1-beta2) + T sigma_b
    + c sum_{t<=T} E ||gbar_(b)||/sqrt(d_b), checked with c = 2 by Monte Carlo (4 standard
    errors). Measured: c = 1 is NOT enough on deterministic runs (about 1.2 is needed, because
    sqrt of a moving average of gbar^2 exceeds the average of |gbar| when the iterates oscillate);
    see test_lemma316_constant_exceeds_one."""
    prob, idx, beta2, T, S, eta, ref = _simulate(noisy, part, v0)
    db = torch.bincount(idx).to(F64)
    rhs = th.lemma316_rhs(
        T=T,
        beta2=beta2,
        v0=v0,
        sigma_b=(_blocksum(prob.sigma**2, idx) / db).sqrt(),
        eps=0.0,
        gbar_abs_sum=(_blocksum(ref["gbar"] ** 2, idx) / db).sqrt().sum(0),
        c=2.0,
    )
    mean, se = _mean_se(ref["vtilde"][T // 2 :].sqrt().sum(0) - rhs)
    assert torch.all(mean - 4 * se <= 0), mean


def test_lemma316_constant_exceeds_one():
    """Lemma 3.16: documents that the reconstructed form needs c > 1 (with c = 1 it fails on a
    deterministic RMSProp run), so the constant c = 2 used above is not an idle choice."""
    prob, idx, beta2, T, S, eta, ref = _simulate(False, "coordinates", 1e-4)
    rhs1 = th.lemma316_rhs(
        T=T, beta2=beta2, v0=1e-4, sigma_b=0.0, eps=0.0, gbar_abs_sum=ref["gbar"].abs().sum(0), c=1.0
    )
    assert bool(torch.any((ref["vtilde"][T // 2 :].sqrt().sum(0) - rhs1).mean(0) > 0))


@pytest.mark.parametrize("noisy,part,v0", RUNS + [(True, "coordinates", 1e-8), (True, "blocks", 1e-8)])
def test_lemmaC1_log_growth_of_v(noisy, part, v0):
    """Lemma C.1 (RECONSTRUCTED; constants 2 and ln 32 unverified): per block,
    E ln((v_{T,b}+eps)/(v_{0,b}+eps)) <= F, with F from theory.blockwise_adam_F (coordinates: d_b = 1,
    the l_inf norm and H_i); Monte Carlo, 4 standard errors."""
    prob, idx, beta2, T, S, eta, ref = _simulate(noisy, part, v0)
    g0 = prob.grad(torch.zeros(prob.d, dtype=F64))
    db = torch.bincount(idx).to(F64)
    F = th.blockwise_adam_F(
        sigma_b=(_blocksum(prob.sigma**2, idx) / db).sqrt(),
        d_b=db,
        grad0_phi=float(phi_norm(g0, idx)),
        H_b=th.blockwise_smoothness(prob.A, idx),
        eta=eta,
        T=T,
        beta2=beta2,
        v0=v0,
    )
    mean, se = _mean_se(torch.log(ref["v"][-1] / v0))
    assert torch.all(mean - 4 * se <= F), (mean, F)
