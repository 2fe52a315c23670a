"""REDIS_URL naming a Sentinel service becomes the right settings for each client library."""

from __future__ import annotations

import pytest

from shared import redisurl

URL = "sentinel://:s3cret@10.0.0.1:26379;sentinel://10.0.0.2:26380;sentinel://10.0.0.3/2?master_name=main"


def test_a_sentinel_url_names_its_sentinels_service_db_and_password():
    service = redisurl.parse_sentinel(URL)
    assert service.sentinels == (("10.0.0.1", 26379), ("10.0.0.2", 26380), ("10.0.0.3", 26379))
    assert (service.master_name, service.db, service.password) == ("main", 2, "s3cret")


def test_each_library_gets_the_service_in_its_own_syntax():
    broker, options = redisurl.kombu_broker(URL)
    assert broker.split(";")[1] == "sentinel://:s3cret@10.0.0.2:26380/2" and options == {
        "master_name": "main"
    }
    beat_url, beat_options = redisurl.redbeat(URL)
    assert beat_url.startswith("redis-sentinel") and beat_options["service_name"] == "main"
    assert beat_options["sentinels"][2] == ("10.0.0.3", 26379) and beat_options["db"] == 2
    assert redisurl.socketio_url(URL) == (
        "redis+sentinel://:s3cret@10.0.0.1:26379,10.0.0.2:26380,10.0.0.3:26379/2/main"
    )
    assert "s3cret" not in redisurl.describe(URL)


def test_a_plain_url_passes_through_unchanged():
    plain = "redis://:pw@127.0.0.1:6379/0"
    assert redisurl.kombu_broker(plain) == (plain, {}) and redisurl.redbeat(plain) == (plain, {})
    assert redisurl.socketio_url(plain) == plain and "pw" not in redisurl.describe(plain)


@pytest.mark.parametrize(
    "bad",
    [
        "sentinel://10.0.0.1:26379/0",
        "sentinel://;?master_name=x",
        "sentinel://h:1;redis://h:2/0?master_name=x",
    ],
)
def test_a_malformed_sentinel_url_is_refused(bad: str):
    with pytest.raises(ValueError):
        redisurl.parse_sentinel(bad)
