"""The jobledger runner: claims pending runs and executes them exactly once.

Client side only (psycopg); the extension's PL/Python code never imports it.

* ``claim``: what claim_runs hands a runner (ClaimedRun);
* ``execute``: one run into its destination, in one fenced transaction;
* ``listen``: the control connection (LISTEN, heartbeats, reconcile);
* ``process``: a runner process (executor threads, signals, drain);
* ``queries``: the runner's SQL, from queries.sql.
"""
