"""Image classification data for Section 4.3: CIFAR-10 (Krizhevsky, 2009) and an offline stand-in.

**CIFAR-10** is read with ``torchvision.datasets.CIFAR10`` from ``<root>/cifar-10-batches-py``
(the pickled ``data_batch_1..5``, ``test_batch`` and ``batches.meta`` of the official archive).
Nothing is downloaded implicitly: a missing data set raises ``FileNotFoundError``, and a damaged
file :class:`adamlinf.data.text.DataFormatError`, naming the file and the command that prepares
the data set::

    python -m adamlinf.data.images cifar10 --archive cifar-10-python.tar.gz   # offline, a local copy
    python -m adamlinf.data.images cifar10                                    # download (torchvision)
 :class:`CIFAR10NoMD5` reads the same on-disk format without the md5 check,
for the tiny hand-made sets of the tests.

**Stand-in for the ``ci`` scale** (:func:`load_digits_images`): scikit-learn's bundled
handwritten digits (``sklearn.datasets.load_digits``: 1,797 real 8x8 grey images of the digits
0-9, 10 classes, shipped with scikit-learn so available offline), upscaled (bilinear) to
``size x size`` and repeated over 3 channels, split into a fixed stratified train/test split.
It is a small *real* 10-class image set that the same network, augmentation and evaluation run
on unchanged; it is NOT CIFAR-10 and its numbers are not the paper's.

**The task** (:class:`ImageTask`, the ``Task`` protocol of ``adamlinf.data``), as described in
Section 4.3 of the paper:

* training batches: epochs of a seeded permutation of the training set, each image augmented by
  a random crop (zero padding ``padding`` pixels on each side, then a crop of the original size,
  i.e. ``torchvision.transforms.RandomCrop(32, padding=4)``) and a horizontal flip with
  probability 1/2, then normalised per channel. Augmentation is done on tensors with a
  ``torch.Generator`` seeded from ``(seed, step, micro_step, rank)``, so every batch is a pure
  function of its arguments (exact resume, identical under DDP re-launch);
* ``evaluate``: training loss and accuracy on a FIXED augmented subset of the training set the
  size of the test set (drawn once from ``seed``), test loss and accuracy on the whole test set
  without augmentation. The network's BatchNorm uses batch statistics in evaluation too
  (``track_running_stats=False``), so evaluation always uses the same fixed cut into batches of
  ``eval_batch_size``.
"""

from __future__ import annotations

import argparse
import hashlib
import pickle
import sys
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.datasets import CIFAR10

from adamlinf.data.text import DataFormatError, data_root, offline

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFAR10NoMD5",
    "default_data_root",
    "load_cifar10",
    "load_digits_images",
    "random_crop_flip",
    "mix_seed",
    "ImageTask",
    "build_task",
    "write_cifar10_format",
    "check_cifar10_files",
    "prepare_cifar10",
    "prepare_command",
]

#: per-channel mean and standard deviation of the CIFAR-10 training images (pixel values in [0, 1])
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"


def default_data_root() -> Path:
    """``$ADAMLINF_DATA`` if set, else ``<repo>/data`` (git-ignored): :func:`adamlinf.data.text.data_root`."""
    return data_root()


def prepare_command(root: str | Path | None = None, archive: bool = True) -> str:
    """The command that prepares CIFAR-10 under ``root``: from a local archive, or by download."""
    cmd = "python -m adamlinf.data.images cifar10" + (" --archive cifar-10-python.tar.gz" if archive else "")
    return cmd + (f" --root {root}" if root is not None else "")


# --------------------------------------------------------------------------------------------
# CIFAR-10 on disk
# --------------------------------------------------------------------------------------------
class CIFAR10NoMD5(CIFAR10):
    """``torchvision.datasets.CIFAR10`` without the md5 check of its files.

    The only change: the expected checksums of ``train_list``, ``test_list`` and ``meta`` are
    ``None``. torchvision's ``check_integrity(path, None)`` then checks only that the file exists,
    so the same files (same names, same folder ``cifar-10-batches-py``) are read by the same
    unchanged loading code. :func:`load_cifar10` reads through it after checking the files itself
    (the official md5 of each, unless ``verify_md5=False`` for a set of one's own, e.g. in tests).
    """

    train_list = [[name, None] for name, _md5 in CIFAR10.train_list]
    test_list = [[name, None] for name, _md5 in CIFAR10.test_list]
    meta = {**CIFAR10.meta, "md5": None}


def _missing_message(root: Path, missing: list[str]) -> str:
    folder = root / CIFAR10.base_folder
    return (
        f"CIFAR-10 not found: {folder} is missing {', '.join(missing)}. Nothing is downloaded "
        f"implicitly. With the official archive ({CIFAR10_URL}) on this machine:\n"
        f"    {prepare_command(root)}\n"
        f"or, with network access:\n    {prepare_command(root, archive=False)}\n"
        f"(or set $ADAMLINF_DATA / pass root=...). For an offline run use the stand-in: "
        f"build_task(kind='cifar10', source='digits')."
    )


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def check_cifar10_files(root: str | Path, *, verify_md5: bool = True) -> None:
    """Check the files of ``root/cifar-10-batches-py`` before torchvision reads them.

    Args:
        root: the folder holding ``cifar-10-batches-py``.
        verify_md5: compare each file with the official archive's md5 (torchvision's list);
            without it, check that each file is a pickle with CIFAR-10's keys.

    Raises:
        FileNotFoundError: a file is missing (the message says how to get the data set).
        DataFormatError: a file is damaged or not CIFAR-10's; the message names it and the command
            that rewrites it.
    """
    root = Path(root)
    folder = root / CIFAR10.base_folder
    files = CIFAR10.train_list + CIFAR10.test_list + [[CIFAR10.meta["filename"], CIFAR10.meta["md5"]]]
    missing = [name for name, _ in files if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(_missing_message(root, missing))
    fix = (
        f"Prepare the data set again:\n    {prepare_command(root)}\n"
        f"or, with network access:\n    {prepare_command(root, archive=False)}"
    )
    if verify_md5:
        bad = [name for name, md5 in files if _md5(folder / name) != md5]
        if bad:
            raise DataFormatError(
                f"{', '.join(str(folder / n) for n in bad)}: not the official CIFAR-10 file(s) (md5 "
                f"differs), so damaged or from another data set. {fix}\nA set of your own in CIFAR-10's "
                "format loads with verify_md5=False."
            )
        return
    for name, _ in files:
        path = folder / name
        try:
            with open(path, "rb") as f:
                entry = pickle.load(f, encoding="latin1")
        except Exception as exc:  # UnpicklingError, EOFError, ValueError, ... on a damaged file
            raise DataFormatError(
                f"{path} is not a readable CIFAR-10 pickle ({type(exc).__name__}: {exc}). {fix}"
            ) from exc
        need = ("label_names",) if name == CIFAR10.meta["filename"] else ("data", "labels")
        if not isinstance(entry, dict) or not set(need) <= set(entry):
            raise DataFormatError(f"{path} lacks the CIFAR-10 key(s) {list(need)}. {fix}")


def load_cifar10(root: str | Path | None = None, *, verify_md5: bool = True) -> dict[str, Any]:
    """CIFAR-10 as uint8 tensors.

    ``train_x`` (50000, 3, 32, 32), ``train_y`` (50000,), ``test_x`` (10000, 3, 32, 32),
    ``test_y``, and ``classes`` (the label names).

    ``root`` holds ``cifar-10-batches-py`` (default :func:`default_data_root`). The files are
    checked first (:func:`check_cifar10_files`: the official md5 of each, or with
    ``verify_md5=False`` only CIFAR-10's pickle layout, for any set in its on-disk format, of any
    size), then read by torchvision's loader (:class:`CIFAR10NoMD5`, so they are hashed once).
    Raises ``FileNotFoundError`` with instructions if files are missing,
    :class:`~adamlinf.data.text.DataFormatError` naming the file if one is damaged.
    """
    root = Path(root) if root is not None else default_data_root()
    check_cifar10_files(root, verify_md5=verify_md5)
    cls = CIFAR10NoMD5  # the files are checked above (md5 too): torchvision need not hash them again
    out: dict[str, Any] = {}
    for split, train in (("train", True), ("test", False)):
        ds = cls(str(root), train=train, download=False)
        out[f"{split}_x"] = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))
        out[f"{split}_y"] = torch.as_tensor(ds.targets, dtype=torch.long)
        out["classes"] = list(ds.classes)
    return out


def write_cifar10_format(
    root: str | Path,
    train_x,
    train_y,
    test_x,
    test_y,
    classes: list[str] | None = None,
    n_train_batches: int = 5,
) -> Path:
    """Write uint8 images (N, 3, 32, 32) and labels in CIFAR-10's on-disk format.

    The files go under ``root/cifar-10-batches-py`` (the training set split into ``n_train_batches`` files
    ``data_batch_1..5``; ``test_batch``; ``batches.meta``). Used by the tests to exercise the
    real torchvision loader on a tiny set.
    """
    if n_train_batches != len(CIFAR10.train_list):
        raise ValueError(f"CIFAR-10 has {len(CIFAR10.train_list)} training files, got {n_train_batches}")
    folder = Path(root) / CIFAR10.base_folder
    folder.mkdir(parents=True, exist_ok=True)
    train_x, test_x = np.asarray(train_x, dtype=np.uint8), np.asarray(test_x, dtype=np.uint8)
    for x in (train_x, test_x):
        if x.ndim != 4 or x.shape[1:] != (3, 32, 32):
            raise ValueError(f"images must have shape (N, 3, 32, 32), got {x.shape}")
    train_y, test_y = [int(v) for v in train_y], [int(v) for v in test_y]
    parts = np.array_split(np.arange(len(train_x)), n_train_batches)
    for i, idx in enumerate(parts, 1):
        entry = {
            "batch_label": f"training batch {i} of 5",
            "labels": [train_y[j] for j in idx],
            "data": train_x[idx].reshape(len(idx), -1),
            "filenames": [f"{j}.png" for j in idx],
        }
        with open(folder / f"data_batch_{i}", "wb") as f:
            pickle.dump(entry, f)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump(
            {
                "batch_label": "testing batch 1 of 1",
                "labels": test_y,
                "data": test_x.reshape(len(test_x), -1),
            },
            f,
        )
    classes = classes or [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ]
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": list(classes), "num_cases_per_batch": len(parts[0]), "num_vis": 3072}, f)
    return folder


# --------------------------------------------------------------------------------------------
# the offline stand-in
# --------------------------------------------------------------------------------------------
def load_digits_images(size: int = 16, *, test_size: int = 360, seed: int = 0) -> dict[str, Any]:
    """scikit-learn's handwritten digits as a small CIFAR-shaped stand-in (see module docstring).

    The 8x8 images (values 0..16) are scaled to 0..255, upscaled bilinearly to ``size x size``,
    repeated over 3 channels and rounded to uint8. A stratified split with ``test_size`` test
    images (fixed by ``seed``) is returned in :func:`load_cifar10`'s layout.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if size < 8:
        raise ValueError(f"size must be >= 8 (the digits are 8x8), got {size}")
    digits = load_digits()
    x = torch.as_tensor(digits.images, dtype=torch.float32).unsqueeze(1) * (255.0 / 16.0)
    if size != 8:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = x.clamp(0, 255).round().to(torch.uint8).repeat(1, 3, 1, 1)
    y = torch.as_tensor(digits.target, dtype=torch.long)
    tr, te = train_test_split(
        np.arange(len(y)), test_size=test_size, random_state=seed, stratify=digits.target
    )
    tr, te = torch.as_tensor(np.sort(tr)), torch.as_tensor(np.sort(te))
    return {
        "train_x": x[tr],
        "train_y": y[tr],
        "test_x": x[te],
        "test_y": y[te],
        "classes": [str(c) for c in digits.target_names],
    }


# --------------------------------------------------------------------------------------------
# augmentation
# --------------------------------------------------------------------------------------------
def mix_seed(*values: int) -> int:
    """A 63-bit seed that is a deterministic function of the integers ``values``.

    Made with ``numpy.random.SeedSequence``, e.g. ``mix_seed(seed, tag, step, micro_step, rank)``.
    """
    if any(int(v) < 0 for v in values):
        raise ValueError(f"seed components must be non-negative, got {values}")
    state = np.random.SeedSequence([int(v) for v in values]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & ((1 << 63) - 1)


def random_crop_flip(
    images: Tensor, generator: torch.Generator, *, padding: int = 4, flip: bool = True
) -> Tensor:
    """Random crop with zero padding and random horizontal flip of a batch (B, C, H, W).

    Each image is zero-padded by ``padding`` pixels on every side and an H x W window at a
    uniformly random offset ``(dy, dx) in {0..2p}^2`` is cut out (``RandomCrop(H, padding=p)``);
    then, with probability 1/2, it is mirrored left-right (``RandomHorizontalFlip()``). All random
    numbers come from ``generator`` (on the CPU), so the result is a function of its state.
    Works on any dtype; apply it before normalisation so padding is black as in torchvision.
    """
    if images.ndim != 4:
        raise ValueError(f"images must be (B, C, H, W), got shape {tuple(images.shape)}")
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    b, _, h, w = images.shape
    out = images
    if padding > 0:
        offsets = torch.randint(0, 2 * padding + 1, (b, 2), generator=generator)
        padded = F.pad(images, (padding, padding, padding, padding))
        rows = (offsets[:, :1] + torch.arange(h)).to(images.device)  # (B, H)
        cols = (offsets[:, 1:] + torch.arange(w)).to(images.device)  # (B, W)
        bi = torch.arange(b, device=images.device)[:, None, None]
        out = padded.permute(0, 2, 3, 1)[bi, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
        out = out.permute(0, 3, 1, 2).contiguous()
    if flip:
        mask = (torch.rand(b, generator=generator) < 0.5).to(images.device)
        out = torch.where(mask[:, None, None, None], out.flip(-1), out)
    return out


# --------------------------------------------------------------------------------------------
# the task
# --------------------------------------------------------------------------------------------
_TAG_PERM, _TAG_AUG, _TAG_TRAIN_EVAL = 1, 2, 3


class ImageTask:
    """Classification with cross-entropy on an image set (the ``Task`` protocol).

    Arguments: uint8 images ``train_x`` (N, C, H, W) / ``test_x`` and long labels; ``batch_size``
    (per micro-batch and rank); ``grad_accum`` (micro-batches per step, used only to lay the
    data out in epochs: micro-batch ``(s, m, r)`` is slot ``k = (s * grad_accum + m) * world + r``
    of the stream of per-epoch permutations, so with the trainer's ``grad_accum`` every step
    consumes the next ``batch_size * grad_accum * world`` examples; a larger ``micro_step``
    simply reads further slots, e.g. ``batch("train", 0, i)``, ``i < n``, are ``n`` consecutive
    batches); ``seed``; ``augment``/``padding``/``flip``; ``mean``/
    ``std`` (per channel, pixel scale [0, 1]; default: the training set's own); ``train_eval_size``
    (size of the fixed augmented training subset, default the test-set size);
    ``eval_batch_size``.
    """

    def __init__(
        self,
        train_x: Tensor,
        train_y: Tensor,
        test_x: Tensor,
        test_y: Tensor,
        *,
        batch_size: int,
        grad_accum: int = 1,
        seed: int = 0,
        augment: bool = True,
        padding: int = 4,
        flip: bool = True,
        mean=None,
        std=None,
        train_eval_size: int | None = None,
        eval_batch_size: int = 500,
        name: str = "images",
        classes: list[str] | None = None,
    ):
        for nm, x in (("train_x", train_x), ("test_x", test_x)):
            if x.dtype != torch.uint8 or x.ndim != 4:
                raise ValueError(f"{nm} must be a uint8 tensor (N, C, H, W), got {x.dtype} {tuple(x.shape)}")
        if len(train_x) != len(train_y) or len(test_x) != len(test_y):
            raise ValueError("images and labels differ in length")
        for nm, value, least in (
            ("batch_size", batch_size, 1),
            ("grad_accum", grad_accum, 1),
            ("eval_batch_size", eval_batch_size, 1),
            ("seed", seed, 0),
            ("padding", padding, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
                raise ValueError(f"ImageTask.{nm} must be an integer >= {least}, got {value!r}")
        self.train_x, self.train_y = train_x, train_y.long()
        self.test_x, self.test_y = test_x, test_y.long()
        self.batch_size, self.grad_accum, self.seed = int(batch_size), int(grad_accum), int(seed)
        self.augment, self.padding, self.flip = bool(augment), int(padding), bool(flip)
        self.eval_batch_size, self.name, self.classes = int(eval_batch_size), name, classes
        if mean is None or std is None:
            pix = train_x.to(torch.float64) / 255.0
            mean = pix.mean(dim=(0, 2, 3)).tolist() if mean is None else mean
            std = pix.std(dim=(0, 2, 3)).tolist() if std is None else std
        self.mean = torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        if self.mean.numel() != train_x.shape[1] or self.std.numel() != train_x.shape[1]:
            raise ValueError("mean/std need one value per channel")
        n_eval = len(test_x) if train_eval_size is None else int(train_eval_size)
        if not 1 <= n_eval <= len(train_x):
            raise ValueError(f"train_eval_size must be in [1, {len(train_x)}], got {n_eval}")
        g = torch.Generator().manual_seed(mix_seed(self.seed, _TAG_TRAIN_EVAL))
        idx = torch.randperm(len(train_x), generator=g)[:n_eval].sort().values
        x = train_x[idx]
        if self.augment:
            x = random_crop_flip(x, g, padding=self.padding, flip=self.flip)
        self.train_eval_x, self.train_eval_y = x, self.train_y[idx]  # fixed augmented subset
        self._perm_cache: dict[int, Tensor] = {}

    # --- sizes ---
    @property
    def num_train(self) -> int:
        """Number of training images."""
        return len(self.train_x)

    @property
    def num_test(self) -> int:
        """Number of test images."""
        return len(self.test_x)

    def iters_for_epochs(self, epochs: float, global_batch: int | None = None) -> int:
        """Steps so that a run sees ``epochs`` passes over the training set.

        Section 4.3: 20 epochs = 4000 steps at batch 256 on 50,000 images.
        """
        gb = global_batch or self.batch_size * self.grad_accum
        return max(1, int(round(epochs * self.num_train / gb)))

    # --- batches ---
    def normalize(self, x_uint8: Tensor) -> Tensor:
        """uint8 pixels -> float32 ``(x/255 - mean) / std``."""
        return (x_uint8.to(torch.float32) / 255.0 - self.mean) / self.std

    def _epoch_perm(self, epoch: int) -> Tensor:
        if epoch not in self._perm_cache:
            if len(self._perm_cache) > 4:
                self._perm_cache.clear()
            g = torch.Generator().manual_seed(mix_seed(self.seed, _TAG_PERM, epoch))
            self._perm_cache[epoch] = torch.randperm(self.num_train, generator=g)
        return self._perm_cache[epoch]

    def train_indices(self, step: int, micro_step: int = 0, rank: int = 0, world: int = 1) -> Tensor:
        """Training-set indices of micro-batch ``(step, micro_step, rank)``.

        They are consecutive slots of the stream of per-epoch random permutations (sampling
        without replacement).
        """
        k = (step * self.grad_accum + micro_step) * world + rank
        pos = torch.arange(k * self.batch_size, (k + 1) * self.batch_size)
        epochs, offsets = pos // self.num_train, pos % self.num_train
        out = torch.empty_like(pos)
        for e in epochs.unique().tolist():
            sel = epochs == e
            out[sel] = self._epoch_perm(int(e))[offsets[sel]]
        return out

    def batch(
        self, split: str, step: int, micro_step: int = 0, rank: int = 0, world: int = 1
    ) -> tuple[Tensor, Tensor]:
        """``(images float32 (B, C, H, W) normalised, labels (B,))`` on the CPU.

        A deterministic function of the arguments. ``split="train"``: augmented, shuffled per epoch.
        ``split in ("test", "val")``: the test set without augmentation, batch ``step`` of its
        fixed cyclic order (``micro_step``/``rank`` select further consecutive slots).
        """
        for nm, v in (("step", step), ("micro_step", micro_step), ("rank", rank)):
            if int(v) < 0:
                raise ValueError(f"{nm} must be non-negative, got {v}")
        if world < 1 or rank >= world:
            raise ValueError(f"need 0 <= rank < world, got rank={rank}, world={world}")
        if split == "train":
            idx = self.train_indices(step, micro_step, rank, world)
            x = self.train_x[idx]
            if self.augment:
                g = torch.Generator().manual_seed(mix_seed(self.seed, _TAG_AUG, step, micro_step, rank))
                x = random_crop_flip(x, g, padding=self.padding, flip=self.flip)
            return self.normalize(x), self.train_y[idx]
        if split in ("test", "val"):
            k = (step * self.grad_accum + micro_step) * world + rank
            idx = torch.arange(k * self.batch_size, (k + 1) * self.batch_size) % self.num_test
            return self.normalize(self.test_x[idx]), self.test_y[idx]
        raise ValueError(f"split must be 'train', 'test' or 'val', got {split!r}")

    def fixed_batches(self, n_examples: int, batch_size: int | None = None) -> list[tuple[Tensor, Tensor]]:
        """The first ``n_examples`` of the fixed augmented training subset, cut into batches.

        A fixed data set for Hessian measurements (Table 4).
        """
        if not 1 <= n_examples <= len(self.train_eval_x):
            raise ValueError(f"n_examples must be in [1, {len(self.train_eval_x)}], got {n_examples}")
        bs = batch_size or n_examples
        return [
            (self.normalize(self.train_eval_x[i : i + bs]), self.train_eval_y[i : i + bs])
            for i in range(0, n_examples, bs)
        ]

    # --- loss and evaluation ---
    @staticmethod
    def loss(model: nn.Module, batch) -> Tensor:
        """Mean cross-entropy of ``model(images)`` against the labels."""
        x, y = batch
        p = next(model.parameters(), None)
        if p is not None:
            x, y = x.to(device=p.device, dtype=p.dtype), y.to(p.device)
        return F.cross_entropy(model(x), y)

    @torch.no_grad()
    def _metrics(self, model: nn.Module, x_uint8: Tensor, y: Tensor, device) -> tuple[float, float]:
        p = next(model.parameters())
        dtype = p.dtype
        total_loss, correct = 0.0, 0
        for i in range(0, len(x_uint8), self.eval_batch_size):
            xb = self.normalize(x_uint8[i : i + self.eval_batch_size]).to(device=device, dtype=dtype)
            yb = y[i : i + self.eval_batch_size].to(device)
            logits = model(xb)
            total_loss += F.cross_entropy(logits, yb, reduction="sum").item()
            correct += (logits.argmax(dim=1) == yb).sum().item()
        return total_loss / len(y), correct / len(y)

    def evaluate(self, model: nn.Module, device=None) -> dict[str, float]:
        """Loss and accuracy on the fixed training subset and on the test set.

        ``train_eval_loss``/``train_eval_acc`` on the fixed augmented training subset (the
        paper's "training loss/accuracy" of Figure 4; named like ``LMTask``'s so they do not clash
        with the trainer's mini-batch ``train_loss``), ``test_loss``/``test_acc`` on the whole
        un-augmented test set (``val_loss``/``val_acc``: the same as ``test_*``, for code that
        looks for a validation loss). The model is put in ``eval()`` mode
        and restored afterwards; its BatchNorm uses batch statistics either way.
        """
        device = device if device is not None else next(model.parameters()).device
        was_training = model.training
        model.eval()
        try:
            tr_loss, tr_acc = self._metrics(model, self.train_eval_x, self.train_eval_y, device)
            te_loss, te_acc = self._metrics(model, self.test_x, self.test_y, device)
        finally:
            model.train(was_training)
        return {
            "train_eval_loss": tr_loss,
            "train_eval_acc": tr_acc,
            "test_loss": te_loss,
            "test_acc": te_acc,
            "val_loss": te_loss,
            "val_acc": te_acc,
        }


def build_task(**spec) -> ImageTask:
    """``adamlinf.data.build_task({"kind": "cifar10", ...})`` lands here with the rest of the spec.

    ``source``: ``"cifar10"`` (default; the real data set from ``root``, md5-verified unless
    ``verify_md5=False``) or ``"digits"`` (the offline stand-in at ``image_size``, default 16,
    with ``test_size`` test images). Other keys go to :class:`ImageTask`: ``batch_size``
    (required), ``grad_accum``, ``seed``, ``augment``, ``padding`` (default 4 at 32x32, scaled
    as ``image_size // 8`` for the stand-in), ``flip``, ``train_eval_size``, ``eval_batch_size``.
    CIFAR-10 is normalised with :data:`CIFAR10_MEAN`/:data:`CIFAR10_STD`, the stand-in with its
    own training-set statistics.
    """
    spec = dict(spec)
    kind = spec.pop("kind", "cifar10")
    if kind != "cifar10":
        raise ValueError(f"adamlinf.data.images builds kind 'cifar10', got {kind!r}")
    source = spec.pop("source", "cifar10")
    if "batch_size" not in spec:
        raise ValueError("the image task needs batch_size")
    if source == "cifar10":
        data = load_cifar10(spec.pop("root", None), verify_md5=spec.pop("verify_md5", True))
        spec.setdefault("mean", CIFAR10_MEAN)
        spec.setdefault("std", CIFAR10_STD)
        name = "cifar10"
    elif source == "digits":
        opts = {k: spec.pop(k, d) for k, d in (("image_size", 16), ("test_size", 360), ("split_seed", 0))}
        for k, v in opts.items():
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise ValueError(f"the digits stand-in's {k} must be a non-negative integer, got {v!r}")
        size = int(opts["image_size"])
        data = load_digits_images(size, test_size=int(opts["test_size"]), seed=int(opts["split_seed"]))
        spec.setdefault("padding", max(1, size // 8))
        name = f"digits{size} (stand-in)"
    else:
        raise ValueError(f"source must be 'cifar10' or 'digits', got {source!r}")
    allowed = {
        "batch_size",
        "grad_accum",
        "seed",
        "augment",
        "padding",
        "flip",
        "mean",
        "std",
        "train_eval_size",
        "eval_batch_size",
    }
    unknown = set(spec) - allowed
    if unknown:
        raise ValueError(
            f"unknown image-task option(s) {sorted(unknown)}; allowed: {sorted(allowed)} "
            "plus source, root, verify_md5, image_size, test_size, split_seed"
        )
    return ImageTask(
        data["train_x"],
        data["train_y"],
        data["test_x"],
        data["test_y"],
        name=name,
        classes=data["classes"],
        **spec,
    )


# --------------------------------------------------------------------------------------------
# preparing CIFAR-10
# --------------------------------------------------------------------------------------------
def prepare_cifar10(root: str | Path | None = None, archive: str | Path | None = None) -> Path:
    """Put CIFAR-10 under ``root/cifar-10-batches-py`` and verify every file's md5.

    Args:
        root: the data root (default :func:`default_data_root`).
        archive: a local copy of the official ``cifar-10-python.tar.gz``, extracted offline; without
            it torchvision downloads the archive (refused when :func:`adamlinf.data.text.offline`).

    Returns:
        The folder ``root/cifar-10-batches-py``.

    Raises:
        FileNotFoundError: no archive and offline, or the archive does not exist.
        DataFormatError: a file of the result differs from the official one.
    """
    root = Path(root) if root is not None else default_data_root()
    root.mkdir(parents=True, exist_ok=True)
    if archive is not None:
        archive = Path(archive)
        if not archive.is_file():
            raise FileNotFoundError(f"{archive} does not exist; download {CIFAR10_URL} first")
        with tarfile.open(archive, "r:gz") as tar:
            members = [
                m
                for m in tar.getmembers()
                if m.name.startswith(CIFAR10.base_folder + "/")
                and m.isfile()
                and ".." not in Path(m.name).parts
            ]
            tar.extractall(root, members=members)  # noqa: S202 - members filtered above
    elif offline():
        raise FileNotFoundError(
            "offline mode is set (ADAMLINF_OFFLINE / HF_HUB_OFFLINE / "
            f"HF_DATASETS_OFFLINE), so CIFAR-10 is not downloaded: pass --archive "
            f"with a local copy of {CIFAR10_URL}"
        )
    else:
        for train in (True, False):
            CIFAR10(str(root), train=train, download=True)
    check_cifar10_files(root, verify_md5=True)
    return root / CIFAR10.base_folder


def main(argv=None) -> int:
    """Command line: ``python -m adamlinf.data.images cifar10 [--archive FILE] [--root DIR]``.

    Returns:
        The exit status: 0, or 2 when the data set cannot be prepared (the message says why).
    """
    parser = argparse.ArgumentParser(
        prog="python -m adamlinf.data.images",
        description="Prepare CIFAR-10 (Section 4.3) and verify its files.",
    )
    parser.add_argument("name", choices=("cifar10",))
    parser.add_argument("--root", default=None, help="data root (default $ADAMLINF_DATA or <repo>/data)")
    parser.add_argument("--archive", default=None, help="local cifar-10-python.tar.gz (no download)")
    args = parser.parse_args(argv)
    try:
        folder = prepare_cifar10(args.root, args.archive)
    except (FileNotFoundError, DataFormatError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"cifar10: verified in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
