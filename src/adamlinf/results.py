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
import time
from pathlib import Path
from typing import Any, Mapping

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULTS_ROOT = Path(os.environ.get("ADAMLINF_RESULTS", REPO_ROOT / "results"))

_PACKAGES = ("adamlinf", "torch", "torchvision", "numpy", "scipy", "pandas", "matplotlib",
             "seaborn", "papermill", "jupyter-book", "datasets", "tiktoken")


def git_commit(root: Path = REPO_ROOT) -> str:
    """The current commit of the repository (with ``-dirty`` if the tree has changes), or
    ``"unknown"`` outside a git checkout."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_versions(names=_PACKAGES) -> dict[str, str]:
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
    return f"CPU {platform.processor() or platform.machine()} ({os.cpu_count()} cores, torch threads {threads})"


def provenance(params: Mapping[str, Any] | None = None, *, wall_time_s: float | None = None,
               device: str | None = None, **extra: Any) -> dict[str, Any]:
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
    """``json.dumps`` fallback for what it cannot encode: NumPy / torch scalars and arrays become
    numbers / lists (``.tolist()``), anything else (paths, dtypes, ...) its ``str``."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


def save_json(obj: Mapping[str, Any], path: Path | str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, default=_jsonable) + "\n")
    return path


def save_table(df, path: Path | str, params: Mapping[str, Any] | None = None, *,
               wall_time_s: float | None = None, **extra: Any) -> Path:
    """Write a tidy ``pandas.DataFrame`` to CSV and its provenance to ``<path>.provenance.json``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)
    save_json(provenance(params, wall_time_s=wall_time_s, **extra),
              path.with_suffix(path.suffix + ".provenance.json"))
    return path


class Timer:
    """``with Timer() as t: ...; t.seconds``"""

    def __enter__(self):
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
        return False


def upstream_dir(results_dir: Path | str, notebook: str, required: str | None = None) -> Path:
    """The results folder of another notebook at the same scale (``results/<notebook>/<scale>/``,
    beside ``results_dir``), for notebooks that read an earlier notebook's runs. With
    ``required``, raises a ``FileNotFoundError`` naming the runner command when that file is
    missing."""
    results_dir = Path(results_dir)
    scale = results_dir.name
    path = results_dir.parent.parent / notebook / scale
    if required is not None and not (path / required).exists():
        raise FileNotFoundError(f"{path / required} not found: execute {notebook} at scale '{scale}' "
                                f"first (python -m adamlinf.run --scale {scale} --only {notebook})")
    return path
