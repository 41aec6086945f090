"""Run a notebook's studies with torch and the scientific stack only, and publish its results.

    python -m adamlinf.publish gpt2_figure1 --scale gpu          # then gpt2_table2 (reads its runs)
    python -m adamlinf.publish resnet_table3 --scale gpu --set device=cuda:1
    python -m adamlinf.publish gpt2_figure1 --scale gpu --no-publish   # results/ only

For GPU nodes without papermill, jupytext, Jupyter or IPython: the code cells of book/notebooks/<name>.py
run in order as plain Python, the parameters cell replaced by the scale's checked parameters (a stand-in
IPython.display prints Markdown and drops HTML; matplotlib draws with Agg). The results go to
results/<name>/<scale>/ and, for gpu, into published/<name>/<scale>/, which the book renders on a CPU.
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


def _display_stub() -> types.ModuleType:
    """A stand-in ``IPython.display``: Markdown is printed, HTML and other objects are dropped."""
    mod = types.ModuleType("IPython.display")

    class _Shown:
        def __init__(self, data: Any = None, *args, **kwargs):
            self.data = data

    class Markdown(_Shown):
        pass

    class HTML(_Shown):
        pass

    def display(*objs, **kwargs):
        for obj in objs:
            if isinstance(obj, Markdown):
                print(obj.data)

    mod.Markdown, mod.HTML, mod.display = Markdown, HTML, display
    mod.Image = mod.SVG = _Shown
    return mod


def _ensure_display() -> None:
    """Install the stand-in ``IPython.display`` when IPython cannot be imported."""
    try:
        import IPython.display  # noqa: F401
    except ImportError:
        pkg = types.ModuleType("IPython")
        pkg.display = _display_stub()
        pkg.get_ipython = lambda: None  # what matplotlib asks: not inside IPython,
        pkg.version_info = (99, 0)  # and no backend fix-up for old IPython versions
        sys.modules["IPython"] = pkg
        sys.modules["IPython.display"] = pkg.display


def execute_plain(name: str, params: Mapping[str, Any], *, sources: Path | None = None) -> float:
    """Execute notebook ``name``'s code cells (from ``sources``, default ``book/notebooks``) as plain Python.

    ``params`` (``scale`` and ``results_dir`` included) replace the parameters cell; returns the wall time
    in seconds. A cell's error propagates, the cell number in the traceback's file name.
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
    params["results_dir"] = str(results_dir(args.notebook, args.scale))
    wall = execute_plain(args.notebook, params)
    record = provenance(
        {**params, "results_dir": _run.repo_relative(Path(params["results_dir"]))},
        wall_time_s=wall,
        notebook=args.notebook,
        scale=args.scale,
        device=params.get("device"),
        runner="adamlinf.publish",
        overrides=sorted(overrides),
    )
    save_json(record, Path(params["results_dir"]) / PROVENANCE_FILE)
    print(f"{args.notebook} ({args.scale}): {wall:.1f} s; results in {params['results_dir']}")
    if not args.no_publish and args.scale in _run.PUBLISHED_SCALES:
        dest = _run.publish(args.notebook, args.scale)
        print(f"published: {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
