"""Tests of adamlinf.theory: the bound functions on hand-computed values, the smoothness constants
against their definitions, and the theorems on simulated runs (Theorem 3.2 exactly on random
quadratics; Theorem 3.5 by Monte Carlo on a small noisy problem)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from adamlinf import partitions as PT
from adamlinf import problems as P
from adamlinf import theory as th
from adamlinf.rotations import exp_rotation

F64 = torch.float64


def phi_norm(x, idx):
    """Definition 3.8's norm through the one implementation, adamlinf.partitions."""
    idx = torch.as_tensor(idx)
    return PT.custom(idx).norm(x, idx.numel())


def phi_dual_norm(x, idx):
    idx = torch.as_tensor(idx)
    return PT.custom(idx).dual_norm(x, idx.numel())


# ----------------------------------------------------------------------------------------------
# closed forms on hand-computed values
def test_signgd_bound_hand_values():
    """Theorem 3.2: delta/(T eta) + H eta/2 with delta=2, T=10, eta=0.1, H=4 is 2 + 0.2; the tuned
    step is sqrt(2*2/(10*4)) = sqrt(0.1) and the tuned bound sqrt(2*4*2/10) = sqrt(1.6)."""
    assert th.signgd_bound(2.0, 10, 0.1, 4.0) == pytest.approx(2.2)
    assert th.signgd_tuned_lr(2.0, 10, 4.0) == pytest.approx(math.sqrt(0.1))
    assert th.signgd_tuned_bound(2.0, 10, 4.0) == pytest.approx(math.sqrt(1.6))
    assert th.signgd_bound(2.0, 10, math.sqrt(0.1), 4.0) == pytest.approx(math.sqrt(1.6))
    # the tuned step minimises the bound
    etas = np.geomspace(1e-3, 10, 2001)
    assert th.signgd_bound(2.0, 10, etas, 4.0).min() >= math.sqrt(1.6) - 1e-12
    with pytest.raises(ValueError):
        th.signgd_bound(1.0, 0, 0.1, 1.0)


def test_rmsprop_bound_hand_values():
    """Theorem 3.5 (RECONSTRUCTED form) with d=2, H=(1,2), sigma=0, v0=1, eps=0,
    ||grad L(x0)||_inf=1, eta=0.1, T=100, beta2=0.9, Delta=1:
    F = 2 ln(1 + 1 + 2^2 0.1^2 100 (100 + 10)) + ln 32 = 2 ln 442 + ln 32,
    E = 2/(0.1*100) + (1 + 0.9 F/10) * 0.3, S = 0.9^25/10 * 2, total = E + sqrt(E S)."""
    b = th.rmsprop_bound(
        delta=1.0, T=100, eta=0.1, beta2=0.9, H=[1.0, 2.0], sigma=[0.0, 0.0], v0=1.0, grad0_inf=1.0
    )
    F = 2 * math.log(442) + math.log(32)
    E = 0.2 + (1 + 0.09 * F) * 0.3
    S = 0.9**25 / 10 * 2
    assert b.F == pytest.approx(F)
    assert b.E == pytest.approx(E)
    assert b.S == pytest.approx(S)
    assert b.total == pytest.approx(E + math.sqrt(E * S))
    # noise: sigma = (1, 3) adds sqrt(0.1)*4 inside E's second factor and 4 under the root
    bn = th.rmsprop_bound(
        delta=1.0, T=100, eta=0.1, beta2=0.9, H=[1.0, 2.0], sigma=[1.0, 3.0], v0=1.0, grad0_inf=1.0
    )
    Fn = 2 * math.log(1 + 10 + 1 + 440) + math.log(32)
    En = 0.2 + (1 + 0.09 * Fn) * (0.3 + math.sqrt(0.1) * 4)
    assert bn.E == pytest.approx(En)
    assert bn.S == pytest.approx(S + 4)


@settings(max_examples=20, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=1, max_size=9), st.integers(0, 2**31 - 1))
def test_block_spectral_norms_against_a_loop(labels, seed):
    """theory.block_spectral_norms (batched over blocks of equal size) equals the spectral norm of
    every sub-block H_(b),(c) computed one pair at a time, for random partitions with blocks of
    mixed sizes; one block gives ||H||_2, coordinates give |H_ij|."""
    idx = torch.unique(torch.tensor(labels), return_inverse=True)[1]
    d = len(idx)
    M = torch.randn(d, d, generator=torch.Generator().manual_seed(seed), dtype=F64)
    H = M + M.T
    N = th.block_spectral_norms(H, idx)
    B = int(idx.max()) + 1
    for b in range(B):
        for c in range(B):
            sub = H[idx == b][:, idx == c]
            assert float(N[b, c]) == pytest.approx(float(torch.linalg.matrix_norm(sub, ord=2)), rel=1e-10)
    assert torch.allclose(th.block_spectral_norms(H, torch.arange(d)), H.abs())
    assert float(th.block_spectral_norms(H, torch.zeros(d, dtype=torch.long))[0, 0]) == pytest.approx(
        float(torch.linalg.eigvalsh(H).abs().max()), rel=1e-10
    )


def test_blockwise_bound_reduces_to_rmsprop_bound():
    """Theorem 3.11 with Phi(i) = i (d_b = 1, H(L,Phi) -> sum_i H_i) is Theorem 3.5."""
    kw = dict(delta=0.7, T=500, eta=0.03, beta2=0.99, v0=0.5, eps=1e-6)
    H = np.array([1.0, 2.0, 0.5])
    s = np.array([0.1, 0.0, 0.3])
    a = th.rmsprop_bound(H=H, sigma=s, grad0_inf=2.0, **kw)
    b = th.blockwise_adam_bound(H_phi=H.sum(), H_b=H, sigma_b=s, d_b=np.ones(3), grad0_phi=2.0, **kw)
    assert a.total == pytest.approx(b.total) and a.F == pytest.approx(b.F)


def test_phi_norms_hand_values_and_duality():
    """Definition 3.8: x = (3, 4, 1), Phi = (0, 0, 1): ||x||_Phi = max(5/sqrt2, 1),
    ||x||_{Phi,*} = sqrt2*5 + 1; coordinates give l_inf / l_1, one block ||x||_2/sqrt d, sqrt d ||x||_2.
    Duality: x^T y <= ||x||_Phi ||y||_{Phi,*} on random pairs."""
    x = torch.tensor([3.0, 4.0, 1.0], dtype=F64)
    idx = torch.tensor([0, 0, 1])
    assert float(phi_norm(x, idx)) == pytest.approx(5 / math.sqrt(2))
    assert float(phi_dual_norm(x, idx)) == pytest.approx(5 * math.sqrt(2) + 1)
    assert float(phi_norm(x, torch.arange(3))) == pytest.approx(4.0)
    assert float(phi_dual_norm(x, torch.arange(3))) == pytest.approx(8.0)
    assert float(phi_norm(x, torch.zeros(3, dtype=torch.long))) == pytest.approx(math.sqrt(26 / 3))
    assert float(phi_dual_norm(x, torch.zeros(3, dtype=torch.long))) == pytest.approx(math.sqrt(78))
    g = torch.Generator().manual_seed(0)
    X, Y = torch.randn(2, 1000, 3, generator=g, dtype=F64)
    assert torch.all((X * Y).sum(1) <= phi_norm(X, idx) * phi_dual_norm(Y, idx) + 1e-12)
    with pytest.raises(ValueError):
        phi_norm(x, torch.tensor([0, 2, 2]))  # block 1 empty


def test_coordinatewise_smoothness_hand_values():
    """Definition 3.3: H_i = ||A_{i,:}||_1; A = [[2,-1],[-1,3]] gives (3, 4)."""
    A = torch.tensor([[2.0, -1.0], [-1.0, 3.0]], dtype=F64)
    assert torch.allclose(th.coordinatewise_smoothness(A), torch.tensor([3.0, 4.0], dtype=F64))


def test_phi_smoothness_definition39():
    """Definition 3.9: one block gives d ||A||_2; a diagonal A with Phi(i)=i gives sum |a_ii|;
    finer partitions give smaller H (monotonicity); H(L,Phi) lies between the smoothness
    w.r.t. ||.||_Phi (sup_{||u||_Phi<=1} |u^T A u|, sampled) and the Lemma 3.13 bound; and the
    minimiser is feasible: with the Lemma 3.13 D rescaled, -D <= A <= D."""
    A = torch.tensor(
        [[4.0, 1.0, 0.5, 0.0], [1.0, 3.0, 0.0, 0.2], [0.5, 0.0, 1.0, 0.1], [0.0, 0.2, 0.1, 0.5]], dtype=F64
    )
    one = torch.zeros(4, dtype=torch.long)
    assert th.phi_smoothness(A, one) == pytest.approx(4 * float(torch.linalg.matrix_norm(A, 2)))
    assert th.phi_smoothness(
        torch.diag(torch.tensor([1.0, -2.0, 3.0], dtype=F64)), torch.arange(3)
    ) == pytest.approx(6.0, rel=1e-6)
    fine, mid = torch.arange(4), torch.tensor([0, 0, 1, 1])
    h_fine, h_mid, h_one = (th.phi_smoothness(A, p) for p in (fine, mid, one))
    assert h_fine <= h_mid * (1 + 1e-7) and h_mid <= h_one * (1 + 1e-7)
    for p, h in ((fine, h_fine), (mid, h_mid)):
        assert h <= th.blockwise_bound(A, p) * (1 + 1e-9)
        u = torch.randn(20000, 4, generator=torch.Generator().manual_seed(1), dtype=F64)
        u = u / phi_norm(u, p)[:, None]
        assert float(((u @ A) * u).sum(1).abs().max()) <= h * (1 + 1e-7)
    # Phi = coordinates, PSD A: h >= max_s s^T A s = ||A||_{inf->1}
    assert h_fine >= th.linf_smoothness(A) * (1 - 1e-7)


def test_noisy_quadratic_oracle_moments():
    """Assumption 3.4 for theory.NoisyQuadratic: the stochastic gradient is unbiased with
    coordinate variance sigma_i^2 (checked within 5 standard errors on 20 000 draws)."""
    A = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=F64)
    p = P.NoisyQuadratic(A, sigma=[0.5, 2.0], x_star=[1.0, -1.0])
    x = torch.tensor([0.3, 0.7], dtype=F64).expand(20000, 2)
    g = p.grad(x) + P.GradientNoise(2, 20000, p.sigma, joint=True).sample()
    mean_err = (g.mean(0) - p.grad(x[0])).abs()
    assert torch.all(mean_err <= 5 * p.sigma / math.sqrt(20000))
    var = ((g - p.grad(x[0])) ** 2).mean(0)
    assert torch.allclose(var, p.sigma**2, rtol=0.05)
    assert float(p.loss(p.x_star)) == 0.0 and p.min_value == 0.0
    assert torch.allclose(p.sigma_blocks(torch.tensor([0, 0])), torch.tensor([math.sqrt(2.125)], dtype=F64))


# ----------------------------------------------------------------------------------------------
# Theorem 3.2 on random quadratics (SignGD from adamlinf.optim)
@settings(max_examples=20, deadline=None, derandomize=True)
@given(d=st.integers(1, 8), T=st.integers(1, 300), log_eta=st.floats(-3, 0.5), seed=st.integers(0, 10_000))
def test_theorem32_holds_on_random_quadratics(d, T, log_eta, seed):
    """Theorem 3.2 (RECONSTRUCTED): SignGD (theory.run_signgd, the functional update of
    adamlinf.optim, equal to optim.SignGD by the test above) on L = 1/2 x^T A x with the exact l_inf
    constant H = ||A||_{inf->1} satisfies
    min_{0<=t<T} ||grad L(x_t)||_1 <= (L(x_0) - min L)/(T eta) + H eta / 2."""
    g = torch.Generator().manual_seed(seed)
    M = torch.randn(d, d, generator=g, dtype=F64)
    A = M @ M.T / d
    eta = 10.0**log_eta
    x0 = 3 * torch.randn(d, generator=g, dtype=F64)
    prob = P.NoisyQuadratic(A)
    out = P.run_signgd(prob, x0, steps=T, lr=eta)
    best = float(out["grad_l1"][:T, 0].min())
    assert best <= th.signgd_bound(float(prob.loss(x0)), T, eta, th.linf_smoothness(A)) * (1 + 1e-10)


# ----------------------------------------------------------------------------------------------
# Theorem 3.5 by Monte Carlo (RMSProp from adamlinf.optim, one row per seed)
@pytest.mark.parametrize("sigma_scale,v0", [(0.0, 1e-3), (0.5, 1e-3), (0.5, 1e2)])
def test_theorem35_holds_monte_carlo(sigma_scale, v0):
    """Theorem 3.5 (RECONSTRUCTED): RMSProp (beta1 = 0, eps = 0, constant eta tuned as in
    Corollary 3.6, beta2 = 1 - log T / T) on a noisy quadratic with coordinate-wise sigma_i:
    min_{T/2 < t <= T} E||grad L(x_t)||_1 (mean over 256 seeds) stays below the bound
    E + sqrt(E S); fails only if it exceeds the bound by more than 3 standard errors."""
    d, T, S = 6, 400, 256
    g = torch.Generator().manual_seed(0)
    M = torch.randn(d, d, generator=g, dtype=F64)
    A = M @ M.T / d + 0.1 * torch.eye(d, dtype=F64)
    sigma = sigma_scale * torch.linspace(0.2, 1.0, d, dtype=F64)
    prob = P.NoisyQuadratic(A, sigma=sigma, x_star=torch.ones(d, dtype=F64))
    Hi = th.coordinatewise_smoothness(A)
    x0 = torch.zeros(d, dtype=F64)
    delta = float(prob.loss(x0))
    eta = th.rmsprop_tuned_lr(delta, T, float(Hi.sum()))
    beta2 = 1 - math.log(T) / T
    # the batched functional RMSProp (equal to optim.RMSProp, see the test above), one row per seed
    out = P.run_blockwise_rmsprop(
        prob, x0, torch.arange(d), steps=T, lr=eta, beta2=beta2, v0=v0, n_seeds=S, seed=0
    )
    norms = out["grad_l1"][1:, 0, :]  # (T, S): ||grad L(x_t)||_1, t = 1..T
    window = norms[T // 2 :]
    measured = window.mean(1) - 3 * window.std(1) / math.sqrt(S)
    bound = th.rmsprop_bound(
        delta=delta,
        T=T,
        eta=eta,
        beta2=beta2,
        H=Hi,
        sigma=sigma,
        v0=v0,
        grad0_inf=float(prob.grad(x0).abs().max()),
    )
    assert float(window.mean(1).min()) > 0
    assert float(measured.min()) <= bound.total


# ----------------------------------------------------------------------------------------------
# the runners agree with the optimizer classes; Theorem 2.2 on a small instance
def test_run_blockwise_rmsprop_matches_optimizer_classes():
    """theory.run_blockwise_rmsprop (functional blockwise update, beta1 = 0) reproduces
    adamlinf.optim.RMSProp (coordinates) and adamlinf.optim.BlockwiseAdam (blocks) step by step,
    and run_signgd reproduces adamlinf.optim.SignGD (deterministic gradients, float64)."""
    from adamlinf import partitions
    from adamlinf.optim import BlockwiseAdam, RMSProp, SignGD

    A = P.random_psd(6, seed=3)
    prob = P.NoisyQuadratic(A)
    x0 = torch.linspace(-1, 1, 6, dtype=F64)
    idx = torch.tensor([0, 0, 1, 1, 1, 2])
    T, lr, beta2, v0 = 30, 0.05, 0.9, 0.3
    for block_index, make in (
        (torch.arange(6), lambda p: RMSProp([p], lr=lr, beta2=beta2, eps=0.0, v0=v0, bias_correction=False)),
        (
            idx,
            lambda p: BlockwiseAdam(
                [p],
                lr=lr,
                betas=(0.0, beta2),
                eps=0.0,
                v0=v0,
                bias_correction=False,
                partition=partitions.custom(idx),
            ),
        ),
    ):
        out = P.run_blockwise_rmsprop(prob, x0, block_index, steps=T, lr=lr, beta2=beta2, v0=v0)
        x = torch.nn.Parameter(x0.clone())
        opt = make(x)
        for _ in range(T):
            x.grad = prob.grad(x.detach())
            opt.step()
        assert float(out["loss"][-1, 0, 0]) == pytest.approx(float(prob.loss(x.detach())), rel=1e-10)
    out = P.run_signgd(prob, x0, steps=T, lr=[0.01, 0.1])
    x = torch.nn.Parameter(x0.clone())
    opt = SignGD([x], lr=0.1)
    for _ in range(T):
        x.grad = prob.grad(x.detach())
        opt.step()
    assert float(out["loss"][-1, 1]) == pytest.approx(float(prob.loss(x.detach())), rel=1e-12)


def test_phi_smoothness_matches_grid_search():
    """Definition 3.9: theory.phi_smoothness (local minimisation over r) agrees with a brute-force
    grid over (r_2/r_1, r_3/r_1) for B = 3 blocks: never above the grid minimum (which is feasible)
    and within 1% of it (the grid's resolution), for PSD and indefinite Hessians."""
    idx = torch.tensor([0, 0, 1, 1, 2, 2])
    db = np.array([2.0, 2.0, 2.0])
    z = np.linspace(-4, 4, 81)
    for seed, shift in ((0, 0.0), (1, 0.3)):
        A = P.random_psd(6, seed=seed) - shift * torch.eye(6, dtype=F64)
        An = A.numpy()
        best = math.inf
        for a in z:
            for b in z:
                r = np.exp(np.array([0.0, a, b]))
                s = 1 / np.sqrt(r[idx.numpy()])
                best = min(
                    best, (db * r).sum() * np.abs(np.linalg.eigvalsh(An * s[:, None] * s[None, :])).max()
                )
        ex = th.phi_smoothness(A, idx)
        assert ex <= best * (1 + 1e-9)
        assert ex >= best * (1 - 1e-2)


def test_noisy_quadratic_from_rotated_quadratic_keeps_the_rotation():
    """NoisyQuadratic.from_quadratic keeps the Quadratic's rotation (start maps x0 to R^T x0),
    Hessian and theta; the A-constructor keeps the given matrix exactly and agrees in loss and gradient."""
    q = P.Quadratic(P.power_law_spectrum(5, 2.0), exp_rotation(5, 0.5, seed=3, dtype=F64))
    q.theta = 0.5
    n = P.NoisyQuadratic.from_quadratic(q, sigma=0.1)
    x = torch.randn(3, 5, generator=torch.Generator().manual_seed(0), dtype=F64)
    assert torch.equal(n.start(x), q.start(x)) and n.theta == 0.5
    assert torch.equal(n.A, q.hessian) and torch.allclose(n.sigma, torch.full((5,), 0.1, dtype=F64))
    m = P.NoisyQuadratic(q.hessian, x_star=torch.ones(5, dtype=F64))
    assert torch.equal(m.A, q.hessian)
    assert torch.allclose(m.loss(x + 1), q.loss(x), rtol=1e-12) and torch.allclose(
        m.grad(x + 1), q.grad(x), rtol=1e-12
    )
