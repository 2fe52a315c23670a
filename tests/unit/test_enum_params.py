"""Every enumerated param of every registered job type is matched in any letter case (contract §3)."""

from __future__ import annotations

import enum
from typing import Annotated, Any, Literal, get_args, get_origin

import pytest
from pydantic import BaseModel, ValidationError

from questboard.app import registry
from shared.choices import CaseInsensitive


def unguarded(tp: Any, guarded: bool = False) -> list[Any]:
    """The string Literals/Enums in ``tp`` that no ``CaseInsensitive`` annotation covers."""
    if get_origin(tp) is Annotated:
        inner, *meta = get_args(tp)
        return unguarded(inner, guarded or any(isinstance(m, CaseInsensitive) for m in meta))
    if get_origin(tp) is Literal:
        return [] if guarded or not all(isinstance(v, str) for v in get_args(tp)) else [tp]
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return [] if guarded else [tp]
    return [found for arg in get_args(tp) for found in unguarded(arg, guarded)]


def test_no_enumerated_param_is_case_sensitive():
    problems = []
    for name, spec in registry().items():
        for field, info in spec.params.model_fields.items():
            guarded = any(isinstance(m, CaseInsensitive) for m in info.metadata)
            if found := unguarded(info.annotation, guarded):
                problems.append(f"{name}.{field}: {found}")
    assert not problems, problems


class Color(enum.Enum):
    RED = "Red"
    DARK_BLUE = "Dark Blue"


class Paint(BaseModel):
    color: Annotated[Color, CaseInsensitive()]
    finish: Annotated[Literal["Matt", "Gloss"], CaseInsensitive()] | None = None


@pytest.mark.parametrize("raw", ["red", " RED ", "Red"])
def test_any_case_and_surrounding_space_is_stored_canonical(raw):
    assert Paint(color=raw).color is Color.RED
    assert Paint(color="dark   blue", finish="GLOSS").model_dump(mode="json") == {
        "color": "Dark Blue",
        "finish": "Gloss",
    }


def test_a_bad_value_lists_the_allowed_ones_and_the_schema_stays_canonical():
    with pytest.raises(ValidationError) as err:
        Paint(color="green")
    assert "Red, Dark Blue" in err.value.errors()[0]["msg"]
    schema = Paint.model_json_schema()
    assert schema["$defs"]["Color"]["enum"] == ["Red", "Dark Blue"]
    assert schema["properties"]["finish"]["anyOf"][0]["enum"] == ["Matt", "Gloss"]
