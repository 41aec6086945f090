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
# # Results at a glance
#
# Every claim of the paper that this book checks, with its verdict at each scale that has results,
# and a link to the page that shows the evidence. Each page ends with a "Paper vs ours" table; this
# page collects those tables (the files `results/<page>/<scale>/verdicts.csv`, and for the one-GPU
# scale the results committed in `published/<page>/gpu/`).
#
# The verdict words mean the same on every page:
#
# holds
# : our measurement agrees with the claim by more than its noise: the gap exceeds twice the larger
#   seed standard deviation, the error bands do not overlap, or an exact quantity agrees beyond
#   round-off.
#
# fails
# : the reverse gap exceeds the same threshold: the claim does not hold **at this scale**.
#
# inconclusive
# : the gap is within the noise, or only one seed was run. This is not a failure: the numbers cannot
#   decide.
#
# not run
# : no results at this scale.
#
# The scales: `ci` runs on two CPU cores in minutes (small models, few steps); `gpu` is sized for one
# GPU in about 15 minutes; `paper` is the paper's own sizes. A claim can fail at `ci` scale and hold
# at the paper's: each page says what its scale can and cannot show.

# %% tags=["parameters"]
scale = "ci"
results_dir = "results/glance/ci"

# %%
from adamlinf import report
from adamlinf.results import save_table
from adamlinf.run import notebook_order, notebook_params
from adamlinf.studies import glance

params = notebook_params("glance", globals())
pages = [name for name in notebook_order() if name != "glance"]
verdicts = glance.collect(pages)
table, links = glance.overview(verdicts, pages)
save_table(table, f"{results_dir}/glance.csv", params)
report.table(glance.tally(table), "Number of claims per verdict and scale")

# %%
report.table(
    table,
    "Every claim, its verdict at each scale, and the page that shows it",
    links={"page": links},
    wrap=("claim", "paper"),
    verdict_columns=glance.verdict_columns(table),
)
