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
# # Theorem 3.5: RMSProp under coordinate-wise ℓ∞-smoothness
#
# ```{glue:md} result_box
# :format: myst
# ```
#
# The paper's main result {cite}`xie2025adam` bounds Adam with $\beta_1=0$ (RMSProp, Algorithm 1 with
# $v_0$ a free hyperparameter, no bias correction, $\epsilon$ inside the root) in terms of
# **coordinate-wise** smoothness constants, in the spirit of {cite}`li2024convergence,defossez2022simple`.
# Every formula on this page is RECONSTRUCTED: the statement frames survived the extraction, the
# formulas did not (see the [reconstruction notes](../reconstruction.md#thm-3-5-notes)). We check the
# reconstructed bound numerically on quadratics with known $H_i$ and known Gaussian gradient noise,
# and on instances where $\sum_iH_i$ is far below $d\|A\|_2$.
#
# :::{prf:definition} Definition 3.3 (coordinate-wise ℓ∞-smoothness) — RECONSTRUCTED
# :label: def-3-3
# :nonumber:
#
# For $\mathbf H\in\mathbb R^d_{\ge0}$, $L$ is $\mathbf H$-smooth coordinate-wisely w.r.t. $\ell_\infty$ if
# $|\nabla_iL(x)-\nabla_iL(y)|\le H_i\|x-y\|_\infty$ for all $i,x,y$. This implies
# $(\sum_iH_i)$-smoothness w.r.t. $\ell_\infty$. For $L=\frac12(x-x^*)^\top A(x-x^*)$ the best constants
# are $H_i=\|A_{i,:}\|_1$, so $\sum_iH_i=\|A\|_{1,1}$.
# :::
#
# :::{prf:assumption} Assumption 3.4 (coordinate-wise noise) — RECONSTRUCTED
# :label: asm-3-4
# :nonumber:
#
# $\mathbb E\,\nabla_iL_t(x)=\nabla_iL(x)$ and $\mathbb E(\nabla_iL_t(x)-\nabla_iL(x))^2\le\sigma_i^2$ for
# all $i,t,x$. Here $\nabla L_t(x)=\nabla L(x)+\sigma\odot\xi_t$ with $\xi_t\sim\mathcal N(0,I)$
# (`adamlinf.problems.NoisyQuadratic`).
# :::
#
# :::{prf:theorem} Theorem 3.5 (RMSProp) — RECONSTRUCTED
# :label: thm-3-5
# :nonumber:
#
# Under Assumption 3.4 and Definition 3.3, RMSProp with constant $\eta$ satisfies
#
# ```{math}
# \min_{T/2<t\le T}\mathbb E\|\nabla L(x_t)\|_1\le E+\sqrt E\sqrt{\frac{\beta_2^{T/4}}{T(1-\beta_2)}d\sqrt{v_0}+\sum_i\sigma_i+d\sqrt\epsilon},
# ```
#
# ```{math}
# E=\frac{2}{\eta T}\mathbb E[L(x_0)-L(x_T)]+\Big(1+\frac{\beta_2F}{T(1-\beta_2)}\Big)\Big(\eta\sum_iH_i+\sqrt{1-\beta_2}\sum_i\sigma_i\Big),
# ```
#
# ```{math}
# F=2\ln\Big(1+\frac{\sum_i\sigma_i^2+\|\nabla L(x_0)\|_\infty^2+\max_iH_i^2\eta^2T(T+\frac1{1-\beta_2})}{v_0+\epsilon}\Big)+\ln32.
# ```
# :::
#
# The shape $E+\sqrt E\sqrt{\cdot}$, the second-half window and the factor $1+\beta_2F/(T(1-\beta_2))$
# are solid; the constants ($2$, $\ln 32$, a possible factor $2$ on the noise term) are not. We use
# $\Delta=L(x_0)-\min L\ge\mathbb E[L(x_0)-L(x_T)]$.
#
# :::{prf:corollary} Corollaries 3.6 and 3.7 (rates) — RECONSTRUCTED
# :label: cor-3-6
# :nonumber:
#
# With $1-\beta_2=\Theta(\log T/T)$, $\epsilon=0$, $\eta=\Theta(\sqrt{\Delta/(T\sum_iH_i)})$ and
# $v_0\ge(\sum_i\sigma_i^2+\|\nabla L(x_0)\|_\infty^2+\max_iH_i^2\eta^2)/\mathrm{poly}(T)$:
#
# ```{math}
# \min_{T/2<t\le T}\mathbb E\|\nabla L(x_t)\|_1=O\Big(\sqrt{R/T}+\sqrt{\textstyle\sum_i\sigma_i}\,(R/T)^{1/4}+\textstyle\sum_i\sigma_i(\log T/T)^{1/4}+\delta_T\Big)
# ```
#
# with $R=\Delta\sum_iH_i$; for $\sigma=0$ it is $O(\sqrt{R/T}+\delta_T)$. The term
# $\delta_T\propto\sqrt{d\sqrt{v_0}/(T(1-\beta_2))}\,e^{-T(1-\beta_2)/8}$ vanishes faster than any
# polynomial when $T(1-\beta_2)/\log T$ grows, so a **large $v_0$ is harmless**.
# :::
#
# The proof rests on four lemmas (all RECONSTRUCTED; the surviving proof fragments pin down their
# shape, not their constants, see the [notes on the lemmas](../reconstruction.md#lemmas-notes)). We
# state them per coordinate (Theorem 3.11 applies them per block with
# $g_t\leftarrow\|g_{t,(b)}\|_2/\sqrt{d_b}$).
#
# :::{prf:lemma} Lemma 3.14 (sum of normalized squares) — RECONSTRUCTED
# :label: lem-3-14
# :nonumber:
#
# Let $0<\beta_2<1$, $v_0\ge0$, $v_t>0$ and $v_t-\beta_2v_{t-1}\ge(1-\beta_2)g_t^2$ for $t\ge1$. Then
# $\sum_{t=1}^T g_t^2/v_t\le T+\frac{\beta_2}{1-\beta_2}\ln\frac{v_T}{v_0}$ if $v_0>0$, and
# $\le T+\frac{\beta_2}{1-\beta_2}\big(1+\ln\frac{v_T}{v_1}\big)$ if $v_0=0$.
# :::
#
# :::{prf:proof}
# By $1-x\le\ln(1/x)$,
#
# ```{math}
# \frac{g_t^2}{v_t}\le\frac{v_t-\beta_2v_{t-1}}{(1-\beta_2)v_t}=1+\frac{\beta_2}{1-\beta_2}\Big(1-\frac{v_{t-1}}{v_t}\Big)\le1+\frac{\beta_2}{1-\beta_2}\ln\frac{v_t}{v_{t-1}},
# ```
#
# and the logarithms telescope. If $v_0=0$ the first term is at most $\frac1{1-\beta_2}=1+\frac{\beta_2}{1-\beta_2}$.
# :::
#
# :::{prf:lemma} Lemma 3.15 (first-order approximation) — RECONSTRUCTED, constants unverified
# :label: lem-3-15
# :nonumber:
#
# With $\bar g_t=\nabla L(x_{t-1})$ and $\tilde v_{t,i}=\beta_2v_{t-1,i}+(1-\beta_2)(\bar g_{t,i}^2+\sigma_i^2)$,
# for every coordinate $i$:
#
# ```{math}
# \mathbb E\sum_t\frac{\bar g_{t,i}g_{t,i}}{\sqrt{v_{t,i}+\epsilon}}\ge\frac12\mathbb E\sum_t\frac{\bar g_{t,i}^2}{\sqrt{\tilde v_{t,i}+\epsilon}}-\sqrt{1-\beta_2}\,\sigma_i\Big(T+\frac{\beta_2}{1-\beta_2}\mathbb E\ln\frac{v_{T,i}+\epsilon}{v_{0,i}+\epsilon}\Big).
# ```
# :::
#
# :::{prf:proof}
# (Sketch.) Split $1/\sqrt{v_t}=1/\sqrt{\tilde v_t}+(1/\sqrt{v_t}-1/\sqrt{\tilde v_t})$. The first part has
# conditional mean $\bar g_t^2/\sqrt{\tilde v_t}$ because $\tilde v_t$ is fixed given $x_{t-1}$; the
# correction is at most $\frac12\bar g_t^2/\sqrt{\tilde v_t}$ plus a multiple of $\sigma\sqrt{1-\beta_2}\,g_t^2/v_t$,
# whose sum Lemma 3.14 controls.
# :::
#
# :::{prf:lemma} Lemma 3.16 (second-half sum of the proxy) — RECONSTRUCTED, constant c NOT RECOVERED
# :label: lem-3-16
# :nonumber:
#
# ```{math}
# \sum_{T/2<t\le T}\mathbb E\sqrt{\tilde v_{t,i}+\epsilon}\le\frac{2\beta_2^{T/4}}{1-\beta_2}\sqrt{v_{0,i}}+T\sigma_i+T\sqrt\epsilon+c\sum_{t\le T}\mathbb E|\bar g_{t,i}|.
# ```
# :::
#
# Our numerical check found that **$c=1$ is false** (`tests/test_lemmas.py::test_lemma316_constant_exceeds_one`,
# and the counterexample run in the table below): on a deterministic RMSProp run the square root of a
# moving average of $\bar g^2$ exceeds the average of $|\bar g|$ while the iterates oscillate. We
# therefore state and test it with $c=2$.
#
# :::{prf:proof}
# (Sketch.) $\sqrt{\tilde v_t}\le\sqrt{\beta_2v_{t-1}}+\sqrt{1-\beta_2}(|\bar g_t|+\sigma)$ and
# $\mathbb E\sqrt{v_{t-1}}\le\beta_2^{(t-1)/2}\sqrt{v_0}+\sigma+\sqrt{(1-\beta_2)\sum_s\beta_2^{t-1-s}\bar g_s^2}$;
# summing $\beta_2^{(t-1)/2}$ over $t>T/2$ gives at most $\frac{2\beta_2^{T/4}}{1-\beta_2}$, and the
# gradient part is compared with $\sum_t|\bar g_t|$ using smoothness (the gradient cannot change fast).
# :::
#
# :::{prf:lemma} Lemma C.1 (growth of the second moment) — RECONSTRUCTED, constants unverified
# :label: lem-c-1
# :nonumber:
#
# $\mathbb E\ln\frac{v_{T,i}+\epsilon}{v_{0,i}+\epsilon}\le F$ with $F$ as in Theorem 3.5.
# :::
#
# :::{prf:proof}
# (Sketch.) $\|x_t-x_0\|_\infty^2\le\eta^2t\sum_sg_s^2/v_s$ (Cauchy–Schwarz and the step bound), so by
# Lemma 3.14 and smoothness the gradients, hence $v_T$, grow at most polynomially in $T$ and in
# $\ln v_T$; Jensen and solving $x\le a+b\ln x$ give $F$.
# :::
#
# :::{prf:proof}
# Smoothness gives a descent inequality whose first-order term is
# $\sum_t\bar g_t^\top g_t/\sqrt{v_t}$ with $\bar g_t=\nabla L(x_{t-1})$. Lemma 3.15 replaces $v_t$ by the
# conditionally deterministic proxy $\tilde v_t$ at a price controlled by Lemma 3.14 and Lemma C.1; the
# second-order term is $\eta^2\sum_iH_i\sum_tg_{t,i}^2/v_{t,i}$, bounded by the same lemmas. This bounds
# $\sum_t\|\bar g_t\|^2/\sqrt{\tilde v_t}$ by $TE$. Cauchy–Schwarz (7) gives
#
# ```{math}
# \Big(\sum_t\|\bar g_t\|_1\Big)^2\le\Big(\sum_t\sum_i\frac{\bar g_{t,i}^2}{\sqrt{\tilde v_{t,i}}}\Big)\Big(\sum_t\sum_i\sqrt{\tilde v_{t,i}}\Big),
# ```
#
# and Lemma 3.16 bounds $\sum_{T/2<t\le T}\sqrt{\tilde v_t}$ by the decayed $v_0$, the noise and
# $\sum_t|\bar g_t|$; solving the quadratic inequality gives $E+\sqrt{E}\sqrt{\cdot}$.
# :::

# %% tags=["parameters", "hide-input"]
scale = "ci"
results_dir = "results/thm35_rmsprop/ci"
device = "cpu"
seed = 0
d = 10  # dimension of the quadratic
noise_scale = 0.2  # noisy setting: sigma_i from 0.1*noise_scale to noise_scale
T_list = [64, 128, 256, 512, 1024, 2048]
v0_list = [1e-8, 1e-2, 1e2, 1e6]
c_list = [1.0, 4.0]  # beta2 is 1 - c log(T) / T
n_seeds = 32  # Monte Carlo seeds (noisy setting), batched
geo_d = 16  # the l_inf vs l_2 instances: diag(1/i^2) and its rotations exp(theta S) and Haar
geo_thetas = [0.03, 0.1, 0.3]
geo_n_starts = 6
geo_n_tune_starts = 3
geo_T_list = [128, 512, 2048]
geo_lr_min = 3e-4  # tuned over geomspace(geo_lr_min, geo_lr_max, geo_n_lr)
geo_lr_max = 0.3
geo_n_lr = 13
geo_v0 = 1e-8

# %% tags=["hide-input"]
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from adamlinf import problems, report, theory
from adamlinf.results import save_table
from adamlinf.run import notebook_params
from adamlinf.studies import adaptivity as study
from adamlinf.studies import rates
from adamlinf.studies.verdicts import save_verdicts, slope_findings

params = notebook_params("thm35_rmsprop", globals())
results_dir = Path(results_dir)
report.style()
t_start = time.perf_counter()

# %% [markdown]
# ## The bound across $T$, $v_0$ and $\beta_2$
# $L(x)=\frac12(x-x^*)^\top A(x-x^*)$ with a dense $A=Q\,\mathrm{diag}(i^{-1/2})Q^\top$ ($Q$ Haar),
# $x^*=0$, $x_0=\mathbf 1$. Deterministic: $\sigma=0$. Noisy: $\sigma_i$ from $0.1\cdot$`noise_scale`
# to `noise_scale`. For every $T$: $\eta=\sqrt{\Delta/(T\sum_iH_i)}$ and $\beta_2=1-c\log T/T$.

# %%
A = problems.random_psd(d, seed=seed, device=device)
H = theory.coordinatewise_smoothness(A)
sigma = noise_scale * torch.linspace(0.1, 1.0, d, dtype=torch.float64)
x0 = torch.ones(d, dtype=torch.float64)
report.markdown(
    f"Σᵢ Hᵢ = ‖A‖₁,₁ = {report.fmt(float(H.sum()))}, maxᵢ Hᵢ = {report.fmt(float(H.max()))}, "
    f"d‖A‖₂ = {report.fmt(d * theory.l2_smoothness(A))}, Σᵢ σᵢ = {report.fmt(float(sigma.sum()))}."
)
res = study.rmsprop_bound_sweep(
    A, sigma, x0, T_list=T_list, v0_list=v0_list, c_list=c_list, n_seeds=n_seeds, seed=seed, device=device
)
slopes = study.rmsprop_slopes(res)
_ = save_table(res, results_dir / "rmsprop_bound.csv", params=params)
_ = save_table(slopes, results_dir / "slopes.csv", params=params)

# %% tags=["hide-input"]
c_main = max(c_list)
floor = 1e-10  # converged runs fall to 1e-18 and below; draw them at this floor
markers = "os^D"
fig, axes = plt.subplots(1, 2, figsize=(7.5, 4.0))
for ax, setting in zip(axes, ("deterministic", "noisy"), strict=True):
    sub = res[(res.setting == setting) & (res.c == c_main)]
    for i, (v0, s) in enumerate(sub.groupby("v0")):
        ax.loglog(
            s["T"],
            s.measured.clip(lower=floor),
            markers[i % 4] + "-",
            color=f"C{i}",
            ms=4,
            label=f"v₀={v0:g}",
        )
        ax.loglog(s["T"], s.bound, "--", color=f"C{i}", lw=1)
    ax.set_xlabel("T (steps)")
    ax.set_title(setting)
axes[0].set_ylabel(r"$\min_{T/2<t\leq T}\ \mathbb{E}\|\nabla L(x_t)\|_1$")
handles, labels = axes[1].get_legend_handles_labels()
fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=9, frameon=False)
fig.tight_layout(rect=(0, 0.08, 1, 1))
_ = report.figure(
    fig,
    f"Theorem 3.5 ({scale} scale, d = {d}, {n_seeds} seeds when noisy, β₂ = 1 − {c_main:g}·log T/T): "
    f"points measured, dashed lines the reconstructed bound; values below {floor:g} are drawn at "
    f"{floor:g}. The paper claims the measured values stay below the bound, decaying like T^(−1/2) "
    "without noise and (log T/T)^(1/4) with noise.",
)

# %% [markdown]
# ## Why the deterministic panel rises with T
#
# In the left panel, at $c = 4$ and $v_0 = 10^{-8}$, the window minimum *rises* from about
# $10^{-7}$ at $T = 64$ to $10^{-2}$–$10^{-1}$ for $T \ge 128$, so a power law fitted to it has a
# positive slope. It is neither round-off ($\epsilon = 0$, and the gradient goes down to
# $10^{-13}$–$10^{-42}$ first) nor the reconstruction (the bound holds in every configuration).
# It is the setting: **deterministic RMSProp at a constant step does not settle.** Once the
# gradient has collapsed, $v_t$ forgets the early large gradients within its memory
# $1/(1-\beta_2) = T/(c\log T)$ steps and decays like $\beta_2^t$, so the effective step
# $\eta/\sqrt{v_t}$ grows until it passes the stability limit $2/H_i$ of some coordinate; the
# iterate is thrown out to $\|\nabla L\|_1$ of order $\eta\sum_iH_i$ and the cycle repeats. The
# trace below shows it: at $T = 64$ the window $T/2 < t \le T$ still contains the first collapse;
# from $T = 128$ on, with the short memory of $c = 4$, the first blow-up comes before $T/2$ and
# the window only sees the cycle. With $c = 1$ (four times the memory) the window catches a
# collapse at every $T$ and the minimum falls to $10^{-18}$–$10^{-102}$. In the cycle regime the
# minimum does fall with $T$ (with $\eta \propto T^{-1/2}$), but it is not one power law across
# $T$, so the slope verdict of this panel is *inconclusive* (its 95% interval contains 0) and the
# deterministic claim rests on the bound, which holds. We keep the setting: it is the paper's
# tuning ($\beta_2 = 1 - c\log T/T$, $\epsilon = 0$), and the bound is about the window minimum,
# which this behaviour does not contradict.

# %% tags=["hide-input"]
trace = study.rmsprop_trace(A, x0, T_list=[64, 256], c=c_main, v0=min(v0_list), device=device)
fig, ax = plt.subplots(figsize=(7.0, 3.6))
for (T, s), style in zip(trace.groupby("T"), ("-", "--"), strict=True):
    ax.semilogy(
        s["t"],
        s.grad_l1.clip(lower=1e-45),
        style,
        lw=1.2,
        label=f"T = {T} (memory {s.memory.iloc[0]:.0f} steps)",
    )
    ax.axvspan(T / 2, T, color="C0" if T == 64 else "C1", alpha=0.08)
ax.set_xlabel("step $t$")
ax.set_ylabel(r"$\|\nabla L(x_t)\|_1$")
ax.legend(fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)
fig.tight_layout()
_ = report.figure(
    fig,
    f"Deterministic RMSProp at β₂ = 1 − {c_main:g}·log T/T, v₀ = {min(v0_list):g}, tuned η ({scale} scale, "
    "d = 10): the gradient collapses, then the step η/√vₜ outgrows the stability limit and the iterate "
    "is thrown out. Shaded: the window T/2 < t ≤ T of Theorem 3.5 for each T.",
)

# %% [markdown]
# ## Fitted slopes
#
# **The predicted exponents.** With $\eta = \sqrt{\Delta/(T\sum_iH_i)}$ the first term of the bound
# is $E \approx 2\Delta/(\eta T) + \eta\sum_iH_i = 3\sqrt{\Delta\sum_iH_i/T}$: without noise the bound
# falls like $T^{-1/2}$ (Corollary 3.7) and grows like $(\sum_iH_i)^{1/2}$. With noise the term
# $\sum_i\sigma_i(\log T/T)^{1/4}$ dominates (Corollary 3.6): a slope of $-1/4$ in $T$, a little
# shallower over our range because of the log (about $-0.21$). The bound is an upper bound, so a
# measured curve may fall faster: a rate claim holds when the 95% interval of the fitted slope
# contains the prediction or lies below it, and fails when it lies above it
# (`adamlinf.studies.verdicts.slope_verdict`). A fixed strongly convex quadratic can be solved
# faster than the worst case; the noisy curve has a genuine noise floor.

# %%
_ = report.table(
    slopes.rename(
        columns={
            "v0": "v₀",
            "measured_slope": "measured slope",
            "measured_slope_se": "± (fit s.e.)",
            "n_points": "points fitted",
            "bound_slope": "bound slope",
            "max_ratio": "largest measured / bound",
        }
    ),
    caption=f"Log-log slopes in T per setting, c and v₀ ({scale} scale); points below 1e-12 (converged "
    "runs) are left out of the fit.",
)

# %% [markdown]
# ## The lemmas on three runs
# Both sides of Lemmas 3.14–3.16 and C.1 (`adamlinf.studies.adaptivity.lemma_report`) on the largest $T$
# (deterministic and noisy), $v_0=10^{-2}$, $\beta_2=1-c\log T/T$ with the largest $c$, and on the
# small deterministic run of `tests/test_lemmas.py` that refutes $c=1$ in Lemma 3.16. Each row: the
# coordinate closest to violation, averaged over seeds.

# %%
lem = study.rmsprop_lemma_table(
    A, sigma, x0, T=max(T_list), c=c_main, v0=1e-2, n_seeds=n_seeds, seed=seed, device=device
)
_ = save_table(lem, results_dir / "lemmas.csv", params=params)
_ = report.table(
    lem,
    caption="Lemmas 3.14–3.16 and C.1 (RECONSTRUCTED): left and right sides, the slack "
    "(positive when the inequality holds) and its size in standard errors over seeds.",
)

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(6.0, 3.6))
Tbig = max(T_list)
for i, (c, s) in enumerate(res[(res["T"] == Tbig) & (res.setting == "noisy")].groupby("c")):
    ax.loglog(s.v0, s.measured, "o-", color=f"C{i}", label=f"measured, c={c:g}")
    ax.loglog(s.v0, s.bound, "--", color=f"C{i}", lw=1, label=f"bound, c={c:g}")
ax.set_xlabel("$v_0$")
ax.set_ylabel(f"min over the window, T = {Tbig}")
ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.02, 1), frameon=False)
fig.tight_layout()
_ = report.figure(
    fig,
    f"Effect of the initial second moment v₀ at β₂ = 1 − c·log T/T (noisy, {scale} scale, T = {Tbig}). "
    "The paper claims a large v₀ is harmless once T(1 − β₂)/log T is large enough.",
)

# %% [markdown]
# ## ℓ∞ against ℓ2 geometry: a heavy-tailed Hessian and its rotations
# The quadratic above has $\sum_iH_i$ within a factor 1.2 of $d\|A\|_2$, so it cannot tell the
# geometries apart. As on the Theorem 3.2 page, $A=\mathrm{diag}(1/i^2)$ (normalised to $\|A\|_2=1$)
# has $\sum_iH_i\approx1.6\ll d\|A\|_2=d$, and its rotations $R_\theta^\top AR_\theta$ raise
# $\sum_iH_i$ towards $d$. Deterministic RMSProp ($\sigma=0$, $\beta_2=1-4\log T/T$) runs from the same
# starts on every instance with its step size tuned on a grid. The ℓ2 bound is the same right-hand
# side with every $H_i=\|A\|_2$, i.e. $\sum_iH_i$ replaced by $d\|A\|_2$, the coefficient of ℓ2 and
# AdaSGD analyses.
# The step size is picked on `geo_n_tune_starts` tuning starts and measured on `geo_n_starts`
# other starts, so the tuned value is not biased down by the starts that chose it.

# %%
instances, constants = rates.geometry_instances(
    geo_d, thetas=geo_thetas, seed=seed, haar_seed=seed + 1, device=device
)
x0_geo = torch.randn(
    geo_n_tune_starts + geo_n_starts,
    geo_d,
    generator=torch.Generator().manual_seed(seed),
    dtype=torch.float64,
)
sweep = rates.geometry_sweep(
    instances,
    x0_geo,
    method="rmsprop",
    delta=1.0,
    T_list=geo_T_list,
    lrs=np.geomspace(geo_lr_min, geo_lr_max, geo_n_lr),
    c=c_main,
    v0=geo_v0,
)
fit = rates.geometry_fit(sweep, constants, n_tune_starts=geo_n_tune_starts)
_ = save_table(constants, results_dir / "geometry_constants.csv", params=params)
_ = save_table(sweep, results_dir / "geometry_sweep.csv", params=params)
_ = save_table(fit, results_dir / "geometry_fit.csv", params=params)
_ = report.table(
    fit[
        [
            "theta",
            "T",
            "H",
            "measured",
            "bound_linf",
            "bound_l2",
            "l2_over_linf",
            "predicted",
        ]
    ].rename(
        columns={"H": "Σᵢ Hᵢ", "d_l2": "d‖A‖₂", "l2_over_linf": "ℓ2 / ℓ∞ bound", "predicted": "√(d‖A‖₂/ΣHᵢ)"}
    ),
    caption=f"Tuned deterministic RMSProp on diag(1/i²) and its rotations (d = {geo_d}; θ = ∞ is Haar): "
    f"measured (mean over {geo_n_starts} measuring starts) against the ℓ∞ and ℓ2 bounds.",
)

# %% tags=["hide-input"]
fig = rates.plot_geometry(
    fit,
    T=max(geo_T_list),
    xlabel="Σᵢ Hᵢ = ‖A‖₁,₁",
    ylabel=f"min over T/2 < t ≤ T of ‖∇L‖₁, T = {max(geo_T_list)}",
    linf_label="ℓ∞ bound (Σᵢ Hᵢ)",
    l2_label="ℓ2 bound (d‖A‖₂)",
    predicted_label="√(ΣHᵢ / ΣHᵢ of the diagonal)",
)
_ = report.figure(
    fig,
    f"Deterministic RMSProp on diag(1/i²) and its rotations ({scale} scale, d = {geo_d}, "
    f"T = {max(geo_T_list)}, mean ± std over {geo_n_starts} measuring starts). Left: rotating raises Σᵢ Hᵢ and the "
    "tuned measurement together, while the ℓ2 bound stays put. Right: both ratios drift, the one against "
    "the ℓ2 bound by the extra factor √(d‖A‖₂/ΣHᵢ) the theory predicts.",
)

# %% [markdown]
# ## Paper vs ours
#
# **Shape against the constant.** The bound's $\sqrt{\sum_iH_i}$ is tested by the slope of the tuned
# measurement against $\sum_iH_i$ across the rotations (95% interval). The bound itself holds on
# every instance; a slope interval above $1/2$ is a statement about the shape, not the inequality:
# the measurement is the window minimum of deterministic RMSProp, which mixes the collapse and the
# blow-up cycle shown above, and on the diagonal instance the starts differ by more than their
# mean. Findings (intervals that exclude a prediction) are listed under the table.

# %%
verdict_table = study.rmsprop_verdicts(res, slopes, lem, fit, sweep, scale=scale)
save_verdicts(verdict_table, results_dir, params=params)
_ = report.table(
    verdict_table.drop(columns=["scale", "page"]),
    caption=f"Theorem 3.5: the paper's claims (as reconstructed) against our measurements (scale `{scale}`).",
)
findings = slope_findings(verdict_table)
if findings:
    _ = report.markdown(findings)
wall = time.perf_counter() - t_start
_ = report.markdown(
    f"**Cost of this page** at `{scale}` scale: {wall:.1f} s of wall time on the CPU "
    "(the theorem has no paper-scale experiment; the `paper` parameter set extends T, v₀ and the seeds)."
)

# %% tags=["remove-cell"]
# The result box under the title ({glue:md} result_box), made from this page's saved verdicts.
from adamlinf.studies import glance

_ = glance.result_box(
    "thm35_rmsprop",
    results_dir,
    ran=f"RMSProp on a {d}-dimensional quadratic, deterministic and noisy ({n_seeds} seeds), T up to {max(T_list)}; diag(1/i²) in d = {geo_d} with its rotations",
)
