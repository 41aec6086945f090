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
# # Measure your own model
#
# ```{glue:md} result_box
# :format: myst
# ```
#
# The paper's central quantity {cite}`xie2025adam` predicts when Adam beats its rotation-invariant
# twin AdaSGD: the smoothness of the loss with respect to $\ell_\infty$, which for a Hessian is its
# $(1,1)$-norm $\|H\|_{1,1}=\sum_{ij}|H_{ij}|$, against the smoothness with respect to $\ell_2$ in the
# same units, $d\,\|H\|_2$. The book measures them on the paper's two models (Tables 2 and 4). This
# chapter turns the measurement into a tool for any PyTorch model, `adamlinf.diagnose`, and runs it on
# six models: a least-squares problem whose Hessian is known exactly, the `ci` GPT at its
# initialisation and after training with Adam and with rotated Adam, the ResNet stand-in, an MLP and a
# torchvision architecture.
#
# ```{prf:definition} The advantage of coordinate-wise adaptivity
# :label: def-advantage
# :nonumber:
#
# At parameters $x$ with $H=\nabla^2L(x)$ and $d$ parameters,
#
# $$\text{advantage}=\frac{d\,\|H\|_2}{\|H\|_{1,1}}=\frac{\|H\|_2}{\|H\|_{1,1}/d}\in\Big[\tfrac1{\sqrt d},\,d\Big].$$
#
# Above 1, the paper's convergence bound for Adam (Theorem 3.5, through $H(L,\Phi_{\rm Adam})\le\|H\|_{1,1}$)
# is smaller than AdaSGD's (through $d\|H\|_2$): the loss has the geometry coordinate-wise
# adaptivity exploits. After a random rotation $\mathcal R$ of the parameter space (the
# permute-and-rotate map of Appendix D.1) $\|H\|_2$ is unchanged and only
# $\|\mathcal R^\top H\mathcal R\|_{1,1}$ moves, so the *rotated advantage* shows how much of the edge
# comes from the coordinates the model is written in.
# ```
#
# Using it takes one call (the [API page](../api.md) documents every argument):
#
# ```python
# import adamlinf
#
# diag = adamlinf.diagnose(model, loss_fn, batches)   # loss_fn(model, batch) -> scalar
# diag.advantage            # Estimate(value, lo, hi): d‖H‖₂ / ‖H‖₁,₁ with its 90% band
# diag.rotated_advantage    # the same after a random rotation of the parameters
# diag.blocks               # one row per tensor: ‖H_b‖₁,₁/d_b (band), ‖H_b‖₂ of the diagonal block
# diag.plot(); diag.to_json("diagnosis.json"); diag.to_frame()
# adamlinf.diagnose(model, loss_fn, batches, race_steps=200, lr=[1e-3, 3e-3, 1e-2])  # + a race
# ```
#
# or `python -m adamlinf.diagnose --model torchvision:resnet18 --out DIR` from a shell (presets
# `gpt-ci`, `resnet-ci`, `mlp-digits`, `torchvision:NAME`, and `module:factory` for your own
# `factory() -> (model, loss_fn, batches)`).

# %% tags=["parameters", "hide-input"]
scale = "ci"
results_dir = "results/diagnose_models/ci"
device = "cpu"
seed = 0
torch_threads = 1  # torch CPU threads (null: torch's default; 1 is fastest for these small products)
n_probes = 50  # Cauchy probes of each whole-model (1,1)-norm (the paper's count)
block_probes = 16  # Cauchy probes per diagonal block (blocks this small or smaller are exact)
block_lanczos_iters = 8  # Lanczos steps per block spectral norm
lstsq = {"n": 200, "p": 40}  # least squares: rows and columns of X
gpt = {"n_layer": 4, "n_head": 4, "n_embd": 64, "block_size": 64, "n_seq": 4}  # gpt2_figure1's ci GPT
resnet = {"width": 8, "image_size": 16, "batch": 16}  # resnet_table3's ci stand-in
mlp = {"hidden": 64, "n": 256}
torchvision_arch = "squeezenet1_1"  # random weights, never downloaded
torchvision_opts = {"image_size": 32, "n": 8}
block_table_torchvision = False  # its blocks (52 tensors) cost more than the ci budget
race_steps = 60  # steps of each race run, on the diagnosed batch cycled
race_lrs = [3.162e-4, 1.0e-3, 3.162e-3, 1.0e-2, 3.162e-2]  # every optimizer's grid (half a decade apart)

# %% tags=["hide-input"]
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from adamlinf import report
from adamlinf.diagnose import diagnose, preset, race
from adamlinf.results import save_table
from adamlinf.run import notebook_params
from adamlinf.studies import diagnostic as study
from adamlinf.studies import glance
from adamlinf.studies.verdicts import save_verdicts

params = notebook_params("diagnose_models", globals())
out = Path(results_dir)
if torch_threads:
    torch.set_num_threads(int(torch_threads))
report.style()
t_start, cpu_start = time.perf_counter(), time.process_time()
common = dict(
    n_probes=n_probes, block_probes=block_probes, block_lanczos_iters=block_lanczos_iters, seed=seed
)
diags = {}


def on_device(model, batches):
    """The model and its batches on the page's device."""
    return model.to(device), [tuple(t.to(device) for t in b) for b in batches]


def with_race(model, loss_fn, batches, **kw):
    """diagnose(...) and a race from the same weights (the race keeps its trained models)."""
    dg = diagnose(model, loss_fn, batches, progress=False, **common, **kw)
    dg.race, trained = race(
        model, loss_fn, batches, race_steps, race_lrs, seed=seed, keep_models=True, progress=False
    )
    return dg, trained


# %% [markdown]
# ## A Hessian known exactly: least squares
#
# $L(w)=\frac1n\|Xw-y\|^2$ has $H=2X^\top X/n$ at every $w$. The columns of $X$ have scales spread over
# a decade, so $H$ is close to diagonal with unequal entries: the geometry Adam exploits. The
# diagnostic's estimates meet the closed form (`adamlinf.studies.diagnostic.least_squares`).

# %%
model, loss_fn, batches, H = study.least_squares(lstsq["n"], lstsq["p"], seed=seed)
model, batches = on_device(model, batches)
diags["least squares", "any w"], _ = with_race(model, loss_fn, batches)
closed = study.closed_form_check(diags["least squares", "any w"], H)
save_table(closed, out / "closed_form.csv", params=params)
_ = report.table(
    closed,
    caption=f"Least squares (d = {lstsq['p']}, {scale} scale): the diagnostic against the closed form "
    f"H = 2XᵀX/n; {n_probes} Cauchy probes, 90% bands.",
)

# %% [markdown]
# ## The `ci` GPT: at initialisation, after Adam, after rotated Adam
#
# The GPT of the Figure 1 page at `ci` scale (4 layers, width 64, byte vocabulary), on a fixed batch
# of Python's documentation. The race trains three copies from these weights on the same batch for
# `race_steps` steps, each optimizer over the same learning-rate grid at its own best rate; we then
# diagnose Adam's and rotated Adam's trained weights (the blocks of Adam's below). For rotated Adam the rotation is the one it
# trained with, so its "rotated" columns are the geometry it optimised in: the Hessian of $L\circ\mathcal R$
# at its own iterate, as in Table 2.

# %%
model, loss_fn, batches = preset("gpt-ci", seed=seed, **gpt)
model, batches = on_device(model, batches)
diags["GPT", "initialisation"], trained = with_race(model, loss_fn, batches, blocks=False)
adam_model, _ = trained["adam"]
diags["GPT", "after Adam"] = diagnose(adam_model, loss_fn, batches, progress=False, **common)
rot_model, rot_param = trained["rotated_adam"]
diags["GPT", "after rotated Adam"] = diagnose(
    rot_model, loss_fn, batches, rotation=rot_param, blocks=False, progress=False, **common
)
print(
    f"d = {diags['GPT', 'initialisation'].d:,}; loss {diags['GPT', 'initialisation'].loss:.3f} at initialisation, "
    f"{diags['GPT', 'after Adam'].loss:.3f} after Adam, {diags['GPT', 'after rotated Adam'].loss:.3f} after rotated Adam"
)

# %% [markdown]
# ## The ResNet stand-in, an MLP and a torchvision architecture
#
# The narrow ResNet of the Table 3 page on the digits stand-in (BatchNorm on batch statistics: a
# fixed function of a fixed batch), a 64-64-10 tanh MLP on the digits, and a torchvision architecture
# built with random weights (never downloaded) in eval mode on digits upscaled to three channels.
# Activations without a second derivative in PyTorch (e.g. `hardsigmoid` of MobileNetV3) cannot be
# diagnosed: the Hessian-vector product fails and says so.

# %%
for name, label, opts, kw in [
    ("resnet-ci", "ResNet stand-in", resnet, {}),
    ("mlp-digits", "MLP", mlp, {}),
    (f"torchvision:{torchvision_arch}", f"torchvision {torchvision_arch}", torchvision_opts,
     {"blocks": block_table_torchvision}),
]:  # fmt: skip
    model, loss_fn, batches = preset(name, seed=seed, **opts)
    model, batches = on_device(model, batches)
    diags[label, "initialisation"], _ = with_race(model, loss_fn, batches, **kw)

# %% [markdown]
# ## The blocks: where the geometry lives
#
# One row per parameter tensor: $\|H_b\|_{1,1}/d_b$ and $\|H_b\|_2$ of its *diagonal* block $H_b$, and
# the block's own advantage $d_b\|H_b\|_2/\|H_b\|_{1,1}$, the edge of Adam over blockwise Adam with
# that tensor as one block (Theorem 3.11). Tensors with at most `block_probes` entries are exact.

# %%
summary = study.summary(diags)
block_table = study.stacked(diags, "blocks")
race_table = study.stacked(diags, "race")
save_table(summary, out / "summary.csv", params=params)
save_table(block_table, out / "blocks.csv", params=params)
save_table(race_table, out / "race.csv", params=params)
for key in [("GPT", "after Adam"), ("ResNet stand-in", "initialisation")]:
    b = block_table[(block_table.model == key[0]) & (block_table.state == key[1])]
    _ = report.table(
        b[["block", "d", "l11_per_dim", "lo", "hi", "spectral_norm", "advantage", "exact"]].rename(
            columns={
                "l11_per_dim": "‖H_b‖₁,₁/d_b",
                "lo": "band lo",
                "hi": "band hi",
                "spectral_norm": "‖H_b‖₂",
                "advantage": "block advantage",
            }  # fmt: skip
        ),
        caption=f"Diagonal blocks of the {key[0]} ({key[1]}, {scale} scale): {block_probes} Cauchy probes and "
        f"{block_lanczos_iters} Lanczos steps per block (exact when d_b ≤ {block_probes}).",
    )

# %% tags=["hide-input"]
fig = diags["GPT", "after Adam"].plot()
_ = report.figure(
    fig,
    f"Diagonal blocks of the ci GPT after {race_steps} Adam steps ({scale} scale): ‖H_b‖₁,₁/d_b with its 90% band "
    "(blue) beside ‖H_b‖₂ (orange), log scale. Where the blue bar is shorter, that tensor has the geometry "
    "coordinate-wise adaptivity exploits.",
    alt="Bar chart of per-tensor Hessian norms of the GPT after Adam.",
)

# %% [markdown]
# (diag-race)=
# ## The advantage of every model, and the race
#
# The prediction meets a measurement: each race starts from the diagnosed weights, trains on the
# diagnosed batch, and reports the final loss at each optimizer's best learning rate of the grid
# ("edge" when that rate is at an end of the grid, so the optimum may lie outside it). One seed, one
# batch: a race is an illustration, not a verdict.

# %%
overview = study.overview(summary, race_table)
save_table(overview, out / "overview.csv", params=params)
_ = report.table(
    overview,
    caption=f"The advantage d‖H‖₂/‖H‖₁,₁ with its 90% band ({n_probes} probes), the same after a random "
    f"rotation, and the race ({race_steps} steps, lr grid {race_lrs}, best final loss and its lr; {scale} scale). "
    "Above 1 the paper's bounds favour Adam over AdaSGD.",
)

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(7.0, 0.42 * len(summary) + 1.6))
labels = [f"{m} ({s})" for m, s in zip(summary.model, summary.state, strict=True)]
y = np.arange(len(summary))
for col, dy, color, name in [("advantage", -0.12, "C0", "model's coordinates"),
                             ("rotated_advantage", 0.12, "C3", "after a random rotation")]:  # fmt: skip
    v = summary[col].astype(float)
    err = np.vstack([v - summary[f"{col}_lo"].astype(float), summary[f"{col}_hi"].astype(float) - v])
    ax.errorbar(v, y + dy, xerr=err, fmt="o", color=color, capsize=3, label=name)
ax.axvline(1.0, color="grey", lw=1, ls="--")
ax.set(xscale="log", yticks=y, yticklabels=labels, xlabel="advantage d‖H‖₂ / ‖H‖₁,₁")
ax.invert_yaxis()
ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
fig.tight_layout()
_ = report.figure(
    fig,
    f"The advantage of coordinate-wise adaptivity on every model of the page ({scale} scale), with 90% bands: "
    "in the model's coordinates (blue) and after a random permute-and-rotate map (red). Right of the dashed "
    "line the paper's bounds favour Adam over AdaSGD. For rotated Adam the rotation is its training rotation.",
    alt="Dot plot of the advantage per model, original and rotated, on a log axis.",
)

# %% [markdown]
# ## How to read `advantage`, and what it does not say
#
# * **Above 1** the loss is smoother in $\ell_\infty$ than in $\ell_2$ at this point: the bound of
#   Theorem 3.5 for Adam is below AdaSGD's by that factor. **Below 1** the $\ell_2$ geometry is the
#   better one. The band is that of the Cauchy estimate of $\|H\|_{1,1}$ (the spectral norm is
#   converged to $10^{-6}$); a band that straddles 1 decides nothing.
# * **The rotated advantage** is a control: the same Hessian in random coordinates. The gap between the
#   two is the part of the edge that comes from the coordinates, the only part Adam can use (Adam is
#   equivariant to permutations only, AdaSGD to every rotation: Theorem 2.2).
# * **The blocks** say where: a tensor whose block advantage is large is one where per-coordinate
#   second moments help; one near 1 loses little under blockwise Adam with that tensor as one block.
#
# What it does not say. The quantity is a property of the Hessian **at one point on one batch**, and
# it compares **upper bounds**: the paper's theorems bound the loss after $T$ steps by a constant times
# $\|H\|_{1,1}$ or $d\|H\|_2$ along the *whole trajectory*, with the noise of the gradients beside it. A
# large advantage at initialisation does not promise a lower loss after training: the Hessian changes
# as the model trains, the learning rates are tuned separately, and the bounds may be loose. The book's
# own checks of the paper's claims show both sides: on the rotated quadratics of
# [Table 1](quadratic_table1.ipynb), "Adam beats AdaSGD exactly when $\|H\|_{1,1}/d<\|H\|_2$" holds for
# some spectra and fails for others with tuned learning rates; on the GPT of
# [Figure 1](gpt2_figure1.ipynb) and [Table 2](gpt2_table2.ipynb) Adam beats AdaSGD and rotated Adam,
# and the orderings of the norms hold outside their bands; on the ResNet stand-in
# ([Table 3](resnet_table3.ipynb), [Table 4](resnet_table4.ipynb)) the norm orderings hold and most loss
# claims are inconclusive at this size. [Results at a glance](glance.ipynb) lists every verdict.

# %% [markdown]
# ## Verdicts
#
# Two kinds of checks this page adds (book checks, not the paper's claims): the diagnostic agrees with
# the closed form of least squares, and on each model a random rotation makes the loss less
# $\ell_\infty$-smooth (the mechanism behind Tables 2 and 4, measured on more models), decided only
# outside the two 90% bands.

# %%
verdict_table = study.verdicts(summary, closed, scale=scale)
save_verdicts(verdict_table, out, params=params)
_ = report.table(
    verdict_table[["claim", "ours", "verdict", "rule"]],
    caption="Book checks of this page (where: Diagnostic).",
)

# %% tags=["hide-input"]
wall, cpu = time.perf_counter() - t_start, time.process_time() - cpu_start
n_hvp = int(summary.n_products.sum())
adv = {f"{m} ({s})": r for m, s, r in zip(summary.model, summary.state, summary.itertuples(), strict=True)}
above = [k for k, r in adv.items() if r.advantage_lo > 1]
below = [k for k, r in adv.items() if r.advantage_hi < 1]
tally = verdict_table.verdict.iloc[1:].value_counts()  # the rotation checks (row 0: least squares)
box = (
    f"`adamlinf.diagnose` on {len(diags)} models and training states at `{scale}` scale ({n_probes} Cauchy probes, "
    f"{n_hvp:,} Hessian-vector products, {wall:.0f} s). "
    f"The advantage d‖H‖₂/‖H‖₁,₁ is above 1 outside its band for {len(above)} of them, below 1 for {len(below)} "
    f"({', '.join(below) or 'none'}). A random rotation "
    f"makes the loss less ℓ∞-smooth on {tally.get('holds', 0)} of {len(verdict_table) - 1} (bands apart), more on "
    f"{tally.get('fails', 0)}, undecided on {tally.get('inconclusive', 0)}; least squares agrees with its "
    f"closed form ({verdict_table.verdict.iloc[0]}). {{ref}}`The table below <diag-race>` "
    "puts each advantage beside a race of Adam, rotated Adam and AdaSGD."
)
_ = glance.result_box(
    "diagnose_models",
    results_dir,
    ran=f"adamlinf.diagnose on least squares, the ci GPT (initialisation, after Adam, after rotated Adam), the "
    f"ResNet stand-in, an MLP and torchvision's {torchvision_arch} (random weights); {n_probes} Cauchy probes each",
    answer=box,
    evidence=("verdicts", "Verdicts"),
)
_ = report.markdown(
    f"**Cost of this page** at `{scale}` scale: {wall:.1f} s of wall time, {cpu:.1f} s of CPU time, {n_hvp:,} "
    f"Hessian-vector products, on {device} with {torch_threads or torch.get_num_threads()} torch thread(s). The `gpu` "
    "parameter set (the gpu GPT of Figure 1, a width-64 ResNet, torchvision ResNet18 with all its blocks) is sized "
    "for one GPU; it has not been run yet."
)
