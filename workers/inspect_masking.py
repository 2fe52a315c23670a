"""Worker inspect replies (``conf``, ``stats``, ``report``) with every URL's password masked.

Flower's worker view shows the worker's configuration and stats as ``celery inspect`` returns them.
Celery censors the settings whose names look secret and the broker/backend URLs, but not others such
as RedBeat's ``redbeat_redis_url``. Importing this module (the Celery app does) wraps those commands so
that any ``scheme://user:password@host`` in a reply, at any depth, shows ``********`` instead, and any
``password`` field is masked.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from typing import Any

from celery.worker.control import Panel

MASK = "*" * 8
URL_PASSWORD = re.compile(r"(\w[\w+.-]*://[^:@/\s]*:)([^@/\s]+)(@)")
MASKED_COMMANDS = ("conf", "stats", "report")


def mask_urls(value: Any) -> Any:
    """``value`` with the password of every URL in it masked (mappings and sequences walked)."""
    if isinstance(value, str):
        return URL_PASSWORD.sub(r"\g<1>" + MASK + r"\g<3>", value)
    if isinstance(value, Mapping):
        return {
            k: (MASK if isinstance(k, str) and k.lower() == "password" and v else mask_urls(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(mask_urls(v) for v in value)
    return value


def _masked(handler: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(handler)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        return mask_urls(handler(*args, **kwargs))

    wrapped.questboard_masked = True  # type: ignore[attr-defined]
    return wrapped


def install() -> None:
    """Wrap the inspect commands that echo configuration (once per process)."""
    for name in MASKED_COMMANDS:
        handler = Panel.data.get(name)
        if handler is not None and not getattr(handler, "questboard_masked", False):
            Panel.data[name] = _masked(handler)


install()
