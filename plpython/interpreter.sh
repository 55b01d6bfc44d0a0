#!/bin/sh
# Prints the Python interpreter that plpython3u is linked against: the one
# whose libpython is the library plpython3.so loads.  `make install` installs
# the jobledger package with it, so compiled dependencies match the server.
#   usage: plpython/interpreter.sh [PG_CONFIG]
set -eu
pg_config=${1:-pg_config}
so=$("$pg_config" --pkglibdir)/plpython3.so
[ -f "$so" ] || { echo "no $so: install postgresql-plpython3-<major>" >&2; exit 1; }
lib=$(ldd "$so" | sed -nE 's/^[[:space:]]*(libpython3\.[0-9]+[^ ]*) => ([^ ]+).*/\2/p' | head -n 1)
[ -n "$lib" ] || { echo "$so does not link a libpython3" >&2; exit 1; }
lib=$(readlink -f "$lib")
name=$(basename "$lib" | sed -E 's/^lib(python3\.[0-9]+).*/\1/')
libdir=$(dirname "$lib")
for candidate in "$libdir/../bin/$name" "$libdir/../../bin/$name" "/usr/bin/$name" "/usr/local/bin/$name"; do
    [ -x "$candidate" ] || continue
    linked=$("$candidate" -c 'import os, sysconfig as s; print(os.path.realpath(os.path.join(s.get_config_var("LIBDIR") or "", s.get_config_var("INSTSONAME") or "")))' 2>/dev/null) || continue
    if [ "$linked" = "$lib" ]; then
        readlink -f "$candidate"
        exit 0
    fi
done
echo "cannot find the $name interpreter built with $lib; set PLPYTHON" >&2
exit 1
