"""Log lines never carry emails or card-like numbers, in messages as well as under keys."""

from __future__ import annotations

import json
import logging


def _lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_emails_and_card_numbers_are_redacted_from_messages(capsys) -> None:
    from monitoring.logging import configure_logging, get_logger

    configure_logging(force=True)
    try:
        get_logger("t").warning("lookup failed for Ada.Lovelace+shop@example.co.uk today")
        logging.getLogger("third.party").error(
            "charge for %s with card %s failed", "bob@example.org", "4242 4242 4242 4242"
        )
        try:
            raise ValueError("duplicate key: carol@example.com")
        except ValueError:
            get_logger("t").exception("insert_failed", email="carol@example.com")
    finally:
        configure_logging(force=True)
    err = capsys.readouterr().err
    for secret in ("lovelace", "bob@example.org", "4242", "carol@example.com"):
        assert secret not in err.lower(), err
    lines = _lines(err)
    assert len(lines) == 3
    assert lines[0]["event"] == "lookup failed for [redacted] today"
    assert "[redacted]" in lines[1]["event"]
