"""Tests of adamlinf.studies.review: the rotations of question 3, the protocol, the norms."""

import math

import pytest
import torch

from adamlinf import hessian
from adamlinf.rotations import to_dense
from adamlinf.studies import review as rv

GPT = {"kind": "gpt", "n_layer": 1, "n_head": 2, "n_embd": 8, "seq_len": 8, "batch_size": 4}


@pytest.fixture(scope="module")
def gpt_task():
    return rv.make_task(GPT)


def _offsets(model):
    return rv._offsets(model)


def test_tensor_and_head_rotations_act_only_inside_their_coordinates(gpt_task):
    model = gpt_task.make_model(0)
    build = rv.rotation_builders(tensor="transformer.h.0.mlp.c_fc.weight", n_head=2, group=16, n_batches=2)
    n = rv._n(model)
    x = torch.randn(n)
    a, b = _offsets(model)["transformer.h.0.mlp.c_fc.weight"]
    y = build["tensor"](model, gpt_task, 0).apply(x)
    assert torch.equal(y[:a], x[:a]) and torch.equal(y[b:], x[b:])
    assert not torch.allclose(y[a:b], x[a:b])
    assert math.isclose(float(y.norm()), float(x.norm()), rel_tol=1e-5)
    # head 0 of c_attn (rows 0..3 of q, 8..11 of k, 16..19 of v, 8 columns each): 96 coordinates
    R = build["head"](model, gpt_task, 0)
    index = R.blocks[0][0]
    a, _ = _offsets(model)["transformer.h.0.attn.c_attn.weight"]
    rows = sorted({(int(i) - a) // 8 for i in index})
    assert rows == [0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19]
    assert index.numel() == 96


def test_similar_scale_rotation_groups_coordinates_of_alike_gradient_scale(gpt_task):
    model = gpt_task.make_model(0)
    R = rv.rotation_builders(tensor="transformer.wte.weight", n_head=2, group=64, n_batches=2)["similar"](
        model, gpt_task, 0
    )
    grads = rv._grad_samples(model, gpt_task, 2, 0)
    v = torch.stack([torch.cat([g.reshape(-1) for g in gs]) ** 2 for gs in grads]).mean(0)
    rank = torch.empty_like(v)
    rank[torch.argsort(v)] = torch.arange(len(v), dtype=v.dtype)
    for index, _ in R.blocks[:5]:  # each group is a run of 64 consecutive ranks
        r = rank[index].sort().values
        assert torch.equal(r, torch.arange(int(r[0]), int(r[0]) + 64, dtype=r.dtype))


def test_eigen_rotation_diagonalises_the_gradient_covariance_factors(gpt_task):
    model = gpt_task.make_model(0)
    R = rv.rotation_builders(tensor="transformer.wte.weight", n_head=2, group=16, n_batches=3)["eigen"](
        model, gpt_task, 0
    )
    grads = rv._grad_samples(model, gpt_task, 3, 0)
    names = [n for n, _ in model.named_parameters()]
    k = names.index("transformer.h.0.mlp.c_fc.weight")
    G = [gs[k].double() for gs in grads]
    index, kron = next((i, r) for i, r in R.blocks if int(i[0]) == _offsets(model)[names[k]][0])
    A = kron.left.matrix.double()
    L = sum(g @ g.T for g in G)
    D = A.T @ L @ A
    assert torch.allclose(D, torch.diag(torch.diagonal(D)), atol=1e-6 * float(L.abs().max()))


def test_tune_keeps_the_tuning_seed_out_of_the_measurement():
    task = rv.quadratic_task(torch.tensor([1.0, 0.1, 0.01]), 0.0)
    with pytest.raises(ValueError, match="tuning seed"):
        rv.tune(
            task,
            {"adam": rv.Arm("adam")},
            {"adam": [0.01, 0.1, 1.0, 10.0]},
            steps=5,
            tune_seed=0,
            seeds=[0, 1],
        )
    tu = rv.tune(
        task,
        {"sgd": rv.Arm("sgd")},
        {"sgd": [0.01, 0.03162, 0.1, 0.3162]},
        steps=20,
        tune_seed=0,
        seeds=[1, 2],
    )
    measure = tu.finals[tu.finals.role == "measure"]
    assert set(measure.seed) == {1, 2} and tu.values["sgd"].n == 2
    assert tu.sweep.best_lr["sgd"] not in (min(tu.sweep.grids["sgd"]), max(tu.sweep.grids["sgd"]))


def test_quadratic_metric_is_the_log_loss_ratio_and_sgd_matches_the_closed_form():
    lam = torch.tensor([1.0, 0.5])
    task = rv.quadratic_task(lam, 0.0)
    model = task.make_model(3)
    assert task.evaluate(model) == pytest.approx(0.0, abs=1e-12)  # x0 in {±1}^d: L(x0) = sum(lam)/2
    # plain gradient descent (SGD without momentum is not an arm; check momentum SGD's first step)
    final, model, _ = rv.train(task, rv.Arm("sgd"), 0.1, steps=1, seed=3)
    x0 = task.make_model(3).x.detach()
    x1 = x0 - 0.1 * rv.lr_factor(0, 1) * lam.double() * x0
    assert torch.allclose(model.x.detach(), x1)
    assert final == pytest.approx(math.log10(float((lam * x1 * x1).sum() / lam.sum())))


def test_phi_table_ends_at_l11_and_d_times_spectral_norm():
    task = rv.digits_task("mlp", width=4, batch_size=8)
    model = task.make_model(0)
    batches = [(task.eval_batches[0][0][:32], task.eval_batches[0][1][:32])]
    from adamlinf import partitions

    phi = rv.phi_table(
        model, task, batches, {"coordinate": partitions.coordinate(), "whole": partitions.whole()}
    )
    H = hessian.exact_hessian(model, task.loss, batches)
    d = H.shape[0]
    got = dict(zip(phi.partition, phi.H_phi_per_d, strict=True))
    assert got["coordinate"] == pytest.approx(float(H.abs().sum()) / d, rel=1e-6)
    assert got["whole"] == pytest.approx(float(torch.linalg.matrix_norm(H, 2)), rel=1e-6)


def test_layer_partition_gives_embeddings_each_block_and_the_final_norm(gpt_task):
    model = gpt_task.make_model(0)
    ids = rv.layer_partition(model).flat_index(list(model.parameters()))
    assert int(ids.max()) + 1 == 3
    off = _offsets(model)
    assert int(ids[off["transformer.wte.weight"][0]]) == int(ids[off["transformer.wpe.weight"][0]])
    assert int(ids[off["transformer.h.0.ln_1.weight"][0]]) == int(
        ids[off["transformer.h.0.mlp.c_proj.weight"][0]]
    )


def test_basis_norms_match_the_exact_hessian_in_a_rotated_basis():
    task = rv.digits_task("mlp", width=2, batch_size=8)
    model = task.make_model(0)
    batches = [(task.eval_batches[0][0][:16], task.eval_batches[0][1][:16])]
    H = hessian.exact_hessian(model, task.loss, batches).double()
    R = rv.rotated()(model, task, 0)
    M = to_dense(R).double()
    out = rv.basis_norms(model, task, batches, R, n_probes=100, seed=1)
    exact = float((M.T @ H @ M).abs().sum()) / H.shape[0]
    assert out["l11_lo"] * 0.9 <= exact <= out["l11_hi"] * 1.1
    assert out["spectral"] == pytest.approx(float(torch.linalg.matrix_norm(H, 2)), rel=1e-3)


def test_tune_keeps_the_measured_models_and_checkpoint_norms_match_their_exact_hessians():
    task = rv.digits_task("mlp", width=2, batch_size=8)
    arms = {"adam": rv.Arm("adam"), "rot": rv.Arm("adam", rotation=rv.rotated()), "adasgd": rv.Arm("adasgd")}
    tu = rv.tune(
        task,
        arms,
        {a: [0.003162, 0.01, 0.03162, 0.1] for a in arms},
        steps=10,
        tune_seed=0,
        seeds=[1, 2],
        max_extensions=0,
        keep=("adam", "rot"),
    )
    assert sorted(tu.models) == [("adam", 1), ("adam", 2), ("rot", 1), ("rot", 2)]  # measuring runs only
    finals = tu.finals.set_index(["optimizer", "seed"]).query("role == 'measure'").final
    for (arm, seed), (model, _) in tu.models.items():  # the kept model is the measured run's final model
        assert task.evaluate(model) == finals[(arm, seed)]
    _, adasgd, _ = rv.train(task, arms["adasgd"], tu.sweep.best_lr["adasgd"], steps=10, seed=1)
    batches = [(task.eval_batches[0][0][:16], task.eval_batches[0][1][:16])]
    rows = rv.checkpoint_norms(
        task,
        batches,
        adam=tu.models[("adam", 1)][0],
        rotated_adam=tu.models[("rot", 1)],
        adasgd=adasgd,
        n_probes=100,
        seed=1,
    ).set_index(["optimizer", "quantity"])

    def exact(model):
        return hessian.exact_hessian(model, task.loss, batches).double()

    H_adam, H_adasgd = exact(tu.models[("adam", 1)][0]), exact(adasgd)
    rot_model, rp = tu.models[("rot", 1)]
    M = to_dense(rp.rotation).double()
    H_rot = M.T @ exact(rot_model) @ M  # the Hessian of L o R at w
    d = H_adam.shape[0]
    for key, H in [(("adam", "l11_per_dim"), H_adam), (("rotated_adam", "l11_per_dim"), H_rot)]:
        r = rows.loc[key]
        assert r.lo * 0.9 <= float(H.abs().sum()) / d <= r.hi * 1.1
    for key, H in [(("adam", "spectral_norm"), H_adam), (("adasgd", "spectral_norm"), H_adasgd)]:
        assert rows.loc[key].value == pytest.approx(float(torch.linalg.matrix_norm(H, 2)), rel=1e-3)
    # the rotated basis raises the (1,1)-norm of a dense Hessian: the two checkpoints' norms differ
    assert float(H_rot.abs().sum()) > float(H_adam.abs().sum())
