"""Where results live and what is recorded with them.

Every number the book shows comes from a file written here: a tidy table (CSV) or a JSON
record, each with a provenance record (parameters, git commit, package versions, device,
wall time) beside it.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata as _md
import json
import os
import platform
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULTS_ROOT = Path(os.environ.get("ADAMLINF_RESULTS", REPO_ROOT / "results"))

_PACKAGES = (
    "adamlinf",
    "torch",
    "torchvision",
    "numpy",
    "scipy",
    "pandas",
    "matplotlib",
    "seaborn",
    "papermill",
    "jupyter-book",
    "datasets",
    "tiktoken",
)


def git_commit(root: Path = REPO_ROOT) -> str:
    """The current commit of the repository.

    Returns:
        The commit hash, with ``-dirty`` when tracked files have uncommitted changes, or
        ``"unknown"`` outside a git checkout.
    """
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_versions(names=_PACKAGES) -> dict[str, str]:
    """The installed version of each package in ``names`` (``"not installed"`` when absent)."""
    out = {}
    for name in names:
        try:
            out[name] = _md.version(name)
        except _md.PackageNotFoundError:
            out[name] = "not installed"
    return out


def device_description(device: str | None = None) -> str:
    """A human-readable name of the hardware a result was computed on."""
    try:
        import torch

        if (device is None or str(device).startswith("cuda")) and torch.cuda.is_available():
            return f"{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
        threads = torch.get_num_threads()
    except ImportError:  # pragma: no cover
        threads = "?"
    return (
        f"CPU {platform.processor() or platform.machine()} ({os.cpu_count()} cores, torch threads {threads})"
    )


def provenance(
    params: Mapping[str, Any] | None = None,
    *,
    wall_time_s: float | None = None,
    device: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The provenance record saved beside each result and executed notebook."""
    rec = {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device_description(device),
        "packages": package_versions(),
        "parameters": dict(params or {}),
    }
    if wall_time_s is not None:
        rec["wall_time_s"] = round(float(wall_time_s), 3)
    rec.update(extra)
    return rec


def results_dir(name: str, scale: str = "ci", root: Path | str | None = None) -> Path:
    """``results/<name>/<scale>/``, created if missing."""
    path = Path(root or RESULTS_ROOT) / name / scale
    path.mkdir(parents=True, exist_ok=True)
    return path


def _jsonable(obj):
    """Encode what ``json.dumps`` cannot: arrays and scalars via ``.tolist()``, anything else as ``str``."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


class SavedPath(type(Path())):
    """The path a ``save_*`` function wrote: a ``pathlib.Path`` that a notebook does not display.

    A save call on the last line of a cell would otherwise print ``PosixPath('results/...')`` into
    the book.
    """

    def _ipython_display_(self) -> None:
        pass


def save_json(obj: Mapping[str, Any], path: Path | str) -> Path:
    """Write ``obj`` as indented JSON to ``path`` (folders created); return ``path``."""
    path = SavedPath(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, default=_jsonable) + "\n")
    return path


def save_table(
    df,
    path: Path | str,
    params: Mapping[str, Any] | None = None,
    *,
    wall_time_s: float | None = None,
    **extra: Any,
) -> Path:
    """Write a tidy ``pandas.DataFrame`` to CSV and its provenance to ``<path>.provenance.json``."""
    path = SavedPath(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)
    save_json(
        provenance(params, wall_time_s=wall_time_s, **extra),
        path.with_suffix(path.suffix + ".provenance.json"),
    )
    return path


def upstream_dir(results_dir: Path | str, notebook: str, required: str | None = None) -> Path:
    """The results folder of another notebook at the same scale, for notebooks that read its runs.

    ``results/<notebook>/<scale>/``, beside ``results_dir``. With ``required``, raises a
    ``FileNotFoundError`` naming the runner command when that file is missing.
    """
    results_dir = Path(results_dir)
    scale = results_dir.name
    path = results_dir.parent.parent / notebook / scale
    if required is not None and not (path / required).exists():
        raise FileNotFoundError(
            f"{path / required} not found: execute {notebook} at scale '{scale}' "
            f"first (python -m adamlinf.run --scale {scale} --only {notebook})"
        )
    return path


PUBLISHED_ROOT = Path(os.environ.get("ADAMLINF_PUBLISHED", REPO_ROOT / "published"))

#: The file ``python -m adamlinf.run --publish`` writes beside the published tables: the run's
#: provenance (commit, hardware, package versions, wall time, parameters).
PROVENANCE_FILE = "provenance.json"


def published_dir(notebook: str, scale: str = "gpu", root: Path | str | None = None) -> Path | None:
    """The committed results of ``notebook`` at ``scale``: ``published/<notebook>/<scale>/``.

    Args:
        notebook: The notebook name (``gpt2_figure1``).
        scale: The scale the results were made at (only ``gpu`` is published).
        root: The ``published/`` folder (default: the repository's, or ``$ADAMLINF_PUBLISHED``).

    Returns:
        The folder, or ``None`` when nothing has been published for this notebook and scale.
    """
    path = Path(root or PUBLISHED_ROOT) / notebook / scale
    if path.is_dir() and any(path.iterdir()):
        return path
    return None


def read_provenance(path: Path | str) -> dict[str, Any] | None:
    """The provenance record of a results folder or file, or ``None`` when there is none.

    A folder's record is ``<folder>/provenance.json``, else its newest ``*.provenance.json``; a
    file's is ``<file>.provenance.json``.
    """
    path = Path(path)
    if path.is_dir():
        candidates = (
            [path / PROVENANCE_FILE]
            if (path / PROVENANCE_FILE).exists()
            else sorted(path.glob("*.provenance.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        )
    else:
        candidates = (
            [path] if path.name.endswith(".json") else [path.with_suffix(path.suffix + ".provenance.json")]
        )
    for candidate in candidates:
        try:
            return json.loads(candidate.read_text())
        except (OSError, ValueError):
            continue
    return None


def _git(*args: str, root: Path = REPO_ROOT) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None


def code_paths(notebook: str) -> list[str]:
    """The paths whose changes can change ``notebook``'s results: its source, parameters and the library."""
    return [f"book/notebooks/{notebook}.py", f"params/{notebook}.yaml", "src/adamlinf"]


def check_fresh(notebook: str, path: Path | str, root: Path = REPO_ROOT) -> str | None:
    """A warning when published results were made by code older than the code that shows them.

    The results' provenance names the commit they were made at. They are *stale* when the
    notebook's source, its parameter file or the library differ between that commit and the
    working tree (``git diff <commit> -- <paths>``): anything committed after the results, or not
    yet committed, that can change them. Results made from a tree with uncommitted changes
    (commit ``<sha>-dirty``) are compared from ``<sha>`` and flagged as such.

    Args:
        notebook: The notebook name.
        path: The published folder (:func:`published_dir`) or one result file in it.
        root: The repository (for tests).

    Returns:
        ``None`` when the results are fresh, or when freshness cannot be judged because git or the
        repository history is absent (a source archive); otherwise one sentence naming the commit,
        what changed since, and the command that refreshes them.
    """
    record = read_provenance(path)
    scale = (record or {}).get("scale", Path(path).name if Path(path).is_dir() else "gpu")
    command = f"python -m adamlinf.run --scale {scale} --only {notebook} --publish"
    if not record or not record.get("git_commit") or record["git_commit"] == "unknown":
        return f"the published {notebook} results carry no commit, so their age is unknown; re-run: {command}"
    commit = str(record["git_commit"])
    dirty = commit.endswith("-dirty")
    sha = commit.removesuffix("-dirty")
    probe = _git("rev-parse", "--is-inside-work-tree", root=root)
    if probe is None or probe.returncode != 0:
        return None  # no git or no repository: nothing to compare against
    if _git("cat-file", "-e", f"{sha}^{{commit}}", root=root).returncode != 0:
        return (
            f"the published {notebook} results were made at commit {sha[:10]}, which this "
            f"repository's history does not contain; re-run: {command}"
        )
    diff = _git("diff", "--name-only", sha, "--", *code_paths(notebook), root=root)
    if diff is None or diff.returncode != 0:
        return None
    changed = [line for line in diff.stdout.splitlines() if line.strip()]
    if not changed and not dirty:
        return None
    shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
    what = f"; since then {shown} changed" if changed else ""
    made = f"commit {sha[:10]}" + (" with uncommitted changes" if dirty else "")
    return f"the published {notebook} results were made at {made}{what}; re-run: {command}"
