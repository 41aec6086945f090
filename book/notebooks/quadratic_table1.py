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
# # Table 1: Adam on rotated quadratics (Section 4.1)
#
# Section 4.1 of {cite}`xie2025adam` tests the paper's thesis in the cleanest possible setting: a
# quadratic whose Hessian is rotated step by step away from the coordinate axes. Adam is not
# rotation equivariant, AdaSGD {cite}`wang2020adasgd` is; the paper reads its Table 1 as: Adam's
# loss grows with the $(1,1)$-norm of the rotated Hessian, and Adam beats AdaSGD exactly when
# $\|H\|_{1,1}/d < \|H\|_2$.
#
# ```{prf:definition} Rotated quadratics (RECONSTRUCTED)
# :label: def-rotated-quadratic
# Let $H = \operatorname{diag}(\lambda_1,\dots,\lambda_d)$ and $L(x) = \frac12 x^\top H x$. Draw
# $M\in\mathbb R^{d\times d}$ with i.i.d. $\mathcal N(0,1)$ entries, let $S = M - M^\top$ and
# $R_\theta = \exp(\theta S)$, an orthogonal matrix with $R_0 = I$ that tends to a random rotation as
# $\theta$ grows. The rotated loss is $L_\theta(x) = L(R_\theta x)$, with Hessian
# $H_\theta = R_\theta^\top H R_\theta$; a run on $L_\theta$ starts at $R_\theta^\top x_0$, so that
# every rotation starts from the same loss $L(x_0)$. The optimizers see stochastic gradients
# $\nabla L_\theta(x) + \sigma\xi_t$, $\xi_t\sim\mathcal N(0, I_d)$ i.i.d., which satisfy the noise
# assumption (Assumption 3.4) with $\sigma_i = \sigma$ in every basis.
# ```
#
# The construction of $R_\theta$ survives in the paper's text; the symbols, the form of $L$ and the
# noise model are reconstructed (PAPER_MATH.md, §5). The claim being tested rests on the
# deterministic rate of Adam:
#
# ```{prf:corollary} Corollary 3.7, deterministic Adam (RECONSTRUCTED)
# :label: cor-37-quadratic
# With $\sigma_i = 0$, $1-\beta_2 = \Omega(\log T/T)$, $\epsilon = 0$ and a tuned constant step size,
# $\min_{T/2<t\le T}\|\nabla L(x_t)\|_1 = O\big(\sqrt{(L(x_0)-\min L)\sum_i H_i / T}\big)$ up to a
# term that decays faster than any polynomial, where $\sum_i H_i \ge \|\nabla^2 L\|_{1,1}$. AdaSGD's
# analogue has $d\,\|H\|_2$ in place of $\sum_i H_i$, so Adam's bound is the better one when
# $\|H\|_{1,1}/d < \|H\|_2$.
# ```
#
# Reconstructed: the exact statement was not seen; its form is inferred from the surviving proof
# structure (see PAPER_MATH.md §3). The comparison with AdaSGD is the paper's reading of
# Theorem 3.11 with one block.
#
# **What is ours.** The paper's dimension, spectrum, $\theta$ values, number of steps, learning-rate
# grid, number of seeds and the $\beta_2$ of its first loss column were **not recovered**. Every one
# of them is a parameter below; the defaults are ours and are justified in the next section. The
# optimizers are the PyTorch forms the paper's experiments ran (`torch.optim.Adam`: bias correction,
# $\epsilon = 10^{-8}$ outside the square root; AdaSGD with the same conventions and the single
# second moment $\|g\|_2^2/d$; `torch.optim.SGD` with momentum; SignGD).

# %% tags=["parameters"]
scale = "ci"
results_dir = "results/quadratic_table1/ci"
device = "cpu"
seed = 0
d = 200
alpha = 0.5
thetas = [0.002, 0.02, 0.05, 1.0]
sigma = 0.001
steps = 400
n_seeds = 3
n_lr = 10
beta2_col0 = 0.99
final_window = 40
record_every = 10
dtype = "float64"
sens_alphas = [0.5, 1.0]
sens_sigmas = [0.0, 0.0001, 0.001, 0.01]
sens_d = 100
sens_thetas = [0.003, 0.03, 0.07, 1.0]
sens_steps = 400
sens_seeds = 2
sens_n_lr = 10
threads = 1
extra_schedule = "cosine"

# %% [markdown]
# ## Our parameters and why
#
# * **Spectrum** $\lambda_i = i^{-\alpha}$ with $\alpha = 0.5$. Unrotated,
#   $\|H\|_{1,1}/d = \operatorname{mean}_i\lambda_i \approx 2/\sqrt d$ is far below $\|H\|_2 = 1$.
#   Under a random rotation the off-diagonal entries have size about
#   $\|\lambda - \bar\lambda\|_2/d$, so $\|H_\theta\|_{1,1}/d$ rises to about
#   $\sqrt{2/\pi}\,\|\lambda-\bar\lambda\|_2 \approx 1.5$ at $d = 1000$: the path
#   $\theta\mapsto H_\theta$ crosses the paper's threshold $\|H\|_{1,1}/d = \|H\|_2$, so the claim
#   "Adam beats AdaSGD exactly when $\|H\|_{1,1}/d<\|H\|_2$" can be tested on both sides. With
#   $\alpha = 1$ (sensitivity section) even a random rotation stays below the threshold.
# * **$\theta$ values**: $S$'s eigenvalues spread over $[-2\sqrt{2d}, 2\sqrt{2d}]\,i$, so
#   $\theta\sqrt{d}\ll 1$ barely rotates and $\theta\sqrt d \gg 1$ is essentially Haar. The
#   smallest $\theta$ barely moves $H$, the largest ($\theta = 1$) gives a (numerically) Haar
#   rotation, the two middle ones sit on either side of the threshold. ci uses larger $\theta$
#   because its $d$ is smaller.
# * **Noise** $\sigma = 10^{-3}$, about 1% of the root-mean-square gradient entry at $x_0$. The issue
#   warns of a trap: with full-batch gradients every tuned run of AdaSGD/SGD reaches round-off
#   ($10^{-30}$ and below) within the step budget and the table would compare the last bits. With
#   noise, every method has a noise floor far above round-off (we check this below) and the
#   comparison is the one Assumption 3.4 and Theorem 3.5 are about. $\sigma = 0$ is run too, in the
#   sensitivity section, to show the trap.
# * **Steps** $T$ (the same for every row) and the **final loss**: the mean of the noise-free loss
#   $L_\theta(x_t)$ over the last `final_window` iterates (a tenth of $T$), which averages out the
#   step-to-step fluctuation of a stochastic run; mean ± std are then taken over seeds (independent
#   noise streams; $x_0\sim\mathcal N(0,I_d)$ is drawn once).
# * **Learning rates**: `n_lr` log-spaced values per row, $[10^{-5}, 10^{-1}]$ for Adam, AdaSGD and
#   SignGD, $[10^{-3}, 2]$ for SGD; each loss in the table is the best mean over the grid, and a best
#   value at an edge of the grid is flagged.
# * **Betas**: the second column is $(\beta_1,\beta_2) = (0.9, 0.99)$ (VERIFIED from the reviews);
#   for the first column we use $(0, 0.99)$ (RMSProp, the $\beta_1 = 0$ case the theory analyses), so
#   that only $\beta_1$ changes between the columns. SGD uses momentum $\beta_1$ (0, and 0.9 in the
#   second column); SignGD has no betas and appears in the first column only.
# * **Learning-rate schedule**: constant for Table 1 (the simplest reading of "learning rates are
#   tuned"; the paper's schedule was not recovered). A sign-like method at a constant step size
#   keeps moving about $\eta$ per coordinate per step, so Adam's final loss has an oscillation floor
#   that AdaSGD and SGD do not have; we therefore repeat the Adam/AdaSGD rows with a cosine decay
#   (`extra_schedule`).
# * **Threads**: `threads = 1` torch thread. Each step is a few dozen small tensor operations; on a
#   shared 2-core machine intra-op threading mostly adds synchronisation (we measured one thread
#   4-10x faster in wall time than two while other jobs ran).
# * **Precision**: float64 at ci scale, float32 at paper scale (for speed; every loss in the table
#   is many orders of magnitude above float32 round-off of the loss, $\approx 10^{-7}L$).

# %%
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display

from adamlinf import problems as Q
from adamlinf.results import save_table

torch.manual_seed(seed)
torch.set_num_threads(threads)
out = Path(results_dir)
out.mkdir(parents=True, exist_ok=True)
torch_dtype = getattr(torch, dtype)
params = dict(scale=scale, d=d, alpha=alpha, thetas=thetas, sigma=sigma, steps=steps, n_seeds=n_seeds,
              n_lr=n_lr, beta2_col0=beta2_col0, final_window=final_window, record_every=record_every,
              dtype=dtype, device=device, seed=seed, threads=threads)
pd.set_option("display.width", 200)

# %% [markdown]
# ## Running every (row, learning rate, seed) at once
#
# `adamlinf.problems.run_batched` stacks all runs into one tensor of shape (runs, $d$): one batched
# matrix product per rotated Hessian and one batched optimizer update (the functional forms of
# `adamlinf.optim`) per group of runs that share an update rule, per step. `tests/test_problems.py`
# checks that every run equals the optimizer classes (and `torch.optim.Adam`/`SGD`) run one at a
# time.

# %%
t0 = time.perf_counter()
exp = Q.build_experiment(d=d, alpha=alpha, thetas=thetas, sigma=sigma, beta2=beta2_col0,
                         lr_grids=Q.default_lr_grids(n_lr), rotation_seed=seed, x0_seed=seed,
                         dtype=torch.float64, device=device)
t_build = time.perf_counter() - t0
cpu0 = time.process_time()
res = Q.run_batched(exp, steps=steps, n_seeds=n_seeds, seed=seed, final_window=final_window,
                    record_every=record_every, dtype=torch_dtype, device=device)
cpu_run = time.process_time() - cpu0
n_runs = len(res.final)
print(f"{len(exp.rows)} rows, {n_runs} runs of {steps} steps at d={d}: "
      f"build {t_build:.1f} s, batched run {res.wall_time_s:.1f} s wall ({cpu_run:.1f} s CPU, "
      f"{torch.get_num_threads()} threads)")
_ = save_table(res.final, out / "final_losses.csv", params, wall_time_s=res.wall_time_s)
_ = save_table(res.geometry, out / "geometry.csv", params)

# %% [markdown]
# ## Table 1
#
# Each loss is the best over the learning-rate grid of the mean ± std over seeds. The paper's
# numbers were not recovered, so the "paper" column states its claim instead.

# %%
final = pd.read_csv(out / "final_losses.csv")
geometry = pd.read_csv(out / "geometry.csv")
tuned = Q.tune(final)
table = Q.table1(tuned, geometry)
_ = save_table(table, out / "table1.csv", params)
_ = save_table(tuned, out / "tuned.csv", params)

cols = ["beta1=0", "beta1=0.9"]
b0 = f"(0, {beta2_col0:g})"


def fmt(r, c):
    m, s = r.get(f"loss_mean[{c}]"), r.get(f"loss_std[{c}]")
    if m is None or not np.isfinite(m):
        return "—"
    return f"{m:.3e} ± {s:.1e}" + (" (lr at grid edge)" if r.get(f"lr_at_edge[{c}]") else "")


claims = {"AdaSGD": "reference (rotation equivariant)", "SGD": "context", "SignGD": "context"}
shown = pd.DataFrame({
    "Optimizer": table["Optimizer"],
    "‖H_θ‖₁,₁/d": table["l11_per_dim"].map("{:.4f}".format),
    "‖H_θ‖₂": table["spectral_norm"].map("{:.4f}".format),
    f"Loss (β1, β2) = {b0}": [fmt(r, cols[0]) for _, r in table.iterrows()],
    "Loss (β1, β2) = (0.9, 0.99)": [fmt(r, cols[1]) for _, r in table.iterrows()],
    "best lr": [", ".join(f"{r[f'best_lr[{c}]']:.2g}" for c in cols if np.isfinite(r.get(f"best_lr[{c}]", np.nan)))
                for _, r in table.iterrows()],
    "paper (numbers NOT RECOVERED)": [claims.get(o, "loss grows with ‖H_θ‖₁,₁; < AdaSGD iff ‖H‖₁,₁/d < ‖H‖₂")
                                      for o in table["Optimizer"]],
    "scale": scale,
})
print(f"scale = {scale}: d = {d}, alpha = {alpha}, sigma = {sigma:g}, T = {steps}, {n_seeds} seeds, "
      f"{n_lr} learning rates per row")
shown

# %% [markdown]
# ## Final loss against the (1,1)-norm
#
# One line per optimizer setting over the Adam rows ($\theta = 0$ and the rotated ones); AdaSGD is
# rotation equivariant, so its tuned loss is a horizontal line. The dotted vertical line is
# $\|H\|_2$, the paper's threshold.

# %%
adam_rows = table[table["Optimizer"].str.startswith("Adam") & (table["Optimizer"] != "AdaSGD")].sort_values("l11_per_dim")
ada = table[table["Optimizer"] == "AdaSGD"].iloc[0]
fig, ax = plt.subplots(figsize=(7, 4.5))
for c, color in zip(cols, ["C0", "C1"]):
    lab = b0 if c == cols[0] else "(0.9, 0.99)"
    ax.errorbar(adam_rows["l11_per_dim"], adam_rows[f"loss_mean[{c}]"], yerr=adam_rows[f"loss_std[{c}]"],
                marker="o", color=color, label=f"Adam, (β1, β2) = {lab}")
    ax.axhline(ada[f"loss_mean[{c}]"], color=color, ls="--", label=f"AdaSGD, (β1, β2) = {lab}")
ax.axvline(float(adam_rows["spectral_norm"].iloc[0]), color="k", ls=":", label="‖H‖₂")
ax.set_xscale("log")
ax.set_yscale("log")
ax.set_xlabel("‖H_θ‖₁,₁ / d")
ax.set_ylabel("tuned final loss (mean over seeds)")
ax.set_title(f"Adam on rotated quadratics ({scale}: d={d}, σ={sigma:g}, T={steps})")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Loss curves of the tuned runs
#
# Mean over seeds of $L_\theta(x_t)$ at each row's best learning rate.

# %%
curves = res.curves
best_keys = tuned[["row", "column", "best_lr"]].rename(columns={"best_lr": "lr"})
tuned_curves = curves.merge(best_keys, on=["row", "column", "lr"])
_ = save_table(tuned_curves, out / "tuned_curves.csv", params)
tc = pd.read_csv(out / "tuned_curves.csv").groupby(["row", "column", "step"], sort=False)["loss"].mean().reset_index()
fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
for ax, c in zip(axes, cols):
    for i, name in enumerate(table["Optimizer"]):
        sub = tc[(tc["row"] == name) & (tc["column"] == c)]
        if len(sub):
            ax.plot(sub["step"], sub["loss"], label=name, color=f"C{i}")
    ax.set_yscale("log")
    ax.set_xlabel("step t")
    ax.set_title(f"(β1, β2) = {b0 if c == cols[0] else '(0.9, 0.99)'}")
    ax.legend(fontsize=7)
axes[0].set_ylabel("L_θ(x_t), mean over seeds")
fig.suptitle(f"Tuned loss curves ({scale}, σ={sigma:g})")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Rank correlation and the paper's "exactly when"

# %%
verdicts = pd.concat([Q.paper_verdict(table, c) for c in cols], ignore_index=True)
_ = save_table(verdicts, out / "verdict.csv", params)
summary = Q.verdict_summary(verdicts)
_ = save_table(summary, out / "summary.csv", params)
for c in cols:
    v = verdicts[verdicts["column"] == c].sort_values("l11_per_dim")
    worst = v.loc[v["adam_loss"].idxmax()]
    print(f"{c}: Adam's tuned loss is {'monotone' if v['adam_loss'].is_monotonic_increasing else 'NOT monotone'} "
          f"in ‖H_θ‖₁,₁/d; worst row {worst['Optimizer']} (‖H_θ‖₁,₁/d = {worst['l11_per_dim']:.3f}); "
          f"the most rotated row has {v['adam_loss'].iloc[-1] / v['adam_loss'].iloc[0]:.2f}x the loss of θ = 0")
display(verdicts[["Optimizer", "column", "l11_per_dim", "spectral_norm", "adam_loss", "adasgd_loss",
                  "adam_beats_adasgd", "l11_below_spectral", "agrees_with_paper"]])
summary.assign(paper="ρ > 0; Adam < AdaSGD iff ‖H‖₁,₁/d < ‖H‖₂", scale=scale)

# %% [markdown]
# ## The same rows with a decaying learning rate
#
# Adam and AdaSGD rows again, same grid, seeds and noise, with the step size multiplied by a
# cosine decay from 1 to 0 over the $T$ steps (`adamlinf.problems.lr_factor`). The grid is moved
# up one decade, $[10^{-4}, 1]$, because a decaying step size tolerates larger peak values (at
# the constant-step grid the best values sat at its upper edge).

# %%
extra_grids = dict(Q.default_lr_grids(n_lr), adam=[1e-4, 1.0, n_lr], adasgd=[1e-4, 1.0, n_lr])
exp_extra = Q.build_experiment(d=d, alpha=alpha, thetas=thetas, sigma=sigma, beta2=beta2_col0,
                               lr_grids=extra_grids, rotation_seed=seed, x0_seed=seed,
                               dtype=torch.float64, device=device)
exp_extra.rows = [r for r in exp_extra.rows if r.optimizer in ("adam", "adasgd")]
cpu0 = time.process_time()
res_extra = Q.run_batched(exp_extra, steps=steps, n_seeds=n_seeds, seed=seed, final_window=final_window,
                          record_every=steps, schedule=extra_schedule, dtype=torch_dtype, device=device)
cpu_extra = time.process_time() - cpu0
_ = save_table(res_extra.final, out / f"final_losses_{extra_schedule}.csv", dict(params, schedule=extra_schedule),
               wall_time_s=res_extra.wall_time_s)
table_extra = Q.table1(Q.tune(pd.read_csv(out / f"final_losses_{extra_schedule}.csv")), geometry)
_ = save_table(table_extra, out / f"table1_{extra_schedule}.csv", dict(params, schedule=extra_schedule))
verdicts_extra = pd.concat([Q.paper_verdict(table_extra, c) for c in cols], ignore_index=True)
extra_summary = Q.verdict_summary(verdicts_extra)
_ = save_table(extra_summary, out / f"summary_{extra_schedule}.csv", dict(params, schedule=extra_schedule))
print(f"{extra_schedule} schedule: {len(res_extra.final)} runs in {res_extra.wall_time_s:.1f} s wall ({cpu_extra:.1f} s CPU)")
display(pd.DataFrame({
    "Optimizer": table_extra["Optimizer"],
    "‖H_θ‖₁,₁/d": table_extra["l11_per_dim"].map("{:.4f}".format),
    f"Loss (β1, β2) = {b0}, {extra_schedule}": [fmt(r, cols[0]) for _, r in table_extra.iterrows()],
    f"Loss (β1, β2) = (0.9, 0.99), {extra_schedule}": [fmt(r, cols[1]) for _, r in table_extra.iterrows()],
    "paper (numbers NOT RECOVERED)": [claims.get(o, "loss grows with ‖H_θ‖₁,₁; < AdaSGD iff ‖H‖₁,₁/d < ‖H‖₂")
                                      for o in table_extra["Optimizer"]],
    "scale": scale}))
extra_summary.assign(paper="Adam < AdaSGD iff ‖H‖₁,₁/d < ‖H‖₂", scale=scale)

# %% [markdown]
# ## How the conclusions depend on the setting
#
# The same computation (Adam and AdaSGD rows only, a smaller $d$ and fewer seeds, otherwise the same
# rules) over two spectra and four noise levels, both $\beta_1$ columns. $\sigma = 0$ is the
# full-batch trap: `min_loss_any_row` shows how close to round-off the best tuned run gets there.

# %%
cpu0 = time.process_time()
t0 = time.perf_counter()
sens = Q.sensitivity(alphas=sens_alphas, sigmas=sens_sigmas, d=sens_d, thetas=sens_thetas, steps=sens_steps,
                     n_seeds=sens_seeds, lr_grids=Q.default_lr_grids(sens_n_lr), beta2=beta2_col0,
                     final_window=max(1, sens_steps // 10), seed=seed, rotation_seed=seed, x0_seed=seed,
                     dtype=torch_dtype, device=device)
t_sens = time.perf_counter() - t0
cpu_sens = time.process_time() - cpu0
_ = save_table(sens, out / "sensitivity.csv", dict(params, sens_alphas=sens_alphas, sens_sigmas=sens_sigmas,
                                                 sens_d=sens_d, sens_thetas=sens_thetas, sens_steps=sens_steps,
                                                 sens_seeds=sens_seeds, sens_n_lr=sens_n_lr),
           wall_time_s=t_sens)
sens = pd.read_csv(out / "sensitivity.csv")
print(f"sensitivity: d={sens_d}, thetas={sens_thetas}, T={sens_steps}, {sens_seeds} seeds: "
      f"{t_sens:.1f} s wall ({cpu_sens:.1f} s CPU)")
sens[["alpha", "sigma", "column", "spearman_l11_vs_adam_loss", "adasgd_loss", "adam_loss_theta0",
      "adam_loss_max_theta", "n_adam_beats_adasgd", "n_agree_with_paper", "n_adam_rows", "min_loss_any_row"]].assign(
    paper="Adam < AdaSGD iff ‖H‖₁,₁/d < ‖H‖₂", scale=f"{scale} (sensitivity: d={sens_d}, T={sens_steps})")

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
for ax, c in zip(axes, cols):
    for i, a in enumerate(sens_alphas):
        s = sens[(sens["column"] == c) & (sens["alpha"] == a)]
        x = s["sigma"].replace(0.0, min(v for v in sens_sigmas if v > 0) / 10)
        ax.plot(x, s["adam_loss_theta0"] / s["adasgd_loss"], "o-", color=f"C{i}", label=f"Adam θ=0, α={a}")
        ax.plot(x, s["adam_loss_max_theta"] / s["adasgd_loss"], "s--", color=f"C{i}",
                label=f"Adam θ={max(sens_thetas):g}, α={a}")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("σ (leftmost point: σ = 0)")
    ax.set_title(f"(β1, β2) = {b0 if c == cols[0] else '(0.9, 0.99)'}")
    ax.legend(fontsize=7)
axes[0].set_ylabel("tuned Adam loss / tuned AdaSGD loss")
fig.suptitle(f"Sensitivity (d={sens_d}); below 1: Adam beats AdaSGD")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Cost
#
# Times are measured on this machine while other jobs may share its CPU, so they are pessimistic.

# %%
total_wall = t_build + res.wall_time_s + res_extra.wall_time_s + t_sens
print(f"this run ({scale}): {total_wall:.1f} s wall for the computations "
      f"({cpu_run + cpu_extra + cpu_sens:.1f} s CPU time)")
if scale != "paper":
    # cost model: per step, one multiply-add per dense-Hessian entry and run, plus ~20 elementwise
    # passes over (runs, d); calibrated on this run
    import yaml

    def work(n_dense, n_all, dd, T):
        return T * (n_dense * dd * dd + 20 * n_all * dd)

    n_dense = int((res.final["problem"] > 0).sum())
    P = yaml.safe_load(Path("params/quadratic_table1.yaml").read_text())["paper"]
    k = len(P["thetas"])
    p_dense = 2 * k * P["n_lr"] * P["n_seeds"]
    p_all = (2 * (k + 3) + 1) * P["n_lr"] * P["n_seeds"]
    est = res.wall_time_s * work(p_dense, p_all, P["d"], P["steps"]) / work(n_dense, n_runs, d, steps)
    print(f"rough estimate for Table 1 at paper scale (d={P['d']}, T={P['steps']}, {P['n_lr']} lrs, "
          f"{P['n_seeds']} seeds) in float64 on this machine: {est / 60:.1f} min (float32 about half)")

# %% [markdown]
# ## Paper vs ours
#
# The paper's claims (Section 4.1), its numbers not recovered:
# 1. Adam's tuned loss grows with $\|H_\theta\|_{1,1}$ (consistent with Corollary 3.7).
# 2. Adam beats AdaSGD exactly when $\|H\|_{1,1}/d < \|H\|_2$ (consistent with Theorem 3.11).
# 3. $(\beta_1,\beta_2) = (0.9, 0.99)$ gives far lower losses than the first column (reviewer 2).
#
# Mechanisms that help read the numbers (they are explanations, checked only by the runs above):
# * At a constant step size Adam keeps moving about $\eta$ per coordinate per step once its
#   gradients are small (its update is normalised coordinate by coordinate), so its loss stalls at an
#   oscillation floor that grows with $\eta^2$ and with how the Hessian couples coordinates; AdaSGD
#   normalises by one global scalar and behaves like tuned SGD, whose floor is set by the noise.
# * When the noise dominates the gradient ($|\nabla_i L| \ll \sigma$), $v_i\approx\sigma^2$ for every
#   coordinate in every basis, so Adam, AdaSGD and SGD all become SGD with step $\eta/\sigma$ and
#   rotation stops mattering.
# * Under an (almost) Haar rotation every coordinate mixes all eigen-directions, the $v_i$ become
#   nearly equal, and Adam behaves like AdaSGD again, although $\|H_\theta\|_{1,1}/d$ is largest
#   there. The $(1,1)$-norm is an upper-bound quantity (Corollary 3.7), not a predictor of Adam's
#   loss along the whole rotation path.
#
# What we measured, at the scale this notebook ran at (claim 1 counts as agreeing only if Adam's
# tuned loss increases monotonically with $\|H_\theta\|_{1,1}/d$ over the Adam rows, partly if
# $\rho > 0$):

# %%
lines = [f"**Scale `{scale}`** (d = {d}, α = {alpha}, σ = {sigma:g}, T = {steps}, {n_seeds} seeds):", ""]
for _, r in summary.iterrows():
    c = r["column"]
    v = verdicts[verdicts["column"] == c]
    rho = r["spearman(‖H_θ‖₁,₁/d, Adam loss)"]
    mono = v.sort_values("l11_per_dim")["adam_loss"].is_monotonic_increasing
    verdict1 = "agrees" if mono else ("agrees only partly" if rho > 0 else "does NOT agree")
    lines.append(f"* {c}: Spearman ρ(‖H_θ‖₁,₁/d, Adam loss) = {rho:.2f} over {len(v)} Adam rows; the loss is "
                 f"{'' if mono else 'not '}monotone in ‖H_θ‖₁,₁/d (claim 1 {verdict1}); Adam beats AdaSGD in "
                 f"{r['Adam rows beating AdaSGD']} rows; the 'exactly when ‖H‖₁,₁/d < ‖H‖₂' rule holds in "
                 f"{r['rows where that matches ‖H‖₁,₁/d < ‖H‖₂']} rows (claim 2 "
                 f"{'agrees' if v['agrees_with_paper'].all() else 'does NOT agree'}).")
ad = table[table["Optimizer"].str.startswith("Ada")]  # Adam and AdaSGD rows, as in the paper's table
ratio = (ad["loss_mean[beta1=0.9]"] / ad["loss_mean[beta1=0]"])
lines.append(f"* β1 = 0.9 vs β1 = 0 on the Adam/AdaSGD rows: the loss ratio ranges {ratio.min():.2f}-{ratio.max():.2f} "
             f"(median {ratio.median():.2f}); claim 3 {'agrees' if (ratio < 1).all() else 'does NOT fully agree'} "
             "(\"far better\" would mean ratios well below 1).")
for _, r in extra_summary.iterrows():
    lines.append(f"* With a {extra_schedule} learning-rate decay ({r['column']}): ρ = "
                 f"{r['spearman(‖H_θ‖₁,₁/d, Adam loss)']:.2f}, Adam beats AdaSGD in {r['Adam rows beating AdaSGD']} "
                 f"rows, the paper's rule holds in {r['rows where that matches ‖H‖₁,₁/d < ‖H‖₂']}.")
s_ok = sens.groupby("column")["n_agree_with_paper"].sum() / sens.groupby("column")["n_adam_rows"].sum()
lines.append("* Sensitivity: fraction of (spectrum, σ, θ) cases where 'Adam beats AdaSGD' coincides with "
             "‖H‖₁,₁/d < ‖H‖₂: " + ", ".join(f"{c}: {v:.0%}" for c, v in s_ok.items()) +
             "; Spearman ρ ranges " + ", ".join(
                 f"{c}: [{g.min():.2f}, {g.max():.2f}]" for c, g in sens.groupby("column")["spearman_l11_vs_adam_loss"]) + ".")
display(Markdown("\n".join(lines)))
