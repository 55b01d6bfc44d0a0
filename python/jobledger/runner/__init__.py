"""The jobledger runner: claims pending runs and executes them exactly once.

Client side only (psycopg); the extension's PL/Python code never imports it.

* ``claim``: what claim_runs hands a runner (ClaimedRun);
* ``ledger``: every call the runner makes into the run state machine
  (claim, complete, fail, release, lock, emit, progress, heartbeat,
  reconcile, attach, its presence), one typed function each;
* ``outcome``: what became of an attempt, and recording a failed one;
* ``execute``: one run into its destination table, in one fenced
  transaction (``lake``: result and parquet destinations);
* ``listen``: the control connection (LISTEN, heartbeats, reconcile);
* ``process``: a runner process (executor threads, signals, drain);
* ``queries``: the runner's SQL, from queries.sql.
"""
