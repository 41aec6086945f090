"""Data of the paper's experiments as *tasks*.

OpenWebText and offline text corpora (Section 4.2), CIFAR-10 and its stand-in (Section 4.3).

A task is everything the training loop needs to know about data and loss (the ``Task`` protocol)::

    batch(split, step, micro_step, rank=0, world=1) -> tuple[Tensor, ...]   # deterministic, on CPU
    loss(model, batch) -> Tensor                                           # scalar mean loss
    evaluate(model, device) -> dict[str, float]                            # e.g. val_loss

``build_task(spec)`` makes one from a plain dict: ``{"kind": "lm", ...}`` →
:class:`adamlinf.data.text.LMTask`, ``{"kind": "cifar10", ...}`` →
``adamlinf.data.images.build_task(**rest)`` (imported lazily).
"""

from __future__ import annotations

import importlib
from typing import Protocol, runtime_checkable

import torch

__all__ = ["Task", "build_task", "LMTask", "DataNotFoundError", "DataFormatError", "TASK_KINDS"]

TASK_KINDS = ("lm", "cifar10")


@runtime_checkable
class Task(Protocol):
    """What the training loop needs to know about data and loss."""

    def batch(
        self, split: str, step: int, micro_step: int, rank: int = 0, world: int = 1
    ) -> tuple[torch.Tensor, ...]:
        """Micro-batch ``micro_step`` of rank ``rank`` at optimizer step ``step``, on the CPU."""
        ...

    def loss(self, model, batch) -> torch.Tensor:
        """The scalar mean loss of ``model`` on ``batch``."""
        ...

    def evaluate(self, model, device) -> dict[str, float]:
        """Evaluation metrics, e.g. ``{"val_loss": ...}``."""
        ...


def __getattr__(name):  # lazy, so `python -m adamlinf.data.text` runs without a double import
    if name in ("LMTask", "DataNotFoundError", "DataFormatError"):
        return getattr(importlib.import_module("adamlinf.data.text"), name)
    raise AttributeError(f"module 'adamlinf.data' has no attribute {name!r}")


def build_task(spec: dict) -> Task:
    """Build a task from ``spec = {"kind": ..., **kwargs}``.

    The spec is kept on the task as ``task.adamlinf_spec`` so checkpoints can rebuild it.

    Args:
        spec: ``{"kind": "lm", ...}`` (keyword arguments of :class:`adamlinf.data.text.LMTask`) or
            ``{"kind": "cifar10", ...}`` (of :func:`adamlinf.data.images.build_task`).

    Returns:
        The task.

    Raises:
        ValueError: an unknown kind or key, or a bad value (the message names the field).
        DataNotFoundError: the data set is not prepared; the message names the command.
    """
    if not isinstance(spec, dict) or "kind" not in spec:
        raise ValueError(f"data spec must be a dict with a 'kind' key (one of {TASK_KINDS}), got {spec!r}")
    kwargs = {k: v for k, v in spec.items() if k != "kind"}
    if spec["kind"] == "lm":
        lm_task = importlib.import_module("adamlinf.data.text").LMTask
        unknown = sorted(set(kwargs) - set(lm_task.field_names()))
        if unknown:
            raise ValueError(
                f"unknown option(s) {unknown} in a data spec of kind 'lm'; allowed: "
                f"{sorted(lm_task.field_names())}"
            )
        task = lm_task(**kwargs)
    elif spec["kind"] == "cifar10":
        task = importlib.import_module("adamlinf.data.images").build_task(**kwargs)
    else:
        raise ValueError(f"unknown task kind {spec['kind']!r}; expected one of {TASK_KINDS}")
    try:
        task.adamlinf_spec = dict(spec)
    except AttributeError:  # e.g. a frozen dataclass or __slots__
        pass
    return task
