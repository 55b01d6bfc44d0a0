"""``python -m jobledger``: the same as the ``jobledger`` command."""

from __future__ import annotations

from jobledger import cli

if __name__ == "__main__":
    cli.main()
