"""Token caches: a corpus tokenised once, shared by training, proxies, quantization and evaluation.

* :func:`build_token_cache` tokenises every split of a :class:`~merino.corpus.Corpus` once into a flat
  ``<split>.bin`` stream (each document followed by eos) plus ``meta.json``.
  :func:`stream_token_cache` builds the same cache from a streamed hub corpus (``streaming: true``,
  e.g. The Pile) in one pass over the stream, holding one batch of documents per split at a time:
  caps apply lazily and missing validation/test splits are carved on the fly.  :func:`prepare_data`
  (config ``data`` -> tokenizer + cache) takes that path for streamed hub corpora (their tokenizer must be
  ``source: hub``).
* :class:`PackedDataset` serves fixed-length sequences from a cache through a read-only memmap
  and :func:`batch_indices` draws the batches.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from .corpus import (
    SPLITS,
    Corpus,
    SplitStats,
    check_corpus_spec,
    corpus_checksum,
    corpus_documents,
    empty_train_error,
    load_corpus,
)
from .tokenizer import load_tokenizer, tokenizer_checksum


def cache_key(corpus: Corpus, tokenizer) -> str:
    """A directory name shared by every model using this corpus and tokenizer."""
    return f"{corpus.checksum[:12]}-{tokenizer_checksum(tokenizer)[:12]}"


def _token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16 if vocab_size <= 2**16 else np.uint32)


@contextlib.contextmanager
def _atomic_file(path: Path):
    """A binary file opened beside ``path``, renamed over it when the block succeeds and removed
    when it fails."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            yield f
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class _TokenWriter:
    """Tokenises documents into ``f`` in batches of ``batch_size`` (each document followed by
    ``eos``), counting tokens and keeping the split's :class:`SplitStats`."""

    def __init__(self, f, backend, eos: int, dtype: np.dtype, batch_size: int):
        self.f, self.backend, self.eos, self.dtype, self.batch_size = f, backend, eos, dtype, batch_size
        self.batch, self.tokens, self.stats = [], 0, SplitStats()

    def add(self, doc: str):
        self.stats.add(doc)
        self.batch.append(doc)
        if len(self.batch) >= self.batch_size:
            self.flush()

    def flush(self):
        if not self.batch:
            return
        ids = []
        for enc in self.backend.encode_batch_fast(self.batch, add_special_tokens=False):
            ids += enc.ids
            ids.append(self.eos)
        np.asarray(ids, dtype=self.dtype).tofile(self.f)
        self.tokens += len(ids)
        self.batch = []


def _write_cache(
    out: Path, documents: Iterable[tuple[str, str]], tokenizer, source: str, spec: dict, batch_size: int
) -> dict:
    """Tokenise ``(split, document)`` pairs in one pass into ``out/<split>.bin`` (all three files
    open at once) and write ``meta.json`` last; returns the meta."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError(f"tokenizer {tokenizer.name_or_path!r} has no eos token to separate documents")
    out.mkdir(parents=True, exist_ok=True)
    (out / "meta.json").unlink(missing_ok=True)  # no stale meta beside new streams
    dtype = _token_dtype(len(tokenizer))
    started = time.perf_counter()
    with contextlib.ExitStack() as files:
        writers = {
            s: _TokenWriter(
                files.enter_context(_atomic_file(out / f"{s}.bin")), tokenizer.backend_tokenizer, eos, dtype, batch_size
            )
            for s in SPLITS
        }
        for split, doc in documents:
            writers[split].add(doc)
        for writer in writers.values():
            writer.flush()
        if not writers["train"].stats.documents:
            raise empty_train_error(source, spec)
    splits = {s: {"file": f"{s}.bin", "tokens": w.tokens} | w.stats.summary() for s, w in writers.items()}
    meta = {
        "format": "merino-token-cache/1",
        "dtype": dtype.name,
        "vocab_size": len(tokenizer),
        "eos_token_id": eos,
        "layout": "one flat stream per split, each document's tokens followed by eos_token_id; "
        "PackedDataset(seq_len) item i = tokens[i*(seq_len+1) : (i+1)*(seq_len+1)]",
        "splits": splits,
        "corpus": {
            "source": source,
            "sha256": corpus_checksum({s: i["sha256"] for s, i in splits.items()}),
            "spec": spec,
        },
        "tokenizer": {"name": tokenizer.name_or_path, "sha256": tokenizer_checksum(tokenizer)},
        "tokenize_wall_s": round(time.perf_counter() - started, 3),
    }
    text = json.dumps(meta, indent=2, default=str) + "\n"
    with _atomic_file(out / "meta.json") as f:
        f.write(text.encode())
    return meta


def build_token_cache(corpus: Corpus, tokenizer, out_dir: str | os.PathLike, batch_size: int = 1024) -> dict:
    """Tokenise every split once into ``out_dir/<split>.bin`` (each document followed by eos) and
    write ``meta.json`` last; returns the meta.  A cache whose meta already records this corpus
    and tokenizer is kept as it is."""
    out = Path(out_dir)
    try:
        meta = read_cache_meta(out)
        if (meta["corpus"]["sha256"], meta["tokenizer"]["sha256"]) == (corpus.checksum, tokenizer_checksum(tokenizer)):
            return meta
    except (FileNotFoundError, ValueError):
        pass
    documents = ((split, doc) for split, docs in corpus.splits.items() for doc in docs)
    return _write_cache(out, documents, tokenizer, corpus.source, corpus.spec, batch_size)


def stream_token_cache(spec: dict, tokenizer, out_dir: str | os.PathLike, batch_size: int = 1024) -> dict:
    """The token cache of the streamed hub corpus ``spec`` (``source: hub``, ``streaming: true``),
    built in one pass over the stream with at most one batch of documents per split in memory;
    caps are optional.  Same files and meta as :func:`build_token_cache` on the same documents
    materialised.  Always rebuilt: the corpus checksum is known only after the pass."""
    check_corpus_spec(spec)
    if spec["source"] != "hub" or not spec.get("streaming"):
        raise ValueError(f"data.corpus: stream_token_cache needs source 'hub' with streaming: true; got {spec}")
    documents = corpus_documents(spec)  # opens the hub splits now: a bad name fails before the cache is touched
    return _write_cache(Path(out_dir), documents, tokenizer, "hub", dict(spec), batch_size)


def read_cache_meta(cache_dir: str | os.PathLike) -> dict:
    """The ``meta.json`` of a token cache; a clear error naming it when missing or malformed."""
    path = Path(cache_dir) / "meta.json"
    if not path.is_file():
        raise FileNotFoundError(f"token cache meta not found: {path} (build the cache with build_token_cache)")
    try:
        meta = json.loads(path.read_text())
        np.dtype(meta["dtype"])
        if not all(isinstance(s["tokens"], int) and isinstance(s["file"], str) for s in meta["splits"].values()):
            raise ValueError("every split needs an integer 'tokens' and a 'file'")
        if not all(isinstance(meta[k]["sha256"], str) for k in ("corpus", "tokenizer")):
            raise ValueError("'corpus' and 'tokenizer' need a 'sha256'")
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ValueError(
            f"corrupt token cache meta {path}: {err!r}; delete the cache directory and rebuild it"
        ) from err
    return meta


class PackedDataset(torch.utils.data.Dataset):
    """Non-overlapping sequences of ``seq_len + 1`` tokens (inputs + shifted targets) of one split;
    item i is ``tokens[i*(seq_len+1) : (i+1)*(seq_len+1)]``, the last partial one dropped."""

    def __init__(self, cache_dir: str | os.PathLike, split: str, seq_len: int):
        self.meta = read_cache_meta(cache_dir)
        if split not in self.meta["splits"]:
            raise ValueError(f"split {split!r} not in token cache {cache_dir} (has {sorted(self.meta['splits'])})")
        info = self.meta["splits"][split]
        path = Path(cache_dir) / info["file"]
        dtype = np.dtype(self.meta["dtype"])
        if not path.is_file():
            raise FileNotFoundError(f"token file not found: {path}")
        if path.stat().st_size != info["tokens"] * dtype.itemsize:
            raise ValueError(
                f"token file {path} has {path.stat().st_size} bytes, meta.json says "
                f"{info['tokens']} x {dtype.itemsize}; rebuild the cache"
            )
        if seq_len < 1 or info["tokens"] < seq_len + 1:
            raise ValueError(
                f"seq_len {seq_len} does not fit the {split} split of {cache_dir}: it has "
                f"{info['tokens']} tokens, one sequence needs seq_len + 1"
            )
        self.seq_len = seq_len
        self.tokens = np.memmap(path, dtype=dtype, mode="r")
        self.n = len(self.tokens) // (seq_len + 1)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> torch.Tensor:
        if not -self.n <= i < self.n:
            raise IndexError(f"sequence {i} out of range for {self.n} sequences")
        start = (i % self.n) * (self.seq_len + 1)
        return torch.from_numpy(self.tokens[start : start + self.seq_len + 1].astype(np.int64))


@functools.lru_cache(maxsize=4)
def _epoch_permutation(n_sequences: int, seed: int, epoch: int) -> np.ndarray:
    perm = np.random.default_rng([seed, epoch]).permutation(n_sequences)
    perm.flags.writeable = False
    return perm


def batch_indices(n_sequences: int, batch_size: int, step: int, seed: int) -> np.ndarray:
    """Sequence indices of batch ``step``: positions ``step*batch_size ...`` of an endless walk over
    per-epoch permutations (``default_rng([seed, epoch])``).  Stateless, so a resumed run draws
    exactly the batches the uninterrupted one would have."""
    if n_sequences < 1 or batch_size < 1 or step < 0:
        raise ValueError(f"need n_sequences >= 1, batch_size >= 1, step >= 0; got {n_sequences}, {batch_size}, {step}")
    positions = np.arange(step * batch_size, (step + 1) * batch_size, dtype=np.int64)
    epochs, offsets = np.divmod(positions, n_sequences)
    out = np.empty(batch_size, dtype=np.int64)
    for epoch in np.unique(epochs):
        mask = epochs == epoch
        out[mask] = _epoch_permutation(n_sequences, seed, int(epoch))[offsets[mask]]
    return out


def prepare_data(spec: dict, tokenizer_dir: str | os.PathLike, cache_dir: str | os.PathLike) -> dict:
    """``config["data"]`` -> a saved tokenizer in ``tokenizer_dir`` and a token cache in ``cache_dir``;
    returns the cache meta with the corpus statistics.  A streamed hub corpus (``streaming: true``)
    goes through :func:`stream_token_cache` and needs a pretrained (``source: hub``) tokenizer."""
    corpus_spec = spec["corpus"]
    if corpus_spec.get("source") == "hub" and corpus_spec.get("streaming"):
        check_corpus_spec(corpus_spec)
        if spec["tokenizer"].get("source") != "hub":
            raise ValueError(
                f"data.tokenizer.source must be 'hub' for a streamed corpus (data.corpus.streaming: "
                f"true), got {spec['tokenizer'].get('source')!r}: training a BPE needs the corpus in "
                "memory; name a pretrained one, e.g. {source: hub, name: gpt2}"
            )
        tokenizer = load_tokenizer(spec["tokenizer"])
        tokenizer.save_pretrained(tokenizer_dir)
        return stream_token_cache(corpus_spec, tokenizer, cache_dir)
    corpus = load_corpus(corpus_spec)
    tokenizer = load_tokenizer(spec["tokenizer"], corpus)
    tokenizer.save_pretrained(tokenizer_dir)
    return build_token_cache(corpus, tokenizer, cache_dir)
