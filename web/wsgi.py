"""WSGI entry for the web server (``shared.webserver``: gunicorn's gevent worker, which monkey-patches the
process before it imports this module, so psycopg, redis-py and the app's threads are all cooperative)."""

from shared.logging_setup import configure_logging, use_json_for
from web import create_app

# JSON lines for the app and for gunicorn's own error and access logs (which keep their streams).
configure_logging()
use_json_for("gunicorn.error", "gunicorn.access")

app = create_app()
