#!/usr/bin/env python3
"""Install jobledger's server-side Python package so that no session ever sees it half-installed.

    install_package.py install         LIBDIR VERSION SOURCE    (run by the Python plpython3u uses)
    install_package.py install-release LIBDIR VERSION TARBALL   (a release's frozen package)
    install_package.py uninstall       LIBDIR VERSION [VERSION ...]

Layout under LIBDIR (``$(pkglibdir)/jobledger``):

* ``<version>.<stamp>/``: one complete install (pip --target) of the
  package and its dependencies, never changed once complete.  Its file
  ``.in-use`` marks it complete; each session that loads the package holds a
  shared flock(2) on that file for as long as it lives (plpython/prelude.py).
* ``<version>``: a symlink to the content directory sessions load that
  version from.  It is replaced with one rename(2), so a session that looks
  it up finds the old complete directory or the new one, never neither.

After the swap the content directories no symlink names are removed, but only
those no session holds a lock on: a session imports lazily, from the
directory it resolved when it first loaded the package, until it ends.  One
still in use stays, and a later install removes it.  A plain directory
``<version>`` from an install before this layout is exchanged with the
symlink in one renameat2(RENAME_EXCHANGE) where the kernel and file system
allow it (otherwise moved aside first: a moment without the version), and
removed at once: sessions that loaded it looked it up by the name
``<version>``, which now leads to the new content.

A release's package (``install-release``) comes from its frozen archive
(``sql/released/jobledger-<version>-python.tar.gz``), installed the same way;
the install records the archive's SHA-256 in ``.source-sha256``, and the
same archive is not installed again.

Standard library only.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import hashlib
import os
import pathlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

MARK = ".in-use"
PIP = ["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-cache-dir",
       "--root-user-action=ignore", "--no-warn-script-location"]


def _say(message: str) -> None:
    print(f"install_package: {message}", file=sys.stderr)


def _exchange(a: pathlib.Path, b: pathlib.Path) -> bool:
    """Swap two names in one renameat2(RENAME_EXCHANGE); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    if ctypes.get_errno() in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()), str(b))


def _point(libdir: pathlib.Path, version: str, content: str) -> None:
    """Make ``libdir/version`` lead to ``content`` in one rename."""
    link = libdir / version
    temp = libdir / f".{version}.link-{os.getpid()}"
    temp.unlink(missing_ok=True)
    temp.symlink_to(content)
    if link.is_dir() and not link.is_symlink():
        # The layout before 0.5.0: a plain directory.
        if not _exchange(temp, link):
            aside = libdir / f".{version}.old-{os.getpid()}"
            link.rename(aside)
            temp.rename(link)
            temp = aside
        shutil.rmtree(temp)  # it now holds the old directory
        return
    os.replace(temp, link)


def _remove_unused(libdir: pathlib.Path) -> None:
    """Remove the content directories no symlink names and no session holds."""
    named = {os.readlink(entry) for entry in libdir.iterdir() if entry.is_symlink()}
    for entry in sorted(libdir.iterdir()):
        if entry.is_symlink() or not entry.is_dir() or entry.name in named:
            continue
        if entry.name.startswith(".") and ".old-" in entry.name:
            shutil.rmtree(entry, ignore_errors=True)  # left by an interrupted install
            continue
        mark = entry / MARK
        if not mark.exists():
            if entry.name.endswith(".partial") or entry.name.endswith(".new"):
                shutil.rmtree(entry, ignore_errors=True)  # an install that did not finish
            continue  # not ours (another version's plain directory)
        fd = os.open(mark, os.O_RDONLY | os.O_CLOEXEC)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                _say(f"keeping {entry.name}: sessions still use it (a later make install removes it)")
                continue
            # Renamed under the lock: a session that opened the mark before
            # and waits for its shared lock finds the directory gone and
            # looks the version up again (plpython/prelude.py).
            trash = libdir / f".{entry.name}.old-{os.getpid()}"
            entry.rename(trash)
        finally:
            os.close(fd)
        shutil.rmtree(trash, ignore_errors=True)


SOURCE_MARK = ".source-sha256"


def install(libdir: pathlib.Path, version: str, source: str, source_sha256: str | None = None) -> None:
    libdir.mkdir(parents=True, exist_ok=True)
    content = f"{version}.{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    partial = libdir / f"{content}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    subprocess.run([sys.executable, *PIP, "--target", str(partial), source], check=True)
    shutil.rmtree(partial / "bin", ignore_errors=True)
    if source_sha256:
        (partial / SOURCE_MARK).write_text(source_sha256 + "\n")
    (partial / MARK).touch()
    partial.rename(libdir / content)
    _point(libdir, version, content)
    _say(f"{libdir / version} -> {content}")
    _remove_unused(libdir)


def install_release(libdir: pathlib.Path, version: str, tarball: pathlib.Path) -> None:
    """Install a release's frozen package, unless that archive is installed."""
    sha = hashlib.sha256(tarball.read_bytes()).hexdigest()
    installed = libdir / version / SOURCE_MARK
    if installed.is_file() and installed.read_text().strip() == sha and (libdir / version / MARK).exists():
        _say(f"{libdir / version}: release {version} already installed from {tarball.name}")
        return
    with tempfile.TemporaryDirectory(prefix=f"jobledger-{version}-") as temp:
        with tarfile.open(tarball) as archive:
            top = f"jobledger-{version}/"
            members = archive.getmembers()
            bad = [m.name for m in members
                   if not (m.name + "/").startswith(top) or ".." in m.name.split("/")
                   or not (m.isfile() or m.isdir())]
            if bad:
                raise SystemExit(f"install_package: {tarball}: unexpected entries {bad[:3]}")
            archive.extractall(temp, members=members)
        source = pathlib.Path(temp) / top / "python"
        version_line = f"default_version = '{version}'"
        if version_line not in (source.parent / "sql" / "jobledger.control").read_text():
            raise SystemExit(f"install_package: {tarball} is not the package of release {version}")
        install(libdir, version, str(source), sha)


def uninstall(libdir: pathlib.Path, version: str) -> None:
    link = libdir / version
    if link.is_symlink():
        link.unlink()
    elif link.is_dir():
        shutil.rmtree(link)
    if libdir.is_dir():
        _remove_unused(libdir)


def main(argv: list[str]) -> int:
    if len(argv) == 4 and argv[0] == "install":
        install(pathlib.Path(argv[1]), argv[2], argv[3])
    elif len(argv) == 4 and argv[0] == "install-release":
        install_release(pathlib.Path(argv[1]), argv[2], pathlib.Path(argv[3]))
    elif len(argv) >= 3 and argv[0] == "uninstall":
        for version in argv[2:]:
            uninstall(pathlib.Path(argv[1]), version)
    else:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
