# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Theorem 4.1: estimating the (1,1)-norm of a Hessian with Cauchy probes
#
# The paper's complexity measure for Adam is the $(1,1)$-norm $\|\nabla^2L(x)\|_{1,1}=\sum_{i,j}|[\nabla^2L(x)]_{ij}|$
# of the loss Hessian {cite}`xie2025adam`; Tables 2 and 4 compare it (divided by $d$) with the
# spectral norm. A $124$M-parameter Hessian cannot be formed, but Hessian-vector products are cheap
# {cite}`pearlmutter1994fast`, and the $\ell_1$ norm of every row can be read off products with
# Cauchy vectors, because the Cauchy law is 1-stable {cite}`indyk2006stable`.
#
# ```{prf:algorithm} Estimating the (1,1)-norm (Algorithm 4, RECONSTRUCTED)
# :label: alg-cauchy-l11
#
# **Input**: a Hessian-vector product oracle $v\mapsto Hv$ on a fixed batch, a number of probes $n$.
#
# 1. Draw $v^{(1)},\dots,v^{(n)}\in\mathbb R^d$ with i.i.d. standard Cauchy entries.
# 2. Compute $h^{(k)}=Hv^{(k)}$ for $k=1,\dots,n$.
# 3. Return $\widehat N=\sum_{j=1}^d\operatorname{median}_{k}|h^{(k)}_j|$.
#
# The authors' code returns instead $\sum_j\tfrac12\big(q_{0.75}(h_j)-q_{0.25}(h_j)\big)$, half the
# inter-quartile range (the "IQR" variant below), and divides by $d$.
# ```
#
# Since $h^{(k)}_j=\sum_iH_{ji}v^{(k)}_i\sim\mathrm{Cauchy}(0,\gamma_j)$ with $\gamma_j=\|H_{j,:}\|_1$,
# both the median of $|h_j|$ and half the IQR of $h_j$ equal $\gamma_j$ in the limit. The guarantee
# is stated below; it is **RECONSTRUCTED** (see `PAPER_MATH.md`): the statement frame and the proof
# skeleton survive in the text extraction, the exact form of $n$ and the constants do not.
#
# ```{prf:lemma} Median of uniforms (Lemma D.1, RECONSTRUCTED)
# :label: lem-d1-median-uniform
#
# Let $U_1,\dots,U_n$ be i.i.d. uniform on $[0,1]$ with sample median $M$. For $t\in(0,\tfrac12)$,
# $\Pr(M\ge\tfrac12+t)\le e^{-2nt^2}$ and $\Pr(M\le\tfrac12-t)\le e^{-2nt^2}$.
# ```
#
# ```{prf:proof}
# $Y_i=\mathbf 1[U_i\le\tfrac12+t]$ are i.i.d. Bernoulli$(\tfrac12+t)$, and $M\ge\tfrac12+t$ forces
# $\sum_iY_i\le n/2$, a deviation of $nt$ below the mean; Hoeffding's inequality bounds it by
# $e^{-2nt^2}$. The other side is symmetric. So $M-\tfrac12$ is sub-Gaussian with variance proxy $O(1/n)$.
# ```
#
# ```{prf:theorem} Accuracy of the Cauchy estimator (Theorem 4.1, RECONSTRUCTED)
# :label: thm-41-cauchy
#
# Let $H\in\mathbb R^{d\times d}$ and $\widehat N=\sum_j\operatorname{median}_{k\le n}|(Hv^{(k)})_j|$ with
# i.i.d. standard Cauchy $v^{(k)}$. There is an absolute constant $C$ such that for
# $\varepsilon,\delta\in(0,1)$, if
# $$n\ \ge\ C\Big(\frac{\log(1/\delta)}{\varepsilon^2}+\log\frac d\delta\Big),$$
# then $\big|\widehat N-\|H\|_{1,1}\big|\le\varepsilon\|H\|_{1,1}$ with probability at least $1-\delta$.
# So $n$ Hessian-vector products and $\tilde O(nd)$ more time (coordinate-wise medians) suffice.
# ```
#
# ```{prf:proof}
# (Sketch.) Write $|(Hv^{(k)})_j|=\gamma_j\tan(\pi U^{(k)}_j/2)$ with $U^{(k)}_j$ uniform on $[0,1]$,
# so $\operatorname{median}_k|(Hv^{(k)})_j|=\gamma_j\tan(\pi\bar U_j/2)$ where $\bar U_j$ is the median
# of $U^{(1)}_j,\dots,U^{(n)}_j$. The claim becomes
# $\Pr\big(|\sum_j\gamma_j(\tan(\pi\bar U_j/2)-1)|\ge\varepsilon\sum_j\gamma_j\big)\le\delta$.
# (i) By {prf:ref}`lem-d1-median-uniform` and a union bound over the $d$ coordinates, every $\bar U_j$
# stays in $[\tfrac14,\tfrac34]$ except with probability $2de^{-n/8}$: this costs the $\log(d/\delta)$ term.
# (ii) On that event replace $\tan(\pi u/2)$ by a Lipschitz $f$ that agrees with it on $[\tfrac14,\tfrac34]$;
# each $f(\bar U_j)-1$ is then sub-Gaussian with proxy $O(1/n)$ by the lemma (and nearly centred).
# (iii) The weighted sum $\sum_j\gamma_j(f(\bar U_j)-1)$ is sub-Gaussian with proxy at most
# $O\big((\sum_j\gamma_j)^2/n\big)$ whatever the dependence between coordinates (the triangle
# inequality on the $\psi_2$ norm), which gives the $\varepsilon^{-2}\log(1/\delta)$ term.
# ```
#
# Step (iii) does not use independence across rows: the bound holds even when all rows share the
# same randomness, which is what happens when a few columns of $H$ dominate every row. We measure
# the relative error $|\widehat N/\|H\|_{1,1}-1|$ against the exact value as a function of $n$, on
# (a) random symmetric matrices whose rows have log-normal (heavy-tailed) norms and (b) the exact
# Hessian of a small GPT, for both variants, and draw the rate
# $\varepsilon_\delta(n)=\sqrt{C\log(1/\delta)/n}$ beside the measured $(1-\delta)$-quantiles.

# %% tags=["parameters"]
scale = "ci"
results_dir = "results/thm41_estimator/ci"
device = "cpu"
seed = 0
n_grid = [10, 20, 50, 100, 200, 500, 1000, 2000]  # numbers of Cauchy probes
variants = ["median", "iqr"]
quantiles = [0.5, 0.9, 0.99]  # error quantiles over seeds (delta is 1 minus the quantile)
matrix_d = 200  # size of the random matrices
matrix_tails = [0.0, 1.0]  # sigma of the log-normal row scales (0: Gaussian rows, no heavy tail)
matrix_seeds = 50  # probe seeds per matrix
gpt = {"vocab_size": 16, "block_size": 8, "n_layer": 1, "n_head": 2, "n_embd": 8}  # network (b)
gpt_batch = 4  # sequences in the fixed batch of the network Hessian
gpt_seeds = 20  # probe seeds for the network Hessian
n_paper = 50  # the authors' number of Cauchy vectors (App. D.2, VERIFIED code)
threads = 1  # torch threads (1 is fastest for these small products on a shared CPU)

# %%
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from IPython.display import Markdown, display

from adamlinf import hessian as hs
from adamlinf.results import save_table

torch.set_num_threads(threads)
out = Path(results_dir)
out.mkdir(parents=True, exist_ok=True)
params = dict(scale=scale, seed=seed, n_grid=n_grid, variants=variants, quantiles=quantiles,
              matrix_d=matrix_d, matrix_tails=matrix_tails, matrix_seeds=matrix_seeds, gpt=gpt,
              gpt_batch=gpt_batch, gpt_seeds=gpt_seeds, device=device)
t_start = time.perf_counter()

# %% [markdown]
# ## (a) Random matrices with heavy-tailed rows
#
# $H=S(G+G^\top)S$ with Gaussian $G$ and $S=\mathrm{diag}(e^{\sigma z_i})$, $z_i\sim\mathcal N(0,1)$
# (`adamlinf.hessian.heavy_tailed_matrix`): the row norms are log-normal, and for $\sigma>0$ a
# few rows and columns carry much of $\|H\|_{1,1}$. For each matrix we draw `matrix_seeds` independent
# sets of probes and evaluate the estimate on nested prefixes of $n$ probes
# (`adamlinf.hessian.l11_sweep`).

# %% [markdown]
# ## (b) The exact Hessian of a small GPT
#
# A GPT (`adamlinf.models.gpt.GPT`, "math" attention) at its GPT-2 initialisation, the mean
# next-token loss on a fixed batch of random tokens; its exact Hessian comes from
# `adamlinf.hessian.exact_hessian` (float64), built by `adamlinf.hessian.small_gpt_hessian`.
# `adamlinf.hessian.l11_error_study` runs both sweeps and returns the tidy table of errors and one
# row of facts per problem.

# %%
sweep, problems = hs.l11_error_study(
    n_grid, matrix_d=matrix_d, matrix_tails=matrix_tails, matrix_seeds=matrix_seeds, gpt=gpt,
    gpt_batch=gpt_batch, gpt_seeds=gpt_seeds, variants=variants, seed=seed, device=device)
t_matrices = float(problems[problems.kind == "matrix"].wall_time_s.sum())
t_net = float(problems[problems.kind == "gpt"].wall_time_s.sum())
net_info = problems[problems.kind == "gpt"].iloc[0]
print(f"GPT: d = {net_info.d}, ||H||_11/d = {net_info.l11_per_d:.4g}, "
      f"||H||_2 = {net_info.spectral_norm:.4g}, "
      f"max/median row norm = {net_info.row_norm_max_over_median:.3g}")
save_table(sweep, out / "sweep.csv", params=params, wall_time_s=t_matrices + t_net)
_ = save_table(problems, out / "problems.csv", params=params)

# %% [markdown]
# ## Error quantiles and the rate
#
# For each problem, variant and $n$: the median, 90% and 99% quantiles of the relative error over the
# seeds (with `ci`'s few seeds the 99% quantile is close to the maximum). For each quantile
# $q=1-\delta$ we fit the constant of $\varepsilon_\delta(n)=\sqrt{C\log(1/\delta)/n}$ on $n\ge 100$
# and the log-log slope of the measured curve (the theorem predicts $-1/2$)
# (`adamlinf.hessian.error_quantiles`, `adamlinf.hessian.fit_rate`).

# %%
sweep = pd.read_csv(out / "sweep.csv")
qtab = hs.error_quantiles(sweep, quantiles)
fits = (hs.fit_rate(qtab, n_min=100, n_ref=n_paper)
        .rename(columns={"rel_error_at_n_ref": "rel_error_at_n_paper"}))
save_table(qtab, out / "quantiles.csv", params=params)
_ = save_table(fits, out / "rate_fit.csv", params=params)

# %% tags=["hide-input"]
qtab = pd.read_csv(out / "quantiles.csv")
fits = pd.read_csv(out / "rate_fit.csv")
problems = list(dict.fromkeys(qtab.problem))
fig, axes = plt.subplots(len(variants), len(problems), figsize=(4.2 * len(problems), 3.6 * len(variants)),
                         sharex=True, sharey=True, squeeze=False)
colors = dict(zip(quantiles, sns.color_palette("viridis", len(quantiles))))
nn_ = np.geomspace(min(n_grid), max(n_grid), 50)
for i, variant in enumerate(variants):
    for j, problem in enumerate(problems):
        ax = axes[i, j]
        for q in quantiles:
            g = qtab[(qtab.problem == problem) & (qtab.variant == variant) & (qtab["quantile"] == q)]
            ax.plot(g.n, g.rel_error, "o-", color=colors[q], label=f"measured {q:.0%} quantile")
            C = float(fits[(fits.problem == problem) & (fits.variant == variant) & (fits["quantile"] == q)].C.iloc[0])
            ax.plot(nn_, np.sqrt(C * np.log(1 / (1 - q)) / nn_), "--", color=colors[q],
                    label=rf"$\sqrt{{C\log(1/\delta)/n}}$, $\delta$={1 - q:.2g}")
        ax.axvline(n_paper, color="grey", lw=0.8, ls=":")
        ax.set(xscale="log", yscale="log", title=f"{problem}\n{variant}",
               xlabel="number of Cauchy probes n", ylabel="relative error of the (1,1)-norm")
axes[0, 0].legend(fontsize=7)
fig.suptitle(f"Theorem 4.1: error of the Cauchy estimator vs n ({scale} scale; dotted: n={n_paper})")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Paper vs ours

# %% tags=["hide-input"]
fits = pd.read_csv(out / "rate_fit.csv")
table = fits.assign(**{
    "paper (Thm 4.1, RECONSTRUCTED)": "error ~ sqrt(log(1/delta)/n): slope -1/2",
    "ours: fitted slope": fits.slope.round(3),
    "ours: C": fits.C.round(3),
    f"ours: error at n={n_paper}": fits.rel_error_at_n_paper.round(4),
    "scale": scale,
})[["problem", "variant", "quantile", "paper (Thm 4.1, RECONSTRUCTED)", "ours: fitted slope", "ours: C",
    f"ours: error at n={n_paper}", "scale"]]
display(table)

# %% tags=["hide-input"]
slopes = fits.slope
heavy = fits[fits.problem.str.contains("sigma=1")]
light = fits[fits.problem.str.contains("sigma=0")]
net = fits[fits.problem.str.startswith("GPT")]
rate_ok = bool(-0.65 <= slopes.median() <= -0.35)
def q_err(df, q):
    return df[df["quantile"] == q].rel_error_at_n_paper
display(Markdown(
    f"**The paper** (Theorem 4.1, RECONSTRUCTED): $n\\gtrsim\\varepsilon^{{-2}}\\log(1/\\delta)+\\log(d/\\delta)$ "
    f"probes give relative error $\\varepsilon$ with probability $1-\\delta$, i.e. an error decaying like "
    f"$n^{{-1/2}}$; the authors use $n={n_paper}$.\n\n"
    f"**Ours** ({scale} scale, {matrix_seeds} seeds per matrix, {gpt_seeds} for the GPT Hessian): the fitted "
    f"log-log slopes of the error quantiles for $n\\ge100$ lie in [{slopes.min():.2f}, {slopes.max():.2f}] "
    f"(median {slopes.median():.2f}): " + ("the $n^{-1/2}$ rate holds for both variants. " if rate_ok else
    "the measured decay deviates from $n^{-1/2}$. ") + f"The fitted "
    f"constant $C$ (median over quantiles and variants) is {light.C.median():.2g} with Gaussian rows, "
    f"{heavy.C.median():.2g} with heavy-tailed rows and {net.C.median():.2g} on the GPT Hessian. A Cauchy "
    f"probe has a few huge entries, and they dominate every coordinate of $Hv$ at once, so the $d$ row "
    f"estimates err together: the error of the sum is not $\\sqrt d$ times smaller than that of one row "
    f"(for one row, the median variant's 90% error at $n={n_paper}$ is asymptotically "
    f"$1.645\\cdot\\pi/(2\\sqrt n)$ = {1.645 * np.pi / (2 * np.sqrt(n_paper)):.1%}). Step (iii) of the proof "
    f"needs no independence across rows, so the theorem covers this. "
    f"At the authors' $n={n_paper}$ the 90% quantile of the relative error is "
    f"{q_err(heavy, 0.9).max():.1%} (heavy-tailed matrix, worse variant) and {q_err(net, 0.9).max():.1%} on "
    f"the GPT Hessian. The median and IQR variants have the same rate; compare their constants in the "
    f"table. **Agreement**: " + ("yes" if rate_ok else "no") + " for the rate in $n$ (at "
    f"{scale} scale); the theorem gives no constant to compare with."))
total = time.perf_counter() - t_start
per_seed = (t_matrices / max(1, len(matrix_tails) * matrix_seeds), t_net / max(1, gpt_seeds))
print(f"wall time at {scale} scale: {total:.1f} s (matrices {t_matrices:.1f} s, network {t_net:.1f} s)")
print("paper scale (params/thm41_estimator.yaml 'paper': d=1000 matrices x3 tails x1000 seeds, a "
      "GPT of d~7k x200 seeds) costs roughly 25x per matrix seed and 50x per network seed on a CPU: "
      f"~{(1000 * 3 * per_seed[0] * 25 + 200 * per_seed[1] * 50) / 3600:.1f} h on this machine, "
      "minutes on a GPU (device='cuda').")
