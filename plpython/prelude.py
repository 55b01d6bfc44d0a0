# jobledger prelude, put into every PL/Python function by sql/assemble.py.
# Once per session (and again after ALTER EXTENSION jobledger UPDATE): load
# this version's package and check it is the one this SQL was built for.
#
# @PYTHON_LIBDIR@/@VERSION@ is a symlink to a complete install that make
# install replaces in one rename (plpython/install_package.py).  The session
# resolves it once, puts that content directory on sys.path (imports are
# lazy: every later import of the session comes from the same install) and
# holds a shared lock on its .in-use file until the session ends, so make
# install does not remove it under the session.
#
# A session that loaded another version (a pooled connection across ALTER
# EXTENSION UPDATE) drops it first: the modules loaded from that version's
# directory leave sys.modules, the directory leaves sys.path, its lock is
# released.  Problems are returned as error outcomes (see jobledger.server),
# which the calling SQL function raises; the package may not be importable.
if GD.get("jobledger.version") != "@VERSION@":
    import fcntl
    import json
    import os
    import sys
    import time

    def _jobledger_mismatch(message, hint):
        return json.dumps({"error": {"message": message, "sqlstate": "55000",
                                     "detail": "category: version_mismatch", "hint": hint}})

    if "jobledger.version" in GD:
        _jobledger_old = GD.pop("jobledger.version")
        # 0.4.0 and earlier put the version's directory itself on sys.path.
        _jobledger_old_dir = GD.pop("jobledger.path", None) or "@PYTHON_LIBDIR@/" + _jobledger_old
        _jobledger_roots = {_jobledger_old_dir, os.path.realpath(_jobledger_old_dir)}
        # And wherever the old package itself was found.
        _file = getattr(sys.modules.get("jobledger"), "__file__", None)
        if _file:
            _jobledger_roots.add(os.path.dirname(os.path.dirname(_file)))
        _jobledger_roots = tuple(root.rstrip("/") + "/" for root in _jobledger_roots)
        for _name, _module in list(sys.modules.items()):
            _file = getattr(_module, "__file__", None) or ""
            _paths = list(getattr(_module, "__path__", None) or [])
            if (_name == "jobledger" or _name.startswith("jobledger.")
                    or _file.startswith(_jobledger_roots)
                    or any(str(_p).startswith(_jobledger_roots) for _p in _paths)):
                del sys.modules[_name]
        sys.path[:] = [_p for _p in sys.path if _p.rstrip("/") + "/" not in _jobledger_roots]
        for _p in list(sys.path_importer_cache):
            if str(_p).startswith(_jobledger_roots):
                del sys.path_importer_cache[_p]
        if GD.get("jobledger.lock") is not None:
            os.close(GD.pop("jobledger.lock"))
        import importlib
        importlib.invalidate_caches()
        GD["jobledger.reloaded_from"] = _jobledger_old
    _jobledger_link = "@PYTHON_LIBDIR@/@VERSION@"
    _jobledger_dir, _jobledger_lock = _jobledger_link, None
    for _attempt in range(50):
        _jobledger_dir = os.path.realpath(_jobledger_link)
        _mark = os.path.join(_jobledger_dir, ".in-use")
        try:
            _jobledger_lock = os.open(_mark, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            if os.path.islink(_jobledger_link) or not os.path.isdir(_jobledger_dir):
                time.sleep(0.01)  # replaced meanwhile, or not installed: look again
                continue
            break  # a plain directory (installed before this layout): nothing to lock
        fcntl.flock(_jobledger_lock, fcntl.LOCK_SH)
        try:
            if os.path.samestat(os.fstat(_jobledger_lock), os.stat(_mark)):
                break  # still in place: make install keeps it while we hold the lock
        except FileNotFoundError:
            pass
        os.close(_jobledger_lock)  # removed by make install meanwhile: look again
        _jobledger_lock = None
    if _jobledger_dir not in sys.path:
        sys.path.insert(0, _jobledger_dir)
    try:
        import jobledger
        import jobledger.server
        _jobledger_problem = None
        if jobledger.__version__ != "@VERSION@":
            _jobledger_problem = "the jobledger package in %s is %s, not @VERSION@" % (
                _jobledger_dir, jobledger.__version__)
    except ImportError as _exc:
        _jobledger_problem = "cannot import the jobledger @VERSION@ Python package from %s: %s" % (
            _jobledger_dir, _exc)
    if _jobledger_problem is not None:
        sys.path[:] = [_p for _p in sys.path if _p != _jobledger_dir]
        for _name in [_n for _n in sys.modules if _n == "jobledger" or _n.startswith("jobledger.")]:
            del sys.modules[_name]
        if _jobledger_lock is not None:
            os.close(_jobledger_lock)
        return _jobledger_mismatch(
            _jobledger_problem,
            "Run make install for jobledger @VERSION@ on the database server."
            + (" This session loaded jobledger %s before the update; if this keeps failing after"
               " make install, reconnect." % GD["jobledger.reloaded_from"]
               if "jobledger.reloaded_from" in GD else ""),
        )
    GD["jobledger.path"] = _jobledger_dir
    GD["jobledger.lock"] = _jobledger_lock
    GD["jobledger.version"] = "@VERSION@"
import jobledger.server
