-- Fidelity corpus setup: PostgreSQL 15.1's src/test/regress/sql/test_setup.sql
-- (via pganalyze/libpg_query test/sql/postgres_regress, commit 6fb6dc0; PostgreSQL
-- License, Portions Copyright (c) 1996-2022, PostgreSQL Global Development Group,
-- Portions Copyright (c) 1994, The Regents of the University of California),
-- adapted for tests/fidelity: psql meta-commands removed; each COPY ... FROM a
-- data file (not vendored) replaced by deterministically generated rows; VACUUM
-- replaced by ANALYZE (the script runs as one transaction); the C functions of
-- the regression library (binary_coercible, ttdummy, get_columns_length) left out.
-- Statements in pg15_regress_selects.json were kept only if they run here.
--
-- TEST_SETUP --- prepare environment expected by regression test scripts
--

-- directory paths and dlsuffix are passed to us in environment variables


--
-- synchronous_commit=off delays when hint bits may be set. Some plans change
-- depending on the number of all-visible pages, which in turn can be
-- influenced by the delayed hint bits. Force synchronous_commit=on to avoid
-- that source of variability.
--

--
-- Postgres formerly made the public schema read/write by default,
-- and most of the core regression tests still expect that.
--
GRANT ALL ON SCHEMA public TO public;

--
-- These tables have traditionally been referenced by many tests,
-- so create and populate them.  Insert only non-error values here.
-- (Some subsequent tests try to insert erroneous values.  That's okay
-- because the table won't actually change.  Do not change the contents
-- of these tables in later tests, as it may affect other tests.)
--

CREATE TABLE CHAR_TBL(f1 char(4));

INSERT INTO CHAR_TBL (f1) VALUES
  ('a'),
  ('ab'),
  ('abcd'),
  ('abcd    ');
ANALYZE CHAR_TBL;

CREATE TABLE FLOAT8_TBL(f1 float8);

INSERT INTO FLOAT8_TBL(f1) VALUES
  ('0.0'),
  ('-34.84'),
  ('-1004.30'),
  ('-1.2345678901234e+200'),
  ('-1.2345678901234e-200');
ANALYZE FLOAT8_TBL;

CREATE TABLE INT2_TBL(f1 int2);

INSERT INTO INT2_TBL(f1) VALUES
  ('0   '),
  ('  1234 '),
  ('    -1234'),
  ('32767'),  -- largest and smallest values
  ('-32767');
ANALYZE INT2_TBL;

CREATE TABLE INT4_TBL(f1 int4);

INSERT INTO INT4_TBL(f1) VALUES
  ('   0  '),
  ('123456     '),
  ('    -123456'),
  ('2147483647'),  -- largest and smallest values
  ('-2147483647');
ANALYZE INT4_TBL;

CREATE TABLE INT8_TBL(q1 int8, q2 int8);

INSERT INTO INT8_TBL VALUES
  ('  123   ','  456'),
  ('123   ','4567890123456789'),
  ('4567890123456789','123'),
  (+4567890123456789,'4567890123456789'),
  ('+4567890123456789','-4567890123456789');
ANALYZE INT8_TBL;

CREATE TABLE POINT_TBL(f1 point);

INSERT INTO POINT_TBL(f1) VALUES
  ('(0.0,0.0)'),
  ('(-10.0,0.0)'),
  ('(-3.0,4.0)'),
  ('(5.1, 34.5)'),
  ('(-5.0,-12.0)'),
  ('(1e-300,-1e-300)'),  -- To underflow
  ('(1e+300,Inf)'),  -- To overflow
  ('(Inf,1e+300)'),  -- Transposed
  (' ( Nan , NaN ) '),
  ('10.0,10.0');
-- We intentionally don't vacuum point_tbl here; geometry depends on that

CREATE TABLE TEXT_TBL (f1 text);

INSERT INTO TEXT_TBL VALUES
  ('doh!'),
  ('hi de ho neighbor');
ANALYZE TEXT_TBL;

CREATE TABLE VARCHAR_TBL(f1 varchar(4));

INSERT INTO VARCHAR_TBL (f1) VALUES
  ('a'),
  ('ab'),
  ('abcd'),
  ('abcd    ');
ANALYZE VARCHAR_TBL;

CREATE TABLE onek (
	unique1		int4,
	unique2		int4,
	two			int4,
	four		int4,
	ten			int4,
	twenty		int4,
	hundred		int4,
	thousand	int4,
	twothousand	int4,
	fivethous	int4,
	tenthous	int4,
	odd			int4,
	even		int4,
	stringu1	name,
	stringu2	name,
	string4		name
);

INSERT INTO onek
SELECT u1, u2, u1 % 2, u1 % 4, u1 % 10, u1 % 20, u1 % 100, u1 % 1000, u1 % 2000, u1 % 5000,
       u1 % 10000, (u1 % 100) * 2 + 1, (u1 % 100) * 2,
       chr(65 + u1 % 26) || chr(65 + u1 / 26 % 26) || chr(65 + u1 / 676 % 26) || chr(65 + u1 / 17576 % 26) || 'AA',
       chr(65 + u2 % 26) || chr(65 + u2 / 26 % 26) || chr(65 + u2 / 676 % 26) || chr(65 + u2 / 17576 % 26) || 'AA',
       (ARRAY['AAAAxx', 'HHHHxx', 'OOOOxx', 'VVVVxx'])[1 + u2 % 4]
  FROM (SELECT (g * 7919) % 1000 AS u1, g AS u2 FROM generate_series(0, 999) AS g) AS s
 ORDER BY u1 % 7, u2;
ANALYZE onek;

CREATE TABLE onek2 AS SELECT * FROM onek;
ANALYZE onek2;

CREATE TABLE tenk1 (
	unique1		int4,
	unique2		int4,
	two			int4,
	four		int4,
	ten			int4,
	twenty		int4,
	hundred		int4,
	thousand	int4,
	twothousand	int4,
	fivethous	int4,
	tenthous	int4,
	odd			int4,
	even		int4,
	stringu1	name,
	stringu2	name,
	string4		name
);

INSERT INTO tenk1
SELECT u1, u2, u1 % 2, u1 % 4, u1 % 10, u1 % 20, u1 % 100, u1 % 1000, u1 % 2000, u1 % 5000,
       u1 % 10000, (u1 % 100) * 2 + 1, (u1 % 100) * 2,
       chr(65 + u1 % 26) || chr(65 + u1 / 26 % 26) || chr(65 + u1 / 676 % 26) || chr(65 + u1 / 17576 % 26) || 'AA',
       chr(65 + u2 % 26) || chr(65 + u2 / 26 % 26) || chr(65 + u2 / 676 % 26) || chr(65 + u2 / 17576 % 26) || 'AA',
       (ARRAY['AAAAxx', 'HHHHxx', 'OOOOxx', 'VVVVxx'])[1 + u2 % 4]
  FROM (SELECT (g * 7919) % 10000 AS u1, g AS u2 FROM generate_series(0, 9999) AS g) AS s
 ORDER BY u1 % 7, u2;
ANALYZE tenk1;

CREATE TABLE tenk2 AS SELECT * FROM tenk1;
ANALYZE tenk2;

CREATE TABLE person (
	name 		text,
	age			int4,
	location 	point
);

INSERT INTO person
SELECT (ARRAY['mike', 'joe', 'sally', 'fred', 'bill', 'jeff', 'cim', 'linda', 'sam', 'sharon', 'denise', 'carol'])[1 + g % 12] || g,
       18 + g * 7 % 60, point(g * 3 % 50, g * 11 % 40)
  FROM generate_series(1, 50) AS g;
ANALYZE person;

CREATE TABLE emp (
	salary 		int4,
	manager 	name
) INHERITS (person);

INSERT INTO emp
SELECT 'emp' || g, 20 + g % 40, point(g % 9, g % 5), 1000 + g * 100, (ARRAY['sharon', 'bill', 'jeff'])[1 + g % 3]
  FROM generate_series(1, 6) AS g;
ANALYZE emp;

CREATE TABLE student (
	gpa 		float8
) INHERITS (person);

INSERT INTO student
SELECT 'student' || g, 18 + g % 8, point(g % 7, g % 3), 2.5 + g / 10.0
  FROM generate_series(1, 5) AS g;
ANALYZE student;

CREATE TABLE stud_emp (
	percent 	int4
) INHERITS (emp, student);

INSERT INTO stud_emp
SELECT 'stud_emp' || g, 20 + g, point(g, g + 1), 600 + g * 10, 'sharon', 3.0 + g / 4.0, 10 * g
  FROM generate_series(1, 3) AS g;
ANALYZE stud_emp;

CREATE TABLE road (
	name		text,
	thepath 	path
);

INSERT INTO road
SELECT (ARRAY['I- 580', 'I- 680', 'I- 880', 'State Hwy 13', 'State Hwy 92', 'Main St', 'Broadway', 'Market St'])[1 + g % 8],
       path(polygon(box(point(g % 17, g % 13), point(g % 17 + 1.5, g % 13 + 0.5))))
  FROM generate_series(1, 200) AS g;
ANALYZE road;

CREATE TABLE ihighway () INHERITS (road);

INSERT INTO ihighway
   SELECT *
   FROM ONLY road
   WHERE name ~ 'I- .*';
ANALYZE ihighway;

CREATE TABLE shighway (
	surface		text
) INHERITS (road);

INSERT INTO shighway
   SELECT *, 'asphalt'
   FROM ONLY road
   WHERE name ~ 'State Hwy.*';
ANALYZE shighway;

--
-- We must have some enum type in the database for opr_sanity and type_sanity.
--

create type stoplight as enum ('red', 'yellow', 'green');

--
-- Also create some non-built-in range types.
--

create type float8range as range (subtype = float8, subtype_diff = float8mi);

create type textrange as range (subtype = text, collation = "C");

--
-- (The C functions of the regression library are not vendored.)
--

-- Use hand-rolled hash functions and operator classes to get predictable
-- result on different machines.  The hash function for int4 simply returns
-- the sum of the values passed to it and the one for text returns the length
-- of the non-empty string value passed to it or 0.

create function part_hashint4_noop(value int4, seed int8)
    returns int8 as $$
    select value + seed;
    $$ language sql strict immutable parallel safe;

create operator class part_test_int4_ops for type int4 using hash as
    operator 1 =,
    function 2 part_hashint4_noop(int4, int8);

create function part_hashtext_length(value text, seed int8)
    returns int8 as $$
    select length(coalesce(value, ''))::int8
    $$ language sql strict immutable parallel safe;

create operator class part_test_text_ops for type text using hash as
    operator 1 =,
    function 2 part_hashtext_length(text, int8);
