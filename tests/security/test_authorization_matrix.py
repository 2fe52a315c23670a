"""Who may call what: every url rule × {anonymous, owner, other user, admin} → the status it must answer.

``MATRIX`` has one row per (method, rule) of the app's url map, and a test fails when a route appears that
the matrix does not cover, so no endpoint is added without deciding who may call it. Rules with an
``any(...)`` part are called once per alternative. API rows send bearer tokens; page rows send the
role's session cookie (and a valid CSRF token on POST, so only authorization decides).
"""

from __future__ import annotations

import io
import itertools
import json
import re
from collections.abc import Callable
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from flask import Flask

from tests.security.support import PARTY_CSV, PROBE, ROLES, WEBHOOK_SOURCE, World

LOGIN = "login"  # a 302 to /login?next=... (pages, without a session)
Expect = tuple[int | str, int | str, int | str, int | str]  # anonymous, owner, other, admin
_VAR = re.compile(r"<(?:(\w+)(?:\(([^)]*)\))?:)?(\w+)>")


class Row(NamedTuple):
    expect: Expect
    values: Callable[[World], dict[str, str]] = lambda w: {}  # the path's variables (not any() ones)
    request: Callable[[World], dict[str, Any]] = lambda w: {}  # json / data / content_type


def _job(w: World) -> dict[str, str]:
    return {"job_id": w.job_id}


def _fresh_job(w: World) -> dict[str, str]:
    return {"job_id": w.new_job()}


def _failed(w: World) -> dict[str, str]:
    return {"job_id": w.failed_job()}


def _export(w: World) -> dict[str, str]:
    return {"job_id": w.export_job_id}


def _workflow(w: World) -> dict[str, str]:
    """A fresh workflow of the owner: a queued step and one waiting on it."""
    steps = [{"key": "a", "type": PROBE}, {"key": "b", "type": PROBE, "after": ["a"]}]
    response = w.api.post("/api/workflows", json={"steps": steps}, headers=w.headers("owner"))
    assert response.status_code == 202, response.get_json()
    return {"workflow_id": response.get_json()["id"]}


def _json(body: Any) -> Callable[[World], dict[str, Any]]:
    return lambda w: {"json": body}


def _form(**fields: Any) -> Callable[[World], dict[str, Any]]:
    return lambda w: {"data": dict(fields)}


def _upload(w: World) -> dict[str, Any]:
    return {"data": {"file": (io.BytesIO(PARTY_CSV), "party.csv")}}


PUBLIC: Expect = (200, 200, 200, 200)
BEARER: Expect = (401, 200, 200, 200)
OWNED: Expect = (401, 200, 404, 200)
OPERATOR: Expect = (401, 403, 403, 200)
PAGE: Expect = (LOGIN, 200, 200, 200)
OWNED_PAGE: Expect = (LOGIN, 200, 404, 200)
CONSOLE: Expect = (LOGIN, 403, 403, 200)
CONSOLE_ACTION: Expect = (LOGIN, 403, 403, 302)  # done, then back to the console
SUBMIT_FORM: Expect = (LOGIN, 302, 302, 302)  # on to the new job's page

MATRIX: dict[tuple[str, str], Row] = {
    # ----- public
    ("GET", "/healthz"): Row(PUBLIC),
    ("GET", "/readyz"): Row((503, 503, 503, 503)),  # no worker in these tests; never 401
    ("GET", "/api/openapi.json"): Row(PUBLIC),
    ("GET", "/static/<path:filename>"): Row(PUBLIC, lambda w: {"filename": "app.css"}),
    ("POST", "/webhooks/<source>"): Row(  # signed, not authenticated: a token is no signature
        (401, 401, 401, 401), lambda w: {"source": WEBHOOK_SOURCE}, _json({"id": "d1", "event": "ping"})
    ),
    # ----- JSON API (bearer)
    ("GET", "/api/job-types"): Row(BEARER),
    ("GET", "/api/jobs"): Row(BEARER),
    ("POST", "/api/jobs"): Row((401, 202, 202, 202), request=_json({"type": PROBE})),
    ("GET", "/api/jobs/<job_id>"): Row(OWNED, _job),
    ("POST", "/api/jobs/<job_id>/cancel"): Row((401, 202, 404, 202), _fresh_job),
    ("GET", "/api/jobs/<job_id>/events"): Row(OWNED, _job),
    ("GET", "/api/jobs/<job_id>/download"): Row(OWNED, _export),
    ("GET", "/api/jobs/<job_id>/attempts"): Row(OWNED, _failed),
    ("GET", "/api/search"): Row(BEARER, request=lambda w: {"query_string": {"q": "Mira"}}),
    ("POST", "/api/imports"): Row(
        (401, 202, 202, 202), request=lambda w: {"data": PARTY_CSV, "content_type": "text/csv"}
    ),
    ("POST", "/api/workflows"): Row(
        (401, 202, 202, 202), request=_json({"steps": [{"key": "a", "type": PROBE}]})
    ),
    ("GET", "/api/workflows/<workflow_id>"): Row(OWNED, _workflow),
    ("POST", "/api/workflows/<workflow_id>/cancel"): Row((401, 202, 404, 202), _workflow),
    ("GET", "/metrics"): Row(OPERATOR),
    # ----- admin API
    ("GET", "/api/admin/stats"): Row(OPERATOR),
    ("GET", "/api/admin/queues"): Row(OPERATOR),
    ("GET", "/api/admin/workers"): Row(OPERATOR),
    ("GET", "/api/admin/failed"): Row(OPERATOR),
    ("GET", "/api/admin/recurring"): Row(OPERATOR),
    ("GET", "/api/admin/jobs"): Row(OPERATOR),
    ("POST", "/api/admin/jobs/<any(cancel, retry, discard):action>"): Row(
        OPERATOR, request=lambda w: {"json": {"ids": [w.new_job(), w.failed_job()]}}
    ),
    ("POST", "/api/admin/queues/<name>/<any(pause, resume):action>"): Row(
        OPERATOR, lambda w: {"name": "low"}
    ),
    ("POST", "/api/admin/failed/<job_id>/retry"): Row(OPERATOR, _failed),
    ("POST", "/api/admin/failed/<job_id>/discard"): Row(OPERATOR, _failed),
    ("POST", "/api/admin/failed/retry"): Row(OPERATOR, request=_json({"type": PROBE})),
    ("POST", "/api/admin/failed/discard"): Row(OPERATOR, request=_json({"type": PROBE})),
    ("POST", "/api/admin/recurring/<name>/<any(pause, resume, run):action>"): Row(
        OPERATOR, lambda w: {"name": "cleanup-events"}
    ),
    # ----- pages (session cookie)
    ("GET", "/login"): Row((200, 302, 302, 302)),  # signed in already: on to the next page
    ("POST", "/login"): Row(PUBLIC, request=_form(email="alice@example.com")),  # same answer for anyone
    ("GET", "/login/<token>"): Row((400, 400, 400, 400), lambda w: {"token": "not-a-link-we-issued"}),
    ("POST", "/logout"): Row((302, 302, 302, 302)),
    ("GET", "/"): Row(PAGE),
    ("GET", "/search"): Row(PAGE, request=lambda w: {"query_string": {"q": "Mira"}}),
    ("GET", "/dev/mail"): Row(PAGE),
    ("GET", "/characters/new"): Row(PAGE),
    ("POST", "/characters/new"): Row(
        SUBMIT_FORM, request=_form(name="Mira", race="Elf", char_class="Wizard", level="3")
    ),
    ("GET", "/characters/<character_id>"): Row(OWNED_PAGE, lambda w: {"character_id": w.character_id}),
    ("GET", "/characters/import"): Row(PAGE),
    ("POST", "/characters/import"): Row(SUBMIT_FORM, request=_upload),
    ("GET", "/exports"): Row(PAGE),
    ("POST", "/exports"): Row(SUBMIT_FORM, request=_form(kind="jobs", format="csv")),
    ("GET", "/jobs/<job_id>"): Row(OWNED_PAGE, _job),
    ("POST", "/jobs/<job_id>/cancel"): Row((LOGIN, 302, 404, 302), _fresh_job),
    ("GET", "/jobs/<job_id>/download"): Row(OWNED_PAGE, _export),
    ("GET", "/workflows/<workflow_id>"): Row(OWNED_PAGE, _workflow),
    ("GET", "/workflows/<workflow_id>/state"): Row(OWNED_PAGE, _workflow),
    ("GET", "/admin"): Row(CONSOLE),
    ("GET", "/admin/jobs"): Row(CONSOLE),
    ("POST", "/admin/jobs/<any(cancel, retry, discard):action>"): Row(  # the confirmation page
        (LOGIN, 403, 403, 200), request=lambda w: {"data": {"ids": w.new_job()}}
    ),
    ("POST", "/admin/jobs/<any(cancel, retry, discard):action>/confirmed"): Row(
        CONSOLE_ACTION, request=lambda w: {"data": {"ids": w.new_job()}}
    ),
    ("GET", "/characters"): Row(PAGE),
    ("POST", "/jobs/<job_id>/rerun"): Row((LOGIN, 302, 404, 302), _failed),
    ("GET", "/admin/panel"): Row(CONSOLE),
    ("POST", "/admin/queues/<name>/<any(pause, resume):action>"): Row(
        CONSOLE_ACTION, lambda w: {"name": "low"}
    ),
    ("POST", "/admin/failed/<job_id>/<any(retry, discard):action>"): Row(CONSOLE_ACTION, _failed),
    ("POST", "/admin/failed/all/<any(retry, discard):action>"): Row(
        CONSOLE_ACTION, request=_form(type=PROBE)
    ),
    ("POST", "/admin/recurring/<name>/<any(pause, resume, run):action>"): Row(
        CONSOLE_ACTION, lambda w: {"name": "cleanup-events"}
    ),
}
# Routes answered with bearer tokens or signatures (everything else uses the session cookie).
BEARER_PREFIXES = ("/api/", "/webhooks/", "/metrics", "/healthz", "/readyz")


def routes(app: Flask) -> set[tuple[str, str]]:
    return {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS")
    }


def paths(rule: str, world: World, row: Row) -> list[str]:
    """The rule as concrete paths: one per alternative of its ``any(...)`` part, variables from the row."""
    alternatives = [
        [a.strip() for a in args.split(",")] for conv, args, _ in _VAR.findall(rule) if conv == "any"
    ]
    out = []
    for choice in itertools.product(*alternatives):  # one empty choice when there is no any()
        values, picks = row.values(world), iter(choice)  # fresh values per call (jobs get used up)

        def fill(match: re.Match[str], values: dict[str, str] = values, picks: Any = picks) -> str:
            return next(picks) if match.group(1) == "any" else values[match.group(3)]

        out.append(_VAR.sub(fill, rule))
    return out


def call(world: World, method: str, rule: str, role: str) -> list[tuple[str, Any]]:
    """Every concrete request of the row as ``role``: [(path, response)]."""
    row = MATRIX[(method, rule)]
    results = []
    for path in paths(rule, world, row):
        kwargs = row.request(world)
        if rule.startswith(BEARER_PREFIXES):
            client = world.api
            kwargs["headers"] = world.headers(role)
        else:
            client = world.page_client(role, fresh=rule == "/logout")
            if method == "POST":
                kwargs.setdefault("data", {})["csrf_token"] = world.csrf(client)
        results.append((path, client.open(path, method=method, **kwargs)))
    return results


def mismatch(rule: str, expected: int | str, response: Any) -> str | None:
    location = urlsplit(response.headers.get("Location", ""))
    if expected == LOGIN:
        if response.status_code == 302 and location.path == "/login" and "next=" in location.query:
            return None
        return f"got {response.status_code} {location.path}, expected a redirect to /login?next="
    if response.status_code != expected:
        return f"got {response.status_code}, expected {expected}"
    if expected == 302 and location.path == "/login" and rule not in ("/logout", "/login"):
        return "sent to /login although signed in"
    return None


def check(world: World, keys: list[tuple[str, str]]) -> list[str]:
    problems = []
    for method, rule in keys:
        for role, expected in zip(ROLES, MATRIX[(method, rule)].expect, strict=True):
            for path, response in call(world, method, rule, role):
                problem = mismatch(rule, expected, response)
                if problem:
                    problems.append(f"{method} {path} as {role}: {problem}")
    return problems


def test_every_route_is_in_the_matrix(app):
    found, covered = routes(app), set(MATRIX)
    assert found - covered == set(), (
        "routes nobody decided the access rules of (add them to MATRIX):\n"
        + "\n".join(f"{m} {r}" for m, r in sorted(found - covered))
    )
    assert covered - found == set(), f"MATRIX rows of routes that are gone: {sorted(covered - found)}"


def test_api_answers_each_role_as_the_matrix_says(world):
    keys = [key for key in MATRIX if key[1].startswith(BEARER_PREFIXES)]
    problems = check(world, keys)
    assert not problems, "\n".join(problems)


def test_pages_answer_each_role_as_the_matrix_says(world):
    keys = [key for key in MATRIX if not key[1].startswith(BEARER_PREFIXES)]
    problems = check(world, keys)
    assert not problems, "\n".join(problems)


def test_the_api_takes_no_other_credential_than_a_valid_bearer_token(world, admin):
    """An admin's session cookie, a malformed header or a dead token is as good as nothing.

    This is what makes the CSRF exemption of the API safe: a browser's ambient cookie opens nothing there.
    """
    session = world.page_client("admin")
    bad_headers = [
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": f"Basic {admin.token}"},
        {"Authorization": admin.token},  # no scheme
        {"Authorization": "Bearer "},
        {"Authorization": f"Bearer {admin.token}x"},
        {"X-Api-Token": admin.token},
    ]
    problems = []
    for (method, rule), row in MATRIX.items():
        if not rule.startswith(BEARER_PREFIXES) or row.expect[0] != 401 or rule.startswith("/webhooks/"):
            continue
        for path in paths(rule, world, row):
            attempts = [(session, {}), *((world.api, h) for h in bad_headers)]
            for client, headers in attempts:
                response = client.open(path, method=method, headers=headers, **row.request(world))
                if response.status_code != 401 or response.get_json()["error"]["code"] != "unauthorized":
                    problems.append(f"{method} {path} with {headers or 'a session'}: {response.status_code}")
    assert not problems, "\n".join(problems)


def test_lists_and_search_show_only_what_the_caller_may_see(world, alice, bob, admin):
    from shared.db import get_sessionmaker
    from shared.flagship.search import index_character
    from shared.models import Character

    with get_sessionmaker(world.settings.resolved_database_url)() as db:
        index_character(db, db.get(Character, world.character_id))
        db.commit()
    job_id = world.job_id

    def ids(person) -> set[str]:
        body = world.api.get("/api/jobs", headers=person.headers, query_string={"limit": 200}).get_json()
        return {j["id"] for j in body["jobs"]}

    def found(person) -> list[str]:
        body = world.api.get("/api/search", headers=person.headers, query_string={"q": "Mira"}).get_json()
        return [r["id"] for r in body["results"]]

    assert job_id in ids(alice) and job_id in ids(admin) and job_id not in ids(bob)
    assert found(alice) == found(admin) == [world.character_id] and found(bob) == []
    bobs_page = world.page_client("other").get("/").get_data(as_text=True)
    assert job_id not in bobs_page
    assert world.api.post("/webhooks/nobody", json={}).status_code == 404  # unknown source: 404 for anyone


def test_a_user_cannot_use_a_job_type_on_someone_elses_records(world, bob):
    """Job types take record ids as params; running one as another user must not reach their records."""
    from shared.db import get_sessionmaker
    from shared.mail import queue_mail

    with get_sessionmaker(world.settings.resolved_database_url)() as db:
        mail_id = queue_mail(db, bob.user.email, "Your Questboard sign-in link", "secret link").id
        db.commit()
    # mail.deliver is internal: a user cannot submit it at all (422 as for an unknown type).
    response = world.api.post(
        "/api/jobs",
        json={"type": "mail.deliver", "params": {"outbox_id": mail_id}},
        headers=world.headers("owner"),
    )
    assert response.status_code == 422 and response.get_json()["error"]["fields"] == {
        "type": "unknown job type"
    }
    assert bob.user.email not in json.dumps(response.get_json())
