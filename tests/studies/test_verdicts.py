"""The verdict rule (holds / fails / inconclusive) on constructed numbers, and the verdict tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from adamlinf.studies.verdicts import (
    ALPHA,
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    NOT_RUN,
    VERDICT_COLUMNS,
    Claim,
    Measured,
    claims_table,
    compare,
    rule_text,
    save_verdicts,
    verdict_row,
)


def seeds(mean, std, n=3):
    """n values with exactly this mean and sample std (ddof=1)."""
    if n == 2:
        h = std / math.sqrt(2)
        return [mean - h, mean + h]
    return [mean - std, mean, mean + std]  # sample std of (-s, 0, s) is s


def test_from_seeds_is_mean_and_sample_std():
    m = Measured.from_seeds([1.0, 2.0, 3.0])
    assert m.value == 2.0 and m.spread == pytest.approx(1.0) and m.n == 3
    assert math.isnan(Measured.from_seeds([1.5]).spread)
    assert Measured.from_seeds([1.0, math.inf]).value == math.inf
    assert Measured.from_seeds([1.0, math.nan]).value == math.inf
    with pytest.raises(ValueError):
        Measured.from_seeds([])


def welch_threshold(s, n):
    """The smallest decisive gap for two sides of equal spread s and n seeds (closed form).

    With equal spreads and seed counts Welch's ν is 2(n - 1) and the standard error s·sqrt(2/n).
    """
    return stats.t.ppf(0.95, 2 * (n - 1)) * s * math.sqrt(2 / n)


@pytest.mark.parametrize(
    ("a", "b", "verdict"),
    [
        # gap 0.3, standard error sqrt(0.1²/3 + 0.05²/3) = 0.0645, t = 4.65 > t_0.95(2.94) = 2.37
        (seeds(1.0, 0.1), seeds(1.3, 0.05), HOLDS),
        (seeds(1.3, 0.05), seeds(1.0, 0.1), FAILS),
        # gap 0.1: t = 1.71 < 2.35 (ν = 2.0), undecided either way
        (seeds(1.0, 0.1), seeds(1.1, 0.01), INCONCLUSIVE),
        (seeds(1.1, 0.01), seeds(1.0, 0.1), INCONCLUSIVE),
        # two seeds decide a gap of many standard errors: t = 10 > t_0.95(2) = 2.92
        (seeds(1.0, 0.01, 2), seeds(1.1, 0.01, 2), HOLDS),
        # but not a gap of 2 seed stds (the old rule's threshold): t = 2 < 2.92
        (seeds(1.0, 0.1, 2), seeds(1.2 + 1e-6, 0.1, 2), INCONCLUSIVE),
    ],
)
def test_seed_rule(a, b, verdict):
    assert compare(Measured.from_seeds(a), Measured.from_seeds(b)) == verdict


@pytest.mark.parametrize("n", [2, 3, 5, 10])
def test_threshold_is_welchs_critical_gap(n):
    a, gap = Measured(1.0, 0.1, n), welch_threshold(0.1, n)
    assert compare(a, Measured(1.0 + gap * (1 + 1e-6), 0.1, n)) == HOLDS
    assert compare(a, Measured(1.0 + gap * (1 - 1e-6), 0.1, n)) == INCONCLUSIVE
    assert compare(a, Measured(1.0 - gap * (1 + 1e-6), 0.1, n)) == FAILS
    assert compare(a, Measured(1.0 - gap * (1 - 1e-6), 0.1, n)) == INCONCLUSIVE


def _decision_rates(noise, n, gap, reps=20_000, seed=0):
    """Fractions of "holds" and "fails" over reps simulated claims with a true gap (in noise units)."""
    rng = np.random.default_rng(seed)
    a = noise(rng, (reps, n))
    b = noise(rng, (reps, n)) + gap
    out = [compare(Measured.from_seeds(x), Measured.from_seeds(y)) for x, y in zip(a, b, strict=True)]
    return out.count(HOLDS) / reps, out.count(FAILS) / reps


NOISES = {
    "normal": lambda rng, shape: rng.standard_normal(shape),
    # Student t with 3 degrees of freedom: heavy tails, finite variance (scaled to unit std)
    "t3": lambda rng, shape: rng.standard_t(3, shape) / math.sqrt(3),
}


@pytest.mark.parametrize("noise", sorted(NOISES))
@pytest.mark.parametrize("n", [2, 3, 5])
def test_false_decision_rate_under_the_null(noise, n):
    """Equal means: each wrong decision at most α + 1% (the rule's stated error rate)."""
    holds, fails = _decision_rates(NOISES[noise], n, gap=0.0)
    assert holds <= ALPHA + 0.01 and fails <= ALPHA + 0.01, (holds, fails)


@pytest.mark.parametrize(("n", "power"), [(3, 0.5), (5, 0.9)])
def test_power_at_a_gap_of_three_standard_deviations(n, power):
    """A true gap of 3 noise stds is found (holds) at least this often, and never reversed."""
    holds, fails = _decision_rates(NOISES["normal"], n, gap=3.0, reps=5_000)
    assert holds >= power and fails == 0, (holds, fails)


def test_one_seed_never_decides():
    assert compare(1.0, 100.0) == INCONCLUSIVE
    assert compare(Measured.from_seeds([1.0]), Measured.from_seeds([5.0])) == INCONCLUSIVE
    assert compare(Measured.from_seeds([1.0]), Measured.from_seeds(seeds(5.0, 0.1))) == INCONCLUSIVE
    assert rule_text(1.0, 2.0) == "one seed: undecided"
    assert rule_text(Measured.from_seeds(seeds(1, 0.1)), Measured.from_seeds(seeds(2, 0.1))) == (
        "Welch t, one-sided α = 0.05 (3 seeds)"
    )


def test_bands_must_not_overlap():
    a = Measured.band(1.0, 0.9, 1.1)
    assert compare(a, Measured.band(1.3, 1.2, 1.4)) == HOLDS
    assert compare(Measured.band(1.3, 1.2, 1.4), a) == FAILS
    assert compare(a, Measured.band(1.3, 1.05, 1.6)) == INCONCLUSIVE  # overlap: an ordering needs a gap
    assert compare(a, Measured.exact(1.2)) == HOLDS and compare(a, Measured.exact(1.05)) == INCONCLUSIVE
    assert rule_text(a, 1.0) == "outside error bands"
    with pytest.raises(ValueError):
        Measured.band(2.0, 0.0, 1.0)


def test_exact_values_use_a_relative_tolerance():
    x = 0.1 + 0.2
    assert compare(Measured.exact(x), Measured.exact(0.3)) == INCONCLUSIVE  # round-off decides nothing
    assert compare(Measured.exact(0.3), Measured.exact(x)) == INCONCLUSIVE
    assert compare(Measured.exact(1.0), Measured.exact(1.0 + 1e-6)) == HOLDS
    assert compare(Measured.exact(1.0), Measured.exact(1.0 + 1e-6), rtol=1e-3) == INCONCLUSIVE
    assert compare(Measured.exact(2.0), Measured.exact(1.0)) == FAILS
    assert rule_text(Measured.exact(1), Measured.exact(2)) == "exact"


def test_diverged_runs():
    diverged = Measured.from_seeds([math.inf, 1.0])
    ok = Measured.from_seeds(seeds(3.0, 0.5))
    assert compare(ok, diverged) == HOLDS and compare(diverged, ok) == FAILS
    assert compare(diverged, Measured(math.inf)) == INCONCLUSIVE
    assert compare(Measured(math.nan), ok) == INCONCLUSIVE
    assert diverged.text() == "diverged"


@given(
    a=st.floats(-1e3, 1e3),
    b=st.floats(-1e3, 1e3),
    sa=st.floats(1e-3, 10),
    sb=st.floats(1e-3, 10),
)
def test_rule_is_antisymmetric(a, b, sa, sb):
    x, y = Measured(a, sa, 3), Measured(b, sb, 3)
    swap = {HOLDS: FAILS, FAILS: HOLDS, INCONCLUSIVE: INCONCLUSIVE}
    assert compare(y, x) == swap[compare(x, y)]
    if abs(a - b) <= welch_threshold(max(sa, sb), 3) / math.sqrt(2):  # below the smallest decisive gap
        assert compare(x, y) == INCONCLUSIVE


def test_text_of_a_measurement():
    assert Measured.from_seeds([1.0, 1.01, 1.02]).text() == "1.010 ± 0.010"
    assert Measured.band(1.234, 1.1, 1.4).text() == "1.23 [1.10, 1.40]"
    assert Measured.exact(2.5).text() == "2.50"
    assert Measured(2.5).text() == "2.50 (1 seed)"


def test_claims_table_and_not_run():
    values = {"adam": Measured.from_seeds(seeds(1.0, 0.01)), "sgd": Measured.from_seeds(seeds(2.0, 0.01))}
    claims = [
        Claim("Adam beats SGD", "adam", "sgd", "Figure 1"),
        Claim("Adam beats AdaSGD", "adam", "adasgd"),
    ]
    table = claims_table(values, claims, scale="ci", page="gpt2_figure1", labels={"adam": "Adam"})
    assert list(table.columns) == list(VERDICT_COLUMNS)
    assert table["verdict"].tolist() == [HOLDS, NOT_RUN]
    assert table.loc[0, "ours"] == "Adam 1.000 ± 0.010 vs sgd 2.000 ± 0.010"
    assert set(table["scale"]) == {"ci"} and set(table["page"]) == {"gpt2_figure1"}


def test_save_verdicts_checks_columns_and_words(tmp_path):
    rows = [verdict_row("bound holds on every instance", HOLDS, ours="20/20", scale="ci", page="x")]
    path = save_verdicts(pd.DataFrame(rows), tmp_path)
    assert path == tmp_path / "verdicts.csv"
    assert pd.read_csv(path)["verdict"].tolist() == [HOLDS]
    assert (tmp_path / "verdicts.csv.provenance.json").exists()
    with pytest.raises(ValueError, match="missing"):
        save_verdicts(pd.DataFrame({"claim": ["x"]}), tmp_path)
    with pytest.raises(ValueError, match="must be among"):
        save_verdicts(pd.DataFrame([dict(rows[0], verdict="agree")]), tmp_path)
    with pytest.raises(ValueError, match="must be among"):
        save_verdicts(pd.DataFrame([dict(rows[0], origin="blog")]), tmp_path)


def test_paired_difference_against_exact_zero_is_a_one_sample_t_test():
    """welch() with one exact side is the one-sample t-test (scipy's ttest_1samp, one-sided)."""
    from adamlinf.studies.verdicts import welch

    diffs = [0.3, 0.5, 0.1, 0.4, 0.2, 0.45]
    p = stats.ttest_1samp(diffs, 0.0, alternative="greater").pvalue
    assert p < ALPHA
    assert welch(Measured.exact(0.0), Measured.from_seeds(diffs)) == HOLDS
    assert welch(Measured.from_seeds(diffs), Measured.exact(0.0)) == FAILS
    noisy = [0.3, -0.5, 0.1, 0.4, -0.2, 0.05]
    assert stats.ttest_1samp(noisy, 0.0).pvalue > 2 * ALPHA
    assert compare(Measured.exact(0.0), Measured.from_seeds(noisy)) == INCONCLUSIVE


def test_resolution_floor():
    """A gap inside rel_floor is a tie even when the seeds separate it; outside it Welch decides."""
    a, b = Measured.from_seeds([1.0, 1.001, 0.999]), Measured.from_seeds([1.04, 1.041, 1.039])
    assert compare(a, b) == HOLDS
    assert compare(a, b, rel_floor=0.05) == INCONCLUSIVE
    assert compare(a, Measured.from_seeds([1.2, 1.201, 1.199]), rel_floor=0.05) == HOLDS


def test_slope_interval_is_the_t_interval_of_the_fit():
    """slope_interval reproduces scipy's linregress slope ± t_{0.975}(n-2)·stderr, and covers the true
    slope at about its nominal rate on simulated fits."""
    from adamlinf.studies.verdicts import slope_interval

    rng = np.random.default_rng(0)
    x = np.log(np.array([64, 128, 256, 512, 1024, 2048.0]))
    cover = 0
    for _ in range(2000):
        y = -0.5 * x + 0.1 * rng.standard_normal(x.size)
        fit = stats.linregress(x, y)
        lo, hi = slope_interval(fit.slope, fit.stderr, x.size)
        cover += lo <= -0.5 <= hi
    half = stats.t.ppf(0.975, x.size - 2) * fit.stderr
    assert (lo, hi) == pytest.approx((fit.slope - half, fit.slope + half), rel=1e-12)
    assert abs(cover / 2000 - 0.95) < 0.015
    assert all(math.isnan(v) for v in slope_interval(-0.5, 0.1, 2))


@pytest.mark.parametrize(
    "lo, hi, predicted, side, verdict",
    [
        (-0.6, -0.4, -0.5, "upper", HOLDS),  # contains the rate
        (-0.9, -0.7, -0.5, "upper", HOLDS),  # faster than the bound allows: fine for an upper bound
        (-0.4, -0.3, -0.5, "upper", FAILS),  # slower than the bound
        (-1.7, 6.3, -0.5, "upper", INCONCLUSIVE),  # contains 0: the shape is not resolved
        (0.34, 1.24, 0.5, "two", HOLDS),  # Theorem 3.2's 0.79 ± 0.14 over 5 instances
        (0.80, 1.70, 0.5, "two", FAILS),  # Theorem 3.5's 1.25 ± 0.14: steeper than √
        (0.1, 0.3, 0.5, "two", FAILS),
        (-0.1, 0.9, 0.5, "two", INCONCLUSIVE),
        (math.nan, math.nan, 0.5, "two", INCONCLUSIVE),
    ],
)
def test_slope_verdict(lo, hi, predicted, side, verdict):
    from adamlinf.studies.verdicts import slope_finding, slope_verdict

    assert slope_verdict(lo, hi, predicted, side=side) == verdict
    assert (slope_finding(lo, hi, predicted) == "") == (math.isnan(lo) or lo <= predicted <= hi)


def test_slope_verdict_refuses_an_unknown_side():
    from adamlinf.studies.verdicts import slope_verdict

    with pytest.raises(ValueError, match="side must be 'two' or 'upper', got 'lower'"):
        slope_verdict(-0.6, -0.4, -0.5, side="lower")


def test_bound_threshold_and_rank_rules():
    from adamlinf.studies.verdicts import (
        bound_verdict,
        correlation_verdict,
        rank_test_verdict,
        threshold_verdict,
    )

    assert bound_verdict(0.99) == HOLDS and bound_verdict(1 + 1e-13) == HOLDS and bound_verdict(1.01) == FAILS
    assert bound_verdict(math.nan) == INCONCLUSIVE
    assert threshold_verdict([1e-16, 5e-16], below=True, tol=1e-10) == HOLDS
    assert threshold_verdict([0.3, 0.5], below=True, tol=1e-10) == FAILS
    assert threshold_verdict([0.3, 0.5], below=False, tol=1e-10) == HOLDS
    assert threshold_verdict([1e-16, 0.5], below=False, tol=1e-10) == INCONCLUSIVE
    assert rank_test_verdict(0.94, 0.005) == HOLDS and rank_test_verdict(-0.94, 0.005) == FAILS
    assert rank_test_verdict(0.94, 0.2) == INCONCLUSIVE
    assert correlation_verdict(0.1, 0.8) == HOLDS and correlation_verdict(-0.8, -0.1) == FAILS
    assert correlation_verdict(-0.1, 0.8) == INCONCLUSIVE


def test_slope_findings_lists_rows_whose_interval_excludes_the_prediction():
    from adamlinf.studies.verdicts import slope_findings

    table = pd.DataFrame(
        [
            verdict_row("a", HOLDS, ours="slope -0.51, 95% interval [-0.55, -0.47]", scale="ci"),
            verdict_row(
                "b",
                FAILS,
                ours="slope 1.25, [0.80, 1.70]; the interval lies above the predicted 0.5",
                scale="ci",
            ),
        ]
    )
    text = slope_findings(table)
    assert text.count("**Finding**") == 1 and "b: slope 1.25" in text and "(fails)" in text
    assert slope_findings(table.iloc[:1]) == ""


def test_all_hold_not_worse_and_agreement():
    from adamlinf.studies.verdicts import agreement_verdict, all_hold, not_worse

    assert all_hold([True, True]) == HOLDS and all_hold([True, False]) == FAILS
    small, large = Measured.from_seeds([1.0, 1.1, 0.9]), Measured.from_seeds([2.0, 2.1, 1.9])
    assert not_worse(large, small) == FAILS  # clearly worse: the harm is shown
    assert not_worse(small, large) == HOLDS
    assert not_worse(Measured.from_seeds([1.0, 1.5, 0.5]), small) == HOLDS  # not shown worse
    assert agreement_verdict(6, 0, 9) == HOLDS and agreement_verdict(4, 0, 9) == INCONCLUSIVE
    assert agreement_verdict(4, 4, 9) == FAILS and agreement_verdict(5, 1, 9) == INCONCLUSIVE


def test_lemma_rules_on_average_and_pathwise():
    """A seed mean may exceed its bound by up to 4 standard errors; an exact run by nothing; a pathwise
    inequality by float64 round-off only (numpy or torch arrays)."""
    import torch

    from adamlinf.studies.verdicts import SE_MARGIN_RULE, holds_on_average, holds_pathwise

    assert holds_on_average(-1.0, 0.0) and holds_on_average(0.0, 0.0) and not holds_on_average(1e-15, 0.0)
    assert holds_on_average(3.9, 1.0) and not holds_on_average(4.1, 1.0)
    assert SE_MARGIN_RULE == "not violated by more than 4 standard errors"
    rhs = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert holds_pathwise(rhs * (1 + 5e-10), rhs) and not holds_pathwise(rhs * (1 + 2e-9), rhs)
    assert holds_pathwise(torch.tensor(rhs) * 0.5, torch.tensor(rhs))
    assert not holds_pathwise(torch.tensor(rhs) + torch.tensor([[0.0, 0.0], [0.0, 1.0]]), torch.tensor(rhs))


@pytest.mark.parametrize("S", [4, 8])
def test_lemma_rule_false_violation_rate_is_students_t_tail(S):
    """A tight inequality (per-seed excess N(0, 1)) is declared violated at the rate P(t_{S-1} > 4)."""
    from adamlinf.studies.verdicts import holds_on_average

    rng = np.random.default_rng(S)
    x = rng.standard_normal((40_000, S))
    se = x.std(axis=1, ddof=1) / math.sqrt(S)
    rate = np.mean([not holds_on_average(m, s) for m, s in zip(x.mean(axis=1), se, strict=True)])
    expected = stats.t.sf(4, S - 1)
    assert abs(rate - expected) < 4 * math.sqrt(expected / 40_000) + 1e-4, (rate, expected)
