"""Outgoing webhooks' pure rules: patterns, signature, back-off, and refused targets."""

from __future__ import annotations

import random
import re
import time
from pathlib import Path

import pytest

from core.settings import Settings
from core.targets import target_refusal
from workflows.outgoing_webhooks import (
    address_refusal,
    pattern_error,
    retry_delay,
    signature,
    url_error,
    wants,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "WEBHOOKS.md"


def documented_verify():
    """The verification snippet exactly as docs/WEBHOOKS.md shows it."""
    block = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert block, "docs/WEBHOOKS.md lost its python snippet"
    scope: dict = {}
    exec(compile(block.group(1), str(DOC), "exec"), scope)
    return scope["verify"]


def test_patterns() -> None:
    assert wants(["order.*"], "order.created")
    assert wants(["order.*"], "order.payment.processed")
    assert not wants(["order.*"], "orders.created")
    assert not wants(["order.*"], "inventory.low_stock")
    assert wants(["*"], "inventory.low_stock")
    assert wants(["inventory.low_stock"], "inventory.low_stock")
    assert not wants([], "order.created")
    assert pattern_error("order.*") is None
    assert pattern_error("order.payment.*") is None
    assert pattern_error("*") is None
    assert pattern_error("order.**") is not None
    assert pattern_error("order..created") is not None
    assert pattern_error("") is not None


def test_documented_snippet_verifies_our_signature() -> None:
    verify = documented_verify()
    body = b'{"type":"order.created"}'
    now = int(time.time())
    header = signature("whsec_abc", now, body)
    assert verify("whsec_abc", header, body)
    assert not verify("whsec_other", header, body)
    assert not verify("whsec_abc", header, body + b" ")
    assert not verify("whsec_abc", signature("whsec_abc", now - 3600, body), body)
    assert not verify("whsec_abc", "garbage", body)


def test_retry_delay_grows_is_capped_and_jittered() -> None:
    rand = random.Random(7)
    delays = [retry_delay(n, base=10, cap=3600, rand=rand) for n in range(1, 15)]
    for n, delay in enumerate(delays, start=1):
        step = min(3600, 10 * 2 ** (n - 1))
        assert step / 2 <= delay <= step
    assert max(delays) <= 3600
    assert len({round(d, 6) for d in delays}) == len(delays)


def test_urls_and_addresses() -> None:
    assert url_error("ftp://example.com/x") is not None
    assert url_error("http://user:pw@example.com/") is not None
    assert url_error("https://erp.example.com/hooks") is None
    for private in ("127.0.0.1", "10.1.2.3", "192.168.1.5", "169.254.169.254", "::1", "fc00::1"):
        assert address_refusal("h.example", [private], []) is not None, private
    assert address_refusal("h.example", ["93.184.216.34"], []) is None
    assert address_refusal("h.example", ["93.184.216.34", "10.0.0.1"], []) is not None
    assert address_refusal("intranet.local", ["10.0.0.7"], ["intranet.local"]) is None
    assert address_refusal("nowhere.example", [], []) is not None


@pytest.mark.parametrize(
    ("env", "allowed", "refused"),
    [("development", "", False), ("production", "", True), ("production", "localhost", False)],
)
def test_loopback_targets_only_refused_in_production(env: str, allowed: str, refused: bool) -> None:
    # model_construct: only the fields this rule reads (the production secrets are not its concern).
    settings = Settings.model_construct(app_env=env, webhook_allowed_hosts=allowed)
    assert (target_refusal("http://localhost:9/hooks", settings) is not None) is refused
