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
# # Figure 4: ResNet18 on CIFAR-10, training and test curves of the tuned optimizers
#
# Figure 4 of {cite}`xie2025adam` shows, at one batch size, the training and test loss and
# accuracy of SGD, AdaSGD, Adam and rotated Adam on ResNet18 {cite}`he2016deep` /
# CIFAR-10 {cite}`krizhevsky2009learning`, each with the learning rate that gave the lowest final
# training loss in the sweep of Table 3. The budget is deliberately short (20 epochs) because the
# question is the *speed of optimization*, not generalization.
#
# ```{prf:definition} What the curves measure
# :label: def-resnet-figure4
#
# For a run with parameters $x_t$ after $t$ steps, the **training loss and accuracy** are measured
# on a fixed subset of the augmented training set with as many images as the test set (the
# random crops and flips drawn once), and the **test loss and accuracy** on the whole test set
# without augmentation. BatchNorm uses batch statistics in both (`track_running_stats=False`).
# ```
#
# This page does not train anything: it reads the runs of the Table 3 notebook (run that first)
# and plots the tuned run of each optimizer. The batch size of the paper's Figure 4 was not
# recovered (RECONSTRUCTED: we show 256 at paper scale, the first batch size the text names). At
# `ci` scale the runs are the stand-in of Table 3: a narrow ResNet on scikit-learn's handwritten
# digits upscaled to 16×16, **not CIFAR-10**.

# %% tags=["parameters"]
scale = "ci"
results_dir = "results/resnet_figure4/ci"
device = "cpu"
seed = 0
figure_batch_size = 32
table3_dir = None               # default: results/resnet_table3/<scale>
paper_images_per_s = 15000      # ASSUMED throughput of ResNet18 training on one H100-class GPU

# %% tags=["hide-input"]
import time
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from IPython.display import Markdown, display

from adamlinf import experiments as ex
from adamlinf.models.resnet import train_flops_per_image
from adamlinf.results import save_table
from adamlinf.run import load_parameters

t_start = time.perf_counter()
out = Path(results_dir)
src = Path(table3_dir) if table3_dir else out.parents[1] / "resnet_table3" / scale
params = dict(scale=scale, figure_batch_size=figure_batch_size, table3_dir=str(src))
if not (src / "table3.csv").exists():
    raise FileNotFoundError(f"{src / 'table3.csv'} not found: execute the Table 3 notebook first "
                            f"(python -m adamlinf.run --scale {scale} --only resnet_table3)")
best = pd.read_csv(src / "table3.csv")
metrics = pd.read_csv(src / "metrics.csv")

# %% [markdown]
# ## Cost at the paper's scale
# Nothing is trained here; the curves are the tuned runs of Table 3 at one batch size (20 epochs each).

# %%
paper = load_parameters("resnet_figure4", "paper")
ex.paper_time_estimate(tokens_per_step=paper["figure_batch_size"],
                       steps=round(20 * 50000 / paper["figure_batch_size"]), flops_per_token=train_flops_per_image(32),
                       tokens_per_s_per_gpu=paper["paper_images_per_s"], n_runs=best.optimizer.nunique(),
                       label="the curves of Figure 4 (already trained by Table 3)")
print(f"(images/s ASSUMED = {paper['paper_images_per_s']:,}, not measured: no GPU in this session)")

# %% [markdown]
# ## The tuned runs at one batch size

# %%
if figure_batch_size not in set(best.batch_size):
    raise ValueError(f"figure_batch_size={figure_batch_size} is not among Table 3's batch sizes "
                     f"{sorted(set(best.batch_size))}")
chosen = best[best.batch_size == figure_batch_size]
curves = metrics[metrics.run.isin(chosen.run) & metrics.test_loss.notna()].copy()
curves["budget"] = curves["iter"] / curves["max_iters"]  # fraction of the run (every run: same epochs)
tidy = curves.melt(id_vars=["run", "optimizer", "lr", "batch_size", "iter", "samples", "budget"],
                   value_vars=["train_eval_loss", "test_loss", "train_eval_acc", "test_acc"],
                   var_name="metric", value_name="value")
save_table(tidy, out / "figure4_curves.csv", params=params)
display(chosen.assign(Optimizer=chosen.optimizer.map(ex.OPTIMIZER_LABELS), scale=f"{scale}, batch {figure_batch_size}",
                     paper="curves only (Figure 4), no numbers")[
    ["Optimizer", "lr", "final_train_eval_loss", "train_eval_acc", "test_loss", "test_acc", "paper", "scale", "run"]])

# %% tags=["hide-input"]
label = ex.OPTIMIZER_LABELS
order = [label[o] for o in ("adam", "adasgd", "sgd", "rotated_adam", "blockwise_adam_tensor")
         if o in set(chosen.optimizer)]
plot = tidy.assign(Optimizer=tidy.optimizer.map(label))
titles = {"train_eval_loss": "training loss (fixed augmented subset)", "test_loss": "test loss",
          "train_eval_acc": "training accuracy", "test_acc": "test accuracy"}
fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True)
for ax, metric in zip(axes.flat, titles):
    sns.lineplot(data=plot[plot.metric == metric], x="budget", y="value", hue="Optimizer", hue_order=order,
                 marker="o", ax=ax, legend=metric == "train_eval_loss")
    ax.set(title=titles[metric], xlabel="fraction of the training budget", ylabel=metric.replace("_", " "))
    if metric.endswith("loss"):
        ax.set_yscale("log")
axes[0, 0].legend(fontsize=8)
fig.suptitle(f"Figure 4 ({scale}: batch size {figure_batch_size}, tuned learning rates)")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Paper vs ours
#
# The paper's claim for Figure 4: Adam optimizes fastest (lowest training loss throughout),
# rotated Adam is clearly slower than Adam, and the test metrics are secondary (the budget is
# deliberately short). The checks below are computed from the curves.

# %%
train_curves = curves.pivot_table(index="iter", columns="optimizer", values="train_eval_loss")
others = [o for o in train_curves.columns if o not in ("adam", "blockwise_adam_tensor")]
after_start = train_curves[train_curves.index > 0]
adam_lowest = (after_start["adam"] < after_start[others].min(axis=1)).mean()
final = train_curves.iloc[-1].sort_values()
summary = pd.DataFrame({
    "check": ["Adam has the lowest training loss (share of evaluations after the start)",
              "final training loss order (lowest first)",
              "rotated Adam's final training loss / Adam's"],
    "paper": ["Adam fastest", "Adam first", "> 1"],
    "ours": [f"{adam_lowest:.0%}", " < ".join(label[o] for o in final.index),
             f"{final['rotated_adam'] / final['adam']:.3g}"],
    "scale": [f"{scale}, batch {figure_batch_size}"] * 3})
save_table(summary, out / "claims.csv", params=params)
display(summary)
display(Markdown(
    f"At `{scale}` scale and batch size {figure_batch_size}, Adam's training loss is the lowest among "
    f"{', '.join(label[o] for o in others)} at {adam_lowest:.0%} of the evaluations after the start, and its "
    f"final training loss ranks {list(final.index).index('adam') + 1} of {len(final)} (blockwise Adam "
    f"included). " + ("This agrees with the paper's Figure 4." if adam_lowest >= 0.5 and final.index[0] in
                      ("adam", "blockwise_adam_tensor") else
                      "This does not fully agree with the paper's Figure 4; we report it as measured.")
    + (" The `ci` curves come from a small stand-in (digits, narrow ResNet, 3 epochs), so they test the "
       "pipeline and only weakly the claim." if scale == "ci" else "")))
print(f"notebook wall time: {time.perf_counter() - t_start:.1f} s")
