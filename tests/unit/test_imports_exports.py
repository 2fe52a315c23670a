"""Reading import CSVs and writing export files (no database needed)."""

from __future__ import annotations

import csv
import json

import pytest

from shared.flagship.exports import write_export
from shared.flagship.imports import MAX_IMPORT_ROWS, ImportFileError, parse_character_csv
from shared.mail import parse_smtp_url


def test_import_csv_rows_with_aliases_bom_and_blank_lines():
    data = (
        "\ufeffName,Race,Class,Level,Alignment\nMira,Elf,Ranger,5,\n\n Borin ,Dwarf,Fighter,3,Lawful Good\n"
    )
    assert parse_character_csv(data.encode()) == [
        {"name": "Mira", "race": "Elf", "char_class": "Ranger", "level": "5"},
        {"name": "Borin", "race": "Dwarf", "char_class": "Fighter", "level": "3", "alignment": "Lawful Good"},
    ]


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        (b"name,race\nMira,Elf\n", "missing: char_class, level"),
        (b"name,race,char_class,level\n", "no rows"),
        (b"\xff\xfe\x00garbage", "UTF-8"),
        (
            ("name,race,char_class,level\n" + "A,Elf,Bard,1\n" * (MAX_IMPORT_ROWS + 1)).encode(),
            f"more than {MAX_IMPORT_ROWS} rows",
        ),
    ],
)
def test_import_csv_shape_errors(data, complaint):
    with pytest.raises(ImportFileError, match=complaint):
        parse_character_csv(data)


def test_export_csv_escapes_formulas_and_json_is_one_valid_document(tmp_path):
    records = [
        {"id": "1", "name": "=cmd()", "race": "Elf", "abilities": {"STR": 9}, "background": 'a,b\n"c"'},
        {"id": "2", "name": "Plain", "race": "Orc", "abilities": {}, "background": ""},
    ]
    seen: list[int] = []
    assert write_export(iter(records), "characters", "csv", tmp_path / "x.csv", seen.append) == 2
    assert seen == [1, 2] and not (tmp_path / "x.csv.part").exists()
    rows = list(csv.DictReader((tmp_path / "x.csv").open(newline="")))
    assert rows[0]["name"] == "'=cmd()" and rows[0]["STR"] == "9" and rows[0]["background"] == 'a,b\n"c"'

    assert write_export(iter(records), "characters", "json", tmp_path / "x.json") == 2
    assert json.loads((tmp_path / "x.json").read_text()) == records
    assert write_export(iter([]), "jobs", "json", tmp_path / "empty.json") == 0
    assert json.loads((tmp_path / "empty.json").read_text()) == []


def test_smtp_url_forms():
    plain = parse_smtp_url("smtp://127.0.0.1:2525")
    assert (plain.scheme, plain.host, plain.port, plain.username) == ("smtp", "127.0.0.1", 2525, None)
    tls = parse_smtp_url("smtps://me%40x.org:p%3Ass@mail.x.org")
    assert (tls.port, tls.username, tls.password) == (465, "me@x.org", "p:ss")
    assert parse_smtp_url("smtp+starttls://mail.x.org").port == 587
    with pytest.raises(ValueError, match="scheme"):
        parse_smtp_url("http://mail.x.org")
