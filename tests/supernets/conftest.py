"""Fixtures shared by the SuperTransformer tests: one torch thread, a tiny EN/DE corpus, hat_tiny.

A module opts in to one thread with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from linas.spaces import get_space

PAIRS = [
    ("A man rides a horse.", "Ein Mann reitet ein Pferd."),
    ("Two dogs play in the snow.", "Zwei Hunde spielen im Schnee."),
    ("A girl reads a book.", "Ein Mädchen liest ein Buch."),
    ("The cat sleeps.", "Die Katze schläft."),
    ("A woman sings on a stage.", "Eine Frau singt auf einer Bühne."),
    ("Children run in the park.", "Kinder laufen im Park."),
]


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest on one thread, and the machine is shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def en_de():
    """``en_de(n=4)``: the English and the German sides of the first ``n`` of six short pairs."""

    def first(n: int = 4) -> tuple[list[str], list[str]]:
        return [en for en, _ in PAIRS[:n]], [de for _, de in PAIRS[:n]]

    return first


@pytest.fixture(scope="session")
def write_corpus(en_de):
    """``write_corpus(directory, n=4)``: the first ``n`` pairs as ``a.en``/``a.de``; returns {src, tgt}."""

    def write(directory: Path, n: int = 4) -> dict[str, str]:
        corpus = {}
        for key, suffix, lines in zip(("src", "tgt"), ("en", "de"), en_de(n)):
            path = Path(directory) / f"a.{suffix}"
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
            corpus[key] = str(path)
        return corpus

    return write


@pytest.fixture(scope="module")
def space():
    """The tiny SuperTransformer space (a module may override it with another)."""
    import supernets.transformer  # noqa: F401 - registers hat_tiny

    return get_space("hat_tiny")


@pytest.fixture(scope="session")
def hat_evaluator_options(tmp_path_factory, write_corpus):
    """Options of the HAT evaluators for a briefly trained hat_tiny checkpoint, its corpus and
    a quickly measured latency table (read-only: tests copy what they change)."""
    from linas.config_io import parse
    from supernets.transformer.latency import build_table
    from supernets.transformer.trainer import HatTrainConfig, Trainer

    d = tmp_path_factory.mktemp("hat")
    corpus = write_corpus(d)
    trainer = Trainer(parse(HatTrainConfig, {
        "supernet": "hat", "space": "hat_tiny", "output": str(d / "ckpt"), "data": {"train": corpus},
        "model": {"qkv_dim": 32, "vocab_size": 100, "dropout": 0.0},
        "train": {"max_updates": 5, "warmup": 2, "progress": False, "threads": 1}}))
    trainer.run()
    trainer.close()
    build_table(get_space("hat_tiny"), len(trainer.tokenizer), 32, warmup=0, repeats=1).save(d / "lut.json")
    return {"checkpoint": str(d / "ckpt"), "corpus": corpus, "lut": str(d / "lut.json"), "threads": 1,
            "subset": None}
