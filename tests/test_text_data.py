"""Text data (adamlinf.data.text): the offline pydoc corpus, uint16 memmaps, deterministic LM
batches that do not depend on how a global batch is split, clear errors for missing data, and
tiktoken's GPT-2 BPE served offline."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from adamlinf.data import DataNotFoundError, LMTask, Task, build_task
from adamlinf.data import text


pytestmark = pytest.mark.usefixtures("one_thread")


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
    assert text.decode_bytes(np.concatenate([train, val])) == text.pydoc_corpus()


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
    task = build_task({"kind": "lm", "dataset": "pydoc", "root": str(root), "block_size": 32, "batch_size": 4})
    assert isinstance(task, Task) and task.vocab_size == 256
    x, y = task.batch("train", 7, 1, rank=1, world=2)
    assert x.shape == y.shape == (4, 32) and x.dtype == torch.int64
    torch.testing.assert_close(x[:, 1:], y[:, :-1])
    x2, y2 = task.batch("train", 7, 1, rank=1, world=2)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    data = text.read_tokens(root / "pydoc" / "train.bin")
    offs = task.offsets("train", 7, (1 * 2 + 1) * 4, 4)
    for row, o in zip(x, offs):
        np.testing.assert_array_equal(row.numpy(), data[o:o + 32])
    assert not torch.equal(task.batch("train", 8, 1, 1, 2)[0], x)      # other step
    assert not torch.equal(task.batch("train", 7, 1, 0, 2)[0], x)      # other rank
    assert not torch.equal(task.batch("val", 7, 1, 1, 2)[0], x)        # other split
    with pytest.raises(ValueError):
        task.batch("test", 0, 0)
    with pytest.raises(ValueError):
        task.batch("train", 0, 0, rank=2, world=2)


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
    from adamlinf.models import GPT, GPTConfig
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
    assert text.ensure("pydoc", root=tmp_path) == tmp_path / "pydoc"   # offline corpus: prepared
    assert text.check_prepared("pydoc", root=tmp_path) == tmp_path / "pydoc"
    with pytest.raises(DataNotFoundError, match="openwebtext"):
        text.ensure("openwebtext", root=tmp_path)                      # never downloaded implicitly
    with pytest.raises(ValueError, match="unknown task kind"):
        build_task({"kind": "mnist"})


def test_openwebtext_offline_fails_fast_with_our_message(tmp_path):
    env = dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    proc = subprocess.run([sys.executable, "-m", "adamlinf.data.text", "openwebtext", "--root",
                           str(tmp_path)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "~54 GB" in proc.stdout and "~17 GB" in proc.stdout
    assert "could not load OpenWebText" in proc.stderr and "--source" in proc.stderr
    assert not (tmp_path / "openwebtext" / "train.bin").exists()


def test_tiktoken_gpt2_offline(tmp_path, monkeypatch):
    import tiktoken
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "cache"))
    cache = text.offline_tiktoken_cache()
    assert cache == tmp_path / "cache" and os.environ["TIKTOKEN_CACHE_DIR"] == str(cache)
    assert len(list(cache.iterdir())) == 2
    # tiktoken's own loader, reading the cache (it checks the sha256 of each file)
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks
    ranks = data_gym_to_mergeable_bpe_ranks(vocab_bpe_file=text.GPT2_BPE_URLS["vocab.bpe"],
                                            encoder_json_file=text.GPT2_BPE_URLS["encoder.json"],
                                            vocab_bpe_hash=text.GPT2_BPE_SHA256["vocab.bpe"],
                                            encoder_json_hash=text.GPT2_BPE_SHA256["encoder.json"])
    assert len(ranks) == 50256
    enc = tiktoken.get_encoding("gpt2")
    assert enc.encode("Hello world") == [15496, 995]
    assert enc.eot_token == 50256
    sample = text.pydoc_corpus()[:5000]
    assert enc.decode(enc.encode_ordinary(sample)) == sample


def test_prepare_bpe_memmaps(tmp_path, monkeypatch):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "cache"))
    docs = ["The quick brown fox.", "Jumps over the lazy dog.", "Hello world", "Lorem ipsum dolor."]
    meta = text.prepare_bpe(docs, tmp_path / "bpe", val_fraction=0.25)
    assert meta["vocab_size"] == 50257 and meta["tokenizer"] == "tiktoken:gpt2"
    val = text.read_tokens(tmp_path / "bpe" / "val.bin")
    enc = text.gpt2_encoding()
    np.testing.assert_array_equal(val, enc.encode_ordinary(docs[-1]) + [50256])
    train = text.read_tokens(tmp_path / "bpe" / "train.bin")
    assert list(train).count(50256) == 3 and list(train[-3:]) == [15496, 995, 50256]
    assert enc.decode(list(train)) == "<|endoftext|>".join(docs[:3]) + "<|endoftext|>"
    # the whole pydoc corpus under BPE, read back through LMTask
    out = text.prepare_pydoc_bpe(root=tmp_path)
    meta = text.load_meta(out)
    both = np.concatenate([text.read_tokens(out / "train.bin"), text.read_tokens(out / "val.bin")])
    assert enc.decode(both[:-1].tolist()) == text.pydoc_corpus()
    task = LMTask(dataset="pydoc_bpe", root=str(tmp_path), block_size=64, batch_size=2)
    x, y = task.batch("val", 0, 0)
    assert task.vocab_size == 50257 and int(x.max()) < 50257 and x.shape == (2, 64)
