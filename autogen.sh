#!/bin/sh
# autogen.sh: generate configure and the Makefile.in files from configure.ac
# and Makefile.am.  Run it once after a fresh clone (scripts/test and
# scripts/quickstart do); afterwards `make` reruns the autotools by itself
# when configure.ac or Makefile.am change.  Two runs at once in one tree would
# delete each other's files, so a run waits for any other (flock).
set -e
cd "$(dirname "$0")"
if command -v flock >/dev/null 2>&1; then
    exec 9>.autogen.lock
    flock 9
fi
mkdir -p m4 build-aux
autoreconf --force --install --verbose "$@"
