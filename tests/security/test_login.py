"""Signing in: magic links are stored hashed, work once, expire after 15 minutes; the form is rate-limited.

Links are asked for through the real form (a real worker runs the ``login.mail`` job it submits) and
read from the outbox as its reader gets them (rendered, as ``/dev/mail`` and SMTP delivery do).
Expiry is tested by moving ``expires_at`` in the database, not by waiting.
"""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
import redis
from sqlalchemy import select, text, update

from questboard.testing import wait_for
from shared import defaults
from shared.db import get_sessionmaker
from shared.models import Job, MagicLink, OutboxMail, utcnow
from shared.signin_links import render
from tests.security.support import csrf_from
from web.ratelimit import BAD_LINKS_PER_IP, KEY_PREFIX, LOGIN_PER_EMAIL, LOGIN_PER_IP

LINK = re.compile(r"https?://[^\s]+/login/([A-Za-z0-9_-]+)")


def ask_for_link(client, email: str, ip: str = "127.0.0.1"):
    token = csrf_from(client, "/login")
    return client.post("/login", data={"email": email, "csrf_token": token}, environ_base={"REMOTE_ADDR": ip})


def outbox_tokens(settings, count: int | None = None) -> list[str]:
    """The sign-in tokens of the outbox's mails as their reader gets them; waits for ``count`` of them."""

    def tokens() -> list[str]:
        with get_sessionmaker(settings.resolved_database_url)() as db:
            bodies = [render(b, settings.resolved_secret_key()) for b in db.scalars(select(OutboxMail.body))]
            return [m.group(1) for body in bodies for m in LINK.finditer(body)]

    if count is not None:
        wait_for(lambda: len(tokens()) >= count, 30, what=f"{count} sign-in mails in the outbox")
    return tokens()


def login_jobs(settings) -> int:
    with get_sessionmaker(settings.resolved_database_url)() as db:
        return len(list(db.scalars(select(Job.id).where(Job.type == "login.mail"))))


def links(settings) -> list[MagicLink]:
    with get_sessionmaker(settings.resolved_database_url)() as db:
        rows = list(db.scalars(select(MagicLink).order_by(MagicLink.id)))
        db.expunge_all()
        return rows


def signed_in(client) -> bool:
    return client.get("/").status_code == 200


def test_the_database_keeps_only_the_sha256_of_a_magic_link(app, settings, alice, worker):
    client = app.test_client()
    assert ask_for_link(client, "Alice@Example.com ").status_code == 200
    [token] = outbox_tokens(settings, 1)
    [row] = links(settings)
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    with get_sessionmaker(settings.resolved_database_url)() as db:
        stored = [str(value) for row_ in db.execute(text("SELECT * FROM magic_links")) for value in row_]
    assert not any(token in value for value in stored), stored
    ttl = row.expires_at - row.created_at
    assert abs(ttl - timedelta(seconds=defaults.MAGIC_LINK_TTL_S)) < timedelta(seconds=2)
    assert defaults.MAGIC_LINK_TTL_S == 15 * 60


def test_a_link_works_once(app, settings, alice, worker):
    asker = app.test_client()
    ask_for_link(asker, alice.user.email)
    [token] = outbox_tokens(settings, 1)
    first, second = app.test_client(), app.test_client()
    assert first.get(f"/login/{token}").status_code == 302 and signed_in(first)
    again = second.get(f"/login/{token}")
    assert again.status_code == 400 and "can't be used" in again.get_data(as_text=True)
    assert not signed_in(second) and links(settings)[0].used_at is not None


@pytest.mark.parametrize("kind", ["expired", "used", "garbage"])
def test_a_dead_link_gives_the_error_page_and_no_session(app, settings, accounts, alice, kind):
    link = accounts.create_magic_link(alice.user, "http://localhost").rsplit("/", 1)[1]
    with get_sessionmaker(settings.resolved_database_url)() as db:
        if kind == "expired":  # 15 minutes and one second later
            db.execute(update(MagicLink).values(expires_at=utcnow() - timedelta(seconds=1)))
        elif kind == "used":
            db.execute(update(MagicLink).values(used_at=utcnow()))
        db.commit()
    client = app.test_client()
    response = client.get(f"/login/{link if kind != 'garbage' else link[:-4] + 'AAAA'}")
    assert response.status_code == 400 and "can't be used" in response.get_data(as_text=True)
    assert not signed_in(client)


def test_a_link_about_to_expire_still_works(app, settings, accounts, alice):
    link = accounts.create_magic_link(alice.user, "http://localhost").rsplit("/", 1)[1]
    with get_sessionmaker(settings.resolved_database_url)() as db:
        db.execute(update(MagicLink).values(expires_at=utcnow() + timedelta(seconds=5)))
        db.commit()
    client = app.test_client()
    assert client.get(f"/login/{link}").status_code == 302 and signed_in(client)


# ----- rate limits ------------------------------------------------------------------------------------


def test_the_form_is_limited_per_address_the_same_for_known_and_unknown_ones(app, settings, alice, worker):
    assert LOGIN_PER_EMAIL.amount == 5 and LOGIN_PER_EMAIL.get_expiry() == 60
    answers = {}
    for email in (alice.user.email, "nobody@example.com"):
        client = app.test_client()
        statuses = [ask_for_link(client, email).status_code for _ in range(LOGIN_PER_EMAIL.amount)]
        assert statuses == [200] * LOGIN_PER_EMAIL.amount, email
        refused = ask_for_link(client, email.upper())  # the same address, written differently
        answers[email] = refused
        assert refused.status_code == 429, email
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert "Too many sign-in attempts" in refused.get_data(as_text=True)
    known, unknown = (answers[e].get_data(as_text=True) for e in (alice.user.email, "nobody@example.com"))
    assert known == unknown  # the page does not tell which address has an account
    assert login_jobs(settings) == 2 * LOGIN_PER_EMAIL.amount  # the refused requests submitted nothing
    assert len(outbox_tokens(settings, LOGIN_PER_EMAIL.amount)) == LOGIN_PER_EMAIL.amount
    assert ask_for_link(app.test_client(), "bob@example.com").status_code == 200  # others may still ask
    keys = redis.Redis.from_url(settings.redis_url, decode_responses=True).keys("*login-rate*")
    assert keys and all(k.startswith(KEY_PREFIX) for k in keys)
    assert not any("example.com" in k for k in keys)  # addresses are hashed in the keys


def test_the_form_is_limited_per_client_address(app):
    client = app.test_client()
    for n in range(LOGIN_PER_IP.amount):
        assert ask_for_link(client, f"user{n}@example.com", ip="10.1.2.3").status_code == 200
    refused = ask_for_link(client, "another@example.com", ip="10.1.2.3")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert ask_for_link(client, "another@example.com", ip="10.9.9.9").status_code == 200


def test_guessing_links_is_limited_per_client_and_a_good_link_is_not_spent_meanwhile(
    app, settings, accounts, alice
):
    client = app.test_client()
    guess = {"environ_base": {"REMOTE_ADDR": "10.6.6.6"}}
    for n in range(BAD_LINKS_PER_IP.amount):
        assert client.get(f"/login/guess{n:04d}guess", **guess).status_code == 400
    good = accounts.create_magic_link(alice.user, "http://localhost").rsplit("/", 1)[1]
    refused = client.get(f"/login/{good}", **guess)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert links(settings)[-1].used_at is None  # refused before it was looked at
    other = app.test_client()
    assert other.get(f"/login/{good}", environ_base={"REMOTE_ADDR": "10.7.7.7"}).status_code == 302
    assert signed_in(other)


def test_good_links_do_not_count_against_the_client(app, accounts, alice):
    for _ in range(BAD_LINKS_PER_IP.amount + 2):
        link = accounts.create_magic_link(alice.user, "http://localhost").removeprefix("http://localhost")
        assert app.test_client().get(link).status_code == 302


def test_sign_in_still_works_when_the_limits_cannot_be_counted(tmp_path, db_url, accounts, alice):
    """Redis down: the form and links answer as usual (the limiter lets them through and logs it)."""
    from questboard.testing import free_port
    from shared.settings import Settings
    from web import create_app

    dead = f"redis://127.0.0.1:{free_port()}/0"
    app = create_app(
        Settings(redis_url=dead, database_url=db_url, instance_dir=tmp_path / "i", secret_key="x")
    )
    client = app.test_client()
    assert ask_for_link(client, alice.user.email).status_code == 200
    link = accounts.create_magic_link(alice.user, "http://localhost").removeprefix("http://localhost")
    assert client.get(link).status_code == 302 and signed_in(client)


def test_a_client_cannot_pick_its_address_with_forwarded_headers(app):
    """No trusted proxy (the default): X-Forwarded-For is ignored; rotating it does not escape the limit."""
    client = app.test_client()
    for n in range(LOGIN_PER_IP.amount):
        forged = {"X-Forwarded-For": f"198.51.100.{n}"}
        token = csrf_from(client, "/login")
        answer = client.post(
            "/login",
            data={"email": f"user{n}@example.com", "csrf_token": token},
            headers=forged,
            environ_base={"REMOTE_ADDR": "10.4.4.4"},
        )
        assert answer.status_code == 200
    token = csrf_from(client, "/login")
    refused = client.post(
        "/login",
        data={"email": "another@example.com", "csrf_token": token},
        headers={"X-Forwarded-For": "198.51.100.250"},
        environ_base={"REMOTE_ADDR": "10.4.4.4"},
    )
    assert refused.status_code == 429


def test_behind_a_trusted_proxy_the_limit_counts_the_forwarded_client(settings):
    from web import create_app

    app = create_app(settings.model_copy(update={"trusted_proxies": 1}), TESTING=True)
    client = app.test_client()
    proxy = {"REMOTE_ADDR": "10.0.0.2"}  # every request arrives from the proxy

    def ask(email: str, client_ip: str):
        token = csrf_from(client, "/login")
        return client.post(
            "/login",
            data={"email": email, "csrf_token": token},
            headers={"X-Forwarded-For": client_ip},
            environ_base=proxy,
        )

    for n in range(LOGIN_PER_IP.amount):
        assert ask(f"user{n}@example.com", "203.0.113.7").status_code == 200
    assert ask("another@example.com", "203.0.113.7").status_code == 429
    assert ask("another@example.com", "203.0.113.8").status_code == 200  # not everyone behind the proxy
