r"""Rotations of the loss landscape (Definition 2.1, Theorem 2.2, Section 4.1, Appendix D.1).

An optimizer is *equivariant* to an orthogonal $R$ when on $L\circ R$ from $R^\top x_0$ its iterates
are $R^\top x_t$ (:func:`equivariance_gap`). A rotation acts on the last dimension: ``apply(x)`` $= Rx$,
``apply_T(x)`` $= R^\top x$; ``state_dict``/``load_state_dict`` restore it exactly, all or nothing.
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn


def _check_dim(d, name="d") -> int:
    if isinstance(d, bool) or not isinstance(d, int) or d < 1:
        raise ValueError(f"{name} must be a positive int, got {d!r}")
    return d


def _generator(seed: int | None, generator: torch.Generator | None) -> torch.Generator | None:
    if seed is not None and generator is not None:
        raise ValueError("give either seed or generator, not both")
    return generator if seed is None else torch.Generator(device="cpu").manual_seed(int(seed))


def haar(d: int, *, generator=None, seed: int | None = None, dtype=None, device="cpu") -> Tensor:
    r"""Haar $Q\,\mathrm{diag}(\mathrm{sign}\,R_{ii})$ from $Z = QR$, $Z_{ij}\sim\mathcal N(0,1)$ in float64.

    {cite}`mezzadri2007generate`. ``seed`` and ``generator`` are exclusive; neither: the global RNG.
    """
    _check_dim(d)
    g = _generator(seed, generator)
    z = torch.randn(d, d, generator=g, dtype=torch.float64, device=g.device if g is not None else "cpu")
    q, r = torch.linalg.qr(z)
    s = torch.sign(torch.diagonal(r))
    s[s == 0] = 1.0  # probability zero, but keep Q orthogonal
    return (q * s.unsqueeze(0)).to(dtype=dtype or torch.get_default_dtype(), device=device)


def exp_rotation(d: int, theta, *, seed: int = 0, dtype=None, device="cpu") -> Tensor:
    r"""$R_\theta = \exp(\theta S)$, $S = M - M^\top$, $M_{ij}\sim\mathcal N(0,1)$ in float64 from ``seed``.

    Section 4.1; $R_0 = I$ exactly. ``(d, d)``, or one per ``theta`` for a sequence.
    """
    _check_dim(d)
    scalar = isinstance(theta, (int, float)) or (isinstance(theta, Tensor) and theta.dim() == 0)
    thetas = torch.as_tensor(theta, dtype=torch.float64).reshape(-1)
    if not bool(torch.isfinite(thetas).all()):
        raise ValueError(f"theta must be finite, got {theta!r}")
    m = torch.randn(d, d, generator=_generator(seed, None), dtype=torch.float64)
    out = torch.linalg.matrix_exp(thetas.view(-1, 1, 1) * (m - m.T))
    out[thetas == 0] = torch.eye(d, dtype=torch.float64)
    out = out.to(dtype=dtype or torch.get_default_dtype(), device=device)
    return out[0] if scalar else out


class Rotation:
    r"""An orthogonal $R\in O(n)$ on the last dimension; subclasses define ``_map(x, transpose)``."""

    def apply(self, x: Tensor) -> Tensor:
        r"""$Rx$ for ``x`` of shape ``(..., n)``."""
        return self._map(self._checked(x), False)

    def apply_T(self, x: Tensor) -> Tensor:
        r"""$R^\top x$ for ``x`` of shape ``(..., n)``."""
        return self._map(self._checked(x), True)

    def _checked(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor) or x.dim() == 0 or x.shape[-1] != self.n:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"expected a tensor of shape (..., {self.n}), got {shape}")
        return x

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={self.n})"


class DenseRotation(Rotation):
    r"""An explicit orthogonal $Q$: ``apply(x)`` $= Qx$ (checked to ``atol``)."""

    def __init__(self, matrix: Tensor, *, atol: float | None = None):
        if not isinstance(matrix, Tensor) or matrix.dim() != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValueError("matrix must be a square 2-D tensor")
        if not matrix.is_floating_point():
            raise ValueError(f"matrix must be floating point, got {matrix.dtype}")
        tol = atol if atol is not None else (1e-10 if matrix.dtype == torch.float64 else 1e-4)
        eye = torch.eye(matrix.shape[0], dtype=matrix.dtype, device=matrix.device)
        err = (matrix.T @ matrix - eye).abs().max().item()
        if err > tol * max(1, matrix.shape[0]) ** 0.5:
            raise ValueError(f"matrix is not orthogonal: max|Q^T Q - I| = {err:.3g}")
        self.matrix, self.n = matrix, matrix.shape[0]
        self.dtype, self.device = matrix.dtype, matrix.device

    def _map(self, x: Tensor, transpose: bool) -> Tensor:
        return x @ self.matrix if transpose else x @ self.matrix.T

    def state_dict(self) -> dict:
        """The state that rebuilds the rotation exactly."""
        return {"kind": "dense", "matrix": self.matrix.detach().cpu().clone()}

    def load_state_dict(self, sd: dict) -> None:
        """Restore a :meth:`state_dict`, all or nothing (``ValueError`` changes nothing)."""
        m = sd.get("matrix") if isinstance(sd, Mapping) and sd.get("kind", "dense") == "dense" else None
        if not isinstance(m, Tensor) or tuple(m.shape) != (self.n, self.n):
            raise ValueError(f"not the state of a DenseRotation of n={self.n}")
        self.matrix = m.to(dtype=self.dtype, device=self.device).clone()


def _index_dtype(n: int) -> torch.dtype:
    return torch.int32 if n < 2**31 - 1 else torch.int64  # int32 halves the stored permutations


def _invert(perm: Tensor, chunk: int = 1 << 22) -> Tensor:
    """The inverse permutation, filled in chunks (no int64 copy of the whole)."""
    inv = torch.empty_like(perm)
    for start in range(0, perm.numel(), chunk):
        stop = min(start + chunk, perm.numel())
        inv[perm[start:stop]] = torch.arange(start, stop, dtype=perm.dtype, device=perm.device)
    return inv


class Permutation(Rotation):
    r"""$(Px)_i = x_{\pi(i)}$ for a 0-based index tensor ``perm`` $=\pi$ (Section 2)."""

    def __init__(self, perm: Tensor, *, dtype=None):
        perm = torch.as_tensor(perm)
        if perm.dim() != 1 or perm.numel() == 0 or perm.is_floating_point():
            raise ValueError("perm must be a non-empty 1-D integer tensor")
        n, p64 = perm.numel(), perm.to(torch.int64)
        if not torch.equal(torch.sort(p64.cpu()).values, torch.arange(n)):
            raise ValueError("perm is not a permutation of 0..n-1")
        self.n, self.dtype, self.device = n, dtype or torch.get_default_dtype(), perm.device
        self.perm = p64.to(_index_dtype(n))
        self.inv = _invert(p64).to(_index_dtype(n))

    def _map(self, x: Tensor, transpose: bool) -> Tensor:
        return x.index_select(-1, self.inv if transpose else self.perm)

    def state_dict(self) -> dict:
        """The state that rebuilds the rotation exactly."""
        return {"kind": "permutation", "perm": self.perm.detach().cpu().to(torch.int64)}

    def load_state_dict(self, sd: dict) -> None:
        """Restore a :meth:`state_dict`, all or nothing (``ValueError`` changes nothing)."""
        ok = isinstance(sd, Mapping) and sd.get("kind", "permutation") == "permutation"
        p = sd.get("perm") if ok else None
        if not isinstance(p, Tensor) or p.numel() != self.n:
            raise ValueError(f"not the state of a Permutation of n={self.n}")
        self.__init__(p.to(self.device), dtype=self.dtype)


def random_permutation(d: int, *, seed=None, generator=None, dtype=None, device="cpu") -> Permutation:
    """A uniformly random :class:`Permutation` of ``d`` coordinates (drawn on the CPU)."""
    _check_dim(d)
    g = _generator(seed, generator)
    perm = torch.randperm(d, generator=g, device=g.device if g is not None else "cpu")
    return Permutation(perm.to(device), dtype=dtype)


def as_rotation(obj) -> Rotation:
    """A square tensor as a :class:`DenseRotation`; an object with ``apply``/``apply_T`` as it is."""
    if isinstance(obj, Tensor):
        return DenseRotation(obj)
    if hasattr(obj, "apply") and hasattr(obj, "apply_T"):
        return obj
    raise ValueError(f"cannot use {type(obj).__name__} as a rotation (need a square tensor or apply/apply_T)")


def to_dense(rotation) -> Tensor:
    r"""The matrix $R$ of a rotation: ``apply(I)`` has rows $(Re_i)^\top$, so $R$ is its transpose."""
    if isinstance(rotation, DenseRotation):
        return rotation.matrix.clone()
    dtype = getattr(rotation, "dtype", None) or torch.get_default_dtype()
    eye = torch.eye(rotation.n, dtype=dtype, device=getattr(rotation, "device", "cpu"))
    return rotation.apply(eye).T.contiguous()


def split_pieces(n: int, *, dense_max: int = 512) -> list[tuple[int, int, int]]:
    r"""Pieces $n = \sum_j a_jb_jc_j$: $(s,s,\lfloor r/s^2\rfloor)$ while the rest $r >$ ``dense_max``.

    $s = \lfloor r^{1/3}\rfloor$; the last piece is $(1,1,r)$, e.g. $1009 \to [(10,10,10), (1,1,9)]$.
    """
    _check_dim(n, "n")
    if dense_max < 1:
        raise ValueError(f"dense_max must be >= 1, got {dense_max}")
    pieces, r = [], n
    while r > dense_max:
        s = max(1, int(round(r ** (1.0 / 3.0))))  # then exactly floor(r ** (1/3))
        while s**3 > r:
            s -= 1
        while (s + 1) ** 3 <= r:
            s += 1
        pieces.append((s, s, r // (s * s)))
        r %= s * s
    if r > 0:
        pieces.append((1, 1, r))
    return pieces


def _perm_digest(perm: Tensor) -> str:
    """blake2b-128 of the permutation as int64 bytes, hashed in chunks."""
    h = hashlib.blake2b(digest_size=16)
    for chunk in perm.cpu().reshape(-1).split(1 << 22):
        h.update(memoryview(chunk.to(torch.int64).contiguous().numpy()).cast("B"))
    return h.hexdigest()


def _each_matrix(f: Callable, stages: list) -> list:
    """``f`` on every mode matrix ``stages[j][p][i]``; None (a size-1 mode) stays None."""
    return [[[None if q is None else f(q) for q in piece] for piece in stage] for stage in stages]


class PermuteRotate(Rotation):
    r"""The map of Appendix D.1: $\mathcal R = \mathcal R_k\circ\cdots\circ\mathcal R_1$.

    $\mathcal R_j = \mathrm{blockdiag}_p\big(Q^{(j,p)}_1\otimes Q^{(j,p)}_2\otimes Q^{(j,p)}_3\big)\,\Pi_j$,
    $\Pi_j$ random, piece $p$ of :func:`split_pieces` an $a\times b\times c$ tensor, $Q$ Haar (the any-$n$
    pieces are ours). One CPU generator seeded by ``seed`` draws $\pi_j$ then the float64 $Q$s, stage by
    stage: one map on every device and dtype. ``state_dict`` keeps permutation digests, not permutations.
    """

    def __init__(
        self, n: int, k=2, seed=0, dtype=None, device="cpu", *, dense_max=512, pieces=None, perms=None
    ):
        _check_dim(n, "n")
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise ValueError(f"k must be an int >= 0, got {k!r}")
        dtype = dtype or torch.get_default_dtype()
        if not dtype.is_floating_point:
            raise ValueError(f"dtype must be floating point, got {dtype}")
        if pieces is None:
            pieces = split_pieces(n, dense_max=dense_max)
        pieces = [tuple(int(s) for s in p) for p in pieces]
        if any(len(p) != 3 or min(p) < 1 for p in pieces) or sum(a * b * c for a, b, c in pieces) != n:
            raise ValueError(f"pieces {pieces} must be 3-tuples of positive ints holding n={n} coordinates")
        if perms is not None and (len(perms) != k or any(torch.as_tensor(p).numel() != n for p in perms)):
            raise ValueError(f"perms must be {k} permutations of {n} coordinates")
        self.n, self.k, self.seed, self.dense_max, self.pieces = n, k, int(seed), dense_max, pieces
        self.dtype, self.device = dtype, torch.device(device)
        g = torch.Generator(device="cpu").manual_seed(self.seed)
        idt = _index_dtype(n)
        self._perm, self._inv, self._q64, self._digests = [], [], [], []
        for j in range(k):
            p = torch.randperm(n, generator=g, dtype=idt)  # drawn even when perms are given
            if perms is not None:
                p = perms[j].cpu().to(idt)
            self._digests.append(_perm_digest(p))
            self._perm.append(p.to(self.device))
            self._inv.append(_invert(p).to(self.device))
            self._q64.append(
                [[haar(s, generator=g, dtype=torch.float64) if s > 1 else None for s in sh] for sh in pieces]
            )
        self._cast_matrices()

    def _cast_matrices(self) -> None:
        """The working matrices: the float64 mode matrices in the rotation's dtype and device."""
        self._q = _each_matrix(lambda q: q.to(dtype=self.dtype, device=self.device), self._q64)

    @staticmethod
    def _kron3(v: Tensor, shape, qs, transpose: bool) -> Tensor:
        """(Q1 ⊗ Q2 ⊗ Q3) v for v of shape (B, a*b*c), row-major (the transpose if ``transpose``)."""
        a, b, c = shape
        q1, q2, q3 = qs
        B = v.shape[0]
        t = v.reshape(B, a, b, c)
        if q3 is not None:
            t = t @ (q3 if transpose else q3.T)
        if q2 is not None:
            t = (q2.T if transpose else q2) @ t
        if q1 is not None:
            t = (q1.T if transpose else q1) @ t.reshape(B, a, b * c)
        return t.reshape(B, a * b * c)

    def _stage(self, x: Tensor, j: int, transpose: bool, owned: bool) -> Tensor:
        """Stage ``j`` (or its transpose) on x of shape (B, n); ``owned``: x may be overwritten."""
        if not transpose:
            x = x.index_select(1, self._perm[j])
            owned = True
        if len(self.pieces) == 1:
            out = self._kron3(x, self.pieces[0], self._q[j][0], transpose)
        else:
            out = x if owned else torch.empty_like(x)  # the pieces are disjoint slices
            off = 0
            for shape, qs in zip(self.pieces, self._q[j], strict=True):
                m = shape[0] * shape[1] * shape[2]
                if any(q is not None for q in qs):
                    out[:, off : off + m] = self._kron3(x[:, off : off + m], shape, qs, transpose)
                elif out is not x:  # a (1, 1, 1) piece is the identity
                    out[:, off : off + m] = x[:, off : off + m]
                off += m
        return out.index_select(1, self._inv[j]) if transpose else out

    def _map(self, x: Tensor, transpose: bool) -> Tensor:
        if x.dtype != self.dtype:
            raise ValueError(f"input dtype {x.dtype} differs from the rotation's {self.dtype}")
        y = x.reshape(-1, self.n)
        order = range(self.k - 1, -1, -1) if transpose else range(self.k)
        for i, j in enumerate(order):
            y = self._stage(y, j, transpose, owned=i > 0)
        if self.k == 0:
            y = y.clone()
        return y.reshape(x.shape)

    def state_dict(self, include_permutations: bool = False) -> dict:
        """The state that rebuilds the rotation exactly."""
        sd = {"kind": "permute_rotate", "version": 1, "n": self.n, "k": self.k, "seed": self.seed}
        sd.update(dense_max=self.dense_max, pieces=[list(p) for p in self.pieces])
        sd.update(matrices=_each_matrix(Tensor.clone, self._q64), perm_digests=list(self._digests))
        if include_permutations:
            sd["perms"] = [p.cpu().to(torch.int64) for p in self._perm]
        return sd

    def load_state_dict(self, sd: dict) -> None:
        """Rebuild from ``sd`` aside and take it over only if the digests and shapes match."""
        if not isinstance(sd, Mapping) or sd.get("kind") != "permute_rotate" or sd.get("n") != self.n:
            raise ValueError(f"not the state of a PermuteRotate of n={self.n}")
        try:
            k, seed, dense_max = int(sd["k"]), int(sd["seed"]), int(sd["dense_max"])
            kw = dict(dense_max=dense_max, pieces=sd["pieces"], perms=sd.get("perms"))
            new = PermuteRotate(self.n, k, seed, self.dtype, self.device, **kw)
            digests, matrices = list(sd["perm_digests"]), sd["matrices"]
        except (KeyError, TypeError, IndexError) as err:
            raise ValueError(f"malformed PermuteRotate state: {err!r}") from None
        if new._digests != digests:
            msg = "regenerated permutations differ from the saved ones (different torch RNG?)"
            raise ValueError(f"{msg}; save with state_dict(include_permutations=True)")
        expected = [[[None if s == 1 else (s, s) for s in shape] for shape in new.pieces]] * new.k
        got = _each_matrix(lambda q: tuple(q.shape), matrices)
        if got != expected:
            raise ValueError(f"the saved mode matrices have shapes {got}, the pieces need {expected}")
        new._q64 = _each_matrix(lambda q: q.to(torch.float64).clone(), matrices)
        new._cast_matrices()
        self.__dict__.update(new.__dict__)


class BlockRotation(Rotation):
    r"""$\bigoplus_kQ_k\oplus I$: ``blocks`` of pairs ``(index, rotation)`` on disjoint index sets $I_k$."""

    def __init__(self, n: int, blocks: Sequence[tuple[Tensor, object]]):
        self.n = _check_dim(n, "n")
        seen = torch.zeros(n, dtype=torch.bool)
        self.blocks: list[tuple[Tensor, Rotation]] = []
        for k, (index, rot) in enumerate(blocks):
            index, rot = torch.as_tensor(index, dtype=torch.long).reshape(-1), as_rotation(rot)
            if index.numel() == 0 or int(index.min()) < 0 or int(index.max()) >= n:
                raise ValueError(f"block {k}: indices must lie in [0, {n}), got {index.numel()} of them")
            if bool(seen[index].any()) or index.unique().numel() != index.numel():
                raise ValueError(f"block {k}: its coordinates overlap another block's (or repeat)")
            if rot.n != index.numel():
                raise ValueError(f"block {k}: a rotation of n={rot.n} for {index.numel()} coordinates")
            seen[index] = True
            self.blocks.append((index, rot))
        if not self.blocks:
            raise ValueError("blocks must hold at least one (index, rotation) pair")
        self.dtype, self.device = self.blocks[0][1].dtype, self.blocks[0][1].device
        self._stack()

    def _stack(self) -> None:
        by_size: dict[int, list[tuple[Tensor, Tensor]]] = {}
        self._others = []
        for index, rot in self.blocks:
            if isinstance(rot, DenseRotation):
                by_size.setdefault(index.numel(), []).append((index, rot.matrix))
            else:
                self._others.append((index.to(self.device), rot))
        stacks = [(torch.stack([i for i, _ in b]), torch.stack([m for _, m in b])) for b in by_size.values()]
        self._stacks = [(index.to(self.device), mats) for index, mats in stacks]

    def _map(self, x: Tensor, transpose: bool) -> Tensor:
        out = x.clone()
        for index, mats in self._stacks:  # (k, m) indices, (k, m, m) matrices
            index = index.to(x.device)
            part = x[..., index].to(mats.dtype)
            eq = "kji,...kj->...ki" if transpose else "kij,...kj->...ki"
            out[..., index] = torch.einsum(eq, mats.to(x.device), part).to(x.dtype)
        for index, rot in self._others:
            index = index.to(x.device)
            part = x.index_select(-1, index).to(rot.dtype)
            out[..., index] = (rot.apply_T(part) if transpose else rot.apply(part)).to(x.dtype)
        return out

    def state_dict(self) -> dict:
        """The state that rebuilds the rotation exactly."""
        return {"kind": "block", "n": self.n, "blocks": [(i.clone(), r.state_dict()) for i, r in self.blocks]}

    def load_state_dict(self, sd: dict) -> None:
        """Restore a :meth:`state_dict`, all or nothing (``ValueError`` changes nothing)."""
        if not isinstance(sd, Mapping) or sd.get("kind") != "block" or sd.get("n") != self.n:
            raise ValueError(f"not the state of a BlockRotation of n={self.n}")
        saved = sd.get("blocks") or []
        if len(saved) != len(self.blocks) or any(
            not torch.equal(torch.as_tensor(i).reshape(-1), index)
            for (i, _), (index, _) in zip(saved, self.blocks, strict=True)
        ):
            raise ValueError("the state holds other index sets than this BlockRotation")
        blocks = copy.deepcopy(self.blocks)
        for (_, rot), (_, state) in zip(blocks, saved, strict=True):
            rot.load_state_dict(state)
        self.blocks = blocks
        self._stack()


def random_block_rotation(
    n: int, index_sets: Sequence[Tensor], *, seed: int = 0, dense_max: int = 2048, dtype=None, device="cpu"
) -> BlockRotation:
    """Haar on sets of ≤ ``dense_max`` coordinates, else ``PermuteRotate(k=2)``; seeds ``seed*100003+k``."""
    blocks = []
    for k, index in enumerate(index_sets):
        index = torch.as_tensor(index, dtype=torch.long).reshape(-1)
        m, sub_seed = index.numel(), int(seed) * 100_003 + k
        if m <= dense_max:
            rot = DenseRotation(haar(m, seed=sub_seed, dtype=dtype, device=device))
        else:
            rot = PermuteRotate(m, k=2, seed=sub_seed, dtype=dtype, device=device)
        blocks.append((index, rot))
    return BlockRotation(n, blocks)


def eigenbasis(matrix: Tensor, *, dtype=None) -> DenseRotation:
    r"""$Q$ of $M = Q\Lambda Q^\top$ (eigenvalues decreasing; ``eigh`` of $(M+M^\top)/2$ in float64)."""
    if not isinstance(matrix, Tensor) or matrix.dim() != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError("matrix must be a square 2-D tensor")
    m = matrix.detach().to(torch.float64)
    _, vecs = torch.linalg.eigh((m + m.T) / 2)
    return DenseRotation(vecs.flip(-1).to(dtype or matrix.dtype), atol=1e-5)


class KroneckerRotation(Rotation):
    r"""$A\otimes B$ on a row-major ``(m, p)`` matrix: ``apply(vec X)`` $=\mathrm{vec}(AXB^\top)$.

    The fixed basis of Shampoo and SOAP {cite}`gupta2018shampoo,vyas2024soap`.
    """

    def __init__(self, left, right):
        self.left, self.right = as_rotation(left), as_rotation(right)
        self.shape = (self.left.n, self.right.n)
        self.n = self.left.n * self.right.n
        self.dtype, self.device = self.left.dtype, self.left.device

    def _map(self, x: Tensor, transpose: bool) -> Tensor:
        a, b = (to_dense(f).to(dtype=x.dtype, device=x.device) for f in (self.left, self.right))
        X = x.reshape(*x.shape[:-1], *self.shape)
        return (a.T @ X @ b if transpose else a @ X @ b.T).reshape(x.shape)

    def state_dict(self) -> dict:
        """The state that rebuilds the rotation exactly."""
        return {"kind": "kronecker", "left": self.left.state_dict(), "right": self.right.state_dict()}

    def load_state_dict(self, sd: dict) -> None:
        """Restore a :meth:`state_dict`, all or nothing (``ValueError`` changes nothing)."""
        if not isinstance(sd, Mapping) or sd.get("kind") != "kronecker":
            raise ValueError("not a KroneckerRotation state (need kind='kronecker')")
        left, right = copy.deepcopy(self.left), copy.deepcopy(self.right)
        left.load_state_dict(sd["left"])
        right.load_state_dict(sd["right"])
        self.left, self.right = left, right


class RotatedParametrization:
    r"""Train any ``nn.Module`` on $L\circ\mathcal R$ ("rotated Adam", Section 4).

    The optimizer owns a flat ``w`` from $w_0 = \mathcal R^\top x_0$, the module holds $x = \mathcal Rw$:
    ``rp.push()``, ``loss.backward()``, ``rp.pull_grad()``, ``opt.step()`` (``opt`` on ``rp.parameters()``).
    ``rotation``: anything :func:`as_rotation` takes; default ``PermuteRotate(n, k, seed)``.
    """

    def __init__(self, module: nn.Module, rotation=None, *, k: int = 2, seed: int = 0):
        if not isinstance(module, nn.Module):
            raise ValueError(f"module must be an nn.Module, got {type(module).__name__}")
        params = [p for p in module.parameters() if p.requires_grad]
        if not params:
            raise ValueError("module has no trainable parameters")
        dtypes, devices = {p.dtype for p in params}, {p.device for p in params}
        if len(dtypes) != 1 or len(devices) != 1:
            raise ValueError(f"trainable parameters must share one dtype and device, got {dtypes}, {devices}")
        self.module, self._params = module, params
        self._numels = [p.numel() for p in params]
        self.n = sum(self._numels)
        dtype, device = params[0].dtype, params[0].device
        rot_dtype = dtype if dtype in (torch.float32, torch.float64) else torch.float32
        if rotation is None:
            rotation = PermuteRotate(self.n, k=k, seed=seed, dtype=rot_dtype, device=device)
        self.rotation = rotation = as_rotation(rotation)
        if rotation.n != self.n:
            raise ValueError(f"rotation acts on n={rotation.n} coordinates, the module has {self.n}")
        self._rot_dtype = getattr(rotation, "dtype", rot_dtype)
        with torch.no_grad():
            x0 = torch.cat([p.detach().reshape(-1) for p in params])
            self.w = nn.Parameter(self.rotation.apply_T(x0.to(self._rot_dtype)).to(dtype))

    def parameters(self) -> list[nn.Parameter]:
        """``[w]``: what the optimizer owns."""
        return [self.w]

    @torch.no_grad()
    def push(self) -> None:
        r"""Module parameters $\leftarrow\mathcal Rw$ (in place)."""
        x = self.rotation.apply(self.w.detach().to(self._rot_dtype)).to(self.w.dtype)
        chunks = [c.view_as(p) for c, p in zip(x.split(self._numels), self._params, strict=True)]
        torch._foreach_copy_(self._params, chunks)

    @torch.no_grad()
    def pull_grad(self) -> None:
        r"""``w.grad`` $\leftarrow\mathcal R^\top\nabla_xL$ from the module's ``.grad`` (None counts as 0)."""
        grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in self._params]
        g = torch.cat([x.reshape(-1) for x in grads])
        gw = self.rotation.apply_T(g.to(self._rot_dtype)).to(self.w.dtype)
        if self.w.grad is None:
            self.w.grad = gw
        else:
            self.w.grad.copy_(gw)

    def state_dict(self) -> dict:
        """The state that rebuilds the rotation exactly."""
        rot_sd = self.rotation.state_dict() if hasattr(self.rotation, "state_dict") else None
        return {"n": self.n, "w": self.w.detach().clone(), "rotation": rot_sd}

    def load_state_dict(self, sd: dict) -> None:
        r"""Restore ``w`` and the rotation (all or nothing), then :meth:`push`."""
        w = sd.get("w") if isinstance(sd, Mapping) else None
        if not isinstance(w, Tensor) or sd.get("n") != self.n or w.shape != self.w.shape:
            raise ValueError(f"not the state of a RotatedParametrization of n={self.n}")
        if sd.get("rotation") is not None:
            self.rotation.load_state_dict(sd["rotation"])
        with torch.no_grad():
            self.w.copy_(w.to(dtype=self.w.dtype, device=self.w.device))
        self.push()

    def __repr__(self) -> str:
        return f"RotatedParametrization(n={self.n}, rotation={self.rotation!r})"


rotate_model = RotatedParametrization  # the README's verb: rotate_model(model) trains on L o R


@dataclass
class EquivarianceGap:
    r"""``xs`` on $L$, ``ws`` on $L\circ R$, ``gaps`` $=\|\tilde x_t - R^\top x_t\|_2$, ``gap`` their max.

    ``relative_gap``: ``gap`` over $\max_t\|x_t-x_0\|$.
    """

    xs: Tensor
    ws: Tensor
    gaps: Tensor
    gap: float
    relative_gap: float


def equivariance_gap(opt_factory, loss_fn, x0: Tensor, R, steps: int) -> EquivarianceGap:
    r"""Run an optimizer on $L_t$ from $x_0$ and on $L_t\circ R$ from $R^\top x_0$ (Definition 2.1).

    Args:
        opt_factory: ``params -> optimizer`` (called once per run).
        loss_fn: ``(x, t) -> scalar``, $t = 1..$ ``steps``.
        x0: the start, shape ``(d,)``.
        R: a ``(d, d)`` orthogonal tensor or a rotation.
        steps: optimizer steps.
    """
    if x0.dim() != 1:
        raise ValueError(f"x0 must be 1-D, got shape {tuple(x0.shape)}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an int >= 0, got {steps!r}")
    rot = as_rotation(R)
    if rot.n != x0.numel():
        raise ValueError(f"R acts on {rot.n} coordinates, x0 has {x0.numel()}")

    def run(start: Tensor, transform: Callable[[Tensor], Tensor]) -> Tensor:
        p = nn.Parameter(start.detach().clone())
        opt = opt_factory([p])
        traj = [p.detach().clone()]
        for t in range(1, steps + 1):
            opt.zero_grad(set_to_none=True)
            loss_fn(transform(p), t).backward()
            opt.step()
            traj.append(p.detach().clone())
        return torch.stack(traj)

    xs = run(x0, lambda x: x)
    ws = run(rot.apply_T(x0.detach()), rot.apply)
    gaps = torch.linalg.vector_norm(ws - rot.apply_T(xs), dim=1)
    scale = torch.linalg.vector_norm(xs - xs[0], dim=1).max().item()
    gap = gaps.max().item()
    relative = gap / scale if scale > 0 else math.inf if gap > 0 else 0.0
    return EquivarianceGap(xs=xs, ws=ws, gaps=gaps, gap=gap, relative_gap=relative)
