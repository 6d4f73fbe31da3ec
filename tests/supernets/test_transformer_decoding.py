"""Greedy and beam search with the key/value cache, and sacrebleu BLEU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import supernets.transformer  # noqa: F401 - registers hat_tiny
from supernets.transformer.decoding import beam_search, greedy_search
from supernets.transformer.model import SuperTransformer
from supernets.transformer.scoring import corpus_bleu

VOCAB = 60


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model(space):
    torch.manual_seed(0)
    net = SuperTransformer(space, VOCAB, qkv_dim=32, dropout=0.0).eval()
    net.set_active_subnet(space.to_config(space.sample(np.random.default_rng(0), 1)[0]))
    return net.get_active_subnet().eval()


@pytest.fixture(scope="module")
def src():
    g = torch.Generator().manual_seed(1)
    s = torch.randint(4, VOCAB, (6, 9), generator=g)
    s[:, -1] = 2
    s[2, 5:] = 0  # a shorter, padded sentence
    s[2, 4] = 2
    return s


def test_beam_search_with_beam_one_equals_greedy(model, src):
    assert beam_search(model, src, beam=1, max_len=15) == greedy_search(model, src, max_len=15)


def test_cached_greedy_decoding_equals_recomputing_the_prefix(model, src):
    assert greedy_search(model, src, use_cache=True, max_len=15) == greedy_search(model, src, use_cache=False,
                                                                                 max_len=15)


def test_cached_beam_search_equals_recomputing_the_prefix(model, src):
    assert beam_search(model, src, beam=4, use_cache=True, max_len=15) == beam_search(model, src, beam=4,
                                                                                     use_cache=False, max_len=15)


def test_beam_search_output_is_independent_of_the_batch(model, src):
    together = beam_search(model, src, beam=3, max_len=15)
    alone = [beam_search(model, src[i: i + 1], beam=3, max_len=15)[0] for i in (0, 3)]
    assert alone == [together[0], together[3]]


def test_hypotheses_respect_the_length_limit_and_hold_no_special_tokens(model, src):
    for hyp in beam_search(model, src, beam=4, max_len=7):
        assert len(hyp) < 7
        assert not set(hyp) & {0, 1, 2}


def test_wider_beam_finds_hypotheses_at_least_as_probable(model, src):
    def logprob(ids, row):
        prev = torch.tensor([[1] + ids])
        target = torch.tensor(ids + [2])
        with torch.no_grad():
            lp = torch.log_softmax(model(src[row: row + 1], prev)[0], -1)
        return float(lp[torch.arange(len(target)), target].sum())

    greedy = greedy_search(model, src, max_len=15)
    wide = beam_search(model, src, beam=6, len_penalty=0.0, max_len=15)
    for row in range(len(src)):
        assert logprob(wide[row], row) >= logprob(greedy[row], row) - 1e-4


def test_bleu_of_references_against_themselves_is_100():
    refs = ["Ein Mann reitet ein Pferd.", "Zwei Hunde spielen im Schnee.", "Die Katze schläft."]
    result = corpus_bleu(refs, refs)
    assert result.score == pytest.approx(100.0)
    assert result.signature.startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:")


def test_bleu_drops_for_wrong_translations():
    refs = ["Ein Mann reitet ein Pferd.", "Zwei Hunde spielen im Schnee."]
    assert corpus_bleu(["Ein Hund schläft.", "Die Katze liest."], refs).score < 20
