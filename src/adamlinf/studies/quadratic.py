r"""Table 1 (Section 4.1) as a sweep: spectra × rotations × noise × optimizers, tuned, with verdicts.

Claims: (a) Adam's tuned loss rises with :math:`\|H_\theta\|_{1,1}/d` (Corollary 3.7); (b) Adam beats AdaSGD
exactly when :math:`\|H_\theta\|_{1,1}/d<\|H_\theta\|_2` (Theorem 3.11). The paper's settings were not
recovered: each claim is decided per (spectrum, σ, β₁) on Adam at :math:`\theta=0`,
:math:`R_\theta=\exp(\theta S)` and Haar, SignGD, AdaSGD and SGD at :math:`\theta=0`
(:func:`equivariance_check`), lrs tuned on separate seeds. Metric: steps to :math:`10^{-8}L(x_0)` under a
cosine step (σ = 0, :func:`effective_steps`), else :math:`L(x_T)/L(x_0)` over the last tenth; two settings
differ by Welch's one-sided test (α = 0.05) *and* 5% (:func:`~adamlinf.studies.verdicts.decide`).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr

from adamlinf import optim, theory, tune
from adamlinf import problems as Q
from adamlinf.studies import verdicts as V

OPTIMIZERS = ("adam", "adasgd", "sgd", "signgd")  # the rules run_batched steps (optim.OPTIMIZERS names)
#: :math:`\varepsilon` of the noise-free criterion: steps to reach :math:`L \le \varepsilon L(x_0)`.
EPS_REACH = 1e-8

#: Starting grids per optimizer (``[lo, factor, n]``: ``n`` values ``lo * factor**k``), for
#: :math:`\|H\|_2 = 1`; :func:`adamlinf.tune.search` extends them where the optimum is at an edge.
COARSE_GRIDS = {name: (1e-3, 1.5**3, 6) for name in ("adam", "signgd", "adasgd")} | {"sgd": (1e-2, 1.5**3, 6)}

#: The columns of Table 1: ``(beta1, name)``.
COLUMNS = ((0.0, "β1=0"), (0.9, "β1=0.9"))
METRIC_NOISY = "L(x_T)/L(x₀)"
METRIC_EXACT = "steps to 1e-8·L(x₀)"


def effective_steps(steps_to_reach, rel_last, steps: int, eps: float = EPS_REACH) -> np.ndarray:
    r"""The noise-free metric: :math:`\tau` (steps to :math:`L \le \varepsilon L(x_0)`) where reached.

    Else :math:`T\,(1 + \log_{10}(L(x_T) / (\varepsilon L(x_0))))` (behind every run that reached it; inf
    if non-finite), ``rel_last`` :math:`=L(x_T)/L(x_0)`.
    """
    tau, rel = np.asarray(steps_to_reach, dtype=float), np.asarray(rel_last, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        late = steps * (1.0 + np.log10(np.maximum(rel, eps) / eps))
    out = np.where(np.isfinite(tau), tau, late)
    return np.where(np.isfinite(out), out, np.inf)


def _slices(keys: list) -> list[tuple]:
    """``(key, start, stop)`` of every stretch of equal consecutive ``keys``."""
    bounds = [0] + [i for i in range(1, len(keys)) if keys[i] != keys[i - 1]] + [len(keys)]
    return [(keys[a], a, b) for a, b in itertools.pairwise(bounds)]


def run_batched(
    problems: Sequence[Q.Quadratic],
    x0: torch.Tensor,
    runs: Sequence[tuple],
    *,
    steps: int,
    seed: int = 0,
    sigma: float = 0.0,
    schedule: str = "constant",
    record_every: int = 1,
    final_window: int = 1,
    reach: float | None = None,
) -> Q.Trace:
    r"""Runs of Adam, AdaSGD, SGD and SignGD on quadratics, stepped together as one ``(runs, d)`` tensor.

    ``runs``: ``(optimizer, beta1, beta2, problem, seed_index, lr)`` (``beta1``: SGD's momentum), batched
    where adjacent runs share rule and problem; start :math:`R^\top x_0` (``x0[seed_index]`` if ``(S, d)``),
    noise stream ``seed_index``. Series ``loss`` ``(n_rec, runs)`` every ``record_every`` and at :math:`T`;
    sums ``final_loss`` (mean of the last ``final_window``), with ``reach`` ``steps_to_reach``.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if not 1 <= final_window <= steps:
        raise ValueError(f"final_window must lie in [1, steps={steps}], got {final_window}")
    if record_every < 1:
        raise ValueError(f"record_every must be >= 1, got {record_every}")
    Q.lr_factor(schedule, 1, steps)  # validates the name
    if bad := [r[0] for r in runs if r[0] not in OPTIMIZERS]:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {bad[0]!r}")
    dtype, device = x0.dtype, x0.device
    problems = [p.to(dtype=dtype, device=device) for p in problems]
    d, R = x0.shape[-1], len(runs)
    lr = torch.tensor([r[5] for r in runs], dtype=dtype, device=device).unsqueeze(1)  # (R, 1)
    seed_idx = torch.tensor([r[4] for r in runs], dtype=torch.long, device=device)
    prob_idx = torch.tensor([r[3] for r in runs], dtype=torch.long, device=device)
    if x0.ndim == 2 and (n_seeds := int(seed_idx.max()) + 1) > x0.shape[0]:
        raise ValueError(f"x0 holds {x0.shape[0]} starts, fewer than n_seeds={n_seeds} (seed indices)")
    starts = torch.stack([p.start(x0) for p in problems])  # R_theta^T x0, once per problem (and seed)
    x = starts[prob_idx, seed_idx] if x0.ndim == 2 else starts[prob_idx]
    m = torch.zeros_like(x)  # first moment (Adam, AdaSGD) or momentum buffer (SGD)
    v_full = torch.zeros_like(x)  # Adam's coordinate-wise second moment
    v_scalar = x.new_zeros(R, 1)  # AdaSGD's one scalar per run
    noise = Q.GradientNoise(d, int(seed_idx.max()) + 1, sigma, base_seed=seed, dtype=dtype, device=device)
    groups = [(*key, a, b) for key, a, b in _slices([r[:3] for r in runs])]
    hess = [(key[3], a, b) for key, a, b in _slices([r[:4] for r in runs])]
    rec_steps: list[int] = []
    rec = x.new_empty(steps // record_every + 2, R)
    tail = x.new_zeros(R)
    hit = torch.full((R,), -1, dtype=torch.long, device=device)
    g = torch.empty_like(x)
    for t in range(steps + 1):
        for p, a, b in hess:
            g[a:b] = problems[p].grad(x[a:b])
        loss = 0.5 * (x * g).sum(1)  # L(x_t)
        if t % record_every == 0 or t == steps:
            rec[len(rec_steps)] = loss
            rec_steps.append(t)
        if reach is not None:
            hit[(hit < 0) & (loss <= reach * rec[0])] = t  # rec[0] = L(x_0)
        if t > steps - final_window:
            tail += loss
        if t == steps:
            break
        if sigma > 0:
            g.add_(noise.sample()[seed_idx])
        for opt, beta1, beta2, a, b in groups:
            xs, gs, ms, lrs = x[a:b], g[a:b], m[a:b], lr[a:b]
            if schedule != "constant":
                lrs = lrs * Q.lr_factor(schedule, t + 1, steps)
            if opt in ("adam", "adasgd"):  # AdaSGD's v is (runs, 1): one scalar per run
                vs = v_full[a:b] if opt == "adam" else v_scalar[a:b]
                optim.adam_update_(xs, gs, ms, vs, lr=lrs, beta1=beta1, beta2=beta2, eps=1e-8, step=t + 1)
            elif opt == "sgd":  # torch.optim.SGD: b <- mu b + g (b_1 = g), x <- x - lr b
                ms.mul_(beta1).add_(gs)
                xs.sub_(ms * lrs)
            else:
                optim.signgd_update_(xs, gs, lr=lrs)
    sums = {"final_loss": (tail / final_window).cpu()}
    if reach is not None:
        sums["steps_to_reach"] = torch.where(hit < 0, math.inf, hit.to(torch.float64)).cpu()
    return Q.Trace(lr[:, 0].cpu(), torch.tensor(rec_steps), {"loss": rec[: len(rec_steps)].cpu()}, sums)


@dataclass(frozen=True)
class Row:
    r"""One optimizer setting on ``Experiment.problems[problem]``; ``beta1`` is SGD's momentum."""

    name: str
    optimizer: str
    problem: int
    beta1: float
    beta2: float
    lrs: tuple[float, ...]
    column: str

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ValueError(f"betas must lie in [0, 1), got ({self.beta1}, {self.beta2})")
        if len(self.lrs) == 0 or any((not math.isfinite(v)) or v <= 0 for v in self.lrs):
            raise ValueError(f"lrs must be a non-empty list of positive numbers, got {self.lrs!r}")


@dataclass
class Experiment:
    """Problems, rows, the start :math:`x_0` (``(d,)`` or one per seed ``(S, d)``) and the noise level."""

    problems: list[Q.Quadratic]
    rows: list[Row]
    x0: torch.Tensor
    sigma: float


def run_experiment(exp: Experiment, *, steps: int, n_seeds: int = 5, seed: int = 0, **kw) -> tuple:
    """Every (row, lr, seed) of ``exp`` in one :func:`run_batched` call: ``(final, curves)``, runs by rule.

    Seed ``s`` is noise stream ``s`` (and start ``exp.x0[s]`` if ``(S, d)``); ``final``: a line per run.
    """
    runs = []
    for j, r in enumerate(exp.rows):
        for k, lr in enumerate(r.lrs):
            runs += [(r.optimizer, r.beta1, r.beta2, r.problem, s, lr, j, k) for s in range(n_seeds)]
    runs.sort(key=lambda r: (OPTIMIZERS.index(r[0]), r[1], r[2], r[3], r[6], r[7], r[4]))
    batch = [r[:6] for r in runs]
    out = run_batched(exp.problems, exp.x0, batch, steps=steps, seed=seed, sigma=exp.sigma, **kw)
    thetas = [getattr(p, "theta", 0.0) for p in exp.problems]
    table = []
    for opt, b1, b2, p, s, lr, j, k in runs:
        table.append((exp.rows[j].name, opt, p, thetas[p], exp.rows[j].column, b1, b2, lr, k, s))
    columns = ["row", "optimizer", "problem", "theta", "column", "beta1", "beta2", "lr", "lr_index", "seed"]
    meta = pd.DataFrame(table, columns=columns)
    loss, final = out["loss"].numpy(), out["final_loss"].numpy()  # (n_rec, runs), (runs,)
    fin = meta.assign(initial_loss=loss[0], final_loss=final, last_loss=loss[-1])
    fin["diverged"] = ~np.isfinite(final) | (final > 1e6 * loss[0])
    if "steps_to_reach" in out:
        fin["steps_to_reach"] = out["steps_to_reach"].numpy()
    cols = ["row", "column", "problem", "theta", "lr", "seed"]
    curves = meta.loc[np.tile(np.arange(len(runs)), len(out.t)), cols].reset_index(drop=True)
    curves["step"] = np.repeat(out.t.numpy(), len(runs))
    curves["loss"] = loss.reshape(-1)
    return fin, curves


@dataclass
class SweepResult:
    """:func:`run_sweep`'s tables (``tuned``: a line per setting) and ``work`` (for :func:`estimate_cost`)."""

    tuned: pd.DataFrame
    per_lr: pd.DataFrame
    curves: pd.DataFrame
    geometry: pd.DataFrame
    wall_time_s: float
    work: dict = field(default_factory=dict)


def _label(name: str, theta: float, d: int) -> str:
    if theta == 0:
        return name
    return f"{name} (Haar)" if math.isinf(theta) else f"{name} (θ√d={theta * math.sqrt(d):.3g})"


def run_sweep(
    *,
    d: int,
    spectra: Sequence[str],
    theta_sqrt_d: Sequence[float],
    sigmas: Sequence[float],
    steps: int,
    n_seeds: int = 3,
    n_tune_seeds: int = 2,
    noise_free_schedule: str = "cosine",
    beta2: float = 0.99,
    factor: float = 1.5,
    max_rounds: int = 8,
    seed: int = 0,
    device="cpu",
) -> SweepResult:
    r"""Run the whole Table 1 sweep with tuned learning rates (module docstring).

    Every round of :func:`adamlinf.tune.search` is one :func:`run_experiment` per :math:`\sigma` holding
    every spectrum, rotation, optimizer and new lr; a last one per :math:`\sigma` reruns the tuned settings
    and records their loss curves (100 points each). ``spectra``: keys of :data:`adamlinf.problems.SPECTRA`;
    ``theta_sqrt_d``: rotation strengths :math:`\theta\sqrt d` (0 and Haar always added); ``n_seeds``
    measuring and ``n_tune_seeds`` tuning seeds (own starts, noise seed ``seed + 1``; the lr is tuned on
    their mean); ``noise_free_schedule``: the lr schedule at :math:`\sigma=0` (noisy runs: constant);
    ``beta2``: Adam's and AdaSGD's; ``factor``: the lr resolution at the optimum, within ``max_rounds``
    rounds; ``seed`` seeds the rotation, the Haar matrix, :math:`x_0` and the noise. All in float64 (the
    criterion assumes its round-off).
    """
    if n_tune_seeds < 1 or n_seeds < 2:
        raise ValueError(f"need n_tune_seeds >= 1 and n_seeds >= 2, got {n_tune_seeds}, {n_seeds}")
    t0 = time.perf_counter()
    thetas = [float(c) / math.sqrt(d) for c in theta_sqrt_d]
    rots = Q.rotation_path(d, thetas, seed=seed, haar_seed=seed + 1, device=device)
    path = [th for th, _ in rots]  # 0, thetas, inf
    problems, rows = [], {}  # rows: (spectrum, column, label) -> (optimizer, problem, beta1, beta2)
    for spec in spectra:
        p0 = len(problems)
        problems += Q.rotated_family(Q.spectrum(spec, d, device=device), rots, spectrum=spec)
        for b1, col in COLUMNS:
            rows[(spec, col, "AdaSGD")] = ("adasgd", p0, b1, beta2)
            for p, th in enumerate(path, start=p0):
                rows[(spec, col, _label("Adam", th, d))] = ("adam", p, b1, beta2)
        for b1, col in COLUMNS:  # SGD's momentum is the column's beta1
            rows[(spec, col, f"SGD (μ={b1:g})")] = ("sgd", p0, b1, 0.0)
        for p, th in enumerate(path, start=p0):
            if th == 0 or math.isinf(th):
                rows[(spec, "β1=0", _label("SignGD", th, d))] = ("signgd", p, 0.0, 0.0)
    gen = torch.Generator().manual_seed(int(seed))
    x0 = torch.randn(n_seeds, d, generator=gen, dtype=torch.float64).to(device)
    x0_tune = torch.randn(n_tune_seeds, d, generator=gen, dtype=torch.float64).to(device)
    norms = [(theory.l11_exact(p.hessian) / p.d, theory.l2_smoothness(p.hessian)) for p in problems]
    geo = [(i, p.spectrum, p.theta, *n) for i, (p, n) in enumerate(zip(problems, norms, strict=True))]
    geometry = pd.DataFrame(geo, columns=["problem", "spectrum", "theta", "l11_per_dim", "spectral_norm"])
    per_lr, tuned, curves, work = [], [], [], {"dense": 0, "diag": 0, "d": d, "steps": steps}
    every = max(1, steps // 100)

    def measure(sigma, schedule, requests, starts, **kw):
        """The runs of ``requests`` (row key -> lrs) from ``starts``, with their metric; counts the work."""
        exp_rows = [Row("|".join(k), *rows[k], tuple(lrs), k[1]) for k, lrs in requests.items()]
        exp = Experiment(problems, exp_rows, starts, float(sigma))
        final, curves = run_experiment(
            exp, steps=steps, final_window=max(1, steps // 10), reach=EPS_REACH, schedule=schedule, **kw
        )
        dense = final["theta"].to_numpy() != 0
        work["dense"] += int(dense.sum()) * steps
        work["diag"] += int((~dense).sum()) * steps
        init = final["initial_loss"]
        rel = final["final_loss"] / init
        if sigma > 0:
            metric = rel.to_numpy(dtype=float)
        else:
            metric = effective_steps(final["steps_to_reach"], final["last_loss"] / init, steps)
        bad = final["diverged"].to_numpy() | ~np.isfinite(rel.to_numpy())
        final["metric"] = np.where(bad, np.inf, metric)  # diverged: behind every finite run
        return final, curves

    for sigma in sigmas:
        schedule = noise_free_schedule if sigma == 0 else "constant"

        def evaluate(requests, sigma=sigma, schedule=schedule):
            kw = dict(n_seeds=n_tune_seeds, seed=seed + 1, record_every=steps)
            f = measure(sigma, schedule, requests, x0_tune, **kw)[0]
            f["sigma"] = sigma
            per_lr.append(f)
            means = f.groupby(["row", "lr"])["metric"].mean()
            out = {k: {} for k in requests}
            for (name, lr), v in means.items():
                out[tuple(name.split("|"))][float(lr)] = float(v)
            return out

        grids = {k: tune.lr_grid(*COARSE_GRIDS[opt]) for k, (opt, *_rest) in rows.items()}
        found = tune.search(evaluate, grids, ratio=1.5**3, n_extend=2, refine=factor, max_rounds=max_rounds)
        kw = dict(n_seeds=n_seeds, seed=seed, record_every=every)
        f, c = measure(sigma, schedule, {k: [lr] for k, lr in found.best.items()}, x0, **kw)
        c = c.merge(f[["row", "seed", "initial_loss"]], on=["row", "seed"])
        c["rel_loss"] = c["loss"] / c["initial_loss"]
        c["sigma"] = sigma
        curves.append(c.drop(columns=["initial_loss", "loss"]))
        what = METRIC_NOISY if sigma > 0 else METRIC_EXACT
        for name, g in f.groupby("row", sort=False):
            k = tuple(name.split("|"))
            opt, p, b1, _ = rows[k]
            vals = g.sort_values("seed")["metric"].to_numpy()
            m = V.Measured.from_seeds(vals)
            rec = dict(spectrum=k[0], sigma=sigma, column=k[1], row=k[2], optimizer=opt, beta1=b1, problem=p)
            rec |= geometry.loc[p, ["theta", "l11_per_dim", "spectral_norm"]].to_dict()
            rec |= dict(best_lr=found.best[k], value=m.value, spread=m.spread, seeds=tuple(map(float, vals)))
            rec |= dict(reached=int(np.isfinite(g["steps_to_reach"]).sum()), n_lr=len(found.scores[k]))
            tuned.append(rec | dict(grid_done=found.done[k], steps=steps, schedule=schedule, metric=what))
    per_lr = _split_rows(pd.concat(per_lr, ignore_index=True))
    curves = _split_rows(pd.concat(curves, ignore_index=True))
    return SweepResult(pd.DataFrame(tuned), per_lr, curves, geometry, time.perf_counter() - t0, work)


def _split_rows(df: pd.DataFrame) -> pd.DataFrame:
    """``row`` ``"spectrum|column|label"`` as the columns ``spectrum`` and ``row`` (the label)."""
    split = df["row"].str.split("|", expand=True)
    return df.assign(spectrum=split[0], row=split[2])


CLAIM_TEXT = {
    "a": "(a) Adam's tuned loss rises with ‖H_θ‖₁,₁/d",
    "b": "(b) Adam beats AdaSGD exactly when ‖H_θ‖₁,₁/d < ‖H_θ‖₂",
    "c: Adam": "(c) Adam (θ = 0) beats SGD with the same momentum",
    "c: AdaSGD": "(c) AdaSGD beats SGD with the same momentum",
}
CLAIM_PAPER = {
    "a": "yes (Corollary 3.7; numbers not recovered)",
    "b": "yes (Theorem 3.11; numbers not recovered)",
    "c: Adam": "not in Table 1 (the book's check of the paper's thesis: Adam beats SGD)",
    "c: AdaSGD": "not in Table 1 (the book's check)",
}
#: Claims (a) and (b) are the paper's reading of Table 1; (c) is the book's own check.
CLAIM_ORIGIN = {"a": V.PAPER, "b": V.PAPER, "c: Adam": V.BOOK, "c: AdaSGD": V.BOOK}
#: The rule of claim (a), as the verdict tables print it ((b)'s is the agreement rule).
RULE_A = (
    "95% seed-bootstrap interval of Spearman ρ above 0 and the extreme rotations "
    f"differ in that direction ({V.PAIR_RULE}) (holds); mirror (fails)"
)


def spearman_with_interval(x, seeds, *, n_boot: int = 400) -> tuple[float, float, float]:
    r"""``(rho, lo, hi)``: Spearman :math:`\rho` of ``x`` and the seed means, 95% seed-bootstrap interval."""
    x = np.asarray(x, dtype=float)
    S = [np.asarray(s, dtype=float) for s in seeds]
    y = np.array([s.mean() for s in S])
    rho = float(spearmanr(x, y).statistic) if len(set(y.tolist())) > 1 else math.nan
    rng = np.random.default_rng(0)
    reps = []
    for _ in range(n_boot):
        yb = np.array([s[rng.integers(0, len(s), len(s))].mean() for s in S])
        if len(set(yb.tolist())) > 1:
            reps.append(float(spearmanr(x, yb).statistic))
    if len(reps) < n_boot // 2:
        return rho, math.nan, math.nan
    q = (1 - 0.95) / 2
    return rho, float(np.quantile(reps, q)), float(np.quantile(reps, 1 - q))


def spectrum_verdicts(tuned: pd.DataFrame) -> pd.DataFrame:
    r"""Claims (a), (b), (c) per (spectrum, σ, column) of :attr:`SweepResult.tuned`; pairs by ``decide``.

    (a) :data:`RULE_A` (400 replicates); (b) per Adam row "Adam beats AdaSGD" is predicted iff
    :math:`\|H_\theta\|_{1,1}/d<\|H_\theta\|_2`, judged by ``agreement_verdict``; (c) Adam (θ=0) and
    AdaSGD each against SGD of the same momentum. Returns ``claim, verdict, ours, rule`` and counts.
    """
    out = []
    for (spec, sigma, col), g in tuned.groupby(["spectrum", "sigma", "column"], sort=False):
        adam = g[g["optimizer"] == "adam"].sort_values("l11_per_dim")
        ada, sgd = g[g["optimizer"] == "adasgd"], g[g["optimizer"] == "sgd"]
        key = {"spectrum": spec, "sigma": sigma, "column": col}
        rho, lo, hi = spearman_with_interval(adam["l11_per_dim"], list(adam["seeds"]))
        ends = V.decide(adam["seeds"].iloc[0], adam["seeds"].iloc[-1])
        va = V.concordant(V.correlation_verdict(lo, hi), ends)
        ours = (
            f"ρ = {rho:.2f} [{lo:.2f}, {hi:.2f}] over {len(adam)} rotations; lowest vs highest ‖H_θ‖₁,₁/d: "
            f"{_txt(adam['seeds'].iloc[0])} vs {_txt(adam['seeds'].iloc[-1])}"
        )
        out.append(dict(key, claim="a", verdict=va, rho=rho, rho_lo=lo, rho_hi=hi, ours=ours, rule=RULE_A))
        if len(ada):
            cnt = {"agree": 0, "disagree": 0, "tie": 0}
            for _, r in adam.iterrows():
                pred = r["l11_per_dim"] < r["spectral_norm"]
                v = V.decide(r["seeds"], ada["seeds"].iloc[0])
                cnt["tie" if v == V.INCONCLUSIVE else "agree" if (v == V.HOLDS) == pred else "disagree"] += 1
            n, below = len(adam), int((adam["l11_per_dim"] < adam["spectral_norm"]).sum())
            vb = V.agreement_verdict(cnt["agree"], cnt["disagree"], n)
            ours = (
                f"{cnt['agree']} agree, {cnt['disagree']} disagree, {cnt['tie']} tie of {n} "
                f"rotations ({below} with ‖H_θ‖₁,₁/d < ‖H_θ‖₂)"
            )
            counts = {f"n_{k}": v for k, v in cnt.items()}
            row = dict(key, claim="b", verdict=vb, **counts, n_below=below, n_above=n - below)
            out.append(dict(row, ours=ours, rule=V.AGREEMENT_RULE))
        if len(sgd) and len(adam):
            s, name = sgd["seeds"].iloc[0], sgd["row"].iloc[0]
            pairs = [("c: Adam", "Adam (θ=0)", adam[adam["theta"] == 0]["seeds"].iloc[0])]
            if len(ada):
                pairs.append(("c: AdaSGD", "AdaSGD", ada["seeds"].iloc[0]))
            for claim, who, a in pairs:
                ours = f"{who} {_txt(a)} vs {name} {_txt(s)}"
                out.append(dict(key, claim=claim, verdict=V.decide(a, s), ours=ours, rule=V.PAIR_RULE))
    return pd.DataFrame(out)


def _txt(seeds) -> str:
    return V.Measured.from_seeds(seeds).text(3)


def verdict_summary(verdicts: pd.DataFrame, sigma: float) -> pd.DataFrame:
    """Spectra × claims × β₁ at one σ; claim (c) reads ``"Adam: holds · AdaSGD: fails"``."""
    v = verdicts[verdicts["sigma"] == sigma]
    out = []
    for spec, g in v.groupby("spectrum", sort=False):
        rec = {"spectrum": spec}
        for _, col in COLUMNS:
            h = g[g["column"] == col].set_index("claim")["verdict"].reindex(list(CLAIM_TEXT))
            h = h.fillna(V.NOT_RUN)
            rec |= {f"(a) {col}": h["a"], f"(b) {col}": h["b"]}
            rec[f"(c) {col}"] = f"Adam: {h['c: Adam']} · AdaSGD: {h['c: AdaSGD']}"
        out.append(rec)
    return pd.DataFrame(out)


def findings(verdicts: pd.DataFrame) -> str:
    """Generated prose (Unicode, no TeX): per claim and (σ, β₁), the spectra where it holds and fails."""
    lines = []
    for claim in CLAIM_TEXT:
        v = verdicts[verdicts["claim"] == claim]
        if v.empty:
            continue
        n = {k: int((v["verdict"] == k).sum()) for k in (V.HOLDS, V.FAILS, V.INCONCLUSIVE)}
        parts = []
        for (sigma, col), g in v.groupby(["sigma", "column"], sort=False):
            by = {k: ", ".join(g[g["verdict"] == k]["spectrum"]) or "none" for k in (V.HOLDS, V.FAILS)}
            b1 = col.replace("β1", "β₁")
            parts.append(f"σ = {sigma:g}, {b1}: holds for {by[V.HOLDS]}; fails for {by[V.FAILS]}")
        who = "the paper's claim" if CLAIM_ORIGIN[claim] == V.PAPER else "the book's check"
        lines.append(
            f"* **{CLAIM_TEXT[claim]}** ({who}): holds in {n[V.HOLDS]}, fails in {n[V.FAILS]}, undecided in "
            f"{n[V.INCONCLUSIVE]} of {len(v)} settings. " + "; ".join(parts) + "."
        )
    return "\n".join(lines)


def curve_panels(verdicts: pd.DataFrame, geometry: pd.DataFrame, main: str) -> list[dict]:
    """One loss-curve panel per claim.

    (a) The main spectrum, the noisiest σ, β₁ = 0; (b) the first spectrum where (b) holds there at
    β₁ = 0.9, else the main one; (c) the most ill-conditioned spectrum (smallest mean eigenvalue), σ = 0.
    """
    sig = float(verdicts["sigma"].max())
    vb = verdicts[(verdicts["claim"] == "b") & (verdicts["sigma"] == sig) & (verdicts["column"] == "β1=0.9")]
    b_spec = next(iter(vb[vb["verdict"] == V.HOLDS]["spectrum"]), main)
    c_spec = geometry[geometry["theta"] == 0].sort_values("l11_per_dim")["spectrum"].iloc[0]
    sig0 = float(verdicts["sigma"].min())
    return [
        dict(claim="a", spectrum=main, sigma=sig, column="β1=0", rows=["Adam", "middle", "Adam (Haar)"]),
        dict(claim="b", spectrum=b_spec, sigma=sig, column="β1=0.9", rows=["Adam", "Adam (Haar)", "AdaSGD"]),
        dict(claim="c", spectrum=c_spec, sigma=sig0, column="β1=0.9", rows=["Adam", "AdaSGD", "SGD (μ=0.9)"]),
    ]


def panel_curves(sweep: SweepResult, panel: Mapping) -> pd.DataFrame:
    r"""The seed mean of :math:`L(x_t)/L(x_0)` of a panel's rows (``"middle"``: the middle Adam rotation)."""
    t = sweep.tuned
    t = t[(t["spectrum"] == panel["spectrum"]) & (t["sigma"] == panel["sigma"])]
    rows = list(panel["rows"])
    if "middle" in rows:
        adam = t[(t["optimizer"] == "adam") & (t["column"] == panel["column"])].sort_values("theta")
        rows[rows.index("middle")] = adam["row"].iloc[len(adam) // 2]
    c = sweep.curves
    c = c[(c["spectrum"] == panel["spectrum"]) & (c["sigma"] == panel["sigma"]) & c["row"].isin(rows)]
    c = c[c["column"] == panel["column"]]
    out = c.groupby(["row", "step"], sort=False)["rel_loss"].mean().reset_index()
    out["row"] = pd.Categorical(out["row"], rows, ordered=True)
    return out.sort_values(["row", "step"])


def main_spectrum(geometry: pd.DataFrame) -> str:
    r"""The spectrum with the most rotations on *both* sides of :math:`\|H_\theta\|_{1,1}/d=\|H_\theta\|_2`.

    The largest ``min(#below, #above)``, ties to the first: where claim (b) is tested on both sides.
    """
    below = (geometry["l11_per_dim"] < geometry["spectral_norm"]).groupby(geometry["spectrum"], sort=False)
    return np.minimum(below.sum(), below.size() - below.sum()).idxmax()


def _cell(r) -> str:
    vals = np.asarray(r["seeds"], dtype=float)
    m = V.Measured.from_seeds(vals)
    if r["metric"] == METRIC_EXACT and r["reached"] < len(vals):
        late = vals[vals >= r["steps"]]
        rel = EPS_REACH * 10 ** (late / r["steps"] - 1)  # invert effective_steps
        txt = f"not reached, L_T/L₀ ≈ {float(np.exp(np.log(rel).mean())):.1e}"
        return txt if r["reached"] == 0 else f"{m.text(3)}* ({r['reached']}/{len(vals)} seeds reached)"
    return m.text(3)


def _head(sigma: float, column: str) -> str:
    b1 = column.replace("β1=", "β₁ = ")
    if sigma == 0:
        return f"steps to 1e-8·L₀ (σ = 0, {b1}; * extrapolated past T)"
    return f"L_T/L₀ (σ = {sigma:g}, {b1})"


_ORDER = {"adasgd": 0, "adam": 1, "signgd": 2, "sgd": 3}


def table1(tuned: pd.DataFrame, spectrum: str, columns: Sequence[tuple[float, str]]) -> pd.DataFrame:
    r"""Table 1 as the paper lays it out, for one spectrum and the ``(sigma, column)`` pairs ``columns``.

    :math:`\|H_\theta\|_{1,1}/d` (and :math:`\|H_\theta\|_2` where it varies), the tuned metric (mean ± seed
    std) per (σ, β₁); rows AdaSGD, Adam by θ, SignGD, SGD; a star: extrapolated past :math:`T`.
    """
    keep = {(float(a), b) for a, b in columns}
    t = tuned[tuned["spectrum"] == spectrum]
    t = t[[(float(a), b) in keep for a, b in zip(t["sigma"], t["column"], strict=True)]].copy()
    t["cell"] = [_cell(r) for _, r in t.iterrows()]
    t["head"] = [_head(a, b) for a, b in zip(t["sigma"], t["column"], strict=True)]
    t["_o"] = t["optimizer"].map(_ORDER)
    index = ["_o", "theta", "row"]
    wide = t.pivot_table(index=index, columns="head", values="cell", aggfunc="first", sort=False)
    wide = wide.reset_index().sort_values(["_o", "theta"], kind="stable")
    geo = t.drop_duplicates("row").set_index("row")
    wide.insert(1, "Optimizer", wide.pop("row"))
    wide.insert(2, "‖H_θ‖₁,₁/d", [float(geo.loc[o, "l11_per_dim"]) for o in wide["Optimizer"]])
    shown = ["Optimizer", "‖H_θ‖₁,₁/d"]
    if geo["spectral_norm"].round(9).nunique() > 1:
        wide.insert(3, "‖H_θ‖₂", [geo.loc[o, "spectral_norm"] for o in wide["Optimizer"]])
        shown.append("‖H_θ‖₂")
    heads = [h for h in dict.fromkeys(_head(a, b) for a, b in columns) if h in wide.columns]
    return wide[[*shown, *heads]].fillna("—").reset_index(drop=True)


def full_table(tuned: pd.DataFrame, sigma: float) -> pd.DataFrame:
    r"""Every spectrum's tuned rows at one σ: the metric per β₁ and the tuned lrs (as :func:`table1`)."""
    t = tuned[tuned["sigma"] == sigma].copy()
    t["cell"] = [_cell(r) for _, r in t.iterrows()]
    out = []
    for (spec, row), g in t.groupby(["spectrum", "row"], sort=False):
        c = g.set_index("column")
        cells = [c["cell"].get(col, "—") for _, col in COLUMNS]
        lrs = ", ".join(f"{v:.3g}" for v in c["best_lr"])
        order = (_ORDER[g["optimizer"].iloc[0]], float(g["theta"].iloc[0]))
        out.append((spec, row, *order, g["l11_per_dim"].iloc[0], *cells, lrs))
    columns = ["spectrum", "Optimizer", "_o", "_t", "‖H_θ‖₁,₁/d", "β₁ = 0", "β₁ = 0.9", "tuned lr"]
    df = pd.DataFrame(out, columns=columns)
    specs = list(dict.fromkeys(t["spectrum"]))
    df["_s"] = df["spectrum"].map(specs.index)
    return df.sort_values(["_s", "_o", "_t"], kind="stable").drop(columns=["_s", "_o", "_t"])


def paper_vs_ours(verdicts: pd.DataFrame, *, scale: str, main: str) -> pd.DataFrame:
    """The page's verdict table: one line per (claim, spectrum, σ, β₁), with ``main`` marked."""
    rows = []
    for _, v in verdicts.iterrows():
        c = v["claim"]
        claim = f"{CLAIM_TEXT[c]} — λ: {v['spectrum']}, σ = {v['sigma']:g}, {v['column'].replace('β1', 'β₁')}"
        info = dict(paper=CLAIM_PAPER[c], rule=v["rule"], origin=CLAIM_ORIGIN[c], where="Table 1")
        r = V.verdict_row(claim, v["verdict"], ours=v["ours"], scale=scale, page="quadratic_table1", **info)
        r.update(spectrum=v["spectrum"], sigma=v["sigma"], beta1=v["column"], main=v["spectrum"] == main)
        rows.append(r)
    return pd.DataFrame(rows)


def equivariance_check(*, d: int, spectrum: str, steps: int = 200, seed: int = 0) -> pd.DataFrame:
    r"""Rotation equivariance of AdaSGD and SGD at fixed lrs, measured against Adam (:math:`\sigma = 0`).

    The largest relative gap of :math:`L(x_t)` on :math:`R_\theta` (:math:`\theta\sqrt d = 3`) and Haar to
    :math:`\theta=0` while :math:`L(x_t) > 10^{-10} L(x_0)`: round-off (about 1e-12) if equivariant.
    """
    rots = Q.rotation_path(d, [3.0 / math.sqrt(d)], seed=seed, haar_seed=seed + 1)
    probs = Q.rotated_family(Q.spectrum(spectrum, d), rots, spectrum=spectrum)
    x0 = torch.randn(d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    spec = [
        ("AdaSGD (β1=0.9)", "adasgd", 0.9, 0.99, 0.05),
        ("SGD (μ=0.9)", "sgd", 0.9, 0.0, 0.3),
        ("Adam (β1=0.9)", "adam", 0.9, 0.99, 0.01),
    ]
    rows = [Row(f"{n}|{k}", o, k, b1, b2, (lr,), "c") for n, o, b1, b2, lr in spec for k in range(len(probs))]
    _, curves = run_experiment(Experiment(probs, rows, x0, 0.0), steps=steps, n_seeds=1, record_every=1)
    c = curves.pivot_table(index="step", columns="row", values="loss")
    out = []
    for n, *_ in spec:
        ref = c[f"{n}|0"].to_numpy()
        keep = ref > 1e-10 * ref[0]
        rec = {"optimizer": n, "steps compared": int(keep.sum())}
        for k, (th, _) in enumerate(rots[1:], start=1):
            diff = np.abs(c[f"{n}|{k}"].to_numpy()[keep] - ref[keep]) / ref[keep]
            rec["vs θ√d = " + ("Haar" if math.isinf(th) else f"{th * math.sqrt(d):g}")] = float(diff.max())
        out.append(rec)
    return pd.DataFrame(out)


def estimate_cost(measured_s: float, work: Mapping, *, d_target: int, elementwise: float = 20.0) -> float:
    r"""``measured_s`` scaled to ``d_target`` by the work :math:`T\,(n_\text{dense} d^2 + c\,n_\text{all} d)`.

    One multiply-add per dense Hessian entry and run-step, :math:`c` = ``elementwise`` passes over a run.
    """
    n_all = work["dense"] + work["diag"]
    target, measured = (work["dense"] * dd * dd + elementwise * n_all * dd for dd in (d_target, work["d"]))
    return measured_s * target / measured
