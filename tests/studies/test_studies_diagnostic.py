"""adamlinf.studies.diagnostic: the closed form of least squares, the tables, the verdict rules."""

import pandas as pd
import pytest
import torch

from adamlinf import hessian
from adamlinf.diagnose import Diagnosis, Estimate
from adamlinf.studies import diagnostic as study


def _diag(l11, rot, spectral=2.0, d=10, race=None):
    return Diagnosis(
        d=d,
        l11_per_dim=Estimate(*l11),
        spectral_norm=spectral,
        advantage=Estimate(spectral / l11[0], spectral / l11[2], spectral / l11[1]),
        rotated_l11_per_dim=None if rot is None else Estimate(*rot),
        rotated_advantage=None
        if rot is None
        else Estimate(spectral / rot[0], spectral / rot[2], spectral / rot[1]),
        blocks=pd.DataFrame(),
        race=race,
        loss=1.0,
        n_probes=50,
        band_level=0.9,
        partition="tensor",
        rotation=None,
        seed=0,
        seconds=1.0,
        n_products=100,
    )


def test_least_squares_hessian_is_the_closed_form():
    model, loss_fn, batches, H = study.least_squares(30, 5, seed=1)
    exact = hessian.exact_hessian(model, loss_fn, batches)
    torch.testing.assert_close(exact, H, rtol=1e-12, atol=1e-12)


def test_rotation_verdicts_are_decided_outside_the_bands():
    diags = {
        ("a", "s"): _diag((1.0, 0.9, 1.1), (2.0, 1.8, 2.2)),  # rotated clearly higher: holds
        ("b", "s"): _diag((1.0, 0.9, 1.1), (1.05, 0.95, 1.2)),  # overlap: inconclusive
        ("c", "s"): _diag((2.0, 1.8, 2.2), (1.0, 0.9, 1.1)),  # rotated lower: fails
        ("d", "s"): _diag((1.0, 0.9, 1.1), None),  # no rotation: no row
    }
    closed = pd.DataFrame({"quantity": ["q"], "exact": [1.0], "diagnose": [1.0], "agrees": [True]})
    v = study.verdicts(study.summary(diags), closed, scale="ci")
    assert list(v.verdict) == ["holds", "holds", "inconclusive", "fails"]
    assert set(v["where"]) == {"Diagnostic"} and set(v["origin"]) == {"book"}
    closed.loc[0, "agrees"] = False
    assert study.verdicts(study.summary(diags), closed, scale="ci").verdict.iloc[0] == "fails"


def test_overview_puts_the_best_race_result_beside_the_advantage():
    race = pd.DataFrame(
        {
            "optimizer": ["adam", "adam", "adam", "adasgd"],
            "lr": [1e-3, 1e-2, 1e-1, 1e-2],
            "final_loss": [0.5, 0.2, 0.4, 0.3],
            "best": [False, True, False, True],
            "interior": [False, True, False, False],
        }
    )
    diags = {("m", "init"): _diag((1.0, 0.8, 1.25), (4.0, 3.0, 5.0), race=race)}
    out = study.overview(study.summary(diags), study.stacked(diags, "race"))
    row = out.iloc[0]
    assert row["advantage d‖H‖₂/‖H‖₁,₁"] == "2 [1.6, 2.5]"
    assert row["Adam final loss (lr)"] == "0.2 (0.01)"
    assert row["AdaSGD final loss (lr)"] == "0.3 (0.01, edge)"
    assert row["Rotated Adam final loss (lr)"] == "—"


@pytest.mark.parametrize("H", [torch.diag(torch.tensor([4.0, 1.0, 1.0]))])
def test_closed_form_check_flags_a_miss(H):
    dg = _diag((2.0, 1.9, 2.1), None, spectral=4.0, d=3)
    table = study.closed_form_check(dg, H)
    assert table.agrees.tolist() == [True, True, True]
    dg = _diag((3.0, 2.9, 3.1), None, spectral=4.0, d=3)
    assert study.closed_form_check(dg, H).agrees.tolist() == [False, True, False]
