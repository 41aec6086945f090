"""The torch-only `gpu` run: `python -m adamlinf.publish` without papermill, jupytext or IPython."""

import json
import os
import subprocess
import sys
from pathlib import Path

from adamlinf import run

REPO = Path(__file__).resolve().parents[1]
BLOCKED = ("papermill", "jupytext", "nbformat", "nbclient", "IPython", "ipykernel", "jupyter_client")


def test_code_cells_drop_markdown_and_mark_the_parameters_cell():
    src = (
        "# ---\n# header\n# ---\n\n# %% [markdown]\n# # Title\n\n"
        '# %% tags=["parameters"]\nscale = "ci"\nn = 3\n\n# %%\nx = n + 1\n\n'
        '# %% tags=["hide-input"]\nprint(x)\n'
    )
    cells = run.code_cells(src)
    assert [flag for _, flag in cells] == [True, False, False]
    assert "n = 3" in cells[0][0] and "x = n + 1" in cells[1][0] and "print(x)" in cells[2][0]


def test_gpu_run_with_torch_only(tmp_path):
    """gpt2_figure1 at a tiny `gpu` size in a process where the notebook tools cannot be imported."""
    script = (
        "import sys\n"
        f"for m in {BLOCKED!r}:\n"
        "    sys.modules[m] = None  # import raises ImportError\n"
        "from adamlinf.publish import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    tiny = {
        "device": "cpu", "dtype": "float32", "n_layer": "1", "n_head": "1", "n_embd": "8", "block_size": "8",
        "batch_size": "2", "global_batch": "2", "max_iters": "4", "warmup_iters": "1", "eval_interval": "2",
        "eval_iters": "1", "adaptive_lrs": "[1e-3, 3e-3, 1e-2, 3e-2]", "sgd_lrs": "[0.1, 0.3, 1.0, 3.0]",
        "max_extensions": "0", "workers": "1",
    }  # fmt: skip
    args = ["gpt2_figure1", "--scale", "gpu"] + [a for k, v in tiny.items() for a in ("--set", f"{k}={v}")]
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO / "src"),
        "ADAMLINF_RESULTS": str(tmp_path / "results"),
        "ADAMLINF_PUBLISHED": str(tmp_path / "published"),
    }
    done = subprocess.run(
        [sys.executable, "-c", script, *args], env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]
    pub = tmp_path / "published" / "gpt2_figure1" / "gpu"
    prov = json.loads((pub / "provenance.json").read_text())
    assert prov["runner"] == "adamlinf.publish" and prov["scale"] == "gpu"
    assert (
        prov["parameters"]["n_embd"] == 8 and prov["parameters"]["dataset"] == "stdlib"
    )  # gpu's, overridden
    assert {"tuned.csv", "finals.csv", "curves.csv"} <= {p.name for p in pub.iterdir()}
    assert not (pub / "runs").exists() or all(p.suffix != ".pt" for p in pub.rglob("*"))
