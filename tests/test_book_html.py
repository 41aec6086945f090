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
