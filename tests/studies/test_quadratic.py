"""Tests of adamlinf.studies.quadratic (Table 1): the round-off-free metric, verdicts, the sweep."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from adamlinf import problems as P
from adamlinf.studies import quadratic as SQ
from adamlinf.studies.verdicts import VERDICT_COLUMNS, Measured, compare

F64 = torch.float64


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
    rows = [P.Row(f"adasgd{k}", "adasgd", k, 0.9, 0.99, (0.05,), "c") for k in range(2)]
    res = P.run_batched(P.Experiment(probs, rows, x0, 0.0), steps=T, n_seeds=3, reach=SQ.EPS_REACH)
    f = res.final.sort_values(["row", "seed"])
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
    assert SQ.decide(steps0, steps1) == "inconclusive" == SQ.decide(steps1, steps0)


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
    assert SQ.decide([1.0, 1.0, 1.0], [1.04, 1.04, 1.04]) == "inconclusive"  # below the 5% floor
    assert SQ.decide([1.0, 1.0, 1.0], [1.2, 1.2, 1.2]) == "holds"
    assert SQ.decide([1.0, 1.2, 0.8], [1.2, 1.4, 1.0]) == "inconclusive"  # Welch t = 1.22 < 2.13
    assert SQ.decide([1.0, 1.1, 0.9], [1.2, 1.3, 1.1]) == "holds"  # Welch t = 2.45 > t_0.95(4) = 2.13
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
