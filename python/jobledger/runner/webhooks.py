"""Webhook deliveries: a runner thread POSTs the outbox jobledger.webhook_delivery.

A trigger queues one delivery per terminal state of a run whose job has a
webhook, in the transaction that ends the run (docs/notifications.md).  This
thread, on a connection of its own (never an executor's: a slow endpoint
never delays a run), claims one due delivery at a time with ``FOR UPDATE SKIP
LOCKED`` in a transaction it holds during the POST, then records the attempt
in that transaction: delivered (2xx), or retried after a backoff, or
abandoned after ``max_attempts``.  A runner that dies mid-POST aborts the
transaction and the row is delivered later by any runner: at least once, so
receivers deduplicate on the ``X-Jobledger-Delivery`` header.

A runner started with ``--drain`` delivers, once it has drained, every
delivery due by then (one attempt each, within its grace period) before it
exits: a batch runner's runs announce their end without another runner.
An attempt that fails waits for its backoff and the next runner.

The POST uses the standard library: a JSON body, a short timeout, no proxies
from the environment and no redirects followed (a 3xx is a failed attempt).
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
import typing
import urllib.error
import urllib.request

import psycopg

import jobledger
from jobledger.runner import ledger

if typing.TYPE_CHECKING:
    from jobledger.runner import process

log = logging.getLogger("jobledger.runner")

RESPONSE_BYTES = 64 * 1024  # read (and ignore) at most this much of an answer
# Seconds past the POST's timeout after which the server ends a delivery's
# transaction left idle (its runner frozen): the delivery is then free again.
HOLD_MARGIN = 20.0


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is answered as it came: an HTTPError with its 3xx status."""

    def redirect_request(self, *_: typing.Any, **__: typing.Any) -> None:
        return None


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def post(url: str, payload: dict[str, typing.Any], delivery: str, timeout: float) -> tuple[int | None, str | None]:
    """POST ``payload`` as JSON to ``url``: (HTTP status or None, error or None)."""
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST", headers={
        "Content-Type": "application/json",
        "User-Agent": f"jobledger/{jobledger.__version__}",
        "X-Jobledger-Delivery": delivery,
    })
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            response.read(RESPONSE_BYTES)
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code, f"HTTP {exc.code} {exc.reason}".strip()
    except urllib.error.URLError as exc:
        return None, str(exc.reason)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return None, f"{type(exc).__name__}: {exc}"
    if 200 <= status < 300:
        return status, None
    return status, f"HTTP {status}"


class Webhooks(threading.Thread):
    """Delivers due webhooks until the runner stops (runner.process starts it)."""

    def __init__(self, runner: process.Runner) -> None:
        super().__init__(name="webhooks", daemon=True)
        self.runner = runner
        self._refused = False  # the runner's role lacks the grants: said once

    def run(self) -> None:
        runner = self.runner
        conn: psycopg.Connection | None = None
        try:
            while not runner.stopping.is_set():
                busy = False
                try:
                    if conn is None:
                        conn = runner.connect(f"jobledger webhooks {runner.worker}")
                    busy = self.deliver_one(conn)
                except psycopg.errors.InsufficientPrivilege as exc:
                    if not self._refused:
                        self._refused = True
                        log.warning("webhooks are not delivered by this runner: %s (grant EXECUTE on "
                                    "jobledger_internal.claim_webhook_deliveries and record_webhook_attempt, "
                                    "docs/runner.md)", (exc.diag.message_primary or str(exc)).strip())
                except psycopg.Error as exc:
                    log.warning("webhook delivery: %s", (exc.diag.message_primary or str(exc)).strip())
                    if conn is not None:
                        conn.close()
                    conn = None
                if not busy:
                    runner.stopping.wait(runner.config.poll_interval * (10 if self._refused else 1))
        except Exception:  # noqa: BLE001 - a bug: no more webhooks from this runner, the runs go on
            log.exception("the webhook thread stopped on an unexpected error")
        finally:
            if conn is not None:
                conn.close()

    def flush(self, within: float) -> int:
        """The last pass of a drained runner (the thread has stopped): every
        delivery due now, one attempt each, for at most ``within`` seconds;
        how many were attempted."""
        attempted = 0
        deadline = time.monotonic() + within
        try:
            with self.runner.connect(f"jobledger webhooks {self.runner.worker}") as conn:
                while time.monotonic() < deadline and self.deliver_one(conn):
                    attempted += 1
        except psycopg.errors.InsufficientPrivilege:
            pass  # said by the thread already
        except psycopg.Error as exc:
            log.warning("webhook delivery before exiting: %s", (exc.diag.message_primary or str(exc)).strip())
        return attempted

    def deliver_one(self, conn: psycopg.Connection) -> bool:
        """Claim one due delivery, POST it, record the attempt; whether there was one."""
        config = self.runner.config
        with conn.transaction():
            claimed = ledger.claim_webhook_deliveries(conn, config.webhook_timeout + HOLD_MARGIN, 1)
            if not claimed:
                return False
            delivery = claimed[0]
            http_status, error = post(delivery.url, delivery.payload, str(delivery.id), config.webhook_timeout)
            outcome = ledger.record_webhook_attempt(conn, delivery.id, http_status, error,
                                                    config.webhook_max_attempts)
        self.runner.observer.event(
            "webhook", level=logging.INFO if outcome == "delivered" else logging.WARNING,
            run=None, delivery=str(delivery.id), outcome=outcome, attempt=delivery.attempts + 1,
            http_status=http_status, error=error)
        return True
