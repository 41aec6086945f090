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
# One row per claim of the paper, in the paper's order: the verdict at each scale, what actually ran,
# the numbers that decide it, and a link to the evidence (each page's "Paper vs ours" section). The
# table is generated from the verdict files the pages wrote, so it cannot drift from them.

# %% tags=["parameters", "remove-input"]
scale = "ci"
results_dir = "results/glance/ci"

# %% tags=["remove-input"]
from pathlib import Path

from adamlinf import report
from adamlinf.results import save_table
from adamlinf.run import notebook_order, notebook_params
from adamlinf.studies import glance
from adamlinf.studies.verdicts import AGGREGATION_RULE

params = notebook_params("glance", globals())
pages = [name for name in notebook_order() if name != "glance"]
verdicts = glance.collect(pages)
summary, links = glance.summary(verdicts)
save_table(summary, f"{results_dir}/summary.csv", params)
# the same summary, short, for the introduction (links relative to book/)
_ = Path(results_dir, "summary.md").write_text(glance.summary_markdown(verdicts, link_prefix="executed/"))

# %% tags=["remove-input"]
report.table(
    summary,
    "The paper's claims: verdict at each scale (ci on two CPU cores; gpu and paper scale: not run) "
    "and what ran at ci",
    links={"claim": links},
    verdict_columns=tuple(glance.SCALE_HEADERS.values()),
)

# %% [markdown]
# **How a summary verdict is made.** Each page checks a claim with one or more rows, each decided by
# the calibrated test of `adamlinf.studies.verdicts` (Welch's one-sided t-test at α = 0.05 each way
# for seed means; non-overlapping error bands for estimates; a relative tolerance for exact values).

# %% tags=["remove-input"]
_ = report.markdown(AGGREGATION_RULE)
changed = {p: c for p in pages if (c := glance.overrides(p, scale))}
if changed:
    _ = report.markdown(
        "**Results made with overridden parameters** (`--set`, or papermill's `-p`) are not the `ci` "
        'verdicts and are marked "with overrides" above: '
        + "; ".join(f"{p}: {glance.overrides_text(c)}" for p, c in changed.items())
        + ". Re-run them with the scale's parameters (`python -m adamlinf.run --scale ci --only NAME`)."
    )

# %% [markdown]
# holds
# : the measurement agrees with the claim by more than its noise.
#
# fails
# : the reverse is true by more than the noise: the claim does not hold **at this scale**, on this
#   stand-in. It says nothing yet about the paper's own setting.
#
# inconclusive
# : the gap is within the noise (or only one seed ran). Not a failure: the numbers cannot decide.
#
# not run
# : no results at this scale. Nothing has run at the `gpu` or `paper` scale yet; no `gpu` results
#   are published in `published/`.
#
# **What ran.** At `ci` every page runs on two CPU cores in minutes: small models, few steps, and
# offline stand-ins (a byte-level GPT on Python's documentation instead of GPT-2 on OpenWebText,
# scikit-learn's handwritten digits instead of CIFAR-10). The column "what ran (ci)" says so row by
# row. A claim can fail or be inconclusive here and hold at the paper's scale.
#
# **From machine to machine.** The same commit gives slightly different numbers on different CPUs:
# matrix kernels add in a different order, and training amplifies the round-off. Two builds of an
# earlier version on two machines gave Adam's final GPT loss at `ci` as 2.145 ± 0.015 and
# 2.130 ± 0.005: the means moved by about one seed spread, in the third digit. The verdict rule
# absorbs moves of this size because it decides only when a gap exceeds the seed noise; a claim whose
# gap sits near that threshold can still move between *inconclusive* and *holds* (the same two builds
# disagreed on "SGD is slower than AdaSGD"). Read a verdict together with its numbers; no row here
# should be read as more precise than its spread.
#
# ## How many rows, by origin
#
# The paper's claims, the book's own checks (extra baselines, constants of the reconstruction,
# diagnostics) and the answers to the review's questions are counted apart.

# %% tags=["remove-input"]
report.table(glance.tally(verdicts), "Verdict rows per origin and scale (not run: no results at that scale)")

# %% [markdown]
# ## The review's questions
#
# Checks the book runs to answer questions raised in review (rows whose place is "Review Q1" …).

# %% tags=["remove-input"]
review = glance.review_rows(verdicts)
if review.empty:
    _ = report.markdown("No review question has verdict rows yet.")
else:
    report.table(
        review[["where", "claim", "ours", "verdict", "scale"]],
        "The review's questions, answered by the book's own checks",
    )

# %% [markdown]
# ## Every row, page by page
#
# Open a page's line to see its rows; Table 1's rows are counted per claim first, with the full table
# folded below.

# %% tags=["remove-input"]
from IPython.display import HTML  # noqa: E402

HTML(
    "".join(
        glance.page_details(verdicts, p, glance.page_title(p))
        for p in pages
        if (verdicts.notebook == p).any()
    )
)
