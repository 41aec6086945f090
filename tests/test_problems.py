"""Tests of adamlinf.problems: the quadratics and the one-run reference problems.run."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from adamlinf import problems as P
from adamlinf import theory as th
from adamlinf.rotations import exp_rotation

F64 = torch.float64


def test_run_on_a_matrix_is_gradient_descent_in_closed_form():
    """problems.run on a matrix A: SGD without momentum gives x_t = (I - lr A)^t x0 and L = x^T A x / 2."""
    A = P.random_psd(5, seed=1)
    x0 = torch.linspace(-1.0, 2.0, 5, dtype=F64)
    out = P.run(A, x0, "sgd", steps=20, lr=0.3, momentum=0.0, iterates=True)
    M = torch.eye(5, dtype=F64) - 0.3 * A
    want = torch.stack([torch.linalg.matrix_power(M, t) @ x0 for t in range(21)])
    torch.testing.assert_close(out["x"], want, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(out["loss"], 0.5 * ((want @ A) * want).sum(1), rtol=1e-12, atol=1e-15)
    assert out["x"].shape == (21, 5) and out.t.tolist() == list(range(21)) and out["lr"].tolist() == [0.3]


def test_cosine_factor():
    assert P.lr_factor("cosine", 1, 10) == 1.0
    assert P.lr_factor("cosine", 6, 10) == pytest.approx(0.5)
    assert 0 < P.lr_factor("cosine", 10, 10) < 0.03
    assert P.lr_factor("constant", 7, 10) == 1.0


# ---------------------------------------------------------------------------------------------
# the problem
# ---------------------------------------------------------------------------------------------
def test_rotated_hessian_is_RT_H_R_autograd():
    d, theta = 9, 0.3
    lam = P.power_law_spectrum(d, 1.0)
    R = exp_rotation(d, theta, seed=3, dtype=F64)
    q = P.Quadratic(lam, R)
    x = torch.randn(d, dtype=F64, generator=torch.Generator().manual_seed(0))

    def composed(z):  # L_theta(z) = L(R z), written as a composition
        y = R @ z
        return 0.5 * (y * lam * y).sum()

    H_auto = torch.func.hessian(composed)(x)
    np.testing.assert_allclose(H_auto, R.T @ torch.diag(lam) @ R, atol=1e-13)
    np.testing.assert_allclose(q.hessian, H_auto, atol=1e-13)
    np.testing.assert_allclose(torch.func.hessian(q.loss)(x), H_auto, atol=1e-13)
    np.testing.assert_allclose(q.grad(x), torch.func.grad(composed)(x), atol=1e-13)
    assert float(q.loss(x)) == pytest.approx(float(composed(x)), rel=1e-13)
    # batched grad = row-wise grad
    X = torch.randn(4, d, dtype=F64)
    np.testing.assert_allclose(q.grad(X), torch.stack([q.grad(r) for r in X]), atol=1e-14)


@settings(max_examples=15, deadline=None)
@given(d=st.integers(2, 20), alpha=st.floats(0.0, 2.0), seed=st.integers(0, 100))
def test_norms_theta0_trace_and_spectral(d, alpha, seed):
    """Unrotated ||H||_{1,1} = trace; rotated, it is the entry sum (>= trace) and ||H||_2 = max lambda."""
    lam = P.power_law_spectrum(d, alpha)
    assert th.l11_exact(P.Quadratic(lam).hessian) == pytest.approx(float(lam.sum()), rel=1e-12)
    H = P.Quadratic(lam, exp_rotation(d, 0.7, seed=seed, dtype=F64)).hessian
    brute = sum(abs(float(H[i, j])) for i in range(d) for j in range(d))
    assert th.l11_exact(H) == pytest.approx(brute, rel=1e-12) and brute >= float(lam.sum()) * (1 - 1e-12)
    assert th.l2_smoothness(H) == pytest.approx(float(lam.max()), rel=1e-9)


def test_haar_like_rotation_raises_l11_above_spectral():
    """The documented default spectrum: ||H||_{1,1}/d < ||H||_2 unrotated, > after a large rotation."""
    d = 200
    lam = P.power_law_spectrum(d, 0.5)
    H0, H1 = P.Quadratic(lam).hessian, P.Quadratic(lam, exp_rotation(d, 1.0, dtype=F64)).hessian
    assert th.l11_exact(H0) / d < th.l2_smoothness(H0) == 1.0
    assert th.l11_exact(H1) / d > th.l2_smoothness(H1)


def test_noise_variance_and_streams():
    d, sigma = 4000, 0.3
    noise = P.GradientNoise(d, 3, sigma, base_seed=5)
    draws = torch.cat([noise.sample() for _ in range(10)])  # (30, d)
    n = draws.numel()
    var = float(draws.pow(2).mean())
    # var * n / sigma^2 ~ chi2(n): 6 standard deviations
    assert abs(var / sigma**2 - 1) < 6 * math.sqrt(2 / n)
    assert abs(float(draws.mean())) < 6 * sigma / math.sqrt(n)
    # stream s does not depend on how many streams run together
    solo = P.GradientNoise(d, 3, sigma, base_seed=5)
    first = P.GradientNoise(d, 3, sigma, base_seed=5).sample()
    assert torch.equal(solo.sample(2), first[2])
    assert not torch.allclose(first[0], first[1])
    assert torch.count_nonzero(P.GradientNoise(d, 1, 0.0).sample()) == 0


def test_bad_input_raises():
    with pytest.raises(ValueError):
        P.power_law_spectrum(0)
    with pytest.raises(ValueError):
        P.power_law_spectrum(5, -1.0)
    with pytest.raises(ValueError):
        P.Quadratic(torch.ones(3), rotation=torch.eye(4, dtype=F64))
    with pytest.raises(ValueError):
        P.GradientNoise(3, 1, -1.0)
    with pytest.raises(ValueError):
        P.Quadratic(torch.ones(3, dtype=F64)).grad(torch.ones(4, dtype=F64))


# ---------------------------------------------------------------------------------------------
# spectra and rotations of the Table 1 sweep
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(P.SPECTRA))
def test_spectra_normalised_and_sorted(name):
    d = 50
    lam = P.spectrum(name, d)
    assert lam.shape == (d,) and lam.dtype == F64
    assert float(lam.max()) == 1.0 == float(lam[0])
    assert bool((lam > 0).all()) and bool((lam[1:] <= lam[:-1]).all())


def test_spectra_closed_forms():
    d = 10
    np.testing.assert_allclose(P.spectrum("i^-1/2", d), 1 / np.sqrt(np.arange(1, d + 1)), rtol=1e-15)
    np.testing.assert_allclose(P.spectrum("1/i", d), 1 / np.arange(1, d + 1), rtol=1e-15)
    np.testing.assert_allclose(P.spectrum("1/i^2", d), 1 / np.arange(1, d + 1) ** 2, rtol=1e-15)
    np.testing.assert_allclose(P.spectrum("log-uniform", d), np.logspace(0, -3, d), rtol=1e-14)
    np.testing.assert_allclose(P.spectrum("i/d", d), np.arange(d, 0, -1) / d, rtol=1e-15)
    lu = P.spectrum("log-uniform", 7).numpy()
    np.testing.assert_allclose(np.diff(np.log10(lu)), -0.5, rtol=1e-12)  # equal log gaps, [1e-3, 1]
    with pytest.raises(ValueError):
        P.spectrum("1/i^3", d)
    with pytest.raises(ValueError):
        P.spectrum("1/i", 0)


def test_rotated_family_norms_against_dense_numpy():
    d = 24
    rots = P.rotation_path(d, [0.02, 0.5], seed=4, haar_seed=5)
    assert [th for th, _ in rots][0] == 0.0 and math.isinf(rots[-1][0]) and rots[0][1] is None
    lam = P.spectrum("1/i", d)
    fam = P.rotated_family(lam, rots, spectrum="1/i")
    L = np.diag(lam.numpy())
    l11 = []
    for q, (theta, R) in zip(fam, rots, strict=True):
        assert q.theta == theta and q.spectrum == "1/i"
        Rn = np.eye(d) if R is None else R.numpy()
        np.testing.assert_allclose(Rn @ Rn.T, np.eye(d), atol=1e-12)
        H = Rn.T @ L @ Rn
        np.testing.assert_allclose(q.hessian.numpy(), H, atol=1e-14)
        l11.append(np.abs(H).sum() / d)
    # diagonal: trace/d; rotating only raises the (1,1)-norm of a PSD matrix, most for Haar
    assert l11[0] == pytest.approx(float(lam.mean()), rel=1e-14)
    assert l11[0] < l11[1] < l11[2] and l11[0] < l11[3]
    # R_theta = exp(theta S) is shared by every spectrum built on the same path
    fam2 = P.rotated_family(P.spectrum("i/d", d), rots, spectrum="i/d")
    assert fam2[1].rotation is fam[1].rotation
    with pytest.raises(ValueError):
        P.rotation_path(d, [0.0])
