"""Runs every bench/bench_*.py and writes their JSON, together, to stdout and build/bench.json.

Each benchmark is a standalone script printing one JSON object; PG* must name
a server with the extension installed (``make bench`` sees to that).
``python bench/run.py submit`` runs only the benchmarks whose name contains "submit".
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent


def main() -> None:
    wanted = sys.argv[1:]
    results = {}
    for script in sorted(HERE.glob("bench_*.py")):
        name = script.stem.removeprefix("bench_")
        if wanted and not any(w in name for w in wanted):
            continue
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.exit(f"bench {name} failed:\n{done.stderr}")
        results[name] = json.loads(done.stdout)
    out = HERE.parent / "build" / "bench.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(f"bench: written to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
