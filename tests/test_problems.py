"""Tests of adamlinf.problems: the Section 4.1 quadratic and its batched runner."""
import math

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings, strategies as st

from adamlinf import problems as P
from adamlinf.rotations import exp_rotation

F64 = torch.float64


def small_experiment(sigma=1e-2, thetas=(0.05, 1.0), d=12, n_lr=2):
    grids = {"adam": [1e-3, 1e-1, n_lr], "adasgd": [1e-3, 1e-1, n_lr], "sgd": [1e-2, 0.5, n_lr],
             "signgd": [1e-3, 1e-1, n_lr]}
    return P.build_experiment(d=d, alpha=0.5, thetas=thetas, sigma=sigma, lr_grids=grids)


def curve(res, row, lr, seed):
    c = res.curves
    sel = c[(c["row"] == row.name) & (c["column"] == row.column) & (c["lr"] == lr) & (c["seed"] == seed)]
    return sel.sort_values("step")["loss"].to_numpy()


# ---------------------------------------------------------------------------------------------
# batched runner == optimizer classes one by one
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sigma,schedule", [(0.0, "constant"), (2e-2, "constant"), (2e-2, "cosine")])
def test_batched_equals_optimizer_classes(sigma, schedule):
    exp = small_experiment(sigma=sigma)
    T = 80
    res = P.run_batched(exp, steps=T, n_seeds=2, record_every=1, schedule=schedule)
    assert len(res.final) == sum(len(r.lrs) for r in exp.rows) * 2
    checked = 0
    for row in exp.rows:
        for lr in (row.lrs[0], row.lrs[-1]):
            seed = 1
            ref = P.run_one_by_one(exp.problems[row.problem], exp.x0, row.optimizer, lr=lr,
                                   beta1=row.beta1, beta2=row.beta2, steps=T, sigma=sigma, seed_index=seed,
                                   schedule=schedule)
            got = curve(res, row, lr, seed)
            assert got.shape == ref.shape == (T + 1,)
            # relative 1e-10, and round-off on the scale of the problem (losses far below L(x0)
            # are compared to 1e-13 L(x0) absolute)
            np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-13 * ref[0])
            checked += 1
    assert checked == 2 * len(exp.rows)


def test_batched_equals_torch_optim():
    """Adam and SGD rows also equal torch.optim.Adam / torch.optim.SGD themselves."""
    exp = small_experiment(sigma=1e-2)
    T = 60
    res = P.run_batched(exp, steps=T, n_seeds=1, record_every=1)
    for row in exp.rows:
        if row.optimizer not in ("adam", "sgd"):
            continue
        lr = row.lrs[-1]
        ref = P.run_one_by_one(exp.problems[row.problem], exp.x0, row.optimizer, lr=lr, beta1=row.beta1,
                               beta2=row.beta2, steps=T, sigma=exp.sigma, use_torch_optim=True)
        np.testing.assert_allclose(curve(res, row, lr, 0), ref, rtol=1e-10, atol=1e-13 * ref[0])


def test_cosine_factor():
    assert P.lr_factor("cosine", 1, 10) == 1.0
    assert P.lr_factor("cosine", 6, 10) == pytest.approx(0.5)
    assert 0 < P.lr_factor("cosine", 10, 10) < 0.03
    assert P.lr_factor("constant", 7, 10) == 1.0


def test_final_loss_is_mean_of_last_window():
    exp = small_experiment(sigma=1e-2)
    T, w = 40, 5
    res = P.run_batched(exp, steps=T, n_seeds=1, record_every=1, final_window=w)
    row = exp.rows[1]
    c = curve(res, row, row.lrs[0], 0)
    f = res.final
    got = f[(f["row"] == row.name) & (f["column"] == row.column) & (f["lr"] == row.lrs[0])]
    assert got["final_loss"].item() == pytest.approx(c[-w:].mean(), rel=1e-12)
    assert got["last_loss"].item() == pytest.approx(c[-1], rel=1e-12)


# ---------------------------------------------------------------------------------------------
# the problem
# ---------------------------------------------------------------------------------------------
def test_rotated_hessian_is_RT_H_R_autograd():
    d, theta = 9, 0.3
    lam = P.power_law_spectrum(d, 1.0)
    q = P.RotatedQuadratic(lam, theta, seed=3)
    R = exp_rotation(d, theta, seed=3, dtype=F64)
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
    lam = P.power_law_spectrum(d, alpha)
    q0 = P.RotatedQuadratic(lam, 0.0, seed=seed)
    assert torch.equal(q0.rotation, torch.eye(d, dtype=F64))
    trace = float(lam.sum())
    assert q0.l11_per_dim() * d == pytest.approx(trace, rel=1e-12)
    assert P.Quadratic(lam).l11_per_dim() * d == pytest.approx(trace, rel=1e-12)
    q = P.RotatedQuadratic(lam, 0.7, seed=seed)
    # ||A||_{1,1} >= sum_i |A_ii| = trace for PSD A, and equals the brute-force sum
    H = q.hessian
    assert q.l11_per_dim() * d >= trace * (1 - 1e-12)
    assert q.l11_per_dim() == pytest.approx(sum(abs(float(H[i, j])) for i in range(d) for j in range(d)) / d,
                                            rel=1e-12)
    assert q.spectral_norm() == pytest.approx(float(lam.max()), rel=1e-9)


def test_haar_like_rotation_raises_l11_above_spectral():
    """The documented default spectrum: ||H||_{1,1}/d < ||H||_2 unrotated, > after a large rotation."""
    lam = P.power_law_spectrum(200, 0.5)
    q0, q1 = P.Quadratic(lam), P.RotatedQuadratic(lam, 1.0)
    assert q0.l11_per_dim() < q0.spectral_norm() == 1.0
    assert q1.l11_per_dim() > q1.spectral_norm()


def test_initial_losses_equal_across_rotations():
    exp = small_experiment(thetas=(1e-3, 0.1, 1.0))
    res = P.run_batched(exp, steps=3, n_seeds=1)
    init = res.final["initial_loss"].to_numpy()
    L0 = float(exp.problems[0].loss(exp.x0))
    np.testing.assert_allclose(init, L0, rtol=1e-12)
    for p in exp.problems[1:]:
        assert not torch.allclose(p.start(exp.x0), exp.x0)  # it really is a different point


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
    assert torch.equal(solo.sample_one(2), first[2])
    assert not torch.allclose(first[0], first[1])
    assert torch.count_nonzero(P.GradientNoise(d, 1, 0.0).sample()) == 0


# ---------------------------------------------------------------------------------------------
# rotation equivariance (Section 2): AdaSGD and SGD do not see theta, Adam does
# ---------------------------------------------------------------------------------------------
def test_adasgd_rotation_invariant_adam_not():
    d = 16
    lam = P.power_law_spectrum(d, 0.5)
    problems = [P.Quadratic(lam)] + [P.RotatedQuadratic(lam, th, seed=1) for th in (0.01, 0.2, 2.0)]
    x0 = torch.randn(d, dtype=F64, generator=torch.Generator().manual_seed(0))
    rows = []
    for k in range(len(problems)):
        rows.append(P.Row(f"AdaSGD{k}", "adasgd", k, 0.9, 0.99, (3e-2, 1e-1), "beta1=0.9"))
        rows.append(P.Row(f"AdaSGD0-{k}", "adasgd", k, 0.0, 0.99, (1e-1,), "beta1=0"))
        rows.append(P.Row(f"SGD{k}", "sgd", k, 0.9, 0.0, (0.1,), "beta1=0.9"))
        rows.append(P.Row(f"Adam{k}", "adam", k, 0.9, 0.99, (3e-2,), "beta1=0.9"))
    exp = P.Experiment(problems, rows, x0, sigma=0.0)
    res = P.run_batched(exp, steps=150, n_seeds=1, record_every=1)
    c = res.curves.set_index(["row", "lr", "step"])["loss"].sort_index()
    for name, lrs in (("AdaSGD", (3e-2, 1e-1)), ("AdaSGD0-", (1e-1,)), ("SGD", (0.1,))):
        for lr in lrs:
            ref = c.loc[(f"{name}0", lr)].to_numpy()
            assert ref[-1] < 1e-3 * ref[0]  # it does optimise
            for k in range(1, len(problems)):
                np.testing.assert_allclose(c.loc[(f"{name}{k}", lr)].to_numpy(), ref, rtol=1e-9)
    adam0 = c.loc[("Adam0", 3e-2)].to_numpy()
    adam_haar = c.loc[(f"Adam{len(problems) - 1}", 3e-2)].to_numpy()
    assert np.max(np.abs(adam_haar - adam0) / adam0) > 1e-2


# ---------------------------------------------------------------------------------------------
# tables
# ---------------------------------------------------------------------------------------------
def test_tune_and_table1_pick_best_mean():
    rows = []
    for lr_i, (lr, losses) in enumerate([(1e-3, [3.0, 5.0]), (1e-2, [1.0, 2.0]), (1e-1, [np.nan, 0.1])]):
        for s, loss in enumerate(losses):
            rows.append(dict(row="Adam", optimizer="adam", problem=0, theta=0.0, column="beta1=0",
                             beta1=0.0, beta2=0.99, lr=lr, lr_index=lr_i, seed=s, final_loss=loss,
                             diverged=not np.isfinite(loss)))
    final = pd.DataFrame(rows)
    best = P.tune(final)
    assert len(best) == 1
    b = best.iloc[0]
    assert b["best_lr"] == 1e-2 and b["mean"] == 1.5 and b["std"] == 0.5 and not b["lr_at_edge"]
    geo = pd.DataFrame([{"problem": 0, "theta": 0.0, "l11_per_dim": 0.2, "spectral_norm": 1.0}])
    tab = P.table1(best, geo)
    assert tab.loc[0, "loss_mean[beta1=0]"] == 1.5 and tab.loc[0, "l11_per_dim"] == 0.2


def test_paper_verdict_logic():
    tab = pd.DataFrame({
        "Optimizer": ["AdaSGD", "Adam", "Adam (θ=1)"], "theta": [0, 0, 1],
        "l11_per_dim": [0.1, 0.1, 2.0], "spectral_norm": [1.0, 1.0, 1.0],
        "loss_mean[c]": [1.0, 0.5, 0.7]})
    v = P.paper_verdict(tab, "c")
    assert list(v["adam_beats_adasgd"]) == [True, True]
    assert list(v["l11_below_spectral"]) == [True, False]
    assert list(v["agrees_with_paper"]) == [True, False]


def test_bad_input_raises():
    with pytest.raises(ValueError):
        P.power_law_spectrum(0)
    with pytest.raises(ValueError):
        P.power_law_spectrum(5, -1.0)
    with pytest.raises(ValueError):
        P.Quadratic(torch.ones(3), rotation=torch.eye(4, dtype=F64))
    with pytest.raises(ValueError):
        P.RotatedQuadratic(torch.ones(3, dtype=F64), -0.1)
    with pytest.raises(ValueError):
        P.Row("x", "lamb", 0, 0.9, 0.99, (1e-3,), "c")
    with pytest.raises(ValueError):
        P.Row("x", "adam", 0, 1.0, 0.99, (1e-3,), "c")
    with pytest.raises(ValueError):
        P.Row("x", "adam", 0, 0.9, 0.99, (), "c")
    with pytest.raises(ValueError):
        P.GradientNoise(3, 1, -1.0)
    exp = small_experiment()
    with pytest.raises(ValueError):
        P.run_batched(exp, steps=0)
    with pytest.raises(ValueError):
        P.run_batched(exp, steps=5, final_window=6)
    with pytest.raises(ValueError):
        P.run_batched(exp, steps=5, schedule="step")
    with pytest.raises(ValueError):
        P.Quadratic(torch.ones(3, dtype=F64)).grad(torch.ones(4, dtype=F64))
