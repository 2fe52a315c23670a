"""Webhook signatures (contract §3): the exact HMAC, the 300 s window, secrets and delivery ids."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from shared.webhooks import SignatureError, delivery_id_of, event_of, parse_secrets, sign, verify

NOW = 1_800_000_000


def test_signature_is_hmac_sha256_of_timestamp_dot_body():
    expected = hmac.new(b"k", b"1800000000." + b'{"a":1}', hashlib.sha256).hexdigest()
    assert sign("k", "1800000000", b'{"a":1}') == f"sha256={expected}"


def test_verify_accepts_within_300_s_and_refuses_everything_else():
    body = b'{"event": "ping"}'
    verify("k", str(NOW - 300), sign("k", str(NOW - 300), body), body, now=NOW)
    verify("k", str(NOW + 300), sign("k", str(NOW + 300), body), body, now=NOW)
    bad = [
        (str(NOW - 301), sign("k", str(NOW - 301), body), body),
        (str(NOW), sign("other", str(NOW), body), body),
        (str(NOW), sign("k", str(NOW), body), body + b" "),
        (str(NOW), sign("k", str(NOW + 1), body), body),
        (str(NOW), "sha256=" + "0" * 64, body),
        (str(NOW), sign("k", str(NOW), body).removeprefix("sha256="), body),
        ("soon", sign("k", "soon", body), body),
        (None, sign("k", str(NOW), body), body),
        (str(NOW), None, body),
    ]
    for timestamp, signature, sent in bad:
        with pytest.raises(SignatureError):
            verify("k", timestamp, signature, sent, now=NOW)


def test_secrets_list():
    assert parse_secrets(" shop:abc , crm:x:y,broken, :nosource,empty:") == {"shop": "abc", "crm": "x:y"}
    assert parse_secrets(None) == {}


def test_delivery_id_from_header_then_body_then_signature():
    assert delivery_id_of(" d-1 ", b'{"id": "evt"}', "sig") == "d-1"
    assert delivery_id_of(None, b'{"id": "evt"}', "sig") == "evt"
    assert delivery_id_of("", b'{"id": 42}', "sig") == "42"
    derived = delivery_id_of(None, b"not json", "sha256=ab")
    assert derived.startswith("sig-") and derived == delivery_id_of(None, b"other", "sha256=ab")
    assert event_of(b'{"event": "ping"}') == "ping" and event_of(b'{"type": "x"}') == "x"
    assert event_of(b"[1]") is None
