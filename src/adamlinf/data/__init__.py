"""Data as *tasks* (Sections 4.2, 4.3): batches, loss and evaluation for the training loop.

``build_task({"kind": "lm", ...})`` is an :class:`adamlinf.data.text.LMTask`, ``{"kind": "cifar10", ...}``
an ``adamlinf.data.images.ImageTask`` (CIFAR-10 or its digits stand-in).
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Protocol, runtime_checkable

import torch

__all__ = ["Task", "build_task", "LMTask", "DataNotFoundError", "DataFormatError"]


@runtime_checkable
class Task(Protocol):
    """Deterministic CPU batches, a scalar mean loss and evaluation metrics (e.g. ``val_loss``)."""

    def batch(self, split: str, step: int, micro_step: int, rank: int = 0, world: int = 1) -> tuple:
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
    kind = spec.get("kind") if isinstance(spec, dict) else None
    kwargs = {k: v for k, v in spec.items() if k != "kind"} if kind else {}
    if kind == "lm":
        lm_task = importlib.import_module("adamlinf.data.text").LMTask
        allowed = [f.name for f in dataclasses.fields(lm_task) if f.name != "kind"]
        if unknown := sorted(set(kwargs) - set(allowed)):
            raise ValueError(f"unknown option(s) {unknown} in a data spec of kind 'lm'; allowed: {allowed}")
        task = lm_task(**kwargs)
    elif kind == "cifar10":
        task = importlib.import_module("adamlinf.data.images").build_task(**kwargs)
    else:
        raise ValueError(f"unknown task kind in data spec {spec!r}; expected 'lm' or 'cifar10'")
    task.adamlinf_spec = dict(spec)
    return task
