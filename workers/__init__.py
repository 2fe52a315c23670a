"""Celery side of Questboard: the app, the task wrapper around job bodies, and the job types."""
