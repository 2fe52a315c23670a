"""The catch-up policy of a recurring entry: declared in its options, checked, and never sent."""

from __future__ import annotations

import pytest

from workers.catchup import catch_up_of, check_catch_up, send_options


def test_the_policy_defaults_to_once_and_a_bad_one_names_its_entry():
    assert catch_up_of({"queue": "high"}) == "once" and catch_up_of(None) == "once"
    assert catch_up_of({"catch_up": "skip"}) == "skip"
    check_catch_up("nightly", {"catch_up": "skip"})
    with pytest.raises(ValueError, match="'nightly'.*once, skip.*'twice'"):
        check_catch_up("nightly", {"catch_up": "twice"})


def test_the_policy_is_not_among_the_options_a_task_is_sent_with():
    assert send_options({"queue": "high", "catch_up": "skip"}) == {"queue": "high"}
    assert send_options(None) == {}
