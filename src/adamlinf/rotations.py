r"""Rotations of the loss landscape (Definition 2.1, Theorem 2.2, Section 4.1, Appendix D.1).

The paper compares an optimizer on a loss $L$ with the same optimizer on the rotated loss
$L\circ\mathcal R$, $\mathcal R$ orthogonal. SGD and AdaSGD do not see the difference (they are
rotation-equivariant, Theorem 2.2); Adam and SignGD do (they are only permutation-equivariant).
This module provides the rotations and the machinery to train on $L\circ\mathcal R$:

* :func:`haar` -- a Haar-distributed orthogonal matrix (QR of a Gaussian matrix with the sign
  correction of Mezzadri 2007, {cite}`mezzadri2007generate`).
* :func:`exp_rotation` -- the one-parameter family $R_\theta = \exp(\theta S)$, $S = M - M^\top$,
  $M_{ij}\sim\mathcal N(0,1)$, used for the rotated quadratics of Section 4.1 (Table 1);
  $R_0 = I$ exactly and one seed fixes one $S$, so a sweep over $\theta$ follows one path in $SO(d)$.
* :class:`PermuteRotate` -- the scalable rotation of Appendix D.1 (permute, reshape to a 3-D tensor,
  one orthogonal matrix per mode, chained ``k`` times), applied in $O(n(s_1+s_2+s_3))$ time and never
  building an $n\times n$ matrix, exactly orthogonal for *every* $n$ (see its docstring for the
  scheme used when $n$ is not a product of three near-equal factors, e.g. $n$ prime).
* :class:`DenseRotation`, :class:`Permutation`, :func:`random_permutation`, :func:`as_rotation`,
  :func:`to_dense` -- small wrappers so that every rotation has the same interface
  (``n``, ``apply(x) = R x``, ``apply_T(x) = R^T x``, ``state_dict``/``load_state_dict``).
* :class:`BlockRotation` -- rotations restricted to disjoint sets of coordinates (one tensor, one
  attention head, groups of coordinates of similar scale), the identity elsewhere;
  :func:`random_block_rotation` draws one.
* :class:`KroneckerRotation` and :func:`eigenbasis` -- the eigenbasis of a symmetric matrix small
  enough to diagonalise (a Hessian block), and the Kronecker product of two such bases acting on a
  weight matrix (the eigenbases of the two gradient-covariance factors that Shampoo and SOAP use,
  {cite}`gupta2018shampoo,vyas2024soap`).
* :class:`RotatedParametrization` -- train any ``nn.Module`` on $L\circ\mathcal R$ with any optimizer.
* :func:`equivariance_gap` -- run an optimizer on $L$ and on $L\circ R$ and measure
  $\max_t\|\tilde x_t - R^\top x_t\|_2$ (Definition 2.1).

In maths (Definition 2.1): an optimizer is *equivariant* to an orthogonal $R$ when, started from
$\tilde x_0 = R^\top x_0$ on $\tilde L = L\circ R$, its iterates are $\tilde x_t = R^\top x_t$ for
every $t$. Theorem 2.2: SGD and AdaSGD are equivariant to every orthogonal $R$; Adam and SignGD to
permutations (and sign flips) only.

Conventions. A rotation object acts on the *last* dimension of its input: ``x`` of shape ``(n,)`` or
``(batch, n)`` (any leading dimensions work). ``apply(x)`` returns $Rx$ (row-wise for a batch),
``apply_T(x)`` returns $R^\top x$, so ``apply_T(apply(x)) == x`` up to rounding.
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = [
    "haar",
    "exp_rotation",
    "skew_generator",
    "Rotation",
    "DenseRotation",
    "Permutation",
    "random_permutation",
    "PermuteRotate",
    "split_pieces",
    "as_rotation",
    "to_dense",
    "BlockRotation",
    "random_block_rotation",
    "KroneckerRotation",
    "eigenbasis",
    "RotatedParametrization",
    "EquivarianceGap",
    "equivariance_gap",
]


# ---------------------------------------------------------------------------------------------
# dense matrices
# ---------------------------------------------------------------------------------------------


def _resolve_dtype(dtype) -> torch.dtype:
    return torch.get_default_dtype() if dtype is None else dtype


def _check_dim(d, name="d") -> int:
    if isinstance(d, bool) or not isinstance(d, int) or d < 1:
        raise ValueError(f"{name} must be a positive int, got {d!r}")
    return d


def _generator(seed: int | None, generator: torch.Generator | None) -> torch.Generator | None:
    if seed is not None and generator is not None:
        raise ValueError("give either seed or generator, not both")
    if seed is not None:
        g = torch.Generator(device="cpu")
        g.manual_seed(int(seed))
        return g
    return generator


def haar(
    d: int,
    *,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    dtype: torch.dtype | None = None,
    device="cpu",
) -> Tensor:
    r"""A Haar-distributed (uniform) random orthogonal matrix $Q\in O(d)$.

    Draw $Z\in\mathbb R^{d\times d}$ with i.i.d. $\mathcal N(0,1)$ entries, factor $Z = QR$ and
    return $Q\,\mathrm{diag}(\mathrm{sign}(R_{ii}))$. Without the sign correction the plain QR output
    is *not* Haar distributed (its distribution depends on the QR convention); with it, it is
    (Mezzadri 2007, {cite}`mezzadri2007generate`). The sample is drawn in float64 on the
    generator's device (CPU by default) and then cast, so a seed gives the same matrix on every
    device and dtype.

    Args:
        d: size.
        generator: a ``torch.Generator`` to draw from (mutually exclusive with ``seed``).
        seed: seed for a fresh CPU generator; with neither, the global RNG is used.
        dtype: of the returned matrix (default ``torch.get_default_dtype()``).
        device: of the returned matrix.

    Returns:
        The ``(d, d)`` matrix $Q$.

    Raises:
        ValueError: ``d`` not a positive int, or both ``seed`` and ``generator`` given.
    """
    _check_dim(d)
    g = _generator(seed, generator)
    gdev = g.device if g is not None else "cpu"
    z = torch.randn(d, d, generator=g, dtype=torch.float64, device=gdev)
    q, r = torch.linalg.qr(z)
    s = torch.sign(torch.diagonal(r))
    s[s == 0] = 1.0  # probability zero, but keep Q orthogonal
    q = q * s.unsqueeze(0)  # scale column j by sign(R_jj)
    return q.to(dtype=_resolve_dtype(dtype), device=device)


def skew_generator(d: int, *, seed: int = 0, dtype: torch.dtype | None = None, device="cpu") -> Tensor:
    r"""The skew-symmetric $S = M - M^\top$ with $M_{ij}\overset{iid}\sim\mathcal N(0,1)$ (Section 4.1).

    The same ``seed`` gives the same $S$ (drawn in float64 on the CPU, then cast).
    """
    _check_dim(d)
    g = _generator(seed, None)
    m = torch.randn(d, d, generator=g, dtype=torch.float64)
    return (m - m.T).to(dtype=_resolve_dtype(dtype), device=device)


def exp_rotation(d: int, theta, *, seed: int = 0, dtype: torch.dtype | None = None, device="cpu") -> Tensor:
    r"""The rotation $R_\theta = \exp(\theta S)$ of Section 4.1, $S$ from :func:`skew_generator`.

    $S$ is skew-symmetric, so $R_\theta$ is orthogonal with $\det R_\theta = e^{\theta\,\mathrm{tr}S}
    = 1$ (a rotation in $SO(d)$); $R_0 = I$ exactly, and all $\theta$ with the same ``seed`` share
    one $S$, so a sweep over $\theta$ moves along one geodesic from the identity. The paper's rotated
    quadratics use $L_\theta(x) = L(R_\theta x)$ (RECONSTRUCTED symbols; see the book's reconstruction
    notes). Computed with ``torch.linalg.matrix_exp`` in float64, then cast.

    Args:
        d: size.
        theta: a float (returns ``(d, d)``) or a 1-D sequence/tensor of floats (returns
            ``(len(theta), d, d)``, one matrix exponential per value, all with the same $S$).
        seed: fixes $M$ and hence $S$.
        dtype: of the result (default ``torch.get_default_dtype()``).
        device: of the result.

    Returns:
        $R_\theta$, ``(d, d)``, or ``(len(theta), d, d)`` for a sequence of angles.

    Raises:
        ValueError: ``d`` not a positive int, or a non-finite ``theta``.
    """
    _check_dim(d)
    dtype = _resolve_dtype(dtype)
    scalar = isinstance(theta, (int, float)) or (isinstance(theta, Tensor) and theta.dim() == 0)
    thetas = torch.as_tensor(theta, dtype=torch.float64).reshape(-1)
    if not bool(torch.isfinite(thetas).all()):
        raise ValueError(f"theta must be finite, got {theta!r}")
    s = skew_generator(d, seed=seed, dtype=torch.float64)
    out = torch.linalg.matrix_exp(thetas.view(-1, 1, 1) * s)
    eye = torch.eye(d, dtype=torch.float64)
    out[thetas == 0] = eye  # R_0 = I exactly (matrix_exp(0) already is, this makes it a guarantee)
    out = out.to(dtype=dtype, device=device)
    return out[0] if scalar else out


# ---------------------------------------------------------------------------------------------
# rotation objects
# ---------------------------------------------------------------------------------------------


class Rotation:
    r"""Interface of every rotation object: an orthogonal $R\in O(n)$ acting on the last dimension.

    Subclasses implement ``apply`` ($x\mapsto Rx$), ``apply_T`` ($x\mapsto R^\top x$),
    ``state_dict`` and ``load_state_dict``, and carry ``n``, ``dtype`` and ``device``.
    """

    n: int
    dtype: torch.dtype
    device: torch.device

    def apply(self, x: Tensor) -> Tensor:  # pragma: no cover - interface
        r"""$Rx$ for ``x`` of shape ``(..., n)`` (row-wise)."""
        raise NotImplementedError

    def apply_T(self, x: Tensor) -> Tensor:  # pragma: no cover - interface
        r"""$R^\top x$ for ``x`` of shape ``(..., n)`` (row-wise)."""
        raise NotImplementedError

    def state_dict(self) -> dict:  # pragma: no cover - interface
        """Everything needed to rebuild the rotation exactly."""
        raise NotImplementedError

    def load_state_dict(self, sd: dict) -> None:  # pragma: no cover - interface
        """Restore from :meth:`state_dict`, all or nothing (``ValueError`` leaves it unchanged)."""
        raise NotImplementedError

    def to_dense(self) -> Tensor:
        """The ``(n, n)`` matrix $R$ (built by applying to the identity; small ``n`` only)."""
        return to_dense(self)

    def _check_input(self, x: Tensor) -> None:
        if not isinstance(x, Tensor):
            raise ValueError(f"expected a Tensor, got {type(x).__name__}")
        if x.dim() == 0 or x.shape[-1] != self.n:
            raise ValueError(
                f"expected a tensor of shape (n,) or (batch, n) with n={self.n}, got shape {tuple(x.shape)}"
            )


class DenseRotation(Rotation):
    r"""An explicit orthogonal matrix $Q$ wrapped as a rotation: ``apply(x)`` $= Qx$.

    Used for Haar and $\exp(\theta S)$ rotations in small dimension (Theorem 2.2 tests, the
    quadratic of Section 4.1). Orthogonality is checked at construction (tolerance ``atol``;
    pass ``check=False`` to skip).
    """

    def __init__(self, matrix: Tensor, *, check: bool = True, atol: float | None = None):
        if not isinstance(matrix, Tensor) or matrix.dim() != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValueError("matrix must be a square 2-D tensor")
        if not matrix.is_floating_point():
            raise ValueError(f"matrix must be floating point, got {matrix.dtype}")
        if check:
            tol = atol if atol is not None else (1e-10 if matrix.dtype == torch.float64 else 1e-4)
            eye = torch.eye(matrix.shape[0], dtype=matrix.dtype, device=matrix.device)
            err = (matrix.T @ matrix - eye).abs().max().item()
            if err > tol * max(1, matrix.shape[0]) ** 0.5:
                raise ValueError(f"matrix is not orthogonal: max|Q^T Q - I| = {err:.3g}")
        self.matrix = matrix
        self.n = matrix.shape[0]
        self.dtype = matrix.dtype
        self.device = matrix.device

    def apply(self, x: Tensor) -> Tensor:
        r"""$Qx$, row-wise."""
        self._check_input(x)
        return x @ self.matrix.T

    def apply_T(self, x: Tensor) -> Tensor:
        r"""$Q^\top x$, row-wise."""
        self._check_input(x)
        return x @ self.matrix

    def to_dense(self) -> Tensor:
        """A copy of $Q$."""
        return self.matrix.clone()

    def state_dict(self) -> dict:
        """The matrix (on the CPU)."""
        return {"kind": "dense", "matrix": self.matrix.detach().cpu().clone()}

    def load_state_dict(self, sd: dict) -> None:
        """Restore the matrix saved by :meth:`state_dict` (all or nothing; dtype and device stay).

        Args:
            sd: a state dict from :meth:`state_dict`.

        Raises:
            ValueError: not a dense rotation's state, or a matrix of another size.
        """
        if (
            not isinstance(sd, Mapping)
            or sd.get("kind", "dense") != "dense"
            or not isinstance(sd.get("matrix"), Tensor)
        ):
            raise ValueError("not a DenseRotation state (need kind='dense' and a matrix tensor)")
        m = sd["matrix"]
        if tuple(m.shape) != (self.n, self.n):
            raise ValueError(f"state has a {tuple(m.shape)} matrix, this rotation is {self.n}x{self.n}")
        self.matrix = m.to(dtype=self.dtype, device=self.device).clone()

    def __repr__(self) -> str:
        return f"DenseRotation(n={self.n}, dtype={self.dtype})"


def _index_dtype(n: int) -> torch.dtype:
    # int32 halves the memory of the stored permutations (index_select accepts it)
    return torch.int32 if n < 2**31 - 1 else torch.int64


def _invert(perm: Tensor, chunk: int = 1 << 22) -> Tensor:
    """The inverse permutation, filled in chunks (indexing would otherwise make int64 copies)."""
    inv = torch.empty_like(perm)
    for start in range(0, perm.numel(), chunk):
        stop = min(start + chunk, perm.numel())
        inv[perm[start:stop]] = torch.arange(start, stop, dtype=perm.dtype, device=perm.device)
    return inv


class Permutation(Rotation):
    r"""The permutating transformation of Section 2: $(P x)_i = x_{\pi(i)}$.

    ``perm`` holds $\pi$ as a 0-based index tensor. Every permutation is a rotation; Adam and SignGD
    are equivariant to it (Theorem 2.2).
    """

    def __init__(self, perm: Tensor, *, dtype: torch.dtype | None = None):
        perm = torch.as_tensor(perm)
        if perm.dim() != 1 or perm.numel() == 0 or perm.is_floating_point():
            raise ValueError("perm must be a non-empty 1-D integer tensor")
        n = perm.numel()
        p64 = perm.to(torch.int64)
        if not torch.equal(torch.sort(p64.cpu()).values, torch.arange(n)):
            raise ValueError("perm is not a permutation of 0..n-1")
        self.n = n
        self.dtype = _resolve_dtype(dtype)
        self.device = perm.device
        self.perm = p64.to(_index_dtype(n))
        self.inv = _invert(p64).to(_index_dtype(n))

    def apply(self, x: Tensor) -> Tensor:
        r"""$(Px)_i = x_{\pi(i)}$, row-wise."""
        self._check_input(x)
        return x.index_select(-1, self.perm)

    def apply_T(self, x: Tensor) -> Tensor:
        r"""$P^\top x$, row-wise."""
        self._check_input(x)
        return x.index_select(-1, self.inv)

    def state_dict(self) -> dict:
        r"""The permutation $\pi$ (int64, on the CPU)."""
        return {"kind": "permutation", "perm": self.perm.detach().cpu().to(torch.int64)}

    def load_state_dict(self, sd: dict) -> None:
        """Restore the permutation saved by :meth:`state_dict` (all or nothing).

        Args:
            sd: a state dict from :meth:`state_dict`.

        Raises:
            ValueError: not a permutation's state, or a permutation of another size.
        """
        if (
            not isinstance(sd, Mapping)
            or sd.get("kind", "permutation") != "permutation"
            or not isinstance(sd.get("perm"), Tensor)
        ):
            raise ValueError("not a Permutation state (need kind='permutation' and a perm tensor)")
        p = sd["perm"]
        if p.numel() != self.n:
            raise ValueError(f"state has a permutation of {p.numel()}, expected {self.n}")
        self.__init__(p.to(self.device), dtype=self.dtype)

    def __repr__(self) -> str:
        return f"Permutation(n={self.n})"


def random_permutation(
    d: int,
    *,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device="cpu",
) -> Permutation:
    """A uniformly random :class:`Permutation` of ``d`` coordinates (drawn on the CPU, then moved)."""
    _check_dim(d)
    g = _generator(seed, generator)
    perm = torch.randperm(d, generator=g, device=g.device if g is not None else "cpu")
    return Permutation(perm.to(device), dtype=dtype)


def as_rotation(obj) -> Rotation:
    """Wrap ``obj`` as a rotation.

    A square tensor becomes a :class:`DenseRotation`; an object with ``apply``/``apply_T`` is
    returned unchanged.

    Args:
        obj: a square orthogonal tensor or a rotation object.

    Returns:
        The rotation.

    Raises:
        ValueError: ``obj`` is neither.
    """
    if isinstance(obj, Tensor):
        return DenseRotation(obj)
    if hasattr(obj, "apply") and hasattr(obj, "apply_T"):
        return obj
    raise ValueError(
        f"cannot use {type(obj).__name__} as a rotation (need a square tensor or an "
        f"object with apply/apply_T)"
    )


def to_dense(rotation, n: int | None = None, *, dtype: torch.dtype | None = None) -> Tensor:
    r"""The matrix $R$ of a rotation object, built column by column from $R I$ (small ``n`` only).

    ``apply`` acts row-wise on a batch, so ``apply(I)`` has rows $(Re_i)^\top$, i.e. it is $R^\top$.
    """
    n = rotation.n if n is None else n
    dtype = dtype or getattr(rotation, "dtype", None) or torch.get_default_dtype()
    eye = torch.eye(n, dtype=dtype, device=getattr(rotation, "device", "cpu"))
    return rotation.apply(eye).T.contiguous()


# ---------------------------------------------------------------------------------------------
# the scalable permute-and-rotate map (Appendix D.1)
# ---------------------------------------------------------------------------------------------


def _icbrt(r: int) -> int:
    """floor(r ** (1/3)) exactly."""
    s = max(1, int(round(r ** (1.0 / 3.0))))
    while s**3 > r:
        s -= 1
    while (s + 1) ** 3 <= r:
        s += 1
    return s


def split_pieces(n: int, *, dense_max: int = 512) -> list[tuple[int, int, int]]:
    r"""Split $n$ into pieces $n = \sum_j a_j b_j c_j$, each a near-cube 3-D shape.

    Greedy: while the remainder $r$ exceeds ``dense_max``, take $s = \lfloor r^{1/3}\rfloor$ and the
    piece $(s, s, \lfloor r/s^2\rfloor)$ (so $s \le c < s + 3 + 3/s + 1/s^2$); the new remainder is
    $< s^2 \le r^{2/3}$. The last remainder $r\le$ ``dense_max`` becomes the piece $(1, 1, r)$, i.e.
    one dense Haar matrix of size $r$. Examples: $10^6 \to [(100,100,100)]$;
    $1009 \to [(10,10,10), (1,1,9)]$; $n\le 512 \to [(1,1,n)]$ (a plain Haar matrix);
    $124{,}439{,}808$ (GPT-2 small) has four pieces, the first holding all but $< 249{,}000$ coordinates.
    """
    _check_dim(n, "n")
    if dense_max < 1:
        raise ValueError(f"dense_max must be >= 1, got {dense_max}")
    pieces = []
    r = n
    while r > dense_max:
        s = _icbrt(r)
        c = r // (s * s)
        pieces.append((s, s, c))
        r -= s * s * c
    if r > 0:
        pieces.append((1, 1, r))
    return pieces


def _perm_digest(perm: Tensor) -> str:
    """blake2b-128 of the permutation's entries as int64 bytes (hashed in chunks: no big copies)."""
    h = hashlib.blake2b(digest_size=16)
    for chunk in perm.cpu().reshape(-1).split(1 << 22):
        h.update(memoryview(chunk.to(torch.int64).contiguous().numpy()).cast("B"))
    return h.hexdigest()


class PermuteRotate(Rotation):
    r"""The scalable orthogonal map of Appendix D.1: $\mathcal R = \mathcal R_k\circ\cdots\circ\mathcal R_1$.

    One stage $\mathcal R_j$ (i) permutes the coordinates by a random $\pi_j$,
    $(\Pi_j x)_i = x_{\pi_j(i)}$, then (ii) cuts the permuted vector into consecutive *pieces*, views
    piece $p$ (length $a_pb_pc_p$) as an $a_p\times b_p\times c_p$ tensor (row-major), multiplies
    mode 1, 2, 3 by Haar matrices $Q^{(j,p)}_1\in O(a_p)$, $Q^{(j,p)}_2\in O(b_p)$,
    $Q^{(j,p)}_3\in O(c_p)$ and flattens back:
    $$\mathcal R_j = \mathrm{blockdiag}_p\big(Q^{(j,p)}_1\otimes Q^{(j,p)}_2\otimes Q^{(j,p)}_3\big)\,
    \Pi_j .$$
    Each factor is orthogonal, so $\mathcal R$ is orthogonal **exactly** (up to floating-point
    rounding) for every $n$, and $\mathcal R^\top = \Pi_1^\top K_1^\top\cdots\Pi_k^\top K_k^\top$
    applies the transposed mode matrices in reverse order.

    **Any-$n$ scheme (ours; the paper reshapes its two GPT-2 parameter groups to fixed shapes such as
    $[256, 256, 540]$).** The pieces come from :func:`split_pieces`: greedily
    $(s, s, \lfloor r/s^2\rfloor)$ with $s=\lfloor r^{1/3}\rfloor$ on the remainder $r$ until at most
    ``dense_max`` coordinates remain, which get one dense Haar matrix (the piece $(1,1,r)$). No padding
    is used. The piece structure is the same in every stage but each stage draws a fresh permutation
    over all $n$ coordinates, which mixes coordinates across pieces; for $n\le$ ``dense_max`` the
    whole map is a product of Haar matrices and permutations. All but $O(n^{2/3})$ coordinates lie in
    the first piece. Explicit ``pieces`` (a list of 3-tuples whose products sum to $n$) may be passed
    instead, e.g. to mimic the authors' shapes.

    Cost: ``apply``/``apply_T`` take $2n(a+b+c)$ flops per stage via three matmuls per piece plus
    one gather. Memory: the stored indices (a permutation and its inverse per stage, int32, i.e.
    $8kn$ bytes = $2k$ float32 copies of the vector) plus about four working copies of the input
    during ``apply``; at $n = 124$M ($k=2$) that is about 2 GB + 2 GB.
    Nothing of size $n\times n$ is ever built.

    Randomness: one CPU ``torch.Generator`` seeded with ``seed`` draws, stage by stage,
    $\pi_j$ (``randperm``) and then the mode matrices (:func:`haar`, float64) of each piece in order;
    size-1 modes are the identity. The result is therefore the same on every device and dtype.
    ``state_dict`` holds the seed, the shapes, the float64 mode matrices (small) and a digest of
    each permutation; ``load_state_dict`` regenerates the permutations from the seed and checks the
    digests (or uses permutations stored with ``state_dict(include_permutations=True)``).

    Args:
        n: dimension ($\ge 1$).
        k: number of chained stages (the paper's code uses 2; ``k=0`` is the identity).
        seed: RNG seed.
        dtype, device: of the mode matrices and of the vectors it acts on.
        dense_max: remainder size handled by one dense Haar matrix (see :func:`split_pieces`).
        pieces: optional explicit piece shapes.
    """

    def __init__(
        self,
        n: int,
        k: int = 2,
        seed: int = 0,
        dtype: torch.dtype | None = None,
        device="cpu",
        *,
        dense_max: int = 512,
        pieces: Sequence[Sequence[int]] | None = None,
        perms: Sequence[Tensor] | None = None,
    ):
        _check_dim(n, "n")
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise ValueError(f"k must be an int >= 0, got {k!r}")
        dtype = _resolve_dtype(dtype)
        if not dtype.is_floating_point:
            raise ValueError(f"dtype must be floating point, got {dtype}")
        if pieces is None:
            pieces = split_pieces(n, dense_max=dense_max)
        else:
            pieces = [tuple(int(s) for s in p) for p in pieces]
            if any(len(p) != 3 or min(p) < 1 for p in pieces):
                raise ValueError("pieces must be 3-tuples of positive ints")
            if sum(a * b * c for a, b, c in pieces) != n:
                raise ValueError(
                    f"pieces {pieces} hold {sum(a * b * c for a, b, c in pieces)} coordinates, expected n={n}"
                )
        self.n, self.k, self.seed = n, k, int(seed)
        self.dense_max = dense_max
        self.pieces = pieces
        self.dtype = dtype
        self.device = torch.device(device)
        if perms is not None and (len(perms) != k or any(torch.as_tensor(p).numel() != n for p in perms)):
            raise ValueError(f"perms must be {k} permutations of {n} coordinates")
        self._build(perms=perms)

    # -- construction ------------------------------------------------------------------------
    def _build(self, perms: list[Tensor] | None = None) -> None:
        g = torch.Generator(device="cpu")
        g.manual_seed(self.seed)
        idt = _index_dtype(self.n)
        self._perm, self._inv, self._q64, self._digests = [], [], [], []
        for j in range(self.k):
            # (randperm draws the same permutation for int32 and int64 output; int32 halves memory)
            p = torch.randperm(self.n, generator=g, dtype=idt)
            if perms is not None:
                p = perms[j].cpu().to(idt)
            self._digests.append(_perm_digest(p))
            inv = _invert(p)
            self._perm.append(p.to(self.device))
            self._inv.append(inv.to(self.device))
            del p, inv
            stage = []
            for shape in self.pieces:
                stage.append([haar(s, generator=g, dtype=torch.float64) if s > 1 else None for s in shape])
            self._q64.append(stage)
        self._cast_matrices()

    def _cast_matrices(self) -> None:
        self._q = [
            [
                [None if q is None else q.to(dtype=self.dtype, device=self.device) for q in piece]
                for piece in stage
            ]
            for stage in self._q64
        ]

    def to(self, device=None, dtype: torch.dtype | None = None) -> PermuteRotate:
        """Move/cast in place (returns ``self``)."""
        if device is not None:
            self.device = torch.device(device)
            self._perm = [p.to(self.device) for p in self._perm]
            self._inv = [p.to(self.device) for p in self._inv]
        if dtype is not None:
            self.dtype = dtype
        self._cast_matrices()
        return self

    # -- application -------------------------------------------------------------------------
    @staticmethod
    def _kron3(v: Tensor, shape, qs, transpose: bool) -> Tensor:
        """(Q1 (x) Q2 (x) Q3) v for v of shape (B, a*b*c), row-major; Q^T if transpose."""
        a, b, c = shape
        q1, q2, q3 = qs
        B = v.shape[0]
        t = v.reshape(B, a, b, c)
        if q3 is not None:  # mode 3: t[..., r] -> sum_r Q3[l, r] t[..., r]
            t = t @ (q3 if transpose else q3.T)
        if q2 is not None:  # mode 2: batched over (B, a)
            t = (q2.T if transpose else q2) @ t
        if q1 is not None:  # mode 1: batched over B
            t = (q1.T if transpose else q1) @ t.reshape(B, a, b * c)
        return t.reshape(B, a * b * c)

    def _stage(self, x: Tensor, j: int, transpose: bool, owned: bool) -> Tensor:
        """One stage (or its transpose) on x of shape (B, n); ``owned``: x may be overwritten."""
        if not transpose:
            x = x.index_select(1, self._perm[j])
            owned = True
        if len(self.pieces) == 1:
            out = self._kron3(x, self.pieces[0], self._q[j][0], transpose)
        else:
            # pieces are disjoint slices, so results can go back into x when we own it
            out = x if owned else torch.empty_like(x)
            off = 0
            for shape, qs in zip(self.pieces, self._q[j], strict=False):
                m = shape[0] * shape[1] * shape[2]
                if any(q is not None for q in qs):
                    out[:, off : off + m] = self._kron3(x[:, off : off + m], shape, qs, transpose)
                elif out is not x:  # a (1, 1, 1) piece is the identity
                    out[:, off : off + m] = x[:, off : off + m]
                off += m
        if transpose:
            out = out.index_select(1, self._inv[j])
        return out

    def _run(self, x: Tensor, transpose: bool) -> Tensor:
        self._check_input(x)
        if x.dtype != self.dtype:
            raise ValueError(f"input dtype {x.dtype} differs from the rotation's {self.dtype}")
        lead = x.shape[:-1]
        y = x.reshape(-1, self.n)
        order = range(self.k - 1, -1, -1) if transpose else range(self.k)
        for i, j in enumerate(order):
            y = self._stage(y, j, transpose, owned=i > 0)
        if self.k == 0:
            y = y.clone()
        return y.reshape(*lead, self.n)

    def apply(self, x: Tensor) -> Tensor:
        r"""$\mathcal R x$ for ``x`` of shape ``(n,)`` or ``(batch, n)``."""
        return self._run(x, transpose=False)

    def apply_T(self, x: Tensor) -> Tensor:
        r"""$\mathcal R^\top x$ for ``x`` of shape ``(n,)`` or ``(batch, n)``."""
        return self._run(x, transpose=True)

    # -- state -------------------------------------------------------------------------------
    def state_dict(self, include_permutations: bool = False) -> dict:
        """Seed, shapes, float64 mode matrices and permutation digests (permutations on request).

        Args:
            include_permutations: also store the permutations (robust to a different torch RNG).

        Returns:
            The state dict.
        """
        sd = {
            "kind": "permute_rotate",
            "version": 1,
            "n": self.n,
            "k": self.k,
            "seed": self.seed,
            "dense_max": self.dense_max,
            "pieces": [list(p) for p in self.pieces],
            "matrices": [
                [[None if q is None else q.clone() for q in piece] for piece in stage] for stage in self._q64
            ],
            "perm_digests": list(self._digests),
        }
        if include_permutations:
            sd["perms"] = [p.cpu().to(torch.int64) for p in self._perm]
        return sd

    def load_state_dict(self, sd: dict) -> None:
        """Restore exactly the rotation saved by :meth:`state_dict` (dtype and device stay as they are).

        All or nothing: the new rotation is built and checked aside, and replaces this one only
        when everything matches.

        Args:
            sd: a state dict from :meth:`state_dict`.

        Raises:
            ValueError: not a PermuteRotate state, another ``n``, malformed fields, or permutations
                that do not regenerate from the seed.
        """
        if not isinstance(sd, Mapping) or sd.get("kind") != "permute_rotate":
            kind = sd.get("kind") if isinstance(sd, Mapping) else type(sd).__name__
            raise ValueError(f"not a PermuteRotate state (kind={kind!r})")
        missing = [
            k for k in ("n", "k", "seed", "dense_max", "pieces", "matrices", "perm_digests") if k not in sd
        ]
        if missing:
            raise ValueError(f"PermuteRotate state lacks {missing}")
        if sd["n"] != self.n:
            raise ValueError(f"state is for n={sd['n']}, this rotation has n={self.n}")
        try:
            new = PermuteRotate(
                self.n,
                int(sd["k"]),
                int(sd["seed"]),
                self.dtype,
                self.device,
                dense_max=int(sd["dense_max"]),
                pieces=[tuple(p) for p in sd["pieces"]],
                perms=sd.get("perms"),
            )
        except (TypeError, IndexError) as err:
            raise ValueError(f"malformed PermuteRotate state: {err}") from None
        if new._digests != list(sd["perm_digests"]):
            raise ValueError(
                "regenerated permutations differ from the saved ones (different torch "
                "RNG?); save with state_dict(include_permutations=True)"
            )
        matrices = sd["matrices"]
        expected = [
            [[None if s_ == 1 else (s_, s_) for s_ in shape] for shape in new.pieces] for _ in range(new.k)
        ]
        got = [
            [[None if q is None else tuple(q.shape) for q in piece] for piece in stage] for stage in matrices
        ]
        if got != expected:
            raise ValueError(f"the saved mode matrices have shapes {got}, the pieces need {expected}")
        new._q64 = [
            [[None if q is None else q.to(torch.float64).clone() for q in piece] for piece in stage]
            for stage in matrices
        ]
        new._cast_matrices()
        self.__dict__.update(new.__dict__)

    def __repr__(self) -> str:
        return (
            f"PermuteRotate(n={self.n}, k={self.k}, seed={self.seed}, pieces={self.pieces}, "
            f"dtype={self.dtype}, device={self.device})"
        )


# ---------------------------------------------------------------------------------------------
# rotations of part of the coordinates; eigenbases
# ---------------------------------------------------------------------------------------------


class BlockRotation(Rotation):
    r"""A rotation that acts only inside given disjoint sets of coordinates.

    For index sets $I_1,\dots,I_m\subset\{0..n-1\}$ (pairwise disjoint) and rotations
    $Q_k\in O(|I_k|)$, ``apply(x)`` returns $x$ with $x_{I_k}$ replaced by $Q_kx_{I_k}$ and every
    other coordinate unchanged: the block-diagonal matrix $\bigoplus_kQ_k\oplus I$ after a
    permutation, orthogonal because each piece is. It expresses a rotation within one tensor, within
    one attention head, or among groups of coordinates of similar scale.

    Args:
        n: Number of coordinates.
        blocks: Pairs ``(index, rotation)``: a 1-D integer tensor of distinct coordinates and a
            rotation acting on ``len(index)`` coordinates (a square orthogonal tensor is wrapped as
            :class:`DenseRotation`).

    Raises:
        ValueError: an index out of range, sets that overlap, or a rotation of the wrong size.
    """

    def __init__(self, n: int, blocks: Sequence[tuple[Tensor, object]]):
        _check_dim(n, "n")
        self.n = n
        seen = torch.zeros(n, dtype=torch.bool)
        self.blocks: list[tuple[Tensor, Rotation]] = []
        for k, (index, rot) in enumerate(blocks):
            index = torch.as_tensor(index, dtype=torch.long).reshape(-1)
            rot = as_rotation(rot)
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
        self.dtype = self.blocks[0][1].dtype
        self.device = self.blocks[0][1].device
        self._stack()

    def _stack(self) -> None:
        # dense blocks of one size are applied together: one batched product per size
        by_size: dict[int, list[int]] = {}
        for k, (index, rot) in enumerate(self.blocks):
            if isinstance(rot, DenseRotation):
                by_size.setdefault(index.numel(), []).append(k)
        # the index sets are kept on the device of the rotations, so applying moves nothing
        self._stacks = [
            (
                torch.stack([self.blocks[k][0] for k in ks]).to(self.device),
                torch.stack([self.blocks[k][1].matrix for k in ks]),
            )
            for ks in by_size.values()
        ]
        stacked = {k for ks in by_size.values() for k in ks}
        self._others = [(i.to(self.device), r) for k, (i, r) in enumerate(self.blocks) if k not in stacked]

    def _map(self, x: Tensor, transpose: bool) -> Tensor:
        self._check_input(x)
        out = x.clone()
        for index, mats in self._stacks:  # (k, m) indices, (k, m, m) matrices
            index = index.to(x.device)
            part = x[..., index].to(mats.dtype)  # (..., k, m)
            eq = "kji,...kj->...ki" if transpose else "kij,...kj->...ki"
            out[..., index] = torch.einsum(eq, mats.to(x.device), part).to(x.dtype)
        for index, rot in self._others:
            index = index.to(x.device)
            part = x.index_select(-1, index).to(rot.dtype)
            out[..., index] = (rot.apply_T(part) if transpose else rot.apply(part)).to(x.dtype)
        return out

    def apply(self, x: Tensor) -> Tensor:
        r"""$Rx$, row-wise: each block rotated, the other coordinates copied."""
        return self._map(x, False)

    def apply_T(self, x: Tensor) -> Tensor:
        r"""$R^\top x$, row-wise."""
        return self._map(x, True)

    def state_dict(self) -> dict:
        """The index sets and each block's rotation state."""
        return {
            "kind": "block",
            "n": self.n,
            "blocks": [(index.clone(), rot.state_dict()) for index, rot in self.blocks],
        }

    def load_state_dict(self, sd: dict) -> None:
        """Restore the block rotations (all or nothing: the index sets must match).

        Raises:
            ValueError: not a block rotation's state, or other index sets.
        """
        if not isinstance(sd, Mapping) or sd.get("kind") != "block" or sd.get("n") != self.n:
            raise ValueError(f"not the state of a BlockRotation of n={self.n}")
        saved = sd.get("blocks") or []
        if len(saved) != len(self.blocks) or any(
            not torch.equal(torch.as_tensor(i).reshape(-1), index)
            for (i, _), (index, _) in zip(saved, self.blocks, strict=True)
        ):
            raise ValueError("the state holds other index sets than this BlockRotation")
        rots = [copy.deepcopy(rot) for _, rot in self.blocks]
        for rot, (_, state) in zip(rots, saved, strict=True):
            rot.load_state_dict(state)
        self.blocks = [(index, rot) for (index, _), rot in zip(self.blocks, rots, strict=True)]
        self._stack()

    def __repr__(self) -> str:
        sizes = [int(i.numel()) for i, _ in self.blocks]
        return f"BlockRotation(n={self.n}, blocks={len(sizes)}, rotated={sum(sizes)})"


def random_block_rotation(
    n: int,
    index_sets: Sequence[Tensor],
    *,
    seed: int = 0,
    dense_max: int = 2048,
    dtype: torch.dtype | None = None,
    device="cpu",
) -> BlockRotation:
    """A :class:`BlockRotation` with a random rotation inside each index set, on ``device``.

    A set of at most ``dense_max`` coordinates gets a Haar matrix (:func:`haar`), a larger one a
    :class:`PermuteRotate` (Appendix D.1's map, ``k = 2``); set ``k`` is seeded by ``(seed, k)``.
    The random draws are made on the CPU, so a seed gives the same rotation on every device.
    """
    blocks = []
    for k, index in enumerate(index_sets):
        index = torch.as_tensor(index, dtype=torch.long).reshape(-1)
        m = index.numel()
        sub_seed = int(seed) * 100_003 + k
        rot = (
            DenseRotation(haar(m, seed=sub_seed, dtype=dtype, device=device))
            if m <= dense_max
            else PermuteRotate(m, k=2, seed=sub_seed, dtype=dtype, device=device)
        )
        blocks.append((index, rot))
    return BlockRotation(n, blocks)


def eigenbasis(matrix: Tensor, *, dtype: torch.dtype | None = None) -> DenseRotation:
    r"""The eigenbasis $Q$ of a symmetric matrix $M=Q\Lambda Q^\top$, as a rotation.

    Training on $L\circ Q$ with $M$ the Hessian gives the Hessian $Q^\top MQ=\Lambda$: diagonal,
    eigenvalues in decreasing order. ``torch.linalg.eigh`` in float64, so only for a matrix small
    enough to diagonalise (a Hessian block, a gradient-covariance factor).

    Args:
        matrix: A symmetric ``(m, m)`` matrix (symmetrised as ``(M + M^T) / 2``).
        dtype: Of the rotation (default: the matrix's).

    Returns:
        A :class:`DenseRotation` whose columns are the eigenvectors.
    """
    if not isinstance(matrix, Tensor) or matrix.dim() != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError("matrix must be a square 2-D tensor")
    m = matrix.detach().to(torch.float64)
    _, vecs = torch.linalg.eigh((m + m.T) / 2)
    return DenseRotation(vecs.flip(-1).to(dtype or matrix.dtype), atol=1e-5)


class KroneckerRotation(Rotation):
    r"""$A\otimes B$ acting on a row-major ``(m, p)`` matrix: ``apply(vec X)`` $=\mathrm{vec}(AXB^\top)$.

    With $A$ and $B$ the eigenbases of the gradient-covariance factors $E[GG^\top]$ and $E[G^\top G]$
    of a weight matrix, training on $L\circ R$ runs Adam in the rotated basis that Shampoo and SOAP
    use {cite}`gupta2018shampoo,vyas2024soap` (here fixed, not updated). Orthogonal because $A$ and
    $B$ are.

    Args:
        left: Orthogonal ``(m, m)`` matrix $A$ (or a :class:`DenseRotation`).
        right: Orthogonal ``(p, p)`` matrix $B$.
    """

    def __init__(self, left, right):
        self.left, self.right = as_rotation(left), as_rotation(right)
        self.shape = (self.left.n, self.right.n)
        self.n = self.left.n * self.right.n
        self.dtype, self.device = self.left.dtype, self.left.device

    def _map(self, x: Tensor, transpose: bool) -> Tensor:
        self._check_input(x)
        a, b = (f.to_dense().to(dtype=x.dtype, device=x.device) for f in (self.left, self.right))
        X = x.reshape(*x.shape[:-1], *self.shape)
        Y = a.T @ X @ b if transpose else a @ X @ b.T
        return Y.reshape(x.shape)

    def apply(self, x: Tensor) -> Tensor:
        r"""$\mathrm{vec}(AXB^\top)$, row-wise."""
        return self._map(x, False)

    def apply_T(self, x: Tensor) -> Tensor:
        r"""$\mathrm{vec}(A^\top XB)$, row-wise."""
        return self._map(x, True)

    def state_dict(self) -> dict:
        """The two factors."""
        return {"kind": "kronecker", "left": self.left.state_dict(), "right": self.right.state_dict()}

    def load_state_dict(self, sd: dict) -> None:
        """Restore both factors (all or nothing)."""
        if not isinstance(sd, Mapping) or sd.get("kind") != "kronecker":
            raise ValueError("not a KroneckerRotation state (need kind='kronecker')")
        left, right = copy.deepcopy(self.left), copy.deepcopy(self.right)
        left.load_state_dict(sd["left"])
        right.load_state_dict(sd["right"])
        self.left, self.right = left, right

    def __repr__(self) -> str:
        return f"KroneckerRotation(shape={self.shape})"


# ---------------------------------------------------------------------------------------------
# training on L o R
# ---------------------------------------------------------------------------------------------


class RotatedParametrization:
    r"""Train any ``nn.Module`` on the rotated loss $L\circ\mathcal R$ ("rotated Adam", Section 4).

    The optimizer owns one flat variable $w\in\mathbb R^n$ (``self.w``, an ``nn.Parameter`` with the
    module's dtype and device), where $n$ counts the trainable parameters (``requires_grad=True``)
    in ``module.parameters()`` order; frozen parameters are left alone. The module always holds
    $x = \mathcal R w$. One training step is::

        rp.push()                 # module parameters <- R w          (no autograd)
        loss = L(module, batch); loss.backward()
        rp.pull_grad()            # w.grad <- R^T flat(module grads)   (= grad of L o R at w)
        opt.step(); opt.zero_grad(); module.zero_grad(set_to_none=True)

    so any optimizer built on ``rp.parameters()`` runs on $w\mapsto L(\mathcal R w)$. Missing
    module gradients count as zero. Gradient clipping of ``w.grad`` equals clipping the unrotated
    gradient (the norm is preserved).

    **Initialization.** We start from $w_0 = \mathcal R^\top x_0$, where $x_0$ is the module's
    current (usual) initialization, so the network starts exactly where an unrotated run starts and
    the initial loss is the same (to rounding); this is how the paper's quadratic experiment starts
    its rotated runs (Section 4.1). The authors' GPT-2 code instead takes the usual initialization
    as $w_0$ and starts the network at $\mathcal R w_0$, which is a differently distributed
    initialization (e.g. LayerNorm gains no longer 1, weights mixed across layers); we avoid it so
    that the rotated and unrotated runs differ only in the optimizer's coordinate system.

    Args:
        module: the model (move it to its device/dtype *before* wrapping).
        rotation: an object with ``apply``/``apply_T`` over $n$ coordinates (e.g.
            :class:`PermuteRotate`, :class:`DenseRotation`, or a square tensor); default
            ``PermuteRotate(n, k, seed)`` in the module's dtype on its device.
        k, seed: for the default rotation.
    """

    def __init__(self, module: nn.Module, rotation=None, *, k: int = 2, seed: int = 0):
        if not isinstance(module, nn.Module):
            raise ValueError(f"module must be an nn.Module, got {type(module).__name__}")
        params = [p for p in module.parameters() if p.requires_grad]
        if not params:
            raise ValueError("module has no trainable parameters")
        dtypes = {p.dtype for p in params}
        devices = {p.device for p in params}
        if len(dtypes) != 1 or len(devices) != 1:
            raise ValueError(
                f"all trainable parameters must share one dtype and device, got {dtypes} and {devices}"
            )
        self.module = module
        self._params = params
        self._numels = [p.numel() for p in params]
        self.n = sum(self._numels)
        dtype, device = params[0].dtype, params[0].device
        # rotate in at least float32 (low-precision rotations would not be orthogonal enough)
        rot_dtype = dtype if dtype in (torch.float32, torch.float64) else torch.float32
        if rotation is None:
            rotation = PermuteRotate(self.n, k=k, seed=seed, dtype=rot_dtype, device=device)
        else:
            rotation = as_rotation(rotation)
        if rotation.n != self.n:
            raise ValueError(
                f"rotation acts on n={rotation.n} coordinates, the module has {self.n} trainable parameters"
            )
        self.rotation = rotation
        self._rot_dtype = getattr(rotation, "dtype", rot_dtype)
        with torch.no_grad():
            x0 = self._flat_params()
            self.w = nn.Parameter(self._R_T(x0).to(dtype))

    # -- helpers -----------------------------------------------------------------------------
    def _R(self, v: Tensor) -> Tensor:
        return self.rotation.apply(v.to(self._rot_dtype))

    def _R_T(self, v: Tensor) -> Tensor:
        return self.rotation.apply_T(v.to(self._rot_dtype))

    def _flat_params(self) -> Tensor:
        return torch.cat([p.detach().reshape(-1) for p in self._params])

    def parameters(self) -> list[nn.Parameter]:
        """``[w]``: what the optimizer should own."""
        return [self.w]

    # -- the two operations ------------------------------------------------------------------
    @torch.no_grad()
    def push(self) -> None:
        r"""Write $x = \mathcal R w$ into the module's parameters (in place, no autograd)."""
        x = self._R(self.w.detach()).to(self.w.dtype)
        chunks = [c.view_as(p) for c, p in zip(x.split(self._numels), self._params, strict=False)]
        torch._foreach_copy_(self._params, chunks)

    @torch.no_grad()
    def pull_grad(self) -> None:
        r"""Set ``w.grad`` $= \mathcal R^\top \nabla_x L$ from the module's ``.grad`` (None = 0)."""
        g = torch.cat(
            [
                p.grad.reshape(-1) if p.grad is not None else torch.zeros_like(p).reshape(-1)
                for p in self._params
            ]
        )
        gw = self._R_T(g).to(self.w.dtype)
        if self.w.grad is None:
            self.w.grad = gw
        else:
            self.w.grad.copy_(gw)

    # -- checkpointing -----------------------------------------------------------------------
    def state_dict(self) -> dict:
        """``w`` and the rotation's state (seed, shapes, mode matrices or the dense matrix)."""
        rot_sd = self.rotation.state_dict() if hasattr(self.rotation, "state_dict") else None
        return {"n": self.n, "w": self.w.detach().clone(), "rotation": rot_sd}

    def load_state_dict(self, sd: dict) -> None:
        r"""Restore ``w`` and the rotation exactly, then :meth:`push` so the module holds $\mathcal R w$."""
        if not isinstance(sd, Mapping) or "n" not in sd or not isinstance(sd.get("w"), Tensor):
            raise ValueError("not a RotatedParametrization state (need 'n' and a tensor 'w')")
        if sd["n"] != self.n or sd["w"].shape != self.w.shape:
            raise ValueError(f"state is for n={sd['n']}, this module has {self.n} parameters")
        if sd.get("rotation") is not None:
            self.rotation.load_state_dict(sd["rotation"])
        with torch.no_grad():
            self.w.copy_(sd["w"].to(dtype=self.w.dtype, device=self.w.device))
        self.push()

    def __repr__(self) -> str:
        return f"RotatedParametrization(n={self.n}, rotation={self.rotation!r})"


# ---------------------------------------------------------------------------------------------
# Theorem 2.2: measuring (non-)equivariance
# ---------------------------------------------------------------------------------------------


@dataclass
class EquivarianceGap:
    r"""Result of :func:`equivariance_gap`.

    Attributes:
        xs: ``(steps+1, d)`` trajectory $x_t$ on $L$.
        ws: ``(steps+1, d)`` trajectory $\tilde x_t$ on $L\circ R$ from $\tilde x_0 = R^\top x_0$.
        gaps: ``(steps+1,)`` $\|\tilde x_t - R^\top x_t\|_2$.
        gap: $\max_t$ of ``gaps``.
        relative_gap: ``gap`` divided by $\max_t\|x_t - x_0\|_2$ (how far the run moved;
            ``relative_to="displacement"``) or by $\max_t\|x_t\|_2$ (``relative_to="iterate"``).
        relative_to: which of the two normalisations ``relative_gap`` uses.
    """

    xs: Tensor
    ws: Tensor
    gaps: Tensor
    gap: float
    relative_gap: float
    relative_to: str = "displacement"


_RELATIVE_TO = ("displacement", "iterate")


def equivariance_gap(
    opt_factory: Callable[[list[Tensor]], torch.optim.Optimizer],
    loss_fn: Callable[[Tensor, int], Tensor],
    x0: Tensor,
    R,
    steps: int,
    *,
    relative_to: str = "displacement",
) -> EquivarianceGap:
    r"""Run an optimizer on $L$ and on $L\circ R$ and measure how far it is from equivariant.

    Definition 2.1 / Theorem 2.2: run the optimizer from $x_0$ on the losses $L_t$ (``loss_fn(x, t)``
    for $t = 1..$ ``steps``; a deterministic function of ``x`` or a stochastic loss fixed by ``t``)
    to get $x_t$, and from $\tilde x_0 = R^\top x_0$ on $\tilde L_t(w) = L_t(Rw)$ to get
    $\tilde x_t$. The algorithm is equivariant w.r.t. $R$ iff $\tilde x_t = R^\top x_t$ for all $t$.
    Returned: $\|\tilde x_t - R^\top x_t\|_2$ per step, its maximum, and the maximum relative to
    the displacement $\max_t\|x_t-x_0\|_2$ or to the iterates $\max_t\|x_t\|_2$. SGD and AdaSGD
    give rounding-level gaps for every orthogonal $R$; Adam and SignGD for permutations, and
    $O(\|x_t - x_0\|)$ for a generic rotation. Use float64 for a clean comparison.

    Args:
        opt_factory: ``params -> optimizer`` (called twice, with a fresh parameter each time).
        loss_fn: ``(x, t) -> scalar`` tensor, differentiable in ``x`` (a 1-D tensor).
        x0: the start, shape ``(d,)``.
        R: a ``(d, d)`` orthogonal tensor or a rotation object (``apply``/``apply_T``).
        steps: number of optimizer steps.
        relative_to: ``"displacement"`` (default) or ``"iterate"``, the normalisation of
            ``relative_gap``.

    Returns:
        The trajectories, the per-step gaps, the maximum gap and the relative gap.

    Raises:
        ValueError: ``x0`` not 1-D, ``R`` of another size, ``steps`` not an int >= 0, or an
            unknown ``relative_to``.
    """
    if x0.dim() != 1:
        raise ValueError(f"x0 must be 1-D, got shape {tuple(x0.shape)}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an int >= 0, got {steps!r}")
    if relative_to not in _RELATIVE_TO:
        raise ValueError(f"relative_to must be one of {_RELATIVE_TO}, got {relative_to!r}")
    rot = as_rotation(R)
    if rot.n != x0.numel():
        raise ValueError(f"R acts on {rot.n} coordinates, x0 has {x0.numel()}")

    def run(start: Tensor, transform: Callable[[Tensor], Tensor]) -> Tensor:
        p = nn.Parameter(start.detach().clone())
        opt = opt_factory([p])
        traj = [p.detach().clone()]
        for t in range(1, steps + 1):
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(transform(p), t)
            loss.backward()
            opt.step()
            traj.append(p.detach().clone())
        return torch.stack(traj)

    xs = run(x0, lambda x: x)
    ws = run(rot.apply_T(x0.detach()), rot.apply)
    gaps = torch.linalg.vector_norm(ws - rot.apply_T(xs), dim=1)
    ref = xs - xs[0] if relative_to == "displacement" else xs
    scale = torch.linalg.vector_norm(ref, dim=1).max().item()
    gap = gaps.max().item()
    relative = gap / scale if scale > 0 else math.inf if gap > 0 else 0.0
    return EquivarianceGap(xs=xs, ws=ws, gaps=gaps, gap=gap, relative_gap=relative, relative_to=relative_to)
