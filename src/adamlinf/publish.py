"""Run a notebook's studies with torch and the scientific stack only, and publish its results.

    python -m adamlinf.publish gpt2_figure1 --scale gpu          # then gpt2_table2 (reads its runs)
    python -m adamlinf.publish resnet_table3 --scale gpu --set device=cuda:1
    python -m adamlinf.publish gpt2_figure1 --scale gpu --no-publish   # results/ only

For GPU nodes without papermill, jupytext or IPython: book/notebooks/<name>.py's code cells run as plain
Python with the scale's checked parameters (a stand-in IPython.display prints Markdown, drops HTML; Agg
draws). Results go to results/<name>/<scale>/ and, for gpu, published/<name>/<scale>/ for the book.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import run as _run
from .results import PROVENANCE_FILE, REPO_ROOT, provenance, results_dir, save_json


def _ensure_display() -> None:
    """Without IPython, install a stand-in ``IPython.display``: Markdown is printed, HTML is dropped."""
    try:
        import IPython.display  # noqa: F401

        return
    except ImportError:
        pass

    class _Shown:
        def __init__(self, data: Any = None, *args, **kwargs):
            self.data = data

    class Markdown(_Shown):
        pass

    def display(*objs, **kwargs):
        for obj in objs:
            if isinstance(obj, Markdown):
                print(obj.data)

    pkg = types.ModuleType("IPython")
    pkg.display = types.ModuleType("IPython.display")
    pkg.display.Markdown, pkg.display.display = Markdown, display
    pkg.display.HTML = pkg.display.Image = pkg.display.SVG = _Shown
    pkg.get_ipython = lambda: None  # what matplotlib asks: not inside IPython,
    pkg.version_info = (99, 0)  # and no backend fix-up for old IPython versions
    sys.modules["IPython"] = pkg
    sys.modules["IPython.display"] = pkg.display


def execute_plain(name: str, params: Mapping[str, Any], *, sources: Path | None = None) -> float:
    """Run notebook ``name``'s code cells as plain Python, ``params`` in place of its parameters cell.

    Returns the wall time in seconds; a cell's error propagates, the cell number in its file name.
    """
    path = Path(sources or _run.SOURCES) / f"{name}.py"
    if not path.exists():
        raise SystemExit(f"no notebook source {path}")
    os.environ.setdefault("MPLBACKEND", "Agg")
    for k in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"):
        os.environ.setdefault(k, "1")
    os.environ["ADAMLINF_SOURCES"] = str(path.parent)
    _ensure_display()
    import matplotlib

    matplotlib.use("Agg")
    namespace: dict[str, Any] = {"__name__": f"adamlinf_notebook_{name}"}
    cwd = Path.cwd()
    start = time.perf_counter()
    os.chdir(REPO_ROOT)
    try:
        for i, (code, is_params) in enumerate(_run.code_cells(path.read_text())):
            if is_params:
                namespace.update(params)
                continue
            exec(compile(code, f"{path.name}[cell {i}]", "exec"), namespace)  # noqa: S102
            import matplotlib.pyplot as plt

            plt.close("all")
    finally:
        os.chdir(cwd)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    """The command line (see the module docstring)."""
    ap = argparse.ArgumentParser(
        prog="python -m adamlinf.publish",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("notebook", help="the notebook name, e.g. gpt2_figure1")
    ap.add_argument("--scale", default="gpu", help="the parameter set (default gpu)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--no-publish", action="store_true", help="leave the results in results/ only")
    args = ap.parse_args(argv)
    overrides = dict(_run.parse_override(t) for t in args.overrides)
    try:
        params = _run.resolve_parameters(args.notebook, args.scale, overrides)
    except ValueError as exc:
        print(f"FAILED: {args.notebook}: {exc}", file=sys.stderr)
        return 2
    out = results_dir(args.notebook, args.scale)
    wall = execute_plain(args.notebook, {**params, "results_dir": str(out)})
    record = provenance(
        params,
        wall_time_s=wall,
        notebook=args.notebook,
        scale=args.scale,
        device=params.get("device"),
        runner="adamlinf.publish",
        overrides=sorted(overrides),
    )
    save_json(record, out / PROVENANCE_FILE)
    print(f"{args.notebook} ({args.scale}): {wall:.1f} s; results in {out}")
    if not args.no_publish and args.scale in _run.PUBLISHED_SCALES:
        print(f"published: {_run.publish(args.notebook, args.scale)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
