"""The HTTP edge (contract §9): security headers on every response, and JSON parsed within limits.

``SecurityHeaders`` is WSGI middleware around the whole app, so the headers are on every answer: pages,
the JSON API, error responses, downloads, static files, /metrics, /healthz and the Socket.IO polling
responses (which python-engineio answers without Flask's request hooks). A response that already names a
header keeps its own value.

The pages load scripts and styles from /static only (no inline script, style or event handler), so the
policy needs neither nonces nor 'unsafe-inline'. ``<script type="application/json">`` data blocks are data,
not scripts, and are not affected.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from flask import Request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import BadRequest

from shared import defaults, jsonlimits

JSON_PATH_PREFIXES = ("/api/", "/webhooks/", "/metrics", "/healthz", "/readyz")
_HOST = re.compile(r"^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")
POLICY: dict[str, str] = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self'",
    "font-src": "'self'",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}
STATIC_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
    "Referrer-Policy": "strict-origin-when-cross-origin",  # same-origin keeps it: CSRF checks on https use it
}


def is_json_path(path: str) -> bool:
    """Paths whose errors are answered as JSON ``{"error": {...}}`` rather than as pages."""
    return path == "/api" or path.startswith(JSON_PATH_PREFIXES)


def content_security_policy(host: str | None, https: bool) -> str:
    """The policy for a request to ``host``: ``connect-src`` names its own Socket.IO origin too, for
    browsers in which 'self' does not yet cover ws:/wss:."""
    policy = dict(POLICY)
    if host and _HOST.match(host):
        policy["connect-src"] += f" {'wss' if https else 'ws'}://{host}"
    return "; ".join(f"{name} {value}" for name, value in policy.items())


class SecurityHeaders:
    """WSGI middleware adding the security headers to every response; HSTS when the request arrived over
    https (as ProxyFix tells, behind a trusted proxy) or the base URL is https."""

    def __init__(self, app: Callable[..., Iterable[bytes]], base_url: str) -> None:
        self.app = app
        self.https_base = base_url.lower().startswith("https://")

    def headers_for(self, environ: dict[str, Any]) -> list[tuple[str, str]]:
        """The headers for the response to this request."""
        https = self.https_base or environ.get("wsgi.url_scheme") == "https"
        found = [("Content-Security-Policy", content_security_policy(environ.get("HTTP_HOST"), https))]
        found += list(STATIC_HEADERS.items())
        if https:
            found.append(("Strict-Transport-Security", f"max-age={defaults.HSTS_MAX_AGE_S}"))
        return found

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        extra = self.headers_for(environ)

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            present = {name.lower() for name, _ in headers}
            headers = list(headers) + [(n, v) for n, v in extra if n.lower() not in present]
            return start_response(status, headers, exc_info)

        return self.app(environ, start)


class BoundedJSONProvider(DefaultJSONProvider):
    """Flask's JSON, except that parsing refuses documents deeper or with longer numbers than the limits
    in ``shared.defaults`` (a ValueError, so ``request.get_json`` answers 400 like any malformed body)."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        """Parse ``s`` within ``shared.jsonlimits``' bounds."""
        return jsonlimits.loads(s)


class EdgeRequest(Request):
    """Flask's request, except that a JSON body it cannot parse is a 400 that says why (in production
    too): not JSON, nested too deeply, a number too long or out of range."""

    def on_json_loading_failed(self, e: ValueError | None) -> Any:
        """Raise a 400 naming the problem (a 415 for a body that is not declared JSON, as Flask does)."""
        if e is None:
            return super().on_json_loading_failed(e)
        raise BadRequest(str(e)) from e
