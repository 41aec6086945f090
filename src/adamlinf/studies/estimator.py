r"""Theorem 4.1 study: the error of the Cauchy (1,1)-norm estimator against the probe count.

The error of Algorithm 4 is measured against exact Hessians as a function of the number of probes.

The estimator itself is :func:`adamlinf.hessian.l11_norm`; this module holds the experiment of
the Theorem 4.1 page: test matrices with heavy-tailed rows and the exact Hessian of a small GPT,
nested-prefix sweeps over the probe count ``n``, error quantiles over seeds, the fit of the rate
:math:`\varepsilon_\delta(n)=\sqrt{C\log(1/\delta)/n}`, the probe-count error table that the
Hessian tables of Sections 4.2 and 4.3 quote, and a coverage check of the bootstrap band.

==================================  ===========================================================
``heavy_tailed_matrix(d, seed)``    :math:`S(G+G^\top)S` with log-normal row scales
``small_gpt_hessian(gpt, batch)``   exact float64 Hessian of a tiny GPT at initialisation
``l11_sweep(H, n_grid, seeds)``     relative error of the estimate for every seed and ``n``
``l11_error_study(n_grid, ...)``    both test cases through :func:`l11_sweep`
``error_quantiles(sweep)``          error quantiles over seeds
``fit_rate(qtab)``                  slope and constant of the :math:`n^{-1/2}` rate
``probe_error_table(qtab, ns)``     median and 90% error at given probe counts
``band_coverage(H, n, reps)``       how often the bootstrap band covers the exact value
``rate_intervals(sweep)``           the slope with a seed-bootstrap 95% interval
``rate_verdicts(intervals)``        the "Paper vs ours" rows of the page
==================================  ===========================================================
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from adamlinf.hessian import exact_hessian, l11_exact, l11_norm, row_scales
from adamlinf.models.gpt import GPT, GPTConfig
from adamlinf.studies.verdicts import SLOPE_LEVEL, slope_finding, slope_verdict, verdict_row

__all__ = [
    "heavy_tailed_matrix",
    "small_gpt_hessian",
    "l11_sweep",
    "rate_constant",
    "l11_error_study",
    "error_quantiles",
    "fit_rate",
    "probe_error_table",
    "band_coverage",
    "rate_intervals",
    "rate_verdicts",
]


def heavy_tailed_matrix(d: int, seed: int = 0, sigma: float = 1.0, *, dtype=torch.float64) -> Tensor:
    r"""A random symmetric test matrix with heavy-tailed rows.

    :math:`H = S(G+G^\top)S` with :math:`G_{ij}\sim\mathcal N(0,1)` and
    :math:`S=\mathrm{diag}(e^{\sigma z_i})`, :math:`z_i\sim\mathcal N(0,1)`, so the row norms
    :math:`\|H_{j,:}\|_1\propto s_j` are log-normal (a few rows carry much of
    :math:`\|H\|_{1,1}`, the hard case for Theorem 4.1).

    Args:
        d: Size.
        seed: Seed.
        sigma: Spread of the log row scales (0: no heavy tail).
        dtype: Dtype of the result.

    Returns:
        The ``(d, d)`` matrix.
    """
    g = torch.Generator().manual_seed(int(seed))
    s = torch.exp(sigma * torch.randn(d, generator=g, dtype=torch.float64))
    G = torch.randn(d, d, generator=g, dtype=torch.float64)
    return (s[:, None] * (G + G.T) * s[None, :]).to(dtype)


def small_gpt_hessian(gpt: dict, batch_size: int, *, seed: int = 0, device="cpu") -> Tensor:
    r"""The exact float64 Hessian of a small GPT's mean next-token loss at initialisation.

    One fixed batch of ``batch_size`` uniformly random token sequences; the network test case (b)
    of the Theorem 4.1 experiment. Attention is forced to ``"math"`` (the fused kernels have no
    second derivative). ``torch.manual_seed(seed)`` seeds both the weights and the tokens.

    Args:
        gpt: :class:`adamlinf.models.gpt.GPTConfig` keyword arguments (``vocab_size``,
            ``block_size``, ``n_layer``, ``n_head``, ``n_embd``).
        batch_size: Sequences in the batch.
        seed: Seed of weights and tokens.
        device: Device.

    Returns:
        The ``(d, d)`` Hessian (``d`` = number of parameters, so keep the model tiny).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    cfg = {k: v for k, v in dict(gpt).items() if k != "attention"}
    torch.manual_seed(int(seed))
    model = GPT(GPTConfig(**cfg, attention="math")).to(device=device, dtype=torch.float64).eval()
    tokens = torch.randint(0, cfg["vocab_size"], (batch_size, cfg["block_size"] + 1), device=device)
    batch = (tokens[:, :-1], tokens[:, 1:])
    return exact_hessian(model, lambda m, b: m(b[0], b[1])[1], batch)


def l11_sweep(
    H: Tensor,
    n_grid: Sequence[int],
    seeds: Iterable[int],
    *,
    variants: Sequence[str] = ("median", "iqr"),
    chunk: int = 1 << 16,
) -> pd.DataFrame:
    r"""Relative error of the Algorithm 4 estimate of :math:`\|H\|_{1,1}` against the probe count.

    For every seed, draw ``max(n_grid)`` Cauchy probes at once (one ``torch.Generator`` seeded
    with the seed), form all products ``V H`` in one matrix product, and evaluate the estimate on
    the first ``n`` probes for each ``n`` in ``n_grid`` (nested prefixes).

    Args:
        H: A dense square matrix.
        n_grid: Probe counts.
        seeds: Probe seeds.
        variants: ``"median"`` and/or ``"iqr"``.
        chunk: Coordinates per quantile reduction.

    Returns:
        A tidy table with columns ``seed, n, variant, estimate, exact, rel_error``
        (``rel_error = |est/exact - 1|``).
    """
    H = torch.as_tensor(H)
    if H.ndim != 2 or H.shape[0] != H.shape[1]:
        raise ValueError(f"H must be square, got {tuple(H.shape)}")
    for v in variants:
        if v not in ("median", "iqr"):
            raise ValueError(f"variant must be 'median' or 'iqr', got {v!r}")
    n_grid = sorted(int(n) for n in n_grid)
    if not n_grid or n_grid[0] < 1:
        raise ValueError("n_grid must hold positive integers")
    exact = l11_exact(H)
    d = H.shape[0]
    rows = []
    for seed in seeds:
        g = torch.Generator(device=H.device).manual_seed(int(seed))
        V = torch.empty((n_grid[-1], d), dtype=H.dtype, device=H.device).cauchy_(generator=g)
        HV = V @ H.T
        for n in n_grid:
            for variant in variants:
                est = float(row_scales(HV[:n], variant, chunk).sum())
                rows.append(
                    dict(
                        seed=int(seed),
                        n=n,
                        variant=variant,
                        estimate=est,
                        exact=exact,
                        rel_error=abs(est / exact - 1),
                    )
                )
    return pd.DataFrame(rows)


def rate_constant(n, eps, delta: float) -> float:
    r"""Fit the constant of Theorem 4.1's rate :math:`\varepsilon(n)=\sqrt{C\log(1/\delta)/n}`.

    The :math:`\log(d/\delta)` term is negligible for :math:`n\gg\log d`. Least squares in log
    space on measured :math:`(1-\delta)`-quantiles ``eps`` of the relative error at probe counts
    ``n``: :math:`\log C=\mathrm{mean}(\log(\varepsilon^2 n/\log(1/\delta)))`.

    Args:
        n: Probe counts.
        eps: Error quantiles at those counts.
        delta: One minus the quantile level.

    Returns:
        The constant ``C``.
    """
    n = np.asarray(n, dtype=float)
    eps = np.asarray(eps, dtype=float)
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta}")
    return float(np.exp(np.mean(np.log(eps**2 * n / np.log(1 / delta)))))


def l11_error_study(
    n_grid: Sequence[int],
    *,
    matrix_d: int = 200,
    matrix_tails: Sequence[float] = (0.0, 1.0),
    matrix_seeds: int = 50,
    gpt: dict | None = None,
    gpt_batch: int = 4,
    gpt_seeds: int = 20,
    variants: Sequence[str] = ("median", "iqr"),
    seed: int = 0,
    device="cpu",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    r"""The Theorem 4.1 experiment: relative error of the estimate against ``n`` on two cases.

    (a) one :func:`heavy_tailed_matrix` of size ``matrix_d`` per row-scale ``sigma`` in
    ``matrix_tails`` (seed ``seed``), with ``matrix_seeds`` probe seeds each, and (b) if ``gpt``
    is given, the exact Hessian of a small GPT (:func:`small_gpt_hessian` with ``gpt_batch``
    sequences), with ``gpt_seeds`` probe seeds; each through :func:`l11_sweep` (probe seeds
    ``seed, seed+1, ...``).

    Args:
        n_grid: Probe counts.
        matrix_d: Size of the test matrices.
        matrix_tails: Their ``sigma`` values.
        matrix_seeds: Probe seeds per matrix.
        gpt: GPT config for case (b), or ``None``.
        gpt_batch: Sequences in the GPT's batch.
        gpt_seeds: Probe seeds for the GPT Hessian.
        variants: Estimator variants.
        seed: Base seed.
        device: Device.

    Returns:
        ``(sweep, problems)``: ``sweep`` has one row per problem, seed, ``n`` and variant
        (``problem, seed, n, variant, estimate, exact, rel_error, d, row_norm_max_over_median``);
        ``problems`` one row per problem (``problem, kind, sigma, d, l11_per_d, spectral_norm,
        row_norm_max_over_median, n_seeds, wall_time_s``).
    """
    if matrix_d < 1 or matrix_seeds < 0 or gpt_seeds < 0:
        raise ValueError("matrix_d must be >= 1 and the seed counts >= 0")
    cases = [(f"random d={matrix_d}, sigma={s:g}", "matrix", float(s), matrix_seeds) for s in matrix_tails]
    if gpt is not None:
        cases.append((None, "gpt", float("nan"), gpt_seeds))
    frames, info = [], []
    for name, kind, sigma, n_seeds in cases:
        t0 = time.perf_counter()
        if kind == "matrix":
            H = heavy_tailed_matrix(matrix_d, seed=seed, sigma=sigma).to(device)
        else:
            H = small_gpt_hessian(gpt, gpt_batch, seed=seed, device=device)
            name = f"GPT Hessian d={H.shape[0]}"
        d = H.shape[0]
        gam = H.abs().sum(1)
        ratio = float(gam.max() / gam.median())
        df = l11_sweep(H, n_grid, range(seed, seed + n_seeds), variants=variants)
        df.insert(0, "problem", name)
        df["d"] = d
        df["row_norm_max_over_median"] = ratio
        frames.append(df)
        info.append(
            dict(
                problem=name,
                kind=kind,
                sigma=sigma,
                d=d,
                l11_per_d=l11_exact(H) / d,
                spectral_norm=float(torch.linalg.eigvalsh(H).abs().max()),
                row_norm_max_over_median=ratio,
                n_seeds=n_seeds,
                wall_time_s=time.perf_counter() - t0,
            )
        )
    return pd.concat(frames, ignore_index=True), pd.DataFrame(info)


def error_quantiles(sweep: pd.DataFrame, quantiles: Sequence[float] = (0.5, 0.9, 0.99)) -> pd.DataFrame:
    """The ``quantiles`` of ``rel_error`` over seeds, per ``problem`` (if present), variant and ``n``.

    Args:
        sweep: A :func:`l11_sweep` / :func:`l11_error_study` table.
        quantiles: Levels in (0, 1).

    Returns:
        A tidy table with columns ``[problem,] variant, n, quantile, rel_error``.
    """
    for q in quantiles:
        if not 0 < q < 1:
            raise ValueError(f"quantiles must lie in (0, 1), got {q}")
    keys = [k for k in ("problem", "variant", "n") if k in sweep.columns]
    if "variant" not in keys or "n" not in keys or "rel_error" not in sweep.columns:
        raise ValueError("sweep needs columns variant, n and rel_error")
    return (
        sweep.groupby(keys)
        .rel_error.quantile(list(quantiles))
        .rename("rel_error")
        .reset_index()
        .rename(columns={f"level_{len(keys)}": "quantile"})
    )


def fit_rate(qtab: pd.DataFrame, *, n_min: int = 100, n_ref: int | None = 50) -> pd.DataFrame:
    r"""Fit Theorem 4.1's rate to measured error quantiles (the output of :func:`error_quantiles`).

    For every ``(problem, variant, quantile)`` group with :math:`q=1-\delta`, on the points with
    ``n >= n_min``: the constant ``C`` of :math:`\varepsilon_\delta(n)=\sqrt{C\log(1/\delta)/n}`
    (:func:`rate_constant`), and the least-squares slope of :math:`\log\varepsilon` against
    :math:`\log n` (the theorem predicts :math:`-1/2`). If ``n_ref`` is given, also the error at
    ``n = n_ref`` (log-linear interpolation in ``n``; the authors use 50 probes).

    Args:
        qtab: Error quantiles.
        n_min: Smallest ``n`` in the fit.
        n_ref: Probe count to interpolate the error at.

    Returns:
        A table with columns ``[problem,] variant, quantile, delta, C, slope, n_points[,
        rel_error_at_n_ref]``.

    Raises:
        ValueError: A group has fewer than two points with ``n >= n_min`` or a non-positive error.
    """
    keys = [k for k in ("problem", "variant", "quantile") if k in qtab.columns]
    if "quantile" not in keys:
        raise ValueError("qtab needs a 'quantile' column (see error_quantiles)")
    fits = []
    for key, g in qtab.groupby(keys):
        g = g.sort_values("n")
        q = float(g["quantile"].iloc[0])
        big = g[g.n >= n_min]
        if len(big) < 2 or (big.rel_error <= 0).any():
            raise ValueError(f"group {key}: need >= 2 positive errors with n >= {n_min}, got {len(big)}")
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True))
        row.update(
            delta=1 - q,
            C=rate_constant(big.n, big.rel_error, delta=1 - q),
            slope=float(np.polyfit(np.log(big.n), np.log(big.rel_error), 1)[0]),
            n_points=len(big),
        )
        if n_ref is not None:
            row["rel_error_at_n_ref"] = float(np.interp(np.log(n_ref), np.log(g.n), g.rel_error))
        fits.append(row)
    return pd.DataFrame(fits)


def probe_error_table(qtab: pd.DataFrame, ns: Sequence[int] = (16, 50), quantiles=(0.5, 0.9)) -> pd.DataFrame:
    """The relative error of the estimate at given probe counts: one row per problem, variant, ``n``.

    The numbers the Hessian tables (Tables 2 and 4) quote for the error of an estimate from ``n``
    probes. Values at counts between the measured ones are interpolated log-linearly in ``n``.

    Args:
        qtab: Error quantiles (:func:`error_quantiles`).
        ns: Probe counts.
        quantiles: Levels to report (each must be in ``qtab``).

    Returns:
        Columns ``problem, variant, n`` and one ``"error qNN%"`` column per quantile.
    """
    have = set(np.round(qtab["quantile"], 12))
    missing = [q for q in quantiles if round(q, 12) not in have]
    if missing:
        raise ValueError(f"quantiles {missing} are not in the table (has {sorted(have)})")
    keys = [k for k in ("problem", "variant") if k in qtab.columns]
    rows = []
    for key, g in qtab.groupby(keys, sort=False):
        for n in ns:
            row = dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True), n=int(n))
            for q in quantiles:
                s = g[np.isclose(g["quantile"], q)].sort_values("n")
                row[f"error q{q:.0%}"] = float(np.interp(np.log(n), np.log(s.n), s.rel_error))
            rows.append(row)
    return pd.DataFrame(rows)


def band_coverage(
    H: Tensor,
    n_probes: int,
    reps: int,
    *,
    level: float = 0.9,
    variant: str = "median",
    n_boot: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    r"""How often the bootstrap band of :func:`adamlinf.hessian.l11_norm` covers the exact value.

    Args:
        H: A dense symmetric matrix (its :math:`\|H\|_{1,1}` is the truth).
        n_probes: Probes per estimate.
        reps: Independent estimates (probe seeds ``seed .. seed+reps-1``).
        level: Band level.
        variant: Estimator variant.
        n_boot: Bootstrap resamples.
        seed: First probe seed.

    Returns:
        One row per repetition: ``seed, estimate, lo, hi, exact, covered``.
    """
    exact = l11_exact(H)
    rows = []
    for s in range(seed, seed + reps):
        e = l11_norm(H, n_probes, seed=s, variant=variant, partition=None, progress=False,
                     batch_probes=n_probes, band_level=level, n_boot=n_boot)  # fmt: skip
        rows.append(
            dict(seed=s, estimate=e.total, lo=e.lo, hi=e.hi, exact=exact, covered=e.lo <= exact <= e.hi)
        )
    return pd.DataFrame(rows)


def rate_intervals(
    sweep: pd.DataFrame,
    *,
    n_min: int = 100,
    quantile: float = 0.5,
    n_boot: int = 400,
    level: float = SLOPE_LEVEL,
    seed: int = 0,
) -> pd.DataFrame:
    r"""The log-log slope of an error quantile against ``n``, with a seed-bootstrap interval.

    Per ``(problem, variant)`` of a :func:`l11_error_study` sweep: the least-squares slope of
    :math:`\log q_{\text{quantile}}(\varepsilon)` against :math:`\log n` on ``n >= n_min``, and
    its ``level`` percentile interval over ``n_boot`` bootstrap replicates that resample the probe
    seeds with replacement (one seed keeps its estimates at every ``n`` together).

    Returns:
        Columns ``problem, variant, quantile, slope, lo, hi, n_points, n_seeds``.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for (problem, variant), g in sweep[sweep.n >= n_min].groupby(["problem", "variant"], sort=False):
        wide = g.pivot_table(index="seed", columns="n", values="rel_error")
        logn = np.log(wide.columns.to_numpy(dtype=float))
        err = wide.to_numpy(dtype=float)

        def slope(e, logn=logn):
            return float(np.polyfit(logn, np.log(np.quantile(e, quantile, axis=0)), 1)[0])

        reps = [slope(err[rng.integers(0, len(err), len(err))]) for _ in range(n_boot)]
        q = (1 - level) / 2
        rows.append(
            dict(
                problem=problem,
                variant=variant,
                quantile=quantile,
                slope=slope(err),
                lo=float(np.quantile(reps, q)),
                hi=float(np.quantile(reps, 1 - q)),
                n_points=len(logn),
                n_seeds=len(err),
            )
        )
    return pd.DataFrame(rows)


def rate_verdicts(intervals: pd.DataFrame, *, scale: str, page: str = "thm41_estimator") -> pd.DataFrame:
    """The "Paper vs ours" rows: per problem and variant, does the error decay like :math:`n^{-1/2}`?

    Decided by :func:`adamlinf.studies.verdicts.slope_verdict` on the bootstrap interval of
    :func:`rate_intervals` with the prediction -1/2, ``side="upper"``: Theorem 4.1 bounds the
    error, so a steeper fall is allowed; a shallower one (the interval above -1/2) fails.

    Args:
        intervals: The output of :func:`rate_intervals`.
        scale: The scale of the run.
        page: The notebook name.

    Returns:
        A verdict table (columns of :data:`adamlinf.studies.verdicts.VERDICT_COLUMNS`).
    """
    rows = []
    for r in intervals.itertuples():
        finding = slope_finding(r.lo, r.hi, -0.5)
        rows.append(
            verdict_row(
                f"Cauchy estimate error decays like n^(-1/2): {r.problem} ({r.variant})",
                slope_verdict(r.lo, r.hi, -0.5, side="upper"),
                ours=f"slope of the {r.quantile:.0%} error quantile {r.slope:.2f}, {SLOPE_LEVEL:.0%} "
                f"interval [{r.lo:.2f}, {r.hi:.2f}] ({r.n_points} values of n, {r.n_seeds} seeds)"
                + (f"; {finding}" if finding else ""),
                paper="slope -1/2 (Theorem 4.1, RECONSTRUCTED)",
                rule=f"{SLOPE_LEVEL:.0%} seed-bootstrap interval of the slope contains -1/2 or lies below it "
                "(holds); lies above it (fails)",
                scale=scale,
                page=page,
                where="Theorem 4.1",
            )
        )
    return pd.DataFrame(rows)
