"""Real servers on loopback for the delivery tests: an SMTP server (aiosmtpd) and a webhook endpoint that answers as
Slack's incoming webhooks and Teams' Workflows webhooks document, plus a self-signed certificate for TLS; and the
threaded HTTP server that endpoint and the providers' stand-in (fake_providers.py) run on."""

from __future__ import annotations

import contextlib
import datetime as dt
import email
import http.server
import ipaddress
import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from sahel_pipeline_tests.fixtures import free_port


class LoopbackHttpServer:
    """An HTTP server on a free loopback port, answering on a thread of its own inside a `with` block."""

    def __init__(self, handler: type[http.server.BaseHTTPRequestHandler], poll_interval: float = 0.5):
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": poll_interval}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


# --- SMTP -----------------------------------------------------------------------------------------------------------


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage


@dataclass
class MailHandler:
    """aiosmtpd handler keeping every message it is given, parsed with the email package."""

    received: list[Received] = field(default_factory=list)
    refuse_with: str = ""  # e.g. "451 4.3.0 try again later" to refuse every DATA

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        if self.refuse_with:
            return self.refuse_with
        parsed = email.message_from_bytes(envelope.original_content, policy=policy.default)
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 OK"


def _authenticator(user: str, password: str):
    def check(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == user.encode()
            and auth_data.password == password.encode()
        )
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself

    return check


@contextlib.contextmanager
def smtp_server(
    tls: Certificate | None = None, implicit_tls: bool = False, login: tuple[str, str] | None = None
) -> Iterator[tuple[Controller, MailHandler]]:
    """An SMTP server on 127.0.0.1: plain, STARTTLS required (tls given), or implicit TLS; with AUTH when `login`."""
    handler = MailHandler()
    kwargs: dict = {"server_hostname": "localhost"}
    if tls is not None and implicit_tls:
        kwargs["ssl_context"] = tls.server_context()
    elif tls is not None:
        kwargs.update(tls_context=tls.server_context(), require_starttls=True)
    if login is not None:
        kwargs.update(authenticator=_authenticator(*login), auth_required=True, auth_require_tls=tls is not None)
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), **kwargs)
    controller.start()
    try:
        yield controller, handler
    finally:
        controller.stop()


# --- TLS ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


def self_signed_certificate(folder: Path) -> Certificate:
    """A certificate for 127.0.0.1 and localhost, signed by itself, made with `cryptography` for this test only."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert, key_path = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return Certificate(cert, key_path)


# --- webhooks -------------------------------------------------------------------------------------------------------


@dataclass
class Posted:
    path: str
    content_type: str
    body: dict


class WebhookEndpoint(LoopbackHttpServer):
    """Answers POSTs as the providers document: `/slack...` 200 with body `ok` (400 `invalid_payload` for a body
    that is not JSON), `/teams...` 202 Accepted with no body. `answers[path]` queues status codes to answer first
    (e.g. 503, or 429 with a Retry-After of 0), to play a failing service."""

    def __init__(self):
        self.posted: list[Posted] = []
        self.answers: dict[str, list[int]] = {}
        self.attempts: dict[str, int] = {}
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's hook name
                data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                endpoint.attempts[self.path] = endpoint.attempts.get(self.path, 0) + 1
                queued = endpoint.answers.get(self.path)
                if queued:
                    status = queued.pop(0)
                    self.send_response(status)
                    if status == 429:
                        self.send_header("Retry-After", "0")
                    self.end_headers()
                    self.wfile.write(b"rate_limited" if status == 429 else b"service unavailable")
                    return
                try:
                    body = json.loads(data)
                except ValueError:
                    self._answer(400, b"invalid_payload")
                    return
                endpoint.posted.append(Posted(self.path, self.headers.get("Content-Type", ""), body))
                if self.path.startswith("/teams"):
                    self._answer(202, b"")
                else:
                    self._answer(200, b"ok")

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        super().__init__(Handler)

    def bodies(self, prefix: str) -> list[dict]:
        return [p.body for p in self.posted if p.path.startswith(prefix)]
