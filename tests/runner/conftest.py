"""Real ``jobledger runner`` processes against a real database.

Each test gets a fresh database (the ``db`` fixture) and starts runners as
subprocesses (``python -m jobledger runner``), exactly as an operator would.
The tests assert effects (destination rows, ledger rows), never timing: they
poll with generous deadlines instead of sleeping.  Helpers: runnertools.

The fixtures (``start_runner``, ``sleepy``) live in tests/conftest.py:
tests/security starts runners too.
"""
