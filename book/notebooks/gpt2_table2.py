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
# # Table 2: Hessian norms at the end of GPT-2 training
#
# The theory of {cite}`xie2025adam` bounds Adam's convergence by the smoothness of the loss with
# respect to $\ell_\infty$, which for a Hessian is its $(1,1)$-norm, and AdaSGD's (like SGD's) by
# the smoothness with respect to $\ell_2$, the spectral norm. Table 2 measures both at the final
# iterates of the Figure 1 runs.
#
# ```{prf:definition} The smoothness metrics of Table 2 (RECONSTRUCTED layout)
# :label: def-table2-metrics
#
# At the final iterate $x$ of a run, with $H=\nabla^2 L(x)$ the Hessian of the training loss on a fixed
# evaluation set and $d$ the number of parameters:
#
# | Optimizer | smoothness metric | upper bound | estimated value |
# |---|---|---|---|
# | AdaSGD | $H(L,\Phi_{\rm AdaSGD})$ | $d\,\lVert H\rVert_2$ | $\lVert H\rVert_2$ |
# | Adam | $H(L,\Phi_{\rm Adam})$ | $\lVert H\rVert_{1,1}$ | $\lVert H\rVert_{1,1}/d$ |
# | Rotated Adam | $H(L\circ\mathcal R,\Phi_{\rm Adam})$ | $\lVert\mathcal R^\top H\mathcal R\rVert_{1,1}$ | $\lVert\mathcal R^\top H\mathcal R\rVert_{1,1}/d$ |
#
# For rotated Adam the Hessian is that of the loss it optimised, $L\circ\mathcal R$, at its own iterate
# $w$ (the model holds $x=\mathcal R w$). $\lVert\cdot\rVert_{1,1}$ is estimated with $n$ Cauchy
# probes (Algorithm 4, {cite}`indyk2006stable`) on Hessian-vector products {cite}`pearlmutter1994fast`,
# $\lVert H\rVert_2$ by Lanczos {cite}`lanczos1950iteration`.
# ```
#
# The layout is RECONSTRUCTED from the paper text; the division by $d$ (so that the Adam and AdaSGD
# rows are on one scale) follows the authors' code; **the paper's numbers are NOT RECOVERED**. The
# takeaway (paper text): *the smaller the norm, the faster the optimizer*. The authors evaluated on
# 7,680 fixed training sequences with 50 probes and 50 Lanczos iterations (PAPER_MATH.md §5).

# %% tags=["parameters"]
scale = "ci"
results_dir = "results/gpt2_table2/ci"
device = "cpu"
seed = 0
n_probes = 16
lanczos_iters = 20
n_batches = 4
concat_batches = True
variant = "iqr"
mfu = 0.4
peak_flops = 989.0e12
estimate_gpus = 8
hvp_cost = 2.0

# %% tags=["hide-input"]
import time
from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display

from adamlinf import experiments as ex
from adamlinf.results import save_table, upstream_dir
from adamlinf.run import load_parameters

params = dict(scale=scale, device=device, seed=seed, n_probes=n_probes, lanczos_iters=lanczos_iters,
              n_batches=n_batches, concat_batches=concat_batches, variant=variant)
out = Path(results_dir)
figure1 = upstream_dir(out, "gpt2_figure1", required="tuned_runs.csv")
tuned = pd.read_csv(figure1 / "tuned_runs.csv")

# %% [markdown]
# ## Expected cost of the `paper` parameters
#
# Each probe and each Lanczos iteration is one Hessian-vector product over the whole evaluation set;
# we count one HVP as `hvp_cost` training forward+backward passes (forward-over-reverse), at the same
# assumed utilisation as the training estimate.

# %% tags=["hide-input"]
paper = load_parameters("gpt2_table2", "paper")
paper_fig1 = load_parameters("gpt2_figure1", "paper")
paper_model = ex.lm_spec(dataset=paper_fig1["dataset"], vocab_size=paper_fig1["vocab_size"],
                         n_layer=paper_fig1["n_layer"], n_head=paper_fig1["n_head"], n_embd=paper_fig1["n_embd"],
                         block_size=paper_fig1["block_size"], batch_size=paper_fig1["batch_size"],
                         lr=paper_fig1["lr"])["model"]
tokens = paper["n_batches"] * paper_fig1["batch_size"] * paper_fig1["block_size"]
n_hvp = paper["n_probes"] + paper["lanczos_iters"]
cost = ex.paper_time_estimate(tokens_per_step=tokens, steps=n_hvp,
                              flops_per_token=paper["hvp_cost"] * ex.gpt_flops_per_token(paper_model),
                              n_runs=3, n_gpus=paper["estimate_gpus"], mfu=paper["mfu"],
                              peak_flops=paper["peak_flops"],
                              label=f"Table 2 at paper scale (3 checkpoints x {n_hvp} HVPs of {tokens:,} tokens)")

# %% [markdown]
# ## The measurement
#
# The final checkpoints of Figure 1's Adam, AdaSGD and rotated Adam runs, one fixed set of
# `n_batches` training batches for all three (its digest is in the table), the same probe seed.

# %%
rows = tuned.set_index("optimizer")
which = [o for o in ("adam", "adasgd", "rotated_adam") if o in rows.index]
t0 = time.perf_counter()
tidy = ex.hessian_table({rows.loc[o, "run"]: rows.loc[o, "run_dir"] for o in which}, n_probes=n_probes, seed=seed,
                        n_batches=n_batches, concat=concat_batches, lanczos_iters=lanczos_iters,
                        variant=variant, device=device)
wall = time.perf_counter() - t0
save_table(tidy, out / "hessian_norms.csv", params=params, wall_time_s=wall)
print(f"Hessian measurements: {wall:.0f} s")
display(tidy[["run", "optimizer", "quantity", "hessian", "value", "d", "loss", "batch_digest", "seconds"]])

# %% [markdown]
# ## Table 2 and the ordering check

# %%
tidy = pd.read_csv(out / "hessian_norms.csv")
table = ex.table_layout(tidy)
table["paper's value"] = "NOT RECOVERED"
table["scale"] = scale
save_table(table, out / "table2.csv", params=params)
display(table.drop(columns=["run"]))

check = ex.ordering_check(table, tuned)
check["final loss rank (paper)"] = check.Optimizer.map({"Adam": 1, "AdaSGD": 2, "Rotated Adam": 3})
check["scale"] = scale
pairs = check.attrs["pairs"].assign(**{"paper's claim": "smaller norm, faster optimizer", "scale": scale})
save_table(check, out / "ordering.csv", params=params, agrees=check.attrs["agrees"])
save_table(pairs, out / "ordering_pairs.csv", params=params)
display(check.rename(columns={"final_train_loss": "final train loss (Figure 1)"}))
display(pairs)

# %% [markdown]
# The paper compares each optimizer's metric at its *own* final iterate. At one and the same point the
# theory's comparison of Adam with AdaSGD is $\lVert H\rVert_{1,1}/d$ against $\lVert H\rVert_2$ (the
# ratio below 1 means the $\ell_\infty$ bound is the better one there):

# %%
same = tidy.pivot_table(index=["run", "optimizer"], columns="quantity", values="value").reset_index()
same["(1,1)-norm of"] = same.run.map(tidy[tidy.quantity == "l11_per_dim"].set_index("run").hessian)
same["l11_per_dim / spectral_norm"] = same.l11_per_dim / same.spectral_norm
same["paper's value"] = "NOT RECOVERED"
same["scale"] = scale
save_table(same, out / "same_point.csv", params=params)
display(same)

# %% [markdown]
# ## Paper vs ours

# %% tags=["hide-input"]
main = table[table["Smoothness metric"] != "(for comparison)"].set_index("Optimizer")["Estimated value"]
adam_v, rot_v, ada2 = (main.get(k, float("nan")) for k in ("Adam", "Rotated Adam", "AdaSGD"))
order_norm = " < ".join(check.sort_values("rank by norm").Optimizer)
order_loss = " < ".join(check.sort_values("rank by final loss").Optimizer)
display(Markdown(
    f"**Paper:** the smaller the norm, the faster the optimizer: ‖H‖₁,₁/d (Adam) < ‖H‖₂ (AdaSGD) and "
    f"‖H‖₁,₁/d (Adam) < ‖RᵀHR‖₁,₁/d (rotated Adam), with Adam fastest (values NOT RECOVERED).\n\n"
    f"**Ours, scale `{scale}`:** ‖H‖₁,₁/d = {adam_v:.4g} (Adam), ‖RᵀHR‖₁,₁/d = {rot_v:.4g} (rotated Adam), "
    f"‖H‖₂ = {ada2:.4g} (AdaSGD); {n_probes} Cauchy probes, {lanczos_iters} Lanczos iterations, "
    f"{n_batches} fixed batches. Ordered by norm: {order_norm}; by final training loss: {order_loss}. "
    f"The two orders {'agree' if check.attrs['agrees'] else 'do NOT agree'} at this scale "
    f"({int(pairs['smaller norm is faster'].sum())} of {len(pairs)} pairs follow 'smaller norm, faster'). "
    "Each run's Hessian is taken at its own final iterate, as in the paper, so the norms also reflect "
    "where each optimizer ended, not only the geometry of one loss; with few probes the (1,1)-norm "
    "estimate carries the error of Theorem 4.1."))
