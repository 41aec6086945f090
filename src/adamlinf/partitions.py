r"""Partitions of the parameters into blocks: the map :math:`\Phi:[d]\to[B]` of Definition 3.8.

Coordinates are numbered as in ``torch.cat([p.reshape(-1) for p in params])``; block :math:`b` has
:math:`d_b=|\Phi^{-1}(b)|` coordinates :math:`x_{(b)}`, and :math:`\|x\|_\Phi=\max_b\|x_{(b)}\|_2/\sqrt{d_b}`
(Definition 3.8, RECONSTRUCTED: see ``book/reconstruction.md``). ``params`` may be a list of tensors, a
tensor, param groups, or an ``int`` ``d`` (one vector).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial

import torch
from torch import Tensor


def _as_tensors(params) -> list[Tensor]:
    """``params`` (tensors, a tensor, param groups or an int ``d``) as a list of tensors."""
    if isinstance(params, int):
        if params <= 0:
            raise ValueError(f"d must be a positive int, got {params}")
        return [torch.empty(params, device="meta")]
    if isinstance(params, Tensor):
        return [params]
    out: list[Tensor] = []
    for p in params:
        if isinstance(p, Mapping) and "params" in p:
            out.extend(_as_tensors(p["params"]))
        elif isinstance(p, Tensor):
            out.append(p)
        else:
            raise ValueError(f"params must hold tensors, got an element of type {type(p).__name__}")
    if not out:
        raise ValueError("params is empty: a partition needs at least one tensor")
    return out


def _check_integer(ids: Tensor, what: str) -> None:
    if ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
        raise ValueError(f"{what}: block ids must be integers, got {ids.dtype}")


def check_block_index(block_index, d: int, *, relabel: bool = False, what: str = "block_index") -> Tensor:
    r"""The ``(d,)`` LongTensor of block ids :math:`(\Phi(1),\dots,\Phi(d))`, checked to be ``0..B-1``.

    ``relabel`` maps any integer labels to ``0..B-1`` in increasing order instead.
    """
    idx = torch.as_tensor(block_index)
    _check_integer(idx, what)
    idx = idx.reshape(-1).to(torch.long)
    if idx.numel() != int(d) or idx.numel() == 0:
        raise ValueError(f"{what} has {idx.numel()} ids for {int(d)} coordinates: it does not cover them")
    if relabel:
        return torch.unique(idx, return_inverse=True)[1]
    lo = int(idx.min())
    if lo < 0:
        raise ValueError(f"{what}: negative block id {lo}; the partition does not cover every coordinate")
    B = int(idx.max()) + 1
    empty = (torch.bincount(idx, minlength=B) == 0).nonzero().reshape(-1)
    if empty.numel():
        msg = f"{what}: block ids must be 0..B-1 with no empty block; {empty.numel()} of the {B} are empty"
        raise ValueError(f"{msg}, e.g. {empty[:10].tolist()}")
    return idx


class Partition:
    r"""A map :math:`\Phi` from ``assign(params) -> [LongTensor]`` (global ids, one per tensor, its shape)."""

    def __init__(self, assign: Callable[[list[Tensor]], Sequence[Tensor]], name: str = "custom"):
        self._assign, self.name = assign, name

    def __repr__(self) -> str:
        return f"Partition({self.name})"

    def index(self, params) -> list[Tensor]:
        """Per tensor, its global block ids (on the CPU), validated."""
        ps = _as_tensors(params)
        ids = [torch.as_tensor(i) for i in self._assign(ps)]
        what = f"partition {self.name}"
        if len(ids) != len(ps):
            raise ValueError(f"{what} gave ids for {len(ids)} of {len(ps)} tensors: it does not cover them")
        for k, (i, p) in enumerate(zip(ids, ps, strict=True)):
            _check_integer(i, f"{what}, parameter {k}")
            if i.shape != p.shape:
                shapes = f"{tuple(i.shape)} for parameter {k} of shape {tuple(p.shape)}"
                raise ValueError(f"{what}: ids of shape {shapes}")
        ids = [i.to(device="cpu", dtype=torch.long) for i in ids]
        flat = torch.cat([i.reshape(-1) for i in ids])
        check_block_index(flat, flat.numel(), what=what)
        return ids

    def flat_index(self, params) -> Tensor:
        """``(d,)`` block ids in the order of ``torch.cat([p.reshape(-1) for p in params])``."""
        return torch.cat([i.reshape(-1) for i in self.index(params)])

    def _block_stats(self, x, params) -> tuple[Tensor, Tensor]:
        r""":math:`\|x_{(b)}\|_2` as ``(..., B)`` and :math:`d_b`; ``x`` like ``params`` or ``(..., d)``."""
        if not (isinstance(x, Tensor) and params is not None and x.dim() >= 1):
            xs = _as_tensors(x)
            x = torch.cat([t.reshape(-1) for t in xs])
            params = xs if params is None else params
        idx = self.flat_index(params).to(x.device)
        d = idx.numel()
        if x.dim() >= 2 and (x.shape[-1] != d or x.numel() == d):  # not a batch: one tensor like params
            x = x.reshape(-1)
        if x.shape[-1] != d:
            raise ValueError(f"x has {x.shape[-1]} coordinates but the parameters have {d}")
        B = int(idx.max()) + 1
        sq = torch.zeros(*x.shape[:-1], B, dtype=x.dtype, device=x.device).index_add_(-1, idx, x * x)
        return sq.sqrt(), torch.bincount(idx, minlength=B).to(x.dtype)

    def norm(self, x, params=None) -> Tensor:
        r""":math:`\|x\|_\Phi=\max_b\|x_{(b)}\|_2/\sqrt{d_b}` (:math:`\|x\|_\infty` for coordinates)."""
        norms, sizes = self._block_stats(x, params)
        return (norms / sizes.sqrt()).amax(-1)

    def dual_norm(self, x, params=None) -> Tensor:
        r""":math:`\|x\|_{\Phi,*}=\sum_b\sqrt{d_b}\|x_{(b)}\|_2` (:math:`\|x\|_1` for coordinates)."""
        norms, sizes = self._block_stats(x, params)
        return (sizes.sqrt() * norms).sum(-1)


def _per_tensor(rule: Callable[[Tensor], Tensor], name: str) -> Partition:
    """Per-tensor ids ``0..n_k-1`` of ``rule``, shifted past the blocks of the earlier tensors."""

    def assign(params: list[Tensor]) -> list[Tensor]:
        out, offset = [], 0
        for p in params:
            local = rule(p)
            out.append(local + offset)
            if local.numel():
                offset += int(local.max()) + 1
        return out

    return Partition(assign, name)


def _rows(p: Tensor) -> Tensor:
    if p.dim() >= 2:
        return torch.arange(p.shape[0]).reshape((-1,) + (1,) * (p.dim() - 1)).expand(p.shape).clone()
    return torch.zeros(p.shape, dtype=torch.long)


def coordinate() -> Partition:
    r""":math:`\Phi(i)=i`: blockwise Adam is Adam."""
    return _per_tensor(lambda p: torch.arange(p.numel()).reshape(p.shape), "coordinate")


def tensor() -> Partition:
    """One block per tensor (Adalayer, Zhao et al. 2024)."""
    return _per_tensor(lambda p: torch.zeros(p.shape, dtype=torch.long), "tensor")


def whole() -> Partition:
    r""":math:`\Phi\equiv 1`: blockwise Adam is AdaSGD."""
    return Partition(lambda ps: [torch.zeros(p.shape, dtype=torch.long) for p in ps], "whole")


def rows() -> Partition:
    """One block per slice along dim 0 (an output neuron, an embedding row); a 0/1-D tensor is one."""
    return _per_tensor(_rows, "rows(vectors=tensor)")


_QKV = ("c_attn.weight", "c_attn.bias")


def heads(model_or_named, n_head: int) -> Partition:
    r"""Adam-mini's partition (Zhang et al. 2024) of a nanoGPT-style GPT: one block per head and projection.

    A block is the ``n_embd / n_head`` rows of one head of q, k or v in ``c_attn`` (stacked); other tensors,
    and those not of the model (``model_or_named``: a module or ``(name, tensor)`` pairs), split by rows.
    """
    if not isinstance(n_head, int) or n_head <= 0:
        raise ValueError(f"n_head must be a positive int, got {n_head!r}")
    module = isinstance(model_or_named, torch.nn.Module)
    named = list(model_or_named.named_parameters() if module else model_or_named)
    qkv = {id(p): n for n, p in named if any(n == s or n.endswith("." + s) for s in _QKV)}
    if not qkv:
        names = [n for n, _ in named[:5]]
        raise ValueError(f"heads(): no parameter name matches {_QKV!r}; names are e.g. {names}")
    for n, p in named:
        if id(p) in qkv and (p.dim() == 0 or p.shape[0] % (3 * n_head)):
            raise ValueError(f"heads(): {n!r} of shape {tuple(p.shape)}: dim 0 not divisible by 3*n_head")

    def local_ids(p: Tensor) -> Tensor:
        if id(p) not in qkv:
            return _rows(p)
        head = torch.arange(p.shape[0]) // (p.shape[0] // (3 * n_head))
        return head.reshape((-1,) + (1,) * (p.dim() - 1)).expand(p.shape).clone()

    return _per_tensor(local_ids, f"heads(n_head={n_head}, n_proj=3, joint=False)")


def _split_flat(flat: Tensor, name: str, params: list[Tensor]) -> list[Tensor]:
    sizes = [p.numel() for p in params]
    if flat.numel() != sum(sizes):
        msg = f"{flat.numel()} ids for {sum(sizes)} coordinates: it does not cover them"
        raise ValueError(f"partition {name}: {msg}")
    return [c.reshape(p.shape) for c, p in zip(flat.split(sizes), params, strict=True)]


def custom(spec, *, name: str = "custom") -> Partition:
    """A partition from a callable ``params -> [ids]``, a ``{tensor: ids}`` mapping or flat ``(d,)`` ids."""
    if callable(spec) and not isinstance(spec, Tensor):
        return Partition(spec, name)
    if isinstance(spec, Mapping):
        table = dict(spec)

        def assign(params):
            missing = [k for k, p in enumerate(params) if p not in table]
            if missing:
                raise ValueError(f"partition {name}: parameter {missing[0]} is not in the mapping")
            return [torch.as_tensor(table[p]) for p in params]

        return Partition(assign, name)
    flat = torch.as_tensor(spec)
    if flat.dim() != 1:
        raise ValueError(f"custom(): a flat id vector must be 1-D, got shape {tuple(flat.shape)}")
    return Partition(partial(_split_flat, flat, name), name)


def from_name(spec: str | Partition) -> Partition:
    """``"coordinate" | "rows" | "tensor" | "whole"`` -> Partition (per head: :func:`heads`)."""
    if isinstance(spec, Partition):
        return spec
    table = {"coordinate": coordinate, "rows": rows, "tensor": tensor, "whole": whole}
    if spec in ("heads", "head"):
        raise ValueError("the heads partition needs a model and n_head: partitions.heads(model, n_head)")
    if spec not in table:
        raise ValueError(f"unknown partition {spec!r}; choose from {sorted(table) + ['heads']}")
    return table[spec]()
