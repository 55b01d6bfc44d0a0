"""A real pgbouncer in front of the test cluster (README "Connection poolers").

``tests/devenv.sh deps`` installs it (Debian's pgbouncer package).  Each
``PgBouncer`` listens on a free TCP port of 127.0.0.1 and reaches the
cluster the libpq variables name (its socket directory), with
``auth_type = trust`` (the private cluster trusts local connections) and
``ignore_startup_parameters = options`` (pgbouncer refuses the runner's
startup options otherwise; runner.session pins them with SET instead).
pgbouncer refuses to run as root: started as root, it switches to ``postgres`` (-u).
"""

from __future__ import annotations

import os
import pathlib
import shutil
import socket
import subprocess
import tempfile
import time

import psycopg

import dbtools


def binary() -> str:
    found = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if os.path.exists("/usr/sbin/pgbouncer") else None)
    if found is None:
        raise AssertionError("no pgbouncer: run tests/devenv.sh deps (it installs Debian's pgbouncer)")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgBouncer:
    """One pgbouncer process in ``pool_mode``; ``users`` maps a role to its
    own pool_mode (pgbouncer's [users] section); ``logins``: other roles it
    lets in (auth_file)."""

    def __init__(self, db: psycopg.Connection, pool_mode: str, users: dict[str, str] | None = None,
                 round_robin: bool = False, logins: tuple[str, ...] = ()) -> None:
        info = dbtools.conninfo(db)
        host, port = info.get("host") or "/var/run/postgresql", info.get("port") or 5432
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="jobledger-pgbouncer-"))
        self.port = _free_port()
        names = {info.get("user") or "postgres", *(users or {}), *logins}
        (self.dir / "users.txt").write_text("".join(f'"{name}" ""\n' for name in sorted(names)))
        user_lines = "".join(f"{name} = pool_mode={mode}\n" for name, mode in (users or {}).items())
        (self.dir / "pgbouncer.ini").write_text(f"""[databases]
* = host={host} port={port}
[users]
{user_lines}[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {self.dir}/users.txt
pool_mode = {pool_mode}
server_round_robin = {int(round_robin)}
ignore_startup_parameters = options
max_client_conn = 200
default_pool_size = 20
server_reset_query = DISCARD ALL
""")
        command = [binary(), str(self.dir / "pgbouncer.ini")]
        if os.getuid() == 0:
            command[1:1] = ["-u", "postgres"]
        self._log = (self.dir / "pgbouncer.log").open("wb")
        self.proc = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"pgbouncer did not start:\n{self.log()}") from None
                time.sleep(0.05)

    def log(self) -> str:
        return (self.dir / "pgbouncer.log").read_text(errors="replace")

    def overrides(self) -> dict[str, object]:
        """Connection parameters that go through this pgbouncer."""
        return {"host": "127.0.0.1", "port": self.port}

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
