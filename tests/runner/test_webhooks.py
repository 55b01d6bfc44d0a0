"""Webhooks (docs/notifications.md): terminal states of real runs, through a
real runner, POSTed as JSON to a real local HTTP server; retried with
backoff; delivered at least once across a runner killed mid-POST; refused
outside the allowed prefixes; never queued by a change rolled back; visible
like their runs."""

from __future__ import annotations

import datetime
import http.server
import json
import signal
import threading
import time
from typing import Any, Iterator

import psycopg
import pytest

import dbtools
import jobledger
import runnertools


class Hook(http.server.ThreadingHTTPServer):
    """Records every POST; answers 500 to the first ``fail_first`` and
    sleeps ``sleep_first`` seconds before answering the very first."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[dict[str, Any]] = []
        self.fail_first = 0
        self.sleep_first = 0.0
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}/"

    def bodies(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r["body"] for r in self.requests]


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Hook

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            number = len(self.server.requests)
            self.server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body,
                                         "at": time.monotonic()})
        if number == 0 and self.server.sleep_first:
            time.sleep(self.server.sleep_first)
        self.send_response(500 if number < self.server.fail_first else 204)
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[Hook]:
    server = Hook()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def deliveries(conn: psycopg.Connection, run: Any = None) -> list[dict[str, Any]]:
    return conn.execute("SELECT * FROM jobledger.webhook_delivery WHERE %(run)s::uuid IS NULL OR run = %(run)s"
                        " ORDER BY created_at, status", {"run": run}).fetchall()


def delivered(conn: psycopg.Connection, count: int) -> list[dict[str, Any]]:
    return runnertools.wait_until(
        lambda: (rows := deliveries(conn)) and len(rows) == count
        and all(r["delivered_at"] or r["abandoned_at"] for r in rows) and rows,
        what=f"{count} webhook deliveries to settle")


def with_webhook(db: psycopg.Connection, hook: Hook, job: str = "sleepy", path: str = "hooks/sleepy") -> None:
    db.execute("SELECT jobledger.allow_webhook_prefix(%s)", (hook.url,))
    db.execute("SELECT jobledger.set_job_webhook(%s, %s)", (job, hook.url + path))


def test_terminal_states_arrive_as_json(db, sleepy, hook, start_runner) -> None:
    with_webhook(db, hook)
    runnertools.define(db, "divide", "SELECT CAST(1 / {d} AS integer) AS n", "landed",
                       params={"d": {"type": "integer"}})
    with_webhook(db, hook, "divide", "hooks/divide")
    cancelled = runnertools.submit(db, "sleepy", {"n": 9})
    assert db.execute("SELECT jobledger.cancel_run(%s) AS ok", (cancelled,)).fetchone() == {"ok": True}
    runner = start_runner()
    ok = runnertools.submit(db, "sleepy", {"n": 1})
    bad = runnertools.submit(db, "divide", {"d": 0}, max_attempts=1)
    runnertools.wait_status(db, ok, "succeeded")
    runnertools.wait_status(db, bad, "failed")
    rows = delivered(db, 3)
    assert all(r["delivered_at"] and r["attempts"] == 1 and r["last_http_status"] == 204 for r in rows)
    assert runner.stop() == 0, runner.log()

    by_run = {r["body"]["run"]: r for r in hook.requests}
    assert set(by_run) == {str(ok), str(bad), str(cancelled)}
    for run, status, path in ((ok, "succeeded", "/hooks/sleepy"), (bad, "failed", "/hooks/divide"),
                              (cancelled, "cancelled", "/hooks/sleepy")):
        request = by_run[str(run)]
        row = dbtools.run_row(db, run)
        assert request["path"] == path
        assert request["headers"]["Content-Type"] == "application/json"
        assert request["headers"]["User-Agent"] == f"jobledger/{jobledger.__version__}"
        body = request["body"]
        assert (body["job"], body["status"], body["attempt"], body["rows_written"], body["error_category"]) == (
            row["job"], status, row["attempt"], row["rows_written"], row["error_category"])
        assert body["finished_at"] is not None
        sent = db.execute("SELECT id, payload FROM jobledger.webhook_delivery WHERE run = %s", (run,)).fetchone()
        assert request["headers"]["X-Jobledger-Delivery"] == str(sent["id"])
        assert sent["payload"] == body
    assert by_run[str(ok)]["body"]["rows_written"] == 1
    assert by_run[str(bad)]["body"]["error_category"] is not None


def test_a_failed_post_is_retried_with_backoff_and_recorded(db, sleepy, hook, start_runner) -> None:
    hook.fail_first = 2
    with_webhook(db, hook)
    runner = start_runner()
    run = runnertools.submit(db, "sleepy", {"n": 1})
    [row] = delivered(db, 1)
    assert (row["attempts"], row["last_http_status"], row["last_error"]) == (3, 204, None)
    assert row["delivered_at"] is not None and row["abandoned_at"] is None
    assert [b["run"] for b in hook.bodies()] == [str(run)] * 3
    at = [r["at"] for r in hook.requests]
    assert at[1] - at[0] >= 0.9 and at[2] - at[1] >= 1.9  # 1 s, then 2 s
    assert runner.stop() == 0, runner.log()


def test_a_delivery_is_abandoned_after_its_attempts(db, sleepy, hook, start_runner) -> None:
    hook.fail_first = 100
    with_webhook(db, hook)
    runner = start_runner("--webhook-attempts", "2")
    runnertools.submit(db, "sleepy", {"n": 1})
    [row] = delivered(db, 1)
    assert (row["attempts"], row["last_http_status"], row["last_error"]) == (2, 500, "HTTP 500 Internal Server Error")
    assert row["abandoned_at"] is not None and row["delivered_at"] is None
    assert len(hook.requests) == 2
    assert runner.stop() == 0, runner.log()


def test_a_runner_killed_mid_post_leaves_the_delivery_to_another(db, sleepy, hook, start_runner) -> None:
    hook.sleep_first = 60
    with_webhook(db, hook)
    first = start_runner(worker="A")
    run = runnertools.submit(db, "sleepy", {"n": 1})
    runnertools.wait_status(db, run, "succeeded")
    runnertools.wait_until(lambda: hook.requests, what="A to POST")
    first.send(signal.SIGKILL)
    first.wait()
    second = start_runner(worker="B")
    [row] = delivered(db, 1)
    assert row["delivered_at"] is not None and row["attempts"] == 1  # A's attempt was never recorded
    ids = {r["headers"]["X-Jobledger-Delivery"] for r in hook.requests}
    assert len(hook.requests) == 2 and ids == {str(row["id"])}  # at least once: twice here
    assert second.stop() == 0, second.log()


def test_runners_without_webhooks_leave_them_queued(db, sleepy, hook, start_runner) -> None:
    with_webhook(db, hook)
    runnertools.submit(db, "sleepy", {"n": 1})
    runner = start_runner("--no-webhooks", "--drain")
    assert runner.wait() == 0, runner.log()
    [row] = deliveries(db)
    assert (row["attempts"], row["delivered_at"]) == (0, None)
    assert hook.requests == []


def test_urls_are_checked_and_prefixes_are_for_superusers(db, sleepy, make_role, connect) -> None:
    db.execute("SELECT jobledger.allow_webhook_prefix('https://hooks.example.com/jobs/')")
    db.execute("SELECT jobledger.set_job_webhook('sleepy', 'https://hooks.example.com/jobs/42?t=x')")
    assert db.execute("SELECT url FROM jobledger.job_webhook").fetchall() == [
        {"url": "https://hooks.example.com/jobs/42?t=x"}]
    refusals = {
        "https://hooks.example.com.evil.net/jobs/": "permission_denied",
        "https://hooks.example.com/other": "permission_denied",
        "http://hooks.example.com/jobs/1": "permission_denied",
        "ftp://hooks.example.com/jobs/1": "invalid_argument",
        "https://user:secret@hooks.example.com/jobs/1": "invalid_argument",
        "https://hooks.example.com/jobs/a b": "invalid_argument",
        "https://hooks.example.com/jobs/" + "x" * 2100: "invalid_argument",
        "": "invalid_argument",
    }
    for url, category in refusals.items():
        with pytest.raises(psycopg.Error) as caught:
            db.execute("SELECT jobledger.set_job_webhook('sleepy', %s)", (url,))
        assert dbtools.category(caught.value) == category, url
    for prefix in ("https://hooks.example.com", "https://a@hooks.example.com/", "file:///etc/"):
        with pytest.raises(psycopg.Error) as caught:
            db.execute("SELECT jobledger.allow_webhook_prefix(%s)", (prefix,))
        assert dbtools.category(caught.value) == "invalid_argument", prefix

    other = connect(user=make_role("other"))
    for statement in ("SELECT jobledger.allow_webhook_prefix('https://mine.example.com/')",
                      "SELECT jobledger.disallow_webhook_prefix('https://hooks.example.com/jobs/')",
                      "SELECT jobledger.set_job_webhook('sleepy', 'https://hooks.example.com/jobs/mine')"):
        with pytest.raises(psycopg.Error) as caught:
            other.execute(statement)
        assert dbtools.category(caught.value) in ("permission_denied", "unknown_job"), statement
    with pytest.raises(psycopg.Error) as caught:
        other.execute("INSERT INTO jobledger.webhook_prefix (prefix, allowed_by) VALUES ('http://x/', 'me')")
    assert isinstance(caught.value, psycopg.errors.InsufficientPrivilege)

    db.execute("SELECT jobledger.set_job_webhook('sleepy', NULL)")
    assert db.execute("SELECT count(*) AS n FROM jobledger.job_webhook").fetchone() == {"n": 0}
    assert db.execute("SELECT jobledger.disallow_webhook_prefix('https://hooks.example.com/jobs/') AS d"
                      ).fetchone() == {"d": True}
    with pytest.raises(psycopg.Error) as caught:
        db.execute("SELECT jobledger.set_job_webhook('sleepy', 'https://hooks.example.com/jobs/42')")
    assert dbtools.category(caught.value) == "permission_denied"
    assert "allow_webhook_prefix" in caught.value.diag.message_hint


def test_a_rolled_back_change_queues_nothing(db, sleepy, hook) -> None:
    with_webhook(db, hook)
    run = runnertools.submit(db, "sleepy", {"n": 1})
    with pytest.raises(psycopg.errors.RaiseException):
        with db.transaction():
            db.execute("SELECT jobledger.cancel_run(%s)", (run,))
            assert len(deliveries(db, run)) == 1  # queued with the change...
            db.execute("DO $$ BEGIN RAISE EXCEPTION 'changed my mind'; END $$")
    assert deliveries(db, run) == []  # ...and gone with it
    assert runnertools.status(db, run) == "pending"
    db.execute("SELECT jobledger.cancel_run(%s)", (run,))
    [row] = deliveries(db, run)
    assert (row["status"], row["payload"]["status"], row["url"]) == ("cancelled", "cancelled", hook.url + "hooks/sleepy")


def test_a_role_sees_only_deliveries_of_runs_it_may_see(db, hook, make_role, connect) -> None:
    owner_name, stranger_name = make_role("owner"), make_role("stranger")
    owner, stranger = connect(user=owner_name), connect(user=stranger_name)
    db.execute("SELECT jobledger.allow_webhook_prefix(%s)", (hook.url,))
    db.execute("CREATE TABLE public.landed (n integer)")
    db.execute(f"GRANT INSERT ON public.landed TO {owner_name}")
    runnertools.define(owner, "mine", "SELECT CAST({n} AS integer) AS n", "landed", params={"n": {"type": "integer"}})
    owner.execute("SELECT jobledger.set_job_webhook('mine', %s)", (hook.url + "mine",))
    run = runnertools.submit(owner, "mine", {"n": 1})
    owner.execute("SELECT jobledger.cancel_run(%s)", (run,))
    assert [r["run"] for r in deliveries(owner)] == [run]
    assert [r["url"] for r in owner.execute("SELECT url FROM jobledger.job_webhook").fetchall()] == [hook.url + "mine"]
    assert deliveries(stranger) == []
    assert stranger.execute("SELECT count(*) AS n FROM jobledger.job_webhook").fetchone() == {"n": 0}
    for statement in ("DELETE FROM jobledger.webhook_delivery",
                      "UPDATE jobledger.webhook_delivery SET delivered_at = now()",
                      "SELECT jobledger_internal.claim_webhook_deliveries(1)"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            owner.execute(statement)
    with pytest.raises(psycopg.Error) as caught:
        stranger.execute("SELECT jobledger.set_job_webhook('mine', NULL)")
    assert dbtools.category(caught.value) == "unknown_job"


def test_a_runner_role_with_the_documented_grants_delivers(db, sleepy, hook, make_role, start_runner) -> None:
    from test_modes import RUNNER_FUNCTIONS

    granted, bare = make_role("runner"), make_role("bare")
    db.execute(f"GRANT EXECUTE ON FUNCTION {', '.join(RUNNER_FUNCTIONS)} TO {granted}, {bare}")
    db.execute(f"REVOKE EXECUTE ON FUNCTION jobledger_internal.claim_webhook_deliveries(integer),"
               f" jobledger_internal.record_webhook_attempt(uuid, integer, text, integer) FROM {bare}")
    with_webhook(db, hook)
    run = runnertools.submit(db, "sleepy", {"n": 1}, run_after=datetime.datetime(2100, 1, 1, tzinfo=datetime.timezone.utc))
    db.execute("SELECT jobledger.cancel_run(%s)", (run,))  # a terminal state no runner executed
    without = start_runner(user=bare, worker="bare")
    runnertools.wait_until(lambda: "webhooks are not delivered by this runner" in without.log(),
                           what="the runner without the grants to say so")
    [row] = deliveries(db)
    assert row["attempts"] == 0 and hook.requests == []
    assert without.stop() == 0, without.log()
    runner = start_runner(user=granted, worker="granted")
    [row] = delivered(db, 1)
    assert row["delivered_at"] is not None and len(hook.requests) == 1
    assert runner.stop() == 0, runner.log()


def test_a_draining_runner_delivers_the_webhooks_of_its_runs_before_exiting(db, sleepy, hook, start_runner) -> None:
    with_webhook(db, hook)
    runs = [runnertools.submit(db, "sleepy", {"n": n}) for n in (1, 2)]
    runner = start_runner("--drain", "--poll-interval", "30")  # the thread alone would not get to them
    assert runner.wait() == 0, runner.log()
    assert sorted(body["run"] for body in hook.bodies()) == sorted(str(run) for run in runs)
    assert [(r["attempts"], r["delivered_at"] is not None) for r in deliveries(db)] == [(1, True), (1, True)]
