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
# # Table 3: ResNet18 on CIFAR-10, final training loss per optimizer and batch size
#
# Section 4.3 of {cite}`xie2025adam` asks whether the story of the GPT-2 experiment holds beyond
# transformers: on ResNet18 {cite}`he2016deep` trained on CIFAR-10 {cite}`krizhevsky2009learning`,
# does Adam {cite}`kingma2015adam`, which exploits the $\ell_\infty$ geometry of the loss
# coordinate by coordinate, still optimise fastest, and does it lose that edge once the loss is
# rotated? Table 3 reports, for several batch sizes, the final training loss of each optimizer
# with its best learning rate.
#
# ```{prf:algorithm} The protocol of Table 3 (partly RECONSTRUCTED)
# :label: alg-resnet-table3
#
# **Model and data.** ResNet18 adapted to $32\times 32$ inputs (3×3 stride-1 stem, no
# max-pool), every BatchNorm {cite}`ioffe2015batch` with `track_running_stats=False`; CIFAR-10
# with random crop (padding 4) and horizontal flip.
#
# **Optimizers.** SGD with momentum $0.9$; AdaSGD {cite}`wang2020adasgd` (one second-moment
# scalar for all parameters, Algorithm 2); Adam (Algorithm 1, in the torch form the paper ran);
# rotated Adam, i.e. Adam on $L\circ\mathcal R$ with the permute-and-rotate map $\mathcal R$ of
# Appendix D.1 ($k=2$); and, as an extra, blockwise Adam with one block per parameter tensor
# (Algorithm 3). $(\beta_1,\beta_2)=(0.9,0.99)$, no weight decay.
#
# **Budget.** 20 epochs per run: $4000$ iterations at batch size $256$, $1000$ at $1024$.
#
# **Tuning.** Each optimizer runs over the same grid of 12 learning rates; the table reports the
# lowest final training loss, measured on a fixed augmented training subset the size of the test
# set.
# ```
#
# What is RECONSTRUCTED, and why (PAPER_MATH.md §5): the values of the 12 learning rates, the full
# list of batch sizes (only 256 and 1024 are in the text), $\beta_2 = 0.99$ (the sentence that sets
# it lost its symbols; it gives ResNet the same value as the quadratic, which reviewers confirm is
# $0.99$), and the learning-rate schedule (not stated for ResNet; we use a cosine decay to a tenth
# of the peak, as in the GPT-2 runs, with no warm-up and no gradient clipping). The numbers of
# Table 3 were not recovered, so we compare with the paper's *claims*, not its numbers.
#
# **Scale of this page.** At `ci` scale this notebook cannot use CIFAR-10 (no network, 2 CPU
# cores): it runs a narrow ResNet (width 8, one block per stage) on a **stand-in**, scikit-learn's
# 1,797 real handwritten 8×8 digits upscaled to 16×16 and 3 channels, with the same augmentation
# (padding scaled to 2 pixels), the same evaluation protocol, fewer epochs, two batch sizes and a
# grid of 8 learning rates, wide enough that every optimizer's best value lies inside it. The `paper`
# parameters run the protocol above on CIFAR-10.
#
# *Disclosure of one change.* Our first `ci` grid ($10^{-3}$ to $0.3$) had SGD's best value at its
# upper edge, so we widened it on both sides (to $10^{-3}$ … $3$) until no optimizer's best
# value sat on an edge. This was done to bracket every optimum, not to reach agreement: it made
# SGD beat Adam at batch size 128 (see below). Nothing else was changed after seeing results.

# %% tags=["parameters"]
scale = "ci"
results_dir = "results/resnet_table3/ci"
device = "cpu"
seed = 0
data_source = "digits"          # "digits" (offline stand-in) or "cifar10"
image_size = 16                 # digits stand-in only; CIFAR-10 is 32x32
width = 8                       # ResNet18: 64
blocks = [1, 1, 1, 1]           # ResNet18: [2, 2, 2, 2]
batch_sizes = [32, 128]
epochs = 3
lrs = [1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0, 3.0]
optimizers = ["sgd", "adasgd", "adam", "rotated_adam", "blockwise_adam_tensor"]
betas = [0.9, 0.99]
momentum = 0.9
schedule = "cosine"
evals_per_epoch = 2
eval_batch_size = 500
workers = 2                     # runs trained at once (CPU); 1 on a GPU
threads_per_worker = 1
nproc_per_node = 1              # >1: each run with DDP over that many processes (torchrun)
paper_images_per_s = 15000      # ASSUMED throughput of ResNet18 training on one H100-class GPU

# %% tags=["hide-input"]
import time
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from IPython.display import Markdown, display

from adamlinf import experiments as ex
from adamlinf.data import build_task
from adamlinf.models.resnet import train_flops_per_image
from adamlinf.results import save_table
from adamlinf.run import load_parameters

params = dict(scale=scale, device=device, seed=seed, data_source=data_source, image_size=image_size,
              width=width, blocks=blocks, batch_sizes=batch_sizes, epochs=epochs, lrs=lrs,
              optimizers=optimizers, betas=betas, momentum=momentum, schedule=schedule,
              evals_per_epoch=evals_per_epoch, eval_batch_size=eval_batch_size)
out = Path(results_dir)
runs_root = out / "runs"   # the trained runs; Figure 4 and Table 4 read them from here
t_start = time.perf_counter()

# %% [markdown]
# ## Cost at the paper's scale
#
# Every run sees 20 epochs of 50,000 images, whatever its batch size, so each costs the same:
# 20 × 50,000 images × the training FLOPs per image. The throughput is an assumption (no GPU was
# available to measure it; set `paper_images_per_s` to a measured value).

# %%
paper = load_parameters("resnet_table3", "paper")  # the `paper` parameter set of this notebook
paper_flops = train_flops_per_image(32, width=paper["width"], blocks=paper["blocks"])
print(f"ResNet18 (CIFAR variant): {paper_flops / 1e9:.2f} GFLOP per training image")
n_paper_runs = len(paper["optimizers"]) * len(paper["lrs"])
total_h = 0.0
for bs in paper["batch_sizes"]:
    est = ex.paper_time_estimate(tokens_per_step=bs, steps=round(paper["epochs"] * 50000 / bs),
                                 flops_per_token=paper_flops, tokens_per_s_per_gpu=paper["paper_images_per_s"],
                                 n_runs=n_paper_runs, label=f"Table 3 at paper scale, batch {bs} "
                                 f"({len(paper['optimizers'])} optimizers x {len(paper['lrs'])} lrs)")
    total_h += est["gpu_hours_total"]
print(f"total: about {total_h:.1f} GPU-hours (images/s ASSUMED = {paper['paper_images_per_s']:,}, not "
      f"measured: no GPU in this session; {paper['epochs'] * 50000 / paper['paper_images_per_s'] / 60:.1f} "
      "GPU-minutes per run; rotated Adam adds the permute-and-rotate map per step, small next to the network)")

# %% [markdown]
# ## The runs

# %%
specs = {}
for bs in batch_sizes:
    base = ex.image_spec(source=data_source, batch_size=bs, epochs=epochs, width=width, blocks=blocks,
                         image_size=image_size if data_source == "digits" else None,
                         eval_batch_size=eval_batch_size, data_seed=seed, evals_per_epoch=evals_per_epoch,
                         betas=betas, momentum=momentum, schedule=schedule, grad_clip=None, seed=seed,
                         device=device, progress=False)
    specs.update(ex.grid_specs(base, {opt: lrs for opt in optimizers},
                               name_fmt=f"bs{bs}_{{optimizer}}_lr{{lr:.1e}}"))
task = build_task(base["data"])
print(f"{len(specs)} runs; data: {task.name}, {task.num_train} training / {task.num_test} test images; "
      "iterations per run: " + ", ".join(f"{bs}: {task.iters_for_epochs(epochs, global_batch=bs)}"
                                         for bs in batch_sizes))
t0 = time.perf_counter()
metrics = ex.run_specs(specs, runs_root, nproc_per_node=nproc_per_node, workers=workers,
                       threads_per_worker=threads_per_worker)
train_seconds = time.perf_counter() - t0
save_table(metrics, out / "metrics.csv", params=params, wall_time_s=train_seconds)
print(f"training: {train_seconds:.1f} s in this execution (runs already complete with the same spec are "
      f"reused from {runs_root}, so a re-execution can take seconds)")

# %% [markdown]
# ## Best learning rate per optimizer and batch size
#
# The final training loss is `train_eval_loss` at the last iteration: the loss on the fixed
# augmented training subset (the paper's "training loss"), not the last mini-batch.

# %%
last = metrics[metrics["iter"] == metrics["max_iters"]].copy()  # the evaluation after the last step
last["train_eval_loss"] = last["train_eval_loss"].fillna(float("inf"))  # a diverged run
finals = last[["run", "optimizer", "lr", "batch_size", "train_eval_loss", "train_eval_acc", "test_loss",
               "test_acc"]].rename(columns={"train_eval_loss": "final_train_eval_loss"}).reset_index(drop=True)
save_table(finals, out / "finals.csv", params=params)
best = ex.best_runs(last, "train_eval_loss", by=("optimizer", "batch_size"), window=1)
best = best.merge(finals[["run", "train_eval_acc", "test_loss", "test_acc"]], on="run")
best["run_dir"] = [str(runs_root / r) for r in best.run]
best["edge_of_grid"] = [lr in (min(lrs), max(lrs)) for lr in best.lr]
save_table(best, out / "table3.csv", params=params)

# %% tags=["hide-input"]
label = ex.OPTIMIZER_LABELS
order = [label[o] for o in optimizers]
table = best.assign(Optimizer=best.optimizer.map(label)).pivot(
    index="Optimizer", columns="batch_size", values="final_train_eval_loss").reindex(order)
table.columns = [f"train loss, batch {c}" for c in table.columns]
lr_table = best.assign(Optimizer=best.optimizer.map(label)).pivot(
    index="Optimizer", columns="batch_size", values="lr").reindex(order)
lr_table.columns = [f"best lr, batch {c}" for c in lr_table.columns]
shown = table.join(lr_table)
shown["paper (Table 3)"] = ["numbers not recovered"] * len(shown)
shown["scale"] = f"{scale}: {task.name}"
display(shown.style.format({c: "{:.4f}" for c in table.columns} | {c: "{:.0e}" for c in lr_table.columns}))
if best.edge_of_grid.any():
    print("best learning rate at the edge of the grid for:",
          ", ".join(f"{label[o]} (batch {b})" for o, b in best.loc[best.edge_of_grid, ["optimizer", "batch_size"]].values))

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(9, 4.5))
plot = finals.assign(Optimizer=finals.optimizer.map(label))
plot = plot[plot.final_train_eval_loss < float("inf")]
sns.lineplot(data=plot, x="lr", y="final_train_eval_loss", hue="Optimizer", style="batch_size",
             markers=True, hue_order=order, ax=ax)
ax.set(xscale="log", yscale="log", xlabel="peak learning rate", ylabel="final training loss",
       title=f"Learning-rate sweep ({scale}: {task.name})")
ax.legend(fontsize=8, bbox_to_anchor=(1.02, 1), loc="upper left")
plt.show()

# %% [markdown]
# ## Paper vs ours
#
# The paper's claims (Section 4.3): across batch sizes, Adam reaches the lowest training loss;
# with the loss rotated (rotated Adam) it loses that edge; SGD and AdaSGD, which are rotation
# equivariant, are slower than Adam. The checks below are computed from the table above.

# %%
def rank_line(bs):
    g = best[best.batch_size == bs].sort_values("final_train_eval_loss")
    return " < ".join(f"{label[o]} ({v:.3g})" for o, v in zip(g.optimizer, g.final_train_eval_loss))


def loss_of(opt, bs):
    return float(best[(best.optimizer == opt) & (best.batch_size == bs)].final_train_eval_loss.iloc[0])


checks = []
for bs in batch_sizes:
    others = [o for o in ("sgd", "adasgd", "rotated_adam") if o in optimizers]
    checks.append({"batch_size": bs,
                   "Adam best of SGD/AdaSGD/rotated Adam": all(loss_of("adam", bs) < loss_of(o, bs) for o in others),
                   "rotated Adam worse than Adam": loss_of("rotated_adam", bs) > loss_of("adam", bs),
                   "Adam / rotated Adam loss ratio": loss_of("adam", bs) / loss_of("rotated_adam", bs),
                   "order (lowest loss first)": rank_line(bs),
                   "scale": f"{scale}: {task.name}"})
checks = pd.DataFrame(checks)
save_table(checks, out / "claims.csv", params=params)
display(checks)
agree = checks["Adam best of SGD/AdaSGD/rotated Adam"].all() and checks["rotated Adam worse than Adam"].all()
display(Markdown(
    f"At `{scale}` scale ({task.name}, {len(specs)} runs, {train_seconds:.0f} s of training in this execution; completed runs are reused), Adam has the "
    f"lowest final training loss among SGD, AdaSGD and rotated Adam at "
    f"{int(checks['Adam best of SGD/AdaSGD/rotated Adam'].sum())} of {len(checks)} batch sizes, and rotated "
    f"Adam is worse than Adam at {int(checks['rotated Adam worse than Adam'].sum())} of {len(checks)}. "
    + ("This **agrees** with the paper's takeaway." if agree else
       "This **does not fully agree** with the paper's takeaway; we report it as measured and did not "
       "tune the setup to make it agree.")
    + (f" The `ci` run uses a small stand-in data set and network, few epochs and a grid of {len(lrs)} learning rates: it is a "
       "smoke test of the pipeline and a weak check of the claim, not a reproduction of CIFAR-10 numbers."
       if scale == "ci" else "")))
print(f"notebook wall time: {time.perf_counter() - t_start:.1f} s")
