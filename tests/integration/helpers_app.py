"""Small helpers shared by the application-job tests (jobs over the API, browser sessions)."""

from __future__ import annotations

from typing import Any

from questboard.testing import wait_for

FINISHED = ("succeeded", "failed", "canceled")


def submit(client, person, job_type: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    resp = client.post("/api/jobs", json={"type": job_type, "params": params or {}}, headers=person.headers)
    assert resp.status_code == 202, resp.get_json()
    return resp.get_json()


def job(client, person, job_id: str) -> dict[str, Any]:
    resp = client.get(f"/api/jobs/{job_id}", headers=person.headers)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def wait_finished(client, person, job_id: str, timeout_s: float = 30) -> dict[str, Any]:
    """The job once it is succeeded, failed or canceled."""
    return wait_for(
        lambda: (j := job(client, person, job_id))["status"] in FINISHED and j,
        timeout_s,
        0.1,
        what=f"job {job_id} to finish",
    )


def events(client, person, job_id: str) -> list[dict[str, Any]]:
    return client.get(f"/api/jobs/{job_id}/events", headers=person.headers).get_json()


def log_in(client, accounts, person) -> None:
    """Give the test client a session, as a person following a magic link does."""
    link = accounts.create_magic_link(person.user, "http://localhost")
    resp = client.get(link.removeprefix("http://localhost"))
    assert resp.status_code == 302, resp.status_code


def csrf_token(client, path: str) -> str:
    """The CSRF token a form page carries (the test app checks CSRF like production)."""
    import re

    page = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, f"no CSRF token on {path}"
    return match.group(1)
