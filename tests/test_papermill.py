"""Plain papermill re-runs a book notebook with ``-p``, as the README shows (the jupytext route).

The book's notebooks are jupytext percent files (``book/notebooks/<name>.py``); papermill reads only
``.ipynb``, so ``papermill book/notebooks/<name>.py …`` stops with ``NotJSONError``. The route users
take is one jupytext call first:

    jupytext --to ipynb book/notebooks/thm311_blockwise.py -o thm311_blockwise.ipynb
    papermill thm311_blockwise.ipynb out.ipynb -p scale ci -p n_seeds 2

This test runs exactly those two commands (with a cheap notebook and small parameters) and checks
that the parameters reached the kernel, that the page saved its verdicts where ``results_dir``
pointed, and that a run with parameters other than the scale's is labelled as overridden.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
NOTEBOOK = "thm311_blockwise"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (BIN / "papermill").exists() or not (BIN / "jupytext").exists(),
        reason="papermill and jupytext are installed with the book's environment (make env)",
    ),
]


def test_plain_papermill_reruns_a_notebook_with_p(tmp_path):
    from adamlinf.studies import glance

    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    env.pop("MPLBACKEND", None)  # the notebook's figures need the inline backend
    source = tmp_path / f"{NOTEBOOK}.ipynb"
    out = tmp_path / "out.ipynb"
    results = tmp_path / "results" / NOTEBOOK / "ci"

    with pytest.raises(subprocess.CalledProcessError) as err:  # what users try first, and why it fails
        subprocess.run(
            [BIN / "papermill", ROOT / "book" / "notebooks" / f"{NOTEBOOK}.py", out],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        )
    assert "NotJSONError" in err.value.stderr or "JSON" in err.value.stderr

    subprocess.run(
        [BIN / "jupytext", "--to", "ipynb", ROOT / "book" / "notebooks" / f"{NOTEBOOK}.py", "-o", source],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    run = subprocess.run(
        [
            BIN / "papermill",
            source,
            out,
            "-p",
            "scale",
            "ci",
            "-p",
            "results_dir",
            str(results),
            "-p",
            "n_seeds",
            "2",
            "-p",
            "n_lr",
            "5",
            "-k",
            "python3",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]

    nb = json.loads(out.read_text())
    injected = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert injected and "n_seeds = 2" in "".join(injected[0]["source"])
    assert (results / "verdicts.csv").exists(), "the notebook did not save its verdicts under results_dir"
    recorded = json.loads((results / "verdicts.csv.provenance.json").read_text())["parameters"]
    assert recorded["n_seeds"] == 2 and recorded["n_lr"] == 5
    # the page's result box was glued, and it says the run is not the ci parameters
    glued = [
        o
        for c in nb["cells"]
        for o in c.get("outputs", [])
        if o.get("metadata", {}).get("scrapbook", {}).get("name") == glance.BOX_KEY
    ]
    assert glued, "the result box was not glued"
    box = next(v for k, v in glued[0]["data"].items() if k.endswith("text/markdown"))
    assert "Not the `ci` parameters" in box and "n_seeds=2" in box
    assert sorted(json.loads((results / glance.PAGE_FILE).read_text())["overrides"]) == ["n_lr", "n_seeds"]
    shutil.rmtree(tmp_path / "results")
