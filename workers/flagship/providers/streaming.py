"""Writing a background while showing it: streamed text goes into the job's progress messages."""

from __future__ import annotations

import time

from shared.jobtypes import JobContext
from workers.flagship.providers import BackgroundProvider, CharacterSheet

# Progress while the story streams moves from FIRST_PERCENT towards LAST_PERCENT as text arrives.
FIRST_PERCENT, LAST_PERCENT = 26, 74
EXPECTED_CHARS = 2000
PUBLISH_INTERVAL_S = 0.3  # at most this often: every update is a database write and a Socket.IO message
MESSAGE_TAIL_CHARS = 1200


def write_with_progress(ctx: JobContext, provider: BackgroundProvider, sheet: CharacterSheet) -> str:
    """The provider's story; a streaming provider's text is published as it grows (cancel stops it)."""
    if not getattr(provider, "streams", False):
        return provider.write_background(sheet)
    text: list[str] = []
    last = [0.0]

    def on_text(piece: str) -> None:
        text.append(piece)
        now = time.monotonic()
        if now - last[0] >= PUBLISH_INTERVAL_S:
            last[0] = now
            so_far = "".join(text)
            span = LAST_PERCENT - FIRST_PERCENT
            expected = getattr(provider, "expected_chars", None) or EXPECTED_CHARS
            percent = FIRST_PERCENT + min(span, len(so_far) * span // expected)
            tail = so_far if len(so_far) <= MESSAGE_TAIL_CHARS else "…" + so_far[-MESSAGE_TAIL_CHARS:]
            ctx.progress(percent, f"Writing the story: {tail}")

    return provider.write_background(sheet, on_text=on_text)  # type: ignore[call-arg]
