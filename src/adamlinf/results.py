"""Where results live: tidy CSV / JSON files, each with its provenance record beside it.

Writes are atomic (:func:`write_atomic`); a failed one is a one-line :class:`WriteError`.
:func:`exclusive` is the advisory lock of a results or run folder; :func:`begin_staging` and
:func:`commit_staging` publish a notebook's results all together, with SHA-256 digests.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno as _errno
import fcntl
import hashlib
import importlib.metadata as _md
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULTS_ROOT = Path(os.environ.get("ADAMLINF_RESULTS", REPO_ROOT / "results"))

_PACKAGES = ("adamlinf", "torch", "torchvision", "numpy", "scipy", "pandas", "matplotlib", "seaborn")
_PACKAGES += ("papermill", "jupyter-book", "datasets", "tiktoken")


def git_commit(root: Path = REPO_ROOT) -> str:
    """The repository's commit (``-dirty`` with uncommitted changes to tracked files), or ``"unknown"``."""
    head = _git("rev-parse", "HEAD", root=root)
    if head is None or head.returncode != 0:
        return "unknown"
    dirty = _git("status", "--porcelain", "--untracked-files=no", root=root)
    return head.stdout.strip() + ("-dirty" if dirty is not None and dirty.stdout.strip() else "")


def _version(name: str) -> str:
    try:
        return _md.version(name)
    except _md.PackageNotFoundError:
        return "not installed"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def device_description(device: str | None = None) -> str:
    """A human-readable name of the hardware a result was computed on."""
    import torch  # imported here: the runner's checks stay fast

    if (device is None or str(device).startswith("cuda")) and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    cpu = platform.processor() or platform.machine()
    return f"CPU {cpu} ({os.cpu_count()} cores, torch threads {torch.get_num_threads()})"


def provenance(
    params: Mapping[str, Any] | None = None,
    *,
    wall_time_s: float | None = None,
    device: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The provenance record saved beside each result and executed notebook."""
    rec = {
        "created": _now(),
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device_description(device),
        "packages": {name: _version(name) for name in _PACKAGES},
        "parameters": dict(params or {}),
    }
    if wall_time_s is not None:
        rec["wall_time_s"] = round(float(wall_time_s), 3)
    rec.update(extra)
    if isinstance(rec["parameters"].get("results_dir"), (str, Path)):  # a staging folder is not the place
        rec["parameters"]["results_dir"] = str(final_dir(rec["parameters"]["results_dir"]))
    return rec


def results_dir(name: str, scale: str = "ci", root: Path | str | None = None) -> Path:
    """``results/<name>/<scale>/``, created (a :class:`WriteError` naming the folder and the cause)."""
    return make_dirs(Path(root or RESULTS_ROOT) / name / scale)


_CAUSES = {
    _errno.ENOSPC: "no space left on device (the disk is full)",
    _errno.EDQUOT: "disk quota exceeded",
    _errno.EROFS: "read-only file system",
    _errno.EACCES: "permission denied (a read-only folder?)",
    _errno.EPERM: "operation not permitted",
    _errno.ELOOP: "too many levels of symbolic links (a symlink loop)",
    _errno.ENOTDIR: "a part of the path is a file, not a folder",
    _errno.EFBIG: "file too large",
}


class WriteError(OSError):
    """An ``OSError`` (with the original ``errno``) whose message is one line naming the path and cause."""

    def __str__(self) -> str:
        return self.strerror or super().__str__()


def describe_os_error(exc: OSError, path: Path | str, action: str = "write") -> WriteError:
    """``exc`` as a :class:`WriteError`: ``cannot <action> <path>: <cause>`` on one line."""
    if isinstance(exc, WriteError):
        return exc
    cause = _CAUSES.get(exc.errno) or (exc.strerror or str(exc)).splitlines()[0]
    where = exc.filename if exc.filename and str(exc.filename) != str(path) else None
    text = f"cannot {action} {path}: {cause}" + (f" (at {where})" if where else "")
    err = WriteError(exc.errno or 0, text)
    err.filename = str(path)
    return err


def make_dirs(path: Path | str) -> Path:
    """``mkdir -p path``; a failure is a :class:`WriteError` naming the folder and the cause."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:  # a file where the folder should be
        raise describe_os_error(OSError(_errno.ENOTDIR, str(exc)), path, "create folder") from None
    except OSError as exc:
        raise describe_os_error(exc, path, "create folder") from None
    return path


def write_atomic(path: Path | str, write: Callable[[IO[bytes]], Any], *, fsync: bool = True) -> Path:
    """Write ``path`` through ``write(binary file)`` into a temporary file, then rename it over ``path``."""
    path = Path(path)
    make_dirs(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise describe_os_error(exc, path) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return path


def write_text_atomic(path: Path | str, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`write_atomic`)."""
    return write_atomic(path, lambda f: f.write(text.encode()))


class SavedPath(type(Path())):
    """The path a ``save_*`` function wrote, which a notebook cell does not display."""

    def _ipython_display_(self) -> None:
        """Display nothing."""


def save_json(obj: Mapping[str, Any], path: Path | str) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically (folders created); return ``path``."""
    path = SavedPath(path)
    text = json.dumps(obj, indent=2, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
    write_text_atomic(path, text + "\n")
    return path


def save_table(df, path: Path | str, params: Mapping[str, Any] | None = None, **extra: Any) -> Path:
    """Write a tidy DataFrame to CSV and its :func:`provenance` (``extra``: more fields) beside it."""
    path = SavedPath(path)
    write_text_atomic(path, df.to_csv(index=False))
    save_json(provenance(params, **extra), path.with_suffix(path.suffix + ".provenance.json"))
    return path


class Busy(RuntimeError):
    """Another live process holds the lock (the message names its pid and what it does)."""


def lock_holder(path: Path | str) -> dict[str, Any] | None:
    """What a lock file says about its last holder (``pid``, ``what``, ``since``), or None."""
    try:
        record = json.loads(Path(path).read_text() or "null")
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


@contextlib.contextmanager
def exclusive(
    path: Path | str, what: str, *, wait: bool = True, say: Callable[[str], Any] | None = None
) -> Iterator[Path]:
    """Hold ``fcntl.flock`` on ``path``: wait for a live holder (``wait=False``: :class:`Busy`)."""
    path = Path(path)
    say = say or (lambda text: print(text, file=sys.stderr, flush=True))
    make_dirs(path.parent)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise describe_os_error(exc, path, "create lock file") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = lock_holder(path) or {}
            who = f"pid {holder.get('pid', '?')}" + (f" ({holder['what']})" if holder.get("what") else "")
            if not wait:
                raise Busy(f"{what}: {path} is locked by {who}; wait for it to finish or stop it") from None
            say(f"[lock] {what}: waiting for {who} to finish ({path})")
            fcntl.flock(fd, fcntl.LOCK_EX)
        else:
            old = lock_holder(path)
            if old and isinstance(old.get("pid"), int) and old["pid"] != os.getpid():
                try:
                    os.kill(old["pid"], 0)  # no error: alive
                except ProcessLookupError:
                    say(f"[lock] {what}: taking over the stale lock of dead pid {old['pid']} ({path})")
        record = {"pid": os.getpid(), "what": what, "since": _now()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)  # released in order: the next holder finds no stale record
    finally:
        os.close(fd)  # releases the lock


_STAGING = ".staging"
_READY = ".ready"


def final_dir(path: Path | str) -> Path:
    """``<parent>/<name>`` for a staging folder ``<parent>/.<name>.staging``; other paths unchanged."""
    path = Path(path)
    if path.name.startswith(".") and path.name.endswith(_STAGING) and len(path.name) > len(_STAGING) + 1:
        return path.with_name(path.name[1 : -len(_STAGING)])
    return path


def begin_staging(final: Path | str) -> Path:
    """A fresh staging folder ``.<name>.staging`` for ``final`` (a leftover one committed or cleared)."""
    final = make_dirs(final)
    staging = final.with_name(f".{final.name}{_STAGING}")
    if staging.is_dir() and (staging / _READY).exists():
        commit_staging(staging, final)
    if staging.is_symlink() or (staging.exists() and not staging.is_dir()):
        staging.unlink()
    elif staging.exists():  # a failed run's: its run folders are kept in final, its files dropped
        for sub in sorted(staging.iterdir()):
            if sub.is_dir() and not sub.is_symlink():
                _move_in(sub, final)
        shutil.rmtree(staging)
    make_dirs(staging)
    for sub in sorted(final.iterdir()):
        if sub.is_dir() and not sub.name.startswith("."):
            os.symlink(os.path.join("..", final.name, sub.name), staging / sub.name)
    return staging


def _move_in(folder: Path, final: Path) -> None:
    """Move ``folder`` into ``final``, beside (never over) a folder of the same name."""
    target, n = final / folder.name, 1
    while target.exists() or target.is_symlink():
        target, n = final / f"{folder.name}@staged-{n}", n + 1
    os.replace(folder, target)


def commit_staging(
    staging: Path | str, final: Path | str, also: Mapping[Path | str, Path | str] | None = None
) -> Path:
    """Replace ``final``'s files by the staged ones (and rename ``also``: ``{tmp: dest}``); return ``final``.

    A ``.ready`` mark lets the next :func:`begin_staging` finish a commit cut short.
    """
    staging, final = Path(staging), Path(final)
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})  # not cut in two
    try:
        (staging / _READY).touch()
        staged = {p.name for p in staging.iterdir() if p.name != _READY}
        for name in sorted(staged):
            src = staging / name
            if src.is_symlink():
                continue
            if src.is_dir():
                target = final / name
                if target.is_symlink() or target.is_file():
                    target.unlink()
                _move_in(src, final)  # beside a folder of the same name, if there is one: never over it
            else:
                os.replace(src, final / name)
        for old in final.iterdir():
            if old.is_file() and old.name not in staged and not old.name.startswith("."):
                old.unlink()
        for tmp, dest in (also or {}).items():
            if Path(tmp).exists():
                os.replace(tmp, dest)
        shutil.rmtree(staging, ignore_errors=True)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
    return final


def sha256_file(path: Path | str) -> str:
    """The SHA-256 of a file's bytes (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


#: The provenance field that holds ``{relative path: SHA-256}`` of every published file.
DIGESTS = "sha256"


def file_digests(folder: Path | str, skip: tuple[str, ...] = ("provenance.json",)) -> dict:
    """``{path relative to folder: SHA-256}`` of every file under ``folder`` except ``skip``."""
    folder = Path(folder)
    return {
        str(p.relative_to(folder)): sha256_file(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and str(p.relative_to(folder)) not in skip
    }


def check_digests(folder: Path | str, record: Mapping[str, Any] | None) -> list[str]:
    """The changed, missing and unlisted files of ``folder`` against ``record``'s digests (if any)."""
    folder = Path(folder)
    digests = (record or {}).get(DIGESTS)
    if not isinstance(digests, Mapping):
        return []
    problems = []
    now = file_digests(folder)
    for rel, digest in sorted(digests.items()):
        if rel not in now:
            problems.append(f"{rel} is missing")
        elif now[rel] != digest:
            problems.append(f"{rel} was changed after publication (its SHA-256 differs)")
    problems += [f"{rel} is not in the published record" for rel in sorted(set(now) - set(digests))]
    return problems


def upstream_dir(results_dir: Path | str, notebook: str, required: str | None = None) -> Path:
    """``results/<notebook>/<scale>/`` beside ``results_dir`` (``required``: a file it must hold)."""
    results_dir = final_dir(results_dir)
    scale = results_dir.name
    path = results_dir.parent.parent / notebook / scale
    if required is not None and not (path / required).exists():
        raise FileNotFoundError(
            f"{path / required} not found: execute {notebook} at scale '{scale}' "
            f"first (python -m adamlinf.run --scale {scale} --only {notebook})"
        )
    return path


PUBLISHED_ROOT = Path(os.environ.get("ADAMLINF_PUBLISHED", REPO_ROOT / "published"))

#: The provenance file ``python -m adamlinf.run --publish`` writes beside the published tables.
PROVENANCE_FILE = "provenance.json"


def published_dir(notebook: str, scale: str = "gpu", root: Path | str | None = None) -> Path | None:
    """``published/<notebook>/<scale>/``, or None when nothing is published there."""
    path = Path(root or PUBLISHED_ROOT) / notebook / scale
    return path if path.is_dir() and any(path.iterdir()) else None


def read_provenance(path: Path | str) -> dict[str, Any] | None:
    """The provenance of a folder (``provenance.json``, else its newest ``*.provenance.json``) or a file."""
    path = Path(path)
    if not path.is_dir():
        own = path.name.endswith(".json")
        candidates = [path if own else path.with_suffix(path.suffix + ".provenance.json")]
    elif (path / PROVENANCE_FILE).exists():
        candidates = [path / PROVENANCE_FILE]
    else:
        candidates = sorted(path.glob("*.provenance.json"), key=lambda p: p.stat().st_mtime, reverse=True)
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


def check_fresh(notebook: str, path: Path | str, root: Path = REPO_ROOT) -> str | None:
    """A warning when the notebook, its parameters or the library changed since the published commit."""
    record = read_provenance(path)
    folder = Path(path) if Path(path).is_dir() else Path(path).parent
    scale = folder.name if folder.name in ("ci", "gpu", "paper") else (record or {}).get("scale", "gpu")
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
    paths = (f"book/notebooks/{notebook}.py", f"params/{notebook}.yaml", "src/adamlinf")
    diff = _git("diff", "--name-only", sha, "--", *paths, root=root)
    if diff is None or diff.returncode != 0:
        return None
    changed = [line for line in diff.stdout.splitlines() if line.strip()]
    if not changed and not dirty:
        return None
    shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
    what = f"; since then {shown} changed" if changed else ""
    made = f"commit {sha[:10]}" + (" with uncommitted changes" if dirty else "")
    return f"the published {notebook} results were made at {made}{what}; re-run: {command}"
