"""The notebook runner (`python -m adamlinf.run`): parameters, failures, publishing, freshness."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time

import jupytext
import pytest
import yaml

from adamlinf import results, run

NOTEBOOK = """# %% [markdown]
# # Tiny

# %% tags=["parameters"]
scale = "ci"
results_dir = "nowhere"
n = 1            # a multiplier
T = 5            # steps
lr = 0.001
flag = False
optimizers = ["adam", "sgd"]
device = "cpu"

# %%
from pathlib import Path
from adamlinf.run import notebook_params
params = notebook_params("tiny", globals())
Path(results_dir, "out.txt").write_text(str(n * 2))
Path(results_dir, "params.json").write_text(__import__("json").dumps(params))
"""

FAILING = NOTEBOOK.replace('"tiny"', '"bad"') + '\n# %%\nraise RuntimeError("boom " + str(n))\n'

PARAMS = {
    "ci": {"n": 3, "T": 5, "lr": 0.001, "flag": False, "optimizers": ["adam", "sgd"], "device": "cpu"},
    "gpu": {"n": 7, "T": 50, "lr": 0.001, "flag": True, "optimizers": ["adam"], "device": "cuda"},
    "paper": {"n": 1000, "T": 500, "lr": 0.001, "flag": True, "optimizers": ["adam"], "device": "cuda"},
}


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """A miniature book: toc, params and notebook sources under tmp_path."""
    (tmp_path / "book" / "notebooks").mkdir(parents=True)
    (tmp_path / "params").mkdir()
    toc = {
        "format": "jb-book",
        "root": "book/intro",
        "parts": [
            {"caption": "X", "chapters": [{"file": "book/executed/tiny"}, {"file": "book/executed/bad"}]}
        ],
    }
    (tmp_path / "_toc.yml").write_text(yaml.safe_dump(toc))
    (tmp_path / "book" / "notebooks" / "tiny.py").write_text(NOTEBOOK)
    (tmp_path / "book" / "notebooks" / "bad.py").write_text(FAILING)
    for name in ("tiny", "bad"):
        (tmp_path / "params" / f"{name}.yaml").write_text(yaml.safe_dump(PARAMS))
    monkeypatch.setattr(run, "TOC", tmp_path / "_toc.yml")
    monkeypatch.setattr(run, "SOURCES", tmp_path / "book" / "notebooks")
    monkeypatch.setattr(run, "EXECUTED", tmp_path / "book" / "executed")
    monkeypatch.setattr(run, "PARAMS", tmp_path / "params")
    monkeypatch.setattr(results, "PUBLISHED_ROOT", tmp_path / "published")
    monkeypatch.setattr(results, "RESULTS_ROOT", tmp_path / "results")
    monkeypatch.setenv("ADAMLINF_SOURCES", str(tmp_path / "book" / "notebooks"))
    return tmp_path


def test_order_follows_toc_and_summaries_run_last(sandbox):
    assert run.notebook_order() == ["tiny", "bad"]
    assert run.execution_order(["glance", "a", "b"]) == ["a", "b", "glance"]


def test_parameters_per_scale(sandbox):
    assert run.load_parameters("tiny", "ci")["n"] == 3
    assert run.load_parameters("tiny", "paper")["n"] == 1000
    with pytest.raises(SystemExit, match="has no 'huge' scale"):
        run.load_parameters("tiny", "huge")
    with pytest.raises(SystemExit, match="no parameter file"):
        run.load_parameters("missing", "ci")


def test_notebook_params_follows_the_parameters_cell(sandbox):
    defaults = run.parameter_defaults("tiny")
    assert list(defaults) == ["scale", "results_dir", "n", "T", "lr", "flag", "optimizers", "device"]
    assert defaults["optimizers"] == ["adam", "sgd"] and defaults["lr"] == 0.001
    namespace = dict(defaults, n=21, unrelated=object())
    params = run.notebook_params("tiny", namespace)
    assert params["n"] == 21 and "unrelated" not in params and list(params) == list(defaults)
    with pytest.raises(KeyError, match="lr"):
        run.notebook_params("tiny", {k: v for k, v in namespace.items() if k != "lr"})


def test_parameters_cell_must_be_unique():
    with pytest.raises(ValueError, match="found 0"):
        run.parameters_cell("# %%\nx = 1\n")
    two = '# %% tags=["parameters"]\nx = 1\n# %% tags=["parameters"]\ny = 2\n'
    with pytest.raises(ValueError, match="found 2"):
        run.parameters_cell(two)


def test_override_parsing():
    assert run.parse_override("sizes=[1, 2]") == ("sizes", "[1, 2]")
    for text, message in [
        ("=5", "KEY=VALUE"),
        ("T=", "KEY=VALUE"),
        ("T", "KEY=VALUE"),
        ("1x=2", "KEY=VALUE"),
    ]:
        with pytest.raises(Exception, match=message):
            run.parse_override(text)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("nosuchkey=1", "no parameter 'nosuchkey'"),
        ("lrr=0.1", "did you mean lr"),
        ("T=abc", "expected a whole number"),
        ("T=2.5", "expected a whole number"),
        ("T=-5", "must be at least 1"),
        ("T=0", "must be at least 1"),
        ("n=True", "expected a whole number"),
        ("flag=1", "expected True or False"),
        ("lr=abc", "expected a number"),
        ("lr=-1.0", "must be positive"),
        ("lr=1e999", "finite"),
        ("optimizers=[adam]", "expected a list"),
        ("optimizers=adam", "expected a list"),
        ("optimizers=[1, 2]", "items of optimizers are strs"),
        ("scale=paper", "--scale"),
        ("results_dir=/tmp/x", "the runner sets it"),
    ],
)
def test_bad_overrides_fail_up_front(sandbox, override, message, capsys):
    start = time.perf_counter()
    with pytest.raises(SystemExit, match=message):
        run.main(["--scale", "ci", "--only", "tiny", "--set", override])
    assert time.perf_counter() - start < 1.0
    assert not (sandbox / "book" / "executed").exists()  # nothing ran


def test_bad_syntax_overrides_are_usage_errors(sandbox, capsys):
    for override in ("=5", "T="):
        with pytest.raises(SystemExit) as info:
            run.main(["--only", "tiny", "--set", override])
        assert info.value.code == 2
    assert "--set expects KEY=VALUE with a parameter name KEY, got '=5'" in capsys.readouterr().err


def test_good_overrides_take_the_defaults_type(sandbox):
    params = run.resolve_parameters(
        "tiny", "ci", {"lr": "3", "T": "7", "device": "cuda", "flag": "True", "optimizers": "['adam']"}
    )
    assert params["lr"] == 3.0 and isinstance(params["lr"], float)
    assert params["T"] == 7 and params["device"] == "cuda" and params["flag"] is True
    assert params["optimizers"] == ["adam"]
    assert params["scale"] == "ci" and params["results_dir"].endswith("tiny/ci")


def test_parameter_file_keys_missing_from_the_cell_are_refused(sandbox):
    table = dict(PARAMS, ci=dict(PARAMS["ci"], stray=1))
    (sandbox / "params" / "tiny.yaml").write_text(yaml.safe_dump(table))
    with pytest.raises(ValueError, match=r"sets \['stray'\]"):
        run.resolve_parameters("tiny", "ci")


def test_execute_writes_notebook_results_and_provenance(sandbox):
    assert run.main(["--scale", "ci", "--only", "tiny", "--set", "n=21"]) == 0
    out = sandbox / "results" / "tiny" / "ci"
    assert (out / "out.txt").read_text() == "42"
    assert json.loads((out / "params.json").read_text())["n"] == 21  # notebook_params saw the injection
    prov = json.loads((sandbox / "book" / "executed" / "tiny.provenance.json").read_text())
    assert prov["scale"] == "ci" and prov["parameters"]["n"] == 21
    assert set(prov["parameters"]) == set(PARAMS["ci"]) | {"scale", "results_dir"}
    assert prov["wall_time_s"] > 0 and "torch" in prov["packages"]
    assert json.loads((out / "provenance.json").read_text())["parameters"]["n"] == 21
    nb = jupytext.read(sandbox / "book" / "executed" / "tiny.ipynb")
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "n = 21" in injected[0].source
    assert "remove-cell" in injected[0].metadata["tags"]  # the book shows the parameters once
    shown = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])][0].source
    assert "n = 21            # a multiplier" in shown and "T = 5" in shown
    assert "<../notebooks/tiny.py>" in nb.cells[-1].source and "<tiny.ipynb>" in nb.cells[-1].source
    assert str(sandbox) not in (sandbox / "book" / "executed" / "tiny.ipynb").read_text().replace(
        str(sandbox / "results"), ""
    )  # no machine path but the (test-only) absolute results folder
    assert "/tmp" not in json.dumps(nb.metadata["papermill"]["input_path"])


def test_override_for_another_notebook_is_not_recorded(sandbox):
    other = NOTEBOOK.replace('"tiny"', '"other"').replace('device = "cpu"', "depth = 2")
    (sandbox / "book" / "notebooks" / "other.py").write_text(other)
    table = {s: {k: v for k, v in p.items() if k != "device"} | {"depth": 2} for s, p in PARAMS.items()}
    (sandbox / "params" / "other.yaml").write_text(yaml.safe_dump(table))
    resolved = run.check_overrides(["tiny", "other"], "ci", {"depth": "4"})
    assert resolved["other"]["depth"] == 4 and "depth" not in resolved["tiny"]
    with pytest.raises(SystemExit, match="did you mean depth"):
        run.check_overrides(["tiny", "other"], "ci", {"deph": "4"})


def test_failed_run_keeps_the_last_good_notebook(sandbox, capsys):
    assert run.main(["--scale", "ci", "--only", "tiny"]) == 0
    executed = sandbox / "book" / "executed"
    good = (executed / "tiny.ipynb").read_text()
    good_prov = (executed / "tiny.provenance.json").read_text()
    (sandbox / "book" / "notebooks" / "tiny.py").write_text(NOTEBOOK + '\n# %%\nraise RuntimeError("boom")\n')
    assert run.main(["--scale", "ci", "--only", "tiny"]) == 1
    assert (executed / "tiny.ipynb").read_text() == good
    assert (executed / "tiny.provenance.json").read_text() == good_prov
    assert "boom" in (executed / "tiny.failed.ipynb").read_text()
    err = capsys.readouterr().err
    assert "FAILED: tiny" in err and "last good results stay" in err
    (sandbox / "book" / "notebooks" / "tiny.py").write_text(NOTEBOOK)
    assert run.main(["--scale", "ci", "--only", "tiny"]) == 0
    assert not (executed / "tiny.failed.ipynb").exists()


def test_failure_stops_with_nonzero_exit_and_keeps_traceback(sandbox, capsys):
    assert run.main(["--scale", "ci"]) == 1
    kept = (sandbox / "book" / "executed" / "bad.failed.ipynb").read_text()
    assert "boom 3" in kept
    assert not (sandbox / "book" / "executed" / "bad.ipynb").exists()
    assert "FAILED: bad" in capsys.readouterr().err


def test_unknown_notebook_is_an_error(sandbox):
    with pytest.raises(SystemExit):
        run.main(["--only", "nope"])


def test_publish_copies_results_with_provenance(sandbox):
    with pytest.raises(SystemExit):
        run.main(["--scale", "ci", "--only", "tiny", "--publish"])
    assert results.published_dir("tiny", root=sandbox / "published") is None
    assert run.main(["--scale", "gpu", "--only", "tiny", "--publish"]) == 0
    pub = results.published_dir("tiny", "gpu", root=sandbox / "published")
    assert pub == sandbox / "published" / "tiny" / "gpu"
    assert (pub / "out.txt").read_text() == "14"
    prov = results.read_provenance(pub)
    assert prov["scale"] == "gpu" and prov["parameters"]["n"] == 7 and "device" in prov
    assert prov["git_commit"] and prov["wall_time_s"] > 0 and "torch" in prov["packages"]


def _git(root, *args):
    subprocess.run(
        ["git", *args],
        cwd=root,
        check=True,
        capture_output=True,
        env={
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@t",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@t",
            "PATH": "/usr/bin:/bin",
        },
    )
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True
    ).stdout.strip()


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_check_fresh_flags_results_older_than_the_notebook(tmp_path):
    repo = tmp_path / "repo"
    (repo / "book" / "notebooks").mkdir(parents=True)
    (repo / "src" / "adamlinf").mkdir(parents=True)
    (repo / "book" / "notebooks" / "nb.py").write_text("x = 1\n")
    (repo / "src" / "adamlinf" / "lib.py").write_text("y = 1\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    made = _git(repo, "commit", "-qm", "one")
    pub = repo / "published" / "nb" / "gpu"
    results.save_json({"git_commit": made, "scale": "gpu"}, pub / "provenance.json")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "publish")  # publishing itself does not make the results stale
    assert results.check_fresh("nb", pub, root=repo) is None
    (repo / "book" / "notebooks" / "nb.py").write_text("x = 2\n")
    _git(repo, "commit", "-qam", "change the notebook")
    warning = results.check_fresh("nb", pub, root=repo)
    assert warning and made[:10] in warning and "book/notebooks/nb.py" in warning
    assert "--scale gpu --only nb --publish" in warning
    results.save_json({"git_commit": made + "-dirty", "scale": "gpu"}, pub / "provenance.json")
    assert "uncommitted changes" in results.check_fresh("nb", pub, root=repo)
    results.save_json({"git_commit": "0" * 40, "scale": "gpu"}, pub / "provenance.json")
    assert "does not contain" in results.check_fresh("nb", pub, root=repo)
    no_git = tmp_path / "archive"
    shutil.copytree(repo, no_git, ignore=shutil.ignore_patterns(".git"))
    results.save_json({"git_commit": made, "scale": "gpu"}, no_git / "published/nb/gpu/provenance.json")
    assert results.check_fresh("nb", no_git / "published" / "nb" / "gpu", root=no_git) is None


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
        assert run.parameters_cell(source.read_text()).strip() == tagged[0].source.strip()
        table = yaml.safe_load((run.PARAMS / f"{name}.yaml").read_text())
        assert {"ci", "paper"} <= set(table), f"{name}: params need ci and paper scales"


def test_parameter_files_name_exactly_the_parameters_cell():
    """Every scale of params/<name>.yaml sets exactly the names of the notebook's parameters cell
    (except `scale` and `results_dir`, which the runner injects): a name only in the file would be
    injected and ignored, a name only in the cell would silently keep its `ci` default."""
    problems = []
    for name in run.notebook_order():
        cell = set(run.parameter_defaults(name)) - set(run.INJECTED)
        table = yaml.safe_load((run.PARAMS / f"{name}.yaml").read_text())
        for scale, params in table.items():
            keys = set(params or {})
            if keys != cell:
                problems.append(
                    f"{name} [{scale}]: only in the file {sorted(keys - cell)}, "
                    f"only in the cell {sorted(cell - keys)}"
                )
    assert not problems, "\n".join(problems)


def test_upstream_dir_names_the_command_when_missing(tmp_path):
    here = tmp_path / "results" / "gpt2_table2" / "ci"
    there = tmp_path / "results" / "gpt2_figure1" / "ci"
    with pytest.raises(FileNotFoundError, match="--scale ci --only gpt2_figure1"):
        results.upstream_dir(here, "gpt2_figure1", required="tuned_runs.csv")
    there.mkdir(parents=True)
    (there / "tuned_runs.csv").write_text("x\n")
    assert results.upstream_dir(here, "gpt2_figure1", required="tuned_runs.csv") == there


def test_api_page_documents_every_module():
    """book/api.md has one automodule per module of the package: a missing module would leave it
    undocumented, a stale one would fail the book's build."""
    src = run.REPO_ROOT / "src"
    modules = {
        ".".join(p.relative_to(src).with_suffix("").parts)
        for p in (src / "adamlinf").rglob("*.py")
        if p.name != "__init__.py" and p.name != "__main__.py"
    }
    modules -= {"adamlinf.experiments"}  # being dissolved into adamlinf.launch and adamlinf.studies
    page = (run.BOOK / "api.md").read_text()
    listed = set(re.findall(r"^\.\. automodule:: ([\w.]+)$", page, re.M))
    assert listed == modules, f"missing {sorted(modules - listed)}, stale {sorted(listed - modules)}"


def test_widget_outputs_keep_only_their_text():
    import nbformat

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("bar()")
    cell.outputs = [
        nbformat.v4.new_output(
            "display_data", data={run._WIDGET: {"model_id": "x"}, "text/plain": "100%|##| 2/2"}
        ),
        nbformat.v4.new_output("display_data", data={run._WIDGET: {"model_id": "y"}}),
        nbformat.v4.new_output("stream", text="done\n"),
    ]
    nb.cells.append(cell)
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {}}
    run._drop_widgets(nb)
    assert "widgets" not in nb.metadata
    assert [o.get("data", {}).get("text/plain", o.get("text")) for o in cell.outputs] == [
        "100%|##| 2/2",
        "done\n",
    ]
