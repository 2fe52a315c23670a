"""The top layer: the ``questboard`` command, the composition root and the test harness.

It sits above ``web`` and ``workers``, which sit above ``shared`` (tests/unit/test_layering.py).
"""
