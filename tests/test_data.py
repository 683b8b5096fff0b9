"""Data pipeline: corpora, tokenizer, token cache, packing and batch order (offline, seconds)."""

import collections
import filecmp
import itertools
import json
import re
import time

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from merino.corpus import hash_fraction, load_corpus
from merino.token_cache import (
    PackedDataset,
    batch_indices,
    build_token_cache,
    cache_key,
    prepare_data,
    read_cache_meta,
    stream_token_cache,
)
from merino.tokenizer import EOT, load_tokenizer, tokenizer_checksum, train_tokenizer

SMALL = {"source": "embedded", "max_chars": 600_000}  # reference topics and the first stdlib docstrings


@pytest.fixture(scope="session")
def corpus():
    return load_corpus({"source": "embedded"})


@pytest.fixture(scope="session")
def small_corpus():
    return load_corpus(SMALL)


@pytest.fixture(scope="session")
def tokenizer(small_corpus):
    return train_tokenizer(small_corpus, vocab_size=1024)


@pytest.fixture(scope="session")
def cache(small_corpus, tokenizer, tmp_path_factory):
    out = tmp_path_factory.mktemp("tokens")
    return out, build_token_cache(small_corpus, tokenizer, out)


# ---- embedded corpus --------------------------------------------------------------------------


@pytest.mark.slow
def test_embedded_corpus_is_sizeable_english(corpus):
    stats = corpus.stats()
    assert stats["train"]["documents"] > 1500 and stats["train"]["characters"] > 1_000_000
    words = collections.Counter(re.findall(r"[a-z]+", " ".join(corpus.splits["train"]).lower()))
    assert "the" in [w for w, _ in words.most_common(3)]
    assert all(doc == doc.strip() and doc for docs in corpus.splits.values() for doc in docs)


@pytest.mark.slow
def test_embedded_splits_disjoint_and_proportional(corpus):
    sets = {s: set(docs) for s, docs in corpus.splits.items()}
    assert not (sets["train"] & sets["validation"] or sets["train"] & sets["test"] or sets["validation"] & sets["test"])
    total = sum(len(d) for d in corpus.splits.values())
    assert len(set().union(*sets.values())) == total  # no document repeated
    for split in ("validation", "test"):
        assert abs(len(corpus.splits[split]) / total - 0.05) < 0.02
    assert all(hash_fraction(d) < 0.05 for d in corpus.splits["test"])
    assert all(0.05 <= hash_fraction(d) < 0.10 for d in corpus.splits["validation"])


@pytest.mark.slow
def test_embedded_corpus_is_deterministic_and_split_stable(corpus, small_corpus):
    again = load_corpus(SMALL)
    assert again.checksums == small_corpus.checksums and again.checksum == small_corpus.checksum
    assert sum(map(len, small_corpus.splits["train"])) <= 600_000
    # a document lands in the same split whatever else is in the corpus
    for split, docs in small_corpus.splits.items():
        assert set(docs) <= set(corpus.splits[split])


def test_split_fractions_are_configurable(small_corpus):
    c = load_corpus(SMALL | {"validation_fraction": 0.2, "test_fraction": 0.1})
    n = {s: len(d) for s, d in c.splits.items()}
    assert sum(n.values()) == sum(len(d) for d in small_corpus.splits.values())
    assert n["validation"] > len(small_corpus.splits["validation"]) and n["test"] >= len(small_corpus.splits["test"])


# ---- tokenizer ------------------------------------------------------------------------------


def test_tokenizer_round_trips_and_has_requested_size(tokenizer, small_corpus):
    assert len(tokenizer) == 1024 and tokenizer.vocab_size == 1024
    assert tokenizer.eos_token == tokenizer.bos_token == tokenizer.pad_token == EOT
    texts = [*small_corpus.splits["validation"][:3], "  Leading spaces, tabs\there, ünïcode — and 🐍.\n"]
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(ids) == text
        assert max(ids) < 1024


def test_tokenizer_is_deterministic(tokenizer, small_corpus):
    assert tokenizer_checksum(train_tokenizer(small_corpus, vocab_size=1024)) == tokenizer_checksum(tokenizer)


def test_tokenizer_saves_and_reloads(tokenizer, small_corpus, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    text = small_corpus.splits["test"][0]
    ids = tokenizer(text)["input_ids"]
    for loaded in (
        AutoTokenizer.from_pretrained(tmp_path),
        PreTrainedTokenizerFast.from_pretrained(tmp_path),
        load_tokenizer(tmp_path),
    ):
        assert loaded(text)["input_ids"] == ids
        assert loaded.eos_token_id == tokenizer.eos_token_id
        assert tokenizer_checksum(loaded) == tokenizer_checksum(tokenizer)


def test_load_tokenizer_from_spec(small_corpus, tokenizer):
    trained = load_tokenizer({"source": "train", "vocab_size": 1024}, small_corpus)
    assert tokenizer_checksum(trained) == tokenizer_checksum(tokenizer)
    with pytest.raises(ValueError, match="needs the corpus"):
        load_tokenizer({"source": "train", "vocab_size": 1024})
    with pytest.raises(ValueError, match="'source'.*'bpe'"):
        load_tokenizer({"source": "bpe"})
    with pytest.raises(FileNotFoundError, match="no_such_dir"):
        load_tokenizer("no_such_dir")


# ---- token cache and packing ----------------------------------------------------------------


def test_cache_meta_matches_streams(cache, small_corpus, tokenizer):
    out, meta = cache
    assert meta == read_cache_meta(out)
    assert meta["dtype"] == "uint16" and meta["vocab_size"] == 1024
    assert meta["corpus"]["sha256"] == small_corpus.checksum
    assert meta["tokenizer"]["sha256"] == tokenizer_checksum(tokenizer)
    eos = tokenizer.eos_token_id
    for split, info in meta["splits"].items():
        stream = np.fromfile(out / info["file"], dtype=np.uint16)
        assert len(stream) == info["tokens"]
        assert info["documents"] == len(small_corpus.splits[split]) == int((stream == eos).sum())
        assert stream[-1] == eos
    first = small_corpus.splits["train"][0]
    stream = np.fromfile(out / "train.bin", dtype=np.uint16)
    n = len(tokenizer(first, add_special_tokens=False)["input_ids"])
    assert tokenizer.decode(stream[:n].tolist()) == first and stream[n] == eos
    assert not list(out.glob(".*tmp*"))  # temporary files renamed away


def test_cache_is_reused_and_named_by_content(cache, small_corpus, tokenizer):
    out, meta = cache
    started = time.perf_counter()
    assert build_token_cache(small_corpus, tokenizer, out) == meta
    assert time.perf_counter() - started < 0.5
    key = cache_key(small_corpus, tokenizer)
    assert key == f"{small_corpus.checksum[:12]}-{tokenizer_checksum(tokenizer)[:12]}"


def test_packed_dataset_contiguous_fixed_length(cache):
    out, meta = cache
    seq_len = 64
    ds = PackedDataset(out, "train", seq_len)
    stream = np.fromfile(out / "train.bin", dtype=np.uint16).astype(np.int64)
    assert len(ds) == meta["splits"]["train"]["tokens"] // (seq_len + 1)
    items = [ds[i] for i in range(3)] + [ds[len(ds) - 1]]
    assert all(x.dtype == torch.long and x.shape == (seq_len + 1,) for x in items)
    assert torch.equal(torch.cat(items[:3]), torch.from_numpy(stream[: 3 * (seq_len + 1)]))
    assert torch.equal(ds[-1], items[-1])
    with pytest.raises(IndexError):
        ds[len(ds)]
    assert not ds.tokens.flags.writeable
    with pytest.raises(ValueError):
        ds.tokens[0] = 1


def test_packed_dataset_errors(cache, tmp_path):
    out, meta = cache
    too_long = meta["splits"]["test"]["tokens"]
    with pytest.raises(ValueError, match=f"seq_len {too_long} does not fit the test split"):
        PackedDataset(out, "test", too_long)
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "meta.json"))):
        PackedDataset(tmp_path, "train", 8)
    (tmp_path / "meta.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupt token cache meta .*meta.json"):
        PackedDataset(tmp_path, "train", 8)
    (tmp_path / "meta.json").write_text(json.dumps({"dtype": "uint16"}))
    with pytest.raises(ValueError, match="corrupt token cache meta"):
        read_cache_meta(tmp_path)
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(FileNotFoundError, match="train.bin"):
        PackedDataset(tmp_path, "train", 8)


def test_batch_indices_deterministic_and_resumable():
    n, bs, seed = 50, 8, 3
    full = [batch_indices(n, bs, step, seed) for step in range(40)]
    assert all(np.array_equal(a, batch_indices(n, bs, s, seed)) for s, a in enumerate(full))
    resumed = [batch_indices(n, bs, step, seed) for step in range(17, 40)]
    assert all(np.array_equal(a, b) for a, b in zip(resumed, full[17:], strict=True))
    walk = np.concatenate(full)
    for epoch in range(len(walk) // n):  # every epoch visits every sequence once, in a new order
        assert sorted(walk[epoch * n : (epoch + 1) * n]) == list(range(n))
    assert not np.array_equal(walk[:n], walk[n : 2 * n])
    assert not np.array_equal(full[0], batch_indices(n, bs, 0, seed + 1))
    with pytest.raises(ValueError, match="n_sequences"):
        batch_indices(0, bs, 0, seed)


def test_prepare_data(tmp_path, small_corpus):
    spec = {"corpus": SMALL, "tokenizer": {"source": "train", "vocab_size": 512}}
    meta = prepare_data(spec, tmp_path / "tokenizer", tmp_path / "tokens")
    assert meta["corpus"]["sha256"] == small_corpus.checksum
    assert len(load_tokenizer(tmp_path / "tokenizer")) == meta["vocab_size"] == 512
    assert len(PackedDataset(tmp_path / "tokens", "validation", 32)) > 0


# ---- files and hub sources, errors ----------------------------------------------------------


def test_files_source(tmp_path):
    (tmp_path / "a.txt").write_text("First document.\nStill the first.\n\nA second paragraph.\n")
    (tmp_path / "b.txt").write_text("Another file.\n")
    (tmp_path / "v.jsonl").write_text('{"text": "Validation one."}\n{"text": "  "}\n{"text": "Validation two."}\n')
    (tmp_path / "t.json").write_text('[{"body": "Test doc."}]')
    c = load_corpus(
        {
            "source": "files",
            "train": [str(tmp_path / "a.txt"), str(tmp_path / "b.txt")],
            "validation": str(tmp_path / "v.jsonl"),
            "test": [str(tmp_path / "v.jsonl")],
        }
    )
    assert c.splits["train"] == ["First document.\nStill the first.\n\nA second paragraph.", "Another file."]
    assert c.splits["validation"] == c.splits["test"] == ["Validation one.", "Validation two."]
    paragraphs = load_corpus({"source": "files", "train": str(tmp_path / "a.txt"), "sample_by": "paragraph"})
    assert sum(len(d) for d in paragraphs.splits.values()) == 2
    field = load_corpus(
        {
            "source": "files",
            "train": str(tmp_path / "t.json"),
            "text_field": "body",
            "validation_fraction": 0,
            "test_fraction": 0,
        }
    )
    assert field.splits == {"train": ["Test doc."], "validation": [], "test": []}
    with pytest.raises(ValueError, match="no field 'text'"):
        load_corpus({"source": "files", "train": str(tmp_path / "t.json")})
    with pytest.raises(ValueError, match="all be text"):
        load_corpus({"source": "files", "train": [str(tmp_path / "a.txt"), str(tmp_path / "v.jsonl")]})


def test_unknown_source_and_keys():
    with pytest.raises(ValueError, match=r"'source' must be one of embedded, files, hub; got 'web'"):
        load_corpus({"source": "web"})
    with pytest.raises(ValueError, match=r"got None"):
        load_corpus({})
    with pytest.raises(ValueError, match="unknown key.*'train'"):
        load_corpus({"source": "embedded", "train": "x.txt"})
    with pytest.raises(ValueError, match="validation_fraction and test_fraction"):
        load_corpus({"source": "embedded", "validation_fraction": 0.6, "test_fraction": 0.5})


def test_empty_corpus(tmp_path):
    (tmp_path / "blank.txt").write_text("  \n\n \t\n")
    with pytest.raises(ValueError, match="train split of the 'files' corpus is empty"):
        load_corpus({"source": "files", "train": str(tmp_path / "blank.txt")})
    with pytest.raises(ValueError, match="train split of the 'embedded' corpus is empty"):
        load_corpus({"source": "embedded", "max_documents": 0})


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.txt"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        load_corpus({"source": "files", "train": [str(missing)]})


def test_hub_offline_fails_fast(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    for name in ("lm1b", "EleutherAI/the_pile_deduplicated"):
        with pytest.raises(ConnectionError, match=rf"(?s)'{name}'.*unreachable.*source: files.*HF_DATASETS_OFFLINE=1"):
            load_corpus({"source": "hub", "name": name, "streaming": True, "max_documents": 10})
    with pytest.raises(ConnectionError, match="(?s)hub tokenizer 'gpt2'.*unreachable"):
        load_tokenizer({"source": "hub", "name": "gpt2"})
    assert time.perf_counter() - started < 10
    with pytest.raises(ValueError, match="needs max_documents or max_chars"):
        load_corpus({"source": "hub", "name": "lm1b", "streaming": True})


def test_hub_cached_mode_wraps_errors(monkeypatch):
    """With datasets itself in offline mode (env set before import), load_dataset is tried, from the cache."""
    import datasets

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    with pytest.raises(ConnectionError, match="'lm1b'.*if the Hugging Face Hub is unreachable.*source: files"):
        load_corpus({"source": "hub", "name": "lm1b", "test": "test"})


def test_hub_path_with_a_local_dataset_directory(tmp_path, monkeypatch):
    """``load_dataset`` also takes a local dataset directory: the hub code path, offline."""
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    (tmp_path / "train.jsonl").write_text(
        "".join(json.dumps({"text": f"Sentence number {i}."}) + "\n" for i in range(200))
    )
    (tmp_path / "test.jsonl").write_text('{"text": "Held-out sentence."}\n')
    c = load_corpus({"source": "hub", "name": str(tmp_path), "test": "test", "streaming": True, "max_documents": 100})
    assert c.splits["test"] == ["Held-out sentence."]
    assert len(c.splits["train"]) + len(c.splits["validation"]) == 100 and c.splits["validation"]
    assert c.splits["train"][0] == "Sentence number 0."
    with pytest.raises(ValueError, match="no field 'body'"):
        load_corpus({"source": "hub", "name": str(tmp_path), "text_field": "body"})


# ---- streamed hub corpora (no network: merino.corpus._hub_documents is replaced) --------------

HUB = {"source": "hub", "name": "fake/pile", "streaming": True}


def _raw(base, split, i):
    """Row ``i`` of a fake hub split: varied prose with padding, blanks and missing texts."""
    return None if i % 11 == 10 else " \n\t" if i % 5 == 4 else f"\n[{split} {i}] {base[7 * i % len(base)]}  "


def _expected(base, split, max_documents=None, max_chars=None):
    """The documents a capped read of ``split`` keeps, and how many rows it may pull for them (one past
    the last kept for max_chars, which must see the overflowing document; none past for max_documents)."""
    kept, chars = [], 0
    for i in itertools.count():
        row = _raw(base, split, i)
        doc = row.strip() if row else ""
        if not doc:
            continue
        if max_chars is not None and chars + len(doc) > max_chars:
            return kept, i + 1
        kept.append(doc)
        chars += len(doc)
        if max_documents is not None and len(kept) >= max_documents:
            return kept, i + 1


class _Stream:
    """One opened hub split: may be iterated once and pulled at most ``limit`` rows."""

    def __init__(self, rows, limit):
        self.rows, self.limit, self.pulled, self.iterated = rows, limit, 0, False

    def __iter__(self):
        if self.iterated:
            pytest.fail("a hub stream was iterated twice")
        self.iterated = True
        for row in self.rows:
            if self.limit is not None and self.pulled >= self.limit:
                pytest.fail(f"read row {self.pulled} of a hub stream; the caps allow {self.limit}")
            self.pulled += 1
            yield row


class _FakeHub:
    """Stands in for ``_hub_documents``: endless splits (or ``length`` rows), read within the caps of ``spec``."""

    def __init__(self, base, spec, length=None):
        self.base, self.spec, self.length, self.opened = base, spec, length, {}

    def __call__(self, name, config, split, streaming, text_field, revision):
        assert (name, config, streaming, text_field, revision) == ("fake/pile", None, True, "text", None)
        assert split not in self.opened, f"hub split {split!r} opened twice"
        caps = self.spec.get("max_documents"), self.spec.get("max_chars")
        limit = _expected(self.base, split, *caps)[1] if any(c is not None for c in caps) else None
        rows = range(self.length) if self.length is not None else itertools.count()
        self.opened[split] = _Stream((_raw(self.base, split, i) for i in rows), limit)
        return self.opened[split]

    @property
    def pulled(self):
        return sum(s.pulled for s in self.opened.values())


@pytest.fixture(scope="session")
def base(small_corpus):
    return small_corpus.splits["train"][:60]


@pytest.mark.parametrize(
    "spec",
    [
        HUB | {"max_documents": 300, "validation_fraction": 0.1, "test_fraction": 0.1},  # both carved from train
        HUB | {"validation": "validation", "test": "test", "max_chars": 150_000},  # given splits, each capped
        HUB | {"test": "test", "max_documents": 200, "validation_fraction": 0.2},  # validation carved, test given
    ],
    ids=["carved", "given", "mixed"],
)
def test_streamed_cache_equals_materialised(spec, base, tokenizer, tmp_path, monkeypatch):
    import merino.corpus
    import merino.token_cache

    hub = _FakeHub(base, spec)
    monkeypatch.setattr(merino.corpus, "_hub_documents", hub)
    flushes = []  # (rows pulled so far, batch size) at each tokenised batch
    flush = merino.token_cache._TokenWriter.flush
    monkeypatch.setattr(
        merino.token_cache._TokenWriter,
        "flush",
        lambda self: (self.batch and flushes.append((hub.pulled, len(self.batch))), flush(self)),
    )
    streamed = stream_token_cache(spec, tokenizer, tmp_path / "streamed", batch_size=16)
    assert sorted(hub.opened) == sorted({"train"} | {spec[s] for s in ("validation", "test") if s in spec})
    assert all(s.iterated for s in hub.opened.values())
    assert max(n for _, n in flushes) == 16 and flushes[0][0] < hub.pulled  # batches written while reading
    assert not list((tmp_path / "streamed").glob(".*tmp*"))

    monkeypatch.setattr(merino.corpus, "_hub_documents", _FakeHub(base, spec))
    corpus = load_corpus(spec)
    materialised = build_token_cache(corpus, tokenizer, tmp_path / "materialised", batch_size=7)
    for split in ("train", "validation", "test"):
        assert filecmp.cmp(
            tmp_path / "streamed" / f"{split}.bin", tmp_path / "materialised" / f"{split}.bin", shallow=False
        )
        assert corpus.splits[split], f"{split} is empty: the comparison would be vacuous"
    assert streamed.pop("tokenize_wall_s") >= 0 and materialised.pop("tokenize_wall_s") >= 0
    assert streamed == materialised
    assert streamed["corpus"]["sha256"] == corpus.checksum and streamed["corpus"]["spec"] == spec
    assert {
        s: {k: i[k] for k in ("documents", "characters", "sha256")} for s, i in streamed["splits"].items()
    } == corpus.stats()

    caps = spec.get("max_documents"), spec.get("max_chars")  # caps: the leading documents of each hub split
    train = _expected(base, "train", *caps)[0]
    if "validation" in spec:
        assert (
            corpus.splits["train"] == train and corpus.splits["validation"] == _expected(base, "validation", *caps)[0]
        )
    else:
        assert sum(len(corpus.splits[s]) for s in ("train", "validation")) + (
            0 if "test" in spec else len(corpus.splits["test"])
        ) == len(train)
    if "test" in spec:
        assert corpus.splits["test"] == _expected(base, "test", *caps)[0]
    if spec.get("max_chars"):
        assert all(streamed["splits"][s]["characters"] <= spec["max_chars"] for s in ("train", "validation", "test"))


def test_prepare_data_streams_hub_corpora(base, tokenizer, tmp_path, monkeypatch):
    """A streamed hub corpus is tokenised in one pass, needs no cap, and is never loaded as a Corpus."""
    import merino.corpus
    import merino.token_cache

    spec = {
        "corpus": HUB | {"validation_fraction": 0.1, "test_fraction": 0.1},
        "tokenizer": {"source": "hub", "name": "gpt2"},
    }
    hub = _FakeHub(base, spec["corpus"], length=500)
    monkeypatch.setattr(merino.corpus, "_hub_documents", hub)
    monkeypatch.setattr(merino.token_cache, "load_corpus", lambda *a: pytest.fail("a streamed corpus was materialised"))

    def hub_tokenizer(tok_spec, corpus=None):
        assert tok_spec == spec["tokenizer"] and corpus is None
        return tokenizer

    monkeypatch.setattr(merino.token_cache, "load_tokenizer", hub_tokenizer)
    meta = prepare_data(spec, tmp_path / "tokenizer", tmp_path / "tokens")
    assert list(hub.opened) == ["train"] and hub.opened["train"].pulled == 500
    kept = [row.strip() for row in (_raw(base, "train", i) for i in range(500)) if row and row.strip()]
    assert sum(info["documents"] for info in meta["splits"].values()) == len(kept)
    assert all(meta["splits"][s]["documents"] for s in ("train", "validation", "test"))
    assert meta == read_cache_meta(tmp_path / "tokens")
    assert tokenizer_checksum(load_tokenizer(tmp_path / "tokenizer")) == meta["tokenizer"]["sha256"]
    assert len(PackedDataset(tmp_path / "tokens", "train", 64)) > 0


def test_streaming_errors(base, tokenizer, tmp_path, monkeypatch):
    import merino.corpus

    monkeypatch.setattr(merino.corpus, "_hub_documents", lambda *a: pytest.fail("the hub was read"))
    trained = {"source": "train", "vocab_size": 512}
    with pytest.raises(ValueError, match=r"data\.tokenizer\.source must be 'hub' for a streamed corpus.*'train'"):
        prepare_data({"corpus": HUB, "tokenizer": trained}, tmp_path / "tokenizer", tmp_path / "tokens")
    with pytest.raises(ValueError, match=r"unknown key.*'split'"):
        prepare_data(
            {"corpus": HUB | {"split": "x"}, "tokenizer": {"source": "hub", "name": "gpt2"}},
            tmp_path / "tokenizer",
            tmp_path / "tokens",
        )
    with pytest.raises(ValueError, match="needs source 'hub' with streaming: true"):
        stream_token_cache(HUB | {"streaming": False}, tokenizer, tmp_path / "tokens")
    with pytest.raises(ValueError, match="needs max_documents or max_chars to be loaded into memory"):
        load_corpus(HUB)
    assert not (tmp_path / "tokens").exists() and not (tmp_path / "tokenizer").exists()

    monkeypatch.setattr(merino.corpus, "_hub_documents", lambda *a: iter(["  ", "\n", None]))
    with pytest.raises(ValueError, match="train split of the 'hub' corpus is empty"):
        stream_token_cache(HUB, tokenizer, tmp_path / "tokens")
    assert list((tmp_path / "tokens").iterdir()) == []  # temporary files removed, no meta
