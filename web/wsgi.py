"""WSGI entry for gunicorn: ``gunicorn -k gthread --threads 100 -w 1 web.wsgi:app``."""

from shared.logging_setup import configure_logging, use_json_for
from web import create_app

# JSON lines for the app and for gunicorn's own error and access logs (which keep their streams).
configure_logging()
use_json_for("gunicorn.error", "gunicorn.access")

app = create_app()
