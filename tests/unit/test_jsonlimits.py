"""``shared.jsonlimits``: the depth measured on the raw text agrees with the parsed document's depth."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.jsonlimits import JSONLimitError, loads, nesting_depth_exceeds

tricky_text = st.text(alphabet='[]{}"\\ab', max_size=8)  # brackets and quotes inside strings
documents = st.recursive(
    st.none() | st.integers() | tricky_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(tricky_text, inner, max_size=3),
    max_leaves=30,
)


def depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    return 0


@settings(max_examples=300, deadline=None)
@given(document=documents, limit=st.integers(0, 12))
def test_the_scan_agrees_with_the_parsed_depth(document, limit):
    text = json.dumps(document).encode()
    assert nesting_depth_exceeds(text, limit) == (depth(document) > limit)


@pytest.mark.parametrize(
    "text",
    [b"[" * 100_000, b"[" * 65 + b"]" * 65, b"[]," * 10 + b"[" * 200_000 + b"]" * 200_000, b'{"a": NaN}'],
)
def test_too_deep_or_not_json_is_a_limit_error(text):
    with pytest.raises(JSONLimitError):
        loads(text)


def test_wide_documents_within_the_limit_parse():
    wide = b"[" + b",".join([b'{"a": [1, "]]]]"]}'] * 100_000) + b"]"
    assert len(loads(wide)) == 100_000
    assert loads(b"[" * 64 + b"]" * 64) is not None
