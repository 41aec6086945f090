"""Theorem 2.2 (RECONSTRUCTED statement, see the book's reconstruction notes), checked numerically in float64.

SGD (with momentum) and AdaSGD are rotation-equivariant: on L o R from R^T x0 their iterates are
exactly R^T x_t. Adam and SignGD are permutation-equivariant only: under a generic rotation the gap
is of the order of the distance travelled, and in 2-D it has a closed form.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from adamlinf.optim import Adam, AdaSGD, SignGD
from adamlinf.rotations import (
    PermuteRotate,
    equivariance_gap,
    exp_rotation,
    haar,
    random_permutation,
)

F64 = torch.float64

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: threads only add spin-waits
D = 24
STEPS = 40


def make_loss(d=D, seed=0, n_rows=64, batch=16):
    r"""A random smooth stochastic loss L_t(x) = mean_{i in B_t} softplus(a_i^T x + b_i)
    + mean_j logcosh(c_j^T x - e_j) + (mu/2)||x||^2, the minibatch B_t fixed by t."""
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(n_rows, d, generator=g, dtype=F64) / math.sqrt(d)
    b = torch.randn(n_rows, generator=g, dtype=F64)
    C = torch.randn(8, d, generator=g, dtype=F64) / math.sqrt(d)
    e = torch.randn(8, generator=g, dtype=F64)

    def loss(x, t):
        rows = torch.randperm(n_rows, generator=torch.Generator().manual_seed(1000 * seed + t))[:batch]
        z = C @ x - e
        logcosh = z + F.softplus(-2 * z) - math.log(2.0)
        return F.softplus(A[rows] @ x + b[rows]).mean() + logcosh.mean() + 0.05 * (x @ x)

    return loss


def x_start(d=D, seed=0):
    return torch.randn(d, generator=torch.Generator().manual_seed(10 + seed), dtype=F64)


def sgd(params):
    return torch.optim.SGD(params, lr=0.3, momentum=0.9)


def adasgd_paper(params):
    return AdaSGD(params, lr=0.05, betas=(0.9, 0.99), eps=0.0, eps_root=1e-8, v0=1e-3, bias_correction=False)


def adasgd_torch_form(params):
    return AdaSGD(params, lr=0.05, betas=(0.9, 0.95), eps=1e-8)


def adam(params):
    return Adam(params, lr=0.05, betas=(0.9, 0.99), eps=1e-8)


def signgd(params):
    return SignGD(params, lr=0.02)


ROT_EQUIVARIANT = {"sgd_momentum": sgd, "adasgd_paper": adasgd_paper, "adasgd_torch": adasgd_torch_form}
PERM_ONLY = {"adam": adam, "signgd": signgd}


@pytest.mark.parametrize("name", list(ROT_EQUIVARIANT))
def test_sgd_and_adasgd_are_rotation_equivariant(name):
    R = haar(D, seed=1, dtype=F64)
    res = equivariance_gap(ROT_EQUIVARIANT[name], make_loss(), x_start(), R, STEPS)
    moved = (res.xs - res.xs[0]).norm(dim=1).max().item()
    assert moved > 0.5  # the run really moves
    assert res.gap < 1e-10, res.gap
    assert res.gaps.shape == (STEPS + 1,) and res.gaps[0].item() < 1e-14


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 10**6), name=st.sampled_from(list(ROT_EQUIVARIANT)))
def test_rotation_equivariance_random_losses_and_rotations(seed, name):
    R = haar(D, seed=seed, dtype=F64)
    res = equivariance_gap(ROT_EQUIVARIANT[name], make_loss(seed=seed), x_start(seed=seed), R, 20)
    assert res.gap < 1e-10


def test_sgd_equivariant_under_permute_rotate_object():
    R = PermuteRotate(D, k=2, seed=4, dtype=F64, dense_max=4)  # pieces (2,2,6) + ... : a real D.1 map
    assert len(R.pieces) >= 1 and R.pieces[0] != (1, 1, D)
    res = equivariance_gap(sgd, make_loss(), x_start(), R, STEPS)
    assert res.gap < 1e-10


@pytest.mark.parametrize("name", list(PERM_ONLY))
def test_adam_and_signgd_are_permutation_equivariant(name):
    P = random_permutation(D, seed=3, dtype=F64)
    res = equivariance_gap(PERM_ONLY[name], make_loss(), x_start(), P, STEPS)
    assert res.gap < 1e-12
    # the same permutation given as a dense 0/1 matrix
    Pm = P.apply(torch.eye(D, dtype=F64)).T
    res2 = equivariance_gap(PERM_ONLY[name], make_loss(), x_start(), Pm, STEPS)
    assert res2.gap < 1e-12


@pytest.mark.parametrize("name", list(PERM_ONLY))
def test_adam_and_signgd_are_not_rotation_equivariant(name):
    R = haar(D, seed=1, dtype=F64)
    res = equivariance_gap(PERM_ONLY[name], make_loss(), x_start(), R, STEPS)
    # a measured gap of the order of the distance travelled, 10 orders above rounding
    assert res.relative_gap > 0.1, res.relative_gap
    assert res.gap > 1e-2
    # the rotation-equivariant optimizers stay at rounding level on the same problem
    assert equivariance_gap(adasgd_torch_form, make_loss(), x_start(), R, STEPS).gap < 1e-10


def test_adam_gap_grows_from_zero_along_exp_rotation_family():
    """R_theta = exp(theta S): no gap at theta = 0 (R = I), a small one near it, a large one far."""
    gaps = []
    for theta in [0.0, 1e-4, 1.0]:
        R = exp_rotation(D, theta, seed=2, dtype=F64)
        gaps.append(equivariance_gap(adam, make_loss(), x_start(), R, 20).gap)
    assert gaps[0] == 0.0
    assert 0 < gaps[1] < 1e-2 < gaps[2]


def test_two_dimensional_counterexample_closed_form():
    r"""The counterexample of Appendix A (our choice of loss): L(x) = g^T x with g = (1, 2) and R the
    45-degree rotation. One SignGD step on L moves by -eta sign(g) = -eta (1, 1); on L o R it moves by
    -eta sign(R^T g) = -eta (1, 1) as well, so the gap is eta ||R^T(1,1) - (1,1)|| = eta ||(sqrt2, 0)
    - (1, 1)|| = eta sqrt((sqrt2 - 1)^2 + 1). Adam's first step (paper form, eps = v0 = 0) is SignGD's
    times (1 - beta1)/sqrt(1 - beta2)."""
    c = s = 1 / math.sqrt(2)
    R = torch.tensor([[c, -s], [s, c]], dtype=F64)
    gvec = torch.tensor([1.0, 2.0], dtype=F64)
    lin = lambda x, t: gvec @ x  # noqa: E731
    x0 = torch.tensor([0.3, -0.7], dtype=F64)
    eta = 0.1
    expected = eta * math.sqrt((math.sqrt(2) - 1) ** 2 + 1)
    assert math.isclose(
        equivariance_gap(lambda p: SignGD(p, lr=eta), lin, x0, R, 1).gap, expected, rel_tol=1e-12
    )
    b1, b2 = 0.9, 0.99
    gap = equivariance_gap(
        lambda p: Adam(p, lr=eta, betas=(b1, b2), eps=0.0, bias_correction=False), lin, x0, R, 1
    ).gap
    assert math.isclose(gap, expected * (1 - b1) / math.sqrt(1 - b2), rel_tol=1e-12)
    b1, b2 = 0.5, 0.99  # (1 - b1)/sqrt(1 - b2) = 5: the paper form's first step is 5 SignGD steps
    gap = equivariance_gap(
        lambda p: Adam(p, lr=eta, betas=(b1, b2), eps=0.0, bias_correction=False), lin, x0, R, 1
    ).gap
    assert math.isclose(gap, 5 * expected, rel_tol=1e-12)
    # the torch form's first step is exactly a SignGD step (m/c1 = g, sqrt(v/c2) = |g|)
    gap = equivariance_gap(lambda p: Adam(p, lr=eta, betas=(b1, b2), eps=0.0), lin, x0, R, 1).gap
    assert math.isclose(gap, expected, rel_tol=1e-12)
    # SGD and AdaSGD: zero gap on the same example
    assert equivariance_gap(lambda p: torch.optim.SGD(p, lr=eta, momentum=0.9), lin, x0, R, 3).gap < 1e-15
    assert (
        equivariance_gap(lambda p: AdaSGD(p, lr=eta, eps=0.0, bias_correction=False), lin, x0, R, 3).gap
        < 1e-15
    )


def test_equivariance_gap_bad_input():
    with pytest.raises(ValueError):
        equivariance_gap(sgd, make_loss(), x_start().view(1, -1), haar(D, seed=0, dtype=F64), 3)
    with pytest.raises(ValueError):
        equivariance_gap(sgd, make_loss(), x_start(), haar(D + 1, seed=0, dtype=F64), 3)
    with pytest.raises(ValueError):
        equivariance_gap(sgd, make_loss(), x_start(), haar(D, seed=0, dtype=F64), -1)


def test_relative_gap_divides_by_the_largest_displacement():
    """relative_gap = gap / max_t ||x_t - x_0||, on the same run."""
    R = haar(D, seed=1, dtype=F64)
    res = equivariance_gap(adam, make_loss(), x_start(), R, STEPS)
    assert res.relative_gap == res.gap / (res.xs - res.xs[0]).norm(dim=1).max().item()


def test_iterate_normalisation_matches_the_quadratic_definition():
    """On L(x) = 1/2 x^T A x with full gradients, gap / max_t ||x_t|| (the Theorem 2.2 page's normalisation)
    is max_t ||x~_t - R^T x_t|| / max_t ||x_t||, computed here independently from two explicit runs."""
    d, T, lr = 8, 20, 0.05
    A = torch.diag(torch.arange(1, d + 1, dtype=F64) ** -0.5)
    x0 = torch.randn(d, generator=torch.Generator().manual_seed(0), dtype=F64)
    R = haar(d, seed=1, dtype=F64)

    def traj(H, start):
        x = torch.nn.Parameter(start.clone())
        opt = Adam([x], lr=lr, betas=(0.9, 0.99), eps=0.0, eps_root=1e-12, bias_correction=False)
        out = [x.detach().clone()]
        for _ in range(T):
            x.grad = H @ x.detach()
            opt.step()
            out.append(x.detach().clone())
        return torch.stack(out)

    xs, xr = traj(A, x0), traj(R.T @ A @ R, R.T @ x0)
    want = float((xr - xs @ R).norm(dim=1).max() / xs.norm(dim=1).max())
    res = equivariance_gap(
        lambda p: Adam(p, lr=lr, betas=(0.9, 0.99), eps=0.0, eps_root=1e-12, bias_correction=False),
        lambda x, t: 0.5 * x @ (A @ x),
        x0,
        R,
        T,
    )
    assert want > 1e-2
    assert math.isclose(res.gap / res.xs.norm(dim=1).max().item(), want, rel_tol=1e-9)
