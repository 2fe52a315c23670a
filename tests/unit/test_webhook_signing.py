"""Webhook signatures (contract §3): the exact HMAC, the 300 s window, secrets and signed delivery ids."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from shared.flagship.webhooks import MalformedDelivery, SignatureError, parse_secrets, read_body, sign, verify

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
        (None, sign("k", str(NOW), body), body),
        (str(NOW), None, body),
    ]
    for timestamp, signature, sent in bad:
        with pytest.raises(SignatureError):
            verify("k", timestamp, signature, sent, now=NOW)


@pytest.mark.parametrize("timestamp", ["soon", "1" + "0" * 400, "-5", "1.5", "1e9", " ", "١٢٣", "0x10"])
def test_a_timestamp_that_is_not_unix_seconds_is_malformed_not_a_crash(timestamp):
    with pytest.raises(MalformedDelivery):
        verify("k", timestamp, sign("k", timestamp, b"{}"), b"{}", now=NOW)


def test_secrets_list():
    assert parse_secrets(" shop:abc , crm:x:y,broken, :nosource,empty:") == {"shop": "abc", "crm": "x:y"}
    assert parse_secrets(None) == {}


def test_delivery_id_comes_from_the_signed_body_only():
    assert read_body(b'{"id": " evt "}', "evt").delivery_id == "evt"
    assert read_body(b'{"id": "evt", "event": "ping"}').event == "ping"
    assert read_body(b'{"id": 42, "type": "x"}').delivery_id == "42"
    assert read_body(b'{"id": 42, "type": "x"}').event == "x"
    for no_id in (b'{"event": "ping"}', b'{"id": ""}', b'{"id": true}', b'{"id": null}', b"[1]", b'"s"'):
        assert read_body(no_id).delivery_id == hashlib.sha256(no_id).hexdigest()
    assert read_body(b"[1]").event is None
    with pytest.raises(MalformedDelivery, match="differs"):
        read_body(b'{"id": "evt"}', "other")  # the header is not signed: it may only repeat the id
    with pytest.raises(MalformedDelivery, match="differs"):
        read_body(b'{"event": "ping"}', "")


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[" * 100_000, b"[1e999999]", b'{"a": NaN}', b"\xff", b'{"id": "%s"}' % (b"x" * 201)],
)
def test_a_body_that_is_not_json_within_limits_is_malformed(body):
    with pytest.raises(MalformedDelivery):
        read_body(body)
