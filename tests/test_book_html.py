"""Checks of the built book (``_build/html``), as a reader's browser would show it.

Skipped when the book has not been built (``make book``), unless ``ADAMLINF_BOOK_HTML_REQUIRED=1`` (CI,
after ``make book``); ``ADAMLINF_BOOK_HTML`` points the checks at another build. Each check collects
every offending page and element, so one run lists them all.
"""

from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

bs4 = pytest.importorskip("bs4")

ROOT = Path(__file__).resolve().parents[1]
HTML = Path(os.environ.get("ADAMLINF_BOOK_HTML", ROOT / "_build" / "html"))

if os.environ.get("ADAMLINF_BOOK_HTML_REQUIRED") and not (HTML / "index.html").exists():
    raise RuntimeError(f"ADAMLINF_BOOK_HTML_REQUIRED is set but the book is not built ({HTML})")

pytestmark = pytest.mark.skipif(
    not (HTML / "index.html").exists(), reason=f"the book is not built ({HTML}): run make book"
)

#: Elements whose text is not prose: code, scripts, typeset or to-be-typeset mathematics.
NOT_PROSE = ("script", "style", "code", "pre", "textarea", "mjx-container", "math", "kbd", "samp")
MATH_CLASSES = {"math", "MathJax", "MathJax_Preview", "mathjax_process", "highlight"}
DELIMITERS = re.compile(r"\$|\\\(|\\\)|\\\[|\\\]|\\[A-Za-z]+\b")
ABSOLUTE_PATH = re.compile(
    r"(?<![\w.~-])/(?:home|root|tmp|work|Users|usr|opt|var|mnt|private|srv)/\S|"
    r"\b[A-Z]:\\\\|PosixPath\("
)
NOISE = re.compile(r"Traceback|\b\w*Warning\b")
#: pandas truncation ("‖H‖₁,₁/...", "NOT RECO…"); a mathematical "√(…)" or "x₁, …, xₙ" is fine.
ELLIPSIS = re.compile(r"\.\.\.|\w…")


def _pages() -> list[Path]:
    skip = {"_static", "_sources", "_images", "_downloads", "_sphinx_design_static"}
    pages = (p for p in HTML.rglob("*.html") if not skip & set(p.relative_to(HTML).parts))
    # index.html only redirects to the first page
    return sorted(
        p for p in pages if 'http-equiv="refresh"' not in p.read_text(encoding="utf-8")[:2000].lower()
    )


@cache
def _soup(path: Path):
    return bs4.BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


def _article(path: Path):
    soup = _soup(path)
    return soup.select_one("article") or soup.select_one("main") or soup.body


def _in_math_or_code(node) -> bool:
    for parent in node.parents:
        if parent.name in NOT_PROSE:
            return True
        if MATH_CLASSES & set(parent.get("class") or []):
            return True
    return False


def _rel(path: Path) -> str:
    return str(path.relative_to(HTML))


def _report(problems: list[str], what: str) -> None:
    if problems:
        shown = "\n  ".join(problems[:40])
        more = f"\n  ... and {len(problems) - 40} more" if len(problems) > 40 else ""
        pytest.fail(f"{len(problems)} {what}:\n  {shown}{more}", pytrace=False)


def test_pages_exist():
    assert len(_pages()) > 5, f"only {len(_pages())} pages under {HTML}"


def test_no_math_delimiters_outside_math():
    """Raw TeX in prose means MathJax did not get it: a mis-paired $$, TeX in generated text."""
    problems = []
    for page in _pages():
        if page.name in ("search.html", "genindex.html"):
            continue
        for text in _article(page).find_all(string=True):
            if isinstance(text, bs4.element.Comment) or _in_math_or_code(text):
                continue
            m = DELIMITERS.search(text)
            if m:
                start = max(0, m.start() - 40)
                problems.append(f"{_rel(page)}: {text[start : m.end() + 40].strip()!r}")
    _report(problems, "math delimiters outside math elements")


def test_mathjax_is_local_and_no_script_needs_the_network():
    problems = []
    assert (HTML / "_static" / "mathjax" / "tex-chtml.js").exists(), (
        "MathJax is not bundled in _static/mathjax"
    )
    for page in _pages():
        soup = _soup(page)
        for tag in soup.find_all(["script", "link", "img", "iframe"]):
            url = tag.get("src") or tag.get("href") or ""
            if tag.name == "link" and "stylesheet" not in (tag.get("rel") or []):
                continue
            if url.startswith(("http:", "https:", "//")):
                problems.append(f"{_rel(page)}: <{tag.name}> loads {url}")
        if soup.select_one("span.math, div.math"):
            local = [s["src"] for s in soup.find_all("script", src=True) if "mathjax" in s["src"].lower()]
            if not local or not all((page.parent / urlsplit(u).path).exists() for u in local):
                problems.append(f"{_rel(page)}: has math but no local MathJax script ({local})")
    _report(problems, "remote or missing scripts")


def test_no_truncated_table_cells():
    problems = []
    for page in _pages():
        for cell in _article(page).find_all(["td", "th"]):
            text = " ".join(t for t in cell.find_all(string=True) if not _in_math_or_code(t)).strip()
            if ELLIPSIS.search(text):
                problems.append(f"{_rel(page)}: {text[:80]!r}")
    _report(problems, "table cells with '...' or '…'")


def test_outputs_hold_no_paths_tracebacks_or_warnings():
    problems = []
    for page in _pages():
        for out in _article(page).select("div.cell_output, div.output"):
            text = out.get_text(" ", strip=True)
            for pattern, what in ((ABSOLUTE_PATH, "machine path or path repr"), (NOISE, "traceback/warning")):
                m = pattern.search(text)
                if m:
                    start = max(0, m.start() - 40)
                    problems.append(f"{_rel(page)}: {what}: {text[start : m.end() + 40]!r}")
    _report(problems, "outputs with build noise")


def test_every_output_figure_has_a_caption_and_alt_text():
    problems = []
    for page in _pages():
        for img in _article(page).select("div.cell_output img, div.output img"):
            figure = img.find_parent("figure")
            caption = figure.find("figcaption") if figure else None
            if caption is None or not caption.get_text(strip=True):
                problems.append(f"{_rel(page)}: figure without caption ({(img.get('src') or '')[:60]})")
            alt = (img.get("alt") or "").strip()
            if not alt or re.search(r"\.(png|svg|jpe?g)$", alt) or alt.startswith(("../", "_images")):
                problems.append(f"{_rel(page)}: figure without alt text ({alt[:60]!r})")
    _report(problems, "figures without caption or alt text")


def test_internal_links_resolve():
    problems = []
    ids: dict[Path, set[str]] = {}

    def anchors(path: Path) -> set[str]:
        if path not in ids:
            soup = _soup(path)
            ids[path] = {t["id"] for t in soup.find_all(id=True)} | {
                t["name"] for t in soup.find_all("a", attrs={"name": True})
            }
        return ids[path]

    for page in _pages():
        for a in _soup(page).find_all("a", href=True):
            href = a["href"]
            if href.startswith(("http:", "https:", "mailto:", "javascript:", "data:")) or href == "#":
                continue
            parts = urlsplit(href)
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                problems.append(f"{_rel(page)}: {href} (no such file)")
            elif (
                parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in anchors(target)
            ):
                problems.append(f"{_rel(page)}: {href} (no anchor #{parts.fragment})")
    _report(problems, "internal links that do not resolve")


def test_theorem_boxes_carry_the_papers_numbers_not_the_books():
    """Numbered sphinx-proof boxes ("Theorem 2") would clash with the paper's numbering."""
    problems = []
    for page in _pages():
        for title in _article(page).select("div.proof > p.admonition-title"):
            number = title.select_one("span.caption-number")
            if number is not None and re.search(r"\d", number.get_text()):
                problems.append(f"{_rel(page)}: {title.get_text(' ', strip=True)[:80]!r}")
    _report(problems, "numbered theorem boxes (use :nonumber: and the paper's number in the title)")


def test_page_titles_are_titles():
    """Browser tabs and search results show each page's title, never a file name."""
    problems = []
    for page in _pages():
        title = (_soup(page).title.get_text(strip=True) if _soup(page).title else "").strip()
        if not title or re.search(r"\.(ipynb|md|py)\b", title) or title.startswith("<no title>"):
            problems.append(f"{_rel(page)}: {title!r}")
    index = HTML / "searchindex.js"
    if index.exists():
        for name in re.findall(
            r'"([^"]*\.ipynb)"', index.read_text(encoding="utf-8").split('"titles"', 1)[-1][:20000]
        ):
            problems.append(f"searchindex.js: title {name!r}")
    _report(problems, "pages whose title is a file name")


# ---------------------------------------------------------------------------------------------
# What the book says it found (issue 20): the glance summary, result boxes, published results
# ---------------------------------------------------------------------------------------------

EXECUTED = HTML / "book" / "executed"
PUBLISHED = ROOT / "published"
#: The section a result box links down to: "Paper vs ours" (the paper's claims) or "Verdicts" (a page
#: that answers a question of its own: the review's questions, the diagnostic).
EVIDENCE_LINK = re.compile(r"^#(paper-vs-ours|verdicts)$")
#: Longest glance summary a reader can take in at once.
MAX_SUMMARY_ROWS = 25


def _glance_summary():
    page = EXECUTED / "glance.html"
    assert page.exists(), "no Results at a glance page (book/executed/glance.html)"
    tables = _article(page).select("div.adamlinf-table table")
    assert tables, "the glance page shows no table"
    return tables[0]


def test_glance_opens_with_a_short_summary_of_the_papers_claims():
    table = _glance_summary()
    caption = table.find("caption").get_text(" ", strip=True) if table.find("caption") else ""
    assert caption.startswith("The paper's claims"), f"the glance page opens with {caption!r}"
    rows = table.select("tbody tr")
    assert 1 <= len(rows) <= MAX_SUMMARY_ROWS, f"the glance summary has {len(rows)} rows"
    heads = [th.get_text(strip=True) for th in table.select("thead th")]
    for scale in ("ci", "gpu", "paper scale"):
        assert scale in heads, f"the glance summary has no {scale!r} column ({heads})"
    problems = [
        f"row {i}: {row.get_text(' ', strip=True)[:60]!r} links to no 'Paper vs ours' section"
        for i, row in enumerate(rows)
        if not any(a["href"].endswith("#paper-vs-ours") for a in row.find_all("a", href=True))
    ]
    _report(problems, "summary rows without a link to their evidence")


def test_every_experiment_page_opens_with_its_result_box():
    problems = []
    for page in sorted(EXECUTED.glob("*.html")):
        if page.name == "glance.html":
            continue
        article = _article(page)
        box = article.select_one("div.adamlinf-result")
        if box is None:
            problems.append(f"{_rel(page)}: no result box")
            continue
        first_cell = article.select_one("div.cell")
        if first_cell is not None and box.sourceline > first_cell.sourceline:
            problems.append(f"{_rel(page)}: the result box comes after the first code cell")
        if not box.find("a", href=EVIDENCE_LINK):
            problems.append(f"{_rel(page)}: the result box does not link down to its evidence")
    _report(problems, "experiment pages without a result box before their first code cell")


PUBLISHED_FILE = re.compile(r"\bpublished/[\w./-]+\.(?:json|csv|md)\b")
#: A paragraph that names a published file it says is still missing is not a claim that it exists.
NOT_YET = re.compile(r"does not exist|not (?:run|published|made)? ?yet|\bonce\b|\buntil\b", re.I)


def _published_verdicts(notebook: str) -> bool:
    return (PUBLISHED / notebook / "gpu" / "verdicts.csv").exists()


def test_the_book_claims_no_published_result_that_published_does_not_hold():
    problems = []
    for page in _pages():
        if page.name == "api.html":  # the API reference names default paths, it claims no result
            continue
        article = _article(page)
        text = article.get_text(" ", strip=True)
        for block in article.find_all(["p", "li", "td", "pre"]):
            said = block.get_text(" ", strip=True)
            for path in sorted(set(PUBLISHED_FILE.findall(said))):
                if not (ROOT / path).exists() and not NOT_YET.search(said):
                    problems.append(f"{_rel(page)}: cites {path}, which does not exist: {said[:80]!r}")
        if re.search(r"Published `?gpu`? results made on", text) and not _published_verdicts(page.stem):
            problems.append(
                f"{_rel(page)}: shows published gpu results, but published/{page.stem}/gpu is empty"
            )
    rows = _glance_summary().select("tbody tr")
    heads = [th.get_text(strip=True) for th in _glance_summary().select("thead th")]
    gpu = heads.index("gpu")
    for row in rows:
        cells = row.find_all("td")
        link = next((a["href"] for a in row.find_all("a", href=True)), "")
        notebook = link.split(".html")[0]
        if cells[gpu].get_text(strip=True) != "not run" and not _published_verdicts(notebook):
            problems.append(f"glance: {notebook} has a gpu verdict but published/{notebook}/gpu is empty")
    _report(problems, "claims of published results that published/ does not hold")


#: Run in each page by headless Chromium: the tables, code blocks and outputs that stick out of the
#: text column or scroll sideways (clipped on a screenshot and a printout).
_OVERFLOW_JS = """
<script>
function measure() {
  const col = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
  const right = col.getBoundingClientRect().right;
  const bad = [];
  for (const el of col.querySelectorAll('table, pre, div.highlight, div.adamlinf-table, img')) {
    const r = el.getBoundingClientRect();
    if (r.width === 0) continue;
    const scrolls = el.scrollWidth > el.clientWidth + 2 && getComputedStyle(el).overflowX !== 'visible';
    if (r.right > right + 2 || scrolls) {
      bad.push(el.tagName.toLowerCase() + ': ' + (el.innerText || el.alt || '').trim().slice(0, 60));
    }
  }
  const out = document.createElement('pre');
  out.id = 'adamlinf-overflow';
  out.textContent = JSON.stringify(bad);
  document.body.appendChild(out);
}
// measure after the page (and MathJax's typesetting) settled
window.addEventListener('load', () => setTimeout(measure, 1500));
</script>
"""


def _chromium() -> str | None:
    import shutil

    for name in (os.environ.get("CHROMIUM", ""), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


@pytest.mark.skipif(_chromium() is None, reason="needs headless Chromium (apt-get install chromium)")
def test_no_table_or_code_block_overflows_its_column(tmp_path):
    import json
    import subprocess

    problems = []
    # the book's own pages (book/…); Sphinx's generated indices hold no tables or code of the book
    pages = [p for p in _pages() if p.relative_to(HTML).parts[0] == "book"]
    for page in pages:
        probe = page.with_name(f".overflow-probe-{page.name}")
        probe.write_text(page.read_text(encoding="utf-8").replace("</body>", _OVERFLOW_JS + "</body>"))
        dom = ""
        try:
            for attempt in range(2):  # a Chromium start can fail on a loaded machine: once more
                if "adamlinf-overflow" in dom:
                    break
                dom = subprocess.run(
                    [
                        _chromium(),
                        "--headless",
                        "--no-sandbox",
                        "--disable-gpu",
                        "--no-first-run",
                        f"--user-data-dir={tmp_path / f'profile-{page.stem}-{attempt}'}",
                        "--window-size=1400,1000",
                        "--virtual-time-budget=10000",
                        "--dump-dom",
                        probe.as_uri(),
                    ],
                    capture_output=True,
                    text=True,
                    timeout=120,
                ).stdout
        finally:
            probe.unlink(missing_ok=True)
        m = re.search(r'<pre id="adamlinf-overflow">(.*?)</pre>', dom, re.S)
        if m is None:
            problems.append(f"{_rel(page)}: the overflow probe did not run")
            continue
        for item in json.loads(bs4.BeautifulSoup(m.group(1), "html.parser").get_text()):
            problems.append(f"{_rel(page)}: {item}")
    _report(problems, "tables, code blocks or images wider than the text column")
