"""Sign-in links in mail, without a usable link in the database.

A mailed sign-in link's token is ``HMAC-SHA256(SECRET_KEY, nonce)``. The outbox stores the mail with a
placeholder ``[[sign-in:<nonce>]]`` where the token goes, and ``magic_links`` stores only the token's
SHA-256. Neither is a working link: the token is computed from the nonce only when the mail is rendered
for its reader, i.e. when ``mail.deliver`` hands it to SMTP or ``/dev/mail`` shows it to its addressee.
After SMTP delivery the placeholder is removed as well. Whoever holds the database alone cannot sign
in; whoever also holds ``SECRET_KEY`` could forge session cookies anyway.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

PLACEHOLDER = re.compile(r"\[\[sign-in:([A-Za-z0-9_-]{16,64})\]\]")
REMOVED = "[link removed after delivery]"
NOT_YOURS = "[sign-in link: shown only to its addressee]"
_CONTEXT = b"questboard sign-in link\x00"


def new_placeholder() -> tuple[str, str]:
    """A fresh (placeholder, nonce) pair."""
    nonce = secrets.token_urlsafe(24)
    return f"[[sign-in:{nonce}]]", nonce


def link_token(secret_key: str, nonce: str) -> str:
    """The link token a nonce stands for (URL-safe, no padding)."""
    digest = hmac.new(secret_key.encode(), _CONTEXT + nonce.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def render(body: str, secret_key: str) -> str:
    """The body as its reader gets it: every placeholder replaced by its token."""
    return PLACEHOLDER.sub(lambda m: link_token(secret_key, m.group(1)), body)


def strip(body: str, note: str = REMOVED) -> str:
    """The body with every placeholder replaced by ``note`` (kept after delivery)."""
    return PLACEHOLDER.sub(lambda _: note, body)
