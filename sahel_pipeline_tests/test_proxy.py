"""deploy/nginx/sahel.conf in front of the webserver: Debian's nginx with TLS (a certificate made here) and basic auth.

Without credentials every path is 401; with them the UI, its GraphQL API and the WebSocket upgrade of its
subscriptions go through to the webserver, which listens on loopback only.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from sahel_pipeline import PROJECT_DIR
from sahel_pipeline_tests.fixtures import free_port
from sahel_pipeline_tests.test_webserver import webserver

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
USER, PASSWORD = "analyst", "proxy-test-password"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.integration,
    pytest.mark.skipif(
        NGINX is None or shutil.which("openssl") is None,
        reason="nginx or openssl not installed: run scripts/ensure_test_services.sh as root (Debian's nginx, openssl)",
    ),
]


def proxy_config(folder: Path, https_port: int, http_port: int, upstream: int) -> str:
    """The shipped server blocks with this test's ports and files, inside a minimal nginx.conf of its own."""
    shipped = (PROJECT_DIR / "deploy" / "nginx" / "sahel.conf").read_text()
    for old, new in {
        "listen 443 ssl;": f"listen 127.0.0.1:{https_port} ssl;",
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "/etc/ssl/certs/sahel.crt": str(folder / "sahel.crt"),
        "/etc/ssl/private/sahel.key": str(folder / "sahel.key"),
        "/etc/nginx/sahel.htpasswd": str(folder / "sahel.htpasswd"),
        "http://127.0.0.1:3000": f"http://127.0.0.1:{upstream}",
    }.items():
        assert old in shipped, old
        shipped = shipped.replace(old, new)
    temp = {name: folder / name for name in ("client", "proxy", "fastcgi", "uwsgi", "scgi")}
    return (
        ("user root;\n" if os.geteuid() == 0 else "")  # the workers read the password file in this private folder
        + f"daemon off;\npid {folder / 'nginx.pid'};\nerror_log {folder / 'error.log'};\n"
        "events { worker_connections 64; }\n"
        "http {\n"
        f"  access_log {folder / 'access.log'};\n"
        f"  client_body_temp_path {temp['client']}; proxy_temp_path {temp['proxy']};\n"
        f"  fastcgi_temp_path {temp['fastcgi']}; uwsgi_temp_path {temp['uwsgi']}; scgi_temp_path {temp['scgi']};\n"
        f"{shipped}\n}}\n"
    )


def request(port: int, path: str, context: ssl.SSLContext, auth: bool, body: dict | None = None):
    headers = {"Content-Type": "application/json"} if body else {}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    data = json.dumps(body).encode() if body else None
    req = urllib.request.Request(f"https://127.0.0.1:{port}{path}", data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=20, context=context) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def websocket_upgrade(port: int, context: ssl.SSLContext) -> str:
    """The first line of the answer to a WebSocket handshake on /graphql, as the UI's subscriptions send it."""
    credentials = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    handshake = (
        "GET /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        f"Sec-WebSocket-Protocol: graphql-ws\r\nAuthorization: Basic {credentials}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=20) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(handshake.encode())
            return tls.recv(4096).decode(errors="replace").splitlines()[0]


def test_nginx_asks_for_a_login_over_tls_and_passes_the_ui_through(tmp_path):
    with tempfile.TemporaryDirectory(prefix="sahel-nginx-") as name, webserver(tmp_path) as upstream:
        folder = Path(name)
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=DNS:localhost,IP:127.0.0.1",
                "-keyout",
                str(folder / "sahel.key"),
                "-out",
                str(folder / "sahel.crt"),
            ],
            check=True,
            capture_output=True,
        )
        hashed = subprocess.run(
            ["openssl", "passwd", "-apr1", PASSWORD], check=True, capture_output=True, text=True
        ).stdout.strip()
        (folder / "sahel.htpasswd").write_text(f"{USER}:{hashed}\n")
        https_port, http_port = free_port(), free_port()
        (folder / "nginx.conf").write_text(proxy_config(folder, https_port, http_port, upstream))
        nginx = subprocess.Popen(
            [NGINX, "-c", str(folder / "nginx.conf"), "-p", str(folder)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            context = ssl.create_default_context(cafile=str(folder / "sahel.crt"))  # the certificate is checked
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and nginx.poll() is None:
                with socket.socket() as probe:
                    if probe.connect_ex(("127.0.0.1", https_port)) == 0:
                        break
                time.sleep(0.2)
            assert nginx.poll() is None, nginx.stdout.read().decode() + (folder / "error.log").read_text()

            status, _ = request(https_port, "/", context, auth=False)
            assert status == 401
            status, _ = request(https_port, "/graphql", context, auth=False, body={"query": "{ version }"})
            assert status == 401

            status, page = request(https_port, "/", context, auth=True)
            assert status == 200 and "Dagster" in page
            status, answer = request(
                https_port, "/graphql", context, auth=True, body={"query": "{ assetNodes { assetKey { path } } }"}
            )
            assert status == 200 and ["canonical_events"] in [
                n["assetKey"]["path"] for n in json.loads(answer)["data"]["assetNodes"]
            ]
            assert websocket_upgrade(https_port, context).startswith("HTTP/1.1 101")

            with socket.create_connection(("127.0.0.1", http_port), timeout=10) as plain:  # plain HTTP: redirected
                plain.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                assert plain.recv(1024).decode().startswith("HTTP/1.1 301")
        finally:
            os.kill(nginx.pid, signal.SIGQUIT)  # graceful stop of master and workers
            try:
                nginx.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(nginx.pid, signal.SIGKILL)
                nginx.wait(timeout=10)
