r"""The optimizers of the paper: Adam (Algorithm 1), RMSProp, SignGD, AdaSGD (Algorithm 2) and
blockwise Adam (Algorithm 3), as ``torch.optim.Optimizer`` subclasses and as functional updates.

Notation (PAPER_MATH.md Section 1, RECONSTRUCTED): gradient :math:`g_t`, step size :math:`\eta_t`,
:math:`\beta_1,\beta_2\in[0,1)`, :math:`\epsilon\ge0`, initial second moment :math:`v_0\ge0`,
:math:`m_0=0`. With a partition :math:`\Phi:[d]\to[B]` (Definition 3.8,
:mod:`adamlinf.partitions`) Algorithm 3 reads

.. math::

    m_t &= \beta_1 m_{t-1} + (1-\beta_1) g_t, \\
    v_{t,b} &= \beta_2 v_{t-1,b} + (1-\beta_2)\,\|g_{t,(b)}\|_2^2/d_b, \\
    x_{t,(b)} &= x_{t-1,(b)} - \eta_t\, m_{t,(b)} / \sqrt{v_{t,b}+\epsilon}.

Adam (Algorithm 1) is the coordinate partition (:math:`d_b=1`), AdaSGD (Algorithm 2) the one-block
partition, RMSProp is Adam with :math:`\beta_1=0`, SignGD Adam with :math:`\beta_1=\beta_2=\epsilon=0`.

Two options cover the forms in use (the paper's theory vs. its experiments, which ran
``torch.optim.AdamW``):

* ``bias_correction``: divide :math:`m_t` by :math:`1-\beta_1^t` and :math:`v_t` by
  :math:`1-\beta_2^t` (off in Algorithm 1, whose :math:`v_0` is a free hyperparameter);
* ``eps_inside_sqrt``: :math:`m/\sqrt{\hat v+\epsilon}` (Algorithm 1, RECONSTRUCTED placement)
  or :math:`m/(\sqrt{\hat v}+\epsilon)` (PyTorch).

With ``bias_correction=True, eps_inside_sqrt=False, v0=0`` :class:`Adam` is ``torch.optim.Adam``
(weight decay 0) with the same floating-point operations in the same order (bit-identical on the
``foreach`` path). Implementation detail shared by every optimizer here, with
:math:`c_k=1-\beta_k^t`: the update is :math:`x \leftarrow x - (\eta/c_1)\, m / D` with
:math:`D=\sqrt v/\sqrt{c_2}+\epsilon` (eps outside, PyTorch's order of operations) or
:math:`D=\sqrt{v/c_2+\epsilon}` (eps inside); without bias correction :math:`c_1=c_2=1` and the
divisions are skipped.

Shared conventions
------------------
* **Zero denominator.** When :math:`\epsilon=0` a coordinate (block) whose denominator is exactly 0
  (all its gradients so far were 0 and :math:`v_0=0`) is not moved (its update is defined as 0,
  instead of 0/0 = NaN).
* **Non-finite gradients** (``nonfinite=`` argument): before any state is touched, the optimizer
  checks that every gradient is finite, through the 2-norm of each gradient tensor (one
  ``torch._foreach_norm`` pass; a gradient whose norm overflows also counts as non-finite).
  ``"skip"`` (default): the **whole step is skipped** (all param groups; parameters, moments and
  step counters untouched), a ``RuntimeWarning`` is issued and ``optimizer.skipped_steps`` is
  incremented. ``"raise"``: ``FloatingPointError``, state untouched. ``"ignore"``: no check (like
  ``torch.optim.Adam``; saves the one host synchronisation per step the check costs on CUDA).
* ``p.grad is None``: :class:`Adam` skips the parameter (as PyTorch does). The block methods
  count it as a zero gradient in the block statistics and do not move it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

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


# =============================================================================================
# the shared maths (used by the classes and by the functional forms)
# =============================================================================================
def _bias_corrections(step: int, beta1: float, beta2: float, bias_correction: bool) -> tuple[float, float]:
    """:math:`(c_1, c_2) = (1-\\beta_1^t, 1-\\beta_2^t)`, or (1, 1) without bias correction."""
    if not bias_correction:
        return 1.0, 1.0
    return 1.0 - beta1**step, 1.0 - beta2**step


def _step_size(lr, c1: float):
    r""":math:`\eta/c_1` (exactly ``lr`` without bias correction)."""
    return lr if c1 == 1.0 else lr / c1


def _denominators(vs: list[Tensor], eps: float, c2s: Sequence[float], eps_inside_sqrt: bool) -> list[Tensor]:
    r"""New tensors :math:`D=\sqrt{v/c_2+\epsilon}` (eps inside) or :math:`\sqrt v/\sqrt{c_2}+\epsilon`.

    The latter in ``torch.optim.Adam``'s order of operations (sqrt, divide by
    ``c2 ** 0.5``, add eps), so that the torch form is bit-identical to it. The update is
    :math:`m\,(\eta/c_1)/D`. Where :math:`\epsilon=0` and :math:`D=0` the denominator is set
    to :math:`+\infty` so that the coordinate does not move.
    """
    corrected = any(c != 1.0 for c in c2s)
    if eps_inside_sqrt:
        ds = torch._foreach_div(vs, list(c2s)) if corrected else [v.clone() for v in vs]
        if eps:
            torch._foreach_add_(ds, eps)
        torch._foreach_sqrt_(ds)
    else:
        ds = torch._foreach_sqrt(vs)
        if corrected:
            torch._foreach_div_(ds, [c ** 0.5 for c in c2s])
        if eps:
            torch._foreach_add_(ds, eps)
    if not eps:
        for d in ds:
            d.masked_fill_(d == 0, math.inf)
    return ds


def _second_moment_(v: Tensor, rms: Tensor, beta2: float) -> Tensor:
    r""":math:`v\leftarrow\beta_2 v+(1-\beta_2)r^2` with ``rms`` :math:`r=\|g_{(b)}\|_2/\sqrt{d_b}` (:math:`=g` for Adam).

    One ``addcmul``, the operation Adam uses, so that a block of one coordinate reproduces Adam
    bit for bit.
    """
    return v.mul_(beta2).addcmul_(rms, rms, value=1.0 - beta2)


def _check_lr(lr) -> None:
    if isinstance(lr, Tensor):
        if lr.numel() != 1:
            raise ValueError("a tensor lr must have exactly one element")
        lr = float(lr)
    if not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr < 0:
        raise ValueError(f"Invalid learning rate lr={lr!r}: must be a finite number >= 0")


def _check_hparams(lr, betas, eps, v0) -> None:
    _check_lr(lr)
    try:
        b1, b2 = betas
    except (TypeError, ValueError):
        raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}") from None
    for name, b in (("beta1", b1), ("beta2", b2)):
        if not isinstance(b, (int, float)) or not 0.0 <= b < 1.0:
            raise ValueError(f"Invalid {name}={b!r}: must be in [0, 1)")
    if not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps < 0:
        raise ValueError(f"Invalid eps={eps!r}: must be a finite number >= 0")
    if not isinstance(v0, (int, float)) or not math.isfinite(v0) or v0 < 0:
        raise ValueError(f"Invalid v0={v0!r}: the initial second moment must be a finite number >= 0")


def _lr_float(lr) -> float:
    return float(lr) if isinstance(lr, Tensor) else lr


def _apply_update_(x: Tensor, m: Tensor, denom: Tensor, step_size) -> Tensor:
    r""":math:`x\leftarrow x-\text{step\_size}\cdot m/D`; ``step_size`` a float or a broadcastable tensor."""
    if isinstance(step_size, Tensor):
        return x.sub_(m / denom * step_size)
    return x.addcdiv_(m, denom, value=-step_size)


# ---------------------------------------------------------------------------------------------
# functional forms (elementwise on arbitrary same-shape tensors; batched use by the quadratic)
# ---------------------------------------------------------------------------------------------
def adam_update_(x: Tensor, g: Tensor, m: Tensor, v: Tensor, *, lr, beta1: float, beta2: float,
                 eps: float, step: int, bias_correction: bool = False, eps_inside_sqrt: bool = True) -> Tensor:
    r"""One in-place step of Adam, Algorithm 1 (RECONSTRUCTED), on same-shape tensors.

    .. math::

        m &\leftarrow \beta_1 m + (1-\beta_1) g,\qquad v \leftarrow \beta_2 v + (1-\beta_2) g^2,\\
        x &\leftarrow x - \eta\,\hat m/\sqrt{\hat v+\epsilon}\quad\text{or}\quad
        x - \eta\,\hat m/(\sqrt{\hat v}+\epsilon),

    with :math:`\hat m=m/(1-\beta_1^t)`, :math:`\hat v=v/(1-\beta_2^t)` if ``bias_correction`` else
    :math:`\hat m=m,\hat v=v`. ``step`` is :math:`t\ge1` (the index of this step). ``lr`` may be a
    float or a tensor broadcastable to ``x`` (e.g. ``(batch, 1)`` for a learning-rate grid).
    ``x, m, v`` are updated in place; ``x`` is returned. Initialise ``m = 0`` and ``v = v0``.
    The same operations (hence bit-identical results) as :class:`Adam`.
    """
    c1, c2 = _bias_corrections(step, beta1, beta2, bias_correction)
    m.lerp_(g, 1.0 - beta1)
    _second_moment_(v, g, beta2)
    (denom,) = _denominators([v], eps, [c2], eps_inside_sqrt)
    return _apply_update_(x, m, denom, _step_size(lr, c1))


def blockwise_adam_update_(x: Tensor, g: Tensor, m: Tensor, v: Tensor, index: Tensor, *, lr, beta1: float,
                           beta2: float, eps: float, step: int, bias_correction: bool = False,
                           eps_inside_sqrt: bool = True, sizes: Tensor | None = None) -> Tensor:
    r"""One in-place step of blockwise Adam, Algorithm 3, along the last dimension.

    ``x, g, m`` have shape ``(..., d)``, ``v`` shape ``(..., B)``, ``index`` is the ``(d,)`` block map
    :math:`\Phi` (``Partition.flat_index``), ``sizes`` the ``(B,)`` block sizes :math:`d_b` (computed
    if omitted). Per block :math:`v_b\leftarrow\beta_2 v_b+(1-\beta_2)\|g_{(b)}\|_2^2/d_b`, per
    coordinate :math:`m` as in Adam and :math:`x_i\leftarrow x_i-\eta\hat m_i/\sqrt{\hat v_{\Phi(i)}+\epsilon}`
    (options as in :func:`adam_update_`). Leading dimensions are a batch of independent runs.
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


def adasgd_update_(x: Tensor, g: Tensor, m: Tensor, v: Tensor, *, lr, beta1: float, beta2: float, eps: float,
                   step: int, bias_correction: bool = False, eps_inside_sqrt: bool = True) -> Tensor:
    r"""One in-place step of AdaSGD, Algorithm 2, along the last dimension.

    ``x, g, m`` shape ``(..., d)``, ``v`` shape ``(..., 1)``:
    :math:`v\leftarrow\beta_2 v+(1-\beta_2)\|g\|_2^2/d`, :math:`x\leftarrow x-\eta\hat m/\sqrt{\hat v+\epsilon}`
    (options as in :func:`adam_update_`). Leading dimensions are a batch of independent runs.
    """
    c1, c2 = _bias_corrections(step, beta1, beta2, bias_correction)
    _second_moment_(v, (g * g).mean(-1, keepdim=True).sqrt_(), beta2)
    (denom,) = _denominators([v], eps, [c2], eps_inside_sqrt)
    m.lerp_(g, 1.0 - beta1)
    return _apply_update_(x, m, denom, _step_size(lr, c1))


def signgd_update_(x: Tensor, g: Tensor, *, lr) -> Tensor:
    r"""SignGD (Adam with :math:`\beta_1=\beta_2=\epsilon=0`): :math:`x\leftarrow x-\eta\,\mathrm{sign}(g)`, exactly.

    ``sign(0) = 0``. ``lr`` a float or a broadcastable tensor.
    """
    if isinstance(lr, Tensor):
        return x.sub_(g.sign() * lr)
    return x.add_(g.sign(), alpha=-lr)


# =============================================================================================
# optimizer classes
# =============================================================================================
class _Base(Optimizer):
    """Closure handling, gradient collection, the non-finite policy and validation."""

    def __init__(self, params, defaults: dict, nonfinite: str):
        if nonfinite not in _NONFINITE:
            raise ValueError(f"nonfinite must be one of {_NONFINITE}, got {nonfinite!r}")
        self.nonfinite = nonfinite
        self.skipped_steps = 0
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict) -> None:
        super().add_param_group(param_group)
        try:
            self._validate_group(self.param_groups[-1])
        except ValueError:
            self.param_groups.pop()  # an invalid group must not stay in the optimizer
            raise

    def _validate_group(self, group: dict) -> None:
        _check_hparams(group["lr"], group["betas"], group["eps"], group["v0"])

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

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None):
        """One step for every param group (see :meth:`_step` of the class); returns ``closure()``
        if given. The non-finite policy is applied first, before any state is touched."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        work = [(group, *self._grads(group)) for group in self.param_groups]
        if not self._nonfinite(self._any_nonfinite([g for _, _, gs in work for g in gs])):
            self._step(work)
        return loss

    def _step(self, work: list[tuple[dict, list[Tensor], list[Tensor]]]) -> None:  # pragma: no cover
        """The update, given ``(group, params with a gradient, their gradients)`` per group."""
        raise NotImplementedError

    def _nonfinite(self, found: bool) -> bool:
        """Apply the non-finite policy; return True if the step must be skipped."""
        if not found:
            return False
        if self.nonfinite == "raise":
            raise FloatingPointError(f"{type(self).__name__}: non-finite gradient; step refused, state untouched")
        self.skipped_steps += 1
        warnings.warn(f"{type(self).__name__}: non-finite gradient, step skipped (state untouched)",
                      RuntimeWarning, stacklevel=3)
        return True

    def _any_nonfinite(self, grads: list[Tensor]) -> bool:
        if self.nonfinite == "ignore" or not grads:
            return False
        buckets: dict = {}
        for g in grads:
            buckets.setdefault((g.device, g.dtype), []).append(g)
        flags = [torch.isfinite(torch.stack(torch._foreach_norm(b))).all() for b in buckets.values()]
        flag = flags[0] if len(flags) == 1 else torch.stack([f.cpu() for f in flags]).all()
        return not bool(flag)


class Adam(_Base):
    r"""Adam in the paper's form, Algorithm 1 (RECONSTRUCTED; see the module docstring).

    .. math::

        m_t=\beta_1m_{t-1}+(1-\beta_1)g_t,\quad v_t=\beta_2v_{t-1}+(1-\beta_2)g_t^2,\quad
        x_t=x_{t-1}-\eta_t\,m_t/\sqrt{v_t+\epsilon},

    coordinate-wise, with :math:`m_0=0` and :math:`v_0` = ``v0`` (a free hyperparameter of the
    theory, Theorem 3.5). ``bias_correction=True, eps_inside_sqrt=False`` gives ``torch.optim.Adam``.
    Hyperparameters may differ between param groups. State per parameter: ``step`` (int),
    ``exp_avg`` (:math:`m`), ``exp_avg_sq`` (:math:`v`). Vectorised with ``torch._foreach_*``.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 v0: float = 0.0, bias_correction: bool = False, eps_inside_sqrt: bool = True, *,
                 nonfinite: str = "skip"):
        _check_hparams(lr, betas, eps, v0)
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, v0=v0, bias_correction=bool(bias_correction),
                        eps_inside_sqrt=bool(eps_inside_sqrt))
        super().__init__(params, defaults, nonfinite)

    def _step(self, work) -> None:
        """One step of Algorithm 1 for every param group."""
        for group, ps, gs in work:
            if ps:
                self._update_group(group, ps, gs)

    def _update_group(self, group: dict, ps: list[Tensor], gs: list[Tensor]) -> None:
        beta1, beta2 = group["betas"]
        ms, vs, c2s, sizes = [], [], [], []
        lr = _lr_float(group["lr"])
        for p in ps:
            st = self.state[p]
            if not st:
                st["step"] = 0
                st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                st["exp_avg_sq"] = torch.full_like(p, group["v0"], memory_format=torch.preserve_format)
            st["step"] += 1
            c1, c2 = _bias_corrections(st["step"], beta1, beta2, group["bias_correction"])
            ms.append(st["exp_avg"])
            vs.append(st["exp_avg_sq"])
            c2s.append(c2)
            sizes.append(-_step_size(lr, c1))
        torch._foreach_lerp_(ms, gs, 1.0 - beta1)
        torch._foreach_mul_(vs, beta2)
        torch._foreach_addcmul_(vs, gs, gs, value=1.0 - beta2)
        ds = _denominators(vs, group["eps"], c2s, group["eps_inside_sqrt"])
        torch._foreach_addcdiv_(ps, ms, ds, sizes)


class RMSProp(Adam):
    r"""RMSProp = Adam (Algorithm 1) with :math:`\beta_1=0`: :math:`x_t=x_{t-1}-\eta g_t/\sqrt{v_t+\epsilon}`.

    The optimizer of Theorem 3.5. Param groups may not set ``betas[0]`` other than 0.
    """

    def __init__(self, params, lr: float = 1e-3, beta2: float = 0.999, eps: float = 1e-8, v0: float = 0.0,
                 bias_correction: bool = False, eps_inside_sqrt: bool = True, *, nonfinite: str = "skip"):
        super().__init__(params, lr, (0.0, beta2), eps, v0, bias_correction, eps_inside_sqrt, nonfinite=nonfinite)

    def _validate_group(self, group: dict) -> None:
        super()._validate_group(group)
        if group["betas"][0] != 0:
            raise ValueError(f"RMSProp needs beta1 = 0, got betas={group['betas']}")


class SignGD(_Base):
    r"""SignGD: :math:`x_t=x_{t-1}-\eta_t\,\mathrm{sign}(g_t)` exactly (Theorem 3.2).

    This is Adam (Algorithm 1) with :math:`\beta_1=\beta_2=\epsilon=0`, :math:`v_0=0` and the
    convention :math:`0/0:=0` (so :math:`\mathrm{sign}(0)=0`); it is computed directly as a sign so
    that the step is exactly :math:`\eta` per coordinate. No state.
    """

    def __init__(self, params, lr: float = 1e-3, *, nonfinite: str = "skip"):
        _check_lr(lr)
        super().__init__(params, dict(lr=lr), nonfinite)

    def _validate_group(self, group: dict) -> None:
        _check_lr(group["lr"])

    def _step(self, work) -> None:
        """One SignGD step for every param group."""
        for group, ps, gs in work:
            if ps:
                torch._foreach_add_(ps, torch._foreach_sign(gs), alpha=-_lr_float(group["lr"]))


class BlockwiseAdam(_Base):
    r"""Blockwise Adam, Algorithm 3 (RECONSTRUCTED), over any :class:`~adamlinf.partitions.Partition`.

    .. math::

        m_t=\beta_1m_{t-1}+(1-\beta_1)g_t,\quad
        v_{t,b}=\beta_2v_{t-1,b}+(1-\beta_2)\frac{\|g_{t,(b)}\|_2^2}{d_b},\quad
        x_{t,(b)}=x_{t-1,(b)}-\eta_t\frac{m_{t,(b)}}{\sqrt{v_{t,b}+\epsilon}}.

    The partition is applied to **all** parameters of the optimizer, in param-group order, so
    blocks may span tensors and param groups (``partitions.whole()`` = AdaSGD, one scalar
    :math:`v`). ``partitions.coordinate()`` gives exactly :class:`Adam` (same floating-point
    operations). ``lr`` and ``beta1`` may differ between groups; ``beta2, eps, v0,
    bias_correction, eps_inside_sqrt`` act on the shared block moments and must agree across groups
    (``ValueError`` otherwise). All parameters must share one device and dtype.

    State: per parameter ``exp_avg`` (:math:`m`); the block moments :math:`v\in\mathbb R^B`
    (``block_exp_avg_sq``) and the global step count (``block_step``) live in the state of the first
    parameter, so ``state_dict``/``load_state_dict`` work unchanged.

    Speed: the partition is analysed once. A tensor whose block ids are equal-length contiguous
    runs (coordinate, rows, heads, tensor, whole) is reduced with ``view(n, -1).sum(1)`` and updated
    with a broadcast ``(n, 1)`` denominator, without gathers; other tensors use a local
    ``index_add``/gather. Internally the block statistic is the root mean square
    :math:`r_b=\|g_{(b)}\|_2/\sqrt{d_b}` and :math:`v_b\leftarrow\beta_2v_b+(1-\beta_2)r_b^2` is one
    ``addcmul`` (equal to Algorithm 3 up to rounding; for one-coordinate blocks :math:`r_b=g_i`, which
    is why the coordinate partition is bit-identical to :class:`Adam`).
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 v0: float = 0.0, partition: Partition | str | None = None, bias_correction: bool = False,
                 eps_inside_sqrt: bool = True, *, nonfinite: str = "skip"):
        _check_hparams(lr, betas, eps, v0)
        if partition is None:
            partition = _partitions.tensor()
        partition = _partitions.from_name(partition)
        if not isinstance(partition, Partition):
            raise ValueError(f"partition must be a Partition, got {type(partition).__name__}")
        self.partition = partition
        self._plan = None
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, v0=v0, bias_correction=bool(bias_correction),
                        eps_inside_sqrt=bool(eps_inside_sqrt))
        super().__init__(params, defaults, nonfinite)
        self._plan = self._make_plan()

    # ---- plan ----------------------------------------------------------------------------------
    def add_param_group(self, param_group: dict) -> None:
        if getattr(self, "_plan", None) is not None and self.state:
            raise ValueError("cannot add a param group to a BlockwiseAdam that has already stepped: "
                             "the blocks would change")
        super().add_param_group(param_group)
        if getattr(self, "_plan", None) is not None:
            self._plan = self._make_plan()

    def _shared_hparams(self) -> tuple:
        g0 = self.param_groups[0]
        ref = (g0["betas"][1], g0["eps"], g0["v0"], g0["bias_correction"], g0["eps_inside_sqrt"])
        for k, g in enumerate(self.param_groups[1:], 1):
            got = (g["betas"][1], g["eps"], g["v0"], g["bias_correction"], g["eps_inside_sqrt"])
            if got != ref:
                raise ValueError(f"{type(self).__name__}: param group {k} has (beta2, eps, v0, bias_correction, "
                                 f"eps_inside_sqrt) = {got} but group 0 has {ref}; these act on the shared "
                                 "block moments and must agree")
        return ref

    def _make_plan(self) -> dict:
        params = [p for g in self.param_groups for p in g["params"]]
        dev, dt = params[0].device, params[0].dtype
        for p in params:
            if p.device != dev or p.dtype != dt:
                raise ValueError(f"{type(self).__name__}: all parameters must share one device and dtype; got "
                                 f"{dev}/{dt} and {p.device}/{p.dtype}")
        self._shared_hparams()
        ids = self.partition.index(params)
        flat_all = torch.cat([i.reshape(-1) for i in ids])
        B = int(flat_all.max()) + 1
        sizes = torch.bincount(flat_all, minlength=B).to(device=dev, dtype=dt)
        entries, cat_ids = {}, []
        for p, i in zip(params, ids):
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
            entries[p] = e
        cat = torch.cat(cat_ids)
        identity = cat.numel() == B and torch.equal(cat, torch.arange(B))
        return dict(B=B, sizes=sizes, entries=entries, identity=identity, cat_ids=cat.to(dev), device=dev,
                    dtype=dt, first=params[0])

    @property
    def num_blocks(self) -> int:
        """The number of blocks :math:`B` of the partition over this optimizer's parameters."""
        return self._plan["B"]

    # ---- step ----------------------------------------------------------------------------------
    def _block_rms(self, plan: dict, grads: dict) -> Tensor:
        r"""``(B,)`` block root-mean-squares :math:`r_b=\|g_{(b)}\|_2/\sqrt{d_b}` (missing grads count as 0).

        When every block lies inside one tensor (``identity`` plan: coordinate, rows, heads,
        tensor), blocks of one coordinate use :math:`r_b=g_i` itself (so that
        :math:`(1-\beta_2)r_b^2` is computed by the very operation Adam uses); otherwise the block
        sums of :math:`g^2` are gathered with ``index_add`` over the tensors.
        """
        params = [p for g in self.param_groups for p in g["params"]]
        ident = plan["identity"]
        pieces = []
        for p in params:
            e = plan["entries"][p]
            g = grads.get(p)
            if g is None:
                pieces.append(torch.zeros(e["n"], device=plan["device"], dtype=plan["dtype"]))
                continue
            if e["kind"] == "seg":
                if ident and e["seg"] == 1:
                    pieces.append(g.reshape(e["n"]))
                    continue
                sq = g.reshape(e["n"], e["seg"])
                sq = (sq * sq).sum(1)
            else:
                sq = g.reshape(-1)
                sq = torch.zeros(e["n"], device=g.device, dtype=g.dtype).index_add_(0, e["inv"], sq * sq)
            if ident:
                sq = sq.div_(e["seg"] if e["kind"] == "seg" else plan["sizes"][e["sel"]]).sqrt_()
            pieces.append(sq)
        cat = torch.cat(pieces)
        if ident:
            return cat
        sums = torch.zeros(plan["B"], device=cat.device, dtype=cat.dtype).index_add_(0, plan["cat_ids"], cat)
        return sums.div_(plan["sizes"]).sqrt_()

    def _step(self, work) -> None:
        """One step of Algorithm 3 over all param groups."""
        plan = self._plan
        beta2, eps, v0, bias_correction, eps_inside_sqrt = self._shared_hparams()
        all_ps = [p for _, ps, _ in work for p in ps]
        all_gs = [g for _, _, gs in work for g in gs]
        if not all_ps:  # no gradients at all: nothing to do (state untouched)
            return
        rms = self._block_rms(plan, dict(zip(all_ps, all_gs)))

        # state
        st0 = self.state[plan["first"]]
        if "block_exp_avg_sq" not in st0:
            st0["block_step"] = 0
            st0["block_exp_avg_sq"] = torch.full((plan["B"],), float(v0), device=plan["device"], dtype=plan["dtype"])
        v = st0["block_exp_avg_sq"]
        if v.shape != (plan["B"],):
            raise ValueError(f"block state has {v.numel()} blocks but the partition has {plan['B']}")
        for p in all_ps:
            st = self.state[p]
            if "exp_avg" not in st:
                st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        st0["block_step"] += 1
        t = st0["block_step"]

        _second_moment_(v, rms, beta2)
        _, c2 = _bias_corrections(t, 0.0, beta2, bias_correction)
        (denom_b,) = _denominators([v], eps, [c2], eps_inside_sqrt)

        for group, ps, gs in work:
            if not ps:
                continue
            beta1 = group["betas"][0]
            c1, _ = _bias_corrections(t, beta1, beta2, bias_correction)
            size = _step_size(_lr_float(group["lr"]), c1)
            ms = [self.state[p]["exp_avg"] for p in ps]
            torch._foreach_lerp_(ms, gs, 1.0 - beta1)
            xs, mv, ds = [], [], []
            for p, m in zip(ps, ms):
                e = plan["entries"][p]
                d = denom_b[e["sel"]]
                if e["kind"] == "seg":
                    xs.append(p.view(e["n"], e["seg"]))
                    mv.append(m.view(e["n"], e["seg"]))
                    ds.append(d.view(e["n"], 1))
                else:
                    xs.append(p)
                    mv.append(m)
                    ds.append(d[e["inv"]].view_as(p))
            torch._foreach_addcdiv_(xs, mv, ds, -size)


class AdaSGD(BlockwiseAdam):
    r"""AdaSGD, Algorithm 2 (Wang & Wiens 2020 form): one scalar second moment for all parameters.

    .. math::

        m_t=\beta_1m_{t-1}+(1-\beta_1)g_t,\quad v_t=\beta_2v_{t-1}+(1-\beta_2)\|g_t\|_2^2/d,\quad
        x_t=x_{t-1}-\eta_t\,m_t/\sqrt{v_t+\epsilon},

    where :math:`g_t` is the gradient over **all** parameters of the optimizer (every tensor of every
    param group, :math:`d` their total size). This is :class:`BlockwiseAdam` with
    ``partitions.whole()``; the scalar :math:`v` is ``state[first_param]["block_exp_avg_sq"]``.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 v0: float = 0.0, bias_correction: bool = False, eps_inside_sqrt: bool = True, *,
                 nonfinite: str = "skip"):
        super().__init__(params, lr, betas, eps, v0, _partitions.whole(), bias_correction, eps_inside_sqrt,
                         nonfinite=nonfinite)


# =============================================================================================
# factory
# =============================================================================================
_NAMES = ("adam", "adasgd", "sgd", "signgd", "rmsprop", "blockwise_adam")


def create(name: str, params, *, lr: float, betas: tuple[float, float] = (0.9, 0.95), eps: float = 1e-8,
           momentum: float = 0.9, partition: Partition | str | None = None, torch_form: bool = True,
           v0: float = 0.0, nonfinite: str = "skip") -> Optimizer:
    """Build an optimizer by name.

    ``name``: ``"adam" | "adasgd" | "sgd" | "signgd" | "rmsprop" | "blockwise_adam"`` (the latter
    needs ``partition``: a :class:`Partition` or ``"coordinate" | "rows" | "tensor" | "whole"``).
    ``"sgd"`` is ``torch.optim.SGD(lr, momentum)``. ``torch_form=True`` means bias correction on and
    ``eps`` outside the root (what the paper's experiments ran, = ``torch.optim.Adam``);
    ``False`` the paper's Algorithm 1 form (no bias correction, ``eps`` inside the root).
    """
    form = dict(bias_correction=torch_form, eps_inside_sqrt=not torch_form)
    if name == "adam":
        return Adam(params, lr, betas, eps, v0, nonfinite=nonfinite, **form)
    if name == "adasgd":
        return AdaSGD(params, lr, betas, eps, v0, nonfinite=nonfinite, **form)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum)
    if name == "signgd":
        return SignGD(params, lr, nonfinite=nonfinite)
    if name == "rmsprop":
        return RMSProp(params, lr, betas[1], eps, v0, nonfinite=nonfinite, **form)
    if name == "blockwise_adam":
        if partition is None:
            raise ValueError("create('blockwise_adam', ...) needs partition=")
        return BlockwiseAdam(params, lr, betas, eps, v0, partition, nonfinite=nonfinite, **form)
    raise ValueError(f"unknown optimizer {name!r}; choose from {_NAMES}")
