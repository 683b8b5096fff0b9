"""Corpora (the text models train and are evaluated on): :func:`load_corpus` reads a corpus spec
(``config["data"]["corpus"]``) into a :class:`Corpus` with ``train``/``validation``/``test`` document lists.

Sources:

- ``embedded``: English prose shipped with Python itself, no download: the reference topics
  of ``pydoc_data.topics`` and the module/class/function docstrings (>= 200 characters) of the
  standard library's ``.py`` files, parsed with :mod:`ast` (never imported).
- ``files``: local ``.txt`` files (one document per file; ``sample_by: paragraph`` makes every
  blank-line-separated paragraph one) or ``.json``/``.jsonl`` files with a ``text`` field.
- ``hub``: a Hugging Face dataset by name, e.g. ``lm1b`` or ``EleutherAI/the_pile_deduplicated``.

Documents are stripped of surrounding whitespace; empty ones are dropped.  A split that is not
given explicitly (always, for ``embedded``) is carved out of the training documents by a stable
hash of each document's text, so the assignment depends on neither order nor hash seed, and
needs no document but the current one.  :func:`corpus_documents` yields the same documents
lazily, for :func:`merino.token_cache.stream_token_cache`.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import inspect
import itertools
import json
import os
import sysconfig
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

SPLITS = ("train", "validation", "test")
SOURCES = ("embedded", "files", "hub")
EMBEDDED_MIN_DOC_CHARS = 200
EMBEDDED_SKIP_DIRS = frozenset({"test", "tests", "idlelib", "lib2to3", "site-packages"})
TEXT_SUFFIXES = {".txt": "text", ".text": "text", ".json": "json", ".jsonl": "json"}
HUB_HELP = (
    "pre-stage the data: either export it to local text/JSONL files and use `source: files` with "
    "train/validation/test paths, or load it once on a machine with network access so it lands in the "
    "datasets cache (HF_HOME / HF_DATASETS_CACHE), copy that cache here and run with HF_DATASETS_OFFLINE=1 "
    "HF_HUB_OFFLINE=1 set before starting Python"
)
_COMMON_KEYS = {"source", "validation_fraction", "test_fraction", "max_documents", "max_chars"}
_SOURCE_KEYS = {
    "embedded": set(),
    "files": {"train", "validation", "test", "sample_by", "text_field"},
    "hub": {"name", "config", "revision", "train", "validation", "test", "streaming", "text_field"},
}


class SplitStats:
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


def corpus_checksum(checksums: dict[str, str]) -> str:
    """One sha256 over the split checksums: identifies the corpus as a whole."""
    return hashlib.sha256(json.dumps(checksums, sort_keys=True).encode()).hexdigest()


def empty_train_error(source: str, spec: dict) -> ValueError:
    return ValueError(
        f"the train split of the {source!r} corpus is empty (no documents, or only "
        f"whitespace); check data.corpus ({spec})"
    )


@dataclass
class Corpus:
    """Documents per split (``train``, ``validation``, ``test``) and where they came from."""

    source: str
    splits: dict[str, list[str]]
    spec: dict = field(default_factory=dict)

    def __post_init__(self):
        if not any(doc.strip() for doc in self.splits.get("train", [])):
            raise empty_train_error(self.source, self.spec)
        self.splits = {s: list(self.splits.get(s, [])) for s in SPLITS}
        self._stats = {s: SplitStats(docs).summary() for s, docs in self.splits.items()}
        self.checksums = {s: stats["sha256"] for s, stats in self._stats.items()}

    @property
    def checksum(self) -> str:
        """One sha256 over the three split checksums: identifies the corpus as a whole."""
        return corpus_checksum(self.checksums)

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
    check_corpus_spec(spec)
    if spec["source"] == "hub" and spec.get("streaming") and not (spec.get("max_documents") or spec.get("max_chars")):
        raise ValueError(
            "data.corpus: a streamed hub dataset needs max_documents or max_chars to be loaded into "
            "memory (stream_token_cache / prepare_data tokenise it without one)"
        )
    splits = {s: [] for s in SPLITS}
    for split, doc in corpus_documents(spec):
        splits[split].append(doc)
    return Corpus(spec["source"], splits, dict(spec))


def check_corpus_spec(spec: dict) -> tuple[float, float]:
    """Checks the source and keys of a corpus spec; its (validation, test) fractions."""
    source = spec.get("source")
    if source not in SOURCES:
        raise ValueError(f"data.corpus: key 'source' must be one of {', '.join(SOURCES)}; got {source!r}")
    unknown = sorted(set(spec) - _COMMON_KEYS - _SOURCE_KEYS[source])
    if unknown:
        raise ValueError(
            f"data.corpus: unknown key(s) {unknown} for source {source!r}; allowed: "
            f"{sorted(_COMMON_KEYS | _SOURCE_KEYS[source])}"
        )
    fractions = (float(spec.get("validation_fraction", 0.05)), float(spec.get("test_fraction", 0.05)))
    if min(fractions) < 0 or sum(fractions) >= 1:
        raise ValueError(
            f"data.corpus: validation_fraction and test_fraction must be >= 0 with a sum below 1; got {fractions}"
        )
    if source == "files" and not spec.get("train"):
        raise ValueError("data.corpus: source 'files' needs key 'train' (a path or a list of paths)")
    if source == "hub" and not spec.get("name"):
        raise ValueError("data.corpus: source 'hub' needs key 'name' (a Hugging Face dataset, e.g. 'lm1b')")
    return fractions


def corpus_documents(spec: dict) -> Iterator[tuple[str, str]]:
    """``(split, document)`` pairs of the corpus ``spec``, capped and carved in one lazy pass.

    The sources are opened at once (so a bad path, name or field fails before any document is
    used); their documents are read only as the pairs are consumed, each split's in order."""
    fractions = check_corpus_spec(spec)
    source = spec["source"]
    cap = functools.partial(_cap, max_documents=spec.get("max_documents"), max_chars=spec.get("max_chars"))
    if source == "embedded":
        given = {"train": cap(_embedded_documents())}
    elif source == "files":
        given = {
            s: cap(_file_documents(spec[s], spec.get("sample_by", "document"), spec.get("text_field", "text")))
            for s in SPLITS
            if spec.get(s)
        }
    else:
        names = {"train": "train"} | {s: spec[s] for s in SPLITS if spec.get(s)}
        given = {
            s: cap(
                _hub_documents(
                    spec["name"],
                    spec.get("config"),
                    hub_split,
                    bool(spec.get("streaming")),
                    spec.get("text_field", "text"),
                    spec.get("revision"),
                )
            )
            for s, hub_split in names.items()
        }
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


def _carve(
    given: dict[str, Iterable[str]], validation_fraction: float, test_fraction: float
) -> Iterator[tuple[str, str]]:
    """``(split, document)`` pairs of the ``given`` splits, lazily; a split missing from ``given``
    takes the train documents whose hash fraction falls in its band: ``[0, test)`` -> test,
    ``[test, test + validation)`` -> validation (bands of given splits stay in train)."""
    missing = {s for s in ("validation", "test") if s not in given}
    for split, docs in given.items():
        for doc in docs:
            if split == "train" and missing:
                u = hash_fraction(doc)
                band = (
                    "test"
                    if u < test_fraction
                    else "validation"
                    if u < test_fraction + validation_fraction
                    else "train"
                )
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
        raise ValueError(
            f"the corpus files of one split must all be text (.txt, .text) or all JSON (.json, "
            f".jsonl); got {[str(p) for p in paths]}"
        )
    kind = kinds.pop()
    if kind == "text" and sample_by not in ("document", "paragraph", "line"):
        raise ValueError(f"data.corpus: sample_by must be document, paragraph or line; got {sample_by!r}")
    options = {"sample_by": sample_by} if kind == "text" else {}
    ds = datasets.load_dataset(kind, data_files=[str(p) for p in paths], split="train", **options)
    if kind == "json" and text_field not in ds.column_names:
        raise ValueError(
            f"corpus files {[str(p) for p in paths]} have no field {text_field!r} "
            f"(fields: {ds.column_names}); set data.corpus.text_field"
        )
    return ds["text" if kind == "text" else text_field]


def hub_offline() -> bool:
    return any(
        os.environ.get(v, "").upper() in {"1", "ON", "YES", "TRUE"} for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )


def _hub_documents(
    name: str, config: str | None, split: str, streaming: bool, text_field: str, revision: str | None = None
) -> Iterator[str]:
    """Texts of one split of a Hub dataset; fails fast with :data:`HUB_HELP` when it cannot be had.

    Offline mode (``HF_*_OFFLINE``) is honoured by ``datasets`` only when set before it is imported;
    set later, it would not stop a network attempt, so that case fails at once without one."""
    import datasets

    what = f"hub dataset {name!r} (config {config!r}, split {split!r})"
    if hub_offline() and not datasets.config.HF_HUB_OFFLINE:
        raise ConnectionError(
            f"cannot load {what}: the Hugging Face Hub is unreachable (offline mode: "
            f"HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set); {HUB_HELP}"
        )
    try:
        ds = datasets.load_dataset(name, config, split=split, streaming=streaming, revision=revision)
    except Exception as err:  # offline, not cached, unknown name or config: the same remedies apply
        raise ConnectionError(
            f"cannot load {what} ({err}); if the Hugging Face Hub is unreachable from here, {HUB_HELP}"
        ) from err
    if ds.column_names is not None and text_field not in ds.column_names:
        raise ValueError(f"{what} has no field {text_field!r} (fields: {ds.column_names}); set data.corpus.text_field")
    return (row[text_field] for row in ds)
