"""Local stand-ins for ACLED's and UCDP's APIs, started by the tests on loopback, behaving as the providers document.

ACLED: the OAuth password and refresh grants at /oauth/token (form-encoded, client_id=acled, scope=authenticated),
access tokens that expire on the server's clock (a data request with an expired one gets 401), /api/acled/read
and /api/deleted/read with limit/page (from 1) until a short page, the counts only with with_total=true, the
country, event_date, timestamp and deleted_timestamp filters with their *_where operators, rows newest date first.
UCDP: /api/gedevents/<version> with pagesize/page (from 0), the x-ucdp-access-token header, the Country filter on
Gleditsch-Ward codes, TotalCount/TotalPages/Result. Both can be told to fail: a 429 with Retry-After, a 500, a
mutation of the data between two pages. Every request is logged for the tests to inspect.

The data the tests serve are synthetic: the bundled sample (generated, labelled SYNTHETIC) or rows made here.
"""

from __future__ import annotations

import email.utils
import json
import math
import secrets
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from sahel_pipeline_tests.local_services import LoopbackHttpServer

ACLED_COLUMNS = [
    "event_id_cnty", "event_date", "year", "time_precision", "disorder_type", "event_type", "sub_event_type",
    "actor1", "assoc_actor_1", "inter1", "actor2", "assoc_actor_2", "inter2", "interaction", "civilian_targeting",
    "iso", "region", "country", "admin1", "admin2", "admin3", "location", "latitude", "longitude", "geo_precision",
    "source", "source_scale", "notes", "fatalities", "tags", "timestamp",
]


@dataclass
class Fault:
    path: str  # a request path prefix
    status: int
    headers: dict = field(default_factory=dict)
    body: dict = field(default_factory=lambda: {"message": "injected failure"})
    times: int = 1


@dataclass
class Logged:
    method: str
    path: str
    params: dict
    headers: dict
    form: dict


class FakeProviders(LoopbackHttpServer):
    """One loopback server answering as both ACLED and UCDP."""

    def __init__(self, email: str = "analyst@example.org", password: str = "secret", ucdp_token: str = "ucdp-token"):
        self.email, self.password, self.ucdp_token = email, password, ucdp_token
        self.clock = 1_600_000_000.0  # the server's time (Unix seconds), which the tests move
        self.access_lifetime = 86400
        self.refresh_lifetime = 14 * 86400
        self.tier_returns_nothing = False
        self.events: dict[str, dict] = {}  # ACLED: event_id_cnty -> row (text values)
        self.deletions: list[dict] = []
        self.ucdp: dict[str, list[dict]] = {}  # version -> events
        self.faults: list[Fault] = []
        self.between_pages = None  # called with (path, page) after a page is served: to change data mid-pull
        self.log: list[Logged] = []
        self._access: dict[str, float] = {}
        self._refresh: dict[str, float] = {}
        self._lock = threading.Lock()
        super().__init__(_handler(self), poll_interval=0.05)

    # --- what the tests change -------------------------------------------------------------------------------------

    def publish(self, rows: list[dict]) -> None:
        """New or revised ACLED events: stamped with the server's clock unless they carry their own timestamp."""
        for row in rows:
            self.events[row["event_id_cnty"]] = {**row, "timestamp": str(row.get("timestamp") or int(self.clock))}

    def delete(self, ids: list[str]) -> None:
        for event_id in ids:
            del self.events[event_id]
            self.deletions.append({"event_id_cnty": event_id, "deleted_timestamp": str(int(self.clock))})

    def requests(self, path: str) -> list[Logged]:
        return [r for r in self.log if r.path.startswith(path)]

    # --- ACLED -----------------------------------------------------------------------------------------------------

    def token(self, form: dict) -> tuple[int, dict]:
        if form.get("client_id") != "acled":
            return 400, {"error": "invalid_client", "error_description": "Client authentication failed."}
        grant = form.get("grant_type")
        if grant == "password":
            if form.get("scope") != "authenticated":
                return 400, {"error": "invalid_scope", "error_description": "The requested scope is invalid."}
            if form.get("username") != self.email or form.get("password") != self.password:
                return 400, {"error": "invalid_grant", "error_description": "The user credentials were incorrect."}
        elif grant == "refresh_token":
            expires = self._refresh.pop(form.get("refresh_token", ""), None)
            if expires is None or expires <= self.clock:
                return 400, {"error": "invalid_grant", "error_description": "The refresh token is invalid."}
        else:
            return 400, {"error": "unsupported_grant_type", "error_description": "The grant type is not supported."}
        access, refresh = secrets.token_hex(16), secrets.token_hex(16)
        self._access[access] = self.clock + self.access_lifetime
        self._refresh[refresh] = self.clock + self.refresh_lifetime
        return 200, {"token_type": "Bearer", "expires_in": self.access_lifetime, "access_token": access,
                     "refresh_token": refresh}

    def authorised(self, headers) -> bool:
        value = headers.get("Authorization", "")
        return value.startswith("Bearer ") and self._access.get(value[7:], 0) > self.clock

    def acled_read(self, params: dict) -> tuple[int, dict]:
        rows = [] if self.tier_returns_nothing else list(self.events.values())
        if "country" in params:
            rows = [r for r in rows if r["country"] in params["country"].split(":OR:")]
        rows = _where(rows, params, "event_date", str)
        rows = _where(rows, params, "timestamp", int)
        rows.sort(key=lambda r: r["event_id_cnty"])
        rows.sort(key=lambda r: r["event_date"], reverse=True)  # ACLED: newest events first
        return 200, self._page(rows, params)

    def deleted_read(self, params: dict) -> tuple[int, dict]:
        rows = [] if self.tier_returns_nothing else list(self.deletions)
        rows = _where(rows, params, "deleted_timestamp", int)
        rows.sort(key=lambda r: (-int(r["deleted_timestamp"]), r["event_id_cnty"]))
        return 200, self._page(rows, params)

    def _page(self, rows: list[dict], params: dict) -> dict:
        limit, page = int(params.get("limit", 5000)), int(params.get("page", 1))
        data = rows[(page - 1) * limit: page * limit]
        body = {"status": 200, "success": True, "last_update": 0, "data": data}
        if params.get("with_total") == "true":
            body.update(count=len(data), total_count=len(rows))
        return body

    # --- UCDP ------------------------------------------------------------------------------------------------------

    def gedevents(self, version: str, params: dict, headers) -> tuple[int, dict]:
        if headers.get("x-ucdp-access-token") != self.ucdp_token:
            return 401, {"message": "A valid x-ucdp-access-token header is required."}
        if version not in self.ucdp:
            return 404, {"message": f"Version {version} not found."}
        rows = self.ucdp[version]
        if "Country" in params:
            codes = {int(c) for c in params["Country"].split(",")}
            rows = [r for r in rows if int(r["country_id"]) in codes]
        size, page = int(params.get("pagesize", 100)), int(params.get("page", 0))
        pages = math.ceil(len(rows) / size)
        return 200, {"TotalCount": len(rows), "TotalPages": pages, "PreviousPageUrl": "", "NextPageUrl": "",
                     "Result": rows[page * size:(page + 1) * size]}


def _where(rows: list[dict], params: dict, column: str, cast) -> list[dict]:
    if column not in params:
        return rows
    operator, value = params.get(f"{column}_where", "="), params[column]
    if operator.upper() == "BETWEEN":
        low, high = (cast(v) for v in value.split("|"))
        return [r for r in rows if low <= cast(r[column]) <= high]
    compare = {"=": lambda a, b: a == b, ">=": lambda a, b: a >= b, ">": lambda a, b: a > b,
               "<=": lambda a, b: a <= b, "<": lambda a, b: a < b}[operator]
    return [r for r in rows if compare(cast(r[column]), cast(value))]


def _handler(providers: FakeProviders):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in two writes: without this each answer waits 40 ms

        def log_message(self, *args) -> None:  # quiet: the tests read providers.log
            pass

        def date_time_string(self, timestamp=None) -> str:  # the Date header follows the server's clock
            return email.utils.formatdate(providers.clock, usegmt=True)

        def do_POST(self) -> None:
            self._serve("POST")

        def do_GET(self) -> None:
            self._serve("GET")

        def _serve(self, method: str) -> None:
            url = urllib.parse.urlsplit(self.path)
            params = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
            form = {}
            if method == "POST":
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length).decode()
                if self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
                    form = dict(urllib.parse.parse_qsl(body, keep_blank_values=True, strict_parsing=bool(body)))
            with providers._lock:
                providers.log.append(Logged(method, url.path, params, dict(self.headers), form))
                fault = next((f for f in providers.faults if url.path.startswith(f.path) and f.times > 0), None)
                if fault:
                    fault.times -= 1
                    return self._send(fault.status, fault.body, fault.headers)
                status, body = self._route(method, url.path, params, form)
                if providers.between_pages and status == 200 and method == "GET":
                    providers.between_pages(url.path, params)  # before the client can ask for the next page
            self._send(status, body)

        def _route(self, method: str, path: str, params: dict, form: dict) -> tuple[int, dict]:
            if method == "POST" and path == "/oauth/token":
                return providers.token(form)
            if method == "GET" and path in ("/api/acled/read", "/api/deleted/read"):
                if not providers.authorised(self.headers):
                    return 401, {"message": "The access token is invalid or has expired."}
                return providers.acled_read(params) if path == "/api/acled/read" else providers.deleted_read(params)
            if method == "GET" and path.startswith("/api/gedevents/"):
                return providers.gedevents(path.rsplit("/", 1)[1], params, self.headers)
            return 404, {"message": f"no route {method} {path}"}

        def _send(self, status: int, body: dict, headers: dict | None = None) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

    return Handler
