"""Execute the book's notebooks at a scale, with provenance.

    python -m adamlinf.run --scale ci                 # every notebook, in book order (--list names them)
    python -m adamlinf.run --scale ci --only gpt2_figure1 --set max_iters=50 --set device=cuda
    python -m adamlinf.run --scale gpu --only gpt2_figure1 --publish

Parameters come from ``params/<name>.yaml`` (``--set`` checked first). One runner per (notebook, scale)
stages its output: only a success replaces the results, executed notebook and provenance; a failure prints
one ``FAILED:`` line. ``--publish`` copies gpu results, SHA-256 digests added, into ``published/<name>/gpu/``.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import itertools
import json
import math
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from . import results as _results
from .results import PROVENANCE_FILE, REPO_ROOT, provenance, save_json

BOOK = REPO_ROOT / "book"
SOURCES = BOOK / "notebooks"
EXECUTED = BOOK / "executed"
PARAMS = REPO_ROOT / "params"
TOC = REPO_ROOT / "_toc.yml"

#: Notebooks that summarise the others; executed after them whatever their place in the book.
RUN_LAST = ("glance",)
#: Parameters the runner sets itself; ``--scale`` chooses them, ``--set`` cannot.
INJECTED = ("scale", "results_dir")
#: Scales whose results ``--publish`` copies into ``published/``.
PUBLISHED_SCALES = ("gpu",)
#: Integer parameters that count something and must be at least 1 (by name).
_COUNT = re.compile(
    r"^(n|num)_|_n_|^(T|T\d+|d|k|n|steps|epochs|width|workers|threads|seeds|repeats)$|"
    r"_(d|k|size|layers?|heads?|embd|probes|seeds|draws|samples|reps|batch|blocks|per_node|per_worker|"
    r"per_epoch)$|^(max_iters|batch_size|global_batch|block_size)$"
)
#: Integer parameters that may be 0 but not negative (intervals, warm-up lengths, seeds).
_NONNEGATIVE = re.compile(r"(_iters|_steps|_interval|_every|^seed|_seed)$|^max_")
#: Seed lists and counts: a verdict compares seed spreads (Welch's test), so at least MIN_SEEDS distinct.
_SEEDS = re.compile(r"^(n_)?seeds$|_seeds$")
MIN_SEEDS = 2
#: Float parameters that must be positive: epochs, learning rates, eps.
_POSITIVE = re.compile(r"^(epochs|lr|eps)$|_(epochs|lr)$")
_KINDS = {bool: "bool", int: "int", float: "float", str: "str", list: "list", tuple: "list", dict: "dict"}


def notebook_order(toc_path: Path | None = None) -> list[str]:
    """Notebook names in the order the table of contents lists them (``book/executed/<name>``)."""

    def walk(node) -> list[str]:
        if isinstance(node, list):
            return [name for item in node for name in walk(item)]
        if not isinstance(node, dict):
            return []
        f = node.get("file")
        own = [f.split("/")[-1].removesuffix(".ipynb")] if str(f).startswith("book/executed/") else []
        return own + walk(list(node.values()))

    return walk(yaml.safe_load((toc_path or TOC).read_text()))


def execution_order(names: list[str]) -> list[str]:
    """``names`` in the order the runner executes them: book order, summaries (:data:`RUN_LAST`) last."""
    return [n for n in names if n not in RUN_LAST] + [n for n in names if n in RUN_LAST]


def repo_relative(path: Path) -> str:
    """``path`` relative to the repository (as given when outside it)."""
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except (ValueError, OSError, RuntimeError):  # outside the repository, or a symlink loop
        return str(path)


_CELL = re.compile(r"^# %%(.*)$", re.MULTILINE)
_TAGS = re.compile(r"tags\s*=\s*(\[[^\]]*\])")


def code_cells(source: str) -> list[tuple[str, bool]]:
    """``(code, tagged parameters)`` of each code cell of a jupytext percent-format source."""
    parts = _CELL.split(source)  # text before the first cell, then (header, body) pairs
    out = []
    for header, body in zip(parts[1::2], parts[2::2], strict=True):
        if not any(kind in header for kind in ("[markdown]", "[md]", "[raw]")):
            tags = _TAGS.search(header)
            code = "\n".join(body.splitlines()[1:])  # the body starts with the header line's newline
            out.append((code, bool(tags and re.search(r"['\"]parameters['\"]", tags.group(1)))))
    return out


def parameters_cell(source: str) -> str:
    """The code of the one cell tagged ``parameters`` (else a ``ValueError``)."""
    tagged = [code for code, is_params in code_cells(source) if is_params]
    if len(tagged) != 1:
        raise ValueError(f"expected exactly one cell tagged 'parameters', found {len(tagged)}")
    return tagged[0]


def parameter_defaults(name: str, sources: Path | None = None) -> dict[str, Any]:
    """``{name: default}`` of notebook ``name``'s parameters cell (None for a non-literal default)."""
    path = Path(sources or os.environ.get("ADAMLINF_SOURCES", SOURCES)) / f"{name}.py"  # set for the kernel
    if not path.exists():
        raise FileNotFoundError(f"no notebook source {repo_relative(path)}")
    tree = ast.parse(parameters_cell(path.read_text()))
    out: dict[str, Any] = {}
    for node in tree.body:
        if not isinstance(node, (ast.Assign, ast.AnnAssign)):
            continue
        for target in getattr(node, "targets", [getattr(node, "target", None)]):
            if isinstance(target, ast.Name):
                try:
                    out[target.id] = ast.literal_eval(node.value) if node.value is not None else None
                except ValueError:
                    out[target.id] = None
    return out


def notebook_params(name: str, namespace: Mapping[str, Any]) -> dict[str, Any]:
    """``{k: namespace[k]}`` for each parameter of notebook ``name``: ``notebook_params(name, globals())``."""
    names = list(parameter_defaults(name))
    missing = [k for k in names if k not in namespace]
    if missing:
        raise KeyError(f"{name}: parameters {missing} are not defined; run the parameters cell first")
    return {k: namespace[k] for k in names}


def load_parameters(name: str, scale: str) -> dict:
    """The parameter set of notebook ``name`` at ``scale`` from ``params/<name>.yaml``."""
    path = PARAMS / f"{name}.yaml"
    if not path.exists():
        raise SystemExit(f"no parameter file {repo_relative(path)} for notebook '{name}'")
    table = yaml.safe_load(path.read_text()) or {}
    if scale not in table:
        known = ", ".join(table) or "none"
        raise SystemExit(f"{repo_relative(path)} has no '{scale}' scale (it has: {known})")
    return dict(table[scale] or {})


def parse_override(text: str) -> tuple[str, str]:
    """Split ``KEY=VALUE`` (the value stays text until it is checked against the parameter)."""
    key, _, value = text.partition("=")
    key = key.strip()
    if not key.isidentifier() or not value.strip():
        raise argparse.ArgumentTypeError(f"--set expects KEY=VALUE with a parameter name KEY, got {text!r}")
    return key, value


def _kind(value: Any) -> str:
    return "None" if value is None else _KINDS.get(type(value), type(value).__name__)


def check_value(key: str, text: str, default: Any) -> Any:
    """The override ``key=text`` as a value of the default's type (else a ``ValueError``)."""
    kind = _kind(default)
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        value = text.strip()
    bad = f"--set {key}={text}:"
    if kind == "str":
        return value if isinstance(value, str) else text.strip()
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "bool" and not isinstance(value, bool):
        raise ValueError(f"{bad} expected True or False (default {default!r})")
    if kind == "int" and not (number and isinstance(value, int)):
        raise ValueError(f"{bad} expected a whole number (default {default!r})")
    if kind == "float":
        if not number:
            raise ValueError(f"{bad} expected a number (default {default!r})")
        if not math.isfinite(float(value)) and math.isfinite(default):
            raise ValueError(f"{bad} expected a finite number (default {default!r})")
        return float(value)
    if kind == "list":
        if not isinstance(value, (list, tuple)):
            example = repr(list(default)) if default else "[1, 2]"
            raise ValueError(f"{bad} expected a list such as {example} (quote strings inside lists)")
        item_kinds = {_kind(v) for v in default}
        if len(item_kinds) == 1 and value:
            (want,) = item_kinds
            for item in value:
                got = _kind(item)
                if got != want and not (want == "float" and got == "int"):
                    items = f"the items of {key} are {want}s (default {default!r})"
                    raise ValueError(f"{bad} item {item!r} is a {got}; {items}")
        return type(default)(value) if isinstance(default, tuple) else list(value)
    if kind == "dict":
        if not isinstance(value, dict):
            raise ValueError(f"{bad} expected a dict literal (default {default!r})")
        return {**default, **value}  # merged into the scale's dict: name only the keys that change
    return value


def check_setting(key: str, value: Any, reference: Any = None) -> str | None:
    """What is wrong with a parameter's final value (``reference``: the scale's), or None (rules by name)."""
    if isinstance(value, (list, tuple)):
        if not value and reference:
            return f"{key}={list(value)!r} is empty; give at least one item (the scale has {reference!r})"
        if _SEEDS.search(key):
            if len(set(value)) != len(value):
                return f"{key}={list(value)!r} repeats a seed; the seeds must be distinct"
            if len(value) < MIN_SEEDS:
                need = f"at least {MIN_SEEDS} distinct seeds are needed (a verdict compares seed spreads)"
                return f"{key}={list(value)!r}: {need}"
    elif isinstance(value, bool) or value is None:
        return None
    elif isinstance(value, int):
        if _SEEDS.search(key) and value < MIN_SEEDS:
            return f"{key}={value}: at least {MIN_SEEDS} seeds are needed (a verdict compares seed spreads)"
        if (_COUNT.search(key) or key == "stop_iter") and value < 1:
            return f"{key}={value}: must be at least 1"
        if _NONNEGATIVE.search(key) and value < 0:
            return f"{key}={value}: must be at least 0"
    elif isinstance(value, float) and _POSITIVE.search(key) and not value > 0:
        return f"{key}={value}: must be positive"
    return None


def _did_you_mean(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
    close = close or [k for k in known if k.lower() == key.lower()]
    return f"; did you mean {' or '.join(close)}?" if close else ""


def resolve_parameters(
    name: str, scale: str, overrides: Mapping[str, str] | None = None, *, strict: bool = True
) -> dict[str, Any]:
    """Notebook ``name``'s parameters at ``scale`` with ``overrides``, ``scale`` and ``results_dir``.

    ``strict=False`` skips keys the notebook lacks. A ``ValueError`` lists every problem.
    """
    params = load_parameters(name, scale)
    defaults = parameter_defaults(name)
    errors = []
    stray = [k for k in params if k not in defaults or k in INJECTED]
    if stray:
        where, cell = f"params/{name}.yaml ({scale})", f"the parameters cell of book/notebooks/{name}.py"
        errors.append(f"{where} sets {stray}, which the runner injects or {cell} does not have")
    known = sorted(set(defaults) - set(INJECTED))
    for key, text in (overrides or {}).items():
        if key in INJECTED:
            errors.append(f"--set {key}: the runner sets it (choose the scale with --scale)")
            continue
        if key not in known:
            if strict:
                errors.append(f"--set {key}: {name} has no parameter {key!r}{_did_you_mean(key, known)}")
            continue
        default = params.get(key, defaults.get(key))
        try:
            params[key] = check_value(key, text, default)
        except ValueError as exc:
            errors.append(str(exc))
    reference = {**defaults, **load_parameters(name, scale)}
    for key, value in params.items():
        problem = check_setting(key, value, reference.get(key))
        if problem:
            source = "--set " if key in (overrides or {}) else f"params/{name}.yaml ({scale}): "
            errors.append(source + problem)
    if errors:
        raise ValueError(f"{name}: " + f"\n{name}: ".join(dict.fromkeys(errors)))
    params["scale"] = scale
    params["results_dir"] = repo_relative(Path(_results.RESULTS_ROOT) / name / scale)  # the run creates it
    return params


def check_overrides(names: list[str], scale: str, overrides: Mapping[str, str]) -> dict[str, dict]:
    """``{name: parameters}`` of every notebook of a run (a ``SystemExit``: a key none of them has, ...)."""
    errors: list[str] = []
    resolved: dict[str, dict] = {}
    for name in names:
        try:
            resolved[name] = resolve_parameters(name, scale, overrides, strict=False)
        except (ValueError, FileNotFoundError, SystemExit) as exc:
            errors.append(str(exc))
    known = {k for n in resolved for k in parameter_defaults(n)} - set(INJECTED)
    for key in overrides:
        if key not in INJECTED and key not in known and resolved:
            hint = _did_you_mean(key, sorted(known))
            errors.append(f"--set {key}: no parameter {key!r} in {', '.join(names)}{hint}")
    if errors:
        raise SystemExit("invalid parameters:\n  " + "\n  ".join(dict.fromkeys(errors)))
    return resolved


def _tidy(nb, name: str, params: Mapping[str, Any], staging: str) -> None:
    """Show the applied parameters once, hide this machine's paths, add downloads, drop widgets."""
    import nbformat  # installed with papermill, like jupytext

    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if "injected-parameters" in tags:  # it names the results folder, not its staging folder
            cell.source = cell.source.replace(staging, params["results_dir"])
            if "remove-cell" not in tags:
                tags.append("remove-cell")
        if "parameters" in tags and cell.cell_type == "code":
            cell.source = _rewrite_assignments(cell.source, params)
    papermill_meta = nb.metadata.get("papermill", {})
    papermill_meta.get("parameters", {})["results_dir"] = params["results_dir"]
    nb.cells = [c for c in nb.cells if "adamlinf-downloads" not in c.metadata.get("tags", [])]
    text = (
        f"**Downloads:** {{download}}`the source, {name}.py <../notebooks/{name}.py>` (a jupytext "
        f"notebook: `make lab` opens it) · {{download}}`this executed notebook, {name}.ipynb <{name}.ipynb>`"
    )
    nb.cells.append(nbformat.v4.new_markdown_cell(text, metadata={"tags": ["adamlinf-downloads"]}))
    _drop_widgets(nb)
    # papermill records the staging paths of this machine; the book shows none.
    papermill_meta.update(input_path=f"book/notebooks/{name}.py", output_path=f"book/executed/{name}.ipynb")


_WIDGET = "application/vnd.jupyter.widget-view+json"


def _drop_widgets(nb) -> None:
    """Drop widget outputs (a progress bar keeps its text): the book is read offline."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            out.get("data", {}).pop(_WIDGET, None)
        if cell.get("outputs"):
            cell.outputs = [o for o in cell.outputs if not ("data" in o and not o["data"])]


def _rewrite_assignments(source: str, params: Mapping[str, Any]) -> str:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source
    raw = source.encode()  # ast's column offsets count UTF-8 bytes
    starts = [0, *itertools.accumulate(len(line) for line in raw.splitlines(keepends=True))]
    edits = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            key = node.targets[0].id
            if key not in params:
                continue
            try:
                same = ast.literal_eval(node.value) == params[key]
            except ValueError:
                same = False
            if not same:
                edits.append((node.value, repr(params[key])))
    for v, text in reversed(edits):  # the body in source order: splice from the end
        start, end = starts[v.lineno - 1] + v.col_offset, starts[v.end_lineno - 1] + v.end_col_offset
        raw = raw[:start] + text.encode() + raw[end:]
    return raw.decode()


def execute(name: str, scale: str, params: dict, *, log_output: bool = False, wait: bool = True) -> dict:
    """Execute one notebook under its lock (``wait=False``: ``Busy`` if held); its provenance record."""
    final = REPO_ROOT / params["results_dir"]
    lock = final.with_name(f".{final.name}.lock")
    with _results.exclusive(lock, f"runner of {name} at scale {scale}", wait=wait):
        import jupytext  # the book's tools: imported here so that `--help` and checks stay fast
        import papermill

        staging = _results.begin_staging(final)
        kernel_params = {**params, "results_dir": repo_relative(staging)}
        nb = jupytext.read(SOURCES / f"{name}.py")
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        EXECUTED.mkdir(parents=True, exist_ok=True)
        failed = EXECUTED / f"{name}.failed.ipynb"
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            staged, ran = Path(tmp) / f"{name}.ipynb", Path(tmp) / f"{name}.out.ipynb"
            jupytext.write(nb, staged)
            try:
                papermill.execute_notebook(
                    str(staged),
                    str(ran),
                    kernel_manager_class=_kernel_manager(EXECUTED / f".{name}.kernel.log"),
                    parameters=kernel_params,
                    kernel_name="python3",
                    cwd=str(REPO_ROOT),
                    progress_bar=False,
                    log_output=log_output,
                )
            except BaseException:  # papermill's error, the failed notebook kept for reading
                if ran.exists():
                    _results.write_atomic(failed, lambda f: f.write(ran.read_bytes()), fsync=False)
                raise
            wall = time.perf_counter() - start
            executed = jupytext.read(ran)
            _tidy(executed, name, params, kernel_params["results_dir"])
            jupytext.write(executed, ran)
            data = ran.read_bytes()
        record = provenance(params, wall_time_s=wall, notebook=name, scale=scale, device=params.get("device"))
        save_json(record, staging / PROVENANCE_FILE)
        pending_nb = EXECUTED / f".{name}.ipynb.pending"
        pending_prov = EXECUTED / f".{name}.provenance.json.pending"
        _results.write_atomic(pending_nb, lambda f: f.write(data))
        save_json(record, pending_prov)
        also = {pending_nb: EXECUTED / f"{name}.ipynb", pending_prov: EXECUTED / f"{name}.provenance.json"}
        _results.commit_staging(staging, final, also=also)
        failed.unlink(missing_ok=True)
        return record


def _kernel_manager(log: Path):
    """A kernel manager: the runner's environment, the kernel's stderr in ``log`` (one FAILED line shows)."""
    from jupyter_client import AsyncKernelManager

    class QuietKernelManager(AsyncKernelManager):
        async def _async_launch_kernel(self, kernel_cmd, **kw):
            env = kw["env"]
            env.update(ADAMLINF_SOURCES=str(SOURCES))  # for notebook_params() in the kernel
            for k in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"):
                env.setdefault(k, "1")
            env.pop("MPLBACKEND", None)  # a non-inline backend from the shell would drop every figure
            kw["stderr"] = open(log, "wb")  # noqa: SIM115 - the kernel process holds it
            try:
                return await super()._async_launch_kernel(kernel_cmd, **kw)
            finally:
                kw["stderr"].close()  # the kernel has its own copy of the descriptor

    return QuietKernelManager


def publish(name: str, scale: str = "gpu", root: Path | None = None) -> Path:
    """Copy ``results/<name>/<scale>/`` into ``published/<name>/<scale>/`` with the files' SHA-256."""
    src = _results.results_dir(name, scale)
    if not (src / PROVENANCE_FILE).exists():
        hint = f"run python -m adamlinf.run --scale {scale} --only {name} first"
        raise SystemExit(f"nothing to publish: {repo_relative(src / PROVENANCE_FILE)} is missing ({hint})")
    dest = Path(root or _results.PUBLISHED_ROOT) / name / scale
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{scale}-", dir=dest.parent))
    old = dest.with_name(f".{scale}-old")
    try:
        for path in sorted(src.rglob("*")):
            if path.is_file() and path.suffix in (".csv", ".json", ".jsonl", ".txt", ".md"):
                target = staging / path.relative_to(src)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
        record = json.loads((staging / PROVENANCE_FILE).read_text())
        record["scale"] = scale  # the folder's scale, which the page checks
        record[_results.DIGESTS] = _results.file_digests(staging)  # the page warns on an edited file
        save_json(record, staging / PROVENANCE_FILE)
        if old.exists():
            shutil.rmtree(old)
        if dest.exists():
            dest.rename(old)
        staging.rename(dest)
    finally:
        for leftover in (staging, old):
            if leftover.exists():
                shutil.rmtree(leftover)
    return dest


def main(argv: list[str] | None = None) -> int:
    """Command line of ``python -m adamlinf.run`` (see the module docstring)."""
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog="python -m adamlinf.run", description=__doc__, formatter_class=raw)
    parser.add_argument("--scale", default="ci", help="parameter set to use (default: ci)")
    parser.add_argument("--only", action="append", metavar="NAME", help="run only this notebook (repeatable)")
    help_set = "override one parameter (a Python literal of the default's type)"
    parser.add_argument(
        "--set", action="append", type=parse_override, default=[], metavar="KEY=VALUE", help=help_set
    )
    parser.add_argument("--publish", action="store_true", help="publish each notebook's gpu results")
    parser.add_argument("--no-wait", action="store_true", help="refuse when another runner holds the lock")
    parser.add_argument("--list", action="store_true", help="list notebooks in book order")
    parser.add_argument("--log-output", action="store_true", help="stream cell output")
    args = parser.parse_args(argv)

    order = notebook_order()
    if args.list:
        print("\n".join(order))
        return 0
    unknown = [n for n in args.only or () if n not in order]
    if unknown:
        hints = "".join(_did_you_mean(n, order) for n in unknown)
        parser.error(f"unknown notebook(s) {unknown}{hints}; choose from: {', '.join(order)}")
    names = execution_order([n for n in order if not args.only or n in args.only])
    if args.publish and args.scale not in PUBLISHED_SCALES:
        parser.error(f"--publish is for --scale {' or '.join(PUBLISHED_SCALES)}")
    resolved = check_overrides(names, args.scale, dict(args.set))
    total = time.perf_counter()
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if main_thread else None
    try:
        for i, name in enumerate(names, 1):
            print(f"[{i}/{len(names)}] {name} (scale={args.scale}) ...", flush=True)
            if status := _run_one(name, args, resolved[name]):
                return status
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    print(f"all {len(names)} notebook(s) executed in {time.perf_counter() - total:.1f} s")
    return 0


def _interrupt(signum, frame):
    """SIGTERM (a scheduler's stop) ends the runner like Ctrl-C."""
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _run_one(name: str, args, params: dict) -> int:
    """Execute and publish one notebook of :func:`main`; 0, or the exit status after one FAILED line."""
    kept = EXECUTED / f"{name}.ipynb"
    failed = EXECUTED / f"{name}.failed.ipynb"
    results = repo_relative(REPO_ROOT / params["results_dir"])

    def fail(reason: str, status: int, notebook: bool = False) -> int:
        last = f"; the last good results stay in {results}"
        last += f" and {repo_relative(kept)}" if kept.exists() else ""
        where = f"; the failed notebook is at {repo_relative(failed)}" if notebook and failed.exists() else ""
        print(f"FAILED: {name}: {reason}{last}{where}", file=sys.stderr, flush=True)
        return status

    try:
        rec = execute(name, args.scale, params, log_output=args.log_output, wait=not args.no_wait)
    except KeyboardInterrupt as exc:
        why = f"interrupted by {exc.args[0]}" if exc.args else "interrupted (Ctrl-C)"
        return fail(why, 130)
    except _results.Busy as exc:
        return fail(str(exc), 75)
    except OSError as exc:  # full disk, read-only folder, symlink loop: one line from adamlinf.results
        return fail(str(exc).splitlines()[0] if str(exc) else repr(exc), 1)
    except Exception as exc:  # papermill raises PapermillExecutionError with the traceback
        return fail(_reason(exc), 1, notebook=True)
    print(f"    done in {rec['wall_time_s']:.1f} s", flush=True)
    if args.publish and name not in RUN_LAST:  # summaries are rebuilt from what is published
        print(f"    published to {repo_relative(publish(name, args.scale))}", flush=True)
    return 0


def _reason(exc: BaseException) -> str:
    """A notebook error in one line: papermill's exception name and value, else the error itself."""
    ename, evalue = getattr(exc, "ename", None), getattr(exc, "evalue", None)
    if ename:
        return f"{ename}: {evalue}".splitlines()[0]
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


if __name__ == "__main__":
    raise SystemExit(main())
