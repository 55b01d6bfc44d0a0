"""Who may write where in the lake, through SQL: allow_lake_prefix and
disallow_lake_prefix (superusers only; prefixes normalised like lake
destinations), jobledger.lake_grants, matching by whole path components,
group roles and PUBLIC, and define_job's and submit_job's refusals for
delta: destinations.  The runner's own check: tests/runner/test_delta.py."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

import dbtools
from jobledger.core import lake_grants


def grants(db: psycopg.Connection) -> list[tuple[str, str]]:
    return [(r["role"], r["prefix"]) for r in db.execute(
        "SELECT role, prefix FROM jobledger.lake_grants ORDER BY role, prefix")]


def allow(db: psycopg.Connection, role: str, prefix: str) -> None:
    db.execute("SELECT jobledger.allow_lake_prefix(%s, %s)", (role, prefix))


def allowed(db: psycopg.Connection, owner: str, uri: str) -> bool:
    return db.execute("SELECT jobledger_internal.lake_write_allowed(%s, %s) AS ok", (owner, uri)).fetchone()["ok"]


def define(conn: psycopg.Connection, name: str, destination: str) -> int:
    return conn.execute("SELECT jobledger.define_job(%s, 'SELECT 1 AS n', %s) AS v", (name, destination)
                        ).fetchone()["v"]


def test_a_superuser_grants_and_takes_back_normalised_prefixes(db, make_role) -> None:
    owner = make_role("owner")
    allow(db, owner, "/data/lake/")
    allow(db, owner, "/data/lake")  # the same prefix: nothing new
    allow(db, owner, "s3://bucket/sales/")
    allow(db, owner, "s3://whole")
    allow(db, "public", "/shared//lake")
    assert grants(db) == sorted([(owner, "/data/lake"), (owner, "s3://bucket/sales"), (owner, "s3://whole"),
                                 ("public", "/shared/lake")])
    row = db.execute("SELECT granted_by FROM jobledger.lake_grants WHERE prefix = 's3://whole'").fetchone()
    assert row == {"granted_by": dbtools.conninfo(db)["user"]}
    # The table keeps PUBLIC as role 0; pg_dump writes it as '-'.
    assert db.execute("SELECT grantee::oid AS o FROM jobledger.lake_grant WHERE prefix = '/shared/lake'"
                      ).fetchone() == {"o": 0}
    assert db.execute("SELECT jobledger.disallow_lake_prefix(%s, '/data/lake/') AS d", (owner,)).fetchone() == {
        "d": True}
    assert db.execute("SELECT jobledger.disallow_lake_prefix(%s, '/data/lake') AS d", (owner,)).fetchone() == {
        "d": False}
    assert db.execute("SELECT jobledger.disallow_lake_prefix('public', '/shared/lake') AS d").fetchone() == {
        "d": True}
    assert grants(db) == [(owner, "s3://bucket/sales"), (owner, "s3://whole")]


@pytest.mark.parametrize("prefix", [
    "data/lake", "/", "//", "/data/../etc", "/data/./lake", "s3://", "s3:///x", "s3://b/x//y", "delta:/data/lake",
    "/data/lake?create_if_missing=true", "/data/la ke", "/data/\tlake", "", None, "S3://b/x", "file:///data",
])
def test_malformed_prefixes_are_refused_and_nothing_changes(db, make_role, prefix) -> None:
    owner = make_role("owner")
    allow(db, owner, "/kept")
    with pytest.raises(psycopg.errors.InvalidParameterValue) as refused:
        allow(db, owner, prefix)
    assert dbtools.category(refused.value) == "invalid_argument"
    assert grants(db) == [(owner, "/kept")]


def test_unknown_roles_are_refused(db) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue) as refused:
        allow(db, "jl_no_such_role", "/data")
    assert dbtools.category(refused.value) == "invalid_argument" and "jl_no_such_role" in str(refused.value)
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        allow(db, "PUBLIC", "/data")  # public is spelled public; "PUBLIC" would be a role of that name
    assert grants(db) == []


def test_anyone_else_is_refused_and_gains_nothing(db, make_role, connect) -> None:
    owner = make_role("owner")
    allow(db, owner, "/kept")
    conn = connect(user=owner)
    for call in ("SELECT jobledger.allow_lake_prefix(%s, '/data')",
                 "SELECT jobledger.allow_lake_prefix(%s, '/kept/below')",
                 "SELECT jobledger.disallow_lake_prefix(%s, '/kept')"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
            conn.execute(call, (owner,))
        assert dbtools.category(refused.value) == "permission_denied"
        assert "superusers only" in str(refused.value)
    for statement in ("INSERT INTO jobledger.lake_grant (grantee, prefix, granted_by) VALUES (%s::regrole, '/x', 'me')",
                      "DELETE FROM jobledger.lake_grant WHERE grantee = %s::regrole"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement, (owner,))
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("SELECT jobledger_internal.lake_grantee(%s, 'x')", (owner,))
    # Readable by everyone; nothing changed; the owner still may not write elsewhere.
    assert grants(conn) == [(owner, "/kept")]
    assert grants(db) == [(owner, "/kept")]
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        define(conn, "elsewhere", "delta:/data/t")
    assert define(conn, "below", "delta:/kept/t") == 1


@pytest.mark.parametrize(("prefix", "uri", "covered"), [
    ("/data/lake", "/data/lake", True),
    ("/data/lake", "/data/lake/sales", True),
    ("/data/lake", "/data/lake/sales/2026", True),
    ("/data/lake", "/data/lakehouse", False),
    ("/data/lake", "/data/lakehouse/sales", False),
    ("/data/lake", "/data/lak", False),
    ("/data/lake", "/data", False),
    ("/data/lake", "/other/data/lake", False),
    ("/data/lake/sales", "/data/lake", False),
    ("s3://b/x", "s3://b/x", True),
    ("s3://b/x", "s3://b/x/y", True),
    ("s3://b/x", "s3://bx/y", False),
    ("s3://b/x", "s3://b/xy", False),
    ("s3://b", "s3://b/x", True),
    ("s3://b", "s3://bb/x", False),
    ("/b/x", "s3://b/x", False),
    ("s3://b/x", "/b/x", False),
    ("/data/l_ke", "/data/lake", False),  # no LIKE wildcards
    ("/data/l%", "/data/lake", False),
])
def test_a_grant_covers_whole_path_components(db, make_role, prefix, uri, covered) -> None:
    owner = make_role("owner")
    allow(db, owner, prefix)
    assert allowed(db, owner, uri) is covered
    assert lake_grants.covers(prefix, uri) is covered  # the rule in Python says the same


def test_group_roles_cover_members_with_their_privileges(db, make_role) -> None:
    group = make_role("group")
    member = make_role("member")
    nested = make_role("nested")
    aloof = make_role("aloof", "NOINHERIT")  # a member that does not have the group's privileges
    outsider = make_role("outsider")
    for role in (member, aloof):
        db.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), sql.Identifier(role)))
    db.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(member), sql.Identifier(nested)))
    allow(db, group, "/data/team")
    assert [allowed(db, r, "/data/team/t") for r in (group, member, nested, aloof, outsider)] == [
        True, True, True, False, False]
    allow(db, "public", "/data/shared")
    assert all(allowed(db, r, "/data/shared/t") for r in (group, member, nested, aloof, outsider))
    assert not allowed(db, outsider, "/data/team/t")
    assert not allowed(db, "jl_no_such_role", "/data/shared/t")  # a role that does not exist writes nowhere


def test_superusers_need_no_grant(db) -> None:
    assert allowed(db, dbtools.conninfo(db)["user"], "/anywhere/at/all")
    assert define(db, "anywhere", "delta:/anywhere/at/all") == 1


def test_define_and_submit_refuse_an_owner_without_a_grant(db, make_role, connect) -> None:
    owner = make_role("owner")
    conn = connect(user=owner)
    destination = "delta:/data/lake/sales?create_if_missing=true"
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
        define(conn, "sales", destination)
    assert dbtools.category(refused.value) == "permission_denied"
    assert owner in str(refused.value) and "/data/lake/sales" in str(refused.value)
    assert f"jobledger.allow_lake_prefix('{owner}', '/data/lake/sales')" in refused.value.diag.message_hint
    assert "pg_write_server_files" not in str(refused.value)
    # pg_write_server_files is no grant to write the lake.
    db.execute(sql.SQL("GRANT pg_write_server_files TO {}").format(sql.Identifier(owner)))
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        define(conn, "sales", destination)
    allow(db, owner, "/data/lake")
    assert define(conn, "sales", destination) == 1
    conn.execute("SELECT jobledger.submit_job('sales')")
    db.execute("SELECT jobledger.disallow_lake_prefix(%s, '/data/lake')", (owner,))
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as again:  # checked again at submit
        conn.execute("SELECT jobledger.submit_job('sales')")
    assert dbtools.category(again.value) == "permission_denied" and owner in str(again.value)
    assert db.execute("SELECT count(*) AS n FROM jobledger.run WHERE job = 'sales'").fetchone() == {"n": 1}


def test_grants_of_dropped_roles_match_nobody_and_are_cleared(db, make_role) -> None:
    gone = make_role("gone")
    allow(db, gone, "/data/gone")
    oid = db.execute("SELECT %s::regrole::oid AS o", (gone,)).fetchone()["o"]
    db.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(gone)))
    assert grants(db) == []  # the view shows no grant of a role that does not exist
    assert not allowed(db, gone, "/data/gone")
    assert db.execute("SELECT count(*) AS n FROM jobledger.lake_grant WHERE grantee = %s", (oid,)).fetchone() == {
        "n": 1}
    allow(db, "public", "/data/other")  # any change clears them
    assert db.execute("SELECT count(*) AS n FROM jobledger.lake_grant WHERE grantee = %s", (oid,)).fetchone() == {
        "n": 0}
    db.execute("SELECT jobledger.disallow_lake_prefix('public', '/data/other')")
    db.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(gone)))  # make_role drops it at the end
