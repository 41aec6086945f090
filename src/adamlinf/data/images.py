"""Image data for Section 4.3: CIFAR-10 (Krizhevsky 2009) and an offline stand-in, as tasks.

CIFAR-10 is read by torchvision from ``<data root>/cifar-10-batches-py`` once its files are checked;
``python -m adamlinf.data.images cifar10 [--archive cifar-10-python.tar.gz]`` prepares it. The ``ci``
stand-in is scikit-learn's 1,797 real 8x8 digits, upscaled, on 3 channels: NOT CIFAR-10.
"""

from __future__ import annotations

import hashlib
import pickle
import sys
import tarfile
from dataclasses import KW_ONLY, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.datasets import CIFAR10

from adamlinf.data.text import DataFormatError, check_int, data_root, main, offline

#: per-channel mean and standard deviation of the CIFAR-10 training images (pixels in [0, 1])
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
_FILES = CIFAR10.train_list + CIFAR10.test_list + [[CIFAR10.meta["filename"], CIFAR10.meta["md5"]]]


class CIFAR10NoMD5(CIFAR10):
    """``torchvision.datasets.CIFAR10`` with no md5 (the only change): :func:`load_cifar10` checks first."""

    train_list = [[name, None] for name, _md5 in CIFAR10.train_list]
    test_list = [[name, None] for name, _md5 in CIFAR10.test_list]
    meta = {**CIFAR10.meta, "md5": None}


def check_cifar10_files(root: str | Path, *, verify_md5: bool = True) -> None:
    """Check ``root/cifar-10-batches-py``: each file's official md5, or without ``verify_md5`` its keys.

    Raises:
        FileNotFoundError: a file is missing (the message says how to get the data set).
        DataFormatError: a file is damaged or not CIFAR-10's (the message names it and the command).
    """
    folder = Path(root) / CIFAR10.base_folder
    cmd = f"python -m adamlinf.data.images cifar10 --root {root}"
    how = f"    {cmd} --archive cifar-10-python.tar.gz\nor, with network access:\n    {cmd}"
    if missing := [name for name, _ in _FILES if not (folder / name).is_file()]:
        raise FileNotFoundError(
            f"CIFAR-10 not found: {folder} lacks {', '.join(missing)} (nothing is downloaded implicitly). "
            f"With the official archive ({CIFAR10_URL}) on this machine:\n{how}\n"
            "Offline, use the stand-in: build_task(kind='cifar10', source='digits')."
        )
    fix = f"Prepare the data set again:\n{how}"
    if verify_md5:
        bad = [
            str(folder / name)
            for name, md5 in _FILES
            if hashlib.md5((folder / name).read_bytes(), usedforsecurity=False).hexdigest() != md5
        ]
        if bad:
            raise DataFormatError(
                f"{', '.join(bad)}: not the official CIFAR-10 file(s) (md5 differs): damaged or of another "
                f"data set. {fix}\nA set of your own in CIFAR-10's format loads with verify_md5=False."
            )
        return
    for name, _ in _FILES:
        try:
            with open(folder / name, "rb") as f:
                entry = pickle.load(f, encoding="latin1")
        except Exception as exc:  # UnpicklingError, EOFError, ValueError, ... on a damaged file
            raise DataFormatError(
                f"{folder / name} is not a readable CIFAR-10 pickle ({exc!r}). {fix}"
            ) from exc
        need = ("label_names",) if name == CIFAR10.meta["filename"] else ("data", "labels")
        if not isinstance(entry, dict) or not set(need) <= set(entry):
            raise DataFormatError(f"{folder / name} lacks the CIFAR-10 key(s) {list(need)}. {fix}")


def load_cifar10(root: str | Path | None = None, *, verify_md5: bool = True) -> dict[str, Tensor]:
    """``train_x`` (N, 3, 32, 32) uint8, ``train_y``, ``test_x``, ``test_y`` (files checked first)."""
    root = Path(root) if root is not None else data_root()
    check_cifar10_files(root, verify_md5=verify_md5)
    out = {}
    for split, train in (("train", True), ("test", False)):
        ds = CIFAR10NoMD5(str(root), train=train, download=False)
        out[f"{split}_x"] = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))
        out[f"{split}_y"] = torch.as_tensor(ds.targets, dtype=torch.long)
    return out


def load_digits_images(size: int = 16, *, seed: int = 0) -> dict[str, Tensor]:
    """The digits as :func:`load_cifar10`: uint8, bilinear to ``size`` >= 8, 3 channels, 360 test."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = torch.as_tensor(digits.images, dtype=torch.float32).unsqueeze(1) * (255.0 / 16.0)
    if size != 8:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = x.clamp(0, 255).round().to(torch.uint8).repeat(1, 3, 1, 1)
    y = torch.as_tensor(digits.target, dtype=torch.long)
    tr, te = train_test_split(np.arange(len(y)), test_size=360, random_state=seed, stratify=digits.target)
    tr, te = torch.as_tensor(np.sort(tr)), torch.as_tensor(np.sort(te))
    return {"train_x": x[tr], "train_y": y[tr], "test_x": x[te], "test_y": y[te]}


def mix_seed(*values: int) -> int:
    """A 63-bit seed from non-negative integers (``numpy.random.SeedSequence``)."""
    state = np.random.SeedSequence([int(v) for v in values]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & ((1 << 63) - 1)


def random_crop_flip(images: Tensor, generator: torch.Generator, *, padding=4) -> Tensor:
    """Zero-padded ``RandomCrop(H, padding)``, then ``RandomHorizontalFlip()``, drawn from ``generator``."""
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
    mask = (torch.rand(b, generator=generator) < 0.5).to(images.device)
    return torch.where(mask[:, None, None, None], out.flip(-1), out)


_TAG_PERM, _TAG_AUG, _TAG_TRAIN_EVAL = 1, 2, 3


@dataclass(eq=False)
class ImageTask:
    """Cross-entropy classification of uint8 images (N, C, H, W) (the ``Task`` protocol).

    Micro-batch ``(step s, micro_step m, rank r)`` is slot ``(s · grad_accum + m) · world + r`` of
    the stream of per-epoch permutations. ``mean``/``std``: per channel on [0, 1] (default: the
    training set's). ``evaluate`` also measures a fixed augmented training subset of the test set's size.
    """

    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    _: KW_ONLY
    batch_size: int
    grad_accum: int = 1
    seed: int = 0
    augment: bool = True
    padding: int = 4
    mean: Any = None
    std: Any = None
    eval_batch_size: int = 500
    name: str = "images"

    def __post_init__(self):
        minima = {"batch_size": 1, "grad_accum": 1, "eval_batch_size": 1, "seed": 0, "padding": 0}
        for name, least in minima.items():
            setattr(self, name, check_int("ImageTask", name, getattr(self, name), least))
        self.train_y, self.test_y, self.augment = self.train_y.long(), self.test_y.long(), bool(self.augment)
        self.num_train = len(self.train_x)
        pix = self.train_x.to(torch.float64) / 255.0
        mean = pix.mean(dim=(0, 2, 3)).tolist() if self.mean is None else self.mean
        std = pix.std(dim=(0, 2, 3)).tolist() if self.std is None else self.std
        self.mean = torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        g = torch.Generator().manual_seed(mix_seed(self.seed, _TAG_TRAIN_EVAL))
        idx = torch.randperm(len(self.train_x), generator=g)[: len(self.test_x)].sort().values
        x = self.train_x[idx]
        if self.augment:
            x = random_crop_flip(x, g, padding=self.padding)
        self.train_eval_x, self.train_eval_y = x, self.train_y[idx]  # fixed augmented subset
        self._perm_cache: dict[int, Tensor] = {}

    def iters_for_epochs(self, epochs: float) -> int:
        """Steps for ``epochs`` passes (Section 4.3: 20 epochs = 4000 steps at batch 256)."""
        return max(1, int(round(epochs * self.num_train / (self.batch_size * self.grad_accum))))

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
        """Training-set indices of micro-batch ``(step, micro_step, rank)`` (no replacement per epoch)."""
        k = (step * self.grad_accum + micro_step) * world + rank
        pos = torch.arange(k * self.batch_size, (k + 1) * self.batch_size)
        epochs, offsets = pos // self.num_train, pos % self.num_train  # epochs ascend with pos
        return torch.cat([self._epoch_perm(e)[offsets[epochs == e]] for e in epochs.unique().tolist()])

    def batch(
        self, split: str, step: int, micro_step: int = 0, rank: int = 0, world: int = 1
    ) -> tuple[Tensor, Tensor]:
        """Normalised images and labels: ``"train"`` augmented, ``"test"``/``"val"`` in fixed order."""
        if split == "train":
            idx = self.train_indices(step, micro_step, rank, world)
            x = self.train_x[idx]
            if self.augment:
                g = torch.Generator().manual_seed(mix_seed(self.seed, _TAG_AUG, step, micro_step, rank))
                x = random_crop_flip(x, g, padding=self.padding)
            return self.normalize(x), self.train_y[idx]
        if split in ("test", "val"):
            k = (step * self.grad_accum + micro_step) * world + rank
            idx = torch.arange(k * self.batch_size, (k + 1) * self.batch_size) % len(self.test_x)
            return self.normalize(self.test_x[idx]), self.test_y[idx]
        raise ValueError(f"split must be 'train', 'test' or 'val', got {split!r}")

    @staticmethod
    def loss(model: nn.Module, batch) -> Tensor:
        """Mean cross-entropy of ``model(images)`` against the labels."""
        x, y = batch
        p = next(model.parameters())
        return F.cross_entropy(model(x.to(device=p.device, dtype=p.dtype)), y.to(p.device))

    @torch.no_grad()
    def _metrics(self, model: nn.Module, x_uint8: Tensor, y: Tensor, device) -> tuple[float, float]:
        dtype = next(model.parameters()).dtype
        total_loss, correct = 0.0, 0
        for i in range(0, len(x_uint8), self.eval_batch_size):
            xb = self.normalize(x_uint8[i : i + self.eval_batch_size]).to(device=device, dtype=dtype)
            yb = y[i : i + self.eval_batch_size].to(device)
            logits = model(xb)
            total_loss += F.cross_entropy(logits, yb, reduction="sum").item()
            correct += (logits.argmax(dim=1) == yb).sum().item()
        return total_loss / len(y), correct / len(y)

    def evaluate(self, model: nn.Module, device=None) -> dict[str, float]:
        """``train_eval_*`` (fixed augmented subset: Figure 4's training loss) and ``test_*`` = ``val_*``."""
        device = device if device is not None else next(model.parameters()).device
        was_training = model.training
        model.eval()
        tr_loss, tr_acc = self._metrics(model, self.train_eval_x, self.train_eval_y, device)
        te_loss, te_acc = self._metrics(model, self.test_x, self.test_y, device)
        model.train(was_training)
        out = {"train_eval_loss": tr_loss, "train_eval_acc": tr_acc, "test_loss": te_loss, "test_acc": te_acc}
        return out | {"val_loss": te_loss, "val_acc": te_acc}


def build_task(source: str = "cifar10", **spec: Any) -> ImageTask:
    """:class:`ImageTask` of ``source="cifar10"`` (``root``, ``verify_md5``) or ``"digits"`` (``image_size``).

    CIFAR-10 is normalised by :data:`CIFAR10_MEAN`/:data:`CIFAR10_STD`; the stand-in by its own
    statistics, with ``padding = image_size // 8``.
    """
    if "batch_size" not in spec:
        raise ValueError("the image task needs batch_size")
    if source == "cifar10":
        data = load_cifar10(spec.pop("root", None), verify_md5=spec.pop("verify_md5", True))
        spec = {"mean": CIFAR10_MEAN, "std": CIFAR10_STD, "name": "cifar10"} | spec
    elif source == "digits":
        size = check_int("digits", "image_size", spec.pop("image_size", 16), 8)
        data = load_digits_images(size)
        spec = {"padding": max(1, size // 8), "name": f"digits{size} (stand-in)"} | spec
    else:
        raise ValueError(f"source must be 'cifar10' or 'digits', got {source!r}")
    allowed = {f.name for f in fields(ImageTask) if not f.name.endswith(("_x", "_y"))}  # not the data
    if unknown := set(spec) - allowed:
        raise ValueError(
            f"unknown image-task option(s) {sorted(unknown)}; allowed: {sorted(allowed)}, "
            "source, root, verify_md5, image_size"
        )
    return ImageTask(data["train_x"], data["train_y"], data["test_x"], data["test_y"], **spec)


def prepare_cifar10(root: str | Path | None = None, archive: str | Path | None = None) -> Path:
    """CIFAR-10 under ``root/cifar-10-batches-py``, md5-verified: from a local ``archive``, or downloaded.

    Raises:
        FileNotFoundError: no archive and :func:`~adamlinf.data.text.offline`, or no such archive.
        DataFormatError: a file differs from the official one.
    """
    root = Path(root) if root is not None else data_root()
    root.mkdir(parents=True, exist_ok=True)
    if archive is not None:
        if not Path(archive).is_file():
            raise FileNotFoundError(f"{archive} does not exist; download {CIFAR10_URL} first")
        with tarfile.open(archive, "r:gz") as tar:
            members = [m for m in tar.getmembers() if m.name.startswith(CIFAR10.base_folder + "/")]
            tar.extractall(root, members=members, filter="data")  # refuses links out and ".." paths
    elif offline():
        raise FileNotFoundError(
            "offline mode is set (ADAMLINF_OFFLINE / HF_HUB_OFFLINE / HF_DATASETS_OFFLINE), so CIFAR-10 is "
            f"not downloaded: pass --archive with a local copy of {CIFAR10_URL}"
        )
    else:
        for train in (True, False):
            CIFAR10(str(root), train=train, download=True)
    check_cifar10_files(root, verify_md5=True)
    return root / CIFAR10.base_folder


if __name__ == "__main__":
    sys.exit(main())
