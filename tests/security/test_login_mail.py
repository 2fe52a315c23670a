"""The sign-in form does the same work for every address, and no table ever holds a usable link.

``POST /login`` only checks the form and its limits and submits a ``login.mail`` job; a real worker runs
it. The request's SQL is counted with an event listener on the app's engine (deterministic, unlike
timings). The outbox is read through ``/dev/mail`` as its addressee reads it, then every table is
searched for the link's token.
"""

from __future__ import annotations

import re

from sqlalchemy import event, inspect, select, text

from questboard.testing import wait_for
from shared.db import get_engine, get_sessionmaker
from shared.models import Job, OutboxMail
from tests.security.support import csrf_from, log_in

LINK = re.compile(r"https?://[^\s<\"]+/login/([A-Za-z0-9_-]{20,})")


def ask(client, email: str):
    token = csrf_from(client, "/login")
    return client.post("/login", data={"email": email, "csrf_token": token})


def login_jobs_done(settings, count: int) -> list[Job]:
    def done() -> list[Job]:
        with get_sessionmaker(settings.resolved_database_url)() as db:
            jobs = list(db.scalars(select(Job).where(Job.type == "login.mail")))
            db.expunge_all()
        finished = [j for j in jobs if j.status == "succeeded"]
        return finished if len(finished) >= count else []

    return wait_for(done, 30, what=f"{count} login.mail jobs done")


def outbox_for(settings, email: str) -> list[OutboxMail]:
    with get_sessionmaker(settings.resolved_database_url)() as db:
        mails = list(db.scalars(select(OutboxMail).where(OutboxMail.to_addr == email)))
        db.expunge_all()
        return mails


def test_known_and_unknown_addresses_cost_the_request_the_same(app, settings, alice, worker):
    engine = get_engine(settings.resolved_database_url)
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    client = app.test_client()
    ask(client, "warm-up@example.com")  # first use builds the system user; not what is measured
    counts, pages = {}, {}
    event.listen(engine, "before_cursor_execute", record)
    try:
        for email in (alice.user.email, "nobody@example.com"):
            form = app.test_client()
            csrf = csrf_from(form, "/login")
            statements.clear()
            answer = form.post("/login", data={"email": email, "csrf_token": csrf})
            assert answer.status_code == 200
            counts[email] = [s.split()[0].upper() for s in statements]
            pages[email] = answer.get_data(as_text=True).replace(email, "ADDRESS")
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert counts[alice.user.email] == counts["nobody@example.com"], counts
    assert not any("magic_links" in s or "outbox_mail" in s for s in statements)
    assert pages[alice.user.email] == pages["nobody@example.com"]

    # The worker does the rest: a mail for alice, none for the unknown address.
    login_jobs_done(settings, 3)
    wait_for(lambda: outbox_for(settings, alice.user.email), 20, what="alice's sign-in mail")
    assert outbox_for(settings, "nobody@example.com") == []
    assert outbox_for(settings, "warm-up@example.com") == []


def every_stored_value(settings) -> list[str]:
    engine = get_engine(settings.resolved_database_url)
    values = []
    with engine.connect() as conn:
        for table in inspect(engine).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                values.extend(str(v) for v in row)
    return values


def test_the_outbox_never_holds_a_usable_link(app, settings, accounts, alice, admin, worker):
    assert ask(app.test_client(), alice.user.email).status_code == 200
    wait_for(lambda: outbox_for(settings, alice.user.email), 20, what="the sign-in mail")
    reader = log_in(app.test_client(), accounts, alice.user)  # alice reads her mail at /dev/mail
    page = reader.get("/dev/mail").get_data(as_text=True)
    [token] = set(LINK.findall(page))  # the link and its text
    stored = every_stored_value(settings)
    assert stored and not any(token in value for value in stored)

    # An admin sees every mail in the preview, but not a link to sign in as someone else.
    operator = log_in(app.test_client(), accounts, admin.user).get("/dev/mail").get_data(as_text=True)
    assert alice.user.email in operator and "shown only to its addressee" in operator
    assert not LINK.findall(operator)

    fresh = app.test_client()
    assert fresh.get(f"/login/{token}").status_code == 302  # the link from the mail still works
    assert fresh.get("/").status_code == 200
    assert app.test_client().get(f"/login/{token}").status_code == 400  # once


def test_only_the_sign_in_form_may_mail_sign_in_links(app, settings, alice, bob, worker):
    """A user who submits login.mail with another's address gets a failed job, and nobody a mail."""
    answer = app.test_client().post(
        "/api/jobs", json={"type": "login.mail", "params": {"email": alice.user.email}}, headers=bob.headers
    )
    if answer.status_code == 202:  # where internal types are not yet refused at submit
        job_id = answer.get_json()["id"]

        def finished():
            job = app.test_client().get(f"/api/jobs/{job_id}", headers=bob.headers).get_json()
            return job if job["status"] in ("failed", "succeeded") else None

        job = wait_for(finished, 30, what="bob's login.mail job")
        assert job["status"] == "failed" and job["error"]["type"] == "PermanentError"
    else:
        assert answer.status_code == 422
    assert outbox_for(settings, alice.user.email) == []
