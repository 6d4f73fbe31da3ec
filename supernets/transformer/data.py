"""Parallel text through ``datasets``, the shared subword tokenizer, and token-count batches.

A corpus is a ``datasets.Dataset`` with one ``translation`` column of
``{src_lang: text, tgt_lang: text}`` (the layout of the hub's ``wmt14``). It comes from

- the hub (``load_dataset("wmt14", "de-en")``), only when asked, with a clear error
  when it cannot be reached;
- two aligned local files, one sentence a line: plain, gzipped (Multi30k's ``*.gz``) or
  WMT SGML (``<seg id=..>`` lines, as newstest2014's ``*.sgm``).

The tokenizer is a BPE model trained with HF ``tokenizers`` on both sides of the
training text (one shared vocabulary, as HAT), used through a
``transformers.PreTrainedTokenizerFast`` and saved next to the checkpoint.
"""

from __future__ import annotations

import gzip
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from pydantic import model_validator

from linas.config_io import StrictModel
from linas.errors import LinasError
from supernets.transformer.model import BOS, EOS, PAD, SPECIAL_TOKENS, UNK

_SEG = re.compile(r"<seg[^>]*>(.*)</seg>")

MULTI30K_SPLITS = ("train", "val", "test_2016_flickr", "test_2017_flickr", "test_2017_mscoco", "test_2018_flickr")


class CorpusSpec(StrictModel):
    """Where a parallel corpus comes from: two local files, a hub dataset, or the hub with local fallback.

    ``src``/``tgt`` are paths (relative ones to the working directory); ``hub`` is
    ``"NAME:CONFIG:SPLIT"`` (e.g. ``"wmt14:de-en:test"``); ``limit`` keeps the first pairs.
    """

    src: str | None = None
    tgt: str | None = None
    hub: str | None = None
    limit: int | None = None

    @model_validator(mode="after")
    def _one_source(self) -> CorpusSpec:
        if self.hub is None and (self.src is None or self.tgt is None):
            raise ValueError("give either 'hub' or both 'src' and 'tgt'")
        if self.hub is not None and self.hub.count(":") != 2:
            raise ValueError("'hub' is NAME:CONFIG:SPLIT, e.g. wmt14:de-en:test")
        return self


def multi30k(data_dir: str | Path, split: str, src_lang: str = "en", tgt_lang: str = "de") -> CorpusSpec:
    """The Multi30k split ``split`` (one of ``MULTI30K_SPLITS``) in ``data_dir``."""
    d = Path(data_dir)
    return CorpusSpec(src=str(d / f"{split}.{src_lang}.gz"), tgt=str(d / f"{split}.{tgt_lang}.gz"))


def newstest2014(data_dir: str | Path, src_lang: str = "en", tgt_lang: str = "de") -> CorpusSpec:
    """newstest2014 En-De in ``data_dir``: the plain-text files, or the SGML ones when those are absent."""
    d = Path(data_dir)
    plain = CorpusSpec(src=str(d / f"newstest2014.en-de.{src_lang}"), tgt=str(d / f"newstest2014.en-de.{tgt_lang}"))
    if Path(plain.src).is_file() and Path(plain.tgt).is_file():
        return plain
    return CorpusSpec(src=str(d / f"newstest2014-deen-src.{src_lang}.sgm"),
                      tgt=str(d / f"newstest2014-deen-ref.{tgt_lang}.sgm"))


def read_lines(path: str | Path) -> list[str]:
    """Sentences of a plain, gzipped or SGML file, one per line (SGML: one per ``<seg>``)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise LinasError(f"{p}: no such file (expected one sentence per line; .gz and .sgm are also read)")
    opener = gzip.open if p.suffix == ".gz" else open
    with opener(p, "rt", encoding="utf-8") as f:
        lines = f.read().splitlines()
    if p.suffix == ".sgm" or p.name.endswith(".sgm.gz"):
        return [m.group(1).strip() for m in map(_SEG.search, lines) if m]
    return [line.strip() for line in lines]


def load_corpus(spec: CorpusSpec, src_lang: str = "en", tgt_lang: str = "de"):
    """The corpus of ``spec`` as a ``datasets.Dataset`` with a ``translation`` column.

    With both ``hub`` and local files, the hub is tried first and the local files are used
    (with a warning) when it cannot be reached. Raises :class:`LinasError` for a missing
    file, files whose line counts differ, or a hub dataset that cannot be loaded and has
    no local fallback.
    """
    ds = None
    if spec.hub is not None:
        try:
            ds = _load_hub(spec.hub)
        except LinasError as exc:
            if spec.src is None or spec.tgt is None:
                raise
            warnings.warn(f"{exc}; using the local files {spec.src} and {spec.tgt}", stacklevel=2)
    if ds is None:
        ds = _load_files(spec.src, spec.tgt, src_lang, tgt_lang)
    if spec.limit is not None:
        ds = ds.select(range(min(spec.limit, len(ds))))
    return ds


def _load_hub(hub: str):
    import datasets

    name, config, split = hub.split(":")
    try:
        return datasets.load_dataset(name, config, split=split)
    except Exception as exc:  # noqa: BLE001 - offline, unknown name... all mean "use local files"
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise LinasError(f"could not load '{name}' ({config}, {split}) from the Hugging Face hub "
                         f"({type(exc).__name__}: {first}); give local files instead: src: PATH, tgt: PATH") from None


def _load_files(src_path: str, tgt_path: str, src_lang: str, tgt_lang: str):
    import datasets

    src, tgt = read_lines(src_path), read_lines(tgt_path)
    if len(src) != len(tgt):
        raise LinasError(f"misaligned parallel files: {src_path} has {len(src)} sentences but "
                         f"{tgt_path} has {len(tgt)}")
    if not src:
        raise LinasError(f"{src_path}: no sentences")
    return datasets.Dataset.from_dict({"translation": [{src_lang: s, tgt_lang: t} for s, t in zip(src, tgt)]})


def pairs(ds, src_lang: str = "en", tgt_lang: str = "de") -> tuple[list[str], list[str]]:
    """Source and target sentences of a corpus."""
    rows = ds["translation"]
    return [r[src_lang] for r in rows], [r[tgt_lang] for r in rows]


def subset_indices(total: int, subset: int | None, seed: int = 0) -> np.ndarray:
    """Sorted indices of a fixed-seed random subset of ``subset`` of ``total`` pairs (all when None or larger)."""
    if subset is not None and subset <= 0:
        raise LinasError(f"a subset needs at least one sentence pair, not {subset}")
    if subset is None or subset >= total:
        return np.arange(total)
    return np.sort(np.random.default_rng(seed).choice(total, subset, replace=False))


# ---------------------------------------------------------------------- tokenizer
def train_tokenizer(texts: Iterable[str], vocab_size: int, min_frequency: int = 2):
    """A shared BPE vocabulary trained on ``texts``, wrapped as a ``PreTrainedTokenizerFast``.

    Ids 0-3 are ``<pad> <s> </s> <unk>``; encoding appends ``</s>``; decoding restores the
    original spacing (Metaspace), so BLEU is computed on detokenized text.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.NFKC()
    # Punctuation is split off after Metaspace marks word starts, so "dog." and "dog ."
    # still decode differently and exactly.
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Metaspace(), pre_tokenizers.Punctuation()])
    tok.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                  special_tokens=list(SPECIAL_TOKENS), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", EOS)])
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>",
                                      eos_token="</s>", unk_token="<unk>")
    ids = [wrapped.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS]
    assert ids == [PAD, BOS, EOS, UNK], ids
    return wrapped


def load_tokenizer(directory: str | Path):
    """The tokenizer saved with a checkpoint (``save_pretrained``) in ``directory``."""
    from transformers import PreTrainedTokenizerFast

    d = Path(directory)
    if not (d / "tokenizer.json").is_file():
        raise LinasError(f"{d}: no tokenizer.json (a checkpoint's tokenizer is saved next to it)")
    return PreTrainedTokenizerFast.from_pretrained(str(d))


def encode(tokenizer, texts: Sequence[str], max_len: int | None = None) -> list[list[int]]:
    """Token ids of each text, ending with ``</s>`` (truncated to ``max_len``, keeping ``</s>``)."""
    ids = tokenizer(list(texts), add_special_tokens=True)["input_ids"]
    if max_len is not None:
        ids = [x if len(x) <= max_len else x[: max_len - 1] + [EOS] for x in ids]
    return ids


def decode(tokenizer, ids: Sequence[Sequence[int]]) -> list[str]:
    """Detokenized text of each id sequence (special tokens dropped)."""
    return tokenizer.batch_decode([list(x) for x in ids], skip_special_tokens=True,
                                  clean_up_tokenization_spaces=False)


# ---------------------------------------------------------------------- batches
@dataclass
class Batch:
    """Padded tensors: ``src [B, S]``, decoder input ``prev [B, T]`` (``<s>`` + target), ``target [B, T]``."""

    src: torch.Tensor
    prev: torch.Tensor
    target: torch.Tensor
    index: np.ndarray

    @property
    def target_tokens(self) -> int:
        return int(self.target.ne(PAD).sum())


def collate(src_ids: Sequence[Sequence[int]], tgt_ids: Sequence[Sequence[int]], index: np.ndarray) -> Batch:
    """Right-padded batch of id lists (each ending with ``</s>``)."""
    b = len(src_ids)
    src = torch.full((b, max(map(len, src_ids))), PAD, dtype=torch.long)
    t = max(map(len, tgt_ids))
    prev = torch.full((b, t), PAD, dtype=torch.long)
    target = torch.full((b, t), PAD, dtype=torch.long)
    for i, (s, y) in enumerate(zip(src_ids, tgt_ids)):
        src[i, : len(s)] = torch.tensor(s)
        target[i, : len(y)] = torch.tensor(y)
        prev[i, 0] = BOS
        prev[i, 1: len(y)] = torch.tensor(y[:-1])
    return Batch(src, prev, target, index)


def token_batches(src_lens: Sequence[int], tgt_lens: Sequence[int], max_tokens: int,
                  rng: np.random.Generator | None = None) -> list[np.ndarray]:
    """Indices of batches of similar length holding at most ``max_tokens`` (padded) tokens a side.

    With ``rng`` ties are broken at random and the batch order is shuffled (training);
    without it the batches are in length order (evaluation).
    """
    src_lens, tgt_lens = np.asarray(src_lens), np.asarray(tgt_lens)
    tie = rng.random(len(src_lens)) if rng is not None else np.arange(len(src_lens))
    order = np.lexsort((tie, src_lens, tgt_lens))
    batches, current, longest = [], [], 0
    for i in order:
        n = max(src_lens[i], tgt_lens[i])
        if current and max(longest, n) * (len(current) + 1) > max_tokens:
            batches.append(np.array(current))
            current, longest = [], 0
        current.append(i)
        longest = max(longest, n)
    if current:
        batches.append(np.array(current))
    if rng is not None:
        rng.shuffle(batches)
    return batches
