r"""Partitions of the parameters into blocks: the map :math:`\Phi` of Definition 3.8.

A partition is a map :math:`\Phi:[d]\to[B]` from the :math:`d` coordinates of a list of
parameter tensors (flattened in the order ``torch.cat([p.reshape(-1) for p in params])``) to
:math:`B` blocks. Block :math:`b` has :math:`d_b=|\Phi^{-1}(b)|` coordinates and
:math:`x_{(b)}=(x_i)_{\Phi(i)=b}`. Definition 3.8 (RECONSTRUCTED, see the book's reconstruction notes,
``book/reconstruction.md``) builds the
norm :math:`\|x\|_\Phi=\max_b \|x_{(b)}\|_2/\sqrt{d_b}` from it, Definition 3.9 the
:math:`\Phi`-smoothness :math:`H(L,\Phi)`, and Algorithm 3 (blockwise Adam) keeps one second moment
per block.

Ready-made partitions (each a :class:`Partition`):

==================  =======================================================================
``coordinate()``    every coordinate its own block, :math:`\Phi(i)=i` (Adam, Algorithm 1)
``rows()``          every output row / neuron: slices along dim 0 of each tensor of >= 2 dims
``tensor()``        every tensor one block (Adalayer, Zhao et al. 2024)
``whole()``         one block for everything, :math:`\Phi\equiv 1` (AdaSGD, Algorithm 2)
``heads(model,..)`` Adam-mini style (Zhang et al. 2024): the query / key / value rows of each
                    attention head form a block; every other tensor falls back to ``rows()``
``custom(spec)``    a user-supplied map (callable, mapping, or a flat id vector)
==================  =======================================================================

Everywhere ``params`` may be a list of tensors, a single tensor, or an ``int`` ``d`` (meaning one
1-D vector of length ``d``, handy for the quadratic problems and the theory).

Validation: :meth:`Partition.index` raises ``ValueError`` when the ids do not cover every
coordinate (wrong shape, a missing tensor, a negative id) or when the block ids are not exactly
``0..B-1`` with every block non-empty.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Mapping, Sequence

import torch
from torch import Tensor

__all__ = [
    "Partition",
    "check_block_index",
    "coordinate",
    "rows",
    "tensor",
    "whole",
    "heads",
    "custom",
    "by_name",
    "from_name",
]


def _as_tensors(params) -> list[Tensor]:
    """Normalise ``params`` (list of tensors, a tensor, an int ``d``, or param-group dicts)."""
    if isinstance(params, int):
        if params <= 0:
            raise ValueError(f"d must be a positive int, got {params}")
        return [torch.empty(params, device="meta")]
    if isinstance(params, Tensor):
        return [params]
    out: list[Tensor] = []
    for p in params:
        if isinstance(p, Mapping) and "params" in p:  # a param group
            out.extend(_as_tensors(p["params"]))
        elif isinstance(p, Tensor):
            out.append(p)
        else:
            raise ValueError(f"params must hold tensors, got an element of type {type(p).__name__}")
    if not out:
        raise ValueError("params is empty: a partition needs at least one tensor")
    return out


def check_block_index(block_index, d: int, *, relabel: bool = False, what: str = "block_index") -> Tensor:
    r"""Validate a flat block-id vector :math:`(\Phi(1), \dots, \Phi(d))` and return it as a LongTensor.

    The one check of block ids in the package (partitions, theory and the Hessian tools use it).
    A valid vector has ``d`` integer entries and uses exactly the ids ``0..B-1``, every block
    non-empty (Definition 3.8 asks for a map onto :math:`[B]`).

    Args:
        block_index: the ids, any integer tensor or sequence; flattened.
        d: the number of coordinates it must cover.
        relabel: accept any integer labels and map them to ``0..B-1`` in increasing order
            (``torch.unique(..., return_inverse=True)``) instead of requiring ``0..B-1``.
        what: the name used in error messages.

    Returns:
        A ``(d,)`` LongTensor of block ids ``0..B-1`` on the input's device.

    Raises:
        ValueError: non-integer ids, the wrong number of ids, a negative id, or (without
            ``relabel``) ids that are not exactly ``0..B-1`` with every block non-empty.
    """
    idx = torch.as_tensor(block_index)
    if idx.dtype.is_floating_point or idx.dtype.is_complex or idx.dtype == torch.bool:
        raise ValueError(f"{what}: block ids must be integers, got {idx.dtype}")
    idx = idx.reshape(-1).to(torch.long)
    if idx.numel() != int(d):
        raise ValueError(f"{what} has {idx.numel()} ids for {int(d)} coordinates: it does not cover them")
    if idx.numel() == 0:
        raise ValueError(f"{what}: there are no coordinates")
    if relabel:
        return torch.unique(idx, return_inverse=True)[1]
    lo = int(idx.min())
    if lo < 0:
        raise ValueError(f"{what}: negative block id {lo}; the partition does not cover every coordinate")
    B = int(idx.max()) + 1
    empty = (torch.bincount(idx, minlength=B) == 0).nonzero().reshape(-1)
    if empty.numel():
        raise ValueError(
            f"{what}: block ids must be contiguous 0..B-1 with no empty block; "
            f"{empty.numel()} of the {B} ids are empty, e.g. {empty[:10].tolist()}"
        )
    return idx


def _validate(ids: list[Tensor], params: list[Tensor], what: str) -> int:
    """Check that ``ids`` is a valid partition of ``params``; return the number of blocks B."""
    if len(ids) != len(params):
        raise ValueError(
            f"partition {what} gave ids for {len(ids)} tensors but there are {len(params)} parameters: "
            "it does not cover the parameters"
        )
    for k, (i, p) in enumerate(zip(ids, params, strict=True)):
        if not isinstance(i, Tensor):
            raise ValueError(f"partition {what}: ids of parameter {k} are not a tensor")
        if i.dtype.is_floating_point or i.dtype.is_complex or i.dtype == torch.bool:
            raise ValueError(f"partition {what}: ids of parameter {k} must be integers, got {i.dtype}")
        if tuple(i.shape) != tuple(p.shape):
            raise ValueError(
                f"partition {what}: ids of parameter {k} have shape {tuple(i.shape)} but the parameter has "
                f"shape {tuple(p.shape)}: it does not cover the parameter"
            )
    flat = torch.cat([i.reshape(-1).to(device="cpu", dtype=torch.long) for i in ids])
    return int(check_block_index(flat, flat.numel(), what=f"partition {what}").max()) + 1


class Partition:
    r"""A map :math:`\Phi:[d]\to[B]` over a list of parameter tensors (Definition 3.8).

    Built from a function ``assign(params: list[Tensor]) -> list[LongTensor]`` returning, for each
    tensor, a tensor of the same shape with *global* block ids. Everything else derives from it.
    The result is validated: it must cover every coordinate and use ids exactly ``0..B-1``.

    Parameters
    ----------
    assign:
        The map, as described.
    name:
        A short name used in ``repr`` and error messages.
    """

    def __init__(self, assign: Callable[[list[Tensor]], Sequence[Tensor]], name: str = "custom"):
        if not callable(assign):
            raise ValueError("assign must be callable")
        self._assign = assign
        self.name = name

    def __repr__(self) -> str:
        return f"Partition({self.name})"

    def index(self, params) -> list[Tensor]:
        """Per tensor, a LongTensor of the same shape with its global block ids in ``0..B-1``.

        The ids live on the CPU (cheap to build); move them with ``.to(device)`` if needed.
        """
        ps = _as_tensors(params)
        ids = [torch.as_tensor(i) for i in self._assign(ps)]
        _validate(ids, ps, self.name)
        return [i.to(device="cpu", dtype=torch.long) for i in ids]

    def flat_index(self, params) -> Tensor:
        """``(d,)`` block ids in the order of ``torch.cat([p.reshape(-1) for p in params])``."""
        return torch.cat([i.reshape(-1) for i in self.index(params)])

    def num_blocks(self, params) -> int:
        """The number of blocks :math:`B`."""
        return int(self.flat_index(params).max()) + 1

    def block_sizes(self, params) -> Tensor:
        r"""``(B,)`` LongTensor of the block sizes :math:`d_b=|\Phi^{-1}(b)|`."""
        return torch.bincount(self.flat_index(params))

    def _block_stats(self, x, params) -> tuple[Tensor, Tensor]:
        r"""``(norms, sizes)``: :math:`\|x_{(b)}\|_2` of shape ``(..., B)`` and :math:`d_b` (``x``'s dtype).

        ``x`` is a list of tensors shaped like ``params``, a flat ``(d,)`` vector, or, when ``params``
        is given, a batch ``(..., d)`` of flat vectors (then the norms are ``(..., B)``).
        """
        batched = False
        if isinstance(x, Tensor) and params is not None and x.dim() >= 1:
            d = int(self.flat_index(params).numel())
            batched = x.dim() >= 2 and x.shape[-1] == d and x.numel() != d
            flat_x = x if (x.dim() == 1 or batched) else x.reshape(-1)
        else:
            xs = _as_tensors(x)
            flat_x = torch.cat([t.reshape(-1) for t in xs])
            params = xs if params is None else params
        idx = self.flat_index(params).to(flat_x.device)
        if idx.numel() != flat_x.shape[-1]:
            raise ValueError(f"x has {flat_x.shape[-1]} coordinates but the parameters have {idx.numel()}")
        B = int(idx.max()) + 1
        sq = torch.zeros(*flat_x.shape[:-1], B, dtype=flat_x.dtype, device=flat_x.device)
        sq.index_add_(-1, idx, flat_x * flat_x)
        return sq.sqrt(), torch.bincount(idx, minlength=B).to(flat_x.dtype)

    def block_norms(self, x, params=None, *, normalized: bool = False) -> Tensor:
        r"""Block norms :math:`\|x_{(b)}\|_2` (divided by :math:`\sqrt{d_b}` if ``normalized``).

        Args:
            x: a list of tensors shaped like ``params``, or a flat ``(d,)`` vector (then ``params``
                gives the shapes; default ``x`` itself), or a batch ``(..., d)`` of flat vectors
                when ``params`` is given.
            params: the parameters (or ``d``) the partition is evaluated on.
            normalized: divide by :math:`\sqrt{d_b}`.

        Returns:
            A ``(B,)`` tensor, or ``(..., B)`` for a batch.
        """
        norms, sizes = self._block_stats(x, params)
        return norms / sizes.sqrt() if normalized else norms

    def norm(self, x, params=None) -> Tensor:
        r"""The :math:`\Phi`-norm :math:`\|x\|_\Phi=\max_b\|x_{(b)}\|_2/\sqrt{d_b}` (Definition 3.8).

        Coordinates (:math:`\Phi(i)=i`) give :math:`\|x\|_\infty`; one block gives
        :math:`\|x\|_2/\sqrt d`. Batched over leading dimensions as :meth:`block_norms`.
        """
        return self.block_norms(x, params, normalized=True).amax(-1)

    def dual_norm(self, x, params=None) -> Tensor:
        r"""The dual norm :math:`\|x\|_{\Phi,*}=\sum_b\sqrt{d_b}\,\|x_{(b)}\|_2` (Definition 3.8).

        Coordinates give :math:`\|x\|_1`; one block gives :math:`\sqrt d\|x\|_2`. Batched over
        leading dimensions as :meth:`block_norms`.
        """
        norms, sizes = self._block_stats(x, params)
        return (sizes.sqrt() * norms).sum(-1)


# ---------------------------------------------------------------------------------------------
# per-tensor rules: a rule maps one tensor to local ids 0..n-1; _per_tensor offsets them
# ---------------------------------------------------------------------------------------------
def _local_coordinate(p: Tensor) -> Tensor:
    return torch.arange(p.numel()).reshape(p.shape)


def _local_tensor(p: Tensor) -> Tensor:
    return torch.zeros(p.shape, dtype=torch.long)


def _local_rows(p: Tensor, vectors: str = "tensor") -> Tensor:
    if p.dim() >= 2:
        return torch.arange(p.shape[0]).reshape((-1,) + (1,) * (p.dim() - 1)).expand(p.shape).clone()
    if p.dim() == 1 and vectors == "coordinate":
        return torch.arange(p.numel())
    return torch.zeros(p.shape, dtype=torch.long)


def _globalise(local_ids: Iterable[Tensor]) -> list[Tensor]:
    """Per-tensor local ids ``0..n_k-1`` -> global ids, each shifted by the blocks of earlier tensors."""
    out, offset = [], 0
    for local in local_ids:
        out.append(local + offset)
        if local.numel():
            offset += int(local.max()) + 1
    return out


def _per_tensor(rule: Callable[[Tensor], Tensor]) -> Callable[[list[Tensor]], list[Tensor]]:
    def assign(params: list[Tensor]) -> list[Tensor]:
        return _globalise(rule(p) for p in params)

    return assign


def coordinate() -> Partition:
    r"""Every coordinate its own block: :math:`\Phi(i)=i`, :math:`B=d`. Blockwise Adam = Adam."""
    return Partition(_per_tensor(_local_coordinate), "coordinate")


def tensor() -> Partition:
    """Every parameter tensor one block (Adalayer style, Zhao et al. 2024)."""
    return Partition(_per_tensor(_local_tensor), "tensor")


def whole() -> Partition:
    r"""A single block for all coordinates: :math:`\Phi\equiv 1`. Blockwise Adam = AdaSGD."""
    return Partition(lambda ps: [torch.zeros(p.shape, dtype=torch.long) for p in ps], "whole")


def rows(vectors: str = "tensor") -> Partition:
    """Every output row / neuron is a block.

    For a tensor of >= 2 dims (``nn.Linear`` weight ``(out, in)``, conv weight
    ``(out, in, kh, kw)``, embedding ``(vocab, dim)``) block = one slice along dim 0, i.e. all
    weights feeding one output neuron (or one token's embedding). A 1-D tensor (bias, LayerNorm
    gain) or a 0-D tensor is **one block** by default (``vectors="tensor"``): its entries are one
    scale each of different neurons, too few to estimate a second moment from alone; pass
    ``vectors="coordinate"`` to give each entry its own block instead.
    """
    if vectors not in ("tensor", "coordinate"):
        raise ValueError(f"vectors must be 'tensor' or 'coordinate', got {vectors!r}")
    return Partition(_per_tensor(lambda p: _local_rows(p, vectors)), f"rows(vectors={vectors})")


def _named(model_or_named) -> list[tuple[str, Tensor]]:
    if isinstance(model_or_named, torch.nn.Module):
        return list(model_or_named.named_parameters())
    if isinstance(model_or_named, Mapping):
        return list(model_or_named.items())
    return list(model_or_named)


def _matcher(match) -> Callable[[str], bool]:
    if callable(match):
        return match
    pats = (match,) if isinstance(match, str) else tuple(match)

    def f(name: str) -> bool:
        return any(name == s or name.endswith("." + s) or fnmatch.fnmatchcase(name, s) for s in pats)

    return f


def by_name(
    model_or_named,
    rule: Callable[[str, Tensor], Tensor | None],
    *,
    default: Partition | None = None,
    name: str = "by_name",
) -> Partition:
    """A per-tensor partition chosen from parameter names.

    ``rule(name, p)`` returns local ids ``0..n-1`` of the tensor's shape, or ``None`` to use
    ``default`` (``rows()`` if not given) for that tensor. Tensors that are not parameters of the
    model fall back to ``default`` as well. Tensors are recognised by identity.
    """
    named = _named(model_or_named)
    names = {id(p): n for n, p in named}
    default = rows() if default is None else default

    def local_ids(p: Tensor) -> Tensor:
        n = names.get(id(p))
        local = rule(n, p) if n is not None else None
        if local is None:
            local = default.index([p])[0]
        return torch.as_tensor(local, dtype=torch.long)

    def assign(params: list[Tensor]) -> list[Tensor]:
        return _globalise(local_ids(p) for p in params)

    return Partition(assign, name)


def heads(
    model_or_named,
    n_head: int,
    *,
    match=("c_attn.weight", "c_attn.bias"),
    n_proj: int = 3,
    joint: bool = False,
    default: Partition | None = None,
) -> Partition:
    r"""Adam-mini style head partition (Zhang et al. 2024) for a nanoGPT-style GPT.

    In nanoGPT the attention input projection ``c_attn.weight`` has shape
    ``(3*n_embd, n_embd)``: rows ``[0, n_embd)`` are the queries, ``[n_embd, 2 n_embd)`` the keys,
    ``[2 n_embd, 3 n_embd)`` the values, and within each the rows ``[h*hd, (h+1)*hd)``
    (``hd = n_embd/n_head``) belong to head ``h``. For every parameter whose name matches
    ``match`` the rows of one head of one projection form a block: ``n_proj*n_head`` blocks per
    tensor (with ``joint=True`` the q, k and v rows of one head form a single block instead:
    ``n_head`` blocks). A matched 1-D tensor (the ``c_attn`` bias) is split the same way.
    Use ``n_proj=1`` for separate q / k / v projection layers.

    Every other tensor uses ``default`` (``rows()``: one block per output neuron / embedding row,
    1-D tensors one block), which is Adam-mini's choice for MLP, output projections and embeddings.

    ``model_or_named``: an ``nn.Module`` or an iterable / mapping of ``(name, parameter)``;
    parameters are recognised by identity. ``match``: a name, a glob, a tuple of them, or a
    callable ``name -> bool``.
    """
    if not isinstance(n_head, int) or n_head <= 0:
        raise ValueError(f"n_head must be a positive int, got {n_head!r}")
    if not isinstance(n_proj, int) or n_proj <= 0:
        raise ValueError(f"n_proj must be a positive int, got {n_proj!r}")
    is_match = _matcher(match)
    named = _named(model_or_named)
    matched = [(n, p) for n, p in named if is_match(n)]
    if not matched:
        raise ValueError(
            f"heads(): no parameter name matches {match!r}; names are e.g. {[n for n, _ in named[:5]]}"
        )
    for n, p in matched:
        if p.dim() == 0 or p.shape[0] % (n_proj * n_head):
            raise ValueError(
                f"heads(): parameter {n!r} of shape {tuple(p.shape)}: dim 0 must be divisible by "
                f"n_proj*n_head = {n_proj * n_head}"
            )

    def rule(name: str, p: Tensor):
        if not is_match(name):
            return None
        hd = p.shape[0] // (n_proj * n_head)
        row = torch.arange(p.shape[0])
        head = (row // hd) % n_head if joint else row // hd
        return head.reshape((-1,) + (1,) * (p.dim() - 1)).expand(p.shape).clone()

    return by_name(
        named, rule, default=default, name=f"heads(n_head={n_head}, n_proj={n_proj}, joint={joint})"
    )


def custom(spec, *, name: str = "custom") -> Partition:
    """A user-supplied partition.

    ``spec`` may be

    * a callable ``spec(params: list[Tensor]) -> list[LongTensor]`` of global block ids, one
      tensor per parameter, of the parameter's shape;
    * a mapping ``{parameter tensor: ids}`` (global ids; every parameter must be a key);
    * a flat integer tensor / sequence of length ``d`` (the ids in ``flat_index`` order).

    The result is validated by :meth:`Partition.index` (coverage, ids ``0..B-1``, no empty block).
    """
    if callable(spec) and not isinstance(spec, Tensor):
        return Partition(spec, name)
    if isinstance(spec, Mapping):
        table = dict(spec)

        def assign(params):
            out = []
            for k, p in enumerate(params):
                if p not in table:
                    raise ValueError(
                        f"partition {name}: parameter {k} of shape {tuple(p.shape)} is not in the "
                        "mapping: it does not cover the parameters"
                    )
                out.append(torch.as_tensor(table[p]))
            return out

        return Partition(assign, name)
    flat = torch.as_tensor(spec)
    if flat.dim() != 1:
        raise ValueError(f"custom(): a flat id vector must be 1-D, got shape {tuple(flat.shape)}")

    def assign_flat(params):
        d = sum(p.numel() for p in params)
        if flat.numel() != d:
            raise ValueError(
                f"partition {name}: {flat.numel()} ids for {d} coordinates: it does not cover the parameters"
            )
        return [
            c.reshape(p.shape) for c, p in zip(flat.split([p.numel() for p in params]), params, strict=True)
        ]

    return Partition(assign_flat, name)


def from_name(spec: str | Partition, model=None, n_head: int | None = None) -> Partition:
    """``"coordinate" | "rows" | "tensor" | "whole" | "heads"`` (needs model, n_head) -> Partition."""
    if isinstance(spec, Partition):
        return spec
    table = {"coordinate": coordinate, "rows": rows, "tensor": tensor, "whole": whole}
    if spec in table:
        return table[spec]()
    if spec in ("heads", "head"):
        if model is None or n_head is None:
            raise ValueError("the heads partition needs model= and n_head=")
        return heads(model, n_head)
    raise ValueError(f"unknown partition {spec!r}; choose from {sorted(table) + ['heads']}")
