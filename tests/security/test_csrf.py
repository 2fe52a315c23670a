"""CSRF: every form POST of the pages needs the session's token; the exempt POSTs take no cookie at all.

The app is built as production builds it (``create_app(settings)``: no TESTING, no WTF_CSRF_ENABLED
override). The POST page routes are read from the url map, so a new form is checked without editing this.
"""

from __future__ import annotations

from shared.queues import QueueControl
from tests.security.support import World, csrf_from
from tests.security.test_authorization_matrix import BEARER_PREFIXES, MATRIX, paths, routes

CSRF_MESSAGES = (
    "The CSRF token is missing.",
    "The CSRF token is invalid.",
    "The CSRF tokens do not match.",
)


def page_posts(app) -> list[str]:
    return sorted(
        rule for method, rule in routes(app) if method == "POST" and not rule.startswith(BEARER_PREFIXES)
    )


def send(world: World, client, rule: str, token: str | None):
    """POST the row's form (a valid one: only the token may be wrong) to every path of the rule."""
    row = MATRIX[("POST", rule)]
    responses = []
    for path in paths(rule, world, row):
        kwargs = row.request(world)
        data = kwargs.setdefault("data", {})
        if token is not None:
            data["csrf_token"] = token
        responses.append((path, client.post(path, **kwargs)))
    return responses


def test_csrf_protection_is_on_in_the_app_as_built(app):
    assert app.config.get("WTF_CSRF_ENABLED", True) is True and app.config.get("WTF_CSRF_CHECK_DEFAULT", True)
    assert not app.testing


def test_every_form_post_without_a_valid_token_is_refused(app, world):
    rules = page_posts(app)
    assert {"/login", "/logout", "/characters/new", "/jobs/<job_id>/cancel", "/exports"} <= set(rules)
    assert any(rule.startswith("/admin/") for rule in rules) and "/characters/import" in rules
    admin = world.page_client("admin")  # allowed to do all of it: only the token can stop it
    world.csrf(admin)  # the session holds a token, so a wrong one is compared with it
    strangers_token = csrf_from(world.page_client("other"), "/")  # valid, but for another session
    problems = []
    for rule in rules:
        for token in (None, "", "forged-token", strangers_token):
            for path, response in send(world, admin, rule, token):
                body = response.get_data(as_text=True)
                if response.status_code != 400 or not any(m in body for m in CSRF_MESSAGES):
                    problems.append(f"POST {path} with token {token!r:.20}: {response.status_code}")
    assert not problems, "\n".join(problems)


def test_every_form_post_with_the_sessions_token_gets_past_the_check(app, world):
    admin = world.page_client("admin")
    token = world.csrf(admin)
    problems = []
    for rule in page_posts(app):
        client = world.page_client("admin", fresh=True) if rule == "/logout" else admin
        use = world.csrf(client) if client is not admin else token
        for path, response in send(world, client, rule, use):
            if response.status_code == 400:
                problems.append(f"POST {path}: 400 {response.get_data(as_text=True)[:120]}")
    assert not problems, "\n".join(problems)


def test_a_refused_post_changes_nothing(world, settings):
    admin = world.page_client("admin")
    job_id = world.new_job()
    assert admin.post(f"/jobs/{job_id}/cancel").status_code == 400
    assert admin.post("/admin/queues/default/pause", data={"csrf_token": "x"}).status_code == 400
    owner = world.api.get(f"/api/jobs/{job_id}", headers=world.headers("owner")).get_json()
    assert owner["status"] == "queued"
    assert QueueControl(settings.resolved_database_url).paused() == set()
    # Logging out without a token does not end the session either.
    assert admin.post("/logout").status_code == 400 and admin.get("/").status_code == 200
