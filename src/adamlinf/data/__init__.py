"""Data as *tasks* (Sections 4.2, 4.3): what the training loop needs to know about data and loss.

``build_task({"kind": "lm", ...})`` is a :class:`adamlinf.data.text.LMTask` (OpenWebText and the
offline corpora), ``{"kind": "cifar10", ...}`` an ``adamlinf.data.images.ImageTask`` (CIFAR-10
and its stand-in).
"""

from __future__ import annotations

import importlib
from typing import Protocol, runtime_checkable

import torch

__all__ = ["Task", "build_task", "LMTask", "DataNotFoundError", "DataFormatError", "TASK_KINDS"]

TASK_KINDS = ("lm", "cifar10")


@runtime_checkable
class Task(Protocol):
    """Deterministic CPU batches, a scalar mean loss and evaluation metrics (e.g. ``val_loss``)."""

    def batch(
        self, split: str, step: int, micro_step: int, rank: int = 0, world: int = 1
    ) -> tuple[torch.Tensor, ...]:
        """Micro-batch ``micro_step`` of rank ``rank`` at optimizer step ``step``."""

    def loss(self, model, batch) -> torch.Tensor:
        """The mean loss of ``model`` on ``batch``."""

    def evaluate(self, model, device) -> dict[str, float]:
        """Evaluation metrics."""


def __getattr__(name):  # lazy, so `python -m adamlinf.data.text` runs without a double import
    if name in ("LMTask", "DataNotFoundError", "DataFormatError"):
        return getattr(importlib.import_module("adamlinf.data.text"), name)
    raise AttributeError(f"module 'adamlinf.data' has no attribute {name!r}")


def build_task(spec: dict) -> Task:
    """The task of ``spec = {"kind": "lm" | "cifar10", **kwargs}``, kept as ``task.adamlinf_spec``.

    Raises:
        ValueError: an unknown kind or key, or a bad value (the message names the field).
        DataNotFoundError: the data set is not prepared; the message names the command.
    """
    if not isinstance(spec, dict) or "kind" not in spec:
        raise ValueError(f"data spec must be a dict with a 'kind' key (one of {TASK_KINDS}), got {spec!r}")
    kwargs = {k: v for k, v in spec.items() if k != "kind"}
    if spec["kind"] == "lm":
        lm_task = importlib.import_module("adamlinf.data.text").LMTask
        allowed = sorted(lm_task.field_names())
        unknown = sorted(set(kwargs) - set(allowed))
        if unknown:
            raise ValueError(f"unknown option(s) {unknown} in a data spec of kind 'lm'; allowed: {allowed}")
        task = lm_task(**kwargs)
    elif spec["kind"] == "cifar10":
        task = importlib.import_module("adamlinf.data.images").build_task(**kwargs)
    else:
        raise ValueError(f"unknown task kind {spec['kind']!r}; expected one of {TASK_KINDS}")
    task.adamlinf_spec = dict(spec)
    return task
