"""A WebSocket close reason fits the protocol's 123 bytes and is not cut mid-word."""

from __future__ import annotations

from api.routes.stream import close_reason


def test_a_long_close_reason_is_cut_at_a_word_boundary() -> None:
    words = "scenario must be one of mf01, mf02, hf01, hf02, lf01, lf02, ra01, bc02, pr01 — and ünïcode wörds too"
    text = (words + " ") * 3
    got = close_reason(text)
    assert len(got.encode()) <= 123 and got.endswith("…")
    kept = got[:-1]
    assert text.startswith(kept) and text[len(kept)] in " ,"  # the next character starts a new word
    assert close_reason("lagged") == "lagged"
