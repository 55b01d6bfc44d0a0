# jobledger prelude, put into every PL/Python function by sql/assemble.py.
# Once per session: put this version's package directory first on sys.path
# and check that the package found there is the one this SQL was built for.
# Problems are returned as error outcomes (see jobledger.server), which the
# calling SQL function raises; the package may not be importable to help.
if GD.get("jobledger.version") != "@VERSION@":
    import json

    def _jobledger_mismatch(message, hint):
        return json.dumps({"error": {"message": message, "sqlstate": "55000",
                                     "detail": "category: version_mismatch", "hint": hint}})

    if "jobledger.version" in GD:
        return _jobledger_mismatch(
            "jobledger %s is loaded in this session but the extension is now @VERSION@"
            % GD["jobledger.version"],
            "Reconnect: a session loads the jobledger package once.",
        )
    import sys
    _jobledger_dir = "@PYTHON_LIBDIR@/@VERSION@"
    if _jobledger_dir not in sys.path:
        sys.path.insert(0, _jobledger_dir)
    try:
        import jobledger
        import jobledger.server
    except ImportError as _exc:
        return _jobledger_mismatch(
            "cannot import the jobledger @VERSION@ Python package from %s: %s" % (_jobledger_dir, _exc),
            "Run make install for jobledger @VERSION@ on the database server.",
        )
    if jobledger.__version__ != "@VERSION@":
        return _jobledger_mismatch(
            "the jobledger package in %s is %s, not @VERSION@" % (_jobledger_dir, jobledger.__version__),
            "Run make install for jobledger @VERSION@ on the database server.",
        )
    GD["jobledger.version"] = "@VERSION@"
import jobledger.server
