"""Results that stay whole under concurrency, full disks and interrupts (issue 24).

Concurrency and signals are tested with real processes, synchronised through files (a notebook
that waits for a "go" file, the lock's "waiting for pid" message, metrics rows on disk), never by
sleeping for a fixed time. A full disk is an injected ``OSError(ENOSPC)`` raised halfway through
a write.
"""

from __future__ import annotations

import builtins
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

import adamlinf
from adamlinf import launch, results, run, train
from adamlinf.studies import sweeps

SRC = Path(adamlinf.__file__).resolve().parents[1]  # the subprocesses import the code under test
TIMEOUT = 120  # seconds a process may take on a loaded machine before the test gives up


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(SRC) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


def _wait_for(predicate, what: str, proc: subprocess.Popen | None = None, timeout: float = TIMEOUT):
    """Poll ``predicate`` until it is true; fail with ``what`` on timeout or when ``proc`` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None and not predicate():
            out, err = proc.communicate()
            pytest.fail(f"the process exited ({proc.returncode}) before {what}:\n{out}\n{err}")
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


# ------------------------------------------------------------------------------------------------
# a miniature book whose notebook waits for a "go" file
# ------------------------------------------------------------------------------------------------
NOTEBOOK = """# %% tags=["parameters"]
scale = "ci"
results_dir = "nowhere"
seed = 1
gate = ""

# %%
import time
from pathlib import Path
out = Path(results_dir)
(out / "a.csv").write_text(f"seed\\n{seed}\\n")
if gate:
    Path(gate + f".started-{seed}").write_text("started")
    while not Path(gate + ".go").exists():
        time.sleep(0.05)
(out / "b.csv").write_text(f"seed\\n{seed}\\n")
"""

DRIVER = """import os, signal, sys
from pathlib import Path
from adamlinf import results, run
signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C, even when started from a background job
root = Path(sys.argv[1])
run.TOC = root / "_toc.yml"
run.SOURCES = root / "book" / "notebooks"
run.EXECUTED = root / "book" / "executed"
run.PARAMS = root / "params"
results.RESULTS_ROOT = root / "results"
os.environ["ADAMLINF_SOURCES"] = str(run.SOURCES)
sys.exit(run.main(sys.argv[2:]))
"""


@pytest.fixture
def book(tmp_path, monkeypatch):
    (tmp_path / "book" / "notebooks").mkdir(parents=True)
    (tmp_path / "params").mkdir()
    toc = {"format": "jb-book", "root": "book/intro", "chapters": [{"file": "book/executed/gate"}]}
    (tmp_path / "_toc.yml").write_text(yaml.safe_dump(toc))
    (tmp_path / "book" / "notebooks" / "gate.py").write_text(NOTEBOOK)
    (tmp_path / "params" / "gate.yaml").write_text(yaml.safe_dump({"ci": {"seed": 1, "gate": ""}}))
    (tmp_path / "drive.py").write_text(DRIVER)
    monkeypatch.setattr(run, "TOC", tmp_path / "_toc.yml")
    monkeypatch.setattr(run, "SOURCES", tmp_path / "book" / "notebooks")
    monkeypatch.setattr(run, "EXECUTED", tmp_path / "book" / "executed")
    monkeypatch.setattr(run, "PARAMS", tmp_path / "params")
    monkeypatch.setattr(results, "RESULTS_ROOT", tmp_path / "results")
    monkeypatch.setenv("ADAMLINF_SOURCES", str(tmp_path / "book" / "notebooks"))
    return tmp_path


def _runner(book: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(book / "drive.py"), str(book), "--only", "gate", *args],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _seeds_shown(book: Path) -> dict:
    out = book / "results" / "gate" / "ci"
    prov = json.loads((out / "provenance.json").read_text())
    executed = json.loads((book / "book" / "executed" / "gate.provenance.json").read_text())
    return {
        "a": int(pd.read_csv(out / "a.csv").seed.iloc[0]),
        "b": int(pd.read_csv(out / "b.csv").seed.iloc[0]),
        "provenance": prov["parameters"]["seed"],
        "executed": executed["parameters"]["seed"],
    }


def test_second_runner_waits_for_the_first_and_never_mixes_one_results_folder(book):
    gate = str(book / "gate")
    first = _runner(book, "--set", "seed=1", "--set", f"gate={gate}")
    _wait_for(lambda: Path(gate + ".started-1").exists(), "the first notebook to start", first)
    # a third runner that may not wait is refused, naming the holder's pid
    refused = _runner(book, "--set", "seed=3", "--no-wait")
    _, err = refused.communicate(timeout=TIMEOUT)
    assert refused.returncode == 75, err
    assert f"pid {first.pid}" in err and err.count("FAILED: gate:") == 1
    second = _runner(book, "--set", "seed=2", "--set", f"gate={gate}")
    errors = []

    def waiting():
        line = second.stderr.readline()
        errors.append(line)
        return "waiting for pid" in line or Path(gate + ".started-2").exists()

    _wait_for(waiting, "the second runner to wait for the lock", second)
    assert not Path(gate + ".started-2").exists(), "the second runner ran beside the first"
    assert f"pid {first.pid}" in "".join(errors)
    Path(gate + ".go").write_text("go")
    assert first.wait(TIMEOUT) == 0 and second.wait(TIMEOUT) == 0
    assert _seeds_shown(book) == {"a": 2, "b": 2, "provenance": 2, "executed": 2}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_runner_keeps_the_last_good_set_and_prints_one_failed_line(book, sig):
    assert run.main(["--only", "gate", "--set", "seed=1"]) == 0
    before = _seeds_shown(book)
    gate = str(book / "gate")
    proc = _runner(book, "--set", "seed=2", "--set", f"gate={gate}")
    _wait_for(lambda: Path(gate + ".started-2").exists(), "the notebook to start", proc)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 130, err
    assert err.count("FAILED: gate:") == 1 and "interrupted" in err, err
    assert "Traceback" not in err, err
    assert _seeds_shown(book) == before == {"a": 1, "b": 1, "provenance": 1, "executed": 1}
    if sig == signal.SIGINT:
        return
    # the next run finds no leftovers and commits a whole new set
    Path(gate + ".go").write_text("go")
    assert run.main(["--only", "gate", "--set", "seed=2"]) == 0
    assert _seeds_shown(book) == {"a": 2, "b": 2, "provenance": 2, "executed": 2}


def test_runner_messages_for_a_read_only_folder_and_a_symlink_loop(book, monkeypatch, capsys):
    real_mkdir = Path.mkdir

    def read_only(self, *args, **kwargs):
        if "results" in self.parts:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only)
    assert run.main(["--only", "gate"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1
        and err[0].startswith("FAILED: gate: cannot create folder")
        and "permission denied" in err[0]
    )
    monkeypatch.setattr(Path, "mkdir", real_mkdir)
    loop = book / "loop"
    os.symlink(book / "loop2", loop)
    os.symlink(loop, book / "loop2")
    monkeypatch.setattr(results, "RESULTS_ROOT", loop / "results")
    assert run.main(["--only", "gate"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "symlink loop" in err[0] and str(loop) in err[0], err


# ------------------------------------------------------------------------------------------------
# staging, upstream folders, run folders
# ------------------------------------------------------------------------------------------------
def test_staging_commits_all_together_and_keeps_run_folders(tmp_path):
    final = tmp_path / "results" / "nb" / "ci"
    (final / "runs" / "adam").mkdir(parents=True)
    (final / "runs" / "adam" / "metrics.csv").write_text("iter\n0\n")
    (final / "old.csv").write_text("old\n")
    (final / "kept.csv").write_text("v1\n")
    staging = results.begin_staging(final)
    assert results.final_dir(staging) == final
    assert results.upstream_dir(staging, "other") == tmp_path / "results" / "other" / "ci"
    # the notebook writes a table and a new run (through the linked runs/ folder) ... then fails
    (staging / "kept.csv").write_text("v2\n")
    (staging / "runs" / "sgd").mkdir()
    (staging / "fresh").mkdir()
    (staging / "fresh" / "x.txt").write_text("cache")
    assert (final / "kept.csv").read_text() == "v1\n"  # nothing visible before the commit
    staging = results.begin_staging(final)  # the next run starts: the failed run's files are dropped
    assert (final / "kept.csv").read_text() == "v1\n" and not (staging / "kept.csv").exists()
    assert (final / "runs" / "sgd").is_dir() and (final / "fresh" / "x.txt").read_text() == "cache"
    (staging / "kept.csv").write_text("v3\n")
    prov = results.provenance({"results_dir": str(staging)})
    assert prov["parameters"]["results_dir"] == str(final)
    results.commit_staging(staging, final)
    assert (final / "kept.csv").read_text() == "v3\n"
    assert not (final / "old.csv").exists()  # a table of the earlier parameters is not mixed in
    assert (final / "runs" / "adam" / "metrics.csv").exists() and (final / "runs" / "sgd").is_dir()
    assert not staging.exists()


def test_a_commit_cut_short_is_finished_by_the_next_run(tmp_path):
    final = tmp_path / "nb" / "ci"
    (final).mkdir(parents=True)
    (final / "a.csv").write_text("old\n")
    staging = results.begin_staging(final)
    (staging / "a.csv").write_text("new\n")
    (staging / ".ready").touch()  # the commit began, then the process was killed
    results.begin_staging(final)
    assert (final / "a.csv").read_text() == "new\n"


# ------------------------------------------------------------------------------------------------
# locks
# ------------------------------------------------------------------------------------------------
def test_a_lock_of_a_dead_process_is_stale_and_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock = tmp_path / ".x.lock"
    lock.write_text(json.dumps({"pid": dead.pid, "what": "a crashed runner"}))
    said = []
    with results.exclusive(lock, "test", wait=False, say=said.append):
        assert results.lock_holder(lock)["pid"] == os.getpid()
    assert said and f"dead pid {dead.pid}" in said[0]


def test_a_held_lock_refuses_naming_the_holder(tmp_path):
    lock = tmp_path / ".x.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from adamlinf import results\n"
            f"with results.exclusive({str(lock)!r}, 'holder'):\n"
            "    print('held', flush=True); sys.stdin.readline()",
        ],
        env=_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(results.Busy, match=f"pid {holder.pid} \\(holder\\)"):
            with results.exclusive(lock, "second", wait=False):
                pass
    finally:
        holder.communicate("\n", timeout=TIMEOUT)


# ------------------------------------------------------------------------------------------------
# full disk
# ------------------------------------------------------------------------------------------------
class _FullDisk:
    """A file whose writes stop halfway with ENOSPC, as on a full disk."""

    def __init__(self, f):
        self._f = f

    def write(self, data):
        self._f.write(data[: len(data) // 2])
        self._f.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


@pytest.fixture
def full_disk(monkeypatch):
    """Writes (mode "w"/"wb") under the returned folder fail with ENOSPC halfway."""
    real_open = builtins.open
    folders = []

    def opener(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        if any(m in mode for m in "wax") and any(str(file).startswith(str(d)) for d in folders):
            return _FullDisk(f)
        return f

    monkeypatch.setattr(builtins, "open", opener)
    return folders


def test_a_full_disk_keeps_the_last_good_table_and_says_so_in_one_line(tmp_path, full_disk):
    path = tmp_path / "sweep.csv"
    old = pd.DataFrame({"x": range(50), "y": [0.5] * 50})
    results.save_table(old, path, {"seed": 1})
    good = path.read_text(), path.with_suffix(".csv.provenance.json").read_text()
    full_disk.append(tmp_path)
    with pytest.raises(OSError) as info:
        results.save_table(pd.DataFrame({"x": range(80), "y": [1.5] * 80}), path, {"seed": 2})
    assert info.value.errno == errno.ENOSPC
    message = str(info.value)
    assert "\n" not in message and str(path) in message and "no space left" in message
    assert (path.read_text(), path.with_suffix(".csv.provenance.json").read_text()) == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep.csv", "sweep.csv.provenance.json"]
    with pytest.raises(OSError, match="no space left"):
        results.save_json({"a": 1}, tmp_path / "sweep.csv.provenance.json")
    assert path.with_suffix(".csv.provenance.json").read_text() == good[1]


def test_a_checkpoint_on_a_full_disk_names_the_file_and_leaves_no_tmp(tmp_path, full_disk):
    state = {"w": torch.arange(4096.0)}
    first = train.save_checkpoint(state, tmp_path, 1)
    full_disk.append(tmp_path)
    with pytest.raises(OSError) as info:
        train.save_checkpoint({"w": torch.zeros(4096)}, tmp_path, 2)
    assert info.value.errno == errno.ENOSPC
    assert "checkpoint" not in type(info.value).__name__.lower()
    assert str(train.checkpoint_path(tmp_path, 2)) in str(info.value) and "no space left" in str(info.value)
    assert "inline_container" not in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == [first.name, first.name + ".sha256"]


# ------------------------------------------------------------------------------------------------
# run folders: two processes, damaged records, a cut-short metrics.csv
# ------------------------------------------------------------------------------------------------
RUN_SPECS = """import json, sys, torch
torch.set_num_threads(1)
from adamlinf import launch
spec = json.load(open(sys.argv[1]))
df = launch.run_specs({"r": spec}, sys.argv[2])
print("rows", len(df), flush=True)
"""


def _run_specs_process(tmp_path: Path, spec: dict, root: Path, tag: str) -> subprocess.Popen:
    (tmp_path / f"{tag}.json").write_text(json.dumps(spec))
    (tmp_path / "run_specs.py").write_text(RUN_SPECS)
    return subprocess.Popen(
        [sys.executable, str(tmp_path / "run_specs.py"), str(tmp_path / f"{tag}.json"), str(root)],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_run_specs_waits_while_another_process_holds_the_run_folder(tmp_path, tiny_spec):
    root = tmp_path / "runs"
    run_a = root / "r"
    run_a.mkdir(parents=True)
    spec_a = tiny_spec(lr=1e-2, max_iters=6)
    (run_a / launch.SPEC_FILE).write_text(json.dumps(spec_a))  # process A's run, in the middle of training
    with results.exclusive(root / ".r.lock", "process A"):
        b = _run_specs_process(tmp_path, tiny_spec(lr=3e-3, max_iters=6), root, "b")
        lines = []

        def waiting():
            lines.append(b.stderr.readline())
            return "waiting for pid" in lines[-1]

        _wait_for(waiting, "process B to wait for A's lock", b)
        assert f"pid {os.getpid()} (process A)" in lines[-1]
        assert sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) == ["r"]
        assert json.loads((run_a / launch.SPEC_FILE).read_text()) == spec_a  # A's folder untouched
    out, err = b.communicate(timeout=TIMEOUT)
    assert b.returncode == 0, err
    assert launch.is_complete(root / "r", tiny_spec(lr=3e-3, max_iters=6))
    assert (root / f"r@{launch.spec_key(spec_a)}" / launch.SPEC_FILE).exists()  # A's run moved aside, kept


def test_two_processes_with_one_spec_train_it_once(tmp_path, tiny_spec):
    root = tmp_path / "runs"
    spec = tiny_spec(max_iters=20, checkpoint_interval=5)
    procs = [_run_specs_process(tmp_path, spec, root, tag) for tag in ("a", "b")]
    outs = [p.communicate(timeout=TIMEOUT) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert all("rows 21" in out for out, _ in outs)
    rows = [json.loads(line) for line in (root / "r" / "metrics.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in rows] == list(range(21))  # no duplicate rows
    assert launch.is_complete(root / "r", spec)


def test_an_empty_spec_or_marker_is_named_with_the_fix(tmp_path, tiny_spec):
    spec = tiny_spec(max_iters=6)
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / launch.SPEC_FILE).write_text("")
    with pytest.raises(ValueError) as info:
        launch.run_specs({"r": spec}, tmp_path, verbose=False)
    path = tmp_path / "r" / launch.SPEC_FILE
    assert f"{path} is empty" in str(info.value) and f"rm '{path}'" in str(info.value)
    path.unlink()
    (tmp_path / "r" / launch.COMPLETE_FILE).write_text('{"spec": ')
    with pytest.raises(ValueError, match=f"{launch.COMPLETE_FILE} is damaged .*rm '"):
        launch.is_complete(tmp_path / "r", spec)
    (tmp_path / "r" / launch.COMPLETE_FILE).unlink()  # the fix the message names
    assert len(launch.run_specs({"r": spec}, tmp_path, verbose=False)) == 7


def test_a_cut_short_final_metrics_file_is_rebuilt_from_the_checkpoint(tmp_path, tiny_spec):
    spec = tiny_spec(max_iters=12)
    full = launch.run_specs({"r": spec}, tmp_path, verbose=False)
    out = tmp_path / "r"
    text_ = (out / "metrics.csv").read_text()
    (out / "metrics.csv").write_text(text_[: len(text_) // 2])  # a kill during the last metrics write
    (out / launch.COMPLETE_FILE).unlink()
    again = launch.run_specs({"r": spec}, tmp_path, verbose=False)
    assert len(again) == len(full) == 13 and again.iter.max() == 12
    pd.testing.assert_frame_equal(again, full)
    assert launch.is_complete(out, spec)


# ------------------------------------------------------------------------------------------------
# signals during training (a real subprocess)
# ------------------------------------------------------------------------------------------------
TRAINER = """import json, sys, torch
torch.set_num_threads(1)
from adamlinf import launch
spec = json.load(open(sys.argv[1]))
spec["train"]["out_dir"] = sys.argv[2]
launch.run(spec)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_training_checkpoints_at_the_next_step(tmp_path, tiny_spec, sig):
    out = tmp_path / "run"
    spec = tiny_spec(max_iters=100_000, checkpoint_interval=0, log_interval=1)
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    (tmp_path / "trainer.py").write_text(TRAINER)
    proc = subprocess.Popen(
        [sys.executable, str(tmp_path / "trainer.py"), str(tmp_path / "spec.json"), str(out)],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def trained():
        path = out / "metrics.jsonl"
        return path.exists() and len(path.read_text().splitlines()) >= 3

    _wait_for(trained, "three iterations", proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 143 if sig == signal.SIGTERM else proc.returncode != 0, err
    stopped = [line for line in err.splitlines() if line.startswith("[train] stopped by")]
    assert len(stopped) == 1 and signal.Signals(sig).name in stopped[0], err
    ckpt, path = train.newest_checkpoint(out)
    assert f"checkpoint {path} written" in stopped[0]
    assert ckpt["iter"] >= 3 and len(ckpt["metrics"]) == ckpt["iter"]
    assert len(pd.read_csv(out / "metrics.csv")) == ckpt["iter"]


# ------------------------------------------------------------------------------------------------
# parameters
# ------------------------------------------------------------------------------------------------
def test_set_merges_a_dict_into_the_scales_dict():
    gpt = run.resolve_parameters("thm41_estimator", "ci", {"gpt": "{'vocab_size': 32}"})["gpt"]
    assert gpt == {**run.load_parameters("thm41_estimator", "ci")["gpt"], "vocab_size": 32}


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("seeds=[0]", "at least 2 distinct seeds"),
        ("seeds=[0, 0]", "repeats a seed"),
        ("seeds=[]", "is empty"),
        ("optimizers=[]", "is empty"),
    ],
)
def test_single_seed_and_empty_lists_are_refused_before_anything_runs(setting, message, monkeypatch):
    monkeypatch.setattr(run, "execute", lambda *a, **k: pytest.fail("a notebook ran"))
    key, value = setting.split("=", 1)
    with pytest.raises(SystemExit, match=message):
        run.check_overrides(run.notebook_order(), "ci", {key: value})


def test_zero_length_settings_are_refused_with_the_minimum():
    assert "at least 2" in run.check_setting("n_seeds", 1)
    assert "at least 1" in run.check_setting("stop_iter", 0)
    assert "positive" in run.check_setting("epochs", 0.0)
    with pytest.raises(ValueError, match="stop_iter must be >= 1"):
        train.TrainConfig(out_dir="x", stop_iter=0)
    with pytest.raises(ValueError, match="epochs must be a positive number, got 0"):
        launch.image_spec(source="digits", batch_size=8, epochs=0)
    with pytest.raises(ValueError, match="evals_per_epoch must be at least 1"):
        launch.image_spec(source="digits", batch_size=8, epochs=1, evals_per_epoch=0)


# ------------------------------------------------------------------------------------------------
# published results
# ------------------------------------------------------------------------------------------------
@pytest.fixture
def published(tmp_path, monkeypatch):
    """A published folder made by ``run.publish`` from a results folder."""
    monkeypatch.setattr(results, "RESULTS_ROOT", tmp_path / "results")
    monkeypatch.setattr(results, "check_fresh", lambda name, path: None)  # no git history here
    src = results.results_dir("nb", "gpu")
    pd.DataFrame({"optimizer": ["adam", "sgd"], "final": [2.0, 3.0]}).to_csv(src / "finals.csv", index=False)
    results.save_json(results.provenance({"seed": 0}, scale="gpu", notebook="nb"), src / "provenance.json")
    dest = run.publish("nb", "gpu", root=tmp_path / "published")
    return dest


def test_published_files_carry_digests_and_an_edit_is_flagged(published):
    record = json.loads((published / "provenance.json").read_text())
    assert record["sha256"] == {"finals.csv": results.sha256_file(published / "finals.csv")}
    clean = sweeps.load_published("nb", folder=published)
    assert clean.warning is None and clean.problems == []
    (published / "finals.csv").write_text("optimizer,final\nadam,1.0\nsgd,3.0\n")  # an edited number
    edited = sweeps.load_published("nb", folder=published)
    assert edited.problems and "finals.csv was changed after publication" in edited.problems[0]
    assert "Not as published" in sweeps.published_note("nb", edited)


def test_unreadable_published_files_warn_instead_of_crashing(published):
    (published / "empty.csv").write_text("")
    (published / "provenance.json").write_text('{"git_commit": "ab')  # truncated
    pub = sweeps.load_published("nb", folder=published)
    assert pub is not None and list(pub.tables) == ["finals"]
    assert any("empty.csv cannot be read" in p for p in pub.problems)
    assert any("provenance.json cannot be read" in p for p in pub.problems)
    assert "Not as published" in sweeps.published_note("nb", pub)


def test_a_published_scale_must_match_its_folder(published, monkeypatch):
    record = json.loads((published / "provenance.json").read_text())
    record["scale"] = "ci"
    (published / "provenance.json").write_text(json.dumps(record))
    pub = sweeps.load_published("nb", folder=published)
    assert any("scale 'ci'" in p for p in pub.problems)
    fix = pub.problems[-1]
    assert "--scale gpu" in fix and "--publish" in fix
    # the fix is a command the runner accepts
    args = fix.split("re-make them: python -m adamlinf.run ")[1].split()
    assert args[:2] == ["--scale", "gpu"] and "gpu" in run.PUBLISHED_SCALES
    monkeypatch.undo()
    del record["git_commit"]
    (published / "provenance.json").write_text(json.dumps(record))
    assert "--scale gpu" in results.check_fresh("nb", published)


def test_a_run_folder_in_a_symlink_loop_is_one_line(tmp_path):
    os.symlink(tmp_path / "b", tmp_path / "a")
    os.symlink(tmp_path / "a", tmp_path / "b")
    with pytest.raises(OSError) as info:
        train.out_dir_of(train.TrainConfig(out_dir=str(tmp_path / "a" / "run")))
    message = str(info.value)
    assert "\n" not in message and "symlink loop" in message and str(tmp_path / "a" / "run") in message


def test_a_lock_released_in_order_leaves_no_stale_record(tmp_path):
    """A holder that finishes empties the record: the next run says nothing of a dead pid."""
    lock = tmp_path / "nb.lock"
    code = f"from adamlinf import results\nwith results.exclusive({str(lock)!r}, 'first'):\n    pass\n"
    subprocess.run([sys.executable, "-c", code], check=True, env=_env(), timeout=TIMEOUT)
    assert results.lock_holder(lock) is None
    said = []
    with results.exclusive(lock, "second", say=said.append):
        assert results.lock_holder(lock)["pid"] == os.getpid()
    assert said == []
