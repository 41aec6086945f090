"""Verdicts on the paper's claims: *holds*, *fails* or *inconclusive*, one rule per kind of evidence.

Every verdict of the book comes from a function of this module. A claim "``better`` is lower than
``worse``" is decided by :func:`compare` on two :class:`Measured` values:

* **seeds** (mean, ``ddof=1`` spread, ``n``): Welch's t-test, one-sided at :data:`ALPHA` = 0.05 each
  way (about α false decisions per direction at any seed count, ``tests/test_verdicts.py``); one
  seed decides nothing;
* **error bands** ``[lo, hi]`` (Cauchy estimates, bootstrap intervals): an ordering outside the bands;
* **exact quantities** (``spread = 0``): a relative tolerance ``rtol``, so round-off decides nothing;
* a **resolution floor** ``rel_floor``: a gap below it is a tie (a loss at a grid-tuned lr).

Fitted exponents (:func:`slope_verdict`), bounds (:func:`bound_verdict`), correlations, round-off
thresholds and agreement counts have their own rules below. A diverged run is ``Measured(inf)``:
worse than any finite one. Each row's ``origin`` keeps the paper's claims (``"paper"``) apart from
the book's checks (``"book"``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from adamlinf.report import fmt, pm
from adamlinf.results import save_table

HOLDS, FAILS, INCONCLUSIVE, NOT_RUN = "holds", "fails", "inconclusive", "not run"
VERDICTS = (HOLDS, FAILS, INCONCLUSIVE, NOT_RUN)
#: ``origin`` of a verdict row: a claim of the paper, or a check the book adds.
PAPER, BOOK = "paper", "book"
ORIGINS = (PAPER, BOOK)
#: One-sided level of the seed test in each direction (the false "holds" and false "fails" rates).
ALPHA = 0.05

#: The file every notebook writes its verdicts to (``results/<notebook>/<scale>/verdicts.csv``);
#: the "Results at a glance" page collects them.
VERDICTS_FILE = "verdicts.csv"
VERDICT_COLUMNS = ("claim", "where", "origin", "paper", "ours", "verdict", "rule", "scale", "page")


@dataclass(frozen=True)
class Measured:
    """One measured quantity and its uncertainty.

    Attributes:
        value: The point estimate (mean over seeds, or the estimator's value).
        spread: Standard deviation over seeds (``nan`` when only one seed was run, ``0`` for an
            exact quantity).
        n: Number of seeds (or probes) behind ``value``.
        lo: Lower end of an error band; ``None`` when the uncertainty is a seed spread.
        hi: Upper end of an error band.
    """

    value: float
    spread: float = math.nan
    n: int = 1
    lo: float | None = None
    hi: float | None = None

    @classmethod
    def from_seeds(cls, values: Iterable[float]) -> Measured:
        """Mean and sample standard deviation (``ddof=1``) of per-seed values.

        A diverged seed (``inf`` or ``nan``) makes the whole measurement diverged (``inf``).
        """
        arr = np.asarray(list(values), dtype=float)
        if arr.size == 0:
            raise ValueError("from_seeds needs at least one value, got none")
        if not np.isfinite(arr).all():
            return cls(math.inf, math.nan, int(arr.size))
        spread = float(arr.std(ddof=1)) if arr.size > 1 else math.nan
        return cls(float(arr.mean()), spread, int(arr.size))

    @classmethod
    def band(cls, value: float, lo: float, hi: float, n: int = 1) -> Measured:
        """An estimate with an error band ``[lo, hi]`` (``lo <= value <= hi``)."""
        if not lo <= value <= hi:
            raise ValueError(f"band needs lo <= value <= hi, got lo={lo}, value={value}, hi={hi}")
        return cls(float(value), math.nan, int(n), float(lo), float(hi))

    @classmethod
    def exact(cls, value: float) -> Measured:
        """A quantity without noise (a closed form, a deterministic float64 run)."""
        return cls(float(value), 0.0, 1)

    @property
    def has_band(self) -> bool:
        """True when the uncertainty is an error band rather than a seed spread."""
        return self.lo is not None and self.hi is not None

    def text(self, digits: int = 3) -> str:
        """``"1.234 ± 0.005"``, ``"1.23 [1.10, 1.40]"``, or ``"diverged"``."""
        if math.isinf(self.value):
            return "diverged"
        if self.has_band:
            return f"{fmt(self.value, digits)} [{fmt(self.lo, digits)}, {fmt(self.hi, digits)}]"
        if self.spread == 0 or math.isnan(self.spread):
            return fmt(self.value, digits) + (" (1 seed)" if self.n == 1 and self.spread != 0 else "")
        return pm(self.value, self.spread, digits)


def seed_texts(values: Sequence[Measured]) -> list[str]:
    """``"mean ± std"`` texts of several values with one number of decimals (one table column).

    The decimals give the largest spread two significant digits and the smallest one at least one,
    so that ``2.130 ± 0.005`` and ``2.410 ± 0.017`` sit in one column, not ``2.1302 ± 0.0051``.
    A value without a spread shows its mean at those decimals; a diverged one reads "diverged".
    """
    spreads = [
        v.spread for v in values if math.isfinite(v.value) and math.isfinite(v.spread) and v.spread > 0
    ]
    if spreads:
        big = 1 - math.floor(math.log10(max(spreads)))
        small = -math.floor(math.log10(min(spreads)))
        decimals = max(0, big, min(small, big + 2))
    else:
        decimals = 3
    out = []
    for v in values:
        if not math.isfinite(v.value):
            out.append("diverged")
        elif math.isfinite(v.spread):
            out.append(f"{v.value:.{decimals}f} ± {v.spread:.{decimals}f}")
        else:
            out.append(f"{v.value:.{decimals}f}")
    return out


def as_measured(x) -> Measured:
    """``x`` as a :class:`Measured`: itself, or a plain number taken as one seed's value."""
    return x if isinstance(x, Measured) else Measured(float(x))


def compare(
    better: Measured | float, worse: Measured | float, *, rtol: float = 1e-9, rel_floor: float = 0.0
) -> str:
    """The verdict on "``better`` is lower than ``worse``" (the rules of the module docstring).

    Args:
        better: The quantity the paper says is lower (a loss, a norm, a step count).
        worse: The quantity the paper says is higher.
        rtol: The relative gap below which two exact quantities are equal (inconclusive).
        rel_floor: A finite gap at most ``rel_floor`` times the larger absolute value is a tie.
    """
    a, b = as_measured(better), as_measured(worse)
    if math.isnan(a.value) or math.isnan(b.value):
        return INCONCLUSIVE
    if rel_floor > 0 and math.isfinite(a.value) and math.isfinite(b.value):
        if abs(a.value - b.value) <= rel_floor * max(abs(a.value), abs(b.value)):
            return INCONCLUSIVE
    if math.isinf(a.value) or math.isinf(b.value):  # diverged runs
        if math.isinf(a.value) and math.isinf(b.value):
            return INCONCLUSIVE
        return FAILS if math.isinf(a.value) else HOLDS
    if a.has_band or b.has_band:
        a_lo, a_hi = (a.lo, a.hi) if a.has_band else (a.value, a.value)
        b_lo, b_hi = (b.lo, b.hi) if b.has_band else (b.value, b.value)
        if a_hi < b_lo:
            return HOLDS
        if b_hi < a_lo:
            return FAILS
        return INCONCLUSIVE
    if a.spread == 0 and b.spread == 0:
        threshold = rtol * max(abs(a.value), abs(b.value))
        gap = b.value - a.value
        return HOLDS if gap > threshold else FAILS if -gap > threshold else INCONCLUSIVE
    return welch(a, b)


def welch(better: Measured, worse: Measured, *, alpha: float = ALPHA) -> str:
    """Welch's one-sided t-test of "``better`` has the lower mean", at level ``alpha`` each way.

    A side with ``spread == 0`` is exact (a reference value such as 0), and the test becomes the
    one-sample t-test of the other side (``n - 1`` degrees of freedom): a paired difference
    against 0 is ``welch(Measured.exact(0.0), Measured.from_seeds(diffs))``.
    Returns ``"inconclusive"`` when a side with a spread has fewer than two seeds or an unknown one.
    """
    a, b = better, worse
    for m in (a, b):
        if math.isnan(m.spread) or (m.spread > 0 and m.n < 2):
            return INCONCLUSIVE  # one seed: the noise is unknown
    va, vb = a.spread**2 / a.n, b.spread**2 / b.n
    se = math.sqrt(va + vb)
    gap = b.value - a.value
    if se == 0:
        return HOLDS if gap > 0 else FAILS if gap < 0 else INCONCLUSIVE
    df = (va + vb) ** 2 / sum(v**2 / (m.n - 1) for v, m in ((va, a), (vb, b)) if v > 0)
    critical = float(stats.t.ppf(1 - alpha, df))
    t = gap / se
    return HOLDS if t > critical else FAILS if t < -critical else INCONCLUSIVE


#: Confidence level of the slope intervals of :func:`slope_verdict`.
SLOPE_LEVEL = 0.95


def slope_interval(
    slope: float, se: float, n_points: int, *, level: float = SLOPE_LEVEL
) -> tuple[float, float]:
    """The two-sided t-interval of a least-squares slope from ``n_points`` points (``n_points - 2`` dof).

    ``(nan, nan)`` when the fit has no error estimate (fewer than three points, or a nan ``se``).
    """
    if n_points < 3 or not math.isfinite(se) or not math.isfinite(slope):
        return math.nan, math.nan
    half = float(stats.t.ppf(0.5 + level / 2, n_points - 2)) * se
    return slope - half, slope + half


def slope_verdict(lo: float, hi: float, predicted: float, *, side: str = "two") -> str:
    """The verdict on "the measured exponent is ``predicted``" from an interval ``[lo, hi]`` on it.

    *holds* when the interval excludes 0 and contains ``predicted`` (or, with ``side="upper"``, a
    bound that only caps the rate, lies below it); *fails* when it excludes ``predicted`` on the
    wrong side (either side for ``side="two"``); else *inconclusive*.
    """
    if side not in ("two", "upper"):
        raise ValueError(f"side must be 'two' or 'upper', got {side!r}")
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return INCONCLUSIVE
    if lo > predicted or (side == "two" and hi < predicted):
        return FAILS
    if lo <= 0 <= hi:
        return INCONCLUSIVE
    return HOLDS


def slope_finding(lo: float, hi: float, predicted: float) -> str:
    """``""`` when ``[lo, hi]`` contains ``predicted``, else a sentence saying on which side it lies."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo <= predicted <= hi:
        return ""
    return f"the interval lies {'below' if hi < predicted else 'above'} the predicted {predicted:g}"


def slope_findings(table: pd.DataFrame) -> str:
    """Markdown bullets for the rows of a verdict table whose slope interval excludes the prediction.

    Those rows (their ``ours`` carries :func:`slope_finding`'s sentence) are findings in their own
    right, whatever their verdict; ``""`` when there is none.
    """
    rows = table[table["ours"].str.contains("the interval lies", regex=False)]
    return "\n".join(f"* **Finding** ({r.verdict}): {r.claim}: {r.ours}." for r in rows.itertuples())


def all_hold(flags: Iterable[bool]) -> str:
    """*holds* when every check holds (each already decided by its own rule), else *fails*."""
    return HOLDS if all(bool(f) for f in flags) else FAILS


def not_worse(candidate: Measured | float, reference: Measured | float, *, rtol: float = 1e-9) -> str:
    """The claim "``candidate`` is not worse (higher) than ``reference``".

    *fails* when :func:`compare` decides that ``reference`` is lower, else *holds*: a claim that
    something is harmless holds until the test shows the harm.
    """
    return FAILS if compare(reference, candidate, rtol=rtol) == HOLDS else HOLDS


def agreement_verdict(agree: int, disagree: int, n: int) -> str:
    """A prediction checked on ``n`` cases, each of which agrees, disagrees or ties (undecided).

    *holds* when no case disagrees and at least half agree; *fails* when some case disagrees and
    disagreements are at least as many as agreements; else *inconclusive*.
    """
    if disagree == 0 and agree >= n / 2:
        return HOLDS
    if disagree > 0 and disagree >= agree:
        return FAILS
    return INCONCLUSIVE


def bound_verdict(ratio_max: float, *, rtol: float = 1e-12) -> str:
    """*holds* when the largest measured / bound is at most 1 (up to ``rtol``), else *fails*."""
    if not math.isfinite(ratio_max):
        return INCONCLUSIVE
    return HOLDS if ratio_max <= 1 + rtol else FAILS


def correlation_verdict(lo: float, hi: float) -> str:
    """The sign of a correlation from an interval on it.

    *holds* when the interval lies above 0, *fails* when below, else *inconclusive*.
    """
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return INCONCLUSIVE
    return HOLDS if lo > 0 else FAILS if hi < 0 else INCONCLUSIVE


def rank_test_verdict(rho: float, p: float, *, alpha: float = ALPHA) -> str:
    """A rank correlation's sign, decided at two-sided level ``2 * alpha`` (``alpha`` each way).

    *holds* when ``rho > 0`` and ``p < 2 alpha``, *fails* when ``rho < 0`` and ``p < 2 alpha``.
    """
    if not (math.isfinite(rho) and math.isfinite(p)) or p >= 2 * alpha:
        return INCONCLUSIVE
    return HOLDS if rho > 0 else FAILS


def threshold_verdict(values: Iterable[float], *, below: bool, tol: float, far: float = 1e3) -> str:
    """A claim that every value is at round-off, or that every value is clearly not.

    ``below=True``: *holds* when all values are ``< tol``; ``below=False``: *holds* when all are
    ``> far * tol``. The opposite extreme *fails*; anything else is *inconclusive*.
    """
    v = np.asarray(list(values), dtype=float)
    lo, hi = float(v.min()), float(v.max())
    small, large = hi < tol, lo > far * tol
    if below:
        return HOLDS if small else FAILS if large else INCONCLUSIVE
    return HOLDS if large else FAILS if small else INCONCLUSIVE


#: Summary verdicts of a claim checked by several rows (:func:`aggregate`).
HOLDS_IN_PART, FAILS_IN_PART, MIXED = "holds in part", "fails in part", "mixed"

#: The rule of :func:`aggregate`, as the pages state it.
AGGREGATION_RULE = (
    "A claim of the paper is usually checked by several rows (several settings, pairs of optimizers "
    "or quantities). Its summary verdict at a scale is **holds** when every row holds, **fails** when "
    "every row fails, **inconclusive** when every row is inconclusive, **holds in part** when some hold "
    "and the rest are inconclusive, **fails in part** when some fail and the rest are inconclusive, "
    "**mixed** when some hold and some fail, and **not run** when nothing ran at that scale. The counts "
    'beside it say how many rows gave each verdict; the page\'s "Paper vs ours" section lists them.'
)


def aggregate(verdicts: Sequence[str]) -> str:
    """One summary verdict of the rows of a claim at one scale (:data:`AGGREGATION_RULE`)."""
    ran = {v for v in verdicts if v != NOT_RUN}
    if not ran:
        return NOT_RUN
    if len(ran) == 1:
        return ran.pop()
    if HOLDS in ran and FAILS in ran:
        return MIXED
    return HOLDS_IN_PART if HOLDS in ran else FAILS_IN_PART


def rule_text(better: Measured | float, worse: Measured | float) -> str:
    """A short description of the rule :func:`compare` applied (for the ``rule`` column)."""
    a, b = as_measured(better), as_measured(worse)
    if a.has_band or b.has_band:
        return "outside error bands"
    if a.spread == 0 and b.spread == 0:
        return "exact"
    n = min(a.n, b.n)
    return f"Welch t, one-sided α = {ALPHA:g} ({n} seeds)" if n > 1 else "one seed: undecided"


@dataclass(frozen=True)
class Claim:
    """A claim "``better`` is lower than ``worse``" (keys of measured values).

    ``paper`` is what the paper reports for it, ``where`` its place ("Figure 1"), ``origin``
    ``"paper"`` or ``"book"``.
    """

    text: str
    better: str
    worse: str
    paper: str = ""
    where: str = ""
    origin: str = PAPER


def claims_table(
    values: Mapping[str, Measured | float],
    claims: Sequence[Claim],
    *,
    scale: str,
    page: str = "",
    digits: int = 3,
    labels: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """The verdict table of pairwise claims (a claim with a missing key is ``"not run"``).

    ``ours`` reads ``"Adam 1.234 ± 0.005 vs AdaSGD 1.301 ± 0.004"``: seed means share one number
    of decimals (:func:`seed_texts`), other values show ``digits`` significant digits.
    """
    labels = dict(labels or {})
    seeded = {
        k: m
        for k, m in ((k, as_measured(v)) for k, v in values.items())
        if not m.has_band and math.isfinite(m.value) and math.isfinite(m.spread) and m.spread > 0
    }
    texts = dict(zip(seeded, seed_texts(list(seeded.values())), strict=True))
    rows = []
    for c in claims:
        common = dict(scale=scale, paper=c.paper, page=page, where=c.where, origin=c.origin)
        if c.better not in values or c.worse not in values:
            rows.append(verdict_row(c.text, NOT_RUN, ours="—", **common))
            continue
        a, b = as_measured(values[c.better]), as_measured(values[c.worse])
        ours = (
            f"{labels.get(c.better, c.better)} {texts.get(c.better) or a.text(digits)} vs "
            f"{labels.get(c.worse, c.worse)} {texts.get(c.worse) or b.text(digits)}"
        )
        rows.append(verdict_row(c.text, compare(a, b), ours=ours, rule=rule_text(a, b), **common))
    return pd.DataFrame(rows, columns=list(VERDICT_COLUMNS))


def verdict_row(
    claim: str,
    verdict: str,
    *,
    ours: str,
    scale: str,
    paper: str = "",
    rule: str = "",
    page: str = "",
    where: str = "",
    origin: str = PAPER,
) -> dict:
    """One row of a verdict table (columns :data:`VERDICT_COLUMNS`), verdict and origin checked."""
    if verdict not in VERDICTS or origin not in ORIGINS:
        raise ValueError(
            f"verdict must be one of {VERDICTS} and origin of {ORIGINS}, got {verdict!r}, {origin!r}"
        )
    return dict(
        claim=claim,
        where=where,
        origin=origin,
        paper=paper,
        ours=ours,
        verdict=verdict,
        rule=rule,
        scale=scale,
        page=page,
    )


def save_verdicts(table: pd.DataFrame, results_dir: str | Path, params: Mapping | None = None) -> Path:
    """Write a notebook's verdicts (the glance page collects them) to ``<results_dir>/verdicts.csv``."""
    missing = [c for c in VERDICT_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"a verdict table needs the columns {list(VERDICT_COLUMNS)}; missing {missing}")
    for col, allowed in (("verdict", VERDICTS), ("origin", ORIGINS)):
        bad = sorted(set(table[col]) - set(allowed))
        if bad:
            raise ValueError(f"{col} must be among {allowed}; got {bad}")
    return save_table(table, Path(results_dir) / VERDICTS_FILE, params=params)
