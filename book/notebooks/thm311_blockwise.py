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
# # Theorem 3.11: blockwise Adam and Φ-smoothness
#
# Adam keeps one second moment per coordinate, AdaSGD one for all parameters. Blockwise Adam
# (Algorithm 3) interpolates: one second moment per block of a partition $\Phi:[d]\to[B]$
# (Adam-mini and Adalayer are of this kind {cite}`zhang2024adammini,zhao2024deconstructing`).
# The paper {cite}`xie2025adam` proves one theorem for every partition, whose leading constant is
# the **Φ-smoothness** $H(L,\Phi)$: the partition that makes $H(L,\Phi)$ smallest should optimize
# fastest. Every statement below is RECONSTRUCTED (`PAPER_MATH.md`, Section 3); the formulas were
# lost in the paper's extraction and are forced by the surviving special cases ("In Adam, all
# blocks are of size 1. In AdaSGD, there is only one block.").
#
# ```{prf:definition} Φ-norm (Definition 3.8, RECONSTRUCTED)
# :label: def-phi-norm
# With $d_b=|\Phi^{-1}(b)|$ and $x_{(b)}=(x_i)_{\Phi(i)=b}$:
# $\|x\|_\Phi=\max_b\|x_{(b)}\|_2/\sqrt{d_b}$, with dual norm $\|x\|_{\Phi,*}=\sum_b\sqrt{d_b}\|x_{(b)}\|_2$.
# $\Phi(i)=i$ gives $\ell_\infty/\ell_1$; one block gives $\|x\|_2/\sqrt d$ and $\sqrt d\|x\|_2$.
# ```
#
# ```{prf:definition} Φ-smoothness (Definition 3.9, RECONSTRUCTED)
# :label: def-phi-smooth
# A diagonal $D$ *follows* $\Phi$ if $D_{ii}=r_{\Phi(i)}$. The Φ-smoothness constant is
# $H(L,\Phi)=\min\{\mathrm{Tr}(D): D\text{ follows }\Phi,\ -D\preceq\nabla^2L(x)\preceq D\ \forall x\}$.
# Finer partitions give smaller values; one block gives $d\sup_x\|\nabla^2L(x)\|_2$.
# ```
#
# ```{prf:definition} Blockwise smoothness (Definition 3.12, RECONSTRUCTED)
# :label: def-block-smooth
# $L$ is $\mathbf H$-blockwisely smooth w.r.t. $\|\cdot\|_\Phi$ if
# $\sqrt{d_b}\|\nabla_{(b)}L(x)-\nabla_{(b)}L(y)\|_2\le H_b\|x-y\|_\Phi$ for all $b,x,y$.
# ```
#
# ```{prf:lemma} Diagonal domination (Lemma 3.13, RECONSTRUCTED)
# :label: lem-diag-dom
# Under Definition 3.12, $\Delta^\top\nabla^2L(x)\Delta\le\sum_b\frac{H_b}{d_b}\|\Delta_{(b)}\|_2^2$; hence
# $H(L,\Phi)\le\sum_bH_b$. For a quadratic with Hessian $A$, $H_b=\sqrt{d_b}\sum_c\sqrt{d_c}\|A_{(b),(c)}\|_2$
# is valid, so $H(L,\Phi)\le\sum_{b,c}\sqrt{d_bd_c}\|A_{(b),(c)}\|_2$ (`adamlinf.hessian.blockwise_bound`).
# ```
#
# ```{prf:proof}
# Write $\Delta^\top A\Delta=\sum_{b,c}\Delta_{(b)}^\top A_{(b),(c)}\Delta_{(c)}\le\sum_{b,c}\|A_{(b),(c)}\|_2\|\Delta_{(b)}\|\|\Delta_{(c)}\|$
# and use $\|\Delta_{(b)}\|\|\Delta_{(c)}\|\le\frac12(\sqrt{d_c/d_b}\|\Delta_{(b)}\|^2+\sqrt{d_b/d_c}\|\Delta_{(c)}\|^2)$;
# collecting the terms of block $b$ gives $\sum_b\frac{\|\Delta_{(b)}\|^2}{d_b}\sqrt{d_b}\sum_c\sqrt{d_c}\|A_{(b),(c)}\|_2$.
# (For $d_b=1$ this is the row-sum argument of `PAPER_MATH.md`.) `tests/test_lemmas.py` checks (2) exactly,
# also with the *tightest* constants of Definition 3.12 found by ascent.
# ```
#
# ```{prf:theorem} Blockwise Adam with $\beta_1=0$ (Theorem 3.11, RECONSTRUCTED)
# :label: thm-blockwise
# Under Assumption 3.10 ($\mathbb E\|\nabla_{(b)}L_t(x)-\nabla_{(b)}L(x)\|^2\le d_b\sigma_b^2$),
# $$\min_{T/2<t\le T}\mathbb E\|\nabla L(x_t)\|_{\Phi,*}\le E+\sqrt E\sqrt{\frac{\beta_2^{T/4}}{T(1-\beta_2)}\sum_bd_b\sqrt{v_{0,b}}+\sum_bd_b\sigma_b+d\sqrt\epsilon},$$
# $$E=\frac{2}{\eta T}\mathbb E[L(x_0)-L(x_T)]+\Big(1+\frac{\beta_2F}{T(1-\beta_2)}\Big)\Big(\eta H(L,\Phi)+\sqrt{1-\beta_2}\sum_bd_b\sigma_b\Big).$$
# Theorem 3.5 is the case $\Phi(i)=i$.
# ```
#
# ```{prf:proof}
# (Sketch.) As for Theorem 3.5, with the descent inequality in $\|\cdot\|_\Phi$: Lemma 3.13 turns the
# second-order term into $\eta^2\sum_b\frac{H_b}{d_b}\|\Delta_{(b)}\|^2$ with
# $\Delta_{(b)}=g_{(b)}/\sqrt{v_b}$, and Lemma 3.14 applied to $\|g_{(b)}\|^2/d_b$ and $v_b$ bounds it.
# ```
#
# **What we test.** The theorem's leading term is $\eta H(L,\Phi)$, so with $\eta$ tuned the bound ranks
# partitions by $H(L,\Phi)$. On a quadratic with block structure we compare the **final loss of
# blockwise Adam** (best over a learning-rate grid) for several partitions with their
# smoothness bound, and report the Spearman rank correlation.

# %% tags=["parameters"]
scale = "ci"
results_dir = "results/thm311_blockwise/ci"
device = "cpu"
seed = 0
block_size = 8                        # size of the Hessian's diagonal blocks
block_scales = [100.0, 10.0, 1.0, 0.1]  # one scale per diagonal block (heterogeneous curvature)
T = 400                               # steps
beta2 = 0.0                           # 0 means 1 - log(T)/T
noise = 0.1                           # isotropic gradient noise sigma (0: deterministic)
n_seeds = 8
lr_min = 1e-3                         # learning-rate grid: geomspace(lr_min, lr_max, n_lr)
lr_max = 1.0
n_lr = 13
exact_max_blocks = 8                  # compute H(L, Phi) exactly when B at most this

# %%
import math
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import yaml
from IPython.display import Markdown, display
from scipy.stats import spearmanr

from adamlinf import theory as th
from adamlinf.results import save_table

results_dir = Path(results_dir)
params = dict(block_size=block_size, block_scales=block_scales, T=T, beta2=beta2, noise=noise,
              n_seeds=n_seeds, lr_min=lr_min, lr_max=lr_max, n_lr=n_lr,
              exact_max_blocks=exact_max_blocks, seed=seed, device=device)
t_start = time.perf_counter()

# %% [markdown]
# ## The quadratic and the partitions
# $A$ is block diagonal; block $k$ is `block_scales[k]` times a Haar-rotated matrix with eigenvalues
# in $[0.5,1]$ (`adamlinf.theory.block_quadratic`). Partitions: coordinates (Adam), blocks aligned
# with the structure (the blocks, their halves, pairs of blocks), blocks of the right size but
# shifted by half a block (misaligned), and one block (AdaSGD).

# %%
nb = len(block_scales)
A, aligned = th.block_quadratic([block_size] * nb, block_scales, seed=seed, device=device)
d = A.shape[0]
partitions = th.blockwise_test_partitions(block_size, nb)
assert torch.equal(partitions[f"aligned, size {block_size}"], aligned.cpu())
b2 = beta2 if beta2 > 0 else 1 - math.log(T) / T
x0 = torch.randn(d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(device)
lrs = np.geomspace(lr_min, lr_max, n_lr)
res = th.blockwise_partition_sweep(A, partitions, x0=x0, noise=noise, T=T, lrs=lrs, beta2=b2,
                                   n_seeds=n_seeds, seed=seed, exact_max_blocks=exact_max_blocks,
                                   device=device)
_ = save_table(res, results_dir / "blockwise.csv", params=params)
wall = time.perf_counter() - t_start
print(f"d = {d}, beta2 = {b2:.4f}; computed in {wall:.1f} s")

# %% tags=["hide-input"]
res = pd.read_csv(results_dir / "blockwise.csv")
rho, pval = spearmanr(res.bound, res.final_loss)
fig, ax = plt.subplots(figsize=(7, 4.8))
for j, r in res.iterrows():
    ax.loglog(r.bound, r.final_loss, "o", ms=8, label=r.partition, color=f"C{j}")
ax.set_xlabel(r"smoothness bound $\sum_{b,c}\sqrt{d_bd_c}\|A_{(b),(c)}\|_2\ \geq H(L,\Phi)$")
ax.set_ylabel("final loss (best learning rate)")
ax.set_title(f"Blockwise Adam ($\\beta_1=0$), T={T}: Spearman $\\rho$ = {rho:.2f}")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %%
table = res.sort_values("bound").assign(
    rank_by_bound=lambda r: r.bound.rank().astype(int),
    rank_by_loss=lambda r: r.final_loss.rank().astype(int),
    paper_claim="smaller H(L,Phi) -> faster", scale=scale)
display(table.round(6))

# %% [markdown]
# ## Paper vs ours

# %%
swaps = table[table.rank_by_bound != table.rank_by_loss].partition.tolist()
ex = table.dropna(subset=["H_exact"])
rho_ex = spearmanr(ex.H_exact, ex.final_loss)[0] if len(ex) >= 3 else float("nan")
same_order = list(ex.sort_values("H_exact").partition) == list(ex.sort_values("bound").partition)
coord = table[table.partition.str.startswith("coordinates")].iloc[0]
by_loss = table.sort_values("final_loss").partition.tolist()
loss_of = dict(zip(table.partition, table.final_loss))
extremes = (by_loss[0].startswith("aligned") and by_loss[-1].startswith("one block")
            and loss_of[f"misaligned, size {block_size}"] > loss_of[f"aligned, size {block_size}"])
coord_note = ("Coordinates (Adam) ranks worse by loss than by bound: we attribute this to coordinate-wise "
              "RMSProp ($\\beta_1=0$) oscillating inside the dense blocks, a constant-factor effect the bound's "
              "ordering does not see. " if coord.rank_by_loss > coord.rank_by_bound else "")
display(Markdown(
    f"* **Paper (Theorem 3.11, reconstructed):** the rate's leading constant is $H(L,\\Phi)$, so partitions with "
    f"smaller Φ-smoothness should optimize faster; in particular coordinates (Adam) beat one block (AdaSGD) when "
    f"$\\|A\\|_{{1,1}} < d\\|A\\|_2$.\n"
    f"* **Ours ({scale} scale, d = {d}, {nb} blocks of {block_size}, T = {T}, noise $\\sigma$ = {noise}, "
    f"{n_seeds} seeds, {n_lr} learning rates):** Spearman rank correlation between the Lemma 3.13 bound and the tuned "
    f"final loss **{rho:.2f}** (p = {pval:.2g}, {len(res)} partitions). "
    + ("The orderings match exactly. " if not swaps else
       f"The orderings differ only for: {', '.join(swaps)}. ")
    + f"For the {len(ex)} partitions with $B\\le{exact_max_blocks}$ the exact $H(L,\\Phi)$ (`theory.phi_smoothness`) "
    f"{'orders them as the bound does' if same_order else 'orders them differently from the bound'}; its rank correlation "
    f"with the loss is {rho_ex:.2f}. " + coord_note + "\n"
    f"* **Agreement:** {'yes' if rho > 0.8 else 'partial' if rho > 0 else 'no'} (rank correlation {rho:.2f}); "
    f"aligned blocks best, one block worst, misaligned worse than aligned blocks of the same size: "
    f"{'yes' if extremes else 'no'}. "
    f"Best lr at the edge of the grid: {bool(res.edge_of_grid.any())}. Compute time {wall:.1f} s."))

# %%
paper = yaml.safe_load(Path("params/thm311_blockwise.yaml").read_text())["paper"]
factor = paper["T"] / T * max(1.0, paper["n_seeds"] * paper["n_lr"] / (n_seeds * n_lr) / 4)
print(f"time estimate for the 'paper' parameter set: about {wall * factor / 60:.1f} min on this machine")
