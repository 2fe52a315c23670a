"""The HTTP edge (contract §9): security headers on every response, and bad input is a 4xx with the JSON
error shape, never a 5xx: over-deep JSON, huge numbers, oversized bodies, malformed headers."""

from __future__ import annotations

import pytest
import requests

from shared import defaults
from tests.integration.helpers_app import log_in, submit, wait_finished

PROBE = b'{"type": "diagnostics.probe", "params": %s}'


def assert_secured(resp, what: str) -> None:
    csp = resp.headers.get("Content-Security-Policy", "")
    directives = dict(part.strip().split(" ", 1) for part in csp.split(";") if part.strip())
    assert directives.get("frame-ancestors") == "'none'", (what, csp)
    assert directives.get("default-src") == "'self'", (what, csp)
    assert directives.get("script-src") == "'self'", (what, csp)
    assert directives.get("object-src") == "'none'", (what, csp)
    assert directives.get("base-uri") == "'self'" and directives.get("form-action") == "'self'", (what, csp)
    assert directives.get("connect-src", "").startswith("'self'"), (what, csp)
    assert resp.headers.get("X-Content-Type-Options") == "nosniff", what
    assert resp.headers.get("Referrer-Policy") == "strict-origin-when-cross-origin", what
    assert resp.headers.get("X-Frame-Options") == "DENY", what


def test_every_kind_of_response_carries_the_security_headers(client, accounts, alice, admin, worker):
    export = submit(client, alice, "report.export", {"kind": "jobs", "format": "csv"})
    assert wait_finished(client, alice, export["id"])["status"] == "succeeded"
    anonymous = {
        "login page": client.get("/login"),
        "redirect to login": client.get("/"),
        "404 page": client.get("/no-such-page"),
        "static file": client.get("/static/app.css"),
        "vendored script": client.get("/static/vendor/uplot.min.js"),
        "healthz": client.get("/healthz"),
        "readyz": client.get("/readyz"),
        "openapi": client.get("/api/openapi.json"),
        "401 API": client.get("/api/jobs"),
        "405 API": client.delete("/api/jobs"),
        "webhook 404": client.post("/webhooks/nope", data=b"{}"),
        "socket.io polling": client.get("/socket.io/?EIO=4&transport=polling"),
    }
    authorized = {
        "API list": client.get("/api/jobs", headers=alice.headers),
        "API 404": client.get("/api/jobs/nope", headers=alice.headers),
        "API 422": client.post("/api/jobs", json={"type": "nope"}, headers=alice.headers),
        "API download": client.get(f"/api/jobs/{export['id']}/download", headers=alice.headers),
        "metrics": client.get("/metrics", headers=admin.headers),
    }
    log_in(client, accounts, alice)
    pages = {
        "job list": client.get("/"),
        "job page": client.get(f"/jobs/{export['id']}"),
        "page download": client.get(f"/jobs/{export['id']}/download"),
    }
    log_in(client, accounts, admin)
    pages["console"] = client.get("/admin")
    expected = {"API download": 200, "page download": 200, "metrics": 200, "socket.io polling": 200}
    expected.update({"job list": 200, "job page": 200, "console": 200, "redirect to login": 302})
    for what, resp in {**anonymous, **authorized, **pages}.items():
        assert resp.status_code == expected.get(what, resp.status_code), what
        assert_secured(resp, what)
    assert "text/csv" in pages["page download"].content_type


def test_hsts_only_over_https(client, app, settings):
    assert "Strict-Transport-Security" not in client.get("/healthz").headers
    over_https = client.get("/healthz", base_url="https://questboard.example")
    assert over_https.headers["Strict-Transport-Security"] == f"max-age={defaults.HSTS_MAX_AGE_S}"
    assert "wss://questboard.example" in over_https.headers["Content-Security-Policy"]

    from web import create_app

    behind_tls = create_app(settings.model_copy(update={"base_url": "https://qb.example"}), TESTING=True)
    assert "Strict-Transport-Security" in behind_tls.test_client().get("/login").headers


def deep(levels: int) -> bytes:
    return b'{"a": ' * levels + b"1" + b"}" * levels


@pytest.mark.parametrize(
    ("body", "why"),
    [
        pytest.param(PROBE % deep(5000), "deeper than", id="params-5000-deep"),
        pytest.param(PROBE % (b"[" * 100_000), "deeper than", id="100000-brackets"),
        pytest.param(PROBE % b'{"steps": 1e999999}', "out of range", id="1e999999"),
        pytest.param(PROBE % (b'{"steps": ' + b"9" * 5000 + b"}"), "longer than", id="5000-digit-int"),
        pytest.param(PROBE % b'{"step_ms": NaN}', "NaN", id="nan"),
        pytest.param(b'{"type": "diagnostics.probe", "delay_seconds": -Infinity}', "Infinity", id="inf"),
        pytest.param(b"\xff\xfe{", "", id="not-utf8"),
    ],
)
def test_json_beyond_the_limits_is_400_before_it_is_parsed(client, alice, body, why):
    resp = client.post("/api/jobs", data=body, headers=alice.headers, content_type="application/json")
    assert resp.status_code == 400, resp.get_data()[:300]
    error = resp.get_json()["error"]
    assert error["code"] == "bad_request" and why in error["message"]
    assert client.get("/api/jobs", headers=alice.headers).get_json()["jobs"] == []  # nothing submitted


def test_json_within_the_limits_is_still_accepted(client, alice):
    nested = PROBE % b'{"steps": 2}'
    assert client.post("/api/jobs", data=nested, headers=alice.headers).status_code == 202
    # Deep but within the limit reaches validation (422 for the unknown param), not the parser.
    resp = client.post("/api/jobs", data=PROBE % deep(defaults.JSON_MAX_DEPTH - 2), headers=alice.headers)
    assert resp.status_code == 422 and "params.a" in resp.get_json()["error"]["fields"]


def test_the_admin_api_has_the_same_guard(client, admin):
    resp = client.post("/api/admin/failed/retry", data=b"[" * 100_000, headers=admin.headers)
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "bad_request"


def test_an_oversized_body_is_413_json(client, alice):
    big = b" " * (defaults.MAX_REQUEST_BYTES + 1)
    for path in ("/api/jobs", "/api/imports"):  # webhooks: see test_webhooks
        resp = client.post(path, data=big, headers=alice.headers, content_type="application/json")
        assert resp.status_code == 413, path
        assert resp.get_json()["error"]["code"] == "request_entity_too_large", path


def test_http_errors_on_json_paths_have_the_json_shape(client, alice):
    for resp in (
        client.get("/webhooks/shop"),  # 405
        client.put("/api/jobs", headers=alice.headers),  # 405
        client.post("/metrics"),  # 405
    ):
        assert resp.status_code == 405 and resp.is_json and resp.get_json()["error"]["code"]


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Authorization": "Bearer \x00\xff" + "x" * 10_000}, id="auth-garbage"),
        pytest.param({"Authorization": "Basic Zm9vOmJhcg=="}, id="auth-basic"),
        pytest.param({"Authorization": "Bearer"}, id="auth-empty"),
        pytest.param({"Cookie": "session=" + "x" * 60_000}, id="huge-cookie"),
        pytest.param({"Cookie": "session=.eJw\x7f\x01;;;=="}, id="cookie-garbage"),
        pytest.param({"Content-Type": "application/json; charset=nope"}, id="bad-charset"),
        pytest.param({"Content-Type": "multipart/form-data"}, id="multipart-no-boundary"),
        pytest.param({"Content-Type": "\x00\xff/\x01"}, id="content-type-garbage"),
        pytest.param({"Content-Length": "-1"}, id="negative-length"),
        pytest.param({"Content-Length": "1" + "0" * 400}, id="huge-length"),
    ],
)
def test_malformed_headers_are_4xx(client, alice, headers):
    for method, path in (("POST", "/api/jobs"), ("POST", "/api/imports"), ("GET", "/"), ("POST", "/login")):
        resp = client.open(path, method=method, data=b'{"type": "nope"}', headers=headers)
        assert resp.status_code < 500, (path, resp.status_code)
        if path.startswith("/api/") and resp.status_code >= 400:
            assert resp.get_json()["error"]["code"], path


def test_the_real_server_answers_oversized_and_garbage_headers_with_4xx(live_server):
    huge_cookie = requests.get(f"{live_server}/", headers={"Cookie": "session=" + "x" * 100_000}, timeout=10)
    assert 400 <= huge_cookie.status_code < 500
    many = {f"X-Junk-{n}": "y" * 100 for n in range(200)}  # more header fields than gunicorn takes
    assert 400 <= requests.get(f"{live_server}/api/jobs", headers=many, timeout=10).status_code < 500
    garbage = requests.get(
        f"{live_server}/api/jobs", headers={"Authorization": "Bearer \u00e9\u00ff" + "x" * 4000}, timeout=10
    )
    assert garbage.status_code == 401 and garbage.json()["error"]["code"] == "unauthorized"
    assert_secured(garbage, "over gunicorn")
