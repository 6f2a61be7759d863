"""The link normaliser inside the tokenizer: what it rewrites, what it leaves alone, and that the saved
tokenizer (checkpoint and bundle) tokenizes exactly as the one trained with."""

from __future__ import annotations

from pathlib import Path

import pytest
from tokenizers import Tokenizer
from transformers import AutoTokenizer

from trainer.encoder import pretrained_encoder_dir
from trainer.tokenizer import (
    LINK_PLACEHOLDER,
    add_link_normaliser,
    collapses_links,
    load_tokenizer,
    remove_link_normaliser,
)

HEADLINE = "$BYND - JPMorgan reels in expectations on Beyond Meat https://t.co/bd0xbFGjkT"


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(pretrained_encoder_dir())


@pytest.fixture(scope="module")
def pretrained():
    return AutoTokenizer.from_pretrained(str(pretrained_encoder_dir()))


def tokens(tok, text: str) -> list[str]:
    return tok.convert_ids_to_tokens(tok(text)["input_ids"])


def test_a_link_becomes_one_placeholder_token(tokenizer, pretrained) -> None:
    raw, collapsed = tokens(pretrained, HEADLINE), tokens(tokenizer, HEADLINE)
    assert collapsed[-2:] == [LINK_PLACEHOLDER, "[SEP]"]
    assert len(raw) - len(collapsed) >= 10  # the short link's random path costs a dozen word pieces
    assert collapsed[:-2] == tokens(pretrained, HEADLINE.rsplit(" ", 1)[0])[:-1]
    for text in (
        "read HTTP://Example.COM/a?b=1 now",
        "see www.example.com, then",
        "two https://t.co/a and http://b.c/d",
    ):
        pieces = tokens(tokenizer, text)
        assert ":" not in pieces and "/" not in pieces and "example" not in pieces
        assert pieces.count(LINK_PLACEHOLDER) == text.lower().count("http") + text.lower().count("www.")


def test_text_without_links_is_tokenized_as_before(tokenizer, pretrained) -> None:
    for text in (
        "Stocks slump as Fed signals more hikes",
        "$AAPL: 5% up; e-mail us at ir@apple.com",
        "Ünïcode, ＦＵＬＬ width — and emoji 📈",
    ):
        assert tokenizer(text)["input_ids"] == pretrained(text)["input_ids"]


def test_saved_tokenizer_is_the_trained_one(tokenizer, tmp_path: Path) -> None:
    """The checkpoint reloads it with transformers; the ONNX scorer reads tokenizer.json with tokenizers."""
    tokenizer.save_pretrained(str(tmp_path))
    reloaded = AutoTokenizer.from_pretrained(str(tmp_path))
    serving = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    assert collapses_links(serving)
    for text in (HEADLINE, "no link here", "https://x.y/z alone"):
        assert reloaded(text)["input_ids"] == tokenizer(text)["input_ids"] == serving.encode(text).ids


def test_adding_the_normaliser_twice_changes_nothing() -> None:
    tok = load_tokenizer(pretrained_encoder_dir())
    before = tok.backend_tokenizer.to_str()
    add_link_normaliser(tok)
    assert tok.backend_tokenizer.to_str() == before


def test_keep_links_is_the_pretrained_tokenizer(pretrained) -> None:
    kept = load_tokenizer(pretrained_encoder_dir(), collapse_links=False)
    assert kept(HEADLINE)["input_ids"] == pretrained(HEADLINE)["input_ids"]
    assert not collapses_links(kept.backend_tokenizer)


def test_removing_the_normaliser_restores_the_pretrained_tokenization(pretrained) -> None:
    tok = load_tokenizer(pretrained_encoder_dir())
    serving = Tokenizer.from_str(tok.backend_tokenizer.to_str())
    serving.no_padding()  # as the scorer does
    remove_link_normaliser(tok.backend_tokenizer)
    remove_link_normaliser(serving)
    for text in (HEADLINE, "Ünïcode ＦＵＬＬ width"):
        assert tok(text)["input_ids"] == serving.encode(text).ids == pretrained(text)["input_ids"]
    assert not collapses_links(serving)
