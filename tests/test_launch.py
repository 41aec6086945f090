"""Run machinery (adamlinf.launch): torchrun commands (one and several nodes), run folders that never
lose a finished run, partial runs that are never complete, spec keys, run_specs end to end (skip,
resume), learning-rate grids and spec builders."""

import json

import numpy as np
import pandas as pd
import pytest

from adamlinf import launch
from adamlinf.data import build_task

pytestmark = pytest.mark.usefixtures("one_thread")


def boom(*args, **kwargs):
    raise AssertionError("the trainer was called")


# ------------------------------------------------------------------------------------------------
# launch commands
# ------------------------------------------------------------------------------------------------
def test_launch_command_one_node_from_a_spec_or_a_path():
    spec = launch.with_train({"model": {}, "data": {}, "train": {}}, out_dir="runs/adam")
    assert launch.launch_command(spec, 4) == [
        "torchrun",
        "--standalone",
        "--nproc_per_node=4",
        "-m",
        "adamlinf.train",
        "--spec",
        "runs/adam/spec.json",
    ]
    assert launch.launch_command("x/spec.json", 2, python="py")[:4] == [
        "py",
        "-m",
        "torch.distributed.run",
        "--standalone",
    ]


def test_launch_command_several_nodes():
    cmd = launch.launch_command(
        "/shared/run/spec.json", 8, nnodes=4, node_rank=2, rdzv_endpoint="node0:29400"
    )
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
    cmd = launch.launch_command("s.json", 8, nnodes=2, node_rank=0, master_addr="10.0.0.1", master_port=1234)
    assert cmd[1:5] == ["--nnodes=2", "--node_rank=0", "--master_addr=10.0.0.1", "--master_port=1234"]
    assert "--standalone" not in cmd
    with pytest.raises(ValueError, match="rdzv_endpoint"):
        launch.launch_command("s.json", 8, nnodes=2)
    with pytest.raises(ValueError, match="node_rank"):
        launch.launch_command("s.json", 8, nnodes=2, node_rank=2, rdzv_endpoint="h:1")
    with pytest.raises(ValueError, match=">= 1"):
        launch.launch_command("s.json", 0)


# ------------------------------------------------------------------------------------------------
# spec keys
# ------------------------------------------------------------------------------------------------
def test_spec_key_counts_only_what_changes_results(tiny_spec):
    base = tiny_spec()
    key = launch.spec_key(base)
    same = [
        launch.with_train(
            base,
            eval_interval=2,
            progress=True,
            device="cuda",
            compile=True,
            checkpoint_interval=7,
            stop_iter=1,
            warmup_iters=0,
        ),  # warmup_iters=0 is the default written out
        launch.with_train(base, tags={"setting": "x"}),
        {**base, "data": {**base["data"], "root": "/elsewhere"}},
    ]
    assert all(launch.spec_key(s) == key for s in same)
    other = [
        launch.with_train(base, lr=2e-2),
        launch.with_train(base, max_iters=4),
        {**base, "data": {**base["data"], "seed": 1}},
        {**base, "model": {**base["model"], "n_embd": 16}},
    ]
    assert len({key, *(launch.spec_key(s) for s in other)}) == 5


# ------------------------------------------------------------------------------------------------
# run folders
# ------------------------------------------------------------------------------------------------
def test_run_specs_never_deletes_a_finished_run(tiny_spec, tmp_path, monkeypatch):
    a, b = tiny_spec(), tiny_spec(lr=2e-2)
    first = launch.run_specs({"r": a}, tmp_path, verbose=False)
    ckpts_a = sorted(p.name for p in (tmp_path / "r").glob("ckpt-*"))
    # another result-relevant spec: trained in r/, the finished run moved aside, not deleted
    launch.run_specs({"r": b}, tmp_path, verbose=False)
    aside = tmp_path / f"r@{launch.spec_key(a)}"
    assert launch.is_complete(aside, a) and sorted(p.name for p in aside.glob("ckpt-*")) == ckpts_a
    assert launch.is_complete(tmp_path / "r", b)
    # the first spec again: its folder comes back, nothing is trained
    monkeypatch.setattr(launch, "run", boom)
    again = launch.run_specs({"r": a}, tmp_path, verbose=False)
    assert again.train_loss.tolist() == pytest.approx(first.train_loss.tolist(), nan_ok=True)
    assert (tmp_path / f"r@{launch.spec_key(b)}").is_dir() and launch.is_complete(tmp_path / "r", a)
    # execution-only fields (evaluation cadence, progress bar, device, compile) retrain nothing
    launch.run_specs(
        {"r": launch.with_train(a, eval_interval=1, progress=True, compile=False)}, tmp_path, verbose=False
    )
    with pytest.raises(ValueError, match="different spec"):
        launch.run_specs({"r": b}, tmp_path, on_change="error", verbose=False)


def test_a_stopped_run_is_never_complete(tiny_spec, tmp_path):
    spec = tiny_spec(max_iters=4)
    stopped = launch.with_train(spec, stop_iter=2)
    df = launch.run_specs({"r": stopped}, tmp_path, verbose=False)
    assert df["iter"].max() == 1
    assert not launch.is_complete(tmp_path / "r") and not (tmp_path / "r" / launch.COMPLETE_FILE).exists()
    # an old completion record of a run that did not reach max_iters does not make it complete
    (tmp_path / "r" / launch.COMPLETE_FILE).write_text(json.dumps({"spec": stopped}))
    assert not launch.is_complete(tmp_path / "r", spec)
    (tmp_path / "r" / launch.COMPLETE_FILE).unlink()
    done = launch.run_specs({"r": spec}, tmp_path, verbose=False)  # resumes at iteration 2
    assert done["iter"].max() == 4 and launch.is_complete(tmp_path / "r", spec)
    assert json.loads((tmp_path / "r" / launch.COMPLETE_FILE).read_text())["spec"] == spec


def test_read_metrics_names_the_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="metrics.csv"):
        launch.read_metrics(tmp_path)


# ------------------------------------------------------------------------------------------------
# run_specs end to end, grids, specs
# ------------------------------------------------------------------------------------------------
LM = dict(max_iters=6, warmup_iters=1, eval_interval=3)  # a run with evaluations and a warm-up


def test_run_specs_end_to_end_skips_and_resumes(tiny_spec, tmp_path, monkeypatch):
    specs = {
        "adam": tiny_spec("adam", **LM, tags={"setting": "default"}),
        "rot": tiny_spec("rotated_adam", **LM),
    }
    df = launch.run_specs(specs, tmp_path, verbose=False)
    assert set(df.run) == {"adam", "rot"} and set(df.optimizer) == {"adam", "rotated_adam"}
    assert (df.lr == 1e-2).all() and "lr_t" in df.columns
    assert df.groupby("run").iter.max().tolist() == [6, 6]
    assert (df[df.run == "adam"].setting == "default").all()
    # the trainer's schedule: warmup 1 then cosine from 1e-2 to 1e-3 at iteration 6
    lr_t = df[df.run == "adam"].dropna(subset=["lr_t"]).set_index("iter").lr_t
    assert lr_t[0] == pytest.approx(5e-3) and lr_t[1] == pytest.approx(1e-2)
    assert launch.is_complete(tmp_path / "adam", specs["adam"])
    # complete runs are skipped: the trainer is not called again and the metrics come back equal
    monkeypatch.setattr(launch, "run", boom)
    again = launch.run_specs(specs, tmp_path, verbose=False)
    pd.testing.assert_frame_equal(df.reset_index(drop=True), again.reset_index(drop=True))
    monkeypatch.undo()
    # an interrupted run (stopped at iteration 3, no completion record) is resumed by the trainer
    # and ends on the same losses as the uninterrupted one
    stopped = tiny_spec("adam", **LM, stop_iter=3)
    launch.run(launch._trainer_spec(stopped, tmp_path / "again"))
    resumed = launch.run_specs({"again": specs["adam"]}, tmp_path, verbose=False)
    a = df[df.run == "adam"].train_loss.dropna().to_numpy()
    np.testing.assert_array_equal(resumed.train_loss.dropna().to_numpy(), a)


def test_grad_accum_for_the_paper_batch_on_several_devices():
    # 480 sequences per step, 12 per device and micro step (the paper/nanoGPT config)
    assert [launch.grad_accum_steps(480, 12, n) for n in (1, 2, 4, 8)] == [40, 20, 10, 5]
    for n in (1, 2, 4, 8):
        assert n * launch.grad_accum_steps(480, 12, n) * 12 == 480
    with pytest.raises(ValueError, match="not a multiple.*batch_size 10 works"):
        launch.grad_accum_steps(480, 12, 16)  # 480 / 192 = 2.5
    with pytest.raises(ValueError, match="not a multiple"):
        launch.grad_accum_steps(480, 12, 3)
    with pytest.raises(ValueError, match="not a multiple"):
        launch.grad_accum_steps(16, 32, 1)  # micro batch larger than the global batch
    with pytest.raises(ValueError, match=">= 1"):
        launch.grad_accum_steps(480, 12, 0)
    assert launch.grad_accum_steps(16, 16, 1) == 1


def test_image_spec_sets_iterations_for_the_epochs():
    """Section 4.3: a run sees `epochs` passes over the training set (20 epochs = 4000 steps at
    batch 256 on CIFAR-10's 50,000 images); here on the digits stand-in."""
    spec = launch.image_spec(
        source="digits",
        batch_size=32,
        epochs=3,
        width=8,
        blocks=(1, 1, 1, 1),
        image_size=16,
        evals_per_epoch=2,
        optimizer="adam",
        lr=1e-2,
        betas=(0.9, 0.99),
    )
    n_train = build_task(spec["data"]).num_train
    assert spec["train"]["max_iters"] == round(3 * n_train / 32)
    assert spec["train"]["eval_interval"] == spec["train"]["max_iters"] // 6
    assert spec["tags"] == {"batch_size": 32, "max_iters": spec["train"]["max_iters"]}
    assert spec["model"] == {"kind": "resnet18", "width": 8, "blocks": [1, 1, 1, 1]}
    assert spec["train"]["betas"] == [0.9, 0.99] and spec["data"]["image_size"] == 16


def test_run_specs_refuses_zero_workers_before_touching_the_folder(tmp_path):
    with pytest.raises(ValueError, match="workers must be >= 1"):
        launch.run_specs({"a": {"model": {}, "data": {}, "train": {}}}, tmp_path / "runs", workers=0)
    assert not (tmp_path / "runs").exists()  # no lock taken, no folder moved aside
