"""Which entities (tickers) a news event is about: its ``tickers`` field plus cashtags in the text."""

from __future__ import annotations

import re
from collections.abc import Iterable

CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z][A-Za-z0-9]{0,5}(?:\.[A-Za-z]{1,2})?)(?![\w])")
"""``$TSLA``, ``$brk.b``; not ``$100`` (a price), not ``US$5``, not a ``$`` inside a word."""
MAX_ENTITIES = 20


def normalise_ticker(raw: str) -> str | None:
    ticker = raw.strip().lstrip("$").upper()
    if not ticker or len(ticker) > 10 or not re.fullmatch(r"[A-Z][A-Z0-9]*(\.[A-Z]{1,2})?", ticker):
        return None
    return ticker


def extract_entities(tickers: Iterable[str], *texts: str | None) -> list[str]:
    """Sorted unique tickers from the explicit list and the cashtags of ``texts`` (at most MAX_ENTITIES)."""
    found = {t for t in (normalise_ticker(x) for x in tickers) if t}
    for text in texts:
        if text:
            found.update(t for t in (normalise_ticker(m) for m in CASHTAG.findall(text)) if t)
    return sorted(found)[:MAX_ENTITIES]
