"""The paper-scale GPU script (benchmarks/gpu_paper_scale.py) in its CPU smoke mode: every part runs
through the library (trainer, rotation, HVPs, Cauchy estimator) and the JSON it writes holds every
required number, finite and positive; the time guard skips parts and still writes results."""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import sys
from pathlib import Path

import pytest

from adamlinf.studies import costs

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_paper_scale.py"


@pytest.fixture(scope="module")
def gps():
    spec = importlib.util.spec_from_file_location("gpu_paper_scale", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gpu_paper_scale"] = mod
    spec.loader.exec_module(mod)
    yield mod
    sys.modules.pop("gpu_paper_scale", None)


@pytest.fixture(scope="module")
def smoke(gps, tmp_path_factory):
    out = tmp_path_factory.mktemp("gps_smoke")
    results = gps.main(["--out", str(out), "--smoke"])
    return out, results


def test_smoke_writes_every_field_finite_and_positive(gps, smoke):
    out, returned = smoke
    data = json.loads((out / gps.JSON_NAME).read_text())
    assert data["smoke"] is True
    assert {name: rec["status"] for name, rec in data["parts"].items()} == {
        name: "ok" for name in gps.PARTS if name != "train_adam_compiled"
    }
    bad = {}
    for field in gps.REQUIRED_FIELDS:
        value = gps._get(data, field)
        if not (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and math.isfinite(value)
            and value > 0
        ):
            bad[field] = value
    assert not bad, f"missing or non-positive fields: {bad}"
    # the measurements are internally consistent
    adam, rot = data["train"]["adam"], data["train"]["rotated_adam"]
    assert adam["steps_measured"] == data["settings"]["steps"]
    tokens = data["settings"]["batch_size"] * data["settings"]["block_size"]
    assert adam["tokens_per_s"] == pytest.approx(tokens / adam["step_s"])
    assert data["comparison"]["rotated_over_adam_step_time"] == pytest.approx(rot["step_s"] / adam["step_s"])
    assert data["rotation"]["n"] == data["settings"]["n_params_total"] == data["hvp"]["float32"]["d"]
    # random tokens of a 256-symbol vocabulary: the loss starts near ln 256
    assert adam["first_loss"] == pytest.approx(math.log(256), rel=0.1)
    # forward-over-reverse and double backward give the same Hessian-vector product
    assert data["hvp"]["float32"]["forward_vs_double_backward_rel_diff"] < 1e-4
    assert "SYNTHETIC" in data["data"]
    assert data["hardware"]["device_name"] and data["hardware"]["torch"]
    md = (out / gps.MD_NAME).read_text()
    assert "| rotated Adam / Adam step time |" in md and "SMOKE" in md
    assert (out / "train_adam_metrics.csv").exists()
    assert returned["train"]["adam"]["step_s"] == pytest.approx(adam["step_s"])


def test_budget_guard_skips_parts_and_still_writes(gps, tmp_path):
    results = gps.main(["--out", str(tmp_path), "--smoke", "--budget-s", "0"])
    data = json.loads((tmp_path / gps.JSON_NAME).read_text())
    assert data["parts"] and all(rec["status"] == "skipped" for rec in data["parts"].values())
    assert "train" not in data and results["hardware"] == data["hardware"]


def test_part_records_errors_and_timeouts(gps, tmp_path):
    bench = gps.Bench(gps.parse_args(["--out", str(tmp_path), "--smoke"]))

    def boom():
        raise RuntimeError("no such kernel")

    def late():
        raise gps.BudgetExceeded()

    try:
        bench.part("matmul", boom, 0)
        bench.part("cauchy", late, 0)
    finally:
        shutil.rmtree(bench.tmp, ignore_errors=True)
    data = json.loads((tmp_path / gps.JSON_NAME).read_text())
    assert data["parts"]["matmul"]["status"] == "error"
    assert "no such kernel" in data["parts"]["matmul"]["error"]
    assert data["parts"]["cauchy"]["status"] == "timed_out"


def test_bad_arguments(gps, tmp_path):
    with pytest.raises(SystemExit):
        gps.parse_args(["--out", str(tmp_path), "--hvp-dtypes", "float16"])
    with pytest.raises(SystemExit):
        gps.parse_args(["--out", str(tmp_path), "--parts", "nope"])
    with pytest.raises(SystemExit):
        gps.parse_args(["--out", str(tmp_path), "--steps", "1"])


def test_publish_refuses_smoke_and_cpu_runs(gps, smoke, tmp_path):
    out, results = smoke
    with pytest.raises(ValueError, match="not publishing a smoke run"):
        gps.publish(results, out, tmp_path)
    with pytest.raises(SystemExit):
        gps.parse_args(["--out", str(tmp_path), "--smoke", "--publish"])
    with pytest.raises(SystemExit):
        gps.parse_args(["--out", str(tmp_path), "--device", "cpu", "--publish"])
    assert not list(tmp_path.iterdir())


def test_published_measurement_is_read_by_the_cost_model(gps, smoke, tmp_path):
    """The file the script publishes is the one adamlinf.studies.costs reads (a CPU smoke result
    relabelled as CUDA here, only to exercise the path; it is never committed)."""
    out, results = smoke
    data = json.loads((out / gps.JSON_NAME).read_text())
    assert data["date"][:4].isdigit() and data["hardware"]["numpy"]
    fake = dict(data, smoke=False, hardware=dict(data["hardware"], device="cuda:0", device_name="Fake GPU"))
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / gps.JSON_NAME).write_text(json.dumps(fake))
    (tmp_path / "run" / gps.MD_NAME).write_text("table")
    path = gps.publish(fake, tmp_path / "run", tmp_path / "published")
    assert path == tmp_path / "published" / gps.JSON_NAME
    m = costs.load_measurement(path)
    assert m.device_name == "Fake GPU" and m.date == data["date"] and not m.compiled
    assert m.tokens_per_s == pytest.approx(data["train"]["adam"]["tokens_per_s"])
    assert m.flops_per_token == data["settings"]["flops_per_token"]
    hvp = data["hvp"]["float32"]
    assert m.hvp_s_per_token == pytest.approx(hvp["best_uncached_s"] / hvp["tokens"])
    # the smoke model's own spec gets the measured rate exactly
    rate = costs.gpt_rate({"kind": "gpt", **gps.SMOKE_MODEL}, m)
    assert rate.measured and rate.per_s == pytest.approx(m.tokens_per_s) and "Fake GPU" in rate.source
    with pytest.raises(ValueError, match="not a GPU measurement"):
        costs.load_measurement(out / gps.JSON_NAME)  # the smoke file itself
