"""JSON from outside, parsed within bounds: no deeper than ``JSON_MAX_DEPTH``, no number longer than
``JSON_MAX_NUMBER_CHARS``, no NaN or Infinity.

Python's parser recurses once per nesting level (100,000 ``[`` is a ``RecursionError``) and turns
``1e999999`` into ``inf``; code after it (validation, storage, serialisation) recurses too. So the depth
is measured on the raw text before anything is parsed, in time linear in the body.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from shared import defaults

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_SQUARE = bytes.maketrans(b"{}", b"[]")  # a mismatched pair is not JSON anyway: the parser refuses it
_OPEN = ord("[")
_SMALL = 4096
_CONSTANTS = ("NaN", "Infinity", "-Infinity")


class JSONLimitError(ValueError):
    """The text is not JSON within the limits (a ValueError, like any JSON decoding error)."""


def nesting_depth_exceeds(data: bytes, max_depth: int) -> bool:
    """True if the brackets of ``data`` (outside strings) nest deeper than ``max_depth``."""
    if data.count(b"[") + data.count(b"{") <= max_depth:
        return False  # cannot be deeper than its number of openings: the usual case, no scan
    brackets = _STRING.sub(b"", data).translate(_SQUARE, _NOT_BRACKETS)
    # Removing every innermost pair lowers the depth by exactly one, at the speed of bytes.replace: a
    # wide document shrinks fast. Once that stops paying, count what is left (deep: stops early).
    rounds = 0
    while rounds < max_depth and len(brackets) > _SMALL:
        shorter = brackets.replace(b"[]", b"")
        if len(shorter) > len(brackets) * 7 // 8:
            break
        brackets, rounds = shorter, rounds + 1
    depth, limit = 0, max_depth - rounds
    for char in brackets:
        depth += 1 if char == _OPEN else -1
        if depth > limit:
            return True
    return False


def loads(
    data: bytes | str,
    max_depth: int = defaults.JSON_MAX_DEPTH,
    max_number_chars: int = defaults.JSON_MAX_NUMBER_CHARS,
) -> Any:
    """``json.loads`` within the limits; ``JSONLimitError`` (a ValueError) names what is wrong."""
    raw = data.encode("utf-8", errors="surrogatepass") if isinstance(data, str) else bytes(data)
    if nesting_depth_exceeds(raw, max_depth):
        raise JSONLimitError(f"JSON nested deeper than {max_depth} levels.")

    def number(text: str) -> str:
        if len(text) > max_number_chars:
            raise JSONLimitError(f"A number in the JSON is longer than {max_number_chars} characters.")
        return text

    def parse_float(text: str) -> float:
        value = float(number(text))
        if not math.isfinite(value):
            raise JSONLimitError(f"A number in the JSON is out of range: {text[:20]}.")
        return value

    def parse_constant(text: str) -> Any:
        raise JSONLimitError(f"{text} is not JSON.")

    try:
        return json.loads(
            raw, parse_float=parse_float, parse_int=lambda t: int(number(t)), parse_constant=parse_constant
        )
    except RecursionError as exc:  # a guard in depth: the scan above should have refused it
        raise JSONLimitError("JSON nested too deeply.") from exc
