"""The "Results at a glance" summary and the result boxes, on constructed verdict files."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from adamlinf.studies import glance, verdicts
from adamlinf.studies.verdicts import BOOK, FAILS, HOLDS, INCONCLUSIVE, NOT_RUN, save_verdicts, verdict_row


@pytest.mark.parametrize(
    ("verdicts_", "summary"),
    [
        ([HOLDS, HOLDS], HOLDS),
        ([FAILS], FAILS),
        ([INCONCLUSIVE, INCONCLUSIVE], INCONCLUSIVE),
        ([HOLDS, INCONCLUSIVE, HOLDS], "holds in part"),
        ([FAILS, INCONCLUSIVE], "fails in part"),
        ([HOLDS, FAILS, INCONCLUSIVE], "mixed"),
        ([HOLDS, FAILS], "mixed"),
        ([HOLDS, NOT_RUN], HOLDS),  # a row that did not run does not count
        ([NOT_RUN, NOT_RUN], NOT_RUN),
        ([], NOT_RUN),
    ],
)
def test_the_aggregation_rule(verdicts_, summary):
    assert verdicts.aggregate(verdicts_) == summary


def test_verdict_text_gives_the_counts():
    assert glance.verdict_text([HOLDS] * 8) == "holds (all 8)"
    assert glance.verdict_text([FAILS]) == "fails"
    assert glance.verdict_text([HOLDS, FAILS, NOT_RUN]) == "mixed (holds 1 · fails 1)"
    assert glance.verdict_text([]) == NOT_RUN


def test_counts_text_in_the_books_order():
    assert glance.counts_text([INCONCLUSIVE, HOLDS, FAILS, HOLDS]) == "holds 2 · fails 1 · inconclusive 1"
    assert glance.counts_text([]) == ""


def _write(root, notebook, scale, rows):
    """Verdict rows ``(claim, verdict, where, origin, ours)`` saved as a page would."""
    table = pd.DataFrame(
        [
            verdict_row(c, v, ours=o, scale=scale, page=notebook, where=w, origin=origin)
            for c, v, w, origin, o in rows
        ]
    )
    save_verdicts(table, root / notebook / scale)


@pytest.fixture
def book(tmp_path):
    """A results tree: Figure 1 with paper claims and a book check, Table 1 with repeated settings,
    a review page, and a published gpu result for Theorem 2.2."""
    results, published = tmp_path / "results", tmp_path / "published"
    _write(
        results,
        "gpt2_figure1",
        "ci",
        [
            ("Adam beats AdaSGD", HOLDS, "Figure 1", "paper", "Adam 2.13 ± 0.01 vs AdaSGD 2.41 ± 0.02"),
            ("AdaSGD beats rotated Adam", INCONCLUSIVE, "Figure 1", "paper", "2.41 ± 0.02 vs 2.40 ± 0.03"),
            ("Adam beats SGD with momentum", FAILS, "Figure 1", BOOK, "x"),
        ],
    )
    settings = [f"λ: {s}, σ = {n}" for s in ("1/i", "i/d") for n in (0, 0.001)]
    _write(
        results,
        "quadratic_table1",
        "ci",
        [(f"(a) Adam's loss rises with ‖H‖₁,₁/d — {s}", HOLDS, "Table 1", "paper", "ρ") for s in settings]
        + [
            (f"(b) Adam beats AdaSGD iff … — {s}", v, "Table 1", "paper", "n")
            for s, v in zip(settings, [HOLDS, FAILS, FAILS, INCONCLUSIVE], strict=True)
        ],
    )
    _write(
        results, "thm22_equivariance", "ci", [("SGD is equivariant", HOLDS, "Theorem 2.2", "paper", "1e-16")]
    )
    _write(
        published,
        "thm22_equivariance",
        "gpu",
        [("SGD is equivariant", HOLDS, "Theorem 2.2", "paper", "2e-16")],
    )
    _write(
        results,
        "review",
        "ci",
        [
            ("Q2: more seeds", INCONCLUSIVE, "Review Q2", BOOK, "x"),
            ("Q1: another lr", HOLDS, "Review Q1", BOOK, "y"),
        ],
    )
    pages = ["thm22_equivariance", "quadratic_table1", "gpt2_figure1", "review"]
    return results, published, glance.collect(pages, results, published)


def test_collect_prefers_published_gpu(book):
    results, published, long = book
    ci = long[(long.notebook == "thm22_equivariance") & (long.scale == "ci")]
    assert ci[["where", "origin", "ours", "source"]].values.tolist() == [
        ["Theorem 2.2", "paper", "1e-16", "results"]
    ]
    gpu = long[long.scale == "gpu"]
    assert gpu["source"].tolist() == ["published"] and gpu["ours"].tolist() == ["2e-16"]


def test_summary_has_one_row_per_paper_claim_in_the_papers_order(book):
    results, _, long = book
    table, links = glance.summary(long, results)
    assert len(table) == len(glance.PAPER_CLAIMS) <= 25
    assert [c.split(":")[0] for c in table["claim"]] == list(glance.PAPER_CLAIMS)
    rows = table.set_index(table["claim"].str.split(":").str[0])
    # the book's own check (fails) does not enter Figure 1's summary
    assert rows.loc["Figure 1", "ci"] == "holds in part (holds 1 · inconclusive 1)"
    assert rows.loc["Figure 1", "key numbers (ci)"].startswith("Adam 2.13 ± 0.01")
    assert rows.loc["Table 1", "ci"] == "mixed (holds 5 · fails 2 · inconclusive 1)"
    assert rows.loc["Table 1", "key numbers (ci)"] == "(a) holds 4; (b) holds 1 · fails 2 · inconclusive 1"
    assert rows.loc["Theorem 2.2", ["ci", "gpu", "paper scale"]].tolist() == [HOLDS, HOLDS, NOT_RUN]
    assert rows.loc["Table 4", ["ci", "gpu", "paper scale"]].tolist() == [NOT_RUN] * 3
    assert (table["gpu"] == NOT_RUN).sum() == len(table) - 1
    assert links[list(glance.PAPER_CLAIMS).index("Figure 1")] == "gpt2_figure1.html#paper-vs-ours"
    md = glance.summary_markdown(long, results, link_prefix="executed/")
    assert "[Figure 1](executed/gpt2_figure1.ipynb#paper-vs-ours)" in md
    assert md.count("\n|") == len(glance.PAPER_CLAIMS) + 1
    assert md.rstrip().endswith("Scales with results: `ci`, `gpu`; not run: `paper scale`.")


def test_tally_counts_the_papers_claims_the_books_checks_and_the_review_apart(book):
    _, _, long = book
    t = glance.tally(long).set_index(["rows", "scale"])
    assert t.loc[("claims of the paper", "ci"), "total"] == 11
    assert t.loc[("the book's own checks", "ci"), FAILS] == 1
    assert t.loc[("the book's own checks", "ci"), "total"] == 1
    assert t.loc[("the review's questions", "ci"), "total"] == 2
    assert t.loc[("claims of the paper", "paper (not run)"), "total"] == 0
    assert glance.review_rows(long)["where"].tolist() == ["Review Q1", "Review Q2"]


def test_page_details_fold_table1_into_per_claim_counts(book):
    _, _, long = book
    html = glance.page_details(long, "quadratic_table1", "Table 1", fold_above=5)
    assert html.startswith('<details class="adamlinf-details">')
    assert "Verdicts per claim" in html and "<details><summary>All 8 rows</summary>" in html
    assert 'href="quadratic_table1.html#paper-vs-ours"' in html
    small = glance.page_details(long, "gpt2_figure1", "Figure 1")
    assert "Verdicts per claim" not in small and "book's checks: fails 1" in small


def test_the_result_box_says_what_ran_the_verdicts_and_links_to_the_evidence(book):
    results, _, long = book
    rows = long[(long.notebook == "gpt2_figure1") & (long.scale == "ci")]
    box = glance.result_box_text(rows, scale="ci", ran="a 4-layer GPT (a stand-in)", absent=["gpu", "paper"])
    body = box.split("\n\n")[1:]
    assert box.startswith(":::{admonition} Result\n:class: adamlinf-result")
    assert len(body) == 3  # what ran; the verdicts; what did not run and the link
    assert "Figure 1: **holds in part** (holds 1 · inconclusive 1)" in box
    assert "Not holding: AdaSGD beats rotated Adam (**inconclusive**)." in box
    assert "**Ran at `ci`:** a 4-layer GPT (a stand-in)." in box
    assert "**The book's own checks:** fails 1." in box
    assert "**Not run:** `gpu`, `paper` (no results are published for this page yet)" in box
    assert "(#paper-vs-ours)" in box and "$" not in box
    overridden = glance.result_box_text(rows, scale="ci", ran="x", changed={"n_embd": (8, 64)})
    assert "**Not the `ci` parameters**" in overridden and "n_embd=8 (scale's value 64)" in overridden


def test_overrides_are_found_and_labelled_in_the_summary(tmp_path):
    from adamlinf import run

    results = tmp_path / "results"
    _write(results, "gpt2_figure1", "ci", [("Adam beats AdaSGD", HOLDS, "Figure 1", "paper", "x")])
    prov = results / "gpt2_figure1" / "ci" / "verdicts.csv.provenance.json"
    record = json.loads(prov.read_text())
    canonical = {**run.parameter_defaults("gpt2_figure1"), **run.load_parameters("gpt2_figure1", "ci")}
    record["parameters"] = {**canonical, "scale": "ci", "results_dir": "elsewhere"}
    prov.write_text(json.dumps(record))
    assert glance.overrides("gpt2_figure1", "ci", results) == {}  # the runner's own keys do not count
    record["parameters"].update(n_embd=8, seeds=[3, 4])
    prov.write_text(json.dumps(record))
    changed = glance.overrides("gpt2_figure1", "ci", results)
    assert changed == {"n_embd": (8, canonical["n_embd"]), "seeds": ([3, 4], canonical["seeds"])}
    long = glance.collect(["gpt2_figure1"], results, tmp_path / "published")
    table, _ = glance.summary(long, results)
    assert table.loc[list(glance.PAPER_CLAIMS).index("Figure 1"), "ci"] == "holds with overrides"


def test_a_verdict_file_of_an_older_format_names_the_page_to_rerun(tmp_path):
    folder = tmp_path / "gpt2_figure1" / "ci"
    folder.mkdir(parents=True)
    (folder / "verdicts.csv").write_text("claim,paper,ours,verdict,rule,scale,page\nc,p,o,holds,r,ci,x\n")
    with pytest.raises(ValueError, match=r"lacks the columns \['origin', 'where'\].*re-run gpt2_figure1"):
        glance.collect(["gpt2_figure1"], tmp_path, tmp_path / "published")
