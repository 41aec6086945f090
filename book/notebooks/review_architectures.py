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
# # Review Q2: rotation and Adam beyond GPT-2 and ResNet
#
# ```{glue:md} result_box
# :format: myst
# ```

# %% tags=["parameters", "hide-input"]
scale = "ci"
results_dir = "results/review_architectures/ci"
tasks = {
    "MLP": {"kind": "mlp", "width": 32, "batch_size": 64, "steps": 300},
    "CNN": {"kind": "cnn", "width": 8, "batch_size": 64, "steps": 300},
    "GRU": {"kind": "gru", "embd": 32, "hidden": 64, "seq_len": 32, "batch_size": 16, "steps": 150},
}
grid = [0.001, 0.003162, 0.01, 0.03162]  # starting lr grid of every optimizer
beta2 = 0.999
rotation_k = 2
tune_seed = 0
seeds = [1, 2, 3]  # measuring seeds
max_extensions = 3
threads = 1
device = "cpu"

# %% tags=["remove-input"]
import time
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import torch

from adamlinf import report
from adamlinf.results import save_table
from adamlinf.run import notebook_params
from adamlinf.studies import glance
from adamlinf.studies import review as rv
from adamlinf.studies.verdicts import save_verdicts

params = notebook_params("review_architectures", globals())
results_dir = Path(results_dir)
torch.set_num_threads(threads)
report.style()
t0, c0 = time.perf_counter(), time.process_time()

# %% [markdown]
# **The question.** The paper shows rotation hurting Adam on GPT-2 and ResNet18. Does the same hold on
# other architectures: a multilayer perceptron, a small convolutional network, a recurrent network?
#
# **The experiment.** Three small networks, all offline: an MLP (64 → 32 → 10) and a CNN (two 3×3
# convolutions with 8 and 16 channels) on scikit-learn's 8×8 handwritten digits, and a byte-level GRU
# language model (embedding 32, hidden 64) on the English documentation shipped with Python
# (`adamlinf.studies.review.digits_task`, `text_task`). Three optimizers: Adam, AdaSGD, and rotated
# Adam, which is Adam on $L\circ\mathcal R$ with Appendix D.1's permute-and-rotate map over all
# parameters (the network starts at the same point; `adamlinf.rotations.RotatedParametrization`).
# Each is tuned on seed 0 on a half-decade grid extended until its optimum is interior, then measured
# on other seeds at its tuned lr; the metric is the held-out cross-entropy after the last step
# (warm-up then cosine decay to a tenth of the peak lr).

# %%
arms = {
    "adam": rv.Arm("adam"),
    "adasgd": rv.Arm("adasgd"),
    "rotated_adam": rv.Arm("adam", rotation=rv.rotated(k=rotation_k)),
}
labels = {"adam": "Adam", "adasgd": "AdaSGD", "rotated_adam": "rotated Adam"}
tuned = {}
for name, spec in tasks.items():
    tuned[name] = rv.tune(
        rv.make_task(spec, device),
        arms,
        {a: grid for a in arms},
        steps=int(spec["steps"]),
        tune_seed=tune_seed,
        seeds=seeds,
        beta2=beta2,
        max_extensions=max_extensions,
    )
runs = pd.concat([tu.finals.assign(task=name) for name, tu in tuned.items()], ignore_index=True)
save_table(
    runs, results_dir / "runs.csv", params=params, wall_time_s=sum(tu.seconds for tu in tuned.values())
)
summary = pd.concat([tu.table(name) for name, tu in tuned.items()], ignore_index=True)
save_table(summary, results_dir / "tuned.csv", params=params)
_ = report.table(
    summary.drop(columns=["mean", "std"]).replace(labels),
    caption=f"Tuned learning rates and held-out loss on {len(seeds)} measuring seeds ({scale} scale). "
    + "; ".join(f"{n}: {tu.sweep.extension_text()}" for n, tu in tuned.items()),
)

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, len(tuned), figsize=(7.5, 2.9))
rv.plot_sweeps(axes, tuned, labels)
axes[0].legend(fontsize=8)
fig.tight_layout()
_ = report.figure(
    fig,
    f"Learning-rate sweeps ({scale} scale): held-out loss of the tuning seed against the peak lr; error bars: "
    "mean ± std of the measuring seeds at each tuned lr (dotted lines).",
    alt="Three panels (MLP, CNN, GRU) of final loss against learning rate for Adam, AdaSGD and rotated Adam.",
)

# %% [markdown]
# ## Verdicts

# %%
tables = []
for name, tu in tuned.items():
    pairs = [
        (f"{name}: Adam beats rotated Adam", "adam", "rotated_adam"),
        (f"{name}: Adam beats AdaSGD", "adam", "adasgd"),
        (f"{name}: AdaSGD beats rotated Adam", "adasgd", "rotated_adam"),
    ]
    tables.append(rv.claims(tu.values, pairs, q=2, scale=scale, page="review_architectures", labels=labels))
verdict_table = pd.concat(tables, ignore_index=True)
save_verdicts(verdict_table, results_dir, params=params)
_ = report.table(verdict_table.drop(columns=["paper", "page"]), caption="Review Q2: verdicts (book checks).")

# %%
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
v = verdict_table.set_index("claim").verdict
lines = "; ".join(
    f"{n}: Adam {tu.values['adam'].text(3)}, rotated Adam {tu.values['rotated_adam'].text(3)} "
    f'("Adam beats rotated Adam" {v[f"{n}: Adam beats rotated Adam"]})'
    for n, tu in tuned.items()
)
_ = glance.result_box(
    "review_architectures",
    results_dir,
    ran=f"an MLP and a CNN on the digits stand-in and a GRU byte language model, a few hundred steps; Adam, rotated Adam and AdaSGD tuned on seed {tune_seed}, measured on {len(seeds)} other seeds",
    answer=(
        f"**Answer (at `{scale}` scale, small networks, {len(seeds)} measuring seeds, held-out loss):** {lines}. "
        "A verdict here is about these small networks and short runs; *inconclusive* means the gap is within the "
        "seed noise; *fails* means the reverse ordering is significant (here: early training, a few hundred "
        f"steps). Cost: {cpu:.0f} s CPU, {wall:.0f} s wall."
    ),
    evidence=("verdicts", "Verdicts"),
)
_ = report.markdown(
    f"**Cost of this page** at `{scale}` scale: {cpu:.1f} s of CPU time ({wall:.1f} s wall) on {threads} thread(s). "
    "The `gpu` parameter set (wider networks, more steps and seeds) is sized for a few minutes on one GPU."
)
