"""Tests of the rotations the review chapter adds: block rotations, eigenbases, Kronecker factors."""

import pytest
import torch

from adamlinf.rotations import (
    BlockRotation,
    DenseRotation,
    KroneckerRotation,
    eigenbasis,
    haar,
    random_block_rotation,
    to_dense,
)

F64 = torch.float64


def _blocks():
    return [torch.tensor([7, 1, 4]), torch.tensor([0, 9, 3, 11, 5])]


def test_block_rotation_is_orthogonal_acts_only_inside_and_round_trips():
    n = 12
    R = random_block_rotation(n, _blocks(), seed=3, dtype=F64)
    M = to_dense(R)
    assert torch.allclose(M.T @ M, torch.eye(n, dtype=F64), atol=1e-12)
    inside = torch.cat(_blocks())
    outside = torch.tensor(sorted(set(range(n)) - set(inside.tolist())))
    # the identity outside the blocks, no mixing between a block and the rest or between blocks
    assert torch.equal(M[outside][:, outside], torch.eye(len(outside), dtype=F64))
    assert M[outside][:, inside].abs().max() == 0 and M[inside][:, outside].abs().max() == 0
    a, b = _blocks()
    assert M[a][:, b].abs().max() == 0
    # inside a block: the Haar matrix drawn for it, not the identity
    assert (M[a][:, a] - torch.eye(3, dtype=F64)).abs().max() > 0.1
    x = torch.randn(4, n, dtype=F64)
    assert torch.allclose(R.apply_T(R.apply(x)), x, atol=1e-12)
    assert torch.allclose(R.apply(x), x @ M.T, atol=1e-12)


def test_block_rotation_refuses_overlap_and_wrong_sizes():
    with pytest.raises(ValueError, match="overlap"):
        BlockRotation(6, [(torch.tensor([0, 1]), haar(2, seed=0)), (torch.tensor([1, 2]), haar(2, seed=1))])
    with pytest.raises(ValueError, match="rotation of n=3"):
        BlockRotation(6, [(torch.tensor([0, 1]), haar(3, seed=0))])
    with pytest.raises(ValueError, match=r"\[0, 6\)"):
        BlockRotation(6, [(torch.tensor([5, 6]), haar(2, seed=0))])


def test_block_rotation_state_round_trip_and_all_or_nothing():
    R = random_block_rotation(12, _blocks(), seed=1, dtype=F64)
    S = random_block_rotation(12, _blocks(), seed=2, dtype=F64)
    S.load_state_dict(R.state_dict())
    assert torch.equal(to_dense(S), to_dense(R))
    other = random_block_rotation(12, [torch.tensor([0, 1])], seed=0, dtype=F64)
    before = to_dense(S)
    with pytest.raises(ValueError, match="index sets"):
        S.load_state_dict(other.state_dict())
    assert torch.equal(to_dense(S), before)


def test_large_block_uses_permute_rotate_and_stays_orthogonal():
    n = 40
    R = random_block_rotation(n, [torch.arange(5, 35)], seed=0, dense_max=8, dtype=F64)
    M = to_dense(R)
    assert type(R.blocks[0][1]).__name__ == "PermuteRotate"
    assert torch.allclose(M.T @ M, torch.eye(n, dtype=F64), atol=1e-12)
    assert torch.equal(M[:5, :5], torch.eye(5, dtype=F64))


def test_eigenbasis_diagonalises_the_block_it_came_from():
    g = torch.Generator().manual_seed(0)
    A = torch.randn(9, 9, generator=g, dtype=F64)
    H = A @ A.T - 3 * torch.eye(9, dtype=F64)
    Q = eigenbasis(H)
    D = Q.matrix.T @ H @ Q.matrix
    assert torch.allclose(D, torch.diag(torch.diagonal(D)), atol=1e-10)
    assert torch.allclose(torch.diagonal(D), torch.linalg.eigvalsh(H).flip(0), atol=1e-10)
    # on L o R the Hessian is R^T H R: the (1,1)-norm drops to the sum of |eigenvalues|
    assert torch.isclose(D.abs().sum(), torch.linalg.eigvalsh(H).abs().sum(), rtol=1e-10)


def test_kronecker_rotation_is_the_kronecker_product():
    A, B = haar(3, seed=1, dtype=F64), haar(4, seed=2, dtype=F64)
    R = KroneckerRotation(A, B)
    X = torch.randn(3, 4, dtype=F64)
    assert torch.allclose(R.apply(X.reshape(-1)), (A @ X @ B.T).reshape(-1), atol=1e-12)
    M = to_dense(R)
    assert torch.allclose(M, torch.kron(A, B), atol=1e-12)  # row-major vec: vec(AXB^T) = (A kron B) vec X
    x = torch.randn(2, 12, dtype=F64)
    assert torch.allclose(R.apply_T(R.apply(x)), x, atol=1e-12)
    S = KroneckerRotation(DenseRotation(haar(3, seed=5, dtype=F64)), haar(4, seed=6, dtype=F64))
    S.load_state_dict(R.state_dict())
    assert torch.allclose(to_dense(S), M, atol=1e-12)


def test_many_equal_blocks_take_the_batched_path_and_match_the_dense_matrix():
    n = 30
    sets = [torch.arange(k, n, 6) for k in range(6)]  # six interleaved blocks of 5 coordinates
    R = random_block_rotation(n, sets, seed=4, dtype=F64)
    assert len(R._stacks) == 1 and not R._others
    M = torch.zeros(n, n, dtype=F64)
    for index, rot in R.blocks:
        M[index[:, None], index[None, :]] = rot.matrix
    x = torch.randn(3, n, dtype=F64)
    assert torch.allclose(R.apply(x), x @ M.T, atol=1e-12)
    assert torch.allclose(R.apply_T(x), x @ M, atol=1e-12)
