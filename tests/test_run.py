"""The notebook runner (`python -m adamlinf.run`) and the book's wiring."""
from __future__ import annotations

import json

import jupytext
import pytest
import yaml

from adamlinf import results, run

NOTEBOOK = '''# %% [markdown]
# # Tiny

# %% tags=["parameters"]
scale = "ci"
results_dir = "nowhere"
n = 1

# %%
from pathlib import Path
Path(results_dir, "out.txt").write_text(str(n * 2))
'''

FAILING = NOTEBOOK + '\n# %%\nraise RuntimeError("boom " + str(n))\n'


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """A miniature book: toc, params and notebook sources under tmp_path."""
    (tmp_path / "book" / "notebooks").mkdir(parents=True)
    (tmp_path / "params").mkdir()
    toc = {"format": "jb-book", "root": "book/intro",
           "parts": [{"caption": "X", "chapters": [{"file": "book/executed/tiny"},
                                                   {"file": "book/executed/bad"}]}]}
    (tmp_path / "_toc.yml").write_text(yaml.safe_dump(toc))
    (tmp_path / "book" / "notebooks" / "tiny.py").write_text(NOTEBOOK)
    (tmp_path / "book" / "notebooks" / "bad.py").write_text(FAILING)
    for name in ("tiny", "bad"):
        (tmp_path / "params" / f"{name}.yaml").write_text("ci:\n  n: 3\npaper:\n  n: 1000\n")
    monkeypatch.setattr(run, "TOC", tmp_path / "_toc.yml")
    monkeypatch.setattr(run, "SOURCES", tmp_path / "book" / "notebooks")
    monkeypatch.setattr(run, "EXECUTED", tmp_path / "book" / "executed")
    monkeypatch.setattr(run, "PARAMS", tmp_path / "params")
    monkeypatch.setattr(results, "RESULTS_ROOT", tmp_path / "results")
    return tmp_path


def test_order_follows_toc(sandbox):
    assert run.notebook_order() == ["tiny", "bad"]


def test_parameters_per_scale(sandbox):
    assert run.load_parameters("tiny", "ci") == {"n": 3}
    assert run.load_parameters("tiny", "paper") == {"n": 1000}
    with pytest.raises(SystemExit, match="has no 'huge' scale"):
        run.load_parameters("tiny", "huge")
    with pytest.raises(SystemExit, match="no parameter file"):
        run.load_parameters("missing", "ci")


def test_override_parsing():
    assert run._parse_override("lr=1e-3") == ("lr", 1e-3)
    assert run._parse_override("device=cuda") == ("device", "cuda")
    assert run._parse_override("sizes=[1, 2]") == ("sizes", [1, 2])


def test_execute_writes_notebook_results_and_provenance(sandbox):
    assert run.main(["--scale", "ci", "--only", "tiny", "--set", "n=21"]) == 0
    out = sandbox / "results" / "tiny" / "ci" / "out.txt"
    assert out.read_text() == "42"
    prov = json.loads((sandbox / "book" / "executed" / "tiny.provenance.json").read_text())
    assert prov["scale"] == "ci" and prov["parameters"]["n"] == 21
    assert prov["wall_time_s"] > 0 and "torch" in prov["packages"]
    nb = jupytext.read(sandbox / "book" / "executed" / "tiny.ipynb")
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "n = 21" in injected[0].source


def test_failure_stops_with_nonzero_exit_and_keeps_traceback(sandbox, capsys):
    assert run.main(["--scale", "ci"]) == 1
    kept = (sandbox / "book" / "executed" / "bad.ipynb").read_text()
    assert "boom 3" in kept
    assert "FAILED: bad" in capsys.readouterr().err


def test_unknown_notebook_is_an_error(sandbox):
    with pytest.raises(SystemExit):
        run.main(["--only", "nope"])


def test_every_book_notebook_has_source_and_parameter_sets():
    """Each notebook listed in _toc.yml has a jupytext source with a `parameters` cell and a
    parameter file with both the `ci` and the `paper` scale."""
    names = run.notebook_order()
    assert names, "the table of contents lists no notebooks"
    for name in names:
        source = run.SOURCES / f"{name}.py"
        assert source.exists(), f"missing {source}"
        nb = jupytext.read(source)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{name}: needs exactly one cell tagged 'parameters'"
        table = yaml.safe_load((run.PARAMS / f"{name}.yaml").read_text())
        assert {"ci", "paper"} <= set(table), f"{name}: params need ci and paper scales"
        for scale in ("ci", "paper"):
            assert not {"scale", "results_dir"} & set(table[scale] or {}), \
                f"{name}: 'scale' and 'results_dir' are injected by the runner"


def test_upstream_dir_names_the_command_when_missing(tmp_path):
    here = tmp_path / "results" / "gpt2_table2" / "ci"
    there = tmp_path / "results" / "gpt2_figure1" / "ci"
    with pytest.raises(FileNotFoundError, match="--scale ci --only gpt2_figure1"):
        results.upstream_dir(here, "gpt2_figure1", required="tuned_runs.csv")
    there.mkdir(parents=True)
    (there / "tuned_runs.csv").write_text("x\n")
    assert results.upstream_dir(here, "gpt2_figure1", required="tuned_runs.csv") == there
