"""The tuning protocol (adamlinf.studies.sweeps): grid extension on a synthetic loss-vs-lr curve,
final metrics of runs that diverge, seeds, the shared-lr slice, and published results."""

from __future__ import annotations

import json
import math
import subprocess

import numpy as np
import pandas as pd
import pytest

from adamlinf import results
from adamlinf.studies import sweeps
from adamlinf.studies.verdicts import Claim, Measured, claims_table


def _synthetic(optimum: dict[str, float], diverge_above: float = math.inf, noise: float = 0.0):
    """An ``evaluate`` for tune_grid: loss(lr) = (log10 lr - log10 lr*)² + 1, inf above a
    threshold; counts how often each (optimizer, lr) is trained."""
    trained: dict[tuple[str, float], int] = {}

    def evaluate(grids):
        rows = []
        for opt, lrs in grids.items():
            for lr in lrs:
                trained[(opt, lr)] = trained.get((opt, lr), 0) + 1
                loss = (math.log10(lr) - math.log10(optimum[opt])) ** 2 + 1
                rows.append(
                    {"optimizer": opt, "lr": lr, "seed": 0, "final": math.inf if lr > diverge_above else loss}
                )
        return pd.DataFrame(rows)

    return evaluate, trained


def test_grid_extends_until_the_optimum_is_interior():
    start = [3.162e-4, 1e-3, 3.162e-3, 1e-2]  # half a decade apart
    evaluate, trained = _synthetic({"adam": 0.05, "sgd": 2e-3})
    sweep = sweeps.tune_grid({"adam": start, "sgd": start}, evaluate, max_extensions=5)
    # adam: 0.05 lies above the grid; values 0.03162 and 0.1 are added, then 0.03162 is interior
    assert sweep.grids["adam"] == [3.162e-4, 1e-3, 3.162e-3, 1e-2, 3.162e-2, 0.1]
    assert sweep.best_lr["adam"] == 3.162e-2
    assert sweep.best_lr["sgd"] == 3.162e-3 and sweep.grids["sgd"] == start
    assert [(e["optimizer"], e["side"]) for e in sweep.extensions] == [("adam", "high"), ("adam", "high")]
    assert sweep.on_edge == []
    # complete runs are not counted twice by the protocol itself: each new value appears once per round
    assert trained[("adam", 0.1)] == 1


def test_grid_extends_downwards_and_reports_an_exhausted_budget():
    start = [1e-3, 3.162e-3, 1e-2, 3.162e-2]
    evaluate, _ = _synthetic({"adam": 1e-6})
    sweep = sweeps.tune_grid({"adam": start}, evaluate, max_extensions=2)
    assert sweep.grids["adam"] == [1e-4, 3.162e-4, *start]
    assert sweep.on_edge == ["adam"] and "still on an edge" in sweep.extension_text()
    assert sweep.best_lr["adam"] == 1e-4


def test_divergent_run_ranks_last():
    # optimum 0.01 but runs above 5e-3 diverge: the best finite value 3.162e-3 is interior, since the
    # diverged runs above it rank last
    evaluate, _ = _synthetic({"adam": 1e-2}, diverge_above=5e-3)
    sweep = sweeps.tune_grid({"adam": [1e-4, 3.162e-4, 1e-3, 3.162e-3, 1e-2]}, evaluate)
    assert sweep.best_lr["adam"] == 3.162e-3 and not sweep.extensions
    with pytest.raises(ValueError, match=">= 4"):
        sweeps.tune_grid({"adam": [1e-3, 1e-2]}, evaluate)


def test_a_missing_run_is_named():
    evaluate, _ = _synthetic({"adam": 1e-3})

    def drops_one(grids):
        finals = evaluate(grids)
        return finals[~((finals.optimizer == "adam") & np.isclose(finals.lr, 1e-3))]

    with pytest.raises(ValueError, match="evaluate returned no seed-0 run of 'adam' at lr 0.001"):
        sweeps.tune_grid({"adam": [1e-4, 3.162e-4, 1e-3, 3.162e-3, 1e-2]}, drops_one)


# The tuning seed's final losses of the ci pages as executed before the lr search was unified
# (results/<page>/ci/finals.csv, seed 0, 4 digits): replayed, the search must train exactly these
# runs, in the same rounds, and pick the same lrs (tuned.csv).
_AD = [3.162e-4, 1e-3, 3.162e-3, 1e-2]
RECORDED = {
    "gpt2_figure1": (
        {"adam": _AD, "adasgd": _AD, "rotated_adam": _AD, "sgd": [0.1, 0.3162, 1.0, 3.162]},
        2,
        {
            "adam": {3.162e-4: 2.83, 1e-3: 2.4974, 3.162e-3: 2.3509, 1e-2: 2.5904},
            "adasgd": {3.162e-4: 2.6227, 1e-3: 2.5231, 3.162e-3: 2.5097, 1e-2: 2.8224},
            "rotated_adam": {3.162e-4: 2.6161, 1e-3: 2.5134, 3.162e-3: 2.4967, 1e-2: 2.7229},
            "sgd": {0.1: 2.5117, 0.3162: 2.5572, 1.0: 3.0247, 3.162: 3.3078, 0.03162: 2.5679},
        },
        {"adam": 3.162e-3, "adasgd": 3.162e-3, "rotated_adam": 3.162e-3, "sgd": 0.1},
        [("sgd", "low", 0.03162, 1)],
    ),
    "resnet_table3 (batch 128)": (
        {o: [0.01, 0.03162, 0.1, 0.3162] if o == "sgd" else _AD for o in
         ["sgd", "adasgd", "adam", "rotated_adam", "blockwise"]},
        3,
        {
            "sgd": {0.01: 2.1869, 0.03162: 1.8891, 0.1: 1.2893, 0.3162: 0.6011, 1.0: 0.4514, 3.162: 2.1827},
            "adasgd": {3.162e-4: 2.1331, 1e-3: 1.7695, 3.162e-3: 1.113, 1e-2: 1.3977},
            "adam": {3.162e-4: 2.2065, 1e-3: 1.9472, 3.162e-3: 1.3391, 1e-2: 0.6773, 0.03162: 0.5794,
                     0.1: 2.0802},
            "rotated_adam": {3.162e-4: 2.1514, 1e-3: 1.8156, 3.162e-3: 1.106, 1e-2: 1.0462, 0.03162: 2.1263},
            "blockwise": {3.162e-4: 2.1789, 1e-3: 1.8586, 3.162e-3: 1.2658, 1e-2: 0.6165, 0.03162: 0.7135},
        },
        {"sgd": 1.0, "adasgd": 3.162e-3, "adam": 0.03162, "rotated_adam": 1e-2, "blockwise": 1e-2},
        [("sgd", "high", 1.0, 1), ("adam", "high", 0.03162, 1), ("rotated_adam", "high", 0.03162, 1),
         ("blockwise", "high", 0.03162, 1), ("sgd", "high", 3.162, 2), ("adam", "high", 0.1, 2)],
    ),
}  # fmt: skip


@pytest.mark.parametrize("page", list(RECORDED))
def test_recorded_ci_sweeps_replay_to_the_same_runs(page):
    start, max_extensions, table, tuned, extensions = RECORDED[page]

    def evaluate(grids):
        rows = [(o, lr, 0, table[o][lr]) for o, lrs in grids.items() for lr in lrs]
        return pd.DataFrame(rows, columns=["optimizer", "lr", "seed", "final"])

    sweep = sweeps.tune_grid(start, evaluate, max_extensions=max_extensions, seed=0)
    assert {o: set(g) for o, g in sweep.grids.items()} == {o: set(v) for o, v in table.items()}
    assert sweep.best_lr == tuned and sweep.on_edge == []
    assert [tuple(e.values()) for e in sweep.extensions] == extensions


def test_seeds_measured_and_the_shared_lr_slice():
    finals = pd.DataFrame(
        {
            "optimizer": ["adam"] * 3 + ["sgd"] * 3,
            "lr": [1e-3, 1e-3, 3e-3, 0.1, 0.1, 0.3],
            "seed": [0, 1, 0, 0, 1, 0],
            "final": [2.0, 2.2, 2.5, 3.0, 3.1, math.inf],
        }
    )
    m = sweeps.measured(finals, "adam", 1e-3)
    assert (
        m.value == pytest.approx(2.1) and m.spread == pytest.approx(np.std([2.0, 2.2], ddof=1)) and m.n == 2
    )
    tab = sweeps.seed_table(finals, {"adam": ("adam", 1e-3), "sgd": ("sgd", 0.1)}).set_index("key")
    assert tab.loc["sgd", "mean"] == pytest.approx(3.05) and tab.loc["sgd", "n_seeds"] == 2
    assert math.isinf(sweeps.measured(finals, "sgd", 0.3).value)
    assert sweeps.seeded_points({"adam": 1e-3}, [("adam", 1e-3), ("adam", 3e-3)]) == [
        ("adam", 1e-3),
        ("adam", 3e-3),
    ]
    assert sweeps.nearest([1e-4, 3.162e-4, 1e-3], 3e-4) == pytest.approx(3.162e-4)
    with pytest.raises(ValueError, match="no measuring run"):
        sweeps.measured(finals, "adam", 1.0)


def test_verdicts_on_constructed_numbers():
    """The verdict rule as the chapters use it (Welch's one-sided t-test on the seeds)."""
    claims = [
        Claim("a beats b", "a", "b"),
        Claim("a beats c", "a", "c"),
        Claim("d beats a", "d", "a"),
        Claim("a beats diverged", "a", "x"),
    ]
    values = {
        "a": Measured.from_seeds([1.00, 1.02]),  # std 0.0141
        "b": Measured.from_seeds([1.10, 1.11]),  # gap 0.095 > 2 * 0.0141: holds
        "c": Measured.from_seeds([1.01, 1.04]),  # gap 0.015 < 2 * 0.0212: inconclusive
        "d": Measured.from_seeds([1.30, 1.31]),  # reverse gap 0.295: fails
        "x": Measured.from_seeds([1.0, math.inf]),
    }
    t = claims_table(values, claims, scale="ci")
    assert t.verdict.tolist() == ["holds", "inconclusive", "fails", "holds"]


def _frame(train_loss, val_loss, lr_t=True):
    """A run's metrics as run_specs returns them: training rows (lr_t, iter_time), eval rows every
    5 iterations, a final eval-only row; NaN stands for what CSV reads back as missing."""
    n = len(train_loss)
    rows = []
    for i, loss in enumerate(train_loss):
        row = {"run": "r", "optimizer": "adam", "lr": 1e-3, "iter": i, "iter_time": 0.1, "train_loss": loss}
        if lr_t:
            row["lr_t"] = 1e-3
        if i % 5 == 0:
            row["val_loss"] = loss
        rows.append(row)
    rows.append({"run": "r", "optimizer": "adam", "lr": 1e-3, "iter": n, "val_loss": val_loss})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("lr_t", [True, False])
def test_divergence_is_never_scored_on_earlier_finite_values(lr_t):
    fine = [3.0 - 0.1 * i for i in range(10)]
    ok = sweeps.final_metrics(_frame(fine, 2.0, lr_t), window=2).iloc[0]
    assert not ok.diverged and ok.final_train_loss == pytest.approx((2.2 + 2.1) / 2)
    cases = {
        "NaN mid-run (reads back as missing)": fine[:6] + [np.nan] * 4,
        "one NaN in the middle, finite around it": fine[:5] + [np.nan] + fine[6:],
        "inf": fine[:9] + [np.inf],
    }
    for why, losses in cases.items():
        fin = sweeps.final_metrics(_frame(losses, np.nan, lr_t), window=2).iloc[0]
        assert fin.diverged and math.isinf(fin.final_train_loss), why
        val = sweeps.final_metrics(_frame(losses, np.nan, lr_t), metric="val_loss", window=1).iloc[0]
        assert val.diverged and math.isinf(val.final_val_loss), why
    last = sweeps.final_metrics(_frame(fine, np.nan, lr_t), window=2).iloc[0]
    assert last.diverged and math.isinf(last.final_train_loss)


def _git(root, *args):
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()


def test_published_results_load_and_stale_ones_are_flagged(tmp_path, monkeypatch):
    assert sweeps.load_published("gpt2_figure1", folder=tmp_path / "absent") is None
    note = sweeps.published_note("gpt2_figure1", None)
    assert "missing" in note and "python -m adamlinf.run --scale gpu --only gpt2_figure1 --publish" in note
    # a repository with a notebook; results published at its first commit
    repo = tmp_path / "repo"
    (repo / "book" / "notebooks").mkdir(parents=True)
    (repo / "params").mkdir()
    (repo / "src" / "adamlinf").mkdir(parents=True)
    nb = repo / "book" / "notebooks" / "gpt2_figure1.py"
    nb.write_text("x = 1\n")
    _git(repo, "init", "-q")
    _git(repo, "-c", "user.email=a@b", "-c", "user.name=a", "add", ".")
    _git(repo, "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "first")
    sha = _git(repo, "rev-parse", "HEAD")
    pub = tmp_path / "published" / "gpt2_figure1" / "gpu"
    pub.mkdir(parents=True)
    pd.DataFrame({"optimizer": ["adam"], "lr": [1e-3], "seed": [0], "final": [2.0]}).to_csv(
        pub / "finals.csv", index=False
    )
    (pub / "provenance.json").write_text(
        json.dumps({"git_commit": sha, "device": "NVIDIA H200 x1", "wall_time_s": 840.0, "scale": "gpu"})
    )
    real_check = results.check_fresh
    monkeypatch.setattr(results, "check_fresh", lambda name, path: real_check(name, path, root=repo))
    loaded = sweeps.load_published("gpt2_figure1", folder=pub)
    assert loaded is not None and loaded.warning is None
    assert loaded.tables["finals"].final.iloc[0] == 2.0 and loaded.provenance["device"] == "NVIDIA H200 x1"
    assert "H200" in sweeps.published_note("gpt2_figure1", loaded) and "14.0 min" in sweeps.published_note(
        "gpt2_figure1", loaded
    )
    # the notebook changes after the results were made: flagged as stale
    nb.write_text("x = 2\n")
    _git(repo, "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qam", "second")
    stale = sweeps.load_published("gpt2_figure1", folder=pub)
    assert stale.warning and "Stale" in sweeps.published_note("gpt2_figure1", stale)
    # through published_dir (the default folder)
    monkeypatch.setattr(results, "PUBLISHED_ROOT", tmp_path / "published")
    assert sweeps.load_published("gpt2_figure1").path == pub
    assert sweeps.load_published("gpt2_table2") is None


def _synthetic_metrics():
    it = np.arange(20)
    rows = []
    for run, opt, lr, losses in [
        ("a1", "adam", 1e-3, 3.0 - 0.05 * it),  # final mean of last 2: 2.075
        ("a2", "adam", 3e-3, 3.0 - 0.06 * it),  # 1.89: the best adam
        ("a3", "adam", 1e-2, np.where(it < 15, 1.0, np.nan)),  # diverged (NaN from iteration 15)
        ("s1", "sgd", 0.1, np.full(20, 2.5)),
        ("s2", "sgd", 1.0, np.r_[np.full(18, 1.0), 2.4, 2.6]),  # 2.5 over the last 2 rows
    ]:
        for i, loss in zip(it, losses, strict=False):
            rows.append({"run": run, "optimizer": opt, "lr": lr, "iter": i, "lr_t": lr, "train_loss": loss})
        rows.append({"run": run, "optimizer": opt, "lr": lr, "iter": 20, "val_loss": 1.0})  # final eval row
    return pd.DataFrame(rows)


def test_final_metrics_over_a_synthetic_sweep():
    df = _synthetic_metrics()
    fin = sweeps.final_metrics(df, window=2).set_index("run")
    assert fin.loc["a1", "final_train_loss"] == pytest.approx((2.10 + 2.05) / 2)
    assert fin.loc["a2", "final_train_loss"] == pytest.approx((1.92 + 1.86) / 2)
    assert fin.loc["a3", "diverged"] and math.isinf(fin.loc["a3", "final_train_loss"])
    # the window matters: s1 and s2 tie over the last two rows, s2 is lower over the last three
    assert fin.loc["s1", "final_train_loss"] == fin.loc["s2", "final_train_loss"] == pytest.approx(2.5)
    three = sweeps.final_metrics(df, window=3).set_index("run")
    assert three.loc["s2", "final_train_loss"] == pytest.approx(2.0)
    # default window: the last 5% of rows (1 of 20)
    assert sweeps.final_metrics(df).set_index("run").loc["a1", "final_train_loss"] == pytest.approx(2.05)
    with pytest.raises(ValueError):
        sweeps.final_metrics(df, metric="nope")


def test_the_tuning_seed_picks_the_lr_and_never_measures(tmp_path):
    # seed 0 (tuning) is lucky at lr 1e-3: 1.0; the measuring seeds 1 and 2 read 2.0 and 2.2 there
    finals = pd.DataFrame(
        {
            "optimizer": ["adam"] * 3,
            "lr": [1e-3] * 3,
            "seed": [0, 1, 2],
            "final": [1.0, 2.0, 2.2],
            "measuring": [False, True, True],
        }
    )
    m = sweeps.measured(finals, "adam", 1e-3)
    assert (m.value, m.n) == (pytest.approx(2.1), 2)  # not 1.733, the biased mean with seed 0
    assert sweeps.measured(finals.drop(columns="measuring"), "adam", 1e-3).n == 3
    with pytest.raises(ValueError, match="no measuring run"):
        sweeps.measured(finals[~finals.measuring], "adam", 1e-3)
    # tune_grid ranks the grid on the seed it is given, whatever other seeds evaluate returns
    evaluate, _ = _synthetic({"adam": 1e-3})

    def with_other_seed(grids):
        rows = evaluate(grids)
        other = rows.assign(seed=-1, final=rows.final[::-1].to_numpy())  # the opposite ranking
        return pd.concat([rows.assign(seed=7), other], ignore_index=True)

    sweep = sweeps.tune_grid({"adam": [1e-4, 3.162e-4, 1e-3, 3.162e-3]}, with_other_seed, seed=7)
    assert sweep.tune_seed == 7 and sweep.best_lr["adam"] == pytest.approx(1e-3)
    for bad in (
        {"tune_seed": 1, "seeds": [1, 2]},
        {"tune_seed": 0, "seeds": []},
        {"tune_seed": 0, "seeds": [1, 1]},
    ):
        with pytest.raises(ValueError, match="measuring seeds"):
            sweeps.RunCollector({**bad, "nproc_per_node": 1, "workers": 1}, tmp_path)


def test_seed_texts_share_one_number_of_decimals():
    texts = sweeps.seed_texts(
        [Measured.from_seeds([2.1251, 2.1353]), Measured(2.410, 0.017, 3), Measured(math.inf, math.nan, 3)]
    )
    assert texts == ["2.130 ± 0.007", "2.410 ± 0.017", "diverged"]
    # a spread ten times smaller keeps one significant digit
    assert sweeps.seed_texts([Measured(0.5, 0.012, 3), Measured(0.25, 0.0004, 3)]) == [
        "0.5000 ± 0.0120",
        "0.2500 ± 0.0004",
    ]
