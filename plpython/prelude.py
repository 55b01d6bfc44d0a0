# jobledger prelude, put into every PL/Python function by sql/assemble.py.
# Once per session: put this version's package directory first on sys.path
# and check that the package found there is the one this SQL was built for.
if GD.get("jobledger.version") != "@VERSION@":
    if "jobledger.version" in GD:
        plpy.error(
            "jobledger %s is loaded in this session but the extension is now @VERSION@"
            % GD["jobledger.version"],
            detail="category: version_mismatch",
            hint="Reconnect: a session loads the jobledger package once.",
            sqlstate="55000",
        )
    import sys
    _jobledger_dir = "@PYTHON_LIBDIR@/@VERSION@"
    if _jobledger_dir not in sys.path:
        sys.path.insert(0, _jobledger_dir)
    try:
        import jobledger
        import jobledger.server
    except ImportError as _exc:
        plpy.error(
            "cannot import the jobledger @VERSION@ Python package from %s: %s" % (_jobledger_dir, _exc),
            detail="category: version_mismatch",
            hint="Run make install for jobledger @VERSION@ on the database server.",
            sqlstate="55000",
        )
    if jobledger.__version__ != "@VERSION@":
        plpy.error(
            "the jobledger package in %s is %s, not @VERSION@" % (_jobledger_dir, jobledger.__version__),
            detail="category: version_mismatch",
            hint="Run make install for jobledger @VERSION@ on the database server.",
            sqlstate="55000",
        )
    GD["jobledger.version"] = "@VERSION@"
import jobledger.server
