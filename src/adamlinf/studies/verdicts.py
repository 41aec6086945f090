"""Verdicts on the paper's claims: *holds*, *fails* or *inconclusive*, one rule per kind of evidence.

:func:`compare` decides "``better`` is lower than ``worse``" on two :class:`Measured` values: over **seeds**
by Welch's t-test, one-sided at :data:`ALPHA` = 0.05 each way (one seed decides nothing); with **error
bands**, an ordering outside them; **exact** values up to ``rtol``; a gap below ``rel_floor`` ties. Other
evidence has its own rule below. A diverged run is ``Measured(inf)``, worse than any finite one.
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

#: Every notebook's verdicts (``results/<notebook>/<scale>/verdicts.csv``), for "Results at a glance".
VERDICTS_FILE = "verdicts.csv"
VERDICT_COLUMNS = ("claim", "where", "origin", "paper", "ours", "verdict", "rule", "scale", "page")


@dataclass(frozen=True)
class Measured:
    """``value`` (mean of ``n`` seeds), ``spread`` (std; ``nan``: one seed, ``0``: exact) or ``[lo, hi]``."""

    value: float
    spread: float = math.nan
    n: int = 1
    lo: float | None = None
    hi: float | None = None

    @classmethod
    def from_seeds(cls, values: Iterable[float]) -> Measured:
        """Mean and sample standard deviation (``ddof=1``); a diverged seed (inf, nan) makes it ``inf``."""
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
    """``"mean ± std"`` at one number of decimals: 2 significant digits of the largest spread, >= 1 of all."""
    spreads = [
        v.spread for v in values if math.isfinite(v.value) and math.isfinite(v.spread) and v.spread > 0
    ]
    decimals = 3
    if spreads:
        big = 1 - math.floor(math.log10(max(spreads)))
        decimals = max(0, big, min(-math.floor(math.log10(min(spreads))), big + 2))
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


def compare(better: Measured | float, worse: Measured | float, *, rtol=1e-9, rel_floor=0.0) -> str:
    """The verdict on "``better`` is lower than ``worse``" (the module docstring's rules; relative ties)."""
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
        return HOLDS if a_hi < b_lo else FAILS if b_hi < a_lo else INCONCLUSIVE
    if a.spread == 0 and b.spread == 0:
        threshold = rtol * max(abs(a.value), abs(b.value))
        gap = b.value - a.value
        return HOLDS if gap > threshold else FAILS if -gap > threshold else INCONCLUSIVE
    return welch(a, b)


def welch(better: Measured, worse: Measured, *, alpha: float = ALPHA) -> str:
    """Welch's one-sided t-test of "``better`` has the lower mean", at level ``alpha`` each way.

    A ``spread == 0`` side is exact (``welch(Measured.exact(0.0), Measured.from_seeds(diffs))``: the paired
    test); *inconclusive* when a spread is unknown or from one seed.
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


def slope_interval(slope: float, se: float, n_points: int, *, level=SLOPE_LEVEL) -> tuple[float, float]:
    """The t-interval of a least-squares slope of ``n_points`` points (nan below 3 points or without se)."""
    if n_points < 3 or not math.isfinite(se) or not math.isfinite(slope):
        return math.nan, math.nan
    half = float(stats.t.ppf(0.5 + level / 2, n_points - 2)) * se
    return slope - half, slope + half


def slope_verdict(lo: float, hi: float, predicted: float, *, side: str = "two") -> str:
    """The verdict on "the measured exponent is ``predicted``" from an interval ``[lo, hi]`` on it.

    *holds* when it excludes 0 and contains ``predicted`` (``side="upper"``, a bound capping the rate: or
    lies below it); *fails* when it excludes ``predicted`` on the wrong side (either, ``side="two"``).
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
    """Markdown bullets (or ``""``) of the rows whose ``ours`` carries :func:`slope_finding`'s sentence."""
    rows = table[table["ours"].str.contains("the interval lies", regex=False)]
    return "\n".join(f"* **Finding** ({r.verdict}): {r.claim}: {r.ours}." for r in rows.itertuples())


def all_hold(flags: Iterable[bool]) -> str:
    """*holds* when every check holds (each already decided by its own rule), else *fails*."""
    return HOLDS if all(bool(f) for f in flags) else FAILS


def not_worse(candidate: Measured | float, reference: Measured | float, *, rtol: float = 1e-9) -> str:
    """Not worse (higher) than ``reference``: *fails* only when :func:`compare` finds ``reference`` lower."""
    return FAILS if compare(reference, candidate, rtol=rtol) == HOLDS else HOLDS


#: the gap below which two tuned values tie (the lr grid's resolution moves a value a few %)
TIE_FLOOR = 0.05
PAIR_RULE = f"Welch t, one-sided α = {ALPHA}, and gap > {TIE_FLOOR:.0%}"


def decide(better: Sequence[float], worse: Sequence[float], *, rel_floor: float = TIE_FLOOR) -> str:
    """:func:`compare` of per-seed values (Welch, :data:`PAIR_RULE`): a gap below ``rel_floor`` ties."""
    return compare(Measured.from_seeds(better), Measured.from_seeds(worse), rel_floor=rel_floor)


def concordant(a: str, b: str) -> str:
    """``a`` when two rules on one claim agree, else *inconclusive*."""
    return a if a == b else INCONCLUSIVE


AGREEMENT_RULE = "no row disagrees and ≥ half agree (holds); disagreements ≥ agreements (fails)"


def agreement_verdict(agree: int, disagree: int, n: int) -> str:
    """A prediction on ``n`` cases (each agrees, disagrees or ties): :data:`AGREEMENT_RULE`."""
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
    """The sign of a correlation from an interval on it: *holds* above 0, *fails* below 0."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return INCONCLUSIVE
    return HOLDS if lo > 0 else FAILS if hi < 0 else INCONCLUSIVE


def rank_test_verdict(rho: float, p: float, *, alpha: float = ALPHA) -> str:
    """A rank correlation's sign, ``alpha`` each way: *holds* (``rho > 0``) or *fails* if ``p < 2 alpha``."""
    if not (math.isfinite(rho) and math.isfinite(p)) or p >= 2 * alpha:
        return INCONCLUSIVE
    return HOLDS if rho > 0 else FAILS


def threshold_verdict(values: Iterable[float], *, below: bool, tol: float, far: float = 1e3) -> str:
    """*holds* when every value is at the claimed extreme, *fails* at the other, else *inconclusive*.

    The extremes: all at round-off (``< tol``, the claim with ``below``) or all clearly not (``> far * tol``).
    """
    v = np.asarray(list(values), dtype=float)
    lo, hi = float(v.min()), float(v.max())
    small, large = hi < tol, lo > far * tol
    if below:
        return HOLDS if small else FAILS if large else INCONCLUSIVE
    return HOLDS if large else FAILS if small else INCONCLUSIVE


#: Standard errors by which a seed mean may violate an inequality and still hold (:func:`holds_on_average`).
SE_MARGIN = 4
SE_MARGIN_RULE = f"not violated by more than {SE_MARGIN} standard errors"


def holds_on_average(excess: float, se: float) -> bool:
    """Whether ``lhs <= rhs`` holds in expectation: ``excess`` (seed mean of lhs - rhs) ``<= 4 se``.

    For a tight inequality and normal per-seed values ``excess / se`` is Student t (``S - 1`` dof): a
    false "violated" at 1.4% with 4 seeds, 2e-4 with 32 (``ci``), 3e-5 with many, per value checked.
    An exact run (``se = 0``) holds only without any violation.
    """
    return excess <= SE_MARGIN * se


def holds_pathwise(lhs, rhs, *, rtol: float = 1e-9) -> bool:
    """Whether ``lhs <= rhs`` on every seed and block (Lemma 3.14), up to a relative round-off ``rtol``."""
    return bool((lhs <= rhs * (1 + rtol)).all())


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
    """A claim "``better`` is lower than ``worse``" (keys of values), the paper's report, place and origin."""

    text: str
    better: str
    worse: str
    paper: str = ""
    where: str = ""
    origin: str = PAPER


def claims_table(
    values: Mapping[str, Measured | float], claims: Sequence[Claim], *, scale, page="", digits=3, labels=None
) -> pd.DataFrame:
    """The verdict table of pairwise claims (seed means by :func:`seed_texts`; a missing key: not run)."""
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
    claim: str, verdict: str, *, ours: str, scale: str, paper="", rule="", page="", where="", origin=PAPER
) -> dict:
    """One row of a verdict table (columns :data:`VERDICT_COLUMNS`; :func:`save_verdicts` checks it)."""
    values = (claim, where, origin, paper, ours, verdict, rule, scale, page)
    return dict(zip(VERDICT_COLUMNS, values, strict=True))


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
