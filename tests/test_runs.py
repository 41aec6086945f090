"""Run machinery (adamlinf.runs): torchrun commands (one and several nodes), run folders that never
lose a finished run, partial runs that are never complete, spec keys."""

import json

import pytest

from adamlinf import runs
from adamlinf.data import text

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    r = tmp_path_factory.mktemp("data")
    text.prepare_pydoc(root=r)
    return str(r)


def tiny(root, lr=1e-2, **train):
    kw = dict(max_iters=3, eval_interval=0, progress=False, checkpoint_minutes=0)
    kw.update(train)
    spec = runs.lm_spec(
        dataset="pydoc",
        n_layer=1,
        n_head=2,
        n_embd=8,
        block_size=8,
        batch_size=2,
        eval_iters=1,
        optimizer="adam",
        lr=lr,
        **kw,
    )
    spec["data"]["root"] = root
    return spec


def boom(*args, **kwargs):
    raise AssertionError("the trainer was called")


# ------------------------------------------------------------------------------------------------
# launch commands
# ------------------------------------------------------------------------------------------------
def test_launch_command_one_node_from_a_spec_or_a_path():
    spec = runs.with_train({"model": {}, "data": {}, "train": {}}, out_dir="runs/adam")
    assert runs.launch_command(spec, 4) == [
        "torchrun",
        "--standalone",
        "--nproc_per_node=4",
        "-m",
        "adamlinf.train",
        "--spec",
        "runs/adam/spec.json",
    ]
    assert runs.launch_command("x/spec.json", 2, python="py")[:4] == [
        "py",
        "-m",
        "torch.distributed.run",
        "--standalone",
    ]


def test_launch_command_several_nodes():
    cmd = runs.launch_command("/shared/run/spec.json", 8, nnodes=4, node_rank=2, rdzv_endpoint="node0:29400")
    assert cmd == [
        "torchrun",
        "--nnodes=4",
        "--node_rank=2",
        "--rdzv_backend=c10d",
        "--rdzv_endpoint=node0:29400",
        "--nproc_per_node=8",
        "-m",
        "adamlinf.train",
        "--spec",
        "/shared/run/spec.json",
    ]
    cmd = runs.launch_command("s.json", 8, nnodes=2, node_rank=0, master_addr="10.0.0.1", master_port=1234)
    assert cmd[1:5] == ["--nnodes=2", "--node_rank=0", "--master_addr=10.0.0.1", "--master_port=1234"]
    assert "--standalone" not in cmd
    with pytest.raises(ValueError, match="rdzv_endpoint"):
        runs.launch_command("s.json", 8, nnodes=2)
    with pytest.raises(ValueError, match="node_rank"):
        runs.launch_command("s.json", 8, nnodes=2, node_rank=2, rdzv_endpoint="h:1")
    with pytest.raises(ValueError, match=">= 1"):
        runs.launch_command("s.json", 0)


# ------------------------------------------------------------------------------------------------
# spec keys
# ------------------------------------------------------------------------------------------------
def test_spec_key_counts_only_what_changes_results(root):
    base = tiny(root)
    key = runs.spec_key(base)
    same = [
        runs.with_train(
            base,
            eval_interval=2,
            progress=True,
            device="cuda",
            compile=True,
            checkpoint_interval=7,
            stop_iter=1,
            warmup_iters=0,
        ),  # warmup_iters=0 is the default written out
        runs.with_train(base, tags={"setting": "x"}),
        {**base, "data": {**base["data"], "root": "/elsewhere"}},
    ]
    assert all(runs.spec_key(s) == key for s in same)
    other = [
        runs.with_train(base, lr=2e-2),
        runs.with_train(base, max_iters=4),
        {**base, "data": {**base["data"], "seed": 1}},
        {**base, "model": {**base["model"], "n_embd": 16}},
    ]
    assert len({key, *(runs.spec_key(s) for s in other)}) == 5


# ------------------------------------------------------------------------------------------------
# run folders
# ------------------------------------------------------------------------------------------------
def test_run_specs_never_deletes_a_finished_run(root, tmp_path, monkeypatch):
    a, b = tiny(root), tiny(root, lr=2e-2)
    first = runs.run_specs({"r": a}, tmp_path, verbose=False)
    ckpts_a = sorted(p.name for p in (tmp_path / "r").glob("ckpt-*"))
    # another result-relevant spec: trained in r/, the finished run moved aside, not deleted
    runs.run_specs({"r": b}, tmp_path, verbose=False)
    aside = tmp_path / f"r@{runs.spec_key(a)}"
    assert runs.is_complete(aside, a) and sorted(p.name for p in aside.glob("ckpt-*")) == ckpts_a
    assert runs.is_complete(tmp_path / "r", b)
    # the first spec again: its folder comes back, nothing is trained
    monkeypatch.setattr(runs, "run", boom)
    again = runs.run_specs({"r": a}, tmp_path, verbose=False)
    assert again.train_loss.tolist() == pytest.approx(first.train_loss.tolist(), nan_ok=True)
    assert (tmp_path / f"r@{runs.spec_key(b)}").is_dir() and runs.is_complete(tmp_path / "r", a)
    # execution-only fields (evaluation cadence, progress bar, device, compile) retrain nothing
    runs.run_specs(
        {"r": runs.with_train(a, eval_interval=1, progress=True, compile=False)}, tmp_path, verbose=False
    )
    with pytest.raises(ValueError, match="different spec"):
        runs.run_specs({"r": b}, tmp_path, on_change="error", verbose=False)


def test_a_stopped_run_is_never_complete(root, tmp_path):
    spec = tiny(root, max_iters=4)
    stopped = runs.with_train(spec, stop_iter=2)
    df = runs.run_specs({"r": stopped}, tmp_path, verbose=False)
    assert df["iter"].max() == 1
    assert not runs.is_complete(tmp_path / "r") and not (tmp_path / "r" / runs.COMPLETE_FILE).exists()
    # an old completion record of a run that did not reach max_iters does not make it complete
    (tmp_path / "r" / runs.COMPLETE_FILE).write_text(json.dumps({"spec": stopped}))
    assert not runs.is_complete(tmp_path / "r", spec)
    (tmp_path / "r" / runs.COMPLETE_FILE).unlink()
    done = runs.run_specs({"r": spec}, tmp_path, verbose=False)  # resumes at iteration 2
    assert done["iter"].max() == 4 and runs.is_complete(tmp_path / "r", spec)
    assert runs.load_spec(tmp_path / "r") == spec


def test_read_metrics_names_the_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="metrics.csv"):
        runs.read_metrics(tmp_path)
