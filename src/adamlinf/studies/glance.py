"""What the book found: the "Results at a glance" summary and the result box on every page.

It reads only the verdict files (``results/<notebook>/<scale>/verdicts.csv``, ``published/<notebook>/gpu/``),
so it cannot drift from the pages; the book's checks and the review's questions are counted apart.
"""

from __future__ import annotations

import contextlib
import functools
import html
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from adamlinf import report, run
from adamlinf.results import PUBLISHED_ROOT, REPO_ROOT, RESULTS_ROOT, final_dir, read_provenance, save_json
from adamlinf.studies import verdicts as V

#: Scales in the order the pages show them; ``paper`` is the paper's own sizes.
SCALES = ("ci", "gpu", "paper")
#: Column header of each scale (``paper`` alone would read as "the paper's value").
SCALE_HEADERS = {"ci": "ci", "gpu": "gpu", "paper": "paper scale"}

#: The claims of the paper in its order: ``where`` → (the notebook that checks it, the paper's words).
PAPER_CLAIMS: dict[str, tuple[str, str]] = {
    "Theorem 2.2": (
        "thm22_equivariance",
        "SGD and AdaSGD are rotation-equivariant; Adam and SignGD only permutation-equivariant",
    ),
    "Theorem 3.2": ("thm32_signgd", "SignGD converges at a rate set by ℓ∞-smoothness"),
    "Theorem 3.5": (
        "thm35_rmsprop",
        "RMSProp (Adam, β₁ = 0) converges at a rate set by coordinate-wise ℓ∞-smoothness",
    ),
    "Theorem 3.11": ("thm311_blockwise", "blockwise Adam converges at a rate set by Φ-smoothness"),
    "Theorem 4.1": ("thm41_estimator", "Cauchy probes estimate ‖H‖₁,₁ with error shrinking like n^(−1/2)"),
    "Table 1": (
        "quadratic_table1",
        "rotated quadratics: Adam slows as ‖H‖₁,₁/d grows and beats AdaSGD when ‖H‖₁,₁/d < ‖H‖₂",
    ),
    "Figure 1": ("gpt2_figure1", "GPT-2: Adam beats AdaSGD, both beat rotated Adam, SGD is slowest"),
    "Table 2": ("gpt2_table2", "GPT-2: a smaller ‖H‖₁,₁/d goes with faster training"),
    "Figure 3": ("gpt2_figure3", "GPT-2 at other learning rates: the ordering of Figure 1 persists"),
    "Table 3": ("resnet_table3", "ResNet18: Adam beats AdaSGD, and both beat rotated Adam and SGD"),
    "Figure 4": ("resnet_figure4", "ResNet18 curves at one batch size: the ordering of Table 3"),
    "Table 4": ("resnet_table4", "ResNet18: a smaller ‖H‖₁,₁/d goes with faster training"),
}
#: Anchor of every page's "Paper vs ours" section (the evidence the summary links to).
EVIDENCE = "paper-vs-ours"
#: The evidence a result box links to unless a page names another: (anchor, section title).
SECTION = (EVIDENCE, "Paper vs ours")
#: The ``{glue:md}`` key of a page's result box.
BOX_KEY = "result_box"
#: What a page ran, written by :func:`result_box` beside its verdicts.
PAGE_FILE = "page.json"


def page_title(notebook: str) -> str:
    """The title of a notebook's page: the first ``# # Title`` line of its jupytext source."""
    source = (REPO_ROOT / "book" / "notebooks" / f"{notebook}.py").read_text()
    return re.search(r"^#\s+#\s+(.+?)\s*$", source, re.M).group(1)


COLUMNS = ["notebook", "scale", "claim", "where", "origin", "paper", "ours", "verdict", "rule", "source"]


def collect(
    notebooks: Sequence[str], results_root: Path | str | None = None, published_root: Path | str | None = None
) -> pd.DataFrame:
    """All verdict rows of ``notebooks`` (:data:`COLUMNS`); ``gpu`` from ``published/`` when published."""
    results_root = Path(results_root or RESULTS_ROOT)
    published_root = Path(published_root or PUBLISHED_ROOT)
    frames = []
    for name in notebooks:
        for scale in SCALES:
            roots = [("published", published_root)] if scale == "gpu" else []
            for source, root in [*roots, ("results", results_root)]:
                path = root / name / scale / V.VERDICTS_FILE
                if path.exists():
                    df = pd.read_csv(path, keep_default_na=False, dtype=str)  # save_verdicts checked it
                    if missing := sorted(set(COLUMNS) - {"notebook", "scale", "source"} - set(df.columns)):
                        raise ValueError(f"{path} lacks the columns {missing} (older format): re-run {name}")
                    frames.append(df.assign(notebook=name, scale=scale, source=source)[COLUMNS])
                    break
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)


def overrides(
    notebook: str, scale: str, results_root: Path | str | None = None, *, folder: Path | str | None = None
) -> dict[str, tuple[object, object]]:
    """``{parameter: (applied, the scale's value)}`` of the recorded parameters that left the scale's."""
    folder = Path(folder) if folder is not None else Path(results_root or RESULTS_ROOT) / notebook / scale
    record = read_provenance(folder / V.VERDICTS_FILE) or read_provenance(folder) or {}
    applied = record.get("parameters") or {}
    canonical = {**run.parameter_defaults(notebook), **run.load_parameters(notebook, scale)}

    canon = functools.partial(json.dumps, sort_keys=True, default=str)  # compare as the JSON record does
    out = {}
    for k, v in applied.items():
        if k in canonical and k not in ("scale", "results_dir") and canon(v) != canon(canonical[k]):
            out[k] = (v, canonical[k])
    for k, v in (record.get("overrides") or {}).items():
        out.setdefault(k, (v, canonical.get(k)))
    return out


def overrides_text(changed: Mapping[str, tuple[object, object]]) -> str:
    """``"n_embd=8 (scale's value 64), …"``: what ``--set`` (or papermill's ``-p``) changed."""
    return ", ".join(f"{k}={v!r} (scale's value {c!r})" for k, (v, c) in changed.items())


def counts_text(verdicts: Sequence[str]) -> str:
    """``"holds 4 · fails 1 · inconclusive 2"`` (verdicts that occur, in the book's order)."""
    counts = pd.Series(list(verdicts), dtype=str).value_counts()
    return " · ".join(f"{v} {int(counts[v])}" for v in V.VERDICTS if counts.get(v, 0))


def verdict_text(verdicts: Sequence[str]) -> str:
    """The summary verdict with counts: ``"mixed (holds 2 · fails 1)"``, ``"holds (all 8)"``, ``"fails"``."""
    summary = V.aggregate(verdicts)
    ran = [v for v in verdicts if v != V.NOT_RUN]
    if summary in V.VERDICTS:
        return f"{summary} (all {len(ran)})" if len(ran) > 1 else summary
    return f"{summary} ({counts_text(ran)})"


def _per_claim(rows: pd.DataFrame) -> dict[str, pd.DataFrame] | None:
    """``{claim: rows}`` when a claim (a row's text before " — setting") has several rows, else None."""
    groups = [c.split(" — ", 1)[0].strip() for c in rows["claim"]]
    if len(set(groups)) == len(groups):
        return None
    return {g: rows[[x == g for x in groups]] for g in dict.fromkeys(groups)}


def key_numbers(rows: pd.DataFrame, limit: int = 140) -> str:
    """The deciding numbers in a line: counts per claim, or the first row's ``ours`` cut near ``limit``."""
    ran = rows[rows["verdict"] != V.NOT_RUN]
    if ran.empty:
        return "—"
    per_claim = _per_claim(ran)
    if per_claim:
        labels = [m.group(0) if (m := re.match(r"^\([a-z0-9]+\)", g)) else g for g in per_claim]
        if len(set(labels)) < len(labels):  # labels that repeat say nothing: the claims' words
            labels = list(per_claim)
        counts = [counts_text(mine["verdict"]) for mine in per_claim.values()]
        return "; ".join(f"{label} {c}" for label, c in zip(labels, counts, strict=True))
    text = str(ran["ours"].iloc[0]) or "—"
    if len(text) > limit and ";" in text[:limit]:
        text = text[: text[:limit].rindex(";")]
    return text


def read_page(notebook: str, scale: str, results_root: Path | str | None = None) -> dict:
    """What a page recorded about its run (:data:`PAGE_FILE`): ``ran``, ``scale``; ``{}`` if absent."""
    path = Path(results_root or RESULTS_ROOT) / notebook / scale / PAGE_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def upstream_ran(results_dir: str | Path, notebook: str) -> str:
    """What another page ran at the same scale (a page that reads its runs says so)."""
    final = final_dir(results_dir)
    return read_page(notebook, final.name, final.parent.parent).get("ran") or f"the runs of {notebook}"


def summary(
    long: pd.DataFrame, results_root: Path | None = None, *, link_prefix: str = "", link_suffix: str = ".html"
) -> tuple[pd.DataFrame, list[str]]:
    """One row per claim of the paper (:data:`PAPER_CLAIMS`): its verdict per scale; and the links."""
    paper_rows = long[long["origin"] == V.PAPER]
    rows, links = [], []
    for where, (page, words) in PAPER_CLAIMS.items():
        mine = paper_rows[paper_rows["where"] == where]
        notebook = mine["notebook"].iloc[0] if not mine.empty else page
        ran = read_page(notebook, "ci", results_root).get("ran", "")
        row = {"claim": f"{where}: {words}", "what ran (ci)": ran}
        for s in SCALES:
            row[SCALE_HEADERS[s]] = verdict_text(mine.loc[mine["scale"] == s, "verdict"].tolist())
            if s == "ci" and row["ci"] != V.NOT_RUN and overrides(notebook, s, results_root):
                row["ci"] += " with overrides"
        row["key numbers (ci)"] = key_numbers(mine[mine["scale"] == "ci"])
        rows.append(row)
        links.append(f"{link_prefix}{notebook}{link_suffix}#{EVIDENCE}")
    columns = ["claim", "what ran (ci)", *SCALE_HEADERS.values(), "key numbers (ci)"]
    return pd.DataFrame(rows, columns=columns), links


def summary_markdown(long: pd.DataFrame, results_root: Path | None = None, link_prefix: str = "") -> str:
    """The summary as a short MyST table (claim, verdict per scale) linking to each page's evidence."""
    table, links = summary(long, results_root, link_prefix=link_prefix, link_suffix=".ipynb")
    head = ["claim of the paper", *SCALE_HEADERS.values()]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (_, row), link in zip(table.iterrows(), links, strict=True):
        where, _, words = row["claim"].partition(": ")
        cells = [f"[{where}]({link}): {words}", *(row[h] for h in SCALE_HEADERS.values())]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    ran = [SCALE_HEADERS[s] for s in SCALES if (long["scale"] == s).any()]
    absent = [SCALE_HEADERS[s] for s in SCALES if SCALE_HEADERS[s] not in ran]
    not_run = f"; not run: {', '.join(f'`{s}`' for s in absent)}" if absent else ""
    lines += ["", "Scales with results: " + (", ".join(f"`{s}`" for s in ran) or "none") + not_run + "."]
    return "\n".join(lines) + "\n"


def tally(long: pd.DataFrame) -> pd.DataFrame:
    """Rows per verdict and scale: the paper's claims, the book's checks and the review's apart."""
    review = _is_review(long)
    kinds = {"claims of the paper": (long["origin"] == V.PAPER) & ~review}
    kinds["the book's own checks"] = (long["origin"] == V.BOOK) & ~review
    if review.any():
        kinds["the review's questions"] = review
    ran = set(long["scale"])
    out = []
    for label, mask in kinds.items():
        for s in SCALES:
            sub = long[mask & (long["scale"] == s)]
            counts = sub["verdict"].value_counts()
            row = {"rows": label, "scale": s if s in ran else f"{s} (not run)"}
            out.append(row | {v: int(counts.get(v, 0)) for v in V.VERDICTS} | {"total": len(sub)})
    return pd.DataFrame(out, columns=["rows", "scale", *V.VERDICTS, "total"])


def _is_review(long: pd.DataFrame) -> pd.Series:
    """The rows that answer the review's questions: their ``where`` starts with "Review"."""
    return long["where"].astype(str).str.startswith("Review")


def review_rows(long: pd.DataFrame) -> pd.DataFrame:
    """The rows that answer the review's questions (``where`` = "Review Q1" …), in question order."""
    rows = long[_is_review(long)].copy()
    rows["_q"] = [int(m.group(1)) if (m := re.search(r"(\d+)", w)) else 0 for w in rows["where"]]
    return rows.sort_values(["_q", "scale"], kind="stable").drop(columns="_q")


def page_details(long: pd.DataFrame, notebook: str, title: str, *, fold_above: int = 12) -> str:
    """A page's rows as an HTML drop-down, with per-claim counts above ``fold_above`` repeated rows."""
    mine = long[long["notebook"] == notebook]
    paper, book = mine[mine["origin"] == V.PAPER], mine[mine["origin"] == V.BOOK]
    line = f"{html.escape(title)} — paper's claims: {counts_text(paper['verdict']) or 'none'}"
    if not book.empty:
        line += f"; book's checks: {counts_text(book['verdict'])}"
    shown = mine[["claim", "where", "origin", "ours", "verdict", "scale"]]
    full = report.table(shown, f"Every verdict row of this page ({len(mine)})", display=False).data
    anchor, section = read_page(notebook, "ci").get("evidence") or SECTION
    link = f'<p><a href="{notebook}.html#{anchor}">The evidence: the page\'s "{section}" section</a></p>'
    per_claim = _per_claim(mine)
    body = full
    if len(mine) > fold_above and per_claim:
        counts = [
            {"claim": g, "where": sub["where"].iloc[0], "origin": sub["origin"].iloc[0]}
            | {v: int((sub["verdict"] == v).sum()) for v in (V.HOLDS, V.FAILS, V.INCONCLUSIVE)}
            | {"settings": len(sub)}
            for g, sub in per_claim.items()
        ]
        caption = "Verdicts per claim, counted over the settings"
        inner = report.table(pd.DataFrame(counts), caption, display=False)
        body = inner.data + f"<details><summary>All {len(mine)} rows</summary>{full}</details>"
    return f'<details class="adamlinf-details"><summary>{line}</summary>{link}{body}</details>'


def result_box_text(
    verdicts: pd.DataFrame,
    *,
    scale: str,
    ran: str,
    absent: Sequence[str] = (),
    changed: Mapping | None = None,
    answer: str | None = None,
    evidence: tuple[str, str] = SECTION,
) -> str:
    """A page's result box in MyST: what ran, the claims' verdicts (or ``answer``), scales, overrides."""
    lines = [f"**Ran at `{scale}`:** {ran.rstrip('.')}."]
    if answer is not None:
        lines.append(answer)
    else:
        paper = verdicts[(verdicts["origin"] == V.PAPER) & ~_is_review(verdicts)]
        parts = [
            f"{where}: **{V.aggregate(rows['verdict'].tolist())}** ({counts_text(rows['verdict'])})"
            for where, rows in paper.groupby("where", sort=False)
        ]
        lines.append("**The paper's claims:** " + ("; ".join(parts) if parts else "none on this page") + ".")
        open_rows = paper[paper["verdict"].isin([V.FAILS, V.INCONCLUSIVE])]
        if 0 < len(open_rows) <= 3:
            pairs = zip(open_rows["claim"], open_rows["verdict"], strict=True)
            lines[-1] += " Not holding: " + "; ".join(f"{c} (**{v}**)" for c, v in pairs) + "."
        others = verdicts[(verdicts["origin"] == V.BOOK) | _is_review(verdicts)]
        if not others.empty:
            lines[-1] += f" **The book's own checks:** {counts_text(others['verdict'])}."
    link = f"[The evidence: {evidence[1]} ↓](#{evidence[0]})"
    if absent:
        why = " (no results are published for this page yet)" if "gpu" in absent else ""
        lines.append("**Not run:** " + ", ".join(f"`{s}`" for s in absent) + f"{why}. {link}")
    else:
        lines.append(link)
    if changed:
        text = overrides_text(changed)
        lines.insert(1, f"**Not the `{scale}` parameters** (changed with `--set` or `-p`): {text}.")
    body = "\n\n".join(lines)
    return f":::{{admonition}} Result\n:class: adamlinf-result\n\n{body}\n:::\n"


def result_box(
    notebook: str, results_dir: str | Path, *, ran: str, answer: str | None = None, evidence=SECTION
) -> str:
    """Glue a page's result box (:data:`BOX_KEY`) and record what it ran (:data:`PAGE_FILE`); last cell."""
    results_dir = Path(results_dir)  # while the runner runs the page: its staging folder
    final = final_dir(results_dir)
    scale = final.name
    verdicts = pd.DataFrame(columns=["claim", "where", "origin", "verdict"])
    if (results_dir / V.VERDICTS_FILE).exists():
        verdicts = pd.read_csv(results_dir / V.VERDICTS_FILE, keep_default_na=False, dtype=str)
    root = final.parent.parent
    found = [
        s for s in SCALES for r in (root, PUBLISHED_ROOT) if (r / notebook / s / V.VERDICTS_FILE).exists()
    ]
    absent = [s for s in SCALES if s != scale and s not in found]
    changed = overrides(notebook, scale, root, folder=results_dir)
    text = result_box_text(
        verdicts, scale=scale, ran=ran, absent=absent, changed=changed, answer=answer, evidence=evidence
    )
    if "$" in text or "\\" in text:
        raise ValueError("a result box must not hold TeX ($ or backslash); write it in Unicode")
    page = dict(notebook=notebook, scale=scale, ran=ran, overrides=list(changed), evidence=list(evidence))
    save_json(page, results_dir / PAGE_FILE)
    with contextlib.suppress(ImportError):  # a plain-Python run (adamlinf.publish): nothing to glue into
        from IPython.display import Markdown
        from myst_nb import glue

        glue(BOX_KEY, Markdown(text), display=False)
    return text
