"""How the book shows numbers: one table helper, one figure helper, one number format.

Every table on a book page goes through :func:`table` and every figure through :func:`figure`, so
that the pages read alike:

* numbers carry the significant digits that suit them (:func:`fmt`, :func:`pm` for ``mean ± spread``);
* no row index, no truncated cells, long text wraps instead of widening the table;
* every figure has a caption (what it shows, at which scale, what the paper claims) and alt text,
  and is shown at a size where its legends stay readable (:func:`style`).

The helpers produce HTML that Jupyter Book renders as it is; they contain no mathematics (the
library's maths never plots).
"""

from __future__ import annotations

import base64
import html
import io
import math
import numbers
from collections.abc import Mapping

import pandas as pd

#: Width, in inches, of a full-width figure; at :data:`DPI` it fills the book's text column
#: without being scaled down, so font sizes in points are what the reader sees.
FIGURE_WIDTH = 7.5
DPI = 110


def fmt(x, digits: int = 3) -> str:
    """``x`` with ``digits`` significant digits, in plain or scientific notation as suits it.

    Integers print as integers, booleans as ``yes``/``no``, ``nan`` as ``—``, infinities as ``∞``.
    Scientific notation is used below 1e-3 and at or above 1e5 (``3.93e-35``, not ``3.933405e-35``).
    """
    if x is None:
        return "—"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, numbers.Integral):
        return str(int(x))
    if not isinstance(x, numbers.Real):
        return str(x)
    x = float(x)
    if math.isnan(x):
        return "—"
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    if x == 0:
        return "0"
    rounded = float(f"{x:.{digits}g}")  # 0.9999999 and 1.0 both read "1", not "1.000" and "1"
    if rounded.is_integer() and abs(rounded) < 1e5:
        return str(int(rounded))
    if abs(x) < 1e-3 or abs(rounded) >= 1e5:
        mant, exp = f"{x:.{digits - 1}e}".split("e")
        return f"{mant}e{int(exp)}"
    return f"{x:.0f}" if abs(x) >= 10 ** (digits - 1) else _fixed(x, digits)


def _fixed(x: float, digits: int) -> str:
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(x))))
    return f"{x:.{decimals}f}"


def pm(mean: float, spread: float, digits: int = 3) -> str:
    """``"1.234 ± 0.005"``: a mean and its spread, to the spread's second significant digit.

    The mean keeps at most ``digits`` + 2 significant digits; a ``nan`` spread prints the mean alone.
    """
    if spread is None or (isinstance(spread, float) and math.isnan(spread)) or not math.isfinite(mean):
        return fmt(mean, digits)
    if spread == 0:
        return f"{fmt(mean, digits)} ± 0"
    spread = float(f"{abs(spread):.2g}")  # 0.0099999 (round-off) reads as 0.010, not 0.0100
    s_exp = math.floor(math.log10(spread))
    m_exp = math.floor(math.log10(abs(mean))) if mean != 0 else s_exp
    if abs(mean) < 1e-3 or abs(mean) >= 1e5:
        return f"{fmt(mean, digits)} ± {fmt(spread, 2)}"
    decimals = max(0, min(1 - s_exp, digits + 1 - m_exp))
    return f"{mean:.{decimals}f} ± {spread:.{decimals}f}"


#: Column names of the book's tidy tables, as a table header shows them.
HEADERS = {
    "best_lr": "best lr",
    "d_l2": "d·‖H‖₂",
    "final_loss": "final loss",
    "final_loss_std": "final loss std",
    "H_exact": "H (exact)",
    "H_linf": "H (ℓ∞)",
    "l11_per_d": "‖H‖₁,₁/d",
    "l11_per_dim": "‖H‖₁,₁/d",
    "l2_over_linf": "ℓ2 / ℓ∞",
    "rel_error": "relative error",
    "rel_error_at_n_paper": "relative error at the paper's n",
    "rel_loss": "relative loss",
    "spectral_norm": "‖H‖₂",
    "sum_H": "Σᵢ Hᵢ",
    "wall_time_s": "wall time (s)",
}
_WORDS = {"se": "s.e.", "linf": "ℓ∞", "l2": "ℓ2", "l11": "‖H‖₁,₁", "log10": "log₁₀", "thm311": "Thm 3.11"}


def header(name) -> str:
    """A column name as a reader sees it: :data:`HEADERS`, else its snake_case words spaced out.

    ``"measured_slope_se"`` reads ``"measured slope s.e."``, ``"bound_linf"`` ``"bound ℓ∞"``; a name
    without an underscore is kept as it is.
    """
    name = str(name)
    if name in HEADERS:
        return HEADERS[name]
    if "_" not in name:
        return name
    return " ".join(_WORDS.get(w, w) for w in name.split("_") if w)


def _cell(x, digits: int) -> str:
    if isinstance(x, str):
        return x
    return fmt(x, digits)


def table(
    df: pd.DataFrame,
    caption: str | None = None,
    *,
    digits: int | Mapping[str, int] = 3,
    wrap: tuple[str, ...] | None = None,
    links: Mapping[str, list[str]] | None = None,
    verdict_columns: tuple[str, ...] = ("verdict",),
    headers: Mapping[str, str] | None = None,
    display: bool = True,
):
    """Show ``df`` as a book table: no index, no truncation, numbers through :func:`fmt`.

    One digit policy per table: every number of a column gets the same significant digits
    (``digits``), and every header is readable (:func:`header`, or ``headers``).

    Args:
        df: The table. Its index is dropped (put what matters in a column).
        caption: Shown above the table (plain text; Unicode, no TeX).
        digits: Significant digits, for all numeric columns or per column name.
        wrap: Columns whose long text wraps (default: every text column).
        links: Per column, one relative URL per row: the cell becomes a link to it (an empty
            URL leaves the cell plain).
        verdict_columns: Columns holding verdict words (holds / fails / inconclusive / not run),
            which the book colours.
        headers: Header text per column name (default :func:`header`); the other arguments
            name columns as ``df`` does.
        display: Display the table in the notebook (else only return the HTML object).

    Returns:
        The ``IPython.display.HTML`` object with ``display=False``; ``None`` once displayed.
    """
    from IPython.display import HTML
    from IPython.display import display as _display

    shown = df.reset_index(drop=True).copy()
    for col in shown.columns:
        d = digits.get(col, 3) if isinstance(digits, Mapping) else digits
        shown[col] = [_cell(v, d) for v in shown[col]]
    wrap_cols = set(shown.columns if wrap is None else wrap)
    names = dict(headers or {})
    head = "".join(f"<th>{html.escape(names.get(c, header(c)))}</th>" for c in shown.columns)
    body = []
    links = dict(links or {})
    for i, row in enumerate(shown.itertuples(index=False)):
        cells = []
        for col, v in zip(shown.columns, row, strict=True):
            cls = ' class="adamlinf-wrap"' if col in wrap_cols and len(v) > 24 else ""
            verdict = f' data-verdict="{html.escape(v)}"' if col in verdict_columns else ""
            text = html.escape(v)
            if col in links and links[col][i]:
                text = f'<a href="{html.escape(links[col][i])}">{text}</a>'
            cells.append(f"<td{cls}{verdict}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    out = HTML(
        '<div class="adamlinf-table"><table class="table">'
        f"{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    )
    if display:
        _display(out)
        return None  # a call on a cell's last line must not show it a second time
    return out


def style() -> None:
    """Set matplotlib defaults for book figures (call once per notebook).

    Sizes in points are readable at :data:`FIGURE_WIDTH` inches shown at :data:`DPI`: ticks and
    legends 10 pt, labels 11 pt, titles 12 pt.
    """
    import matplotlib as mpl

    mpl.rcParams.update(
        {
            "figure.dpi": DPI,
            "savefig.dpi": DPI,
            "font.size": 11,
            "axes.titlesize": 12,
            "axes.labelsize": 11,
            "xtick.labelsize": 10,
            "ytick.labelsize": 10,
            "legend.fontsize": 10,
            "legend.title_fontsize": 10,
            "figure.titlesize": 12,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "figure.figsize": (FIGURE_WIDTH, 4.0),
        }
    )


def figure(fig, caption: str, *, alt: str | None = None, display: bool = True):
    """Show a matplotlib figure with a caption and alt text, at its natural size, and close it.

    Args:
        fig: The figure. Make it at most :data:`FIGURE_WIDTH` inches wide so that it is not
            scaled down (a wider one raises, since its fonts would shrink below 9 pt).
        caption: What the figure shows, at which scale, and what the paper claims (plain text).
        alt: Alt text (default: the caption).
        display: Display it in the notebook (else only return the HTML object).

    Returns:
        The ``IPython.display.HTML`` object holding the PNG and its caption with ``display=False``;
        ``None`` once displayed.
    """
    import matplotlib.pyplot as plt
    from IPython.display import HTML
    from IPython.display import display as _display

    if not caption:
        raise ValueError("every book figure needs a caption")
    width = fig.get_figwidth()
    if width > FIGURE_WIDTH + 1e-6:
        raise ValueError(f"figure is {width:.1f} in wide; at most {FIGURE_WIDTH} in keeps fonts ≥ 9 pt")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    out = HTML(
        '<figure class="adamlinf-figure">'
        f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt or caption)}" '
        'style="max-width:100%;height:auto"/>'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )
    if display:
        _display(out)
        return None  # a call on a cell's last line must not show it a second time
    return out


def markdown(text: str, *, display: bool = True):
    """Show generated prose (e.g. a findings paragraph).

    Plain Markdown with Unicode maths (‖H‖₁,₁, β₁, η), never TeX: generated outputs are not typeset.

    Returns:
        The ``IPython.display.Markdown`` object with ``display=False``; ``None`` once displayed.

    Raises:
        ValueError: When ``text`` holds ``$`` or a backslash.
    """
    from IPython.display import Markdown
    from IPython.display import display as _display

    if "$" in text or "\\" in text:
        raise ValueError("generated text must not hold TeX ($ or backslash); write it in Unicode")
    out = Markdown(text)
    if display:
        _display(out)
        return None  # a call on a cell's last line must not show it a second time
    return out
