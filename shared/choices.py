"""Enumerated params matched case-insensitively and stored in their canonical spelling.

``Annotated[Literal["Human", "Elf"], CaseInsensitive()]`` accepts ``"human"``, ``" ELF "`` and stores
``"Human"``/``"Elf"``; its JSON schema (``params_schema``, OpenAPI) is still the canonical ``enum``, and a
value that matches none is an error that lists the allowed spellings.
"""

from __future__ import annotations

import enum
from typing import Any, Literal, get_args, get_origin

from pydantic import GetCoreSchemaHandler
from pydantic_core import PydanticCustomError, core_schema


def _key(value: str) -> str:
    """The comparison form: case folded, surrounding whitespace trimmed, inner runs of spaces as one."""
    return " ".join(value.split()).casefold()


def allowed_values(source: Any) -> tuple[Any, ...]:
    """The values of a ``Literal[...]`` or an ``Enum`` class."""
    if get_origin(source) is Literal:
        return get_args(source)
    if isinstance(source, type) and issubclass(source, enum.Enum):
        return tuple(member.value for member in source)
    raise TypeError(f"CaseInsensitive needs a Literal or an Enum, not {source!r}")


class CaseInsensitive:
    """A pydantic annotation for a ``Literal`` of strings (or a string ``Enum``): see the module doc."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> Any:
        values = allowed_values(source)
        canonical = {_key(v): v for v in values if isinstance(v, str)}
        expected = ", ".join(str(v) for v in values)

        def canonicalize(value: Any) -> Any:
            if not isinstance(value, str):
                return value  # the Literal's own check reports it
            found = canonical.get(_key(value))
            if found is None:
                raise PydanticCustomError(
                    "enum",
                    "Input should be one of: {expected} (any letter case)",
                    {"expected": expected},
                )
            return found

        return core_schema.no_info_before_validator_function(canonicalize, handler(source))
