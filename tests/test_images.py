"""CIFAR-10 loading (through torchvision, md5 check skipped only for tiny hand-made sets), the
seeded tensor augmentation, the image task's batches and evaluation, and the digits stand-in."""

import math
import pickle
import socket
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torchvision.datasets import CIFAR10

from adamlinf.data import DataFormatError, Task
from adamlinf.data import build_task as build_any_task
from adamlinf.data.images import (
    CIFAR10NoMD5,
    ImageTask,
    build_task,
    load_cifar10,
    load_digits_images,
    prepare_cifar10,
    random_crop_flip,
)
from adamlinf.data.text import main

pytestmark = pytest.mark.usefixtures("one_thread")


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


def _tiny_arrays(n_train=20, n_test=10, seed=0):
    rng = np.random.default_rng(seed)
    return (
        rng.integers(0, 256, (n_train, 3, 32, 32), dtype=np.uint8),
        rng.integers(0, 10, n_train),
        rng.integers(0, 256, (n_test, 3, 32, 32), dtype=np.uint8),
        rng.integers(0, 10, n_test),
    )


@pytest.fixture(scope="module")
def tiny_cifar(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    arrays = _tiny_arrays()
    write_cifar10_format(root, *arrays)
    return root, arrays


def test_written_files_follow_the_cifar10_format(tiny_cifar):
    root, (trx, try_, _, _) = tiny_cifar
    with open(root / "cifar-10-batches-py" / "data_batch_1", "rb") as f:
        entry = pickle.load(f, encoding="latin1")
    # row-major 3072 bytes: 1024 red, 1024 green, 1024 blue, each 32x32 row by row
    assert entry["data"].shape == (4, 3072) and entry["data"].dtype == np.uint8
    n, c, i, j = 3, 2, 5, 7
    assert entry["data"][n, c * 1024 + i * 32 + j] == trx[n, c, i, j]
    assert entry["labels"] == [int(v) for v in try_[:4]]


def test_tiny_set_loads_through_torchvision(tiny_cifar):
    root, (trx, try_, tex, tey) = tiny_cifar
    ds = CIFAR10NoMD5(str(root), train=True)
    assert len(ds) == 20 and ds.data.shape == (20, 32, 32, 3)
    img, label = ds[7]
    assert np.array_equal(np.asarray(img), trx[7].transpose(1, 2, 0)) and label == try_[7]
    assert ds.classes[0] == "airplane"
    data = load_cifar10(root, verify_md5=False)
    assert data["train_x"].shape == (20, 3, 32, 32) and data["train_x"].dtype == torch.uint8
    assert data["test_x"].shape == (10, 3, 32, 32)
    assert np.array_equal(data["train_x"].numpy(), trx) and np.array_equal(data["test_x"].numpy(), tex)
    assert data["train_y"].tolist() == list(try_) and data["test_y"].tolist() == list(tey)


def test_md5_check_is_the_only_change(tiny_cifar):
    root, _ = tiny_cifar
    with pytest.raises(RuntimeError, match="corrupted"):  # the stock class checks the md5
        CIFAR10(str(root), train=True)
    with pytest.raises(DataFormatError, match="md5 differs"):  # ours names the files instead
        load_cifar10(root, verify_md5=True)
    own = {k for k in vars(CIFAR10NoMD5) if not k.startswith("__")}
    assert own == {"train_list", "test_list", "meta"}
    assert [n for n, _ in CIFAR10NoMD5.train_list] == [n for n, _ in CIFAR10.train_list]
    assert [n for n, _ in CIFAR10NoMD5.test_list] == [n for n, _ in CIFAR10.test_list]
    assert all(md5 is None for _, md5 in CIFAR10NoMD5.train_list + CIFAR10NoMD5.test_list)
    assert {k: v for k, v in CIFAR10NoMD5.meta.items() if k != "md5"} == {
        k: v for k, v in CIFAR10.meta.items() if k != "md5"
    } and CIFAR10NoMD5.meta["md5"] is None
    assert CIFAR10NoMD5.base_folder == CIFAR10.base_folder


def test_missing_data_gives_instructions(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_cifar10(tmp_path)
    msg = str(err.value)
    assert "cifar-10-batches-py" in msg and "cifar-10-python.tar.gz" in msg
    assert f"python -m adamlinf.data.images cifar10 --root {tmp_path} --archive cifar-10-python.tar.gz" in msg
    with pytest.raises(FileNotFoundError, match="python -m adamlinf.data.images cifar10"):
        build_any_task({"kind": "cifar10", "root": str(tmp_path), "batch_size": 4})
    # a partial copy names what is missing
    write_cifar10_format(tmp_path, *_tiny_arrays())
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        load_cifar10(tmp_path, verify_md5=False)


# ----------------------------------------------------------------------------------------------
# augmentation
# ----------------------------------------------------------------------------------------------
def _distinct_images(b=16, c=2, h=6, w=5):
    return torch.arange(1, b * c * h * w + 1, dtype=torch.float64).reshape(b, c, h, w)


def test_augmentation_is_a_crop_of_the_zero_padded_image_possibly_flipped():
    x = _distinct_images()
    p = 2
    out = random_crop_flip(x, torch.Generator().manual_seed(0), padding=p)
    padded = torch.nn.functional.pad(x, (p, p, p, p))
    shifts, flips = set(), 0
    for n in range(len(x)):
        matches = [
            (dy, dx, fl)
            for dy in range(2 * p + 1)
            for dx in range(2 * p + 1)
            for fl in (0, 1)
            if torch.equal(
                out[n], (lambda win: win.flip(-1) if fl else win)(padded[n, :, dy : dy + 6, dx : dx + 5])
            )
        ]
        assert len(matches) == 1, n  # exactly one (offset, flip) explains the output
        shifts.add(matches[0][:2])
        flips += matches[0][2]
    assert len(shifts) > 3 and 0 < flips < len(x)  # it really augments


def test_augmentation_deterministic_in_the_seed():
    x = _distinct_images()
    a = random_crop_flip(x, torch.Generator().manual_seed(5))
    b = random_crop_flip(x, torch.Generator().manual_seed(5))
    c = random_crop_flip(x, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    flipped = random_crop_flip(x, torch.Generator().manual_seed(0), padding=0)  # each image or its mirror
    assert all(torch.equal(a, b) or torch.equal(a, b.flip(-1)) for a, b in zip(flipped, x, strict=True))
    u8 = (x % 256).to(torch.uint8)
    assert random_crop_flip(u8, torch.Generator().manual_seed(1)).dtype == torch.uint8


# ----------------------------------------------------------------------------------------------
# the task
# ----------------------------------------------------------------------------------------------
def _task(**kw):
    trx, try_, tex, tey = _tiny_arrays(n_train=24, n_test=10)
    args = dict(batch_size=4, seed=0, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    args.update(kw)
    return ImageTask(
        torch.from_numpy(trx), torch.from_numpy(try_), torch.from_numpy(tex), torch.from_numpy(tey), **args
    )


def test_batches_are_deterministic_and_sample_epochs_without_replacement():
    t1, t2 = _task(), _task()
    for args in [(0, 0, 0, 1), (5, 0, 1, 2), (13, 0, 0, 1)]:
        a, b = t1.batch("train", *args), t2.batch("train", *args)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(t1.batch("train", 0, 0)[0], t1.batch("train", 1, 0)[0])
    assert not torch.equal(t1.batch("train", 0, 0)[0], _task(seed=1).batch("train", 0, 0)[0])
    # one epoch = 6 steps of 4 distinct images; DDP ranks take disjoint slots
    epoch = torch.cat([t1.train_indices(s) for s in range(6)])
    assert sorted(epoch.tolist()) == list(range(24))
    ranks = torch.cat([t1.train_indices(s, 0, r, 2) for s in range(3) for r in range(2)])
    assert sorted(ranks.tolist()) == list(range(24))
    assert not torch.equal(torch.cat([t1.train_indices(s) for s in range(6, 12)]), epoch)  # reshuffled
    x, y = t1.batch("train", 2, 0)
    assert x.dtype == torch.float32 and x.shape == (4, 3, 32, 32) and y.dtype == torch.long
    assert torch.equal(y, t1.train_y[t1.train_indices(2)])
    # test batches: un-augmented, normalised
    xt, yt = t1.batch("test", 0, 0)
    torch.testing.assert_close(xt, (t1.test_x[:4].float() / 255 - 0.5) / 0.25)
    with pytest.raises(ValueError):
        t1.batch("valid", 0, 0)


def test_augmented_training_batches_are_crops_of_the_sampled_images():
    t = _task()
    x, _ = t.batch("train", 3, 0)
    raw = t.normalize(t.train_x[t.train_indices(3)])
    assert not torch.equal(x, raw)
    t0 = _task(augment=False)
    assert torch.equal(t0.batch("train", 3, 0)[0], raw)


class ConstantLogits(nn.Module):
    def __init__(self, z):
        super().__init__()
        self.z = nn.Parameter(torch.as_tensor(z, dtype=torch.float32))

    def forward(self, x):
        return self.z.expand(len(x), -1)


def test_evaluate_on_a_hand_checkable_model():
    t = _task(eval_batch_size=3)  # batches of 3 do not divide 10: the tail counts correctly
    z = torch.arange(10, dtype=torch.float32) / 3  # predicts class 9 everywhere
    res = t.evaluate(ConstantLogits(z), "cpu")
    lse = torch.logsumexp(z, 0).item()

    def expected(labels):
        return float(np.mean([lse - z[c].item() for c in labels.tolist()])), (
            labels == 9
        ).float().mean().item()

    assert len(t.train_eval_y) == len(t.test_y) == 10  # training subset the size of the test set
    loss, acc = expected(t.test_y)
    assert res["test_loss"] == pytest.approx(loss, rel=1e-6) and res["test_acc"] == pytest.approx(acc)
    loss, acc = expected(t.train_eval_y)
    assert res["train_eval_loss"] == pytest.approx(loss, rel=1e-6) and res["train_eval_acc"] == pytest.approx(
        acc
    )
    assert res["val_loss"] == res["test_loss"]
    uniform = t.evaluate(ConstantLogits(torch.zeros(10)), "cpu")
    assert uniform["test_loss"] == pytest.approx(math.log(10), rel=1e-6)
    # the training subset is fixed (same for every task with this seed) and augmented
    t2 = _task(eval_batch_size=3)
    assert torch.equal(t.train_eval_x, t2.train_eval_x)
    assert not any(torch.equal(t.train_eval_x[i], t.train_x[j]) for i in range(10) for j in range(24))


def test_evaluate_restores_training_mode():
    t = _task()
    m = ConstantLogits(torch.zeros(10))
    m.train()
    t.evaluate(m, "cpu")
    assert m.training


# ----------------------------------------------------------------------------------------------
# the digits stand-in
# ----------------------------------------------------------------------------------------------
def test_digits_stand_in_loads():
    d = load_digits_images(16)
    assert d["train_x"].shape == (1437, 3, 16, 16) and d["test_x"].shape == (360, 3, 16, 16)
    assert d["train_x"].dtype == torch.uint8 and int(d["train_x"].max()) > 200
    assert torch.equal(d["train_x"][:, 0], d["train_x"][:, 2])  # grey replicated over channels
    assert sorted(d["test_y"].unique().tolist()) == list(range(10))
    counts = torch.bincount(d["test_y"], minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # stratified
    t = build_task(source="digits", image_size=16, batch_size=8)
    assert isinstance(t, Task)  # the data.Task protocol the trainer relies on
    assert t.padding == 2 and len(t.train_eval_x) == 360
    x, _ = t.batch("train", 0, 0)
    assert x.shape == (8, 3, 16, 16)
    assert abs(float(t.normalize(t.train_x).mean())) < 1e-3  # its own training-set statistics


def test_digits_stand_in_is_learnable():
    from adamlinf.models.resnet import resnet18_cifar

    torch.manual_seed(0)
    t = build_task(source="digits", image_size=16, batch_size=32, seed=0)
    model = resnet18_cifar(width=8, blocks=(1, 1, 1, 1), seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    fixed = [(t.normalize(t.train_eval_x[:64]), t.train_eval_y[:64])]
    with torch.no_grad():
        before = float(t.loss(model, fixed[0]))
    for step in range(30):
        opt.zero_grad()
        t.loss(model, t.batch("train", step, 0)).backward()
        opt.step()
    with torch.no_grad():
        after = float(t.loss(model, fixed[0]))
    assert before > 2.0 and after < 0.7 * before


def test_build_task_validates():
    with pytest.raises(ValueError, match="batch_size"):
        build_task(source="digits")
    with pytest.raises(ValueError, match="unknown image-task option"):
        build_task(source="digits", batch_size=4, crop=3)
    with pytest.raises(ValueError, match="source"):
        build_task(source="mnist", batch_size=4)


def test_bad_values_name_the_field():
    for key, value in (
        ("seed", "x"),
        ("batch_size", "4"),
        ("grad_accum", 0),
        ("padding", -1),
        ("eval_batch_size", 2.0),
    ):
        spec = {"kind": "cifar10", "source": "digits", "batch_size": 4, key: value}
        with pytest.raises(ValueError, match=rf"ImageTask\.{key} must be an integer"):
            build_any_task(spec)
    with pytest.raises(ValueError, match=r"digits\.image_size must be an integer >= 8"):
        build_task(source="digits", batch_size=4, image_size="16")


# ----------------------------------------------------------------------------------------------
# damaged CIFAR-10 files: the message names the file and the command, not "download=True"
# ----------------------------------------------------------------------------------------------
@pytest.fixture
def damaged(tmp_path):
    write_cifar10_format(tmp_path, *_tiny_arrays())
    folder = tmp_path / "cifar-10-batches-py"
    (folder / "data_batch_2").write_bytes(b"garbage" * 10)
    return tmp_path, folder


def test_garbage_cifar_file_is_named_with_the_command(damaged):
    root, folder = damaged
    with pytest.raises(pickle.UnpicklingError):  # what torchvision alone gives
        CIFAR10NoMD5(str(root), train=True)
    with pytest.raises(DataFormatError) as err:
        load_cifar10(root, verify_md5=False)
    msg = str(err.value)
    assert f"{folder / 'data_batch_2'} is not a readable CIFAR-10 pickle" in msg
    assert f"python -m adamlinf.data.images cifar10 --root {root} --archive cifar-10-python.tar.gz" in msg
    assert "download=True" not in msg
    with pytest.raises(DataFormatError, match="data_batch_2"):
        build_any_task({"kind": "cifar10", "root": str(root), "batch_size": 4, "verify_md5": False})
    with open(folder / "data_batch_2", "wb") as f:  # a pickle, but not CIFAR-10's
        pickle.dump({"images": []}, f)
    with pytest.raises(
        DataFormatError, match=r"data_batch_2 lacks the CIFAR-10 key\(s\) \['data', 'labels'\]"
    ):
        load_cifar10(root, verify_md5=False)


def test_md5_mismatch_names_the_files(damaged):
    root, folder = damaged
    with pytest.raises(RuntimeError, match="download=True"):  # what torchvision alone says
        CIFAR10(str(root), train=True)
    with pytest.raises(DataFormatError) as err:
        load_cifar10(root)
    msg = str(err.value)
    assert str(folder / "data_batch_2") in msg and str(folder / "batches.meta") in msg
    assert "md5 differs" in msg and "verify_md5=False" in msg and "--archive" in msg


def test_prepare_from_a_local_archive_and_offline_refusal(tmp_path, monkeypatch, capsys):
    src = tmp_path / "src"
    write_cifar10_format(src, *_tiny_arrays())
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    # the archive is extracted; the tiny set is not the official one, so the md5 check refuses it
    with pytest.raises(DataFormatError, match="md5 differs"):
        prepare_cifar10(tmp_path / "data", archive)
    data = load_cifar10(tmp_path / "data", verify_md5=False)
    assert data["train_x"].shape == (20, 3, 32, 32)
    assert main(["cifar10", "--root", str(tmp_path / "x"), "--archive", str(tmp_path / "nope.tar.gz")]) == 2
    assert "nope.tar.gz does not exist" in capsys.readouterr().err
    monkeypatch.setenv("ADAMLINF_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", lambda *a: pytest.fail("network attempted"))
    with pytest.raises(FileNotFoundError, match="offline mode is set"):
        prepare_cifar10(tmp_path / "y")
