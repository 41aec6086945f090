r"""The paper's optimizers: Algorithm 3 over a partition (with Adam, AdaSGD, RMSProp), SignGD, a registry.

Blockwise Adam over a partition :math:`\Phi:[d]\to[B]` with block sizes :math:`d_b` (Definition 3.8,
:mod:`adamlinf.partitions`), from :math:`m_0=0`, :math:`v_0\ge0`, :math:`c_{k,t}=1-\beta_k^t` or 1:

.. math::

    m_t=\beta_1m_{t-1}+(1-\beta_1)g_t,\quad v_{t,b}=\beta_2v_{t-1,b}+(1-\beta_2)\|g_{t,(b)}\|_2^2/d_b,\\
    x_{t,(b)}=x_{t-1,(b)}-\eta_t\frac{m_{t,(b)}/c_{1,t}}{\sqrt{v_{t,b}/c_{2,t}+\epsilon_{\rm root}}+\epsilon}.

Adam is the coordinate partition, AdaSGD the whole model, RMSProp :math:`\beta_1=0`; the defaults are
``torch.optim.Adam``'s, the paper's form ``bias_correction=False, eps=0, eps_root=ε`` (RECONSTRUCTED).
``nonfinite="skip"``: a non-finite gradient changes nothing, decided without a host synchronisation.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.optim import Optimizer
from torch.optim.adam import adam as torch_adam

from . import partitions
from .partitions import Partition

__all__ = ["BlockwiseAdam", "Adam", "AdaSGD", "RMSProp", "SignGD", "Spec", "OPTIMIZERS", "LABELS", "create"]
__all__ += ["adam_update_", "signgd_update_"]

_NONFINITE = ("skip", "raise", "ignore")
#: torch.optim.Adam's arguments accepted only at the values that change nothing
_TORCH_FIXED = dict(weight_decay=0.0, amsgrad=False, differentiable=False, decoupled_weight_decay=False)
#: BlockwiseAdam's keyword arguments and their defaults
_DEFAULTS = dict(eps_root=0.0, v0=0.0, bias_correction=True, maximize=False, fused=None, foreach=None)
_DEFAULTS.update(capturable=False, **_TORCH_FIXED)
_MOMENTS = ("exp_avg", "exp_avg_sq")
_HOST_FLAG_DEVICES = ("cpu",)  # the found-inf flag is read at once (tests force the device form)
_BLOCK_KEYS = {"block_step", "block_exp_avg_sq"}
_FUSED_DEVICES = ("cpu", "cuda", "mps", "xpu")
_FUSED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _check(name: str, value, *, below_one: bool = False) -> None:
    """A finite number >= 0 (and < 1 for a beta); the ``ValueError`` names the field and the value."""
    if name == "lr" and isinstance(value, Tensor) and value.numel() == 1:
        value = float(value)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (below_one and value >= 1):
        what = "learning rate lr" if name == "lr" else name
        raise ValueError(f"Invalid {what}={value!r}: must be a finite number >= 0" + " and < 1" * below_one)


def _denominators(vs: list[Tensor], c2s: list | None, eps: float, eps_root: float) -> list[Tensor]:
    r"""New :math:`D=\sqrt{v/c_2+\epsilon_{\rm root}}+\epsilon` (torch's order; 0 becomes :math:`\infty`)."""
    if eps_root:
        if c2s is None:
            ds = torch._foreach_add(vs, eps_root)
        else:
            ds = torch._foreach_div(vs, list(c2s))
            torch._foreach_add_(ds, eps_root)
        torch._foreach_sqrt_(ds)
    else:
        ds = torch._foreach_sqrt(vs)
        if c2s is not None:
            torch._foreach_div_(ds, [c.sqrt() if isinstance(c, Tensor) else c**0.5 for c in c2s])
    if eps:
        torch._foreach_add_(ds, eps)
    elif not eps_root:
        for d in ds:
            d.masked_fill_(d == 0, math.inf)
    return ds


def adam_update_(
    x, g, m, v, *, lr, beta1, beta2, eps, step, eps_root=0.0, bias_correction=True, index=None, sizes=None
) -> Tensor:
    r"""One in-place step of Algorithm 3 on tensors ``x, g, m, v`` along the last dimension; returns ``x``.

    ``v`` has ``x``'s shape (Adam), ``(..., 1)`` (AdaSGD) or ``(..., B)`` with the ``(d,)`` block map
    ``index`` (``sizes``: its block sizes). ``lr`` is a float or broadcasts to ``x``; ``step`` :math:`t\ge1`.
    """
    if index is not None:
        index = index.to(g.device)
        sizes = torch.bincount(index, minlength=v.shape[-1]) if sizes is None else sizes
        sq = torch.zeros(g.shape[:-1] + v.shape[-1:], dtype=g.dtype, device=g.device)
        rms = sq.index_add_(-1, index, g * g).div_(sizes.to(device=g.device, dtype=g.dtype)).sqrt_()
    else:
        rms = g if v.shape == x.shape else (g * g).mean(-1, keepdim=True).sqrt_()
    c1 = 1.0 - beta1**step if bias_correction else 1.0
    m.lerp_(g, 1.0 - beta1)
    v.mul_(beta2).addcmul_(rms, rms, value=1.0 - beta2)
    (denom,) = _denominators([v], [1.0 - beta2**step] if bias_correction else None, eps, eps_root)
    if index is not None:
        denom = denom.index_select(-1, index)
    step_size = lr if c1 == 1.0 else lr / c1
    if isinstance(step_size, Tensor):
        return x.sub_(m / denom * step_size)
    return x.addcdiv_(m, denom, value=-step_size)


def signgd_update_(x: Tensor, g: Tensor, *, lr) -> Tensor:
    r"""One in-place SignGD step :math:`x\leftarrow x-\eta\,\mathrm{sign}(g)`; ``lr`` may broadcast."""
    if isinstance(lr, Tensor):
        return x.sub_(g.sign() * lr)
    return x.add_(g.sign(), alpha=-lr)


def _real(t: Tensor) -> Tensor:
    """The real view of a complex tensor (as ``torch.optim.Adam``), else the tensor itself."""
    return torch.view_as_real(t) if t.is_complex() else t


def _overlaps(t: Tensor) -> bool:
    """Whether elements of ``t`` share memory (a stride-0 ``expand``): it must not be written in place."""
    if torch.compiler.is_compiling():  # not traceable; gradients that autograd makes never overlap
        return False
    return torch._debug_has_internal_overlap(t) != 0


def _same_layout(p: Tensor, g: Tensor) -> bool:
    """The fused kernels' rule: ``p`` dense and ``g`` with its strides (size-1 dimensions not compared)."""
    expected = 1
    for stride, size in sorted((st, n) for st, n in zip(p.stride(), p.shape, strict=True) if n != 1):
        if stride != expected:
            return False
        expected *= size
    same = zip(g.stride(), p.stride(), p.shape, strict=False)
    return g.shape == p.shape and all(a == b for a, b, n in same if n > 1)


def _keep_scalar(keep: Tensor | None, value: float, off: float, like: Tensor):
    """``value``, or on the device ``off`` on a skipped step (``keep`` False), as a 0-dim tensor."""
    if keep is None:
        return value
    return torch.where(keep, torch.scalar_tensor(value, dtype=like.dtype, device=like.device), off)


def _lerp_weight(keep: Tensor | None, beta1: float, ms: list[Tensor]):
    r"""The ``torch._foreach_lerp_`` weight :math:`1-\beta_1`, on a skipped step 0 (device tensors)."""
    return 1.0 - beta1 if keep is None else [_keep_scalar(keep, 1.0 - beta1, 0.0, ms[0])] * len(ms)


def _finite_or_zero(gs: list[Tensor], keep: Tensor | None) -> list[Tensor]:
    """The gradients, zeroed in place on a skipped step (an overlapping one read through ``torch.where``)."""
    if keep is None:
        return gs
    skip = ~keep
    return [torch.where(keep, g, 0.0) if _overlaps(g) else g.masked_fill_(skip, 0.0) for g in gs]


def _corrections(steps: list[Tensor], beta: float) -> list[Tensor]:
    r""":math:`1-\beta^t` per step tensor, in float64 (float32 on mps)."""
    dts = [torch.float32 if t.device.type == "mps" else torch.float64 for t in steps]
    return [1.0 - beta ** t.to(dt).clamp_min(1.0) for t, dt in zip(steps, dts, strict=True)]


def _scale_denominators_(ds: list[Tensor], lr, c1s: list[Tensor] | None, keep: Tensor | None) -> float:
    r"""Divide :math:`D` by :math:`\eta/c_1` (0 on a skipped step) on the device; the ``addcdiv`` value."""
    if c1s is None and not isinstance(lr, Tensor):
        if keep is not None:
            torch._foreach_div_(ds, [keep.to(ds[0].dtype)] * len(ds))
        return -lr
    sizes = []
    for i, d in enumerate(ds):
        s = lr.to(d.device) if isinstance(lr, Tensor) else lr
        s = s / c1s[i] if c1s is not None else s
        sizes.append(s * keep if keep is not None else s)
    torch._foreach_div_(ds, sizes)
    return -1.0


class _Base(Optimizer):
    """``torch.optim.Optimizer`` plus the device-side skip of non-finite steps and validated state dicts."""

    _required_group_keys: tuple = ("lr",)

    def __init__(self, params, defaults: dict, nonfinite: str):
        if nonfinite not in _NONFINITE:
            raise ValueError(f"nonfinite must be one of {_NONFINITE}, got {nonfinite!r}")
        defaults["nonfinite"] = nonfinite
        self._skipped: Tensor | None = None
        self._skipped_seen = 0
        super().__init__(params, defaults)

    @property
    def skipped_steps(self) -> int:
        """Number of steps skipped for non-finite gradients (synchronises; warns about new skips)."""
        n = 0 if self._skipped is None else int(self._skipped.item())
        if n > self._skipped_seen:
            new, self._skipped_seen = n - self._skipped_seen, n
            msg = f"{type(self).__name__}: {new} step(s) skipped for non-finite gradients; {n} in total"
            warnings.warn(msg, RuntimeWarning, stacklevel=2)
        return n

    def __getstate__(self) -> dict:
        """Everything ``copy.deepcopy``, ``pickle`` and ``torch.save`` need."""
        return {**super().__getstate__(), "_skipped": self._skipped, "_skipped_seen": self._skipped_seen}

    def _params(self) -> list[Tensor]:
        return [p for g in self.param_groups for p in g["params"]]

    def add_param_group(self, param_group: dict) -> None:
        """Add a validated param group (an invalid one does not stay)."""
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        for key in ("nonfinite", "partition"):  # optimizer-wide: in ``defaults`` only
            group.pop(key, None)
        try:
            self._validate_group(group)
        except ValueError:
            self.param_groups.pop()
            raise

    def _validate_group(self, group: Mapping) -> None:
        _check("lr", group["lr"])

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None):
        """One step; a non-finite flag is read at once on the CPU, elsewhere it enters the update."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        work = []
        for group in self.param_groups:
            ps = [p for p in group["params"] if p.grad is not None]
            if any(p.grad.is_sparse for p in ps):
                raise ValueError(f"{type(self).__name__} does not support sparse gradients")
            work.append((group, ps, [p.grad for p in ps]))
        found = self._found_inf([g for _, _, gs in work for g in gs])
        if found is not None and self._skips(found):
            return loss
        if found is not None and (self._on_host(found) or self.defaults["nonfinite"] == "raise"):
            found = None
        self._step(work, found)
        return loss

    def _skips(self, found: Tensor) -> bool:
        """Count a non-finite flag (or raise, ``nonfinite="raise"``); whether the host skips the step."""
        if self.defaults["nonfinite"] == "raise":
            if bool(found):
                raise FloatingPointError(f"{type(self).__name__}: non-finite gradient; step refused")
            return False
        if self._skipped is None:
            self._skipped = torch.zeros((), dtype=torch.float32, device=found.device)
        self._skipped = self._skipped.to(found.device).add_(found)
        return self._on_host(found) and bool(found)

    @staticmethod
    def _on_host(t: Tensor) -> bool:
        """Whether a flag on ``t``'s device is read at once (no device to wait for)."""
        return t.device.type in _HOST_FLAG_DEVICES and not torch.compiler.is_compiling()

    def _found_inf(self, grads: list[Tensor]) -> Tensor | None:
        """A float32 0-dim flag, 1 iff a gradient entry is not finite (``torch.aminmax``: no overflow).

        ``None`` when unchecked, or on the host when a sum of norms (one ``torch._foreach_norm``) is finite.
        """
        if self.defaults["nonfinite"] == "ignore" or not grads:
            return None
        reals = [_real(g) for g in grads]
        if self._on_host(reals[0]) and math.isfinite(sum(n.item() for n in torch._foreach_norm(reals))):
            return None
        dev = grads[0].device
        ends = [e.to(dev, torch.float32) for g in reals if g.numel() for e in torch.aminmax(g)]
        return (~torch.stack(ends).isfinite().all()).to(torch.float32) if ends else None

    def load_state_dict(self, state_dict: dict) -> None:
        """Load a state dict validated in full (a refused one changes nothing), also torch's."""
        try:
            groups = self._checked_groups(state_dict)
        except ValueError as err:
            raise ValueError(f"{type(self).__name__}.load_state_dict: {err}") from None
        super().load_state_dict({"state": state_dict["state"], "param_groups": groups})
        for p, st in self.state.items():  # step counts as float32 device tensors (torch's fused layout)
            for key in [k for k in st if k.endswith("step")]:
                step = torch.as_tensor(st[key]).detach()
                st[key] = step.to(device=p.device, dtype=torch.float32).reshape(())

    def _checked_groups(self, sd) -> list[dict]:
        """The param groups ``sd`` would give, after checking the groups and the states."""
        if not isinstance(sd, Mapping) or "state" not in sd or "param_groups" not in sd:
            raise ValueError("expected a dict with 'state' and 'param_groups'")
        if len(sd["param_groups"]) != len(self.param_groups):
            raise ValueError(f"{len(sd['param_groups'])} param groups, not {len(self.param_groups)}")
        groups = []
        for k, (cur, saved) in enumerate(zip(self.param_groups, sd["param_groups"], strict=True)):
            missing = [key for key in self._required_group_keys if key not in saved]
            foreign = sorted(set(saved) - set(cur) & {"betas", "momentum", "eps", "v0"})
            if len(saved["params"]) != len(cur["params"]):
                raise ValueError(f"param group {k} has {len(saved['params'])} parameters")
            if missing or foreign:
                why = f"lacks {missing}" if missing else f"has {foreign}"
                raise ValueError(f"param group {k} {why}; the state dict is from another optimizer")
            groups.append({**cur, **saved})
            try:
                self._validate_group(groups[-1])
            except ValueError as err:
                raise ValueError(f"param group {k}: {err}") from None
        by_id = {pid: i for i, pid in enumerate(i for g in sd["param_groups"] for i in g["params"])}
        if any(pid not in by_id or not isinstance(st, Mapping) for pid, st in sd["state"].items()):
            raise ValueError("a state that is not a dict of a parameter of the groups")
        self._check_state({by_id[pid]: st for pid, st in sd["state"].items()}, groups)
        return groups

    def _check_state(self, states: dict[int, Mapping], groups: list[dict]) -> None:
        if any(states.values()):
            raise ValueError(f"{type(self).__name__} has no state; the state dict is from another optimizer")


class BlockwiseAdam(_Base):
    r"""Blockwise Adam, Algorithm 3 (RECONSTRUCTED): the module docstring's update over ``partition``.

    ``lr``, ``beta1``, ``maximize`` may differ between groups; for blocks the rest must agree, the
    parameters share a device and dtype, and the first parameter's state also holds ``block_step`` and
    ``block_exp_avg_sq`` (:math:`v\in\mathbb R^B`). Coordinates keep torch's state and step by
    ``torch.optim.adam.adam(fused=True)`` where torch's settings and gradient strides allow.

    Args:
        params: parameters or param groups (complex ones as real views).
        partition: a :class:`~adamlinf.partitions.Partition` or a name of ``partitions.from_name``.
        **kw: ``eps_root``, ``v0``, ``bias_correction``, ``nonfinite`` (``"skip"``, ``"raise"``,
            ``"ignore"``), ``maximize``, ``fused`` (None: torch's kernel where it applies; False: foreach).
    """

    _required_group_keys = ("lr", "betas", "eps")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, *, partition="coordinate", **kw):
        unknown = set(kw) - set(_DEFAULTS) - {"nonfinite"}
        if unknown:
            raise TypeError(f"{type(self).__name__} got unexpected keyword arguments {sorted(unknown)}")
        partition = partitions.from_name(partition)
        nonfinite = kw.pop("nonfinite", "skip")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, **{**_DEFAULTS, **kw}, partition=partition)
        super().__init__(params, defaults, nonfinite)
        self._plan = None if self._coordinate else self._make_plan()

    @property
    def partition(self) -> Partition:
        r"""The partition :math:`\Phi` (Definition 3.8) over this optimizer's parameters."""
        return self.defaults["partition"]

    @property
    def _coordinate(self) -> bool:
        return self.partition.name == "coordinate"

    def __getstate__(self) -> dict:
        """As :meth:`_Base.__getstate__`; a block partition frozen to its block ids (picklable)."""
        state, part = super().__getstate__(), None
        if not self._coordinate:
            flat = self.partition.flat_index([_real(p) for p in self._params()])
            part = partitions.custom(flat, name=self.partition.name)
        state["defaults"] = {**state["defaults"], "partition": part}
        return state

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        self.defaults["partition"] = self.defaults["partition"] or partitions.coordinate()
        self._plan = None

    def add_param_group(self, param_group: dict) -> None:
        """Add a param group (to blocks only before the first step: the blocks would change)."""
        if self.state and not self._coordinate:
            raise ValueError(f"cannot add a param group to a {type(self).__name__} that has stepped")
        super().add_param_group(param_group)

    def _validate_group(self, group: Mapping) -> None:
        _check("lr", group["lr"])
        try:
            b1, b2 = group["betas"]
        except (TypeError, ValueError):
            raise ValueError(f"betas must be a pair (beta1, beta2), got {group['betas']!r}") from None
        _check("beta1", b1, below_one=True)
        _check("beta2", b2, below_one=True)
        for key in ("eps", "eps_root", "v0"):
            _check(key, group[key])
        for key, fixed in _TORCH_FIXED.items():
            if group.get(key, fixed) != fixed:
                raise ValueError(f"{key}={group[key]!r} is not supported, only {fixed!r}")
        if group.get("fused") and not (self._torch_form(group) and self._coordinate):
            raise ValueError("fused=True needs coordinates, eps > 0, bias_correction=True and eps_root=0")

    def _found_inf(self, grads: list[Tensor]) -> Tensor | None:
        """As :meth:`_Base._found_inf`; blocks on the host check their statistics in :meth:`_block_step`."""
        if not self._coordinate and grads and self._on_host(grads[0]):
            return None
        return super()._found_inf(grads)

    @staticmethod
    def _torch_form(group: Mapping) -> bool:
        return group["bias_correction"] and not group["eps_root"] and group["eps"] > 0

    def _shared(self, groups: list | None = None) -> tuple:
        """``(beta2, eps, eps_root, v0, bias_correction)``, equal in every group (they act on the blocks)."""
        keys = ("eps", "eps_root", "v0", "bias_correction")
        shared = [(g["betas"][1], *(g[key] for key in keys)) for g in groups or self.param_groups]
        for k, got in enumerate(shared[1:], 1):
            if got != shared[0]:
                raise ValueError(f"param group {k}: beta2, {', '.join(keys)} = {got} must agree with group 0")
        return shared[0]

    def _check_state(self, states: dict[int, Mapping], groups: list[dict]) -> None:
        """Torch's keys (coordinates) or the block keys; step counts whole numbers, moments of shape."""
        block = not self._coordinate
        if block:
            self._shared(groups)
        want = {"exp_avg"} if block else {"step", *_MOMENTS}
        params = self._params()
        for i, st in states.items():
            keys = set(st)
            if keys and keys != want and not (block and i == 0 and keys == want | _BLOCK_KEYS):
                msg = f"parameter {i} has state {sorted(keys)}; the state dict is from another optimizer"
                raise ValueError(msg)
            for key, val in st.items():
                if key.endswith("step"):
                    one = isinstance(val, (int, float)) or (isinstance(val, Tensor) and val.numel() == 1)
                    n = float(val) if one else math.nan
                    if not math.isfinite(n) or n < 0 or n != int(n):
                        raise ValueError(f"parameter {i}: {key}={val!r} is not a step count")
                elif key in _MOMENTS and (not isinstance(val, Tensor) or val.shape != params[i].shape):
                    shape = tuple(params[i].shape)
                    raise ValueError(f"parameter {i}: {key} does not have the parameter's shape {shape}")
        v = states.get(0, {}).get("block_exp_avg_sq")
        if block and v is not None:
            B = self._get_plan()["B"]
            ok = isinstance(v, Tensor) and v.shape == (B,)
            if not ok or not bool(v.isfinite().all() & (v >= 0).all()):
                raise ValueError(f"block_exp_avg_sq must be finite, >= 0, of shape ({B},) (the blocks)")
        elif block and any(states.values()):
            raise ValueError("moments without the block state; the state dict is from another optimizer")

    def _step(self, work, found) -> None:
        keep = None if found is None else found == 0
        if not self._coordinate:
            return self._block_step(work, keep)
        for group, ps, gs in work:
            for p in ps:
                st = self.state[p]
                if not st:
                    st["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
                    for key in _MOMENTS:
                        st[key] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    if group["v0"]:
                        _real(st["exp_avg_sq"]).fill_(group["v0"])
                for key in _MOMENTS:  # the state follows the parameter (e.g. after model.double())
                    st[key] = st[key].to(device=p.device, dtype=p.dtype)
            steps, ms, vs = ([self.state[p][k] for p in ps] for k in ("step", *_MOMENTS))
            if ps and self._fusable(group, ps, gs):
                b1, b2 = group["betas"]
                hyper = dict(lr=group["lr"], eps=group["eps"], maximize=group["maximize"], beta1=b1, beta2=b2)
                fixed = dict(amsgrad=False, weight_decay=0.0, fused=True)
                torch_adam(ps, gs, ms, vs, [], steps, found_inf=found, **fixed, **hyper)
            elif ps:
                reals = ([_real(t) for t in ts] for ts in (ps, gs, ms, vs))
                self._coordinate_step(group, *reals, steps, keep)

    def _fusable(self, group: dict, ps: list[Tensor], gs: list[Tensor]) -> bool:
        """Whether torch's fused kernel runs: torch's settings, every gradient in its parameter's strides."""
        if group["fused"] is False or not self._torch_form(group) or torch.compiler.is_compiling():
            return False  # (torch does not trace its fused kernel: a compiled step takes the foreach path)
        ok = all(p.device.type in _FUSED_DEVICES and p.dtype in _FUSED_DTYPES for p in ps)
        if group["fused"] and not ok:
            raise ValueError(f"fused=True needs real floating parameters on {_FUSED_DEVICES}")
        return ok and all(_same_layout(p, g) for p, g in zip(ps, gs, strict=True))

    @staticmethod
    def _coordinate_step(group, ps, gs, ms, vs, steps, keep) -> None:
        """Algorithm 1 with ``torch._foreach_*`` kernels; a skipped step moves nothing."""
        beta1, beta2 = group["betas"]
        if group["maximize"]:
            gs = torch._foreach_neg(gs)
        gs = _finite_or_zero(gs, keep)
        torch._foreach_add_(steps, 1 if keep is None else [keep.to(torch.float32)] * len(steps))
        torch._foreach_lerp_(ms, gs, _lerp_weight(keep, beta1, ms))
        torch._foreach_mul_(vs, _keep_scalar(keep, beta2, 1.0, vs[0]))
        torch._foreach_addcmul_(vs, gs, gs, value=1.0 - beta2)
        c1s = c2s = None
        if group["bias_correction"]:
            c1s, c2s = _corrections(steps, beta1), _corrections(steps, beta2)
        ds = _denominators(vs, c2s, group["eps"], group["eps_root"])
        torch._foreach_addcdiv_(ps, ms, ds, value=_scale_denominators_(ds, group["lr"], c1s, keep))

    def _get_plan(self) -> dict:
        params = self._params()
        if self._plan is None or self._plan["key"] != (tuple(id(p) for p in params), params[0].device):
            self._plan = self._make_plan()
        return self._plan

    def _make_plan(self) -> dict:
        """Per tensor equal runs of block ids (``seg``: a ``view(n, -1)``) or a gather."""
        params = self._params()
        dev, dt = params[0].device, params[0].dtype
        if any(p.device != dev or p.dtype != dt for p in params):
            raise ValueError(f"{type(self).__name__}: all parameters must share one device and dtype")
        self._shared()
        reals = [_real(p) for p in params]
        ids = self.partition.index(reals)
        flat_all = torch.cat([i.reshape(-1) for i in ids])
        B = int(flat_all.max()) + 1
        sizes = torch.bincount(flat_all, minlength=B).to(device=dev, dtype=torch.float32)  # exact to 2**24
        entries = []
        for p, i in zip(reals, ids, strict=True):
            flat, e = i.reshape(-1), {}
            numel = flat.numel()
            if numel and p.is_contiguous():
                n = int((flat[1:] != flat[:-1]).sum()) + 1
                mat = flat.view(n, numel // n) if numel % n == 0 else None
                if mat is not None and bool((mat == mat[:, :1]).all()):
                    e = dict(kind="seg", n=n, seg=numel // n, blocks=mat[:, 0].clone())
            if not e:
                uniq, inv = torch.unique(flat, return_inverse=True)
                e = dict(kind="gather", n=uniq.numel(), blocks=uniq, inv=inv.to(dev))
            b = e["blocks"]
            lo = int(b[0]) if b.numel() else 0
            contiguous = b.numel() and torch.equal(b, torch.arange(lo, lo + b.numel()))
            e["sel"] = slice(lo, lo + b.numel()) if contiguous else b.to(dev)
            entries.append(e)
        cat = torch.cat([e["blocks"] for e in entries])
        identity = cat.numel() == B and torch.equal(cat, torch.arange(B))
        key, index = (tuple(id(p) for p in params), dev), {id(p): k for k, p in enumerate(params)}
        plan = dict(key=key, B=B, sizes=sizes, entries=entries, identity=identity, index=index)
        return {**plan, "cat_ids": cat.to(dev)}

    def _rms_pieces(self, plan: dict, grads: dict) -> list[Tensor]:
        """Per tensor its blocks' root-mean-squares (``identity``) or sums of squares; no gradient: zeros."""
        ident, ref = plan["identity"], next(iter(grads.values()))
        pieces = []
        for k, e in enumerate(plan["entries"]):
            g = grads.get(k)
            if g is None:
                pieces.append(torch.zeros(e["n"], device=ref.device, dtype=ref.dtype))
                continue
            if e["kind"] == "seg":
                if ident and e["seg"] == 1:
                    pieces.append(g.reshape(e["n"]))
                    continue
                if e["n"] == 1:
                    flat = g.reshape(-1)
                    sq = torch.dot(flat, flat).view(1)
                else:
                    sq = g.reshape(e["n"], e["seg"])
                    sq = (sq * sq).sum(1)
            else:
                sq = g.reshape(-1)
                sq = torch.zeros(e["n"], device=g.device, dtype=g.dtype).index_add_(0, e["inv"], sq * sq)
            if ident:
                sq = sq.div_(e["seg"] if e["kind"] == "seg" else plan["sizes"][e["sel"]]).sqrt_()
            pieces.append(sq)
        return pieces

    def _block_step(self, work, keep) -> None:
        """Algorithm 3 over all param groups (one shared vector of block moments)."""
        plan = self._get_plan()
        beta2, eps, eps_root, v0, bias_correction = self._shared()
        real_work = []
        for group, ps, gs in work:
            gs = [_real(g) for g in gs]
            gs = torch._foreach_neg(gs) if group["maximize"] and gs else gs
            real_work.append((group, ps, [_real(p) for p in ps], _finite_or_zero(gs, keep)))
        grads = {plan["index"][id(p)]: g for _, ps, _, gs in real_work for p, g in zip(ps, gs, strict=True)}
        if not grads:
            return
        pieces = self._rms_pieces(plan, grads)
        checked = keep is None and self._on_host(pieces[0]) and self.defaults["nonfinite"] != "ignore"
        if checked and not math.isfinite(sum(x.sum().item() for x in pieces)):
            found = _Base._found_inf(self, [g for _, _, _, gs in real_work for g in gs])
            if found is not None and self._skips(found):
                return
        # blocks in consecutive slices of v (rows, heads, tensor): v is updated slice by slice in place
        sliced = plan["identity"] and all(isinstance(e["sel"], slice) for e in plan["entries"])
        rms = pieces[0] if sliced else torch.cat(pieces)
        if not plan["identity"]:
            sums = torch.zeros(plan["B"], device=rms.device, dtype=rms.dtype)
            rms = sums.index_add_(0, plan["cat_ids"], rms).div_(plan["sizes"]).sqrt_()
        st0 = self.state[self._params()[0]]
        if "block_exp_avg_sq" not in st0:
            st0["block_step"] = torch.zeros((), dtype=torch.float32, device=rms.device)
            st0["block_exp_avg_sq"] = torch.full((plan["B"],), float(v0), device=rms.device, dtype=rms.dtype)
        v = st0["block_exp_avg_sq"] = st0["block_exp_avg_sq"].to(device=rms.device, dtype=rms.dtype)
        t = st0["block_step"] = st0["block_step"].to(rms.device)
        for p in (p for _, ps, _, _ in real_work for p in ps):
            st = self.state[p]
            if "exp_avg" not in st:
                st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            st["exp_avg"] = st["exp_avg"].to(device=p.device, dtype=p.dtype)
        t.add_(1 if keep is None else keep.to(torch.float32))
        parts = zip((v[e["sel"]] for e in plan["entries"]), pieces, strict=True) if sliced else [(v, rms)]
        decay = _keep_scalar(keep, beta2, 1.0, v)
        for vv, r in parts:
            vv.mul_(decay).addcmul_(r, r, value=1.0 - beta2)
        (denom_b,) = _denominators([v], _corrections([t], beta2) if bias_correction else None, eps, eps_root)
        last = max((i for i, (_, ps, _, _) in enumerate(real_work) if ps), default=-1)
        for i, (group, ps, rps, gs) in enumerate(real_work):
            if not ps:
                continue
            beta1, lr = group["betas"][0], group["lr"]
            ms = [_real(self.state[p]["exp_avg"]) for p in ps]
            torch._foreach_lerp_(ms, gs, _lerp_weight(keep, beta1, ms))
            c1s = _corrections([t], beta1) if bias_correction else None
            scaled = c1s is not None or isinstance(lr, Tensor) or keep is not None
            d_group = [denom_b.clone() if scaled and i != last else denom_b]  # the last group may consume it
            value = _scale_denominators_(d_group, lr, c1s, keep)
            xs, mv, ds = [], [], []
            for p, x, m in zip(ps, rps, ms, strict=True):
                e = plan["entries"][plan["index"][id(p)]]
                d = d_group[0][e["sel"]]
                if e["kind"] == "gather":
                    ds.append(d[e["inv"]].view_as(x))
                elif e["n"] == 1:  # one block: its denominator broadcasts over the tensor
                    ds.append(d.view([1] * x.dim()))
                else:
                    x, m = x.view(e["n"], e["seg"]), m.view(e["n"], e["seg"])
                    ds.append(d.view(e["n"], 1))
                xs.append(x)
                mv.append(m)
            torch._foreach_addcdiv_(xs, mv, ds, value=value)


class Adam(BlockwiseAdam):
    r"""Adam, Algorithm 1: by default ``torch.optim.Adam(fused=True)`` bit for bit where it applies."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, **kw):
        super().__init__(params, lr, betas, eps, partition="coordinate", **kw)


class AdaSGD(BlockwiseAdam):
    r"""AdaSGD, Algorithm 2 (Wang & Wiens 2020): :class:`BlockwiseAdam` with one block of all parameters."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, **kw):
        super().__init__(params, lr, betas, eps, partition="whole", **kw)


class RMSProp(Adam):
    r"""RMSProp, the optimizer of Theorem 3.5: :class:`Adam` with :math:`\beta_1=0`, checked at every step."""

    def __init__(self, params, lr=1e-3, beta2: float = 0.999, eps: float = 1e-8, v0: float = 0.0, **kw):
        super().__init__(params, lr, (0.0, beta2), eps, v0=v0, **kw)

    def _validate_group(self, group: Mapping) -> None:
        super()._validate_group(group)
        if group["betas"][0] != 0:
            raise ValueError(f"RMSProp needs beta1 = 0, got betas={tuple(group['betas'])}")

    def _step(self, work, found) -> None:
        for group in self.param_groups:  # a scheduler with momentum cycling may have set beta1
            self._validate_group(group)
        super()._step(work, found)


class SignGD(_Base):
    r"""SignGD (Theorem 3.2): :math:`x_t=x_{t-1}-\eta_t\,\mathrm{sign}(g_t)` exactly; no state."""

    def __init__(self, params, lr: float | Tensor = 1e-3, *, maximize: bool = False, nonfinite: str = "skip"):
        super().__init__(params, dict(lr=lr, maximize=bool(maximize)), nonfinite)

    def _step(self, work, found) -> None:
        keep = None if found is None else found == 0
        for group, ps, gs in (w for w in work if w[1]):
            rp = [_real(p) for p in ps]
            signs = torch._foreach_sign(_finite_or_zero([_real(g) for g in gs], keep))
            lr = group["lr"]
            if isinstance(lr, Tensor):
                torch._foreach_mul_(signs, lr.to(rp[0].device))
                lr = 1.0
            torch._foreach_add_(rp, signs, alpha=lr if group["maximize"] else -lr)


@dataclass(frozen=True)
class Spec:
    """A registered optimizer: its label, ``build(params, model, lr=, betas=, eps=, momentum=, **kw)``."""

    label: str
    build: Callable[..., Optimizer]
    rotates: bool = False  # trained on the rotated loss (the caller wraps the model)


def _adaptive(cls, partition: Callable | str | None = None) -> Callable[..., Optimizer]:
    def build(params, model, *, lr, betas, eps, momentum, **kw):
        if partition is not None:
            kw["partition"] = partition(model) if callable(partition) else partition
        return cls(params, lr, betas, eps, **kw)

    return build


def _rmsprop(params, model, *, lr, betas, eps, momentum, **kw) -> Optimizer:
    return RMSProp(params, lr, betas[1], eps, **kw)


def _signgd(params, model, *, lr, betas, eps, momentum, nonfinite="skip", maximize=False, **_) -> Optimizer:
    return SignGD(params, lr, maximize=maximize, nonfinite=nonfinite)  # no moments: Adam's knobs do not apply


def _sgd(params, model, *, lr, betas, eps, momentum, **_) -> Optimizer:
    return torch.optim.SGD(params, lr=lr, momentum=momentum)  # the paper's SGD is torch's (heavy ball)


def _heads(model) -> Partition:
    n_head = getattr(getattr(model, "config", None), "n_head", None)
    if n_head is None:
        raise ValueError("blockwise_adam_head needs a model with config.n_head (a GPT)")
    return partitions.heads(model, n_head)


#: name -> :class:`Spec`: the one list of optimizers (the trainer, the quadratic runners, the tables).
OPTIMIZERS: dict[str, Spec] = {
    "adam": Spec("Adam", _adaptive(Adam)),
    "adasgd": Spec("AdaSGD", _adaptive(AdaSGD)),
    "rotated_adam": Spec("Rotated Adam", _adaptive(Adam), rotates=True),
    "sgd": Spec("SGD", _sgd),
    "blockwise_adam_tensor": Spec("Blockwise Adam (per tensor)", _adaptive(BlockwiseAdam, "tensor")),
    "blockwise_adam_head": Spec("Blockwise Adam (per head)", _adaptive(BlockwiseAdam, _heads)),
    "signgd": Spec("SignGD", _signgd),
    "rmsprop": Spec("RMSProp", _rmsprop),
    "blockwise_adam": Spec("Blockwise Adam", _adaptive(BlockwiseAdam)),
}
#: name -> label, read from :data:`OPTIMIZERS`.
LABELS = {name: spec.label for name, spec in OPTIMIZERS.items()}


def create(name: str, params, *, model=None, lr: float, betas=(0.9, 0.999), eps=1e-8, momentum=0.9, **kw):
    """The optimizer ``name`` of :data:`OPTIMIZERS`; ``**kw`` go to the class (``eps_root``, ``v0``, ...)."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose from {tuple(OPTIMIZERS)}")
    return OPTIMIZERS[name].build(params, model, lr=lr, betas=betas, eps=eps, momentum=momentum, **kw)
