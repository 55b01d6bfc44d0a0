"""YAML job files: one job a file, as ``jobledger jobs apply`` reads them.

    name: daily_revenue
    description: Revenue per day
    destination: reports.daily_revenue
    mode: overwrite              # append (default), overwrite, merge
    timeout: 5 minutes           # a PostgreSQL interval, or a number of seconds
    max_attempts: 3              # default 3
    params:                      # declarations, as define_job takes them
      since: {type: date}
    query: |
      SELECT ...

Unknown keys, missing ones and values of the wrong type are refused before
anything is sent to the database (category ``job_file_invalid``), so a typo
never half-applies a directory of files.
"""

from __future__ import annotations

import pathlib
from typing import Any

import yaml

from jobledger.cli.commands import common

KEYS = ("name", "description", "destination", "mode", "timeout", "max_attempts", "params", "query")
REQUIRED = ("name", "query", "destination")
MODES = ("append", "overwrite", "merge")


def files(path: pathlib.Path) -> list[pathlib.Path]:
    if path.is_dir():
        found = sorted([*path.glob("*.yaml"), *path.glob("*.yml")])
        if not found:
            raise common.CliError("job_file_invalid", f"{path} holds no *.yaml or *.yml job file")
        return found
    return [path]


def load(path: pathlib.Path) -> dict[str, Any]:
    """The job of one file, checked; keys as define_job's arguments."""
    def refuse(reason: str) -> common.CliError:
        return common.CliError("job_file_invalid", f"{path}: {reason}")

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise refuse(f"cannot read it: {exc}") from None
    except yaml.YAMLError as exc:
        raise refuse(f"not YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise refuse("a job file is a mapping of name, query, destination, ... (one job a file)")
    unknown = sorted(set(map(str, data)) - set(KEYS))
    if unknown:
        raise refuse(f"unknown key(s) {', '.join(unknown)}; a job file has {', '.join(KEYS)}")
    missing = [k for k in REQUIRED if data.get(k) in (None, "")]
    if missing:
        raise refuse(f"missing {', '.join(missing)}")
    for key in ("name", "query", "destination", "description"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise refuse(f"{key} must be a string")
    mode = data.get("mode", "append")
    if mode not in MODES:
        raise refuse(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    attempts = data.get("max_attempts", 3)
    if not isinstance(attempts, int) or isinstance(attempts, bool) or not 1 <= attempts <= 100:
        raise refuse("max_attempts must be a whole number from 1 to 100")
    timeout = data.get("timeout")
    if isinstance(timeout, bool) or not (timeout is None or isinstance(timeout, (int, float, str))):
        raise refuse("timeout must be an interval such as '5 minutes', or a number of seconds")
    if isinstance(timeout, (int, float)):
        timeout = f"{timeout} seconds"
    params = data.get("params")
    if params is not None and not isinstance(params, dict):
        raise refuse("params must be a mapping of parameter name to declaration")
    return definition(name=data["name"], description=data.get("description"), query=data["query"],
                      destination=data["destination"], mode=mode, params=params, timeout=timeout,
                      max_attempts=attempts)


def definition(*, name: str, description: str | None, query: str, destination: str, mode: str,
               params: Any, timeout: Any, max_attempts: int) -> dict[str, Any]:
    return {"name": name, "description": description, "destination": destination, "mode": mode,
            "timeout": timeout, "max_attempts": max_attempts, "params": params, "query": query}


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(job: dict[str, Any]) -> str:
    """A job as a job file (keys in a fixed order, absent ones left out)."""
    ordered = {k: job[k] for k in KEYS if job.get(k) is not None}
    return yaml.dump(ordered, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False)
