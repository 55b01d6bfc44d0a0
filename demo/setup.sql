-- jobledger demo, part 1: roles, sample data, the jobs, some runs.
-- Run by demo/demo.sh in a fresh database jobledger_demo (psql, as a superuser).
\set ON_ERROR_STOP 1
SET client_min_messages = warning;

-- Roles (cluster-wide, so created once): who owns the jobs, who submits
-- runs, and the runner's own non-superuser role (README: "The runner").
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'demo_owner') THEN
        CREATE ROLE demo_owner NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'demo_analyst') THEN
        CREATE ROLE demo_analyst NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'demo_runner') THEN
        CREATE ROLE demo_runner LOGIN;
    END IF;
END
$roles$;

CREATE EXTENSION jobledger CASCADE;

-- The runner: EXECUTE on the runner's functions, membership in the job owners.
GRANT EXECUTE ON FUNCTION
    jobledger_internal.claim_runs(text, integer),
    jobledger_internal.claim_runs(text, integer, text),
    jobledger_internal.complete_run(uuid, integer, text, bigint, text, jsonb),
    jobledger_internal.fail_run(uuid, integer, text, text, text, text, boolean, interval),
    jobledger_internal.heartbeat(text, uuid[]),
    jobledger_internal.release_run(uuid, integer, text),
    jobledger.reconcile_orphaned(text, interval),
    jobledger_internal.worker_start(text, text, integer, text, integer, interval),
    jobledger_internal.worker_beat(text, integer, boolean),
    jobledger_internal.claim_webhook_deliveries(integer),
    jobledger_internal.record_webhook_attempt(uuid, integer, text, integer)
    TO demo_runner;
GRANT demo_owner TO demo_runner;
-- And for destinations outside the database (result, parquet:; 0.4.0).
GRANT EXECUTE ON FUNCTION
    jobledger_internal.emit_output(uuid, text, text, bytea, uuid[]),
    jobledger_internal.lock_run(uuid, integer, text),
    jobledger_internal.report_progress(uuid, integer, text, bigint, integer)
    TO demo_runner;

-- Sample data, generated (the same every time): a shop's customers and orders.
CREATE SCHEMA shop;
CREATE TABLE shop.customers (id integer PRIMARY KEY, name text NOT NULL, region text NOT NULL);
CREATE TABLE shop.orders (
    id bigint PRIMARY KEY,
    customer_id integer NOT NULL REFERENCES shop.customers,
    ordered_at timestamptz NOT NULL,
    amount numeric(10,2) NOT NULL,
    status text NOT NULL
);
SELECT setseed(0.42);
INSERT INTO shop.customers
SELECT g, 'customer ' || g, (ARRAY['north', 'south', 'east', 'west'])[1 + g % 4]
  FROM generate_series(1, 500) AS g;
INSERT INTO shop.orders
SELECT g,
       1 + floor(random() * 500)::integer,
       timestamptz '2026-11-01 00:00+00' + random() * interval '7 days',
       round((5 + random() * 495)::numeric, 2),
       (ARRAY['paid', 'paid', 'paid', 'refunded', 'pending'])[1 + floor(random() * 5)::integer]
  FROM generate_series(1, 50000) AS g;
ANALYZE shop.customers, shop.orders;

-- Destination tables.
CREATE SCHEMA reports;
CREATE TABLE reports.big_orders (
    order_id bigint NOT NULL,
    customer text NOT NULL,
    amount numeric(10,2) NOT NULL,
    ordered_at timestamptz NOT NULL,
    picked_for date NOT NULL
);
CREATE TABLE reports.daily_revenue (day date PRIMARY KEY, orders bigint NOT NULL, revenue numeric NOT NULL);
CREATE TABLE reports.customer_totals (
    customer_id integer PRIMARY KEY,
    orders bigint NOT NULL,
    revenue numeric NOT NULL,
    last_order_at timestamptz,
    note text  -- not written by the job: merge keeps it
);
INSERT INTO reports.customer_totals VALUES (1, 0, 0, NULL, 'VIP: call before shipping');

GRANT USAGE ON SCHEMA shop, reports TO demo_owner;
GRANT SELECT ON ALL TABLES IN SCHEMA shop TO demo_owner;
GRANT INSERT ON reports.big_orders TO demo_owner;
GRANT INSERT, DELETE ON reports.daily_revenue TO demo_owner;
GRANT SELECT, INSERT, UPDATE ON reports.customer_totals TO demo_owner;

-- A lake table: the demo's Delta table lives under :'lake' (demo.sh passes an
-- absolute directory).  The runner writes it, so a superuser allows the
-- owner's jobs to write lake tables there.
SELECT jobledger.allow_lake_prefix('demo_owner', :'lake');

-- The jobs, owned by demo_owner.
SET ROLE demo_owner;

-- append, with typed parameters: a day's orders above an amount.
SELECT jobledger.define_job('big_orders',
    $$SELECT o.id AS order_id, c.name AS customer, o.amount, o.ordered_at, CAST({day} AS date) AS picked_for
        FROM shop.orders AS o JOIN shop.customers AS c ON c.id = o.customer_id
       WHERE o.ordered_at >= {day} AND o.ordered_at < CAST({day} AS date) + 1
         AND o.amount >= {min_amount} AND o.status = {status}$$,
    'reports.big_orders',
    params => '{"day": {"type": "date"},
                "min_amount": {"type": "numeric", "default": 400},
                "status": {"type": "text", "default": "paid"}}',
    description => 'Orders of one day above an amount');

-- overwrite: the daily revenue rollup, replaced as a whole on each run.
SELECT jobledger.define_job('daily_revenue',
    $$SELECT CAST(ordered_at AT TIME ZONE 'UTC' AS date) AS day, count(*) AS orders, sum(amount) AS revenue
        FROM shop.orders WHERE status = 'paid' GROUP BY 1$$,
    'reports.daily_revenue', 'overwrite',
    timeout => '30 seconds',
    description => 'Paid revenue per day');

-- merge: per-customer totals since a date, upserted on customer_id.
SELECT jobledger.define_job('customer_totals',
    $$SELECT customer_id, count(*) AS orders, sum(amount) AS revenue, max(ordered_at) AS last_order_at
        FROM shop.orders WHERE status = 'paid' AND ordered_at >= {since} GROUP BY customer_id$$,
    'reports.customer_totals', 'merge',
    params => '{"since": {"type": "timestamptz"}}',
    description => 'Paid orders per customer');

-- result: the answer is kept with the run (jobledger.result_json, `jobledger result`).
SELECT jobledger.define_job('top_customers',
    $$SELECT customer_id, count(*) AS orders, CAST(sum(amount) AS numeric(14,2)) AS revenue
        FROM shop.orders WHERE status = 'paid' GROUP BY customer_id ORDER BY revenue DESC, customer_id
       LIMIT {n}$$,
    'result', params => '{"n": {"type": "integer"}}',
    description => 'The best customers, kept with the run');

-- delta: a Delta Lake table of paid revenue per region and day, one commit
-- (one table version, the run's snapshot_id) per run; demo/read_lake.py
-- reads every version back with deltalake.
SELECT jobledger.define_job('region_revenue',
    $$SELECT CAST({day} AS date) AS day, c.region, count(*) AS orders, sum(o.amount) AS revenue
        FROM shop.orders AS o JOIN shop.customers AS c ON c.id = o.customer_id
       WHERE o.status = 'paid' AND o.ordered_at >= {day} AND o.ordered_at < CAST({day} AS date) + 1
       GROUP BY c.region$$,
    'delta:' || :'lake' || '/region_revenue?create_if_missing=true&partition_by=day',
    params => '{"day": {"type": "date"}}',
    description => 'Paid revenue per region and day, in a Delta table');

SELECT jobledger.grant_job('big_orders', 'demo_analyst');
RESET ROLE;

-- Runs.  The analyst submits big_orders runs; the owner the others.
SET ROLE demo_analyst;
SELECT jobledger.submit_job('big_orders', '{"day": "2026-11-01"}') AS big_orders_nov_1;
SELECT jobledger.submit_job('big_orders', '{"day": "2026-11-02", "min_amount": 450}', priority => 5) AS big_orders_nov_2;

-- Refused: "min_amount" must be a number.  Nothing is recorded.
DO $refused$
DECLARE
    detail text;
BEGIN
    PERFORM jobledger.submit_job('big_orders', '{"day": "2026-11-03", "min_amount": "lots"}');
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
    RAISE WARNING 'submit_job refused (SQLSTATE %, %): %', SQLSTATE, split_part(detail, E'\n', 1), SQLERRM;
END
$refused$;

-- Submitted, then cancelled before any runner saw it.
SELECT jobledger.submit_job('big_orders', '{"day": "2026-11-04"}') AS to_cancel \gset
SELECT jobledger.cancel_run(:'to_cancel') AS cancelled;
RESET ROLE;

SET ROLE demo_owner;
SELECT jobledger.submit_job('daily_revenue') AS daily_revenue;
SELECT jobledger.submit_job('customer_totals', '{"since": "2026-11-01T00:00:00Z"}') AS customer_totals;
SELECT jobledger.submit_job('top_customers', '{"n": 3}') AS top_customers;
SELECT jobledger.submit_job('region_revenue', '{"day": "2026-11-01"}') AS region_revenue_nov_1;
SELECT jobledger.submit_job('region_revenue', '{"day": "2026-11-02"}') AS region_revenue_nov_2;
RESET ROLE;
