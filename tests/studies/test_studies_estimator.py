"""Tests of the Theorem 4.1 study (adamlinf.studies.estimator) against closed forms and direct sums."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from adamlinf.studies import estimator as est_study

F64 = torch.float64

pytestmark = pytest.mark.usefixtures("one_thread")


def heavy_rows(d, seed):
    return est_study.heavy_tailed_matrix(d, seed, sigma=1.0)


def test_l11_sweep_nested_prefixes():
    H = heavy_rows(20, 1)
    df = est_study.l11_sweep(H, [5, 50], seeds=[0, 1], variants=["median", "iqr"])
    assert len(df) == 2 * 2 * 2 and set(df.columns) >= {"seed", "n", "variant", "estimate", "rel_error"}
    # the n-prefix of the sweep's probes gives the same estimate as computing it directly
    V = torch.empty((50, 20), dtype=F64).cauchy_(generator=torch.Generator().manual_seed(1))
    direct = float((V[:5] @ H.T).abs().quantile(0.5, dim=0).sum())
    row = df[(df.seed == 1) & (df.n == 5) & (df.variant == "median")].iloc[0]
    assert row.estimate == pytest.approx(direct, rel=1e-12)
    assert row.rel_error == pytest.approx(abs(direct / float(H.abs().sum()) - 1), rel=1e-12)


def test_fit_rate_recovers_exact_power_law_and_constant():
    """An exact eps = sqrt(C log(1/delta)/n) series: slope -1/2 and C recovered; n < n_min ignored."""
    import pandas as pd

    n = np.array([10, 20, 100, 200, 1000])
    rows = []
    for q, C in [(0.5, 3.0), (0.9, 0.7)]:
        eps = np.sqrt(C * math.log(1 / (1 - q)) / n)
        eps[:2] *= 50.0  # outliers below n_min must not enter the fit
        rows += [
            dict(variant="median", n=int(k), quantile=q, rel_error=e) for k, e in zip(n, eps, strict=True)
        ]
    fits = est_study.fit_rate(pd.DataFrame(rows), n_min=100, n_ref=200)
    assert list(fits["quantile"]) == [0.5, 0.9]
    assert np.allclose(fits.slope, -0.5, atol=1e-12)
    assert np.allclose(fits.C, [3.0, 0.7], rtol=1e-12)
    assert np.allclose(fits.delta, [0.5, 0.1]) and list(fits.n_points) == [3, 3]
    assert fits.rel_error_at_n_ref.iloc[1] == pytest.approx(math.sqrt(0.7 * math.log(10) / 200), rel=1e-12)
    # a n^{-1} series gives slope -1
    qt = pd.DataFrame(dict(variant="iqr", n=n, quantile=0.9, rel_error=1.0 / n))
    assert est_study.fit_rate(qt, n_min=10, n_ref=None).slope.iloc[0] == pytest.approx(-1.0, abs=1e-12)
    with pytest.raises(ValueError, match="need >= 2 positive errors with n >= 1000, got 1"):
        est_study.fit_rate(qt, n_min=1000)  # one point: no rate to fit
    with pytest.raises(ValueError, match="need >= 2 positive errors"):
        est_study.fit_rate(qt.assign(rel_error=0.0), n_min=10)  # log(0)


def test_l11_error_study_tiny_case():
    gpt = {"vocab_size": 5, "block_size": 3, "n_layer": 1, "n_head": 1, "n_embd": 4}
    sweep, problems = est_study.l11_error_study(
        [5, 40],
        matrix_d=12,
        matrix_tails=[0.0, 1.0],
        matrix_seeds=3,
        gpt=gpt,
        gpt_batch=2,
        gpt_seeds=2,
        variants=["median", "iqr"],
    )
    assert set(sweep.columns) == {
        "problem",
        "seed",
        "n",
        "variant",
        "estimate",
        "exact",
        "rel_error",
        "d",
        "row_norm_max_over_median",
    }
    assert list(problems.kind) == ["matrix", "matrix", "gpt"]
    assert len(sweep) == (3 + 3 + 2) * 2 * 2
    # the matrix rows agree with l11_sweep on the same matrix and the exact (1,1)-norm
    H = est_study.heavy_tailed_matrix(12, seed=0, sigma=1.0)
    ref = est_study.l11_sweep(H, [5, 40], range(3))
    got = sweep[sweep.problem == "random d=12, sigma=1"].reset_index(drop=True)
    assert np.allclose(got.estimate, ref.estimate, rtol=1e-12)
    assert np.allclose(got.exact, float(H.abs().sum()), rtol=1e-12)
    p = problems.set_index("problem").loc["random d=12, sigma=1"]
    assert p.l11_per_d == pytest.approx(float(H.abs().sum()) / 12, rel=1e-12)
    assert p.spectral_norm == pytest.approx(float(torch.linalg.eigvalsh(H).abs().max()), rel=1e-12)
    # the GPT Hessian: d = number of parameters, symmetric, and the study's numbers are its own
    Hn = est_study.small_gpt_hessian(gpt, 2, seed=0)
    from adamlinf.models.gpt import GPT, GPTConfig

    assert Hn.shape[0] == sum(p.numel() for p in GPT(GPTConfig(**gpt)).parameters())
    assert torch.allclose(Hn, Hn.T, atol=1e-10)
    g = problems[problems.kind == "gpt"].iloc[0]
    assert g.d == Hn.shape[0] and g.l11_per_d == pytest.approx(float(Hn.abs().sum()) / Hn.shape[0], rel=1e-10)
    # quantiles over seeds: one row per (problem, variant, n, quantile), the median is the median
    qtab = est_study.error_quantiles(sweep, [0.5, 0.9])
    assert set(qtab.columns) == {"problem", "variant", "n", "quantile", "rel_error"}
    assert len(qtab) == 3 * 2 * 2 * 2
    sel = got[(got.variant == "median") & (got.n == 40)].rel_error
    row = qtab[
        (qtab.problem == "random d=12, sigma=1")
        & (qtab.variant == "median")
        & (qtab.n == 40)
        & (qtab["quantile"] == 0.5)
    ]
    assert float(row.rel_error.iloc[0]) == pytest.approx(float(np.median(sel)), rel=1e-12)


def test_probe_error_table_interpolates_the_quantiles():
    import pandas as pd

    n = np.array([10, 20, 50, 100])
    rows = [
        dict(problem="p", variant="median", n=int(k), quantile=q, rel_error=c / np.sqrt(k))
        for q, c in [(0.5, 0.5), (0.9, 1.2)]
        for k in n
    ]
    tab = est_study.probe_error_table(pd.DataFrame(rows), ns=[20, 16])
    assert list(tab.n) == [20, 16]
    assert tab["error q50%"].iloc[0] == pytest.approx(0.5 / np.sqrt(20), rel=1e-12)
    lo, hi = 1.2 / np.sqrt(20), 1.2 / np.sqrt(10)  # 16 lies between 10 and 20: log-linear in n
    w = (np.log(16) - np.log(10)) / (np.log(20) - np.log(10))
    assert tab["error q90%"].iloc[1] == pytest.approx(hi + w * (lo - hi), rel=1e-12)


def test_rate_verdicts():
    """An error that falls like n^(-1/2) holds, one like n^(-0.2) fails, with a bootstrap interval."""
    import pandas as pd

    rng = np.random.default_rng(0)
    ns = np.array([100, 200, 500, 1000])
    rows = []
    for problem, expo in (("half", -0.5), ("slow", -0.2)):
        for s in range(30):
            noise = np.exp(0.1 * rng.standard_normal(len(ns)))
            rows += [
                dict(problem=problem, variant="median", seed=s, n=n, rel_error=e)
                for n, e in zip(ns, ns**expo * noise, strict=True)
            ]
    iv = est_study.rate_intervals(pd.DataFrame(rows), n_min=100, n_boot=200)
    assert iv.set_index("problem").loc["half", "lo"] < -0.5 < iv.set_index("problem").loc["half", "hi"]
    v = est_study.rate_verdicts(iv, scale="ci")
    assert list(v.verdict) == ["holds", "fails"]
    assert set(v.columns) >= {"claim", "where", "origin", "paper", "ours", "verdict", "rule", "scale", "page"}
