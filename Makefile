# jobledger: PGXS build and install of the extension and its Python package,
# plus the developer targets (test, demo, bench).
#
#   make install PG_CONFIG=/path/to/pg_config   (as a user who may write the
#                                                server's share and lib dirs)
#   make uninstall
#   make test                                   (fresh Debian, as root)

PG_CONFIG ?= pg_config
# Recipes (devenv.sh, the tests, the benchmarks) use the same server.
export PG_CONFIG
PGXS := $(shell $(PG_CONFIG) --pgxs)

# The one version source is sql/jobledger.control.
EXTVERSION := $(shell sed -n "s/^default_version *= *'\([^']*\)'.*/\1/p" sql/jobledger.control)
PKGLIBDIR := $(shell $(PG_CONFIG) --pkglibdir)

# The Python package and its server-side dependencies live in a directory
# the extension owns: <version> is a symlink to a complete install, swapped in
# one rename by plpython/install_package.py, so that no session sees a
# half-installed package, and sessions still on the old version keep working
# until ALTER EXTENSION ... UPDATE.
PYTHON_LIBDIR ?= $(PKGLIBDIR)/jobledger
# The interpreter plpython3u is linked against (see plpython/interpreter.sh).
PLPYTHON ?= $(shell plpython/interpreter.sh $(PG_CONFIG))

# Install and upgrade scripts are assembled from sql/migrations, sql/objects
# and plpython/ by sql/assemble.py (stdlib only; any python3 runs it).
ASSEMBLE = python3 sql/assemble.py
# Older releases to offer too (`all`, or e.g. RELEASES=0.4.0): their frozen
# install scripts and their Python packages (sql/released/), so that
# CREATE EXTENSION jobledger VERSION '<old>' works, e.g. to restore a dump of
# that version (README, "Restoring a dump of an older version").  Upgrade
# scripts from every release are always installed.
RELEASES ?=
RELEASE_VERSIONS := $(shell $(ASSEMBLE) --release-versions --releases '$(RELEASES)')
ifneq ($(.SHELLSTATUS),0)
$(error RELEASES='$(RELEASES)': $(shell $(ASSEMBLE) --release-versions --releases '$(RELEASES)' 2>&1))
endif
BUILT_SCRIPTS := $(shell $(ASSEMBLE) --list --out build --releases '$(RELEASES)' 2>/dev/null)
SQL_SOURCES := sql/jobledger.control sql/assemble.py $(wildcard sql/migrations/*/*.sql sql/objects/*.sql sql/after/*.sql sql/released/*.sql plpython/*.sql plpython/*.py)

MODULEDIR = extension
DATA = sql/jobledger.control
DATA_built = $(BUILT_SCRIPTS)
EXTRA_CLEAN = build

include $(PGXS)

ifeq ($(EXTVERSION),)
$(error cannot read default_version from sql/jobledger.control)
endif

$(BUILT_SCRIPTS): build/.assembled
	@:

build/.assembled: $(SQL_SOURCES)
	$(ASSEMBLE) --out build --python-libdir '$(PYTHON_LIBDIR)'
	@touch $@

# PGXS's install copies DATA and DATA_built; this adds the Python package.
install: install-python
uninstall: uninstall-python

.PHONY: install-python uninstall-python
install-python:
	@test -n '$(PLPYTHON)' || { echo "cannot find the Python plpython3u uses: install postgresql-plpython3-<major> or set PLPYTHON" >&2; exit 1; }
	@$(PLPYTHON) -m pip --version >/dev/null 2>&1 || { echo "$(PLPYTHON) has no pip: install python3-pip" >&2; exit 1; }
	$(PLPYTHON) plpython/install_package.py install '$(DESTDIR)$(PYTHON_LIBDIR)' '$(EXTVERSION)' ./python
	@for v in $(RELEASE_VERSIONS); do \
		$(PLPYTHON) plpython/install_package.py install-release '$(DESTDIR)$(PYTHON_LIBDIR)' "$$v" "sql/released/jobledger-$$v-python.tar.gz" || exit 1; \
	done

uninstall-python:
	python3 plpython/install_package.py uninstall '$(DESTDIR)$(PYTHON_LIBDIR)' '$(EXTVERSION)' $(RELEASE_VERSIONS)
	-rmdir '$(DESTDIR)$(PYTHON_LIBDIR)' 2>/dev/null

# ---- developer targets --------------------------------------------------

VENV = .venv
# What pytest runs: the whole suite, or e.g. PYTEST_ARGS="tests/unit -k template".
PYTEST_ARGS ?= tests
DEVENV = tests/devenv.sh

.PHONY: deps db-start db-stop test
deps:
	$(DEVENV) deps

db-start: deps
	$(DEVENV) start

db-stop:
	$(DEVENV) stop

# Installs what is missing, starts the private cluster (unless PG* names a
# server), installs the extension (with every older release, which the
# upgrade and restore tests start from) into the server of PG_CONFIG, runs
# pytest.
test: deps
	$(MAKE) --no-print-directory install RELEASES=all
	$(DEVENV) start
	env $$($(DEVENV) env) $(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# Benchmarks (bench/bench_*.py) against the private cluster; JSON to stdout
# and build/bench.json.  BENCH=submit runs only those whose name has "submit".
BENCH ?=
.PHONY: bench
bench: deps
	$(MAKE) --no-print-directory install
	$(DEVENV) start
	env $$($(DEVENV) env) $(VENV)/bin/python bench/run.py $(BENCH)

# The demo: the private cluster with jobledger installed, a fresh database
# with sample data and jobs, runs submitted and drained by `jobledger runner`,
# then the ledger (demo/demo.sh; re-running starts the demo database over).
DEMO_DB = jobledger_demo
.PHONY: demo
demo: deps
	$(MAKE) --no-print-directory install
	$(DEVENV) start
	env $$($(DEVENV) env) DEMO_DB=$(DEMO_DB) demo/demo.sh
