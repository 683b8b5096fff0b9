"""Data pipeline: corpora, tokenizer, and packed token caches shared by training and evaluation.

* :func:`load_corpus` reads a corpus spec (``config["data"]["corpus"]``) into a :class:`Corpus`
  with ``train``/``validation``/``test`` document lists.  Sources:

  - ``embedded``: English prose shipped with Python itself, no download: the reference topics
    of ``pydoc_data.topics`` and the module/class/function docstrings (>= 200 characters) of the
    standard library's ``.py`` files, parsed with :mod:`ast` (never imported).
  - ``files``: local ``.txt`` files (one document per file; ``sample_by: paragraph`` makes every
    blank-line-separated paragraph one) or ``.json``/``.jsonl`` files with a ``text`` field.
  - ``hub``: a Hugging Face dataset by name, e.g. ``lm1b`` or ``EleutherAI/the_pile_deduplicated``.

  Documents are stripped of surrounding whitespace; empty ones are dropped.  A split that is not
  given explicitly (always, for ``embedded``) is carved out of the training documents by a stable
  hash of each document's text, so the assignment depends on neither order nor hash seed, and
  needs no document but the current one.
* :func:`train_tokenizer` / :func:`load_tokenizer`: a byte-level BPE trained on the training
  split, or a pretrained one from the Hub (GPT-2, GPT-NeoX), with ``<|endoftext|>`` as eos.
* :func:`build_token_cache` tokenises every split of a :class:`Corpus` once into a flat
  ``<split>.bin`` stream (each document followed by eos) plus ``meta.json``.
  :func:`stream_token_cache` builds the same cache from a streamed hub corpus (``streaming: true``,
  e.g. The Pile) in one pass over the stream, holding one batch of documents per split at a time:
  caps apply lazily and missing validation/test splits are carved on the fly.  :func:`prepare_data`
  takes that path for streamed hub corpora (their tokenizer must be ``source: hub``).
* :class:`PackedDataset` serves fixed-length sequences from a cache through a read-only memmap
  and :func:`batch_indices` draws the batches.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import hashlib
import inspect
import itertools
import json
import os
import sysconfig
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

SPLITS = ("train", "validation", "test")
SOURCES = ("embedded", "files", "hub")
EOT = "<|endoftext|>"
EMBEDDED_MIN_DOC_CHARS = 200
EMBEDDED_SKIP_DIRS = frozenset({"test", "tests", "idlelib", "lib2to3", "site-packages"})
TEXT_SUFFIXES = {".txt": "text", ".text": "text", ".json": "json", ".jsonl": "json"}
HUB_HELP = ("pre-stage the data: either export it to local text/JSONL files and use `source: files` with "
            "train/validation/test paths, or load it once on a machine with network access so it lands in the "
            "datasets cache (HF_HOME / HF_DATASETS_CACHE), copy that cache here and run with HF_DATASETS_OFFLINE=1 "
            "HF_HUB_OFFLINE=1 set before starting Python")
_COMMON_KEYS = {"source", "validation_fraction", "test_fraction", "max_documents", "max_chars"}
_SOURCE_KEYS = {"embedded": set(), "files": {"train", "validation", "test", "sample_by", "text_field"},
                "hub": {"name", "config", "revision", "train", "validation", "test", "streaming", "text_field"}}


# ----------------------------------------------------------------------------------------------
# corpora


class _SplitStats:
    """Documents, characters and sha256 of one split, fed a document at a time.  The sha256 covers
    the documents in order, each prefixed by its UTF-8 length (8 bytes, little-endian), so
    boundaries count."""

    def __init__(self, docs: Iterable[str] = ()):
        self.documents = self.characters = 0
        self._sha = hashlib.sha256()
        for doc in docs:
            self.add(doc)

    def add(self, doc: str):
        b = doc.encode("utf-8")
        self._sha.update(len(b).to_bytes(8, "little"))
        self._sha.update(b)
        self.documents += 1
        self.characters += len(doc)

    def summary(self) -> dict:
        return {"documents": self.documents, "characters": self.characters, "sha256": self._sha.hexdigest()}


def _corpus_checksum(checksums: dict[str, str]) -> str:
    """One sha256 over the split checksums: identifies the corpus as a whole."""
    return hashlib.sha256(json.dumps(checksums, sort_keys=True).encode()).hexdigest()


def _empty_train_error(source: str, spec: dict) -> ValueError:
    return ValueError(f"the train split of the {source!r} corpus is empty (no documents, or only "
                      f"whitespace); check data.corpus ({spec})")


@dataclass
class Corpus:
    """Documents per split (``train``, ``validation``, ``test``) and where they came from."""

    source: str
    splits: dict[str, list[str]]
    spec: dict = field(default_factory=dict)

    def __post_init__(self):
        if not any(doc.strip() for doc in self.splits.get("train", [])):
            raise _empty_train_error(self.source, self.spec)
        self.splits = {s: list(self.splits.get(s, [])) for s in SPLITS}
        self._stats = {s: _SplitStats(docs).summary() for s, docs in self.splits.items()}
        self.checksums = {s: stats["sha256"] for s, stats in self._stats.items()}

    @property
    def checksum(self) -> str:
        """One sha256 over the three split checksums: identifies the corpus as a whole."""
        return _corpus_checksum(self.checksums)

    def stats(self) -> dict:
        """Documents, characters and sha256 per split."""
        return {s: dict(stats) for s, stats in self._stats.items()}


def load_corpus(spec: dict) -> Corpus:
    """The corpus described by ``spec`` (``config["data"]["corpus"]``), read into memory; see the
    module docstring.

    Keys for every source: ``source``; ``validation_fraction`` and ``test_fraction`` (default 0.05
    each) for splits carved out of train; ``max_documents`` / ``max_chars`` cap each loaded split
    (the embedded pool before it is split), keeping the leading documents.  ``files``:
    ``train``/``validation``/``test`` (a path or a list), ``sample_by`` (``document`` | ``paragraph``
    | ``line`` for .txt), ``text_field`` (``text``).  ``hub``: ``name``, ``config``,
    ``train``/``validation``/``test`` (the dataset's split names; train defaults to ``train``),
    ``streaming`` (read lazily; loading it into memory here needs a cap, :func:`stream_token_cache`
    does not), ``text_field``.
    """
    _check_spec(spec)
    if spec["source"] == "hub" and spec.get("streaming") and not (spec.get("max_documents") or spec.get("max_chars")):
        raise ValueError("data.corpus: a streamed hub dataset needs max_documents or max_chars to be loaded into "
                         "memory (stream_token_cache / prepare_data tokenise it without one)")
    splits = {s: [] for s in SPLITS}
    for split, doc in _corpus_documents(spec):
        splits[split].append(doc)
    return Corpus(spec["source"], splits, dict(spec))


def _check_spec(spec: dict) -> tuple[float, float]:
    """Checks the source and keys of a corpus spec; its (validation, test) fractions."""
    source = spec.get("source")
    if source not in SOURCES:
        raise ValueError(f"data.corpus: key 'source' must be one of {', '.join(SOURCES)}; got {source!r}")
    unknown = sorted(set(spec) - _COMMON_KEYS - _SOURCE_KEYS[source])
    if unknown:
        raise ValueError(f"data.corpus: unknown key(s) {unknown} for source {source!r}; allowed: "
                         f"{sorted(_COMMON_KEYS | _SOURCE_KEYS[source])}")
    fractions = (float(spec.get("validation_fraction", 0.05)), float(spec.get("test_fraction", 0.05)))
    if min(fractions) < 0 or sum(fractions) >= 1:
        raise ValueError(f"data.corpus: validation_fraction and test_fraction must be >= 0 with a sum below 1; "
                         f"got {fractions}")
    if source == "files" and not spec.get("train"):
        raise ValueError("data.corpus: source 'files' needs key 'train' (a path or a list of paths)")
    if source == "hub" and not spec.get("name"):
        raise ValueError("data.corpus: source 'hub' needs key 'name' (a Hugging Face dataset, e.g. 'lm1b')")
    return fractions


def _corpus_documents(spec: dict) -> Iterator[tuple[str, str]]:
    """``(split, document)`` pairs of the corpus ``spec``, capped and carved in one lazy pass.

    The sources are opened at once (so a bad path, name or field fails before any document is
    used); their documents are read only as the pairs are consumed, each split's in order."""
    fractions = _check_spec(spec)
    source = spec["source"]
    cap = functools.partial(_cap, max_documents=spec.get("max_documents"), max_chars=spec.get("max_chars"))
    if source == "embedded":
        given = {"train": cap(_embedded_documents())}
    elif source == "files":
        given = {s: cap(_file_documents(spec[s], spec.get("sample_by", "document"), spec.get("text_field", "text")))
                 for s in SPLITS if spec.get(s)}
    else:
        names = {"train": "train"} | {s: spec[s] for s in SPLITS if spec.get(s)}
        given = {s: cap(_hub_documents(spec["name"], spec.get("config"), hub_split, bool(spec.get("streaming")),
                                       spec.get("text_field", "text"), spec.get("revision")))
                 for s, hub_split in names.items()}
    return _carve(given, *fractions)


def _cap(docs: Iterable[str], max_documents: int | None, max_chars: int | None) -> Iterator[str]:
    """The leading stripped, non-empty documents within both caps, lazily: stops reading once
    ``max_documents`` are out, or at the first document that would exceed ``max_chars``."""
    if max_documents is not None and max_documents <= 0:
        return
    n = chars = 0
    for doc in docs:
        doc = doc.strip() if isinstance(doc, str) else ""
        if not doc:
            continue
        if max_chars is not None and chars + len(doc) > max_chars:
            return
        yield doc
        n, chars = n + 1, chars + len(doc)
        if max_documents is not None and n >= max_documents:
            return


def hash_fraction(text: str) -> float:
    """A stable number in [0, 1) from the sha1 of ``text``."""
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:13], 16) / 16**13


def _carve(given: dict[str, Iterable[str]], validation_fraction: float,
           test_fraction: float) -> Iterator[tuple[str, str]]:
    """``(split, document)`` pairs of the ``given`` splits, lazily; a split missing from ``given``
    takes the train documents whose hash fraction falls in its band: ``[0, test)`` -> test,
    ``[test, test + validation)`` -> validation (bands of given splits stay in train)."""
    missing = {s for s in ("validation", "test") if s not in given}
    for split, docs in given.items():
        for doc in docs:
            if split == "train" and missing:
                u = hash_fraction(doc)
                band = "test" if u < test_fraction else "validation" if u < test_fraction + validation_fraction \
                    else "train"
                yield (band if band in missing else "train"), doc
            else:
                yield split, doc


def _clean(text: str) -> str:
    """Dedent (first line apart, as for docstrings), expand tabs, strip."""
    return inspect.cleandoc(text).strip()


def _embedded_documents() -> Iterator[str]:
    """Python's reference topics (sorted by name), then stdlib docstrings of at least
    :data:`EMBEDDED_MIN_DOC_CHARS` (files sorted by path, nodes in ``ast.walk`` order), each
    cleaned by :func:`_clean`; exact repeats are skipped."""
    seen = set()
    for doc in itertools.chain(_topic_texts(), _docstring_texts()):
        if doc not in seen:
            seen.add(doc)
            yield doc


def _topic_texts() -> Iterator[str]:
    from pydoc_data.topics import topics

    return (_clean(topics[name]) for name in sorted(topics))


def _docstring_texts() -> Iterator[str]:
    root = Path(sysconfig.get_paths()["stdlib"])
    files = []
    for directory, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in EMBEDDED_SKIP_DIRS]
        files += [Path(directory, n).relative_to(root).as_posix() for n in names if n.endswith(".py")]
    for rel in sorted(files):
        tree = ast.parse((root / rel).read_bytes(), filename=rel)  # parsed, never imported
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = _clean(ast.get_docstring(node, clean=False) or "")
                if len(doc) >= EMBEDDED_MIN_DOC_CHARS:
                    yield doc


def _file_documents(paths: str | list[str], sample_by: str, text_field: str) -> list[str]:
    """Documents of local text or JSON(L) files (one format per split), read with ``datasets``."""
    import datasets

    paths = [Path(p) for p in ([paths] if isinstance(paths, (str, os.PathLike)) else paths)]
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"corpus file not found: {p}")
    kinds = {TEXT_SUFFIXES.get(p.suffix.lower()) for p in paths}
    if None in kinds or len(kinds) > 1:
        raise ValueError(f"the corpus files of one split must all be text (.txt, .text) or all JSON (.json, "
                         f".jsonl); got {[str(p) for p in paths]}")
    kind = kinds.pop()
    if kind == "text" and sample_by not in ("document", "paragraph", "line"):
        raise ValueError(f"data.corpus: sample_by must be document, paragraph or line; got {sample_by!r}")
    options = {"sample_by": sample_by} if kind == "text" else {}
    ds = datasets.load_dataset(kind, data_files=[str(p) for p in paths], split="train", **options)
    if kind == "json" and text_field not in ds.column_names:
        raise ValueError(f"corpus files {[str(p) for p in paths]} have no field {text_field!r} "
                         f"(fields: {ds.column_names}); set data.corpus.text_field")
    return ds["text" if kind == "text" else text_field]


def _hub_offline() -> bool:
    return any(os.environ.get(v, "").upper() in {"1", "ON", "YES", "TRUE"}
               for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def _hub_documents(name: str, config: str | None, split: str, streaming: bool, text_field: str,
                   revision: str | None = None) -> Iterator[str]:
    """Texts of one split of a Hub dataset; fails fast with :data:`HUB_HELP` when it cannot be had.

    Offline mode (``HF_*_OFFLINE``) is honoured by ``datasets`` only when set before it is imported;
    set later, it would not stop a network attempt, so that case fails at once without one."""
    import datasets

    what = f"hub dataset {name!r} (config {config!r}, split {split!r})"
    if _hub_offline() and not datasets.config.HF_HUB_OFFLINE:
        raise ConnectionError(f"cannot load {what}: the Hugging Face Hub is unreachable (offline mode: "
                              f"HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set); {HUB_HELP}")
    try:
        ds = datasets.load_dataset(name, config, split=split, streaming=streaming, revision=revision)
    except Exception as err:  # offline, not cached, unknown name or config: the same remedies apply
        raise ConnectionError(f"cannot load {what} ({err}); if the Hugging Face Hub is unreachable from here, "
                              f"{HUB_HELP}") from err
    if ds.column_names is not None and text_field not in ds.column_names:
        raise ValueError(f"{what} has no field {text_field!r} (fields: {ds.column_names}); "
                         "set data.corpus.text_field")
    return (row[text_field] for row in ds)


# ----------------------------------------------------------------------------------------------
# tokenizer


def train_tokenizer(corpus: Corpus, vocab_size: int = 4096, min_frequency: int = 2):
    """A byte-level BPE trained on the training split, as a ``PreTrainedTokenizerFast``.

    ``<|endoftext|>`` (id 0) is the only special token and serves as bos, eos and pad.  The
    result depends only on the training documents (no normaliser; decode(encode(x)) == x)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if vocab_size < 257:
        raise ValueError(f"vocab_size must be at least 257 (256 bytes + {EOT}); got {vocab_size}")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=[EOT],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus.splits["train"], trainer, length=len(corpus.splits["train"]))
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=EOT, eos_token=EOT, pad_token=EOT,
                                   clean_up_tokenization_spaces=False, name_or_path=f"byte-level-bpe-{vocab_size}")


def load_tokenizer(spec_or_path: dict | str | os.PathLike, corpus: Corpus | None = None):
    """A tokenizer from a saved directory, or from a spec (``config["data"]["tokenizer"]``):
    ``{source: train, vocab_size}`` trains on ``corpus``; ``{source: hub, name}`` loads a pretrained
    one (e.g. ``gpt2``, ``EleutherAI/gpt-neox-20b``; pad defaults to eos)."""
    from transformers import AutoTokenizer

    if isinstance(spec_or_path, (str, os.PathLike)):
        path = Path(spec_or_path)
        if not (path / "tokenizer_config.json").is_file():
            raise FileNotFoundError(f"no saved tokenizer at {path} (tokenizer_config.json missing)")
        return AutoTokenizer.from_pretrained(path)
    spec = spec_or_path
    source = spec.get("source")
    if source == "train":
        if corpus is None:
            raise ValueError("data.tokenizer: source 'train' needs the corpus to train on")
        return train_tokenizer(corpus, int(spec.get("vocab_size", 4096)))
    if source == "hub":
        if not spec.get("name"):
            raise ValueError("data.tokenizer: source 'hub' needs key 'name' (e.g. 'gpt2')")
        try:  # offline: from the local cache only, failing at once
            tok = AutoTokenizer.from_pretrained(spec["name"], local_files_only=_hub_offline())
        except Exception as err:
            raise ConnectionError(f"cannot load hub tokenizer {spec['name']!r} ({err}); if the Hugging Face Hub "
                                  "is unreachable from here, save it once elsewhere with save_pretrained and give "
                                  "that directory instead, or stage the HF_HOME cache and set HF_HUB_OFFLINE=1"
                                  ) from err
        if tok.eos_token is None:
            raise ValueError(f"hub tokenizer {spec['name']!r} has no eos token to separate documents")
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        return tok
    raise ValueError(f"data.tokenizer: key 'source' must be one of train, hub; got {source!r}")


def tokenizer_checksum(tokenizer) -> str:
    """sha256 of the serialised fast tokenizer (vocabulary, merges, pre-tokenizer, specials)."""
    return hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode("utf-8")).hexdigest()


# ----------------------------------------------------------------------------------------------
# token cache


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
    ``eos``), counting tokens and keeping the split's :class:`_SplitStats`."""

    def __init__(self, f, backend, eos: int, dtype: np.dtype, batch_size: int):
        self.f, self.backend, self.eos, self.dtype, self.batch_size = f, backend, eos, dtype, batch_size
        self.batch, self.tokens, self.stats = [], 0, _SplitStats()

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


def _write_cache(out: Path, documents: Iterable[tuple[str, str]], tokenizer, source: str, spec: dict,
                 batch_size: int) -> dict:
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
        writers = {s: _TokenWriter(files.enter_context(_atomic_file(out / f"{s}.bin")), tokenizer.backend_tokenizer,
                                   eos, dtype, batch_size) for s in SPLITS}
        for split, doc in documents:
            writers[split].add(doc)
        for writer in writers.values():
            writer.flush()
        if not writers["train"].stats.documents:
            raise _empty_train_error(source, spec)
    splits = {s: {"file": f"{s}.bin", "tokens": w.tokens} | w.stats.summary() for s, w in writers.items()}
    meta = {"format": "merino-token-cache/1", "dtype": dtype.name, "vocab_size": len(tokenizer), "eos_token_id": eos,
            "layout": "one flat stream per split, each document's tokens followed by eos_token_id; "
                      "PackedDataset(seq_len) item i = tokens[i*(seq_len+1) : (i+1)*(seq_len+1)]",
            "splits": splits,
            "corpus": {"source": source, "sha256": _corpus_checksum({s: i["sha256"] for s, i in splits.items()}),
                       "spec": spec},
            "tokenizer": {"name": tokenizer.name_or_path, "sha256": tokenizer_checksum(tokenizer)},
            "tokenize_wall_s": round(time.perf_counter() - started, 3)}
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
    _check_spec(spec)
    if spec["source"] != "hub" or not spec.get("streaming"):
        raise ValueError(f"data.corpus: stream_token_cache needs source 'hub' with streaming: true; got {spec}")
    documents = _corpus_documents(spec)  # opens the hub splits now: a bad name fails before the cache is touched
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
        raise ValueError(f"corrupt token cache meta {path}: {err!r}; delete the cache directory and rebuild it"
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
            raise ValueError(f"token file {path} has {path.stat().st_size} bytes, meta.json says "
                             f"{info['tokens']} x {dtype.itemsize}; rebuild the cache")
        if seq_len < 1 or info["tokens"] < seq_len + 1:
            raise ValueError(f"seq_len {seq_len} does not fit the {split} split of {cache_dir}: it has "
                             f"{info['tokens']} tokens, one sequence needs seq_len + 1")
        self.seq_len = seq_len
        self.tokens = np.memmap(path, dtype=dtype, mode="r")
        self.n = len(self.tokens) // (seq_len + 1)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> torch.Tensor:
        if not -self.n <= i < self.n:
            raise IndexError(f"sequence {i} out of range for {self.n} sequences")
        start = (i % self.n) * (self.seq_len + 1)
        return torch.from_numpy(self.tokens[start:start + self.seq_len + 1].astype(np.int64))


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
        raise ValueError(f"need n_sequences >= 1, batch_size >= 1, step >= 0; "
                         f"got {n_sequences}, {batch_size}, {step}")
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
        _check_spec(corpus_spec)
        if spec["tokenizer"].get("source") != "hub":
            raise ValueError(f"data.tokenizer.source must be 'hub' for a streamed corpus (data.corpus.streaming: "
                             f"true), got {spec['tokenizer'].get('source')!r}: training a BPE needs the corpus in "
                             "memory; name a pretrained one, e.g. {source: hub, name: gpt2}")
        tokenizer = load_tokenizer(spec["tokenizer"])
        tokenizer.save_pretrained(tokenizer_dir)
        return stream_token_cache(corpus_spec, tokenizer, cache_dir)
    corpus = load_corpus(corpus_spec)
    tokenizer = load_tokenizer(spec["tokenizer"], corpus)
    tokenizer.save_pretrained(tokenizer_dir)
    return build_token_cache(corpus, tokenizer, cache_dir)
