"""``report.export`` through a real worker: the file, its download (API and page), and its expiry."""

from __future__ import annotations

import csv
import io
import json
import os
from datetime import timedelta

from sqlalchemy import update

from shared.db import get_sessionmaker
from shared.models import Character, Job, utcnow
from tests.integration.helpers_app import csrf_token, events, log_in, submit, wait_finished


def add_characters(settings, person, names: list[str]) -> None:
    with get_sessionmaker(settings.resolved_database_url)() as db:
        for name in names:
            db.add(
                Character(
                    user_id=person.user.id,
                    name=name,
                    race="Elf",
                    char_class="Wizard",
                    level=3,
                    abilities={"STR": 8, "DEX": 14, "CON": 12, "INT": 17, "WIS": 10, "CHA": 11},
                    background="Read every book in the tower.",
                )
            )
        db.commit()


def test_character_export_as_csv_and_json_downloads_with_its_type(client, alice, bob, settings, worker):
    add_characters(settings, alice, ["Ilsa", "=HYPERLINK(evil)"])
    add_characters(settings, bob, ["Not Alice's"])
    csv_job = wait_finished(
        client, alice, submit(client, alice, "report.export", {"kind": "characters", "format": "csv"})["id"]
    )
    json_job = wait_finished(
        client, alice, submit(client, alice, "report.export", {"kind": "characters", "format": "json"})["id"]
    )
    assert csv_job["status"] == json_job["status"] == "succeeded"
    assert csv_job["queue"] == "low" and csv_job["result"]["rows"] == 2
    assert [e["progress"] for e in events(client, alice, csv_job["id"]) if e["status"] == "running"][
        -1
    ] == 100

    resp = client.get(f"/api/jobs/{csv_job['id']}/download", headers=alice.headers)
    assert resp.status_code == 200
    assert resp.mimetype == "text/csv" and resp.headers["Content-Disposition"].startswith("attachment;")
    assert ".csv" in resp.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(resp.get_data(as_text=True))))
    assert [r["name"] for r in rows] == ["Ilsa", "'=HYPERLINK(evil)"]  # no formula for spreadsheets
    assert rows[0]["INT"] == "17" and rows[0]["background"] == "Read every book in the tower."

    resp = client.get(f"/api/jobs/{json_job['id']}/download", headers=alice.headers)
    assert resp.mimetype == "application/json" and ".json" in resp.headers["Content-Disposition"]
    data = json.loads(resp.get_data())
    assert [c["name"] for c in data] == ["Ilsa", "=HYPERLINK(evil)"] and data[0]["abilities"]["INT"] == 17

    # Not yours, not an export, no credentials: nothing to download.
    assert client.get(f"/api/jobs/{csv_job['id']}/download", headers=bob.headers).status_code == 404
    probe = wait_finished(client, alice, submit(client, alice, "diagnostics.probe")["id"])
    resp = client.get(f"/api/jobs/{probe['id']}/download", headers=alice.headers)
    assert resp.status_code == 404 and resp.get_json()["error"]["code"] == "not_found"
    assert client.get(f"/api/jobs/{csv_job['id']}/download").status_code == 401


def test_jobs_export_from_the_form_and_the_job_page(client, accounts, alice, bob, worker):
    submit(client, bob, "diagnostics.probe")
    log_in(client, accounts, alice)
    resp = client.post(
        "/exports", data={"kind": "jobs", "format": "json", "csrf_token": csrf_token(client, "/exports")}
    )
    assert resp.status_code == 302
    job_id = resp.headers["Location"].rsplit("/", 1)[-1]
    done = wait_finished(client, alice, job_id)
    assert done["type"] == "report.export" and done["status"] == "succeeded"
    page = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert f"/jobs/{job_id}/download" in page
    resp = client.get(f"/jobs/{job_id}/download")
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    exported = json.loads(resp.get_data())
    assert [j["id"] for j in exported] == [job_id]  # only alice's jobs: bob's probe is not there
    assert (
        client.post(
            "/exports",
            data={"kind": "spells", "format": "json", "csrf_token": csrf_token(client, "/exports")},
        ).status_code
        == 422
    )


def test_retention_removes_old_exports_and_their_jobs(client, alice, admin, settings, worker):
    job = wait_finished(
        client, alice, submit(client, alice, "report.export", {"kind": "jobs", "format": "csv"})["id"]
    )
    path = settings.instance_dir / "exports" / f"{job['id']}.csv"
    assert path.is_file()
    fresh = wait_finished(
        client, alice, submit(client, alice, "report.export", {"kind": "jobs", "format": "csv"})["id"]
    )
    old = utcnow() - timedelta(days=31)
    with get_sessionmaker(settings.resolved_database_url)() as db:
        db.execute(update(Job).where(Job.id == job["id"]).values(finished_at=old, created_at=old))
        db.commit()
    os.utime(path, (old.timestamp(), old.timestamp()))

    run = wait_finished(client, admin, submit(client, admin, "cleanup.retention")["id"])
    assert run["status"] == "succeeded" and run["result"]["jobs"] == 1 and run["result"]["export_files"] == 1
    assert not path.exists()
    assert client.get(f"/api/jobs/{job['id']}/download", headers=alice.headers).status_code == 404
    assert client.get(f"/api/jobs/{fresh['id']}/download", headers=alice.headers).status_code == 200
