#!/usr/bin/env bash
# Installs Python muninn, the tool muninn-sync replaces, into a virtualenv at
# target/python-muninn/venv, for the tests that run muninn's own tools on our
# catalogues (tests/tests/python_muninn.rs), with the PostgreSQL driver its
# postgresql backend uses by default: psycopg 3 (muninn 7.5's `library`
# option defaults to "psycopg"), as the binary wheel, which brings its own
# libpq. Under target/, so that a clean clone gets a fresh one and git
# ignores it. Does nothing when the pinned versions are already there.
#
# The virtualenv is made from Debian's python3 (/usr/bin/python3, with
# python3-venv), not whatever python3 comes first on PATH: muninn loads
# SpatiaLite into Python's sqlite3 module, and a Python built without
# loadable SQLite extensions (pyenv's default build) cannot.
set -euo pipefail

MUNINN_VERSION=7.5.0
PSYCOPG_VERSION=3.3.9

root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/target/python-muninn/venv"
python="${MUNINN_TEST_PYTHON:-/usr/bin/python3}"

muninn_installed() {
    [ -x "$venv/bin/muninn-search" ] &&
        "$venv/bin/python" -c "import muninn, sys; sys.exit(muninn.__version__ != '$MUNINN_VERSION')" 2>/dev/null
}

# psycopg with its binary implementation (psycopg-binary), not the pure
# Python one that would need the system's libpq.
driver_installed() {
    "$venv/bin/python" -c "import psycopg, sys; sys.exit(psycopg.__version__ != '$PSYCOPG_VERSION' or psycopg.pq.__impl__ != 'binary')" 2>/dev/null
}

pip_install() {
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
}

if muninn_installed; then
    if ! driver_installed; then
        pip_install "psycopg[binary]==$PSYCOPG_VERSION"
        driver_installed || { echo "install-python-muninn: psycopg $PSYCOPG_VERSION (binary) is still not importable from $venv" >&2; exit 1; }
    fi
    exit 0
fi

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        echo "install-python-muninn: run as root, or install $* yourself" >&2
        exit 1
    fi
}

# Debian's python3 with its venv module (ensurepip).
if ! [ -x "$python" ] || ! "$python" -c "import ensurepip, venv" 2>/dev/null; then
    if command -v apt-get >/dev/null 2>&1; then
        export DEBIAN_FRONTEND=noninteractive
        as_root apt-get update -qq
        as_root apt-get install -y -qq python3 python3-venv >/dev/null
    else
        echo "install-python-muninn: $python with its venv module is needed (Debian: python3-venv); set MUNINN_TEST_PYTHON to another python3" >&2
        exit 1
    fi
fi

if ! "$python" -c "import sqlite3; sqlite3.connect(':memory:').enable_load_extension" 2>/dev/null; then
    echo "install-python-muninn: $python's sqlite3 cannot load extensions, which muninn needs for SpatiaLite; set MUNINN_TEST_PYTHON to a python3 that can (Debian's /usr/bin/python3 can)" >&2
    exit 1
fi

rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
"$python" -m venv "$venv"
pip_install "muninn==$MUNINN_VERSION" "psycopg[binary]==$PSYCOPG_VERSION"

muninn_installed || { echo "install-python-muninn: muninn $MUNINN_VERSION is still not importable from $venv" >&2; exit 1; }
driver_installed || { echo "install-python-muninn: psycopg $PSYCOPG_VERSION (binary) is still not importable from $venv" >&2; exit 1; }
