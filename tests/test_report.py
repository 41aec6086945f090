"""The book's number, table and figure helpers (adamlinf.report)."""

from __future__ import annotations

import math
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from adamlinf import report  # noqa: E402


@pytest.mark.parametrize(
    ("x", "digits", "text"),
    [
        (3.933405e-35, 3, "3.93e-35"),
        (6.810372e-04, 3, "6.81e-4"),
        (0.0012345, 3, "0.00123"),
        (1.23456, 3, "1.23"),
        (1.23456, 4, "1.235"),
        (12.3456, 3, "12.3"),
        (123.456, 3, "123"),
        (1234.56, 3, "1230"),
        (0.99999999, 3, "1"),  # round-off does not print as 1.000 beside an exact 1
        (99999.5, 3, "1.00e5"),
        (123456.0, 3, "1.23e5"),
        (-0.5, 3, "-0.500"),
        (2.0, 3, "2"),
        (7, 3, "7"),
        (0.0, 3, "0"),
        (True, 3, "yes"),
        (None, 3, "—"),
        (math.nan, 3, "—"),
        (math.inf, 3, "∞"),
        (-math.inf, 3, "−∞"),
        ("text", 3, "text"),
    ],
)
def test_fmt(x, digits, text):
    assert report.fmt(x, digits) == text


@pytest.mark.parametrize(
    ("mean", "spread", "text"),
    [
        (1.2345, 0.0051, "1.2345 ± 0.0051"),
        (2.0351, 0.0123, "2.035 ± 0.012"),
        (2.0, 0.0099999999, "2.000 ± 0.010"),  # round-off in the spread does not add a digit
        (123.4, 5.6, "123.4 ± 5.6"),
        (-1.2345, 0.05, "-1.234 ± 0.050"),
        (1e-5, 2e-6, "1.00e-5 ± 2.0e-6"),
        (5.0, 0.0, "5 ± 0"),
        (1.5, math.nan, "1.50"),
    ],
)
def test_pm(mean, spread, text):
    assert report.pm(mean, spread) == text


def test_table_has_no_index_no_truncation_and_escapes():
    long = "loss grows with ‖H‖₁,₁ and < AdaSGD iff ‖H‖₁,₁/d < ‖H‖₂ " * 4
    df = pd.DataFrame(
        {"claim": [long, "short"], "value": [3.933405e-35, 1.23456], "verdict": ["holds", "fails"]},
        index=[10, 11],
    )
    html = report.table(df, "Paper vs ours, ci scale", digits={"value": 2}, display=False).data
    assert "<caption>Paper vs ours, ci scale</caption>" in html
    assert "&lt; AdaSGD" in html and "..." not in html and "…" not in html
    assert long.strip().replace("<", "&lt;") in html  # the whole cell, untruncated
    assert "3.9e-35" in html and "1.2<" in html
    assert ">10<" not in html and ">11<" not in html  # no index column
    assert re.findall(r"<th>(.*?)</th>", html) == ["claim", "value", "verdict"]
    assert 'data-verdict="holds"' in html and 'class="adamlinf-wrap"' in html


def test_table_links():
    df = pd.DataFrame({"page": ["Figure 1"], "verdict": ["holds"]})
    html = report.table(df, links={"page": ["gpt2_figure1.html"]}, display=False).data
    assert '<a href="gpt2_figure1.html">Figure 1</a>' in html


def test_figure_needs_a_caption_and_a_readable_width():
    report.style()
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot([0, 1], [0, 1], label="Adam")
    ax.legend()
    html = report.figure(
        fig, "Loss against step at ci scale; the paper: Adam is fastest.", alt="two lines", display=False
    ).data
    assert html.startswith('<figure class="adamlinf-figure">') and "data:image/png;base64," in html
    assert 'alt="two lines"' in html
    assert "<figcaption>Loss against step at ci scale; the paper: Adam is fastest.</figcaption>" in html
    assert plt.rcParams["legend.fontsize"] >= 9 and plt.rcParams["xtick.labelsize"] >= 9
    with pytest.raises(ValueError, match="caption"):
        report.figure(plt.figure(figsize=(4, 3)), "", display=False)
    with pytest.raises(ValueError, match="wide"):
        report.figure(plt.figure(figsize=(12, 3)), "too wide", display=False)
    plt.close("all")


def test_markdown_refuses_tex():
    assert report.markdown("‖H‖₁,₁ / d < ‖H‖₂", display=False).data == "‖H‖₁,₁ / d < ‖H‖₂"
    for text in ("$x$", r"\|H\|"):
        with pytest.raises(ValueError, match="TeX"):
            report.markdown(text, display=False)


def test_displayed_helpers_return_nothing_to_show_twice(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    df = pd.DataFrame({"a": [1.0]})
    assert report.table(df, "one table") is None
    assert report.markdown("one paragraph") is None
    fig = plt.figure(figsize=(3, 2))
    assert report.figure(fig, "one figure") is None
    assert len(shown) == 3


def test_saved_paths_do_not_print_in_notebooks(tmp_path):
    from IPython.core.formatters import DisplayFormatter

    from adamlinf.results import save_json, save_table

    path = save_table(pd.DataFrame({"a": [1]}), tmp_path / "t.csv")
    assert path == tmp_path / "t.csv" and path.read_text() == "a\n1\n"
    assert save_json({"x": 1}, tmp_path / "x.json").read_text().startswith("{")
    data, _ = DisplayFormatter().format(path)
    assert data == {}  # IPython shows nothing for it


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("measured_slope_se", "measured slope s.e."),
        ("thm311_ratio_max", "Thm 3.11 ratio max"),
        ("bound_linf", "bound ℓ∞"),
        ("l11_per_dim", "‖H‖₁,₁/d"),
        ("sum_H", "Σᵢ Hᵢ"),
        ("verdict", "verdict"),
        ("ci checks", "ci checks"),
    ],
)
def test_headers_read_as_words_not_snake_case(name, text):
    assert report.header(name) == text


def test_table_headers_are_readable():
    df = pd.DataFrame({"measured_slope_se": [0.01], "best_lr": [1e-3], "verdict": ["holds"]})
    html = report.table(df, display=False, digits={"best_lr": 2}).data
    assert re.findall(r"<th>(.*?)</th>", html) == ["measured slope s.e.", "best lr", "verdict"]
    assert "_" not in "".join(re.findall(r"<th>(.*?)</th>", html))
    assert ">0.0010<" in html or ">1.0e-3<" in html  # the per-column digits still key on the name
