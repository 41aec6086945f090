"""The "Results at a glance" page: every claim the book checks, its verdict at each scale.

Each notebook ends with a verdict table saved by :func:`adamlinf.studies.verdicts.save_verdicts` to
``results/<notebook>/<scale>/verdicts.csv``; the GPU-scale results committed with the book sit in
``published/<notebook>/gpu/verdicts.csv``. This module gathers them into one table, one row per
claim and one column per scale, with the verdict words of :mod:`adamlinf.studies.verdicts`
(holds / fails / inconclusive / not run) and a link to the page that shows the evidence.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from adamlinf.results import PUBLISHED_ROOT, REPO_ROOT, RESULTS_ROOT
from adamlinf.studies.verdicts import NOT_RUN, VERDICTS, VERDICTS_FILE

#: Scales in the order the page shows them; ``paper`` is the paper's own sizes.
SCALES = ("ci", "gpu", "paper")
#: Column header of each scale (``paper`` would clash with the column of the paper's claim).
SCALE_HEADERS = {"ci": "ci", "gpu": "gpu", "paper": "paper scale"}

_TITLE = re.compile(r"^#\s+#\s+(.+?)\s*$", re.M)


def page_title(notebook: str, sources: Path | None = None) -> str:
    """The title of a notebook's page: the first ``# # Title`` line of its jupytext source."""
    path = Path(sources or REPO_ROOT / "book" / "notebooks") / f"{notebook}.py"
    try:
        m = _TITLE.search(path.read_text())
    except OSError:
        m = None
    return m.group(1) if m else notebook


def collect(
    notebooks: Sequence[str],
    results_root: Path | str | None = None,
    published_root: Path | str | None = None,
) -> pd.DataFrame:
    """All verdicts of ``notebooks``, one row per (notebook, scale, claim).

    The ``gpu`` scale is read from ``published/`` when results were published there, else from
    ``results/`` (a local run); the other scales from ``results/``.

    Args:
        notebooks: Notebook names, in book order.
        results_root: The ``results/`` folder.
        published_root: The ``published/`` folder.

    Returns:
        Columns ``notebook, scale, claim, paper, ours, verdict, source`` (``source`` is
        ``results`` or ``published``).
    """
    results_root = Path(results_root or RESULTS_ROOT)
    published_root = Path(published_root or PUBLISHED_ROOT)
    frames = []
    for name in notebooks:
        for scale in SCALES:
            candidates = [(results_root / name / scale / VERDICTS_FILE, "results")]
            if scale == "gpu":
                candidates.insert(0, (published_root / name / scale / VERDICTS_FILE, "published"))
            for path, source in candidates:
                if path.exists():
                    df = pd.read_csv(path, keep_default_na=False)
                    frames.append(
                        pd.DataFrame(
                            {
                                "notebook": name,
                                "scale": scale,
                                "claim": df["claim"].astype(str),
                                "paper": df.get("paper", pd.Series([""] * len(df))).astype(str),
                                "ours": df.get("ours", pd.Series([""] * len(df))).astype(str),
                                "verdict": df["verdict"].astype(str),
                                "source": source,
                            }
                        )
                    )
                    break
    columns = ["notebook", "scale", "claim", "paper", "ours", "verdict", "source"]
    if not frames:
        return pd.DataFrame(columns=columns)
    out = pd.concat(frames, ignore_index=True)
    bad = sorted(set(out["verdict"]) - set(VERDICTS))
    if bad:
        raise ValueError(f"unknown verdict words {bad}; expected one of {VERDICTS}")
    return out[columns]


def overview(
    long: pd.DataFrame, notebooks: Sequence[str], sources: Path | None = None
) -> tuple[pd.DataFrame, list[str]]:
    """One row per claim, one verdict column per scale that has results anywhere.

    Args:
        long: The output of :func:`collect`.
        notebooks: Notebook names in book order (a notebook without any verdicts still gets a row,
            "not run" at every scale).
        sources: Folder of the notebook sources (for page titles).

    Returns:
        The table (columns ``page``, ``claim``, ``paper``, then one per scale: ``ci`` always, ``gpu``
        and ``paper scale`` when some notebook has results there) and each row's link target
        (``<notebook>.html``, a sibling of the glance page). A page's title and link appear on its
        first row only.
    """
    scales = [s for s in SCALES if s == "ci" or (not long.empty and (long["scale"] == s).any())]
    rows, links = [], []
    for name in notebooks:
        mine = long[long["notebook"] == name]
        title = page_title(name, sources)
        claims = list(dict.fromkeys(mine["claim"])) if not mine.empty else []
        if not claims:
            rows.append(
                {"page": title, "claim": "(no verdicts recorded yet)", "paper": ""}
                | {SCALE_HEADERS[s]: NOT_RUN for s in scales}
            )
            links.append(f"{name}.html")
            continue
        for i, claim in enumerate(claims):
            same = mine[mine["claim"] == claim]
            # the page's title and link on its first claim only: the rows below it belong to it
            row = {
                "page": title if i == 0 else "",
                "claim": claim,
                "paper": next((p for p in same["paper"] if p), ""),
            }
            for s in scales:
                hit = same[same["scale"] == s]
                row[SCALE_HEADERS[s]] = hit["verdict"].iloc[0] if not hit.empty else NOT_RUN
            rows.append(row)
            links.append(f"{name}.html" if i == 0 else "")
    columns = ["page", "claim", "paper"] + [SCALE_HEADERS[s] for s in scales]
    return pd.DataFrame(rows, columns=columns), links


def verdict_columns(table: pd.DataFrame) -> tuple[str, ...]:
    """The columns of an :func:`overview` table that hold verdict words (one per scale)."""
    return tuple(c for c in table.columns if c in SCALE_HEADERS.values())


def tally(table: pd.DataFrame) -> pd.DataFrame:
    """How many claims hold, fail, are inconclusive or were not run, per scale column."""
    scale_cols = list(verdict_columns(table))
    counts = {c: table[c].value_counts() for c in scale_cols}
    return pd.DataFrame(
        [{"scale": c} | {v: int(counts[c].get(v, 0)) for v in VERDICTS} for c in scale_cols],
        columns=["scale", *VERDICTS],
    )
