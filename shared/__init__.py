"""Questboard core: settings, models, job states, progress publishing.

Imports neither Flask nor Celery, so the web process, the workers and the tests can all use it alone.
"""
