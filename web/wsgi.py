"""WSGI entry for gunicorn: ``gunicorn -k gthread --threads 100 -w 1 web.wsgi:app``."""

from web import create_app

app = create_app()
