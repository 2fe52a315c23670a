"""The flagship application's web side: character pages, exports, CSV imports, search and webhooks.

``init_app`` is what the composition root (questboard.app.web_applications) hands ``create_app``; the
platform's own web modules never import this package.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the application's blueprints on ``app``."""
    from web import csrf
    from web.flagship import characters, exports, imports, search, webhooks

    for blueprint in (characters.bp, exports.bp, imports.bp, search.bp, webhooks.bp):
        app.register_blueprint(blueprint)
    csrf.exempt(webhooks.bp)  # signed by the sender (HMAC); no session, nothing to forge
    csrf.exempt(imports.api_import)  # bearer token only
