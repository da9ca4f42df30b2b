"""A throwaway PostgreSQL server for the tests that need one (the production instance, the scale-out): started on a
free loopback port with password authentication and one database owned by Dagster's role, stopped afterwards.
The pytest fixtures built on it (`postgres_server`, `postgres_dagster_home`) are in conftest.py."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sahel_pipeline_tests.fixtures import free_port

PG_TOOLS = ("initdb", "pg_ctl", "postgres")


def find_postgres_bin() -> Path | None:
    """A folder holding initdb, pg_ctl and postgres: PATH first, then Debian's /usr/lib/postgresql/<version>/bin,
    which Debian's package does not put on PATH."""
    on_path = shutil.which("initdb")
    debian = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    for folder in ([Path(on_path).parent] if on_path else []) + [Path(p) for p in debian]:
        if all(os.access(folder / tool, os.X_OK) for tool in PG_TOOLS):
            return folder
    return None


@dataclass(frozen=True)
class Server:
    """A running server, and the database and role Dagster is given (the DAGSTER_PG_* variables)."""

    port: int
    db_name: str = "dagster"
    username: str = "dagster"
    password: str = "dagster-test-password"
    host: str = "127.0.0.1"

    def connect(self):
        import psycopg2

        return psycopg2.connect(
            host=self.host, port=self.port, dbname=self.db_name, user=self.username, password=self.password
        )

    def environment(self) -> dict[str, str]:
        """The variables deploy/dagster.yaml reads to reach this server."""
        return {
            "DAGSTER_PG_USERNAME": self.username,
            "DAGSTER_PG_PASSWORD": self.password,
            "DAGSTER_PG_HOST": self.host,
            "DAGSTER_PG_DB": self.db_name,
            "DAGSTER_PG_PORT": str(self.port),
        }


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@contextlib.contextmanager
def running_postgres() -> Iterator[Server]:
    """A fresh cluster with Dagster's database, for as long as the context lasts; skips the test when PostgreSQL's
    server binaries are missing."""
    import psycopg2

    bin_dir = find_postgres_bin()
    if bin_dir is None:
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found on PATH or in "
            "/usr/lib/postgresql/*/bin: run scripts/ensure_postgres.sh as root, "
            "or install Debian's `postgresql` package"
        )

    # PostgreSQL refuses to run as root, and tests often do (CI containers): then the cluster belongs to an
    # unprivileged user. pytest's tmp_path sits under /tmp/pytest-of-root, mode 0700, which that user cannot
    # enter, so the cluster lives in its own temporary folder (short, too: a socket path must fit in 107 bytes).
    as_root = os.geteuid() == 0
    run_as: dict = {}
    if as_root:
        owner = next((u for u in ("postgres", "nobody") if user_exists(u)), None)
        if owner is None:
            pytest.skip("running as root and neither a 'postgres' nor a 'nobody' user exists to own the cluster")
        account = pwd.getpwnam(owner)
        run_as = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}

    with tempfile.TemporaryDirectory(prefix="sahel-pg-", ignore_cleanup_errors=True) as base_name:
        base = Path(base_name)
        data, log, pwfile = base / "data", base / "server.log", base / "superuser-password"
        pwfile.write_text("superuser-test-password\n")
        if as_root:
            for path in (base, pwfile):
                os.chown(path, run_as["user"], run_as["group"])

        def pg(*args: str) -> None:
            try:
                subprocess.run(args, check=True, capture_output=True, text=True, cwd=base, **run_as)
            except subprocess.CalledProcessError as error:
                server_log = log.read_text()[-3000:] if log.exists() else ""
                pytest.fail(f"{' '.join(args)} failed:\n{error.stdout}\n{error.stderr}\n{server_log}")

        # Password authentication everywhere, as in production: the test proves the credentials in the
        # environment reach the server, not that a trust rule let everyone in.
        pg(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", f"--pwfile={pwfile}",
           "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync")
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(
                "listen_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{base}'\n"  # not /var/run/postgresql: may not exist or be writable
                # A throwaway cluster needs no durability; this makes Dagster's table creation quick.
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            )

        server = Server(port=free_port())
        pg(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", f"-p {server.port}", "-w", "start")
        try:
            admin = psycopg2.connect(
                host=server.host, port=server.port, dbname="postgres", user="postgres",
                password="superuser-test-password",
            )
            admin.autocommit = True  # CREATE DATABASE cannot run in a transaction
            with contextlib.closing(admin), admin.cursor() as cur:
                cur.execute(f"CREATE ROLE {server.username} LOGIN PASSWORD %s", (server.password,))
                # Since PostgreSQL 15 only the database owner may create tables in schema public: Dagster's
                # role owns its database, as deploy/README.md tells production to do.
                cur.execute(f"CREATE DATABASE {server.db_name} OWNER {server.username}")
            yield server
        finally:
            pg(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
