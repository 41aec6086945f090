r"""The optimizers of the paper as ``torch.optim.Optimizer`` subclasses and as functional updates.

Adam (Algorithm 1), RMSProp (Adam with :math:`\beta_1=0`, Theorem 3.5), SignGD (Theorem 3.2),
AdaSGD (Algorithm 2) and blockwise Adam (Algorithm 3). Notation (RECONSTRUCTED, see the book's
reconstruction notes): gradient :math:`g_t`, step size :math:`\eta_t`, :math:`\beta_1,\beta_2\in[0,1)`,
:math:`\epsilon\ge0`, initial second moment :math:`v_0\ge0`, :math:`m_0=0`, and a partition
:math:`\Phi:[d]\to[B]` with block sizes :math:`d_b` (Definition 3.8, :mod:`adamlinf.partitions`).
Algorithm 3 reads

.. math::

    m_t &= \beta_1 m_{t-1} + (1-\beta_1)\, g_t, \\
    v_{t,b} &= \beta_2 v_{t-1,b} + (1-\beta_2)\, \|g_{t,(b)}\|_2^2 / d_b, \\
    \hat m_t &= m_t / c_{1,t}, \qquad \hat v_{t,b} = v_{t,b} / c_{2,t}, \\
    x_{t,(b)} &= x_{t-1,(b)} - \eta_t\, \hat m_{t,(b)} / D_{t,b},

with, in the **torch form** (the default), :math:`c_{k,t} = 1-\beta_k^t` (bias correction) and
:math:`D = \sqrt{\hat v} + \epsilon` (:math:`\epsilon` outside the root), and in the **paper form**
(Algorithm 1 as stated, ``paper_form=True``) :math:`c_{k,t}=1` and :math:`D=\sqrt{v+\epsilon}`
(:math:`\epsilon` inside the root, RECONSTRUCTED placement) with a free :math:`v_0` (Theorem 3.5).
Adam (Algorithm 1) is the coordinate partition (:math:`d_b=1`), AdaSGD (Algorithm 2) the one-block
partition, RMSProp is Adam with :math:`\beta_1=0` and SignGD is Adam with
:math:`\beta_1=\beta_2=\epsilon=0`, :math:`v_0=0`: :math:`x_t = x_{t-1}-\eta_t\,\mathrm{sign}(g_t)`.

Convention (one for every entry point):

* ``Adam(params)`` **is** ``torch.optim.Adam(params)``: ``lr=1e-3``, ``betas=(0.9, 0.999)``,
  ``eps=1e-8``, bias correction on, :math:`\epsilon` outside the root, :math:`v_0=0`. Its state dict
  is torch's (``step`` a float32 tensor, ``exp_avg``, ``exp_avg_sq``) and loads into
  ``torch.optim.Adam`` and back. When the configuration equals torch's, the step runs torch's fused
  kernel (``torch._fused_adam_``) unless ``fused=False``.
* The paper form is asked for explicitly: ``paper_form=True`` (no bias correction, :math:`\epsilon`
  inside the root), optionally with ``v0``. The two switches ``bias_correction`` and
  ``eps_inside_sqrt`` override the form one by one.
* :class:`RMSProp`, :class:`AdaSGD` and :class:`BlockwiseAdam` follow the same defaults;
  ``BlockwiseAdam(params)`` uses the coordinate partition, i.e. it is Adam. :func:`create` builds
  them by name with the same defaults (``torch_form=False`` is ``paper_form=True``).
* ``torch.optim.Adam``'s keyword arguments are accepted where they make sense: ``weight_decay=0``,
  ``amsgrad=False``, ``differentiable=False``, ``decoupled_weight_decay=False`` (other values are
  refused with a ``ValueError`` naming the field), ``maximize`` (implemented), ``foreach`` and
  ``capturable`` (accepted; the state always lives on the parameter's device), ``fused``.

Shared conventions:

* **Zero denominator.** When :math:`\epsilon=0` a coordinate (block) whose denominator is exactly 0
  is not moved (its update is defined as 0 instead of 0/0).
* **Non-finite gradients** (``nonfinite=``). ``"skip"`` (default): every gradient is checked on the
  device (``torch._amp_foreach_non_finite_check_and_unscale_``, the check of
  ``torch.amp.GradScaler``: element by element, so a finite fp16 gradient of 60000 is finite), and
  a step with a non-finite gradient leaves parameters, moments and step counters bit-identical,
  **without a host synchronisation**. On an accelerator the found-inf flag stays on the device and
  feeds the update: torch's fused kernel takes it as ``found_inf``; the other paths turn it into a
  zero step, with the weights of the moments set to (0, 1) and the gradients of a skipped step
  zeroed in place (no copy; a gradient whose memory overlaps itself, such as
  ``torch.ones(1).expand(2)``, is read through a ``torch.where`` instead). On the CPU the flag is a
  number in host memory: it is read (no device to wait for), a bad step returns at once and a good
  one runs the plain update, so the check is the only cost (under ``torch.compile`` the device
  form is used, so the step stays one graph). The number of skipped
  steps is a device tensor (:attr:`skipped_steps_tensor`); reading :attr:`skipped_steps`
  synchronises and emits one ``RuntimeWarning`` for the steps skipped since the last read.
  ``"raise"``: ``FloatingPointError``, state untouched (one synchronisation per step).
  ``"ignore"``: no check (as ``torch.optim.Adam``).
* ``p.grad is None``: :class:`Adam` skips the parameter (as PyTorch does). The block methods
  count it as a zero gradient in the block statistics and do not move it.
* **Complex parameters** are optimised as pairs of real numbers (``torch.view_as_real``), as
  ``torch.optim.Adam`` does.
* **State dicts** are validated on load: another optimizer's state or an invalid hyperparameter
  (``lr=-1``, ``beta1=1.5``) raises a ``ValueError`` naming it, before anything changes. RMSProp
  checks :math:`\beta_1=0` at every step (schedulers such as ``OneCycleLR`` may set it).
* Copies (``copy.deepcopy``, ``pickle``, ``torch.save`` of the optimizer object) keep every
  setting: the settings live in ``defaults`` and the param groups.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor
from torch.optim import Optimizer

from . import partitions as _partitions
from .partitions import Partition

__all__ = [
    "Adam",
    "RMSProp",
    "SignGD",
    "AdaSGD",
    "BlockwiseAdam",
    "create",
    "adam_update_",
    "blockwise_adam_update_",
    "adasgd_update_",
    "signgd_update_",
]

_NONFINITE = ("skip", "raise", "ignore")
# settings of the whole optimizer: kept in ``defaults``, not in the param groups
_GLOBAL_KEYS = ("nonfinite", "partition")
# torch.optim.Adam arguments accepted only at these values
_TORCH_FIXED = {
    "weight_decay": 0.0,
    "amsgrad": False,
    "differentiable": False,
    "decoupled_weight_decay": False,
}
_TORCH_WHY = {
    "weight_decay": "the paper's optimizers have no weight decay; use torch.optim.AdamW for it",
    "amsgrad": "AMSGrad is not one of the paper's algorithms",
    "differentiable": "the step is not differentiable",
    "decoupled_weight_decay": "the paper's optimizers have no weight decay; use torch.optim.AdamW for it",
}


# =============================================================================================
# the shared maths (used by the classes and by the functional forms)
# =============================================================================================
def _bias_corrections(step: int, beta1: float, beta2: float, bias_correction: bool) -> tuple[float, float]:
    r"""Return :math:`(c_1, c_2) = (1-\beta_1^t, 1-\beta_2^t)`, or (1, 1) without bias correction."""
    if not bias_correction:
        return 1.0, 1.0
    return 1.0 - beta1**step, 1.0 - beta2**step


def _step_size(lr, c1: float):
    r"""Return :math:`\eta/c_1` (exactly ``lr`` without bias correction)."""
    return lr if c1 == 1.0 else lr / c1


def _denominators(vs: list[Tensor], eps: float, c2s: Sequence | None, eps_inside_sqrt: bool) -> list[Tensor]:
    r"""New tensors :math:`D=\sqrt{v/c_2+\epsilon}` (eps inside) or :math:`\sqrt v/\sqrt{c_2}+\epsilon`.

    The latter in ``torch.optim.Adam``'s order of operations (sqrt, divide by :math:`\sqrt{c_2}`,
    add eps). ``c2s`` holds floats or 0-dim tensors, or is None (no bias correction). Where
    :math:`\epsilon=0` and :math:`D=0` the denominator is :math:`+\infty`, so the coordinate does not
    move.
    """
    if c2s is not None and all(not isinstance(c, Tensor) and c == 1.0 for c in c2s):
        c2s = None
    if eps_inside_sqrt:
        if c2s is not None:
            ds = torch._foreach_div(vs, list(c2s))
            if eps:
                torch._foreach_add_(ds, eps)
        else:  # one pass: v + eps into new tensors (a copy of v when eps = 0)
            ds = torch._foreach_add(vs, eps) if eps else [v.clone() for v in vs]
        torch._foreach_sqrt_(ds)
    else:
        ds = torch._foreach_sqrt(vs)
        if c2s is not None:
            roots = [c.sqrt() if isinstance(c, Tensor) else c**0.5 for c in c2s]
            torch._foreach_div_(ds, roots)
        if eps:
            torch._foreach_add_(ds, eps)
    if not eps:
        for d in ds:
            d.masked_fill_(d == 0, math.inf)
    return ds


def _second_moment_(v: Tensor, rms: Tensor, beta2: float) -> Tensor:
    r"""Update :math:`v\leftarrow\beta_2 v+(1-\beta_2)r^2` in place.

    ``rms`` is :math:`r=\|g_{(b)}\|_2/\sqrt{d_b}` (:math:`=g` for Adam).
    One ``addcmul``, the operation Adam uses, so that a block of one coordinate reproduces Adam
    bit for bit.
    """
    return v.mul_(beta2).addcmul_(rms, rms, value=1.0 - beta2)


def _check_lr(lr) -> None:
    if isinstance(lr, Tensor):
        if lr.numel() != 1:
            raise ValueError("a tensor lr must have exactly one element")
        lr = float(lr)
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr < 0:
        raise ValueError(f"Invalid learning rate lr={lr!r}: must be a finite number >= 0")


def _check_hparams(lr, betas, eps, v0) -> None:
    _check_lr(lr)
    try:
        b1, b2 = betas
    except (TypeError, ValueError):
        raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}") from None
    for name, b in (("beta1", b1), ("beta2", b2)):
        if isinstance(b, bool) or not isinstance(b, (int, float)) or not 0.0 <= b < 1.0:
            raise ValueError(f"Invalid {name}={b!r}: must be a number in [0, 1)")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps < 0:
        raise ValueError(f"Invalid eps={eps!r}: must be a finite number >= 0")
    if isinstance(v0, bool) or not isinstance(v0, (int, float)) or not math.isfinite(v0) or v0 < 0:
        raise ValueError(f"Invalid v0={v0!r}: the initial second moment must be a finite number >= 0")


def _check_torch_args(owner: str, group: Mapping) -> None:
    """Refuse ``torch.optim.Adam`` arguments this optimizer cannot honour, naming field and value."""
    for key, fixed in _TORCH_FIXED.items():
        val = group.get(key, fixed)
        if val != fixed:
            raise ValueError(
                f"{owner}: {key}={val!r} is not supported ({_TORCH_WHY[key]}); use {key}={fixed!r}"
            )
    for key in ("maximize", "capturable"):
        if not isinstance(group.get(key, False), bool):
            raise ValueError(f"{owner}: {key} must be a bool, got {group[key]!r}")
    for key in ("foreach", "fused"):
        if group.get(key) not in (None, True, False):
            raise ValueError(f"{owner}: {key} must be None or a bool, got {group[key]!r}")


def _resolve_form(
    paper_form: bool, bias_correction: bool | None, eps_inside_sqrt: bool | None
) -> tuple[bool, bool]:
    """``(bias_correction, eps_inside_sqrt)`` from ``paper_form`` and the optional overrides."""
    if not isinstance(paper_form, bool):
        raise ValueError(f"paper_form must be a bool, got {paper_form!r}")
    bc = (not paper_form) if bias_correction is None else bool(bias_correction)
    ins = paper_form if eps_inside_sqrt is None else bool(eps_inside_sqrt)
    return bc, ins


def _apply_update_(x: Tensor, m: Tensor, denom: Tensor, step_size) -> Tensor:
    r"""Update :math:`x\leftarrow x-\text{step\_size}\cdot m/D`; ``step_size`` a float or a tensor."""
    if isinstance(step_size, Tensor):
        return x.sub_(m / denom * step_size)
    return x.addcdiv_(m, denom, value=-step_size)


def _real(t: Tensor) -> Tensor:
    """The real view of a complex tensor (``torch.view_as_real``), else the tensor itself."""
    return torch.view_as_real(t) if t.is_complex() else t


# =============================================================================================
# functional forms (elementwise on same-shape tensors; batched runs along leading dimensions)
# =============================================================================================
def adam_update_(
    x: Tensor,
    g: Tensor,
    m: Tensor,
    v: Tensor,
    *,
    lr,
    beta1: float,
    beta2: float,
    eps: float,
    step: int,
    bias_correction: bool = True,
    eps_inside_sqrt: bool = False,
) -> Tensor:
    r"""One in-place step of Adam (Algorithm 1) on same-shape tensors.

    .. math::

        m &\leftarrow \beta_1 m + (1-\beta_1) g,\qquad v \leftarrow \beta_2 v + (1-\beta_2) g^2,\\
        x &\leftarrow x - \eta\,\hat m/(\sqrt{\hat v}+\epsilon)\quad\text{(torch form) or}\quad
        x - \eta\,\hat m/\sqrt{\hat v+\epsilon}\quad\text{(paper form)},

    with :math:`\hat m=m/(1-\beta_1^t)`, :math:`\hat v=v/(1-\beta_2^t)` if ``bias_correction`` else
    :math:`\hat m=m,\hat v=v`. Initialise ``m = 0`` and ``v = v0``. Leading dimensions may be a
    batch of independent runs.

    Args:
        x: iterate, updated in place.
        g: gradient.
        m: first moment, updated in place.
        v: second moment, updated in place.
        lr: a float or a tensor broadcastable to ``x`` (e.g. ``(batch, 1)`` for a learning-rate grid).
        beta1: :math:`\beta_1`.
        beta2: :math:`\beta_2`.
        eps: :math:`\epsilon`.
        step: :math:`t\ge1`, the index of this step.
        bias_correction: divide by :math:`1-\beta_k^t` (torch form, default).
        eps_inside_sqrt: :math:`\epsilon` inside the root (paper form).

    Returns:
        ``x``.
    """
    c1, c2 = _bias_corrections(step, beta1, beta2, bias_correction)
    m.lerp_(g, 1.0 - beta1)
    _second_moment_(v, g, beta2)
    (denom,) = _denominators([v], eps, [c2], eps_inside_sqrt)
    return _apply_update_(x, m, denom, _step_size(lr, c1))


def blockwise_adam_update_(
    x: Tensor,
    g: Tensor,
    m: Tensor,
    v: Tensor,
    index: Tensor,
    *,
    lr,
    beta1: float,
    beta2: float,
    eps: float,
    step: int,
    bias_correction: bool = True,
    eps_inside_sqrt: bool = False,
    sizes: Tensor | None = None,
) -> Tensor:
    r"""One in-place step of blockwise Adam (Algorithm 3) along the last dimension.

    Per block :math:`v_b\leftarrow\beta_2 v_b+(1-\beta_2)\|g_{(b)}\|_2^2/d_b`, per coordinate
    :math:`m` as in Adam and :math:`x_i\leftarrow x_i-\eta\,\hat m_i/D_{\Phi(i)}` (forms as in
    :func:`adam_update_`). Leading dimensions are a batch of independent runs.

    Args:
        x: iterate ``(..., d)``, updated in place.
        g: gradient ``(..., d)``.
        m: first moment ``(..., d)``, updated in place.
        v: block second moments ``(..., B)``, updated in place.
        index: the ``(d,)`` block map :math:`\Phi` (``Partition.flat_index``).
        lr: a float or a broadcastable tensor.
        beta1: :math:`\beta_1`.
        beta2: :math:`\beta_2`.
        eps: :math:`\epsilon`.
        step: :math:`t\ge1`.
        bias_correction: torch form's bias correction (default).
        eps_inside_sqrt: paper form's :math:`\epsilon` placement.
        sizes: the ``(B,)`` block sizes :math:`d_b` (computed if omitted).

    Returns:
        ``x``.
    """
    index = index.to(g.device)
    B = v.shape[-1]
    if sizes is None:
        sizes = torch.bincount(index, minlength=B)
    sizes = sizes.to(device=g.device, dtype=g.dtype)
    c1, c2 = _bias_corrections(step, beta1, beta2, bias_correction)
    sums = torch.zeros(g.shape[:-1] + (B,), dtype=g.dtype, device=g.device).index_add_(-1, index, g * g)
    _second_moment_(v, sums.div_(sizes).sqrt_(), beta2)
    (denom_b,) = _denominators([v], eps, [c2], eps_inside_sqrt)
    m.lerp_(g, 1.0 - beta1)
    return _apply_update_(x, m, denom_b.index_select(-1, index), _step_size(lr, c1))


def adasgd_update_(
    x: Tensor,
    g: Tensor,
    m: Tensor,
    v: Tensor,
    *,
    lr,
    beta1: float,
    beta2: float,
    eps: float,
    step: int,
    bias_correction: bool = True,
    eps_inside_sqrt: bool = False,
) -> Tensor:
    r"""One in-place step of AdaSGD (Algorithm 2) along the last dimension.

    :math:`v\leftarrow\beta_2 v+(1-\beta_2)\|g\|_2^2/d`, :math:`x\leftarrow x-\eta\,\hat m/D`
    (forms as in :func:`adam_update_`). Leading dimensions are a batch of independent runs.

    Args:
        x: iterate ``(..., d)``, updated in place.
        g: gradient ``(..., d)``.
        m: first moment ``(..., d)``, updated in place.
        v: second moment ``(..., 1)``, updated in place.
        lr: a float or a broadcastable tensor.
        beta1: :math:`\beta_1`.
        beta2: :math:`\beta_2`.
        eps: :math:`\epsilon`.
        step: :math:`t\ge1`.
        bias_correction: torch form's bias correction (default).
        eps_inside_sqrt: paper form's :math:`\epsilon` placement.

    Returns:
        ``x``.
    """
    c1, c2 = _bias_corrections(step, beta1, beta2, bias_correction)
    _second_moment_(v, (g * g).mean(-1, keepdim=True).sqrt_(), beta2)
    (denom,) = _denominators([v], eps, [c2], eps_inside_sqrt)
    m.lerp_(g, 1.0 - beta1)
    return _apply_update_(x, m, denom, _step_size(lr, c1))


def signgd_update_(x: Tensor, g: Tensor, *, lr) -> Tensor:
    r"""One in-place SignGD step: :math:`x\leftarrow x-\eta\,\mathrm{sign}(g)` exactly (``sign(0) = 0``).

    SignGD is Adam with :math:`\beta_1=\beta_2=\epsilon=0` (Theorem 3.2).

    Args:
        x: iterate, updated in place.
        g: gradient.
        lr: a float or a broadcastable tensor.

    Returns:
        ``x``.
    """
    if isinstance(lr, Tensor):
        return x.sub_(g.sign() * lr)
    return x.add_(g.sign(), alpha=-lr)


# =============================================================================================
# optimizer classes
# =============================================================================================
class _Base(Optimizer):
    """Closure handling, gradient collection, the device-side non-finite policy, validation, copies."""

    #: per-parameter state keys (a parameter's state holds exactly these, or nothing)
    _state_keys: frozenset = frozenset()
    #: group keys a loaded state dict must hold (the signature of this optimizer family)
    _required_group_keys: tuple = ("lr",)

    def __init__(self, params, defaults: dict, nonfinite: str):
        if nonfinite not in _NONFINITE:
            raise ValueError(f"nonfinite must be one of {_NONFINITE}, got {nonfinite!r}")
        defaults["nonfinite"] = nonfinite
        self._skipped: Tensor | None = None
        self._skipped_seen = 0
        super().__init__(params, defaults)

    # ---- settings ------------------------------------------------------------------------------
    @property
    def nonfinite(self) -> str:
        """The non-finite gradient policy: ``"skip"``, ``"raise"`` or ``"ignore"``."""
        return self.defaults["nonfinite"]

    @property
    def skipped_steps_tensor(self) -> Tensor:
        """Number of steps skipped for non-finite gradients, as a device tensor (no synchronisation)."""
        return self._skipped if self._skipped is not None else torch.zeros((), dtype=torch.float32)

    @property
    def skipped_steps(self) -> int:
        """Number of steps skipped for non-finite gradients (synchronises; warns about new skips)."""
        n = 0 if self._skipped is None else int(self._skipped.item())
        if n > self._skipped_seen:
            warnings.warn(
                f"{type(self).__name__}: {n - self._skipped_seen} step(s) skipped for non-finite gradients "
                f"(parameters and state untouched); {n} in total",
                RuntimeWarning,
                stacklevel=2,
            )
            self._skipped_seen = n
        return n

    def __repr__(self) -> str:
        """``torch.optim.Optimizer``'s repr plus the optimizer-wide settings."""
        lines = super().__repr__().rstrip(")").rstrip("\n").split("\n")
        extra = [f"    {k}: {self.defaults[k]!r}" for k in _GLOBAL_KEYS if k in self.defaults]
        return "\n".join([*lines, "Settings", *extra]) + "\n)"

    def __getstate__(self) -> dict:
        """Everything needed by ``copy.deepcopy``, ``pickle`` and ``torch.save``."""
        state = super().__getstate__()
        state["_skipped"] = self._skipped
        state["_skipped_seen"] = self._skipped_seen
        return state

    def __setstate__(self, state: dict) -> None:
        """Restore from :meth:`__getstate__` (derived caches are rebuilt lazily)."""
        super().__setstate__(state)
        self.__dict__.setdefault("_skipped", None)
        self.__dict__.setdefault("_skipped_seen", 0)

    # ---- groups ----------------------------------------------------------------------------------
    def add_param_group(self, param_group: dict) -> None:
        """Add a param group (validated; optimizer-wide settings stay in ``defaults``)."""
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        for key in _GLOBAL_KEYS:
            group.pop(key, None)
        try:
            self._validate_group(group)
        except ValueError:
            self.param_groups.pop()  # an invalid group must not stay in the optimizer
            raise

    def _validate_group(self, group: Mapping) -> None:
        _check_hparams(group["lr"], group["betas"], group["eps"], group["v0"])
        _check_torch_args(type(self).__name__, group)

    def _check_groups_at_step(self) -> None:
        """Checks that schedulers could invalidate between steps (cheap, Python numbers only)."""

    def _grads(self, group: dict) -> tuple[list[Tensor], list[Tensor]]:
        ps, gs = [], []
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise ValueError(f"{type(self).__name__} does not support sparse gradients")
            ps.append(p)
            gs.append(p.grad)
        return ps, gs

    # ---- step ------------------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None):
        """One step for every param group; returns ``closure()`` if given.

        The non-finite check runs on the device before any state is touched (see the module
        docstring); with ``nonfinite="skip"`` nothing synchronises with the host.

        Args:
            closure: re-evaluates the model and returns the loss (optional).

        Returns:
            The loss returned by ``closure``, or None.

        Raises:
            ValueError: a param group became invalid (e.g. RMSProp with beta1 != 0).
            FloatingPointError: ``nonfinite="raise"`` and a gradient is not finite.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._check_groups_at_step()
        work = [(group, *self._grads(group)) for group in self.param_groups]
        found = self._found_inf([g for _, _, gs in work for g in gs])
        if found is not None and self.nonfinite == "raise":
            if bool(found):
                raise FloatingPointError(
                    f"{type(self).__name__}: non-finite gradient; step refused, state untouched"
                )
            found = None
        if found is not None:
            if self._skipped is None:
                self._skipped = torch.zeros((), dtype=torch.float32, device=found.device)
            elif self._skipped.device != found.device:
                self._skipped = self._skipped.to(found.device)
            self._skipped.add_(found)
            if _on_host(found):  # a CPU flag: reading it waits for nothing
                if bool(found):
                    return loss  # skipped: parameters and state untouched
                found = None  # a finite step: the plain update, nothing folded in
        self._step(work, found)
        return loss

    def _step(self, work: list, found: Tensor | None) -> None:  # pragma: no cover - interface
        """The update, given ``(group, params with a gradient, their gradients)`` per group."""
        raise NotImplementedError

    def _found_inf(self, grads: list[Tensor]) -> Tensor | None:
        """A float32 0-dim device tensor, 1.0 iff some gradient entry is not finite (None: no check)."""
        if self.nonfinite == "ignore" or not grads:
            return None
        buckets: dict = {}
        flags = []
        for g in grads:
            r = _real(g)
            if _overlaps(r):  # e.g. torch.ones(1).expand(2): read it, never write it
                flags.append((~torch.isfinite(r).all()).to(torch.float32))
                continue
            buckets.setdefault((r.device, r.dtype), []).append(r)
        for (dev, _), bucket in buckets.items():
            flag = torch.zeros((), dtype=torch.float32, device=dev)
            one = torch.ones((), dtype=torch.float32, device=dev)
            # GradScaler's element-wise check; multiplying by 1.0 leaves the gradients bit-identical
            torch._amp_foreach_non_finite_check_and_unscale_(bucket, flag, one)
            flags.append(flag)
        if len(flags) == 1:
            return flags[0]
        dev = flags[0].device
        return torch.stack([f.to(dev, non_blocking=True) for f in flags]).amax()

    # ---- state dicts -----------------------------------------------------------------------------
    def load_state_dict(self, state_dict: dict) -> None:
        """Load a state dict after validating all of it (nothing changes if it is refused).

        Accepts this optimizer's own state dicts and, for :class:`Adam`, ``torch.optim.Adam``'s
        (group keys it lacks, such as ``v0``, are taken from the current groups).

        Args:
            state_dict: as returned by :meth:`state_dict`.

        Raises:
            ValueError: the state dict is from another optimizer, holds an invalid hyperparameter,
                or does not match the parameters.
        """
        checked = self._checked_state_dict(state_dict)
        super().load_state_dict(checked)
        self._after_load()

    def _checked_state_dict(self, sd) -> dict:
        name = f"{type(self).__name__}.load_state_dict"
        if not isinstance(sd, Mapping) or "state" not in sd or "param_groups" not in sd:
            raise ValueError(
                f"{name}: expected a dict with 'state' and 'param_groups', got {type(sd).__name__}"
                + (f" with keys {sorted(sd)}" if isinstance(sd, Mapping) else "")
            )
        saved_groups = sd["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"{name}: the state dict has {len(saved_groups)} param groups, the optimizer "
                f"{len(self.param_groups)}"
            )
        groups = []
        for k, (cur, saved) in enumerate(zip(self.param_groups, saved_groups, strict=True)):
            if len(saved["params"]) != len(cur["params"]):
                raise ValueError(
                    f"{name}: param group {k} has {len(saved['params'])} parameters in the state "
                    f"dict and {len(cur['params'])} in the optimizer"
                )
            missing = [key for key in self._required_group_keys if key not in saved]
            if missing:
                raise ValueError(
                    f"{name}: param group {k} lacks {missing}; the state dict is from another "
                    f"optimizer (its group keys: {sorted(k2 for k2 in saved if k2 != 'params')})"
                )
            self._check_foreign_group(k, saved)
            group = dict(saved)
            for key, val in cur.items():
                group.setdefault(key, val)
            for key in _GLOBAL_KEYS:
                group.pop(key, None)
            try:
                self._validate_group(group)
            except ValueError as err:
                raise ValueError(f"{name}: param group {k}: {err}") from None
            groups.append(group)
        self._check_groups_together(groups)
        params = [p for g in self.param_groups for p in g["params"]]
        ids = [i for g in saved_groups for i in g["params"]]
        by_id = dict(zip(ids, range(len(params)), strict=True))
        for pid, st in sd["state"].items():
            if pid not in by_id:
                raise ValueError(f"{name}: state for parameter id {pid!r}, which no param group holds")
            if not isinstance(st, Mapping):
                raise ValueError(
                    f"{name}: the state of parameter {pid!r} is a {type(st).__name__}, not a dict"
                )
            self._check_param_state(name, by_id[pid], params[by_id[pid]], st)
        self._check_state_together(name, {by_id[pid]: st for pid, st in sd["state"].items()}, params)
        return {"state": sd["state"], "param_groups": groups}

    def _check_foreign_group(self, k: int, saved: Mapping) -> None:
        """Refuse group keys that only another optimizer family has."""

    def _check_groups_together(self, groups: list[dict]) -> None:
        """Checks across all groups of a state dict (e.g. shared block hyperparameters)."""

    def _check_param_state(self, name: str, index: int, p: Tensor, st: Mapping) -> None:
        keys = set(st)
        if keys and keys != self._state_keys:
            raise ValueError(
                f"{name}: the state of parameter {index} has keys {sorted(keys)}, {type(self).__name__} "
                f"keeps {sorted(self._state_keys)}; the state dict is from another optimizer"
            )
        _check_state_values(name, index, p, st)

    def _check_state_together(self, name: str, states: dict, params: list[Tensor]) -> None:
        """Checks across the per-parameter states (e.g. the block state of BlockwiseAdam)."""

    def _after_load(self) -> None:
        """Bring loaded state to the layout :meth:`step` uses (step counters as device tensors)."""
        for group in self.param_groups:
            for p in group["params"]:
                st = self.state.get(p)
                if st:
                    for key in [k for k in st if k.endswith("step")]:
                        st[key] = _step_tensor(st[key], p.device)


def _check_state_values(name: str, index: int, p: Tensor, st: Mapping) -> None:
    """Step counts are whole numbers >= 0; moments have the parameter's shape."""
    for key, val in st.items():
        if key.endswith("step"):
            try:
                v = float(val)
            except (TypeError, ValueError, RuntimeError):
                raise ValueError(f"{name}: parameter {index}: {key}={val!r} is not a step count") from None
            if not math.isfinite(v) or v < 0 or v != int(v):
                raise ValueError(f"{name}: parameter {index}: {key}={v!r} is not a step count")
        elif key in ("exp_avg", "exp_avg_sq"):
            if not isinstance(val, Tensor) or val.shape != p.shape:
                shape = tuple(val.shape) if isinstance(val, Tensor) else type(val).__name__
                raise ValueError(
                    f"{name}: parameter {index}: {key} has shape {shape}, the parameter {tuple(p.shape)}"
                )


def _step_tensor(step, device) -> Tensor:
    """A step count as a float32 0-dim tensor on ``device`` (torch.optim.Adam's fused layout)."""
    if isinstance(step, Tensor):
        return step.detach().to(device=device, dtype=torch.float32).reshape(())
    return torch.tensor(float(step), dtype=torch.float32, device=device)


def _keep_scalar(keep: Tensor | None, value: float, off: float, like: Tensor):
    """``value`` on a normal step and ``off`` on a skipped one, as a 0-dim tensor of ``like``'s dtype."""
    if keep is None:
        return value
    return torch.where(keep, torch.scalar_tensor(value, dtype=like.dtype, device=like.device), off)


def _moments_(
    ms: list[Tensor], vs: list[Tensor], gs: list[Tensor], beta1: float, beta2: float, keep: Tensor | None
) -> None:
    r""":math:`m\leftarrow\beta_1m+(1-\beta_1)g` (``lerp``), :math:`v\leftarrow\beta_2v+(1-\beta_2)g^2`.

    With ``keep`` (a bool device tensor, False on a skipped step) the weights become
    :math:`(0, 1)` on a skipped step, so that :math:`m, v` stay bit-identical (``gs`` must then be
    finite: non-finite entries replaced by 0).
    """
    if keep is None:
        torch._foreach_lerp_(ms, gs, 1.0 - beta1)
        torch._foreach_mul_(vs, beta2)
    else:
        w = _keep_scalar(keep, 1.0 - beta1, 0.0, ms[0])
        torch._foreach_lerp_(ms, gs, [w] * len(ms))
        torch._foreach_mul_(vs, _keep_scalar(keep, beta2, 1.0, vs[0]))
    torch._foreach_addcmul_(vs, gs, gs, value=1.0 - beta2)


#: devices whose found-inf flag is read on the host (no synchronisation: the value is in host memory)
_HOST_FLAG_DEVICES = ("cpu",)


def _on_host(flag: Tensor) -> bool:
    """Whether the found-inf flag is read on the host (a CPU flag, outside ``torch.compile``)."""
    return flag.device.type in _HOST_FLAG_DEVICES and not torch.compiler.is_compiling()


def _overlaps(t: Tensor) -> bool:
    """Whether elements of ``t`` share memory (a stride-0 expand): it must not be written in place."""
    if torch.compiler.is_compiling():  # not traceable; gradients that autograd makes never overlap
        return False
    return torch._debug_has_internal_overlap(t) != 0


def _dense(t: Tensor) -> bool:
    """Whether ``t`` is non-overlapping and dense (a permutation of a contiguous layout)."""
    expected = 1
    for stride, size in sorted((st, sz) for st, sz in zip(t.stride(), t.shape, strict=True) if sz != 1):
        if stride != expected:
            return False
        expected *= size
    return True


def _same_layout(p: Tensor, g: Tensor) -> bool:
    """The fast-path rule of torch's fused kernels: the gradient has the parameter's strides, both dense.

    Strides of dimensions of size 1 are not compared (no element is ever reached through them).
    """
    if g.shape != p.shape or not _dense(p):
        return False
    return all(a == b for a, b, n in zip(g.stride(), p.stride(), p.shape, strict=True) if n > 1)


def _finite_or_zero(gs: list[Tensor], keep: Tensor | None) -> list[Tensor]:
    """The gradients, zeroed in place on a skipped step (``keep`` False): the update becomes exactly 0.

    No copy: ``masked_fill_`` with the 0-dim device mask ``~keep`` writes zeros only on a skipped
    step (whose gradients are not finite anyway). A gradient that overlaps itself cannot be
    written; it is read through a ``torch.where`` instead.
    """
    if keep is None:
        return gs
    skip = ~keep
    return [torch.where(keep, g, 0.0) if _overlaps(g) else g.masked_fill_(skip, 0.0) for g in gs]


def _corrections(steps: list[Tensor], beta: float) -> list[Tensor]:
    r""":math:`1-\beta^t` per step tensor, in float64 (float32 where the device has no float64)."""
    out = []
    for t in steps:
        dt = torch.float32 if t.device.type == "mps" else torch.float64
        out.append(1.0 - beta ** t.to(dt).clamp_min(1.0))
    return out


def _scale_denominator_(ds: list[Tensor], lr, c1s: list[Tensor] | None, keep: Tensor | None) -> float:
    r"""Fold :math:`\eta/c_1` and the skip flag into the denominators; return the ``addcdiv`` value.

    Without bias correction and with a float ``lr`` the update stays one ``addcdiv`` with
    ``value=-lr`` (the operations of the functional forms). Otherwise :math:`D` is divided by the
    tensor :math:`\eta/c_1` (as ``torch.optim.Adam(capturable=True)`` does) and the value is -1, so
    no step count or learning rate is read on the host. On a skipped step (``keep`` False)
    :math:`D` becomes :math:`+\infty`, so the parameters do not move.
    """
    if c1s is None and not isinstance(lr, Tensor):
        if keep is not None:
            torch._foreach_div_(ds, [keep.to(ds[0].dtype)] * len(ds))
        return -lr
    sizes = []
    for i, d in enumerate(ds):
        s = lr.to(d.device) if isinstance(lr, Tensor) else lr
        if c1s is not None:
            s = s / c1s[i]
        if keep is not None:
            s = s * keep
        sizes.append(s)
    torch._foreach_div_(ds, sizes)
    return -1.0


def _update_(
    xs: list[Tensor], ms: list[Tensor], ds: list[Tensor], lr, c1s: list[Tensor] | None, keep: Tensor | None
) -> None:
    r"""Apply :math:`x\leftarrow x-(\eta/c_1)\,m/D` (nothing on a skipped step); ``ds`` is consumed."""
    value = _scale_denominator_(ds, lr, c1s, keep)
    torch._foreach_addcdiv_(xs, ms, ds, value=value)


_FUSED_DEVICES = ("cpu", "cuda", "mps", "xpu")
_FUSED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _adam_defaults(lr, betas, eps, v0, bias_correction, eps_inside_sqrt, torch_kw: dict) -> dict:
    _check_hparams(lr, betas, eps, v0)
    return dict(
        lr=lr,
        betas=tuple(betas),
        eps=eps,
        weight_decay=torch_kw["weight_decay"],
        amsgrad=torch_kw["amsgrad"],
        maximize=torch_kw["maximize"],
        foreach=torch_kw["foreach"],
        capturable=torch_kw["capturable"],
        differentiable=torch_kw["differentiable"],
        fused=torch_kw["fused"],
        decoupled_weight_decay=torch_kw["decoupled_weight_decay"],
        v0=v0,
        bias_correction=bias_correction,
        eps_inside_sqrt=eps_inside_sqrt,
    )


class Adam(_Base):
    r"""Adam, Algorithm 1; by default exactly ``torch.optim.Adam`` (see the module docstring).

    .. math::

        m_t=\beta_1m_{t-1}+(1-\beta_1)g_t,\qquad v_t=\beta_2v_{t-1}+(1-\beta_2)g_t^2,\qquad
        x_t=x_{t-1}-\eta_t\,\frac{m_t/c_{1,t}}{D_t},

    coordinate-wise, :math:`m_0=0`, :math:`v_0` = ``v0``. Torch form (default):
    :math:`c_{k,t}=1-\beta_k^t`, :math:`D_t=\sqrt{v_t/c_{2,t}}+\epsilon`. Paper form
    (``paper_form=True``, Algorithm 1 as stated, RECONSTRUCTED): :math:`c_{k,t}=1`,
    :math:`D_t=\sqrt{v_t+\epsilon}`. Hyperparameters may differ between param groups. State per
    parameter, as in torch: ``step`` (float32 tensor on the parameter's device), ``exp_avg``
    (:math:`m`), ``exp_avg_sq`` (:math:`v`).

    Args:
        params: parameters or param groups.
        lr: step size :math:`\eta` (a float or a one-element tensor).
        betas: :math:`(\beta_1, \beta_2)`, each in :math:`[0, 1)`.
        eps: :math:`\epsilon\ge0`.
        weight_decay: must be 0 (accepted for ``torch.optim.Adam`` compatibility).
        amsgrad: must be False.
        v0: initial second moment :math:`v_0\ge0` (Theorem 3.5).
        paper_form: Algorithm 1's form (no bias correction, :math:`\epsilon` inside the root).
        bias_correction: override of the form's bias correction.
        eps_inside_sqrt: override of the form's :math:`\epsilon` placement.
        nonfinite: ``"skip"`` (default), ``"raise"`` or ``"ignore"``.
        foreach: accepted (the non-fused path always uses ``torch._foreach_*`` kernels).
        maximize: ascend instead of descend.
        capturable: accepted (the state always lives on the parameter's device).
        differentiable: must be False.
        fused: None (default): torch's fused kernel whenever the configuration equals torch's Adam
            and the device supports it; True: require it; False: never.
        decoupled_weight_decay: must be False.

    Raises:
        ValueError: an invalid hyperparameter, or a ``torch.optim.Adam`` argument this optimizer
            cannot honour (the message names the field and the value).
    """

    _state_keys = frozenset({"step", "exp_avg", "exp_avg_sq"})
    _required_group_keys = ("lr", "betas", "eps")

    def __init__(
        self,
        params,
        lr: float | Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        v0: float = 0.0,
        paper_form: bool = False,
        bias_correction: bool | None = None,
        eps_inside_sqrt: bool | None = None,
        nonfinite: str = "skip",
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        decoupled_weight_decay: bool = False,
    ):
        bc, ins = _resolve_form(paper_form, bias_correction, eps_inside_sqrt)
        torch_kw = dict(
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
            foreach=foreach,
            capturable=capturable,
            differentiable=differentiable,
            fused=fused,
            decoupled_weight_decay=decoupled_weight_decay,
        )
        defaults = _adam_defaults(lr, betas, eps, v0, bc, ins, torch_kw)
        _check_torch_args(type(self).__name__, defaults)
        super().__init__(params, defaults, nonfinite)

    def _validate_group(self, group: Mapping) -> None:
        super()._validate_group(group)
        if group.get("fused") and not (group["bias_correction"] and not group["eps_inside_sqrt"]):
            raise ValueError(
                f"{type(self).__name__}: fused=True needs the torch form (bias_correction=True, "
                f"eps_inside_sqrt=False), got bias_correction={group['bias_correction']}, "
                f"eps_inside_sqrt={group['eps_inside_sqrt']}"
            )

    def _check_foreign_group(self, k: int, saved: Mapping) -> None:
        if "partition" in saved or "block_step" in saved:
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: param group {k} is from a blockwise optimizer"
            )

    def _fusable(self, group: dict, ps: list[Tensor], gs: list[Tensor]) -> bool:
        """Whether the group runs torch's fused kernel.

        Only when every gradient has its parameter's strides (torch's fast-path rule: the fused
        kernel walks parameter and gradient memory in the same order); any other layout, such as
        ``g.t().contiguous().t()`` or a stride-0 ``expand``, takes the ``foreach`` path, even with
        ``fused=True``, so that every layout gives ``torch.optim.Adam``'s numbers.
        """
        if group["fused"] is False or not group["bias_correction"] or group["eps_inside_sqrt"]:
            return False
        ok = all(p.device.type in _FUSED_DEVICES and p.dtype in _FUSED_DTYPES for p in ps)
        if group["fused"] and not ok:
            raise ValueError(
                f"{type(self).__name__}: fused=True needs real floating parameters on one of {_FUSED_DEVICES}"
            )
        return ok and all(_same_layout(p, g) for p, g in zip(ps, gs, strict=True))

    def _step(self, work, found) -> None:
        """One step of Algorithm 1 for every param group."""
        keep = None if found is None else found == 0
        for group, ps, gs in work:
            if not ps:
                continue
            steps, ms, vs = [], [], []
            for p in ps:
                st = self.state[p]
                if not st:
                    st["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
                    st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    st["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    if group["v0"]:
                        _real(st["exp_avg_sq"]).fill_(group["v0"])
                for key in ("exp_avg", "exp_avg_sq"):  # state follows the parameter's dtype
                    if st[key].dtype != p.dtype or st[key].device != p.device:
                        st[key] = st[key].to(device=p.device, dtype=p.dtype)
                steps.append(st["step"])
                ms.append(st["exp_avg"])
                vs.append(st["exp_avg_sq"])
            if self._fusable(group, ps, gs):
                self._fused(group, ps, gs, ms, vs, steps, found)
            else:
                rp, rg = [_real(p) for p in ps], [_real(g) for g in gs]
                self._foreach(group, rp, rg, [_real(m) for m in ms], [_real(v) for v in vs], steps, keep)

    @staticmethod
    def _fused(group, ps, gs, ms, vs, steps, found) -> None:
        """``torch._fused_adam_`` per (device, dtype), with the found-inf flag (torch's fused path)."""
        beta1, beta2 = group["betas"]
        buckets: dict = {}
        for i, p in enumerate(ps):
            buckets.setdefault((p.device, p.dtype), []).append(i)
        for (dev, _), idx in buckets.items():
            b_steps = [steps[i] for i in idx]
            f = None if found is None else found.to(dev, non_blocking=True)
            lr = group["lr"].to(dev) if isinstance(group["lr"], Tensor) else group["lr"]
            torch._foreach_add_(b_steps, 1)
            torch._fused_adam_(
                [ps[i] for i in idx],
                [gs[i] for i in idx],
                [ms[i] for i in idx],
                [vs[i] for i in idx],
                [],
                b_steps,
                amsgrad=False,
                lr=lr,
                beta1=beta1,
                beta2=beta2,
                weight_decay=0.0,
                eps=group["eps"],
                maximize=group["maximize"],
                grad_scale=None,
                found_inf=f,
            )
            if f is not None:
                torch._foreach_sub_(b_steps, [f] * len(b_steps))

    @staticmethod
    def _foreach(group, ps, gs, ms, vs, steps, keep) -> None:
        """The ``torch._foreach_*`` path (paper form, complex parameters, ``fused=False``)."""
        beta1, beta2 = group["betas"]
        if group["maximize"]:
            gs = torch._foreach_neg(gs)
        gs = _finite_or_zero(gs, keep)
        if keep is None:
            torch._foreach_add_(steps, 1)
        else:
            torch._foreach_add_(steps, [keep.to(torch.float32)] * len(steps))
        _moments_(ms, vs, gs, beta1, beta2, keep)
        if group["bias_correction"]:
            c1s, c2s = _corrections(steps, beta1), _corrections(steps, beta2)
        else:
            c1s = c2s = None
        ds = _denominators(vs, group["eps"], c2s, group["eps_inside_sqrt"])
        _update_(ps, ms, ds, group["lr"], c1s, keep)


class RMSProp(Adam):
    r"""RMSProp: Adam (Algorithm 1) with :math:`\beta_1=0`, the optimizer of Theorem 3.5.

    .. math::

        v_t=\beta_2v_{t-1}+(1-\beta_2)g_t^2,\qquad x_t=x_{t-1}-\eta_t\,\frac{g_t}{D_t}

    (forms as in :class:`Adam`; torch form by default). :math:`\beta_1=0` is checked when a group
    is added, when a state dict is loaded and at every step (a scheduler may change ``betas``).

    Args:
        params: parameters or param groups.
        lr: step size :math:`\eta`.
        beta2: :math:`\beta_2\in[0,1)`.
        eps: :math:`\epsilon\ge0`.
        v0: initial second moment :math:`v_0\ge0`.
        paper_form: Algorithm 1's form (no bias correction, :math:`\epsilon` inside the root).
        bias_correction: override of the form's bias correction.
        eps_inside_sqrt: override of the form's :math:`\epsilon` placement.
        nonfinite: ``"skip"`` (default), ``"raise"`` or ``"ignore"``.
        **torch_kw: ``torch.optim.Adam`` keyword arguments, as in :class:`Adam`.

    Raises:
        ValueError: an invalid hyperparameter or :math:`\beta_1\ne0` (at construction or step).
    """

    def __init__(
        self,
        params,
        lr: float | Tensor = 1e-3,
        beta2: float = 0.999,
        eps: float = 1e-8,
        v0: float = 0.0,
        *,
        paper_form: bool = False,
        bias_correction: bool | None = None,
        eps_inside_sqrt: bool | None = None,
        nonfinite: str = "skip",
        **torch_kw,
    ):
        super().__init__(
            params,
            lr,
            (0.0, beta2),
            eps,
            v0=v0,
            paper_form=paper_form,
            bias_correction=bias_correction,
            eps_inside_sqrt=eps_inside_sqrt,
            nonfinite=nonfinite,
            **torch_kw,
        )

    def _validate_group(self, group: Mapping) -> None:
        super()._validate_group(group)
        if group["betas"][0] != 0:
            raise ValueError(f"RMSProp needs beta1 = 0, got betas={tuple(group['betas'])}")

    def _check_groups_at_step(self) -> None:
        for k, group in enumerate(self.param_groups):
            if group["betas"][0] != 0:
                raise ValueError(
                    f"RMSProp needs beta1 = 0, but param group {k} has betas={tuple(group['betas'])} "
                    "(set by a scheduler with momentum cycling, or by hand?)"
                )


class SignGD(_Base):
    r"""SignGD: :math:`x_t=x_{t-1}-\eta_t\,\mathrm{sign}(g_t)` exactly (Theorem 3.2).

    This is Adam (Algorithm 1) with :math:`\beta_1=\beta_2=\epsilon=0`, :math:`v_0=0` and the
    convention :math:`0/0:=0` (so :math:`\mathrm{sign}(0)=0`), computed directly as a sign so that
    the step is exactly :math:`\eta` per coordinate. No state. A complex parameter moves by
    :math:`\eta` in its real and imaginary parts separately (``torch.view_as_real``).

    Args:
        params: parameters or param groups.
        lr: step size :math:`\eta`.
        maximize: ascend instead of descend.
        nonfinite: ``"skip"`` (default), ``"raise"`` or ``"ignore"``.

    Raises:
        ValueError: an invalid learning rate.
    """

    def __init__(self, params, lr: float | Tensor = 1e-3, *, maximize: bool = False, nonfinite: str = "skip"):
        _check_lr(lr)
        super().__init__(params, dict(lr=lr, maximize=bool(maximize)), nonfinite)

    def _validate_group(self, group: Mapping) -> None:
        _check_lr(group["lr"])

    def _check_foreign_group(self, k: int, saved: Mapping) -> None:
        foreign = sorted(set(saved) & {"betas", "momentum", "eps", "v0"})
        if foreign:
            raise ValueError(
                f"SignGD.load_state_dict: param group {k} has {foreign}; the state dict is from "
                "another optimizer"
            )

    def _check_param_state(self, name: str, index: int, p: Tensor, st: Mapping) -> None:
        if st:
            raise ValueError(
                f"{name}: SignGD keeps no state, but the state dict has state {sorted(st)} for "
                f"parameter {index}; it is from another optimizer"
            )

    def _step(self, work, found) -> None:
        """One SignGD step for every param group."""
        keep = None if found is None else found == 0
        for group, ps, gs in work:
            if not ps:
                continue
            rp = [_real(p) for p in ps]
            signs = torch._foreach_sign(_finite_or_zero([_real(g) for g in gs], keep))
            lr = group["lr"]
            if isinstance(lr, Tensor):
                torch._foreach_mul_(signs, lr.to(rp[0].device))
                lr = 1.0
            alpha = lr if group["maximize"] else -lr
            torch._foreach_add_(rp, signs, alpha=alpha)


class _FixedAssign:
    """A partition's block ids frozen over given parameter shapes (picklable, for copies)."""

    def __init__(self, flat: Tensor, numels: list[int]):
        self.flat = flat
        self.numels = numels

    def __call__(self, params: list[Tensor]) -> list[Tensor]:
        numels = [p.numel() for p in params]
        if numels != self.numels:
            raise ValueError(f"this partition was frozen for tensors of sizes {self.numels}, got {numels}")
        return [c.reshape(p.shape) for c, p in zip(self.flat.split(numels), params, strict=True)]


class BlockwiseAdam(_Base):
    r"""Blockwise Adam, Algorithm 3 (RECONSTRUCTED), over any :class:`~adamlinf.partitions.Partition`.

    .. math::

        m_t=\beta_1m_{t-1}+(1-\beta_1)g_t,\qquad
        v_{t,b}=\beta_2v_{t-1,b}+(1-\beta_2)\frac{\|g_{t,(b)}\|_2^2}{d_b},\qquad
        x_{t,(b)}=x_{t-1,(b)}-\eta_t\frac{m_{t,(b)}/c_{1,t}}{D_{t,b}},

    forms as in :class:`Adam` (torch form by default). The partition is applied to **all**
    parameters of the optimizer, in param-group order, so blocks may span tensors and param groups.
    The default partition is ``partitions.coordinate()``, which gives exactly :class:`Adam` (with
    ``fused=False``; same floating-point operations); ``partitions.whole()`` is AdaSGD. ``lr`` and
    ``beta1`` may differ between groups; ``beta2, eps, v0, bias_correction, eps_inside_sqrt`` act
    on the shared block moments and must agree across groups (``ValueError`` otherwise). All
    parameters must share one device and dtype; the state follows them (e.g. after
    ``model.double()``). A complex parameter counts as its real view (``torch.view_as_real``).

    State: per parameter ``exp_avg`` (:math:`m`); the block moments :math:`v\in\mathbb R^B`
    (``block_exp_avg_sq``) and the step count (``block_step``, a float32 device tensor) live in the
    state of the first parameter, so ``state_dict``/``load_state_dict`` work unchanged.

    Speed: the partition is analysed once. A tensor whose block ids are equal-length contiguous
    runs (coordinate, rows, heads, tensor, whole) is reduced with ``view(n, -1).sum(1)`` and updated
    with a broadcast ``(n, 1)`` denominator, without gathers; other tensors use a local
    ``index_add``/gather. Internally the block statistic is the root mean square
    :math:`r_b=\|g_{(b)}\|_2/\sqrt{d_b}` and :math:`v_b\leftarrow\beta_2v_b+(1-\beta_2)r_b^2` is one
    ``addcmul`` (equal to Algorithm 3 up to rounding; for one-coordinate blocks :math:`r_b=g_i`).

    Args:
        params: parameters or param groups.
        lr: step size :math:`\eta`.
        betas: :math:`(\beta_1, \beta_2)`.
        eps: :math:`\epsilon\ge0`.
        weight_decay: must be 0 (accepted for ``torch.optim.Adam`` compatibility).
        amsgrad: must be False.
        partition: a :class:`~adamlinf.partitions.Partition` or ``"coordinate" | "rows" | "tensor" |
            "whole"``; default ``"coordinate"``.
        v0: initial block second moment :math:`v_0\ge0`.
        paper_form: Algorithm 3's form (no bias correction, :math:`\epsilon` inside the root).
        bias_correction: override of the form's bias correction.
        eps_inside_sqrt: override of the form's :math:`\epsilon` placement.
        nonfinite: ``"skip"`` (default), ``"raise"`` or ``"ignore"``.
        foreach: accepted (always ``torch._foreach_*``).
        maximize: ascend instead of descend.
        capturable: accepted (the state always lives on the parameters' device).
        differentiable: must be False.
        fused: None or False (there is no fused kernel for blocks).
        decoupled_weight_decay: must be False.

    Raises:
        ValueError: an invalid hyperparameter, partition, or parameter list.
    """

    _state_keys = frozenset({"exp_avg"})
    _block_keys = frozenset({"block_step", "block_exp_avg_sq"})
    _required_group_keys = ("lr", "betas", "eps")

    def __init__(
        self,
        params,
        lr: float | Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        partition: Partition | str | None = None,
        v0: float = 0.0,
        paper_form: bool = False,
        bias_correction: bool | None = None,
        eps_inside_sqrt: bool | None = None,
        nonfinite: str = "skip",
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        decoupled_weight_decay: bool = False,
    ):
        bc, ins = _resolve_form(paper_form, bias_correction, eps_inside_sqrt)
        partition = _partitions.from_name("coordinate" if partition is None else partition)
        if not isinstance(partition, Partition):
            raise ValueError(f"partition must be a Partition, got {type(partition).__name__}")
        torch_kw = dict(
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
            foreach=foreach,
            capturable=capturable,
            differentiable=differentiable,
            fused=fused,
            decoupled_weight_decay=decoupled_weight_decay,
        )
        defaults = _adam_defaults(lr, betas, eps, v0, bc, ins, torch_kw)
        _check_torch_args(type(self).__name__, defaults)
        defaults["partition"] = partition
        self._plan = None
        super().__init__(params, defaults, nonfinite)
        self._plan = self._make_plan()

    @property
    def partition(self) -> Partition:
        r"""The partition :math:`\Phi` (Definition 3.8) over this optimizer's parameters."""
        return self.defaults["partition"]

    @property
    def num_blocks(self) -> int:
        """The number of blocks :math:`B` of the partition over this optimizer's parameters."""
        return self._get_plan()["B"]

    def _params(self) -> list[Tensor]:
        return [p for g in self.param_groups for p in g["params"]]

    # ---- copies ----------------------------------------------------------------------------------
    def __getstate__(self) -> dict:
        """As :meth:`_Base.__getstate__`, the partition frozen to its block ids (always picklable)."""
        state = super().__getstate__()
        params = self._params()
        flat = torch.cat([i.reshape(-1) for i in self.partition.index([_real(p) for p in params])])
        frozen = Partition(_FixedAssign(flat.cpu(), [_real(p).numel() for p in params]), self.partition.name)
        state["defaults"] = {**state["defaults"], "partition": frozen}
        state.pop("_plan", None)
        return state

    def __setstate__(self, state: dict) -> None:
        """Restore; the plan is rebuilt at the next step."""
        super().__setstate__(state)
        self._plan = None

    # ---- validation ------------------------------------------------------------------------------
    def add_param_group(self, param_group: dict) -> None:
        """Add a param group (only before the first step: the blocks would change)."""
        if getattr(self, "_plan", None) is not None and self.state:
            raise ValueError(
                "cannot add a param group to a BlockwiseAdam that has already stepped: "
                "the blocks would change"
            )
        super().add_param_group(param_group)
        if getattr(self, "_plan", None) is not None:
            self._plan = self._make_plan()

    def _validate_group(self, group: Mapping) -> None:
        super()._validate_group(group)
        if group.get("fused"):
            raise ValueError(
                f"{type(self).__name__}: fused=True is not available (no fused blockwise kernel)"
            )

    def _shared_hparams(self, groups: list | None = None) -> tuple:
        groups = self.param_groups if groups is None else groups
        g0 = groups[0]
        ref = (g0["betas"][1], g0["eps"], g0["v0"], g0["bias_correction"], g0["eps_inside_sqrt"])
        for k, g in enumerate(groups[1:], 1):
            got = (g["betas"][1], g["eps"], g["v0"], g["bias_correction"], g["eps_inside_sqrt"])
            if got != ref:
                raise ValueError(
                    f"{type(self).__name__}: param group {k} has (beta2, eps, v0, bias_correction, "
                    f"eps_inside_sqrt) = {got} but group 0 has {ref}; these act on the shared "
                    "block moments and must agree"
                )
        return ref

    def _check_groups_together(self, groups: list[dict]) -> None:
        self._shared_hparams(groups)

    def _check_param_state(self, name: str, index: int, p: Tensor, st: Mapping) -> None:
        keys = set(st)
        allowed = self._state_keys | (self._block_keys if index == 0 else frozenset())
        if keys and (not keys <= allowed or "exp_avg" not in keys):
            raise ValueError(
                f"{name}: the state of parameter {index} has keys {sorted(keys)}, "
                f"{type(self).__name__} keeps {sorted(allowed)}; the state dict is from "
                "another optimizer"
            )
        _check_state_values(name, index, p, st)

    def _check_state_together(self, name: str, states: dict, params: list[Tensor]) -> None:
        st0 = states.get(0, {})
        if any(k in st0 for k in self._block_keys) and not self._block_keys <= set(st0):
            raise ValueError(f"{name}: the first parameter's state needs both {sorted(self._block_keys)}")
        if "block_exp_avg_sq" in st0:
            v = st0["block_exp_avg_sq"]
            B = self._get_plan()["B"]
            if not isinstance(v, Tensor) or v.shape != (B,):
                got = tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__
                raise ValueError(
                    f"{name}: block_exp_avg_sq has shape {got}, the partition "
                    f"{self.partition.name!r} has {B} blocks (a different partition?)"
                )
            if not bool(torch.isfinite(v).all()) or bool((v < 0).any()):
                raise ValueError(f"{name}: block_exp_avg_sq must be finite and >= 0")
        elif states and any(states.values()):
            raise ValueError(
                f"{name}: the state has moments but no block state; it is from another optimizer"
            )

    # ---- plan ------------------------------------------------------------------------------------
    def _get_plan(self) -> dict:
        params = self._params()
        plan = self._plan
        key = (tuple(id(p) for p in params), params[0].device)
        if plan is None or plan["key"] != key:
            plan = self._plan = self._make_plan()
        return plan

    def _make_plan(self) -> dict:
        params = self._params()
        dev, dt = params[0].device, params[0].dtype
        for p in params:
            if p.device != dev or p.dtype != dt:
                raise ValueError(
                    f"{type(self).__name__}: all parameters must share one device and dtype; got "
                    f"{dev}/{dt} and {p.device}/{p.dtype}"
                )
        self._shared_hparams()
        reals = [_real(p) for p in params]
        ids = self.partition.index(reals)
        flat_all = torch.cat([i.reshape(-1) for i in ids])
        B = int(flat_all.max()) + 1
        # block sizes as float32 on the device: exact up to 2**24 (bf16 would store 257 as 256)
        sizes = torch.bincount(flat_all, minlength=B).to(device=dev, dtype=torch.float32)
        entries, cat_ids = [], []
        for p, i in zip(reals, ids, strict=True):
            flat = i.reshape(-1)
            numel = flat.numel()
            e: dict = {}
            if numel and p.is_contiguous():
                n = int((flat[1:] != flat[:-1]).sum()) + 1
                if numel % n == 0:
                    mat = flat.view(n, numel // n)
                    if bool((mat == mat[:, :1]).all()):
                        e = dict(kind="seg", n=n, seg=numel // n, blocks=mat[:, 0].clone())
            if not e:
                uniq, inv = torch.unique(flat, return_inverse=True)
                e = dict(kind="gather", n=uniq.numel(), blocks=uniq, inv=inv.to(dev))
            b = e["blocks"]
            lo = int(b[0]) if b.numel() else 0
            if b.numel() and torch.equal(b, torch.arange(lo, lo + b.numel())):
                e["sel"] = slice(lo, lo + b.numel())
            else:
                e["sel"] = b.to(dev)
            cat_ids.append(b)
            entries.append(e)
        cat = torch.cat(cat_ids)
        identity = cat.numel() == B and torch.equal(cat, torch.arange(B))
        return dict(
            key=(tuple(id(p) for p in params), dev),
            B=B,
            sizes=sizes,
            entries=entries,
            identity=identity,
            cat_ids=cat.to(dev),
            index={id(p): k for k, p in enumerate(params)},
        )

    # ---- step ------------------------------------------------------------------------------------
    def _block_rms(self, plan: dict, grads: dict) -> Tensor:
        r"""``(B,)`` block root-mean-squares :math:`r_b=\|g_{(b)}\|_2/\sqrt{d_b}` (missing grads count as 0).

        When every block lies inside one tensor (``identity`` plan: coordinate, rows, heads,
        tensor), blocks of one coordinate use :math:`r_b=g_i` itself (so that
        :math:`(1-\beta_2)r_b^2` is computed by the very operation Adam uses); otherwise the block
        sums of :math:`g^2` are gathered with ``index_add`` over the tensors.
        """
        pieces = self._rms_pieces(plan, grads)
        cat = torch.cat(pieces)
        if plan["identity"]:
            return cat
        sums = torch.zeros(plan["B"], device=cat.device, dtype=cat.dtype).index_add_(0, plan["cat_ids"], cat)
        return sums.div_(plan["sizes"]).sqrt_()

    def _rms_pieces(self, plan: dict, grads: dict) -> list[Tensor]:
        """Per tensor: its blocks' root-mean-squares (``identity`` plan) or sums of squares (else)."""
        ident = plan["identity"]
        ref = next(iter(grads.values()))
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
                sq = g.reshape(e["n"], e["seg"])
                # one block per tensor (AdaSGD, the tensor partition): a dot product, no g*g copy
                sq = torch.dot(sq[0], sq[0]).view(1) if e["n"] == 1 else (sq * sq).sum(1)
            else:
                sq = g.reshape(-1)
                sq = torch.zeros(e["n"], device=g.device, dtype=g.dtype).index_add_(0, e["inv"], sq * sq)
            if ident:
                sq = sq.div_(e["seg"] if e["kind"] == "seg" else plan["sizes"][e["sel"]]).sqrt_()
            pieces.append(sq)
        return pieces

    def _step(self, work, found) -> None:
        """One step of Algorithm 3 over all param groups."""
        plan = self._get_plan()
        beta2, eps, v0, bias_correction, eps_inside_sqrt = self._shared_hparams()
        keep = None if found is None else found == 0
        real_work = []
        for group, ps, gs in work:
            gs = [_real(g) for g in gs]
            if group["maximize"]:
                gs = torch._foreach_neg(gs) if gs else gs
            real_work.append((group, ps, [_real(p) for p in ps], _finite_or_zero(gs, keep)))
        grads = {plan["index"][id(p)]: g for _, ps, _, gs in real_work for p, g in zip(ps, gs, strict=True)}
        if not grads:  # no gradients at all: nothing to do (state untouched)
            return
        # blocks that lie in consecutive slices of the state (coordinate, rows, heads, tensor): the
        # second moment is updated slice by slice in place, without gathering the statistics first
        sliced = plan["identity"] and all(isinstance(e["sel"], slice) for e in plan["entries"])
        if sliced:
            pieces = self._rms_pieces(plan, grads)
            rms = pieces[0]
        else:
            rms = self._block_rms(plan, grads)
        first = self._params()[0]
        st0 = self.state[first]
        if "block_exp_avg_sq" not in st0:
            st0["block_step"] = torch.zeros((), dtype=torch.float32, device=rms.device)
            st0["block_exp_avg_sq"] = torch.full((plan["B"],), float(v0), device=rms.device, dtype=rms.dtype)
        v = st0["block_exp_avg_sq"]
        if v.dtype != rms.dtype or v.device != rms.device:  # the state follows the parameters
            v = st0["block_exp_avg_sq"] = v.to(device=rms.device, dtype=rms.dtype)
        if not isinstance(st0["block_step"], Tensor) or st0["block_step"].device != rms.device:
            st0["block_step"] = _step_tensor(st0["block_step"], rms.device)
        for _, ps, _, _ in real_work:
            for p in ps:
                st = self.state[p]
                if "exp_avg" not in st:
                    st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                elif st["exp_avg"].dtype != p.dtype or st["exp_avg"].device != p.device:
                    st["exp_avg"] = st["exp_avg"].to(device=p.device, dtype=p.dtype)
        t = st0["block_step"]
        t.add_(1 if keep is None else keep.to(torch.float32))

        parts = (
            [(v[e["sel"]], r) for e, r in zip(plan["entries"], pieces, strict=True)] if sliced else [(v, rms)]
        )
        decay = beta2 if keep is None else _keep_scalar(keep, beta2, 1.0, v)
        for vv, r in parts:
            if keep is None:
                _second_moment_(vv, r, beta2)
            else:
                vv.mul_(decay).addcmul_(r, r, value=1.0 - beta2)
        c2s = _corrections([t], beta2) if bias_correction else None
        (denom_b,) = _denominators([v], eps, c2s, eps_inside_sqrt)

        last = max((i for i, (_, ps, _, _) in enumerate(real_work) if ps), default=-1)
        for i, (group, ps, rps, gs) in enumerate(real_work):
            if not ps:
                continue
            beta1 = group["betas"][0]
            ms = [_real(self.state[p]["exp_avg"]) for p in ps]
            if keep is None:
                torch._foreach_lerp_(ms, gs, 1.0 - beta1)
            else:
                torch._foreach_lerp_(ms, gs, [_keep_scalar(keep, 1.0 - beta1, 0.0, ms[0])] * len(ms))
            c1s = _corrections([t], beta1) if bias_correction else None
            lr = group["lr"]
            scaled = c1s is not None or isinstance(lr, Tensor) or keep is not None
            d_group = [denom_b.clone() if scaled and i != last else denom_b]  # the last group may consume it
            value = _scale_denominator_(d_group, lr, c1s, keep)
            d_group = d_group[0]
            xs, mv, ds = [], [], []
            for p, x, m in zip(ps, rps, ms, strict=True):
                e = plan["entries"][plan["index"][id(p)]]
                d = d_group[e["sel"]]
                if e["kind"] == "seg":
                    xs.append(x.view(e["n"], e["seg"]))
                    mv.append(m.view(e["n"], e["seg"]))
                    ds.append(d.view(e["n"], 1))
                else:
                    xs.append(x)
                    mv.append(m)
                    ds.append(d[e["inv"]].view_as(x))
            torch._foreach_addcdiv_(xs, mv, ds, value=value)


class AdaSGD(BlockwiseAdam):
    r"""AdaSGD, Algorithm 2 (Wang & Wiens 2020 form): one scalar second moment for all parameters.

    .. math::

        m_t=\beta_1m_{t-1}+(1-\beta_1)g_t,\qquad v_t=\beta_2v_{t-1}+(1-\beta_2)\|g_t\|_2^2/d,\qquad
        x_t=x_{t-1}-\eta_t\,\frac{m_t/c_{1,t}}{D_t},

    where :math:`g_t` is the gradient over **all** parameters of the optimizer (every tensor of every
    param group, :math:`d` their total size) and the forms are as in :class:`Adam` (torch form by
    default). This is :class:`BlockwiseAdam` with ``partitions.whole()``; the scalar :math:`v` is
    ``state[first_param]["block_exp_avg_sq"]``. It is rotation-equivariant (Theorem 2.2).

    Args:
        params: parameters or param groups.
        lr: step size :math:`\eta`.
        betas: :math:`(\beta_1, \beta_2)`.
        eps: :math:`\epsilon\ge0`.
        weight_decay: must be 0.
        amsgrad: must be False.
        v0: initial second moment :math:`v_0\ge0`.
        paper_form: Algorithm 2's form (no bias correction, :math:`\epsilon` inside the root).
        bias_correction: override of the form's bias correction.
        eps_inside_sqrt: override of the form's :math:`\epsilon` placement.
        nonfinite: ``"skip"`` (default), ``"raise"`` or ``"ignore"``.
        **torch_kw: ``torch.optim.Adam`` keyword arguments, as in :class:`BlockwiseAdam`.
    """

    def __init__(
        self,
        params,
        lr: float | Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        v0: float = 0.0,
        paper_form: bool = False,
        bias_correction: bool | None = None,
        eps_inside_sqrt: bool | None = None,
        nonfinite: str = "skip",
        **torch_kw,
    ):
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad,
            partition=_partitions.whole(),
            v0=v0,
            paper_form=paper_form,
            bias_correction=bias_correction,
            eps_inside_sqrt=eps_inside_sqrt,
            nonfinite=nonfinite,
            **torch_kw,
        )


# =============================================================================================
# factory
# =============================================================================================
_NAMES = ("adam", "adasgd", "sgd", "signgd", "rmsprop", "blockwise_adam")


def create(
    name: str,
    params,
    *,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    momentum: float = 0.9,
    partition: Partition | str | None = None,
    paper_form: bool | None = None,
    torch_form: bool | None = None,
    v0: float = 0.0,
    nonfinite: str = "skip",
) -> Optimizer:
    r"""Build an optimizer by name, with the classes' defaults (torch form, betas (0.9, 0.999)).

    Args:
        name: ``"adam" | "adasgd" | "sgd" | "signgd" | "rmsprop" | "blockwise_adam"``.
        params: parameters or param groups.
        lr: step size.
        betas: :math:`(\beta_1, \beta_2)` (RMSProp uses :math:`\beta_2`; SGD ignores them).
        eps: :math:`\epsilon`.
        momentum: SGD's momentum (``"sgd"`` is ``torch.optim.SGD(lr, momentum)``).
        partition: for ``"blockwise_adam"``: a Partition or ``"coordinate" | "rows" | "tensor" |
            "whole"`` (default ``"coordinate"``, i.e. Adam).
        paper_form: the paper's form (no bias correction, eps inside the root); default False.
        torch_form: the same switch seen from the other side (``torch_form=False`` is
            ``paper_form=True``), for configurations that carry it.
        v0: initial second moment.
        nonfinite: the non-finite gradient policy.

    Returns:
        The optimizer.

    Raises:
        ValueError: an unknown name, or ``paper_form`` and ``torch_form`` that disagree.
    """
    if torch_form is not None and paper_form is not None and bool(torch_form) == bool(paper_form):
        raise ValueError(f"paper_form={paper_form} and torch_form={torch_form} disagree; give one of them")
    form = bool(paper_form) if paper_form is not None else (torch_form is not None and not torch_form)
    kw = dict(v0=v0, paper_form=form, nonfinite=nonfinite)
    if name == "adam":
        return Adam(params, lr, betas, eps, **kw)
    if name == "adasgd":
        return AdaSGD(params, lr, betas, eps, **kw)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum)
    if name == "signgd":
        return SignGD(params, lr, nonfinite=nonfinite)
    if name == "rmsprop":
        return RMSProp(params, lr, betas[1], eps, **kw)
    if name == "blockwise_adam":
        return BlockwiseAdam(params, lr, betas, eps, partition=partition, **kw)
    raise ValueError(f"unknown optimizer {name!r}; choose from {_NAMES}")
