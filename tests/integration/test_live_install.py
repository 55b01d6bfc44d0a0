"""make install on a live server.

Sessions load the package lazily from $(pkglibdir)/jobledger/<version>, a
symlink to a complete install that make install replaces in one rename
(plpython/install_package.py).  Here sessions keep calling submit_job (and
define_job, which imports sqlglot and pglast), on pooled connections and on
new ones, while `make install` runs three times into the server under test:
not one call may fail.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import threading
import time

import psycopg
from psycopg import rows

import assemble
import dbtools

ROOT = pathlib.Path(__file__).resolve().parents[2]
VERSION = assemble.current_version()


def test_sessions_never_fail_while_make_install_runs(db: psycopg.Connection) -> None:
    db.execute("CREATE TABLE public.landed (n integer)")
    db.execute("""SELECT jobledger.define_job('land', 'SELECT {n}::integer AS n', 'public.landed',
                                              params => '{"n": {"type": "integer"}}')""")
    info = dbtools.conninfo(db)
    stop = threading.Event()
    failures: list[str] = []
    fresh_during_install = [0]
    installing = threading.Event()
    calls = [0]

    def call(conn: psycopg.Connection, i: int, define: bool) -> None:
        if define:  # imports the template checks (sqlglot, pglast) in a new session
            conn.execute("SELECT jobledger.define_job('land', %s, 'public.landed',"
                         " params => '{\"n\": {\"type\": \"integer\"}}')",
                         (f"SELECT {{n}}::integer + {i % 3} AS n",))
        conn.execute("SELECT jobledger.submit_job('land', %s)", (f'{{"n": {i}}}',))
        calls[0] += 1

    def pooled() -> None:
        with psycopg.connect(**info, autocommit=True, row_factory=rows.dict_row) as conn:
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    call(conn, i, define=False)
                except psycopg.Error as exc:
                    failures.append(f"pooled: {exc}")

    def fresh(define: bool) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            try:
                with psycopg.connect(**info, autocommit=True, row_factory=rows.dict_row) as conn:
                    call(conn, i, define)
                if installing.is_set():
                    fresh_during_install[0] += 1
            except psycopg.Error as exc:
                failures.append(f"fresh: {exc}")

    threads = [threading.Thread(target=pooled), threading.Thread(target=fresh, args=(False,)),
               threading.Thread(target=fresh, args=(False,)), threading.Thread(target=fresh, args=(True,))]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
        for _ in range(3):
            installing.set()
            done = subprocess.run(["make", "install", f"PG_CONFIG={dbtools.pg_config_command()}"],
                                  cwd=ROOT, env=env, capture_output=True, text=True, check=False)
            installing.clear()
            assert done.returncode == 0, done.stdout + done.stderr
            time.sleep(0.3)
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    assert failures == [], failures[:5]
    assert fresh_during_install[0] >= 10 and calls[0] >= 30, (fresh_during_install, calls)

    libdir = pathlib.Path(dbtools.pg_config("--pkglibdir")) / "jobledger"
    link = libdir / VERSION
    assert link.is_symlink() and (link / ".in-use").is_file() and (link / "jobledger" / "__init__.py").is_file()
    # Content no session held was removed; at most the ones sessions still
    # held when an install finished are left for a later install.
    contents = [p for p in libdir.iterdir() if p.name.startswith(VERSION + ".") and p.is_dir()]
    assert len(contents) <= 4, contents
