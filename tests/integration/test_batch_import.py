"""Batch import: a CSV upload becomes one ``batch.import`` parent and a ``character.generate`` child per
row; the parent reports finished/total and fans in when the last child ends (real worker, Redis, DB)."""

from __future__ import annotations

import io

from sqlalchemy import select

from questboard.testing import wait_for
from shared.db import get_sessionmaker
from shared.models import Character, Job
from tests.integration.helpers_app import csrf_token, events, job, log_in, wait_finished

GOOD_CSV = (
    "name,race,class,level,alignment\n"
    "Mira Thorn,Elf,Ranger,5,Chaotic Good\n"
    "Borin Ash,Dwarf,Fighter,3,\n"
    "\n"
    "Pip Quickfoot,Halfling,Rogue,1,Neutral Good\n"
)


def upload(client, data: bytes, name: str = "party.csv"):
    token = csrf_token(client, "/characters/import")
    return client.post(
        "/characters/import",
        data={"file": (io.BytesIO(data), name), "csrf_token": token},
        content_type="multipart/form-data",
    )


def test_csv_upload_fans_out_and_fans_in(client, accounts, alice, settings, worker):
    log_in(client, accounts, alice)
    resp = upload(client, GOOD_CSV.encode())
    assert resp.status_code == 302
    parent_id = resp.headers["Location"].rsplit("/", 1)[-1]

    done = wait_finished(client, alice, parent_id, timeout_s=60)
    assert done["type"] == "batch.import" and done["status"] == "succeeded"
    assert done["result"] == {"total": 3, "succeeded": 3, "failed": 0, "canceled": 0}
    assert done["message"].startswith("Imported 3 of 3")

    def children_done() -> list[Job] | None:
        # The summary mail is sent by a child the fan-in submits, so it may still be running.
        with get_sessionmaker(settings.resolved_database_url)() as db:
            rows = db.scalars(select(Job).where(Job.parent_id == parent_id)).all()
        return rows if len(rows) == 4 and all(c.status in ("succeeded", "failed") for c in rows) else None

    children = wait_for(children_done, 30, what="the import's children")
    with get_sessionmaker(settings.resolved_database_url)() as db:
        names = set(db.scalars(select(Character.name).where(Character.user_id == alice.user.id)))
    assert sorted(c.type for c in children) == ["character.generate"] * 3 + ["mail.deliver"]
    assert all(c.status == "succeeded" for c in children) and {c.queue for c in children} == {"low", "high"}
    assert names == {"Mira Thorn", "Borin Ash", "Pip Quickfoot"}
    # Progress was the finished share, rising to 100 only at the fan-in.
    running = [e for e in events(client, alice, parent_id) if e["status"] == "running"]
    assert [e["progress"] for e in running] == sorted(e["progress"] for e in running)
    assert running[-1]["progress"] == 100 and all(e["progress"] < 100 for e in running[:-1])
    assert any(" of 3 characters finished" in e["message"] for e in running)


def test_bad_rows_are_reported_by_line_and_nothing_starts(client, accounts, alice):
    log_in(client, accounts, alice)
    bad = "name,race,char_class,level\nMira,Elf,Ranger,5\nBorin,Dwarf,Baker,3\nPip,Halfling,Rogue,99\n"
    resp = upload(client, bad.encode())
    assert resp.status_code == 422
    page = resp.get_data(as_text=True)
    assert "line 3" in page and "char_class" in page and "line 4" in page and "line 2" not in page
    resp = upload(client, b"name,race\nMira,Elf\n")
    assert resp.status_code == 422 and "missing: char_class, level" in resp.get_data(as_text=True)
    assert client.get("/api/jobs", headers=alice.headers).get_json()["jobs"] == []

    api = client.post(
        "/api/imports", data=bad.encode(), headers={**alice.headers, "Content-Type": "text/csv"}
    )
    assert api.status_code == 422 and set(api.get_json()["error"]["fields"]) == {"line 3", "line 4"}


def test_api_import_and_canceling_the_parent_cancels_its_children(client, alice, start_worker):
    # One process on "low": the parent holds it, so its children stay queued until the cancel.
    start_worker(queues="low", concurrency=1)
    resp = client.post(
        "/api/imports", data=GOOD_CSV.encode(), headers={**alice.headers, "Content-Type": "text/csv"}
    )
    assert resp.status_code == 202
    parent_id = resp.get_json()["id"]
    wait_for(lambda: job(client, alice, parent_id)["message"].startswith("0 of 3"), 20, what="parent waiting")

    assert client.post(f"/api/jobs/{parent_id}/cancel", headers=alice.headers).status_code == 202
    done = wait_finished(client, alice, parent_id, timeout_s=5)
    assert done["status"] == "canceled"
    children = client.get("/api/jobs?type=character.generate", headers=alice.headers).get_json()["jobs"]
    assert len(children) == 3 and {c["status"] for c in children} == {"canceled"}
    assert all(c["started_at"] is None for c in children)
