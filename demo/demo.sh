#!/bin/sh
# jobledger demo: a fresh database jobledger_demo with sample data and jobs,
# some runs submitted (one refused, one cancelled), `jobledger runner --drain`
# as the non-superuser runner role, then the ledger.  Re-running starts over.
# Run by `make demo`, which sets PG* for the private cluster (tests/devenv.sh).
set -eu
cd "$(dirname "$0")/.."
db=${DEMO_DB:-jobledger_demo}
# The demo's lake: a Delta table the runner writes (absolute, started over too).
lake=${DEMO_LAKE:-$PWD/build/demo-lake}
psql="psql -X -q -v ON_ERROR_STOP=1"

echo "== jobledger demo in database $db"
$psql -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
rm -rf "$lake" && mkdir -p "$lake"

echo "== Sample data, jobs (append, overwrite, merge, result, a Delta table), runs submitted"
$psql -d "$db" -v lake="$lake" -f demo/setup.sql

echo "== jobledger runner --drain (as demo_runner)"
# --set-role: one machine, one trusted owner; production runners use
# --connect-as-owner (README, "The runner"), which needs an ident map.
.venv/bin/jobledger runner --drain --set-role --concurrency 2 --worker-id demo-runner \
    --dsn "dbname=$db user=demo_runner"

$psql -d "$db" -f demo/ledger.sql
echo
echo "== The Delta table's versions, read back with deltalake (demo/read_lake.py)"
.venv/bin/python demo/read_lake.py "$lake/region_revenue" "dbname=$db"
echo
echo "Connect with: psql -h ${PGHOST:-localhost} -p ${PGPORT:-5432} -U ${PGUSER:-$(id -un)} $db"
