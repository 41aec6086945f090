"""The one table (:func:`table`), figure (:func:`figure`) and number format (:func:`fmt`, :func:`pm`).

Tables have no index and no truncation; every figure has a caption and alt text and is shown at
a size where its fonts stay readable (:func:`style`). The output is HTML Jupyter Book renders as is.
"""

from __future__ import annotations

import base64
import html
import io
import math
import numbers
from collections.abc import Mapping

import pandas as pd

#: A full-width figure, in inches: at :data:`DPI` it fills the text column unscaled.
FIGURE_WIDTH = 7.5
DPI = 110


def fmt(x, digits: int = 3) -> str:
    """``x`` to ``digits`` significant digits; scientific below 1e-3 and from 1e5 (``3.93e-35``).

    Integers print as integers, booleans as ``yes``/``no``, ``nan`` as ``—``, infinities as ``∞``.
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
    if abs(x) >= 10 ** (digits - 1):
        return f"{x:.0f}"
    return f"{x:.{max(0, digits - 1 - math.floor(math.log10(abs(x))))}f}"


def pm(mean: float, spread: float, digits: int = 3) -> str:
    """``"1.234 ± 0.005"``: the mean to its spread's second significant digit (a ``nan`` spread: the mean)."""
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
    "d_l2": "d·‖H‖₂",
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
    """A column name as a reader sees it: :data:`HEADERS`, else ``"slope_se"`` reads ``"slope s.e."``."""
    name = str(name)
    if name in HEADERS:
        return HEADERS[name]
    if "_" not in name:
        return name
    return " ".join(_WORDS.get(w, w) for w in name.split("_") if w)


def _show(out, display: bool):
    """Display ``out`` and return None (a cell's last line must not show it twice), or return it."""
    from IPython.display import display as _display

    if not display:
        return out
    _display(out)
    return None


def table(
    df: pd.DataFrame,
    caption: str | None = None,
    *,
    digits: int | Mapping[str, int] = 3,
    links: Mapping[str, list[str]] | None = None,
    verdict_columns: tuple[str, ...] = ("verdict",),
    display: bool = True,
):
    """Show ``df`` without its index, every number through :func:`fmt`, headers through :func:`header`.

    Args:
        df: The table.
        caption: Plain text above it (Unicode, no TeX).
        digits: Significant digits, for every column or per column name.
        links: Per column, one relative URL per row (an empty one leaves the cell plain).
        verdict_columns: Columns of verdict words, which the book colours.
        display: Display it (else return the ``HTML`` object).
    """
    from IPython.display import HTML

    shown = df.reset_index(drop=True).copy()
    for col in shown.columns:
        d = digits.get(col, 3) if isinstance(digits, Mapping) else digits
        shown[col] = [v if isinstance(v, str) else fmt(v, d) for v in shown[col]]
    head = "".join(f"<th>{html.escape(header(c))}</th>" for c in shown.columns)
    body = []
    links = dict(links or {})
    for i, row in enumerate(shown.itertuples(index=False)):
        cells = []
        for col, v in zip(shown.columns, row, strict=True):
            cls = ' class="adamlinf-wrap"' if len(v) > 24 else ""
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
    return _show(out, display)


def style() -> None:
    """Matplotlib defaults for book figures: ticks and legends 10 pt, labels 11, titles 12."""
    import matplotlib as mpl

    sizes = {"font.size": 11, "axes.labelsize": 11, "axes.titlesize": 12, "figure.titlesize": 12}
    small = {"xtick.labelsize": 10, "ytick.labelsize": 10, "legend.fontsize": 10, "legend.title_fontsize": 10}
    mpl.rcParams.update(sizes | small | {"axes.grid": True, "grid.alpha": 0.3})
    mpl.rcParams.update({"figure.dpi": DPI, "savefig.dpi": DPI, "figure.figsize": (FIGURE_WIDTH, 4.0)})


def figure(fig, caption: str, *, alt: str | None = None, display: bool = True):
    """Show ``fig`` (at most :data:`FIGURE_WIDTH` wide) as a PNG with its caption and alt text; close it.

    The caption says what it shows, at which scale, and what the paper claims.
    """
    import matplotlib.pyplot as plt
    from IPython.display import HTML

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
    return _show(out, display)


def markdown(text: str, *, display: bool = True):
    """Show generated Markdown prose with Unicode maths (a ``$`` or backslash raises: no TeX)."""
    from IPython.display import Markdown

    if "$" in text or "\\" in text:
        raise ValueError("generated text must not hold TeX ($ or backslash); write it in Unicode")
    return _show(Markdown(text), display)
