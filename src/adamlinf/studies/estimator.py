r"""Theorem 4.1 study: the error of the Cauchy (1,1)-norm estimator against the probe count.

The error of :func:`adamlinf.hessian.l11_norm` on heavy-tailed matrices and a tiny GPT's exact Hessian
against ``n``, the rate :math:`\varepsilon_\delta(n)=\sqrt{C\log(1/\delta)/n}`, the band's coverage.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from adamlinf.hessian import exact_hessian, l11_norm, row_scales
from adamlinf.models.gpt import GPT, GPTConfig
from adamlinf.studies.verdicts import SLOPE_LEVEL, slope_finding, slope_verdict, verdict_row
from adamlinf.theory import l11_exact


def heavy_tailed_matrix(d: int, seed: int = 0, sigma: float = 1.0) -> Tensor:
    r""":math:`H=S(G+G^\top)S`, :math:`G_{ij}\sim\mathcal N(0,1)`, :math:`S=\mathrm{diag}(e^{\sigma z_i})`.

    Log-normal row norms: a few rows carry much of :math:`\|H\|_{1,1}`, the hard case for Theorem 4.1.
    """
    g = torch.Generator().manual_seed(int(seed))
    s = torch.exp(sigma * torch.randn(d, generator=g, dtype=torch.float64))
    G = torch.randn(d, d, generator=g, dtype=torch.float64)
    return s[:, None] * (G + G.T) * s[None, :]


def small_gpt_hessian(gpt: dict, batch_size: int, *, seed: int = 0, device="cpu") -> Tensor:
    """The exact float64 Hessian of a tiny GPT (``GPTConfig(**gpt)``, math attention) at initialisation.

    Mean next-token loss on ``batch_size`` random sequences; all seeded by ``torch.manual_seed(seed)``.
    """
    cfg = {k: v for k, v in dict(gpt).items() if k != "attention"}
    torch.manual_seed(int(seed))
    model = GPT(GPTConfig(**cfg, attention="math")).to(device=device, dtype=torch.float64).eval()
    tokens = torch.randint(0, cfg["vocab_size"], (batch_size, cfg["block_size"] + 1), device=device)
    return exact_hessian(model, lambda m, b: m(b[0], b[1])[1], (tokens[:, :-1], tokens[:, 1:]))


def l11_sweep(H: Tensor, n_grid: Sequence[int], seeds, *, variants=("median", "iqr")) -> pd.DataFrame:
    """Relative error of Algorithm 4 on ``H`` for every seed, ``n`` in ``n_grid`` and variant.

    Per seed ``max(n_grid)`` probes from one generator, the estimate on the first ``n`` (nested
    prefixes). Columns ``seed, n, variant, estimate, exact, rel_error``.
    """
    n_grid = sorted(int(n) for n in n_grid)
    exact = l11_exact(H)
    rows = []
    for seed in seeds:
        g = torch.Generator(device=H.device).manual_seed(int(seed))
        HV = torch.empty((n_grid[-1], H.shape[0]), dtype=H.dtype, device=H.device).cauchy_(generator=g) @ H.T
        for n in n_grid:
            for variant in variants:
                est = float(row_scales(HV[:n], variant).sum())
                rows.append(dict(seed=int(seed), n=n, variant=variant, estimate=est, exact=exact))
    out = pd.DataFrame(rows)
    return out.assign(rel_error=(out.estimate / out.exact - 1).abs())


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
    """The Theorem 4.1 experiment: :func:`l11_sweep` on test matrices and a tiny GPT's Hessian.

    One :func:`heavy_tailed_matrix` per ``sigma`` in ``matrix_tails`` and, with ``gpt``,
    :func:`small_gpt_hessian`; probe seeds ``seed, seed+1, ...``. Returns ``(sweep, problems)``: the
    sweeps with ``problem, d, row_norm_max_over_median``, and one row per problem.
    """
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
        frames.append(df.assign(d=d, row_norm_max_over_median=ratio))
        row = dict(problem=name, kind=kind, sigma=sigma, d=d, l11_per_d=l11_exact(H) / d)
        row.update(spectral_norm=float(torch.linalg.eigvalsh(H).abs().max()), row_norm_max_over_median=ratio)
        info.append({**row, "n_seeds": n_seeds, "wall_time_s": time.perf_counter() - t0})
    return pd.concat(frames, ignore_index=True), pd.DataFrame(info)


def _keys(df: pd.DataFrame, *names: str) -> list[str]:
    return [k for k in names if k in df.columns]


def error_quantiles(sweep: pd.DataFrame, quantiles: Sequence[float] = (0.5, 0.9, 0.99)) -> pd.DataFrame:
    """The ``quantiles`` of ``rel_error`` over seeds per ``[problem,] variant, n`` (column ``quantile``)."""
    keys = _keys(sweep, "problem", "variant", "n")
    q = sweep.groupby(keys).rel_error.quantile(list(quantiles)).rename("rel_error").reset_index()
    return q.rename(columns={f"level_{len(keys)}": "quantile"})


def fit_rate(qtab: pd.DataFrame, *, n_min: int = 100, n_ref: int | None = 50) -> pd.DataFrame:
    r"""Theorem 4.1's rate fitted per ``[problem,] variant, quantile`` on the points ``n >= n_min``.

    ``C`` :math:`=\exp\mathrm{mean}\log(\varepsilon^2n/\log(1/\delta))`, :math:`\delta=1-q`; the
    least-squares slope of :math:`\log\varepsilon` on :math:`\log n` (predicted :math:`-1/2`), ``n_points``
    and, with ``n_ref``, the error at ``n_ref`` interpolated log-linearly. ``ValueError`` for a group with
    fewer than two positive errors at ``n >= n_min``.
    """
    keys = _keys(qtab, "problem", "variant", "quantile")
    fits = []
    for key, g in qtab.groupby(keys):
        g = g.sort_values("n")
        q = float(g["quantile"].iloc[0])
        big = g[g.n >= n_min]
        if len(big) < 2 or (big.rel_error <= 0).any():
            raise ValueError(f"group {key}: need >= 2 positive errors with n >= {n_min}, got {len(big)}")
        slope = float(np.polyfit(np.log(big.n), np.log(big.rel_error), 1)[0])
        n, eps = big.n.to_numpy(dtype=float), big.rel_error.to_numpy(dtype=float)
        C = float(np.exp(np.mean(np.log(eps**2 * n / np.log(1 / (1 - q))))))
        row = dict(zip(keys, key, strict=True), delta=1 - q, C=C, slope=slope, n_points=len(big))
        if n_ref is not None:
            row["rel_error_at_n_ref"] = float(np.interp(np.log(n_ref), np.log(g.n), g.rel_error))
        fits.append(row)
    return pd.DataFrame(fits)


def probe_error_table(qtab: pd.DataFrame, ns: Sequence[int] = (16, 50), quantiles=(0.5, 0.9)) -> pd.DataFrame:
    """The error quantiles at probe counts ``ns`` (log-linear in ``n``): one ``"error qNN%"`` column each."""
    keys = _keys(qtab, "problem", "variant")
    rows = []
    for key, g in qtab.groupby(keys, sort=False):
        for n in ns:
            row = dict(zip(keys, key, strict=True), n=int(n))
            for q in quantiles:
                s = g[np.isclose(g["quantile"], q)].sort_values("n")
                row[f"error q{q:.0%}"] = float(np.interp(np.log(n), np.log(s.n), s.rel_error))
            rows.append(row)
    return pd.DataFrame(rows)


def band_coverage(
    H: Tensor, n_probes: int, reps: int, *, level=0.9, variant="median", n_boot=2000, seed=0
) -> pd.DataFrame:
    r"""Whether the band of :func:`~adamlinf.hessian.l11_norm` covers :math:`\|H\|_{1,1}`, per probe seed.

    Columns ``seed, estimate, lo, hi, exact, covered`` for seeds ``seed .. seed+reps-1``.
    """
    exact = l11_exact(H)
    kw = dict(partition=None, progress=False, batch_probes=n_probes, band_level=level, n_boot=n_boot)
    rows = []
    for s in range(seed, seed + reps):
        e = l11_norm(H, n_probes, seed=s, variant=variant, **kw)
        rows.append(dict(seed=s, estimate=e.total, lo=e.lo, hi=e.hi, exact=exact))
    out = pd.DataFrame(rows)
    return out.assign(covered=(out.lo <= out.exact) & (out.exact <= out.hi))


def rate_intervals(sweep: pd.DataFrame, *, n_min=100, quantile=0.5, n_boot=400, seed=0) -> pd.DataFrame:
    r"""The slope of :math:`\log q_{\text{quantile}}(\varepsilon)` on :math:`\log n`, bootstrap interval.

    Per problem and variant on ``n >= n_min``: the slope and its ``SLOPE_LEVEL`` percentile interval
    (``lo``, ``hi``) over ``n_boot`` resamples of the seeds (:mod:`adamlinf.studies.verdicts`).
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
        q = (1 - SLOPE_LEVEL) / 2
        lo, hi = float(np.quantile(reps, q)), float(np.quantile(reps, 1 - q))
        row = dict(problem=problem, variant=variant, quantile=quantile, slope=slope(err), lo=lo, hi=hi)
        rows.append({**row, "n_points": len(logn), "n_seeds": len(err)})
    return pd.DataFrame(rows)


def rate_verdicts(intervals: pd.DataFrame, *, scale: str, page: str = "thm41_estimator") -> pd.DataFrame:
    """Per problem and variant: does the error decay like :math:`n^{-1/2}`?

    ``slope_verdict`` of the :func:`rate_intervals` interval, ``side="upper"`` (Theorem 4.1 bounds it).
    """
    rule = (
        f"{SLOPE_LEVEL:.0%} seed-bootstrap interval of the slope contains -1/2 or lies below it "
        "(holds); lies above it (fails)"
    )
    paper = "slope -1/2 (Theorem 4.1, RECONSTRUCTED)"
    kw = dict(paper=paper, rule=rule, scale=scale, page=page, where="Theorem 4.1")
    rows = []
    for r in intervals.itertuples():
        finding = slope_finding(r.lo, r.hi, -0.5)
        ours = (
            f"slope of the {r.quantile:.0%} error quantile {r.slope:.2f}, {SLOPE_LEVEL:.0%} "
            f"interval [{r.lo:.2f}, {r.hi:.2f}] ({r.n_points} values of n, {r.n_seeds} seeds)"
        )
        ours += f"; {finding}" if finding else ""
        claim = f"Cauchy estimate error decays like n^(-1/2): {r.problem} ({r.variant})"
        rows.append(verdict_row(claim, slope_verdict(r.lo, r.hi, -0.5, side="upper"), ours=ours, **kw))
    return pd.DataFrame(rows)
