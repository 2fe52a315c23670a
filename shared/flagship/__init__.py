"""The flagship application's core: characters, their exports, CSV imports, search and webhooks.

An application built on the platform like any other; the platform (the rest of ``shared``, ``web`` and
``workers``) never imports it (tests/unit/test_layering.py).
"""
