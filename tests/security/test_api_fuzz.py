"""The API against its own description: /api/openapi.json covers every JSON route, and schemathesis,
generating requests from it against the real server, finds no 5xx and no answer the description does not
allow (status code, content type, body schema).

Every operation is fuzzed as a user, as an admin and without credentials or with a forged token (the
other side of the bearer security scheme, answered by the documented 401), with valid requests (checked
against everything) and invalid ones (checked for 5xx only). Some generated ids are swapped for real ones (a
queued, a failed and an exported job; a queue; a recurring task; the webhook source), and some webhook
deliveries are signed properly, so the fuzzing reaches past the 404s and 401s into the views.
"""

from __future__ import annotations

import itertools
import json
import re
import time

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core import NOT_SET
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from questboard.app import job_types
from shared.flagship.webhooks import sign
from tests.security.support import WEBHOOK_SECRET, WEBHOOK_SOURCE
from web.openapi import build_spec

EXAMPLES_PER_OPERATION = 25  # valid requests per operation and role (32 operations, 2 roles)
NEGATIVE_EXAMPLES_PER_OPERATION = 8  # invalid ones
OUTSIDER_EXAMPLES_PER_OPERATION = 4  # each way, for each outsider: no token, a forged one
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
DOCUMENTED_PREFIXES = ("/api/", "/webhooks/", "/healthz", "/readyz", "/metrics")
_VAR = re.compile(r"<(?:(\w+)(?:\(([^)]*)\))?:)?(\w+)>")


def openapi_paths(rule: str) -> list[str]:
    """A Flask rule as OpenAPI paths: ``<job_id>`` is ``{job_id}``; each ``any(...)`` alternative apart."""
    paths = [rule]
    for converter, args, name in _VAR.findall(rule):
        token = (
            f"<{converter}({args}):{name}>" if args else f"<{converter}:{name}>" if converter else f"<{name}>"
        )
        values = [a.strip() for a in args.split(",")] if converter == "any" else [f"{{{name}}}"]
        paths = [p.replace(token, v) for p in paths for v in values]
    return paths


def openapi_operations(spec: dict) -> list[tuple[str, str]]:
    """Every (method, path) the description has."""
    return [(method, path) for path, ops in spec["paths"].items() for method in ops]


def test_openapi_describes_every_json_route(app):
    spec = build_spec(job_types())
    documented = {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}
    routes = {
        (method, path)
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith(DOCUMENTED_PREFIXES)
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS")
        for path in openapi_paths(rule.rule)
    }
    missing = sorted(routes - documented)
    assert not missing, f"routes missing from /api/openapi.json: {missing}"
    assert documented - routes == set(), f"described but not served: {sorted(documented - routes)}"
    public = {path for path, ops in spec["paths"].items() for op in ops.values() if op.get("security") == []}
    assert public == {"/healthz", "/readyz", "/api/openapi.json", "/webhooks/{source}"}
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            needs_token = op.get("security") != []
            answers_401 = needs_token or path.startswith("/webhooks/")  # a bad signature is a 401 too
            assert ("401" in op["responses"]) == answers_401, (method, path)


def test_the_spec_is_served_and_valid(client):
    served = client.get("/api/openapi.json").get_json()
    assert served == json.loads(json.dumps(build_spec(job_types())))
    schemathesis.openapi.from_dict(served).validate()


HUGE_CSV_FIELD = b'name,race,char_class,level\n"' + b"a" * 200_000  # over the csv module's field limit
NO_ZONE_CURSOR = "MjAyMC0wMS0wMVQwMDowMDowMHxhYmM"  # base64 of "2020-01-01T00:00:00|abc"
YEAR_0_CURSOR = "MDAwMS0wMS0wMVQwMDowMDowMCsxNDowMHx4"  # "0001-01-01T00:00:00+14:00|x": year 0 in UTC


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "field"),
    [
        pytest.param("GET", "/api/jobs", {"query_string": {"cursor": NO_ZONE_CURSOR}}, "cursor", id="naive"),
        pytest.param("GET", "/api/jobs", {"query_string": {"cursor": YEAR_0_CURSOR}}, "cursor", id="year-0"),
        pytest.param(
            "POST",
            "/api/jobs",
            {"json": {"type": "diagnostics.probe", "run_at": "9999-12-31T23:59:59-14:00"}},
            "run_at",
            id="year-10000",
        ),
        pytest.param(
            "POST", "/api/imports", {"data": HUGE_CSV_FIELD, "content_type": "text/csv"}, "file", id="csv"
        ),
    ],
)
def test_inputs_that_once_answered_500_are_invalid_input_now(client, alice, method, path, kwargs, field):
    response = client.open(path, method=method, headers=alice.headers, **kwargs)
    assert response.status_code == 422 and field in response.get_json()["error"]["fields"]


def _real_values(world) -> dict[str, list[str]]:
    return {
        "job_id": [world.job_id, world.failed_job(), world.export_job_id],
        "name": ["default", "low", "cleanup-events"],
        "source": [WEBHOOK_SOURCE],
    }


def _sign_some(case) -> None:
    """Sign about half of the deliveries to our source properly (the body as schemathesis sends it)."""
    if case.path_parameters.get("source") != WEBHOOK_SOURCE or len(str(case.headers)) % 2:
        return
    body = b"" if case.body is NOT_SET else json.dumps(case.body).encode()  # as schemathesis sends JSON
    timestamp = str(int(time.time()))
    case.headers["X-Questboard-Timestamp"] = timestamp
    case.headers["X-Questboard-Signature"] = sign(WEBHOOK_SECRET, timestamp, body)


def fuzzer(operation, base_url: str, headers: dict[str, str], negative: bool = False, examples: int = 0):
    """A Hypothesis test sending generated requests for ``operation`` with these headers.

    Valid requests (by the description) are checked against everything; invalid ones only for 5xx.
    """
    mode = GenerationMode.NEGATIVE if negative else GenerationMode.POSITIVE
    examples = examples or (NEGATIVE_EXAMPLES_PER_OPERATION if negative else EXAMPLES_PER_OPERATION)

    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis.settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: the first failure is reported as it is
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case) -> None:
        _sign_some(case)
        case.call_and_validate(base_url=base_url, headers=headers, checks=checks)

    # /readyz answers a documented 503 while no worker runs (none does here); every other 5xx is a bug.
    checks = [c for c in CHECKS if c is not not_a_server_error or operation.path != "/readyz"]
    if negative:
        checks = [c for c in checks if c is not_a_server_error]

    return fuzz


@pytest.mark.timeout(180)
def test_fuzzing_the_live_api_finds_no_server_error_and_no_undocumented_answer(
    live_server, world, alice, admin
):
    schema = schemathesis.openapi.from_url(f"{live_server}/api/openapi.json")
    real = _real_values(world)

    @schema.hook
    def map_path_parameters(context, path_parameters):
        """About half the ids become real ones, picked by the generated value (so runs repeat)."""
        for name, values in real.items() if path_parameters else ():
            generated = path_parameters.get(name)
            if generated is not None and len(generated) % 2 == 0:
                path_parameters[name] = values[len(generated) % len(values)]
        return path_parameters

    failures = []
    operations = [result.ok() for result in schema.get_all_operations()]
    # The full description: every operation but the one serving it (schemathesis leaves that out; it is
    # checked by test_the_spec_is_served_and_valid).
    described = {f"{method.upper()} {path}" for method, path in openapi_operations(schema.raw_schema)}
    assert {operation.label for operation in operations} == described - {"GET /api/openapi.json"}
    roles = [
        ("user", dict(alice.headers), 0),
        ("admin", dict(admin.headers), 0),
        ("nobody", {}, OUTSIDER_EXAMPLES_PER_OPERATION),
        ("a forged token", {"Authorization": "Bearer " + "A" * 43}, OUTSIDER_EXAMPLES_PER_OPERATION),
    ]
    for operation in operations:
        for (role, headers, examples), negative in itertools.product(roles, (False, True)):
            try:
                fuzzer(operation, live_server, headers, negative, examples)()
            except hypothesis.errors.Unsatisfiable:
                assert negative  # nothing to make invalid (no parameters, no body)
            except (Exception, BaseExceptionGroup) as exc:  # collected: one run shows every failing operation
                kind = "invalid input" if negative else "valid input"
                failures.append(f"{operation.label} as {role}, {kind}:\n{exc}")
    assert not failures, "\n\n".join(failures)
