"""A character job's result is the character (contract §5), and enumerated params are matched in any
letter case and stored canonical (contract §3), through the API and a real worker."""

from __future__ import annotations

from shared.flagship.characters import ABILITY_ORDER
from tests.integration.helpers_app import submit, wait_finished


def test_lower_case_params_are_stored_canonical_and_the_result_is_the_character(client, alice, worker):
    params = {
        "name": "Pip",
        "race": " halfling",
        "char_class": "ROGUE",
        "level": 3,
        "alignment": "chaotic good",
    }
    job = submit(client, alice, "character.generate", params)
    assert job["params"] == {**params, "race": "Halfling", "char_class": "Rogue", "alignment": "Chaotic Good"}

    done = wait_finished(client, alice, job["id"])
    assert done["status"] == "succeeded", done
    result = done["result"]
    assert set(result) == {
        "id",
        "name",
        "race",
        "char_class",
        "level",
        "alignment",
        "abilities",
        "background",
        "url",
    }
    assert (result["name"], result["race"], result["char_class"], result["level"], result["alignment"]) == (
        "Pip",
        "Halfling",
        "Rogue",
        3,
        "Chaotic Good",
    )
    assert list(result["abilities"]) == list(ABILITY_ORDER) == ["STR", "DEX", "CON", "INT", "WIS", "CHA"]
    assert all(3 <= v <= 18 for v in result["abilities"].values())
    assert "Pip" in result["background"] and len(result["background"]) > 200
    assert result["url"] == f"/characters/{result['id']}"


def test_a_bad_enumerated_value_is_422_listing_the_allowed_ones(client, alice):
    resp = client.post(
        "/api/jobs",
        json={
            "type": "character.generate",
            "params": {"name": "X", "race": "orc", "char_class": "rogue", "level": 1},
        },
        headers=alice.headers,
    )
    assert resp.status_code == 422
    message = resp.get_json()["error"]["fields"]["params.race"]
    for race in ("Human", "Elf", "Dwarf", "Halfling", "Half-Orc", "Dragonborn"):
        assert race in message, message
    resp = client.post(
        "/api/jobs",
        json={"type": "report.export", "params": {"kind": "users", "format": "xml"}},
        headers=alice.headers,
    )
    fields = resp.get_json()["error"]["fields"]
    assert resp.status_code == 422 and "jobs" in fields["params.kind"] and "csv" in fields["params.format"]


def test_the_schema_still_shows_the_canonical_enum(client, alice):
    types = {t["type"]: t for t in client.get("/api/job-types", headers=alice.headers).get_json()}
    race = types["character.generate"]["params_schema"]["properties"]["race"]
    assert "Halfling" in race["enum"] and "halfling" not in race["enum"]
    assert types["report.export"]["params_schema"]["properties"]["format"]["enum"] == ["csv", "json"]
    alignment = types["character.generate"]["params_schema"]["properties"]["alignment"]["anyOf"][0]
    assert alignment["enum"][:3] == ["Lawful Good", "Neutral Good", "Chaotic Good"]


def test_export_kind_and_format_in_any_case(client, alice, worker):
    job = submit(client, alice, "report.export", {"kind": "Characters", "format": " JSON "})
    assert job["params"] == {"kind": "characters", "format": "json"}
    done = wait_finished(client, alice, job["id"])
    assert done["status"] == "succeeded" and done["result"]["format"] == "json"
