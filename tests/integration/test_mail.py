"""Mail later: login and 'character ready' mails go through the outbox and a ``mail.deliver`` job to a
real local SMTP server (aiosmtpd); ``/dev/mail`` previews the outbox."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from questboard.testing import free_port, wait_for
from shared.db import get_sessionmaker
from shared.models import Job, OutboxMail
from shared.system import SYSTEM_EMAIL
from tests.integration.helpers_app import csrf_token, log_in, submit, wait_finished


class Inbox:
    """An aiosmtpd handler keeping every accepted message; refuses recipients at refused.example.com."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], str]] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address.endswith("@refused.example.com"):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.messages.append((list(envelope.rcpt_tos), envelope.content.decode("utf-8", errors="replace")))
        return "250 Message accepted"


@pytest.fixture
def smtp_inbox() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


@pytest.fixture
def settings(settings, smtp_inbox):
    return settings.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{smtp_inbox[1]}", "debug": True})


@pytest.fixture
def env(env, smtp_inbox):
    return {**env, "SMTP_URL": f"smtp://127.0.0.1:{smtp_inbox[1]}", "QUESTBOARD_BASE_URL": "http://qb.test"}


def test_login_mail_is_delivered_by_a_job_of_the_system_user(
    client, alice, admin, settings, smtp_inbox, worker
):
    inbox, _ = smtp_inbox
    resp = client.post("/login", data={"email": alice.user.email, "csrf_token": csrf_token(client, "/login")})
    assert resp.status_code == 200
    mail = wait_for(lambda: inbox.messages, 20, what="the login mail at the SMTP server")[0]
    assert mail[0] == [alice.user.email]
    assert "Subject: Your Questboard sign-in link" in mail[1]
    assert re.search(r"http://\S+/login/\S+", mail[1])

    sessions = get_sessionmaker(settings.resolved_database_url)
    with sessions() as db:
        stored = db.scalars(select(OutboxMail)).one()
        job = db.scalars(select(Job).where(Job.type == "mail.deliver")).one()
        wait_for(lambda: db.get(OutboxMail, stored.id, populate_existing=True).sent_at, 10, what="sent_at")
    done = wait_finished(client, admin, job.id)
    assert done["queue"] == "high" and done["result"]["delivered"] is True
    # The system user owns it; the person the mail is for does not see the job.
    assert client.get(f"/api/jobs/{job.id}", headers=alice.headers).status_code == 404
    owner = client.get("/api/jobs?type=mail.deliver", headers=admin.headers).get_json()["jobs"]
    assert len(owner) == 1
    assert SYSTEM_EMAIL  # documented owner


def test_refused_recipient_fails_the_job_at_once(client, admin, accounts, settings, smtp_inbox, worker):
    person = accounts.ensure_user("someone@refused.example.com")
    accounts.queue_login_mail(person, "http://qb.test/login/x")  # no web app here: the CLI-like path
    with get_sessionmaker(settings.resolved_database_url)() as db:
        mail_id = db.scalars(select(OutboxMail.id)).one()
    job_id = submit(client, admin, "mail.deliver", {"outbox_id": mail_id})["id"]
    done = wait_finished(client, admin, job_id)
    assert done["status"] == "failed" and done["attempts"] == 1
    assert done["error"]["type"] == "PermanentError" and "550" in done["error"]["message"]
    assert smtp_inbox[0].messages == []


def test_character_ready_mail_follows_generation(client, alice, smtp_inbox, worker):
    params = {"name": "Tamsin Reed", "race": "Halfling", "char_class": "Bard", "level": 2}
    gen = submit(client, alice, "character.generate", params)
    done = wait_finished(client, alice, gen["id"])
    assert done["status"] == "succeeded"
    inbox, _ = smtp_inbox
    to, text = wait_for(lambda: inbox.messages, 20, what="the 'ready' mail")[0]
    assert to == [alice.user.email] and "Subject: Tamsin Reed is ready" in text
    assert f"http://qb.test{done['result']['url']}" in text
    # The chain is visible to the owner as children of the generate job.
    types = {j["type"] for j in client.get("/api/jobs", headers=alice.headers).get_json()["jobs"]}
    assert {"character.generate", "content.index", "mail.deliver"} <= types


def test_dev_mail_shows_people_their_own_mail_and_admins_all(client, accounts, alice, bob, admin):
    accounts.queue_login_mail(alice.user, "http://qb.test/login/alice-link")
    accounts.queue_login_mail(bob.user, "http://qb.test/login/bob-link")
    assert client.get("/dev/mail").status_code == 302  # a session is required

    log_in(client, accounts, alice)
    page = client.get("/dev/mail").get_data(as_text=True)
    assert "alice-link" in page and "bob-link" not in page

    log_in(client, accounts, admin)
    page = client.get("/dev/mail").get_data(as_text=True)
    assert "alice-link" in page and "bob-link" in page


def test_dev_mail_is_off_when_mail_really_leaves(app, client, accounts, alice):
    app.config["QUESTBOARD_SETTINGS"].debug = False  # the same settings object the services hold
    log_in(client, accounts, alice)
    assert client.get("/dev/mail").status_code == 404


def test_a_delivered_sign_in_link_is_in_no_table_and_works_once(
    client, app, alice, settings, smtp_inbox, worker
):
    from sqlalchemy import inspect, text

    from shared.db import get_engine

    resp = client.post("/login", data={"email": alice.user.email, "csrf_token": csrf_token(client, "/login")})
    assert resp.status_code == 200
    _, message = wait_for(lambda: smtp_inbox[0].messages, 20, what="the login mail at the SMTP server")[0]
    [token] = re.findall(r"http://\S+/login/([A-Za-z0-9_-]+)", message)
    with get_sessionmaker(settings.resolved_database_url)() as db:
        wait_for(lambda: db.scalars(select(OutboxMail.sent_at)).first(), 10, what="sent_at")
    engine = get_engine(settings.resolved_database_url)
    with engine.connect() as conn:
        stored = [
            str(value)
            for table in inspect(engine).get_table_names()
            for row in conn.execute(text(f'SELECT * FROM "{table}"'))
            for value in row
        ]
    assert stored and not any(token in value for value in stored)
    reader = app.test_client()
    assert reader.get(f"/login/{token}").status_code == 302 and reader.get("/").status_code == 200
    assert app.test_client().get(f"/login/{token}").status_code == 400
