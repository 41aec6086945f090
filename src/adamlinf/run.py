"""Execute the book's notebooks at a scale, with provenance.

    python -m adamlinf.run --scale ci                 # every notebook, in book order
    python -m adamlinf.run --scale paper --only quadratic_table1
    python -m adamlinf.run --scale ci --only gpt2_figure1 --set max_iters=50 --set device=cuda
    python -m adamlinf.run --list

Sources are jupytext percent-format files ``book/notebooks/<name>.py``; each has a cell tagged
``parameters``. The parameter set of a scale is read from ``params/<name>.yaml`` (top-level keys
are scale names: ``ci``, ``paper``, ...). The runner always injects ``scale`` and
``results_dir`` (``results/<name>/<scale>/``). Executed notebooks land in ``book/executed/`` (the
folder the book is built from, git-ignored) with ``<name>.provenance.json`` beside each. A
failing notebook stops the run with exit status 1; its partially executed copy, traceback
included, is kept in ``book/executed/`` for inspection.
"""
from __future__ import annotations

import argparse
import ast
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

from .results import REPO_ROOT, provenance, results_dir, save_json

BOOK = REPO_ROOT / "book"
SOURCES = BOOK / "notebooks"
EXECUTED = BOOK / "executed"
PARAMS = REPO_ROOT / "params"
TOC = REPO_ROOT / "_toc.yml"


def notebook_order(toc_path: Path | None = None) -> list[str]:
    """Notebook names in the order the table of contents lists them (``book/executed/<name>``)."""
    toc = yaml.safe_load((toc_path or TOC).read_text())
    names: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            f = node.get("file")
            if isinstance(f, str) and f.startswith("book/executed/"):
                names.append(f.split("/")[-1].removesuffix(".ipynb"))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(toc)
    return names


def _rel(path: Path) -> str:
    """``path`` relative to the repository when it is inside it (for messages)."""
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def load_parameters(name: str, scale: str) -> dict:
    """The parameter set of notebook ``name`` at ``scale`` from ``params/<name>.yaml``."""
    path = PARAMS / f"{name}.yaml"
    if not path.exists():
        raise SystemExit(f"no parameter file {_rel(path)} for notebook '{name}'")
    table = yaml.safe_load(path.read_text()) or {}
    if scale not in table:
        raise SystemExit(f"{_rel(path)} has no '{scale}' scale "
                         f"(it has: {', '.join(table) or 'none'})")
    return dict(table[scale] or {})


def _parse_override(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--set expects KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def execute(name: str, scale: str, overrides: dict | None = None, *, log_output: bool = False) -> dict:
    """Execute one notebook; return its provenance record. Raises on failure."""
    import jupytext
    import papermill

    source = SOURCES / f"{name}.py"
    if not source.exists():
        raise SystemExit(f"no notebook source {_rel(source)}")
    params = load_parameters(name, scale)
    params.update(overrides or {})
    params["scale"] = scale
    params["results_dir"] = str(results_dir(name, scale))

    nb = jupytext.read(source)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    EXECUTED.mkdir(parents=True, exist_ok=True)
    output = EXECUTED / f"{name}.ipynb"
    for k in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"):
        os.environ.setdefault(k, "1")
    # A non-inline matplotlib backend inherited from the shell would drop every figure.
    os.environ.pop("MPLBACKEND", None)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / f"{name}.ipynb"
        jupytext.write(nb, staged)
        papermill.execute_notebook(str(staged), str(output), parameters=params,
                                   kernel_name="python3", cwd=str(REPO_ROOT),
                                   progress_bar=False, log_output=log_output)
    wall = time.perf_counter() - start
    record = provenance(params, wall_time_s=wall, notebook=name, scale=scale,
                        device=params.get("device"))
    save_json(record, EXECUTED / f"{name}.provenance.json")
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m adamlinf.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="ci", help="parameter set to use (default: ci)")
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="run only this notebook (repeatable)")
    parser.add_argument("--set", action="append", type=_parse_override, default=[],
                        metavar="KEY=VALUE", help="override one parameter (Python literal)")
    parser.add_argument("--list", action="store_true", help="list notebooks in book order")
    parser.add_argument("--log-output", action="store_true", help="stream cell output")
    args = parser.parse_args(argv)

    order = notebook_order()
    if args.list:
        for name in order:
            print(name)
        return 0
    names = order
    if args.only:
        unknown = [n for n in args.only if n not in order]
        if unknown:
            parser.error(f"unknown notebook(s) {unknown}; choose from: {', '.join(order)}")
        names = [n for n in order if n in args.only]
    overrides = dict(args.set)
    total = time.perf_counter()
    for i, name in enumerate(names, 1):
        print(f"[{i}/{len(names)}] {name} (scale={args.scale}) ...", flush=True)
        try:
            rec = execute(name, args.scale, overrides, log_output=args.log_output)
        except Exception as exc:  # papermill raises PapermillExecutionError with the traceback
            print(f"FAILED: {name}: {exc}\nThe partially executed notebook is kept at "
                  f"{_rel(EXECUTED / (name + '.ipynb'))}", file=sys.stderr)
            return 1
        print(f"    done in {rec['wall_time_s']:.1f} s", flush=True)
    print(f"all {len(names)} notebook(s) executed in {time.perf_counter() - total:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
