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
# # Table 4: smoothness of the ResNet18 loss at the final checkpoints
#
# Table 4 of {cite}`xie2025adam` repeats Table 2's measurement for ResNet18 {cite}`he2016deep`
# on CIFAR-10 {cite}`krizhevsky2009learning`: at the final iterate of each tuned optimizer, the
# smoothness constant that governs its convergence bound. For Adam that is the $(1,1)$-norm of the
# Hessian ($\ell_\infty$ smoothness, Theorem 3.5 / Corollary 3.7), for rotated Adam the
# $(1,1)$-norm of the rotated Hessian $\mathcal R^\top H\mathcal R$, and for AdaSGD
# {cite}`wang2020adasgd` the spectral norm times the dimension (Theorem 3.11 with one block).
#
# ```{prf:definition} The quantities of Table 4 (layout RECONSTRUCTED)
# :label: def-resnet-table4
#
# Let $H=\nabla^2 L(x)$ be the Hessian of the training loss on a fixed batch set at a final
# checkpoint $x\in\mathbb R^d$. The table reports $\|H\|_{1,1}/d = \frac1d\sum_{i,j}|H_{ij}|$
# (Adam), $\|\mathcal R^\top H\mathcal R\|_{1,1}/d$ (rotated Adam, at its own iterate) and
# $\|H\|_2$ (AdaSGD; its bound is $d\|H\|_2$, so $\|H\|_{1,1}/d$ and $\|H\|_2$ are on one scale).
# $\|H\|_{1,1}$ is estimated with Cauchy probes (Algorithm 4, {cite}`indyk2006stable`) and
# $\|H\|_2$ by Lanczos {cite}`lanczos1950iteration`, both with Hessian-vector products
# {cite}`pearlmutter1994fast`.
# ```
#
# RECONSTRUCTED (PAPER_MATH.md §5, §7): the table's layout (as Table 2), the number of Cauchy probes
# for ResNet18 (lost; we use the 50 of the GPT-2 code at paper scale) and the size of the fixed
# batch set (not recovered). The numbers of Table 4 were not recovered. The paper's takeaway: when
# $\|H\|_{1,1} < d\|H\|_2$, Adam optimizes faster than AdaSGD, and the smaller the norm, the faster
# the optimizer. Because every BatchNorm uses batch statistics (`track_running_stats=False`), the
# loss on a fixed batch is a fixed function of the parameters, so its Hessian is well defined.
#
# This page trains nothing: it loads the final checkpoints of the tuned runs of the Table 3
# notebook at one batch size. At `ci` scale these are the stand-in runs (a narrow ResNet on
# scikit-learn's digits upscaled to 16×16, **not CIFAR-10**).

# %% tags=["parameters"]
scale = "ci"
results_dir = "results/resnet_table4/ci"
device = "cpu"
seed = 0
table4_batch_size = 32
table3_dir = None               # default: results/resnet_table3/<scale>
n_probes = 20                   # Cauchy probes (paper: NOT RECOVERED for ResNet18; 50 for GPT-2)
n_batches = 4                   # fixed training batches of the run's batch size
lanczos_iters = 20              # authors' code: 50
paper_hvps_per_s = 30.0         # ASSUMED HVPs/s for ResNet18 on 2048 images on one H100-class GPU
torch_threads = 1               # torch CPU threads here (None: torch's default); 1 avoids oversubscription

# %% tags=["hide-input"]
import time
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import torch
from IPython.display import Markdown, display

from adamlinf import experiments as ex
from adamlinf.results import save_table
from adamlinf.run import load_parameters

t_start = time.perf_counter()
if torch_threads:
    torch.set_num_threads(int(torch_threads))
out = Path(results_dir)
src = Path(table3_dir) if table3_dir else out.parents[1] / "resnet_table3" / scale
params = dict(scale=scale, device=device, seed=seed, table4_batch_size=table4_batch_size,
              table3_dir=str(src), n_probes=n_probes, n_batches=n_batches, lanczos_iters=lanczos_iters)
if not (src / "table3.csv").exists():
    raise FileNotFoundError(f"{src / 'table3.csv'} not found: execute the Table 3 notebook first "
                            f"(python -m adamlinf.run --scale {scale} --only resnet_table3)")
best = pd.read_csv(src / "table3.csv")

# %% [markdown]
# ## Cost at the paper's scale
#
# Per checkpoint: `n_probes` Hessian-vector products for the $(1,1)$-norm and `lanczos_iters` for
# the spectral norm, each about twice a forward-backward pass over the fixed batch set. The
# rate is an assumption (no GPU here); the probes dominate.

# %%
paper = load_parameters("resnet_table4", "paper")  # the `paper` parameter set of this notebook
hvps = 3 * (paper["n_probes"] + paper["lanczos_iters"])
print(f"paper scale: 3 checkpoints x ({paper['n_probes']} probes + {paper['lanczos_iters']} Lanczos steps) = "
      f"{hvps} HVPs on {paper['n_batches']} x {paper['table4_batch_size']} images, at an ASSUMED "
      f"{paper['paper_hvps_per_s']:g} HVP/s: about {hvps / paper['paper_hvps_per_s'] / 60:.1f} GPU-minutes "
      "(plus loading the checkpoints)")

# %% [markdown]
# ## Hessian norms at the final checkpoints

# %%
chosen = best[(best.batch_size == table4_batch_size) & best.optimizer.isin(["adam", "adasgd", "rotated_adam"])]
if len(chosen) != 3:
    raise ValueError(f"Table 3 has no tuned Adam/AdaSGD/rotated Adam runs at batch size {table4_batch_size}")
run_dirs = {row.optimizer: row.run_dir for row in chosen.itertuples()}
t0 = time.perf_counter()
tidy = ex.hessian_table(run_dirs, n_probes=n_probes, seed=seed, n_batches=n_batches,
                        lanczos_iters=lanczos_iters, device=device)
hessian_seconds = time.perf_counter() - t0
tidy = tidy.merge(chosen[["optimizer", "lr", "final_train_eval_loss"]], on="optimizer")
save_table(tidy, out / "hessian.csv", params=params, wall_time_s=hessian_seconds)
assert tidy.batch_digest.nunique() == 1  # the same fixed batch set for every checkpoint
print(f"Hessian measurements: {hessian_seconds:.1f} s; d = {int(tidy.d.iloc[0]):,}; fixed batch set: "
      f"{n_batches} x {table4_batch_size} augmented training images")

# %% tags=["hide-input"]
# run names in the tidy table are the optimizer names (the keys of run_dirs)
table = ex.table_layout(tidy)
table = table.merge(chosen.assign(run=chosen.optimizer)[["run", "lr", "final_train_eval_loss"]], on="run",
                    how="left")
table["paper (Table 4)"] = "numbers not recovered"
table["scale"] = scale
save_table(table, out / "table4.csv", params=params)
display(table.drop(columns=["run"]))

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(6.5, 4))
main = table[table["Smoothness metric"] != "(for comparison)"]
for k, (_, row) in enumerate(main.iterrows()):
    ax.scatter(row["Estimated value"], row["final_train_eval_loss"], s=80, color=f"C{k}",
               label=f"{row['Optimizer']}: {row['Quantity']}")
ax.set(xlabel="smoothness constant of the optimizer (per-coordinate scale)", ylabel="final training loss",
       title=f"Table 4: norm vs final training loss ({scale}, batch {table4_batch_size})")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## Paper vs ours
#
# The paper's takeaways: the smaller the smoothness constant, the faster the optimizer (Adam's
# $\|H\|_{1,1}/d$ below rotated Adam's $\|\mathcal R^\top H\mathcal R\|_{1,1}/d$, and Adam faster);
# and when $\|H\|_{1,1} < d\|H\|_2$, Adam beats AdaSGD. The checks are computed below.

# %%
finals = chosen.assign(run=chosen.optimizer)[["run", "final_train_eval_loss"]]
order = ex.ordering_check(table, finals, loss_col="final_train_eval_loss")
display(order)


def value(opt, quantity):
    return float(tidy[(tidy.optimizer == opt) & (tidy.quantity == quantity)].value.iloc[0])


loss = dict(zip(chosen.optimizer, chosen.final_train_eval_loss))
claims = pd.DataFrame([
    {"claim": "‖H‖₁,₁/d (Adam) < ‖RᵀHR‖₁,₁/d (rotated Adam)",
     "ours": f"{value('adam', 'l11_per_dim'):.4g} vs {value('rotated_adam', 'l11_per_dim'):.4g}",
     "holds": value("adam", "l11_per_dim") < value("rotated_adam", "l11_per_dim")},
    {"claim": "Adam's final training loss < rotated Adam's",
     "ours": f"{loss['adam']:.4g} vs {loss['rotated_adam']:.4g}", "holds": loss["adam"] < loss["rotated_adam"]},
    {"claim": "‖H‖₁,₁/d at Adam's checkpoint < ‖H‖₂ at AdaSGD's (Table layout)",
     "ours": f"{value('adam', 'l11_per_dim'):.4g} vs {value('adasgd', 'spectral_norm'):.4g}",
     "holds": value("adam", "l11_per_dim") < value("adasgd", "spectral_norm")},
    {"claim": "‖H‖₁,₁/d < ‖H‖₂ at the same (Adam's) checkpoint",
     "ours": f"{value('adam', 'l11_per_dim'):.4g} vs {value('adam', 'spectral_norm'):.4g}",
     "holds": value("adam", "l11_per_dim") < value("adam", "spectral_norm")},
    {"claim": "Adam's final training loss < AdaSGD's",
     "ours": f"{loss['adam']:.4g} vs {loss['adasgd']:.4g}", "holds": loss["adam"] < loss["adasgd"]},
    {"claim": "ranking by norm = ranking by final training loss", "ours": str(order.attrs["agrees"]),
     "holds": bool(order.attrs["agrees"])},
])
claims["scale"] = f"{scale}, batch {table4_batch_size}"
save_table(claims, out / "claims.csv", params=params)
display(claims)
display(Markdown(
    f"At `{scale}` scale, {int(claims.holds.sum())} of {len(claims)} checks hold. "
    + ("The norms order the optimizers as the paper says." if order.attrs["agrees"] else
       "The norms do not order the optimizers exactly as their final losses; we report this as measured "
       "and did not tune the setup to make it agree.")
    + (f" The estimates use {n_probes} Cauchy probes and {lanczos_iters} Lanczos steps on "
       f"{n_batches * table4_batch_size} images of a small stand-in (digits, narrow ResNet), so they check "
       "the pipeline and only weakly the claim." if scale == "ci" else "")))
print(f"notebook wall time: {time.perf_counter() - t_start:.1f} s")
