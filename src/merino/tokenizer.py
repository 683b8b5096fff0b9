"""Tokenizers: :func:`train_tokenizer` trains a byte-level BPE on a corpus's training split;
:func:`load_tokenizer` loads a saved one, or a pretrained one from the Hub (GPT-2, GPT-NeoX), with
``<|endoftext|>`` as eos; :func:`tokenizer_checksum` identifies one.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .corpus import Corpus, hub_offline

EOT = "<|endoftext|>"


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
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus.splits["train"], trainer, length=len(corpus.splits["train"]))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=EOT,
        eos_token=EOT,
        pad_token=EOT,
        clean_up_tokenization_spaces=False,
        name_or_path=f"byte-level-bpe-{vocab_size}",
    )


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
            tok = AutoTokenizer.from_pretrained(spec["name"], local_files_only=hub_offline())
        except Exception as err:
            raise ConnectionError(
                f"cannot load hub tokenizer {spec['name']!r} ({err}); if the Hugging Face Hub "
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
