"""``POST /webhooks/<source>`` under Hypothesis (contract §3): random sources, timestamps, signatures,
delivery headers and bodies, signed and unsigned, against the production-like app (a 500 is a 500), on
a real database and Redis. Every answer is a documented status with the JSON error shape, never a 5xx;
only a correctly signed, fresh, well-formed delivery is accepted; a replay is answered by the first."""

from __future__ import annotations

import hashlib
import json
import time
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from shared.flagship.webhooks import sign
from tests.security.support import WEBHOOK_SECRET, WEBHOOK_SOURCE

DOCUMENTED = {200, 202, 400, 401, 404, 413}
EXAMPLES = 400

# Header values a client can put on the wire: latin-1, no line breaks.
header_text = st.text(st.characters(codec="latin-1", exclude_characters="\r\n"), max_size=60)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | header_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(header_text, inner, max_size=4),
    max_leaves=12,
)
json_bodies = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {"id": st.one_of(header_text, st.integers(), st.floats(allow_nan=False), st.none(), st.booleans())},
        optional={"event": header_text, "type": header_text},
    ).map(lambda v: json.dumps(v).encode()),
)
hostile_bodies = st.one_of(
    st.binary(max_size=300),
    st.integers(1, 200_000).map(lambda n: b"[" * n),
    st.integers(60, 5_000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    st.sampled_from(
        [b"", b"NaN", b"[1e999999]", b"-Infinity", b"9" * 5000, b"\xff\xfe", b'{"id": "x' + b"y" * 300]
    ),
)


def mostly(value: object, others: st.SearchStrategy, share: int = 3) -> st.SearchStrategy:
    """``value`` ``share`` times in ``share + 1``, else one of ``others``."""
    return st.integers(0, share).flatmap(lambda n: st.just(value) if n else others)


timestamps = mostly(
    "now",  # replaced by the current unix time
    st.one_of(
        st.none(),
        st.integers(-(10**20), 10**20).map(str),
        st.integers(1, 500).map(lambda n: "1" + "0" * n),
        st.floats(allow_nan=True).map(str),
        header_text,
    ),
)


@pytest.mark.timeout(180)
def test_random_webhook_requests_get_only_documented_answers(app, world):
    client = app.test_client()
    accepted: dict[str, dict] = {}
    statuses: dict[int, int] = {}

    @given(
        source=st.sampled_from([WEBHOOK_SOURCE, WEBHOOK_SOURCE, "nope", "GitHub"])
        | st.from_regex(r"\A\w{1,20}\Z"),
        timestamp=timestamps,
        signed=st.booleans(),
        signature=st.none() | header_text | st.just("sha256=" + "0" * 64),
        delivery=mostly(None, st.just("matching") | header_text, share=2),
        body=st.integers(0, 3).flatmap(lambda n: json_bodies if n else hostile_bodies),
        content_type=st.none() | st.sampled_from(["application/json", "text/plain", "multipart/form-data"]),
    )
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(source, timestamp, signed, signature, delivery, body, content_type) -> None:
        stamp = str(int(time.time())) if timestamp == "now" else timestamp
        if signed and stamp is not None:
            signature = sign(WEBHOOK_SECRET, stamp, body)
        expected_id = _expected_id(body)
        if delivery == "matching":
            delivery = expected_id or "none"
        headers = {
            name: value
            for name, value in {
                "X-Questboard-Timestamp": stamp,
                "X-Questboard-Signature": signature,
                "X-Questboard-Delivery": delivery,
                "Content-Type": content_type,
            }.items()
            if value is not None
        }
        resp = client.post(f"/webhooks/{quote(source, safe='')}", data=body, headers=headers)
        statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1
        assert resp.status_code in DOCUMENTED, (resp.status_code, resp.get_data()[:500])
        assert resp.is_json, resp.get_data()[:200]
        answer = resp.get_json()
        if resp.status_code >= 400:
            assert isinstance(answer["error"]["code"], str) and isinstance(answer["error"]["message"], str)
            return
        # Accepted: only what was signed with the source's secret, fresh, well-formed, header matching.
        assert source == WEBHOOK_SOURCE and signed and stamp is not None
        assert abs(time.time() - int(stamp)) <= 300
        assert answer["delivery_id"] == expected_id and (delivery is None or delivery.strip() == expected_id)
        first = accepted.setdefault(expected_id, answer)
        assert answer == first and (resp.status_code == 202) == (answer is first)

    fuzz()
    # The fuzzing reached every answer, accepted deliveries and repeats among them.
    assert set(statuses) >= {200, 202, 400, 401, 404}, statuses
    # How many generated requests are well signed varies with the strategies' global state (other hypothesis
    # users in the same test process): a handful is enough to show acceptance and repeats were exercised.
    assert statuses[202] == len(accepted) >= 5, statuses


def _expected_id(body: bytes) -> str | None:
    """The delivery id the contract gives a well-formed body (None when the body is not simple JSON)."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return None
    given = payload.get("id") if isinstance(payload, dict) else None
    if isinstance(given, str | int | float) and not isinstance(given, bool) and str(given).strip():
        return str(given).strip()
    return hashlib.sha256(body).hexdigest()
