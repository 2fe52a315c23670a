"""Server-rendered pages: the character form refuses the 11th active job with a clear message."""

from __future__ import annotations

from tests.integration.helpers_app import csrf_token, log_in, submit

FORM = {"name": "Orla", "race": "Gnome", "char_class": "Wizard", "level": "2", "alignment": "Lawful Good"}


def test_form_submits_a_character_job_and_opens_its_page(client, accounts, alice):
    log_in(client, accounts, alice)
    resp = client.post("/characters/new", data={**FORM, "csrf_token": csrf_token(client, "/characters/new")})
    assert resp.status_code == 302 and resp.headers["Location"].startswith("/jobs/")
    page = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert 'role="progressbar"' in page and 'aria-valuenow="0"' in page


def test_form_shows_the_limit_when_ten_jobs_are_active(client, accounts, alice):
    for _ in range(10):
        submit(client, alice, "diagnostics.probe")
    log_in(client, accounts, alice)
    resp = client.post("/characters/new", data={**FORM, "csrf_token": csrf_token(client, "/characters/new")})
    assert resp.status_code == 429
    page = resp.get_data(as_text=True)
    assert "10 active jobs" in page and "the limit is 10" in page
    assert 'value="Orla"' in page  # what the user typed is kept


def test_form_shows_field_errors(client, accounts, alice):
    log_in(client, accounts, alice)
    bad = {**FORM, "level": "42", "csrf_token": csrf_token(client, "/characters/new")}
    resp = client.post("/characters/new", data=bad)
    assert resp.status_code == 422
    assert "less than or equal to 20" in resp.get_data(as_text=True)


def test_pages_need_a_session(client):
    for path in ("/", "/characters/new", "/jobs/abc"):
        resp = client.get(path)
        assert resp.status_code == 302 and "/login" in resp.headers["Location"]


def test_an_empty_search_says_so_in_a_sentence(client, accounts, alice):
    log_in(client, accounts, alice)
    page = client.get("/search?q=nothing-like-this").get_data(as_text=True)
    assert "Nothing matches." in page
    assert '<li class="empty">' not in page and '<p class="empty"' in page  # not "1. Nothing matches"
