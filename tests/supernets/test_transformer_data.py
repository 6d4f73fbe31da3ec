"""Parallel text, the shared tokenizer and token-count batches."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from linas.config_io import parse
from linas.errors import ConfigError, LinasError
from supernets.transformer.data import (
    CorpusSpec,
    decode,
    encode,
    load_corpus,
    load_tokenizer,
    newstest2014,
    pairs,
    read_lines,
    subset_indices,
    token_batches,
    train_tokenizer,
)
from supernets.transformer.model import BOS, EOS, PAD, UNK

pytestmark = pytest.mark.usefixtures("one_thread")


def write(path, lines, gz=False):
    text = "\n".join(lines) + "\n"
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return str(path)


def test_gzipped_and_plain_files_load_as_a_translation_dataset(tmp_path, en_de):
    en, de = en_de()
    spec = CorpusSpec(src=write(tmp_path / "t.en.gz", en, gz=True), tgt=write(tmp_path / "t.de", de))
    ds = load_corpus(spec)
    assert ds[1]["translation"] == {"en": en[1], "de": de[1]}
    assert pairs(ds) == (en, de)


def test_sgml_segments_are_read_one_per_seg(tmp_path):
    sgm = tmp_path / "x.sgm"
    sgm.write_text('<srcset setid="t">\n<doc docid="d">\n<seg id="1">Hello world.</seg>\n'
                   '<seg id="2"> Second one </seg>\n</doc>\n</srcset>\n', encoding="utf-8")
    assert read_lines(sgm) == ["Hello world.", "Second one"]


def test_newstest2014_prefers_plain_text_and_falls_back_to_sgml(tmp_path, en_de):
    en, de = en_de()
    assert newstest2014(tmp_path).src.endswith("newstest2014-deen-src.en.sgm")
    assert newstest2014(tmp_path).tgt.endswith("newstest2014-deen-ref.de.sgm")
    write(tmp_path / "newstest2014.en-de.en", en)
    write(tmp_path / "newstest2014.en-de.de", de)
    assert pairs(load_corpus(newstest2014(tmp_path))) == (en, de)


def test_fixed_seed_subset_is_reproducible_sorted_and_without_repeats():
    a = subset_indices(1000, 50, seed=3)
    assert np.array_equal(a, subset_indices(1000, 50, seed=3))
    assert not np.array_equal(a, subset_indices(1000, 50, seed=4))
    assert len(set(a.tolist())) == 50 and np.all(np.diff(a) > 0) and a.max() < 1000
    assert np.array_equal(subset_indices(10, None), np.arange(10))
    assert np.array_equal(subset_indices(10, 50), np.arange(10))
    with pytest.raises(LinasError, match="at least one sentence pair"):
        subset_indices(10, 0)


def test_misaligned_files_give_a_clear_error(tmp_path, en_de):
    en, de = en_de()
    spec = CorpusSpec(src=write(tmp_path / "a.en", en), tgt=write(tmp_path / "a.de", de[:3]))
    with pytest.raises(LinasError, match=r"misaligned.*4 sentences.*has 3"):
        load_corpus(spec)


def test_missing_file_gives_a_clear_error(tmp_path, en_de):
    _, de = en_de()
    spec = CorpusSpec(src=str(tmp_path / "nope.en"), tgt=write(tmp_path / "a.de", de))
    with pytest.raises(LinasError, match="nope.en: no such file"):
        load_corpus(spec)


def test_corpus_spec_needs_files_or_a_hub_name():
    with pytest.raises(ConfigError, match="either 'hub' or both"):
        parse(CorpusSpec, {"src": "a.en"}, "data.train")


def test_limit_keeps_the_first_pairs(tmp_path, en_de):
    en, de = en_de()
    spec = CorpusSpec(src=write(tmp_path / "a.en", en), tgt=write(tmp_path / "a.de", de), limit=2)
    assert pairs(load_corpus(spec)) == (en[:2], de[:2])


def test_tokenizer_round_trips_text_and_reserves_special_ids(tmp_path, en_de):
    en, de = en_de()
    tok = train_tokenizer(en + de, vocab_size=200, min_frequency=1)
    assert [tok.pad_token_id, tok.bos_token_id, tok.eos_token_id, tok.unk_token_id] == [PAD, BOS, EOS, UNK]
    ids = encode(tok, en + de)
    assert all(x[-1] == EOS for x in ids)
    assert decode(tok, ids) == en + de
    tok.save_pretrained(str(tmp_path / "tok"))
    again = load_tokenizer(tmp_path / "tok")
    assert encode(again, de) == encode(tok, de)


def test_encode_truncates_but_keeps_the_end_of_sentence(en_de):
    en, de = en_de()
    tok = train_tokenizer(en + de, vocab_size=200, min_frequency=1)
    ids = encode(tok, ["Two dogs play in the snow with a girl and a cat."], max_len=5)[0]
    assert len(ids) == 5 and ids[-1] == EOS


def test_missing_tokenizer_is_a_clear_error(tmp_path):
    with pytest.raises(LinasError, match="no tokenizer.json"):
        load_tokenizer(tmp_path)


def test_token_batches_cover_every_pair_within_the_token_budget():
    rng = np.random.default_rng(0)
    src, tgt = rng.integers(1, 30, 200), rng.integers(1, 30, 200)
    batches = token_batches(src, tgt, max_tokens=100, rng=np.random.default_rng(1))
    assert sorted(np.concatenate(batches).tolist()) == list(range(200))
    for b in batches:
        assert len(b) == 1 or max(src[b].max(), tgt[b].max()) * len(b) <= 100


def test_token_batches_are_reproducible_with_a_seed():
    src = tgt = np.arange(50) % 7 + 1
    a = token_batches(src, tgt, 20, np.random.default_rng(3))
    b = token_batches(src, tgt, 20, np.random.default_rng(3))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_unreachable_hub_falls_back_to_local_files_with_a_warning(tmp_path, monkeypatch, en_de):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    en, de = en_de()
    spec = CorpusSpec(hub="wmt14:de-en:test", src=write(tmp_path / "a.en", en), tgt=write(tmp_path / "a.de", de))
    with pytest.warns(UserWarning, match="could not load 'wmt14'"):
        assert pairs(load_corpus(spec)) == (en, de)
    with pytest.raises(LinasError, match="could not load 'wmt14'.*give local files"):
        load_corpus(CorpusSpec(hub="wmt14:de-en:test"))
