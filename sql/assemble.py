#!/usr/bin/env python3
"""Assemble jobledger's install and upgrade scripts from one set of sources.

Sources (all under the repository root):

* ``sql/migrations/<version>/<NNNN>_<name>.sql``: incremental schema changes.
  Each runs exactly once per database and is recorded, with its SHA-256, in
  ``jobledger.migration``.  A migration of a released version is never
  edited: the released script embeds its hash and the tests compare.
* ``sql/objects/*.sql`` and ``plpython/*.sql``: idempotent definitions
  (``CREATE OR REPLACE``) re-applied by every install and every upgrade, so a
  function's body always comes from one file.
* ``sql/after/*.sql``: statements run after every definition, by every
  install and every upgrade (e.g. checking versions an older release
  recorded); each must be idempotent.
* ``plpython/prelude.py``: the per-session prelude, put into each PL/Python
  function where its body says ``@PRELUDE@``.
* ``sql/released/jobledger--<version>.sql``: the install script of each
  released version, frozen when it was released (``--freeze``), and
  ``sql/released/jobledger-<version>-python.tar.gz``: that release's Python
  package (``git archive`` of ``python/`` and the control file at the commit
  that froze the script).  An upgrade script from every release is always
  installed; a release's own install script only when asked for
  (``--releases``, ``make install RELEASES=...``), together with its package,
  so that ``CREATE EXTENSION jobledger VERSION '<old>'`` works where a DBA
  wants it (restoring a dump of that version; the upgrade tests), and no
  server offers a release it cannot run.

``jobledger--X.sql`` (install) holds every migration, then every definition.
``jobledger--W--X.sql`` (upgrade) first checks that the migrations the
database recorded are the released ones, then applies the migrations newer
than W, then every definition, then ``sql/after``.  So a fresh install and an upgraded database
run the same definitions, and the upgrade tests assert they end up equal.

The scripts carry ``@PYTHON_LIBDIR@`` until written out with ``--out``, so
the frozen copies do not depend on where a server keeps its libraries.

Standard library only: any python3 (a DBA's) runs this.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXTENSION = "jobledger"
LIBDIR_MARK = "@PYTHON_LIBDIR@"
MIGRATION_LINE = re.compile(r"^-- migration (\S+) sha256 ([0-9a-f]{64})$", re.M)
MIGRATION_FILE = re.compile(r"^[0-9]{4}_[a-z0-9_]+\.sql$")


@dataclasses.dataclass(frozen=True)
class Migration:
    """One incremental migration file; ``name`` is ``<version>/<file stem>``."""

    version: str
    name: str
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


def version_key(version: str) -> tuple[int, ...]:
    """Sort key for dotted numeric versions (0.10.0 after 0.9.0)."""
    if not re.fullmatch(r"[0-9]+(\.[0-9]+)*", version):
        raise SystemExit(f"assemble: {version!r} is not a dotted numeric version")
    return tuple(int(part) for part in version.split("."))


def current_version(root: pathlib.Path = ROOT) -> str:
    control = (root / "sql" / f"{EXTENSION}.control").read_text()
    match = re.search(r"^default_version\s*=\s*'([^']+)'", control, re.M)
    if not match:
        raise SystemExit("assemble: no default_version in the control file")
    return match.group(1)


def migrations(root: pathlib.Path = ROOT) -> list[Migration]:
    """Every migration, in the order they apply: by version, then file name."""
    version = current_version(root)
    found = []
    for directory in (root / "sql" / "migrations").iterdir():
        if version_key(directory.name) > version_key(version):
            raise SystemExit(
                f"assemble: migrations for {directory.name} but the control file says {version}"
            )
        for path in directory.iterdir():
            if not MIGRATION_FILE.match(path.name):
                raise SystemExit(f"assemble: {path} is not named NNNN_name.sql")
            found.append(Migration(directory.name, f"{directory.name}/{path.stem}", path.read_text()))
    return sorted(found, key=lambda m: (version_key(m.version), m.name))


def released_versions(root: pathlib.Path = ROOT) -> list[str]:
    names = (p.name for p in (root / "sql" / "released").glob(f"{EXTENSION}--*.sql"))
    versions = [n[len(EXTENSION) + 2 : -4] for n in names]
    return sorted(versions, key=version_key)


def frozen_script(version: str, root: pathlib.Path = ROOT) -> str:
    return (root / "sql" / "released" / f"{EXTENSION}--{version}.sql").read_text()


def _definitions(root: pathlib.Path, version: str) -> str:
    prelude = (root / "plpython" / "prelude.py").read_text().replace("@VERSION@", version)
    parts = []
    for path in sorted((root / "sql" / "objects").glob("*.sql")):
        parts.append(f"-- from sql/objects/{path.name}\n{path.read_text()}")
    for path in sorted((root / "plpython").glob("*.sql")):
        body = path.read_text()
        if "@PRELUDE@" not in body:
            raise SystemExit(f"assemble: {path} has no @PRELUDE@ line")
        parts.append(f"-- from plpython/{path.name}\n{body.replace('@PRELUDE@', prelude.rstrip())}")
    for path in sorted((root / "sql" / "after").glob("*.sql")):
        parts.append(f"-- from sql/after/{path.name}\n{path.read_text()}")
    return "\n".join(parts)


def _migration_block(migration: Migration) -> str:
    return (
        f"-- migration {migration.name} sha256 {migration.sha256}\n"
        f"{migration.text.rstrip()}\n"
        "INSERT INTO jobledger.migration (name, sha256, version)\n"
        f"    VALUES ('{migration.name}', '{migration.sha256}', '{migration.version}');\n"
    )


def _header(version: str, kind: str) -> str:
    return (
        f"-- {EXTENSION} {version}: {kind}, assembled by sql/assemble.py; do not edit.\n"
        f'\\echo Use "CREATE EXTENSION {EXTENSION}" or "ALTER EXTENSION {EXTENSION} UPDATE". \\quit\n\n'
        "-- Every name below is schema-qualified; pin the path all the same.\n"
        "SET LOCAL search_path = pg_catalog, pg_temp;\n\n"
    )


def install_script(root: pathlib.Path = ROOT) -> str:
    version = current_version(root)
    blocks = [_migration_block(m) for m in migrations(root)]
    return _header(version, "install script") + "\n".join(blocks) + "\n" + _definitions(root, version)


def _applied_check(expected: list[Migration]) -> str:
    """Refuse to upgrade a database whose recorded migrations are not released ones."""
    rows = ",\n            ".join(f"('{m.name}', '{m.sha256}')" for m in expected)
    return f"""DO $check$
DECLARE
    unexpected text;
BEGIN
    SELECT pg_catalog.string_agg(m.name, ', ' ORDER BY m.name) INTO unexpected
      FROM jobledger.migration AS m
     WHERE (m.name, m.sha256) NOT IN (VALUES
            {rows});
    IF unexpected IS NOT NULL THEN
        RAISE EXCEPTION 'jobledger: this database recorded migrations that differ from the released ones: %', unexpected
              USING ERRCODE = 'object_not_in_prerequisite_state',
                    HINT = 'A released migration was edited; restore it and add a new migration instead.';
    END IF;
END
$check$;
"""


def upgrade_script(from_version: str, root: pathlib.Path = ROOT) -> str:
    version = current_version(root)
    if version_key(from_version) >= version_key(version):
        raise SystemExit(f"assemble: cannot upgrade from {from_version} to {version}")
    everything = migrations(root)
    old = [m for m in everything if version_key(m.version) <= version_key(from_version)]
    new = [m for m in everything if version_key(m.version) > version_key(from_version)]
    blocks = [_applied_check(old)] + [_migration_block(m) for m in new]
    return (
        _header(version, f"upgrade script from {from_version}")
        + "\n".join(blocks)
        + "\n"
        + _definitions(root, version)
    )


def released_package(version: str, root: pathlib.Path = ROOT) -> pathlib.Path:
    """The frozen Python package of a released version (a tar.gz)."""
    return root / "sql" / "released" / f"{EXTENSION}-{version}-python.tar.gz"


def chosen_releases(spec: str, root: pathlib.Path = ROOT) -> list[str]:
    """The older releases ``spec`` names: ``all``, or versions separated by
    spaces or commas, or nothing."""
    version = current_version(root)
    older = [v for v in released_versions(root) if version_key(v) < version_key(version)]
    names = [n for n in re.split(r"[\s,]+", spec.strip()) if n]
    if names == ["all"]:
        return older
    unknown = [n for n in names if n not in older]
    if unknown:
        raise SystemExit(
            f"assemble: no older release {', '.join(unknown)} (released before {version}: {', '.join(older)})"
        )
    return sorted(set(names), key=version_key)


def scripts(root: pathlib.Path = ROOT, releases: list[str] | None = None) -> dict[str, str]:
    """File name -> content (with @PYTHON_LIBDIR@) to install: the current
    install script, an upgrade from every release, and the install scripts
    of ``releases`` (every older release when None)."""
    version = current_version(root)
    out = {f"{EXTENSION}--{version}.sql": install_script(root)}
    for old in released_versions(root):
        if version_key(old) < version_key(version):
            if releases is None or old in releases:
                out[f"{EXTENSION}--{old}.sql"] = frozen_script(old, root)
            out[f"{EXTENSION}--{old}--{version}.sql"] = upgrade_script(old, root)
    return out


def frozen_problems(root: pathlib.Path = ROOT) -> list[str]:
    """What breaks the rule that released SQL is never edited."""
    problems = []
    version = current_version(root)
    current = {m.name: m.sha256 for m in migrations(root)}
    for released in released_versions(root):
        for name, sha in MIGRATION_LINE.findall(frozen_script(released, root)):
            if name not in current:
                problems.append(f"migration {name} of released {released} was removed")
            elif current[name] != sha:
                problems.append(f"migration {name} of released {released} was edited")
        if released == version and frozen_script(released, root) != install_script(root):
            problems.append(
                f"the SQL of released version {version} changed: "
                "bump default_version in sql/jobledger.control and add an upgrade"
            )
    return problems


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=pathlib.Path, help="directory to write the scripts into")
    parser.add_argument("--python-libdir", help=f"replaces {LIBDIR_MARK} (with --out)")
    parser.add_argument("--list", action="store_true", help="print the paths --out would write")
    parser.add_argument("--freeze", action="store_true", help="record the current version as released")
    parser.add_argument("--check", action="store_true", help="fail if released SQL was edited")
    parser.add_argument("--releases", default="",
                        help="with --list: also the install scripts of these older releases ('all' or versions)")
    parser.add_argument("--release-versions", action="store_true",
                        help="print the older releases --releases names, one per line")
    args = parser.parse_args(argv)

    if args.release_versions:
        print("\n".join(chosen_releases(args.releases)))
        return 0
    if args.list:
        out = args.out or pathlib.Path(".")
        print("\n".join(str(out / name) for name in scripts(releases=chosen_releases(args.releases))))
        return 0
    if args.check:
        problems = frozen_problems()
        print("\n".join(problems) or "released SQL unchanged")
        return 1 if problems else 0
    if args.freeze:
        path = ROOT / "sql" / "released" / f"{EXTENSION}--{current_version()}.sql"
        path.write_text(install_script())
        print(f"froze {path.relative_to(ROOT)}")
        return 0
    if not args.out or not args.python_libdir:
        parser.error("--out and --python-libdir go together")
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in scripts().items():
        (args.out / name).write_text(text.replace(LIBDIR_MARK, args.python_libdir))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
