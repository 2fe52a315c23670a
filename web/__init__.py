"""Flask side of Questboard: pages, JSON API and the Socket.IO relay, built by ``create_app``."""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import Any

from flask import Flask
from flask_socketio import SocketIO
from flask_wtf.csrf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from questboard import app as composition
from shared import dbdeadline, defaults, redisurl
from shared.db import get_engine
from shared.publisher import UnbatchingRedisManager
from shared.sessions import ServerSessions
from shared.settings import Settings, get_settings
from web import eio_relay
from web.edge import BoundedJSONProvider, EdgeRequest, SecurityHeaders

socketio = SocketIO()
csrf = CSRFProtect()

# The cookie lives as long as a server-side session may (shared.sessions ends it earlier when it should).
SESSION_LIFETIME = timedelta(seconds=defaults.SESSION_LIFETIME_S)


def _message_queue(redis_url: str) -> dict[str, Any]:
    """Socket.IO's message-queue manager for ``redis_url`` (plain Redis or a Sentinel service): it also
    unpacks the workers' batched updates (shared.publisher)."""
    manager = UnbatchingRedisManager(redisurl.socketio_url(redis_url), channel=defaults.SOCKETIO_CHANNEL)
    return {"client_manager": manager}


def _async_mode() -> str:
    """gevent in the shipped server (its worker monkey-patched the process before importing the app);
    threads where nothing is patched (an app built in-process, e.g. by a test)."""
    monkey = sys.modules.get("gevent.monkey")
    return "gevent" if monkey is not None and monkey.is_module_patched("socket") else "threading"


def create_app(settings: Settings | None = None, **overrides: Any) -> Flask:
    """Build the web app. ``overrides`` go into ``app.config`` (tests use them)."""
    settings = settings or get_settings()
    settings.ensure_instance_dir()
    app = Flask(__name__, instance_path=str(settings.instance_dir.resolve()))
    secure = settings.secure_cookies
    if secure is None:
        secure = settings.base_url.startswith("https://")
    app.config.update(
        SECRET_KEY=settings.resolved_secret_key(),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=secure,
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
        WTF_CSRF_TIME_LIMIT=None,  # tied to the session instead of a clock
        MAX_CONTENT_LENGTH=defaults.MAX_REQUEST_BYTES,  # larger: 413
        JSON_SORT_KEYS=False,
        QUESTBOARD_SETTINGS=settings,
    )
    app.config.update(overrides)
    app.request_class = EdgeRequest
    app.json = BoundedJSONProvider(app)  # every request.get_json: depth and number limits before parsing
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["questboard"] = composition.build(settings)
    if not settings.resolved_database_url.startswith("sqlite"):
        # A request's statement never waits on a dead link for longer than this (shared.dbdeadline).
        dbdeadline.install(get_engine(settings.resolved_database_url), defaults.DB_WEB_STATEMENT_DEADLINE_S)

    csrf.init_app(app)
    socketio.init_app(
        app,
        # A sentinel:// REDIS_URL: Flask-SocketIO would pick kombu for that scheme, so give it the manager.
        **_message_queue(settings.redis_url),
        async_mode=_async_mode(),
        channel="flask-socketio",
        # Default origin policy: a browser may connect only from the page's own origin.
    )

    from web import api, health, live, live_gate, live_guard, pages

    app.register_blueprint(health.bp)
    app.register_blueprint(api.bp)
    csrf.exempt(api.bp)  # bearer tokens only: no ambient credential to forge
    app.register_blueprint(pages.bp)
    from web import admin, console, metrics

    app.register_blueprint(admin.bp)
    csrf.exempt(admin.bp)  # bearer tokens only, like the API; the console's forms carry CSRF tokens
    app.register_blueprint(metrics.bp)
    csrf.exempt(metrics.bp)
    app.register_blueprint(console.bp)
    from web import mail

    mail.init_app(app)
    for install in composition.web_applications():  # the application's endpoints (the flagship's)
        install(app)
    from web import job_browser, job_pages

    app.register_blueprint(job_browser.bp)
    app.register_blueprint(job_pages.bp)
    csrf.exempt(job_browser.bp)  # bearer tokens only, like the admin API
    from web import workflows

    app.register_blueprint(workflows.bp)
    for view in (workflows.create_workflow, workflows.cancel_workflow):
        csrf.exempt(view)  # bearer tokens only, like the API
    guard = live_guard.LiveGuard(socketio, "/jobs", ServerSessions(settings.resolved_database_url))
    app.extensions[live_guard.EXTENSION] = guard
    socketio.on_namespace(live.JobsNamespace("/jobs", guard))
    live_gate.LiveGate(socketio, "/jobs", defaults.LIVE_AUTH_TIMEOUT_S).install()
    api.register_error_handlers(app)
    # Outside the Socket.IO middleware (its polling answers get the headers too), inside ProxyFix.
    app.wsgi_app = SecurityHeaders(app.wsgi_app, settings.base_url)  # type: ignore[method-assign]
    if settings.trusted_proxies:
        # The client's address (sign-in limits, logs), scheme and host as the proxies saw them.
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]
    if eio_relay.supported():
        # Outermost: a polling request of another web process's session goes there untouched.
        relay = eio_relay.EngineIORelay(app.wsgi_app, socketio.server.eio)
        relay.start()
        # The relay's own answers (a refused body, a lost owner) get the security headers too; relayed
        # ones already carry the owner's.
        app.wsgi_app = SecurityHeaders(relay, settings.base_url)  # type: ignore[method-assign]
    return app
