"""Tests of adamlinf.studies.quadratic (Table 1): its batched runs against the optimizer classes, the
round-off-free metric, verdicts, the sweep."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from adamlinf import problems as P
from adamlinf.rotations import exp_rotation
from adamlinf.studies import quadratic as SQ
from adamlinf.studies.verdicts import PAIR_RULE, VERDICT_COLUMNS, Measured, compare, concordant, decide

F64 = torch.float64


def small_experiment(sigma=1e-2, thetas=(0.05, 1.0), d=12, n_lr=2):
    """Table 1's layout: AdaSGD, Adam on each rotation, SGD and SignGD, in the columns beta1 = 0 and 0.9."""
    problems = P.rotated_family(P.power_law_spectrum(d, 0.5), P.rotation_path(d, thetas))
    x0 = torch.randn(d, generator=torch.Generator().manual_seed(0), dtype=F64)
    grid, sgd_grid = tuple(np.geomspace(1e-3, 1e-1, n_lr)), tuple(np.geomspace(1e-2, 0.5, n_lr))
    rows = []
    for col, b1 in (("beta1=0", 0.0), ("beta1=0.9", 0.9)):
        rows.append(SQ.Row("AdaSGD", "adasgd", 0, b1, 0.99, grid, col))
        rows += [SQ.Row(f"Adam{k}", "adam", k, b1, 0.99, grid, col) for k in range(len(problems))]
        rows.append(SQ.Row("SGD", "sgd", 0, b1, 0.0, sgd_grid, col))
        if b1 == 0:
            rows.append(SQ.Row("SignGD", "signgd", 0, 0.0, 0.0, grid, col))
    return SQ.Experiment(problems, rows, x0, sigma)


def one_by_one(problem, x0, row, lr, **kw):
    """The losses of one run of ``row`` with an optimizer class (problems.run: autograd gradients)."""
    out = P.run(problem, x0, row.optimizer, lr=lr, betas=(row.beta1, row.beta2), momentum=row.beta1, **kw)
    return out["loss"].numpy()


def curve(curves, row, lr, seed):
    c = curves
    sel = c[(c["row"] == row.name) & (c["column"] == row.column) & (c["lr"] == lr) & (c["seed"] == seed)]
    return sel.sort_values("step")["loss"].to_numpy()


@pytest.mark.parametrize("sigma,schedule", [(0.0, "constant"), (2e-2, "constant"), (2e-2, "cosine")])
def test_batched_equals_optimizer_classes(sigma, schedule):
    exp = small_experiment(sigma=sigma)
    T = 80
    final, curves = SQ.run_experiment(exp, steps=T, n_seeds=2, record_every=1, schedule=schedule)
    assert len(final) == sum(len(r.lrs) for r in exp.rows) * 2
    checked = 0
    for row in exp.rows:
        for lr in (row.lrs[0], row.lrs[-1]):
            seed = 1
            prob = exp.problems[row.problem]
            ref = one_by_one(prob, exp.x0, row, lr, steps=T, sigma=sigma, seed_index=seed, schedule=schedule)
            got = curve(curves, row, lr, seed)
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
    final, curves = SQ.run_experiment(exp, steps=T, n_seeds=1, record_every=1)
    for row in exp.rows:
        if row.optimizer not in ("adam", "sgd"):
            continue
        lr = row.lrs[-1]

        def make(ps, row=row, lr=lr):
            if row.optimizer == "adam":
                return torch.optim.Adam(ps, lr=lr, betas=(row.beta1, row.beta2), eps=1e-8, foreach=False)
            return torch.optim.SGD(ps, lr=lr, momentum=row.beta1, foreach=False)

        ref = P.run(exp.problems[row.problem], exp.x0, make, steps=T, lr=lr, sigma=exp.sigma)["loss"].numpy()
        np.testing.assert_allclose(curve(curves, row, lr, 0), ref, rtol=1e-10, atol=1e-13 * ref[0])


def test_final_loss_is_mean_of_last_window():
    exp = small_experiment(sigma=1e-2)
    T, w = 40, 5
    final, curves = SQ.run_experiment(exp, steps=T, n_seeds=1, record_every=1, final_window=w)
    row = exp.rows[1]
    c = curve(curves, row, row.lrs[0], 0)
    f = final
    got = f[(f["row"] == row.name) & (f["column"] == row.column) & (f["lr"] == row.lrs[0])]
    assert got["final_loss"].item() == pytest.approx(c[-w:].mean(), rel=1e-12)
    assert got["last_loss"].item() == pytest.approx(c[-1], rel=1e-12)


def test_initial_losses_equal_across_rotations():
    exp = small_experiment(thetas=(1e-3, 0.1, 1.0))
    final, curves = SQ.run_experiment(exp, steps=3, n_seeds=1)
    init = final["initial_loss"].to_numpy()
    L0 = float(exp.problems[0].loss(exp.x0))
    np.testing.assert_allclose(init, L0, rtol=1e-12)
    for p in exp.problems[1:]:
        assert not torch.allclose(p.start(exp.x0), exp.x0)  # it really is a different point


def test_adasgd_rotation_invariant_adam_not():
    d = 16
    lam = P.power_law_spectrum(d, 0.5)
    problems = [P.Quadratic(lam)] + [
        P.Quadratic(lam, exp_rotation(d, t, seed=1, dtype=F64)) for t in (0.01, 0.2, 2.0)
    ]
    x0 = torch.randn(d, dtype=F64, generator=torch.Generator().manual_seed(0))
    rows = []
    for k in range(len(problems)):
        rows.append(SQ.Row(f"AdaSGD{k}", "adasgd", k, 0.9, 0.99, (3e-2, 1e-1), "beta1=0.9"))
        rows.append(SQ.Row(f"AdaSGD0-{k}", "adasgd", k, 0.0, 0.99, (1e-1,), "beta1=0"))
        rows.append(SQ.Row(f"SGD{k}", "sgd", k, 0.9, 0.0, (0.1,), "beta1=0.9"))
        rows.append(SQ.Row(f"Adam{k}", "adam", k, 0.9, 0.99, (3e-2,), "beta1=0.9"))
    exp = SQ.Experiment(problems, rows, x0, sigma=0.0)
    final, curves = SQ.run_experiment(exp, steps=150, n_seeds=1, record_every=1)
    c = curves.set_index(["row", "lr", "step"])["loss"].sort_index()
    for name, lrs in (("AdaSGD", (3e-2, 1e-1)), ("AdaSGD0-", (1e-1,)), ("SGD", (0.1,))):
        for lr in lrs:
            ref = c.loc[(f"{name}0", lr)].to_numpy()
            assert ref[-1] < 1e-3 * ref[0]  # it does optimise
            for k in range(1, len(problems)):
                np.testing.assert_allclose(c.loc[(f"{name}{k}", lr)].to_numpy(), ref, rtol=1e-9)
    adam0 = c.loc[("Adam0", 3e-2)].to_numpy()
    adam_haar = c.loc[(f"Adam{len(problems) - 1}", 3e-2)].to_numpy()
    assert np.max(np.abs(adam_haar - adam0) / adam0) > 1e-2


def test_equivariance_check_round_off_for_adasgd_and_sgd_only():
    eq = SQ.equivariance_check(d=12, spectrum="i^-1/2", steps=100).set_index("optimizer")
    gaps = eq[["vs θ√d = 3", "vs θ√d = Haar"]]
    assert (gaps.loc[["AdaSGD (β1=0.9)", "SGD (μ=0.9)"]].to_numpy() < 1e-11).all()
    assert (gaps.loc["Adam (β1=0.9)"].to_numpy() > 1e-2).all() and (eq["steps compared"] == 101).all()


def test_experiment_bad_input_raises():
    with pytest.raises(ValueError):
        SQ.Row("x", "adam", 0, 1.0, 0.99, (1e-3,), "c")
    with pytest.raises(ValueError):
        SQ.Row("x", "adam", 0, 0.9, 0.99, (), "c")
    exp = small_experiment()
    with pytest.raises(ValueError, match="optimizer must be one of"):
        SQ.Row("x", "lamb", 0, 0.9, 0.99, (1e-3,), "c")
    with pytest.raises(ValueError, match="fewer than n_seeds"):
        SQ.run_experiment(SQ.Experiment(exp.problems, exp.rows, exp.x0.repeat(3, 1), 0.0), steps=5, n_seeds=4)
    with pytest.raises(ValueError, match="record_every must be >= 1"):
        SQ.run_experiment(exp, steps=5, n_seeds=1, record_every=0)


def test_effective_steps():
    got = SQ.effective_steps([12.0, math.inf, math.inf, math.inf], [1e-20, 1e-6, np.nan, 1e-9], steps=100)
    np.testing.assert_allclose(got[:2], [12.0, 100 * (1 + 2)], rtol=1e-12)
    assert math.isinf(got[2]) and got[3] == 100.0  # diverged; not reached but below eps at T


def test_roundoff_cannot_rank_equivariant_runs():
    """AdaSGD is rotation equivariant: on L and on a Haar-rotated L it runs the same iterates in exact
    arithmetic, so any difference of their final losses is round-off. Run far past 1e-8 L(x0) (to
    1e-26 L(x0)), the final losses differ in their last bits and a ranking by final loss picks a winner
    seed by seed; steps to 1e-8 L(x0) are equal, so the criterion calls it a tie."""
    d, T = 20, 600
    rots = P.rotation_path(d, [], haar_seed=3)
    probs = P.rotated_family(P.spectrum("i^-1/2", d), rots)
    x0 = torch.randn(3, d, dtype=F64, generator=torch.Generator().manual_seed(0))
    rows = [SQ.Row(f"adasgd{k}", "adasgd", k, 0.9, 0.99, (0.05,), "c") for k in range(2)]
    final, curves = SQ.run_experiment(
        SQ.Experiment(probs, rows, x0, 0.0), steps=T, n_seeds=3, reach=SQ.EPS_REACH
    )
    f = final.sort_values(["row", "seed"])
    g0, g1 = (f[f["row"] == f"adasgd{k}"] for k in range(2))
    last0 = g0["last_loss"].to_numpy() / g0["initial_loss"].to_numpy()
    last1 = g1["last_loss"].to_numpy() / g1["initial_loss"].to_numpy()
    assert (last0 < 1e-20).all() and (last1 < 1e-20).all()
    assert (last0 != last1).any()  # round-off differences ...
    np.testing.assert_allclose(last0, last1, rtol=1e-12)  # ... and nothing else
    # a zero-tolerance ranking by final loss decides on those bits
    naive = [
        compare(Measured.exact(a), Measured.exact(b), rtol=0.0) for a, b in zip(last0, last1, strict=True)
    ]
    assert set(naive) & {"holds", "fails"}
    steps0 = SQ.effective_steps(g0["steps_to_reach"], last0, T)
    steps1 = SQ.effective_steps(g1["steps_to_reach"], last1, T)
    assert np.isfinite(steps0).all() and (steps0 < T / 2).all()
    np.testing.assert_array_equal(steps0, steps1)
    assert decide(steps0, steps1) == "inconclusive" == decide(steps1, steps0)


def _fake_tuned(adam_values, ada, sgd, l11, spectral=1.0, noise=0.01):
    rng = np.random.default_rng(0)
    rows = []

    def add(row, opt, theta, norm, v, p):
        seeds = tuple(float(v * (1 + noise * z)) for z in rng.standard_normal(3))
        rows.append(
            dict(
                spectrum="s",
                sigma=0.0,
                column="β1=0.9",
                row=row,
                optimizer=opt,
                problem=p,
                theta=theta,
                l11_per_dim=norm,
                spectral_norm=spectral,
                value=float(np.mean(seeds)),
                seeds=seeds,
            )
        )

    for k, (v, norm) in enumerate(zip(adam_values, l11, strict=True)):
        add(f"Adam{k}", "adam", 0.0 if k == 0 else float(k), norm, v, k)
    add("AdaSGD", "adasgd", 0.0, l11[0], ada, 0)
    add("SGD", "sgd", 0.0, l11[0], sgd, 0)
    return pd.DataFrame(rows)


def test_spectrum_verdicts_on_constructed_inputs():
    l11 = [0.2, 0.4, 0.7, 1.5, 2.0, 3.0]
    # Adam rises with l11, beats AdaSGD (1.0) below the threshold 1 and loses above it: everything holds
    t = _fake_tuned([0.3, 0.4, 0.6, 1.6, 2.0, 3.0], ada=1.0, sgd=2.0, l11=l11)
    v = SQ.spectrum_verdicts(t).set_index("claim")
    assert v.loc["a", "verdict"] == "holds" and v.loc["a", "rho"] == pytest.approx(1.0)
    assert v.loc["b", "verdict"] == "holds" and v.loc["b", "n_agree"] == 6 and v.loc["b", "n_below"] == 3
    assert v.loc["c: Adam", "verdict"] == "holds" and v.loc["c: AdaSGD", "verdict"] == "holds"
    # Adam falls with l11 and always beats AdaSGD: (a) fails; 3 rows above the threshold disagree
    t = _fake_tuned([3.0, 2.0, 0.6, 0.5, 0.4, 0.3], ada=5.0, sgd=0.1, l11=l11)
    v = SQ.spectrum_verdicts(t).set_index("claim")
    assert v.loc["a", "verdict"] == "fails"
    assert v.loc["b", "verdict"] == "fails" and v.loc["b", "n_disagree"] == 3 and v.loc["b", "n_agree"] == 3
    assert v.loc["c: Adam", "verdict"] == "fails" and v.loc["c: AdaSGD", "verdict"] == "fails"
    # everything within 1-2% of everything else: below the 5% floor, ties everywhere, (a) has no sign
    t = _fake_tuned([1.0, 1.01, 0.99, 1.0, 1.005, 0.995], ada=1.0, sgd=1.0, l11=l11, noise=0.01)
    v = SQ.spectrum_verdicts(t).set_index("claim")
    assert v.loc["b", "verdict"] == "inconclusive" and v.loc["b", "n_tie"] == 6
    assert v.loc["a", "verdict"] == "inconclusive"
    assert v.loc["c: Adam", "verdict"] == "inconclusive"
    summary = SQ.verdict_summary(SQ.spectrum_verdicts(t), 0.0)
    assert list(summary["spectrum"]) == ["s"] and summary.loc[0, "(a) β1=0"] == "not run"


def test_decide_floor_and_main_spectrum():
    assert decide([1.0, 1.0, 1.0], [1.04, 1.04, 1.04]) == "inconclusive"  # below the 5% floor
    assert decide([1.0, 1.0, 1.0], [1.2, 1.2, 1.2]) == "holds"
    assert decide([1.0, 1.2, 0.8], [1.2, 1.4, 1.0]) == "inconclusive"  # Welch t = 1.22 < 2.13
    assert decide([1.0, 1.1, 0.9], [1.2, 1.3, 1.1]) == "holds"  # Welch t = 2.45 > t_0.95(4) = 2.13
    assert PAIR_RULE == "Welch t, one-sided α = 0.05, and gap > 5%"  # the text the verdict tables print
    assert concordant("holds", "holds") == "holds" and concordant("holds", "fails") == "inconclusive"
    geo = pd.DataFrame(
        {
            "spectrum": ["x"] * 3 + ["y"] * 3,
            "l11_per_dim": [0.1, 0.5, 0.9, 0.1, 1.2, 2.0],
            "spectral_norm": 1.0,
        }
    )
    assert SQ.main_spectrum(geo) == "y"


def test_sweep_end_to_end_small():
    r = SQ.run_sweep(
        d=8, spectra=["1/i"], theta_sqrt_d=[1.0], sigmas=[0.0, 1e-3], steps=40, n_seeds=2, max_rounds=3
    )
    t = r.tuned
    # AdaSGD x2 + Adam x2 columns x 3 rotations + SGD (mu = 0 and 0.9) + SignGD x2, per sigma
    assert len(t) == 2 * (2 + 6 + 2 + 2)
    assert set(t["metric"]) == {SQ.METRIC_EXACT, SQ.METRIC_NOISY}
    assert dict(zip(t["sigma"], t["schedule"], strict=True)) == {0.0: "cosine", 1e-3: "constant"}
    assert (t["n_lr"] >= 6).all() and len(r.geometry) == 3
    sgd = t[t["optimizer"] == "sgd"]
    assert dict(zip(sgd["column"], sgd["beta1"], strict=True)) == {"β1=0": 0.0, "β1=0.9": 0.9}
    verdicts = SQ.spectrum_verdicts(t)
    c = verdicts[(verdicts["claim"] == "c: Adam") & (verdicts["sigma"] == 0)].set_index("column")["ours"]
    assert "SGD (μ=0)" in c["β1=0"] and "SGD (μ=0.9)" in c["β1=0.9"]  # like against like
    table = SQ.paper_vs_ours(verdicts, scale="test", main="1/i")
    assert list(table.columns[:9]) == list(VERDICT_COLUMNS)
    assert set(table["where"]) == {"Table 1"}
    origin = dict(zip(table["claim"].str[:3], table["origin"], strict=False))
    assert origin == {"(a)": "paper", "(b)": "paper", "(c)": "book"}
    head = SQ.table1(t, "1/i", columns=[(0.0, "β1=0"), (1e-3, "β1=0.9")])
    assert list(head.columns) == [
        "Optimizer",
        "‖H_θ‖₁,₁/d",
        "steps to 1e-8·L₀ (σ = 0, β₁ = 0; * extrapolated past T)",
        "L_T/L₀ (σ = 0.001, β₁ = 0.9)",
    ]  # ‖H_θ‖₂ = 1 in every row: no column
    assert list(head["Optimizer"])[1:4] == ["Adam", "Adam (θ√d=1)", "Adam (Haar)"]  # by θ, Haar last
    assert SQ.estimate_cost(10.0, r.work, d_target=16) > 10.0


# ---------------------------------------------------------------------------------------------
# run_batched against problems.run: one start per seed, steps to reach a fraction of L(x0)
# ---------------------------------------------------------------------------------------------
def test_batched_x0_per_seed_and_steps_to_reach():
    """run_batched (runs in any order, one start per seed) equals problems.run run by run (autograd
    gradients, the optimizer classes); steps_to_reach is the first t with L(x_t) <= reach L(x0)."""
    d, T, reach = 10, 80, 1e-4
    rots = P.rotation_path(d, [0.3], seed=0, haar_seed=1)
    probs = P.rotated_family(P.spectrum("i^-1/2", d), rots)
    x0 = torch.randn(3, d, dtype=F64, generator=torch.Generator().manual_seed(2))
    settings = [("adam", 0.9, 0.99, 2, 0.05), ("sgd", 0.9, 0.0, 1, 0.5), ("adasgd", 0.0, 0.99, 0, 0.1)]
    runs = [(o, b1, b2, p, s, lr) for o, b1, b2, p, lr in settings for s in (2, 0, 1)]
    out = SQ.run_batched(probs, x0, runs, steps=T, reach=reach)
    assert out["loss"].shape == (T + 1, len(runs)) and out.t.tolist() == list(range(T + 1))
    for r, (o, b1, b2, p, s, lr) in enumerate(runs):
        ref = P.run(probs[p], x0[s], o, steps=T, lr=lr, betas=(b1, b2), momentum=b1)["loss"].numpy()
        np.testing.assert_allclose(out["loss"][:, r], ref, rtol=1e-10, atol=1e-13 * ref[0])
        hit = np.flatnonzero(ref <= reach * ref[0])
        assert out["steps_to_reach"][r].item() == (float(hit[0]) if len(hit) else math.inf)
        assert out["final_loss"][r].item() == pytest.approx(ref[-1], rel=1e-10) and out["lr"][r].item() == lr
    assert torch.isfinite(out["steps_to_reach"]).any()  # the check above is not vacuous


def test_run_batched_bad_input_raises():
    probs, x0 = [P.Quadratic(P.power_law_spectrum(4))], torch.ones(4, dtype=torch.float64)
    runs = [("adam", 0.9, 0.99, 0, 0, 1e-2)]
    for bad in (dict(steps=0), dict(steps=5, final_window=6), dict(steps=5, schedule="step")):
        with pytest.raises(ValueError):
            SQ.run_batched(probs, x0, runs, **bad)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        SQ.run_batched(probs, x0, [("lamb", 0.9, 0.99, 0, 0, 1e-2)], steps=5)
