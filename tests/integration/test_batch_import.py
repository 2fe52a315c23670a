"""Batch import: a CSV upload becomes a workflow, one ``character.generate`` step per row and a last
``batch.summary`` step that counts the rows and mails the owner (real worker, Redis, DB)."""

from __future__ import annotations

import io

from sqlalchemy import select

from questboard.testing import wait_for
from shared import defaults
from shared.db import get_sessionmaker
from shared.flagship.imports import import_workflow
from shared.models import Character, Job, OutboxMail
from tests.integration.helpers_app import csrf_token, job, log_in, wait_finished
from tests.integration.workflows.support import finished_workflow, ran_after

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


def test_csv_upload_runs_its_rows_then_mails_one_summary(client, accounts, alice, settings, worker):
    log_in(client, accounts, alice)
    resp = upload(client, GOOD_CSV.encode())
    assert resp.status_code == 302 and "/workflows/" in resp.headers["Location"]
    workflow_id = resp.headers["Location"].rsplit("/", 1)[-1]

    done = finished_workflow(client, alice.headers, workflow_id)
    assert done["status"] == "succeeded" and done["name"] == "Import of party.csv"
    assert [(s["key"], s["type"]) for s in done["steps"]] == [
        ("row-1", "character.generate"),
        ("row-2", "character.generate"),
        ("row-3", "character.generate"),
        ("summary", "batch.summary"),
    ]
    rows = [job(client, alice, s["job_id"]) for s in done["steps"][:3]]
    summary = job(client, alice, done["steps"][3]["job_id"])
    assert {r["queue"] for r in rows} == {"low"} and all(ran_after(summary, r) for r in rows)
    assert summary["result"] == {"total": 3, "succeeded": 3, "failed": 0, "canceled": 0}
    assert summary["message"].startswith("Imported 3 of 3")
    # The summary's mail is the import's only mail (its rows mail nothing), sent by a follow-up.
    mail = wait_finished(client, alice, _mail_job(settings, summary["id"]), timeout_s=30)
    assert mail["type"] == "mail.deliver" and mail["status"] == "succeeded"
    with get_sessionmaker(settings.resolved_database_url)() as db:
        names = set(db.scalars(select(Character.name).where(Character.user_id == alice.user.id)))
        subjects = list(db.scalars(select(OutboxMail.subject).where(OutboxMail.to_addr == alice.user.email)))
    assert names == {"Mira Thorn", "Borin Ash", "Pip Quickfoot"}
    assert subjects == ["Your character import finished"]


def _mail_job(settings, summary_id: str) -> str:
    def found() -> str | None:
        with get_sessionmaker(settings.resolved_database_url)() as db:
            return db.scalar(select(Job.id).where(Job.parent_id == summary_id, Job.type == "mail.deliver"))

    return wait_for(found, 30, what="the summary's mail job")


def test_rows_run_in_chains_and_go_on_past_a_failed_row():
    rows = [{"name": f"Hero {n}", "race": "Elf", "char_class": "Bard", "level": 1} for n in range(5)]
    spec = import_workflow(rows, "five.csv")
    lanes = defaults.IMPORT_PARALLEL_ROWS
    assert [s.after for s in spec.steps[:5]] == [[]] * lanes + [[f"row-{i + 1}"] for i in range(5 - lanes)]
    assert {s.on_failure.value for s in spec.steps[:5]} == {"continue"}
    assert spec.steps[-1].after == [f"row-{i + 1}" for i in range(5)]


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


def test_api_import_and_canceling_it_cancels_every_row_and_the_summary(client, alice):
    # No worker: nothing has started when the cancel comes, so nothing ever starts.
    resp = client.post(
        "/api/imports", data=GOOD_CSV.encode(), headers={**alice.headers, "Content-Type": "text/csv"}
    )
    assert resp.status_code == 202
    created = resp.get_json()
    assert [s["status"] for s in created["steps"]] == ["queued"] * 3 + ["blocked"]
    canceled = client.post(f"/api/workflows/{created['id']}/cancel", headers=alice.headers)
    assert canceled.status_code == 202
    done = finished_workflow(client, alice.headers, created["id"])
    assert done["status"] == "canceled" and {s["status"] for s in done["steps"]} == {"canceled"}
    assert all(job(client, alice, s["job_id"])["started_at"] is None for s in done["steps"])
