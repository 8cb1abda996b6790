#!/usr/bin/env bash
# Installs the Python side of `muninn-sync-bench --stac N` into a virtualenv
# at target/python-bench/venv: pystac-client (the anchor: the same search,
# merely paged) and stac-fastapi-geoparquet under uvicorn (the STAC server
# both read), with rustac, which writes the bench's items as stac-geoparquet
# (bench/python-stac/). Under target/, so that a clean clone gets a fresh one
# and git ignores it. Does nothing when the pinned versions are already there.
#
# stac-fastapi-geoparquet 0.0.7 imports stac_fastapi.extensions.core, which
# stac-fastapi 6 moved: its stac-fastapi packages are pinned to 5.2. Pinned
# from the start, since a downgrade by pip leaves the newer layout's files behind.
#
# The server queries the file with DuckDB (through rustac), which downloads
# its spatial, icu and parquet extensions at start unless they are there:
# they come from PyPI as duckdb-ext-* packages built for the DuckDB that
# rustac 0.9.4 embeds (v1.4.4), and serve_geoparquet.py loads them from the
# virtualenv, so that the server starts without any other download.
set -euo pipefail

PYSTAC_CLIENT_VERSION=0.9.1
GEOPARQUET_SERVER_VERSION=0.0.7
STAC_FASTAPI_VERSION=5.2.1
RUSTAC_VERSION=0.9.4
DUCKDB_EXTENSIONS_VERSION=1.4.4.20260205
UVICORN_VERSION=0.55.0
# Later FastAPI refuses the keyword arguments stac-fastapi 5.2 passes it.
FASTAPI_VERSION=0.116.1

root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/target/python-bench/venv"
python="${MUNINN_BENCH_PYTHON:-/usr/bin/python3}"

installed() {
    "$venv/bin/python" - <<EOF 2>/dev/null
import importlib.metadata as m, sys
want = {
    "pystac-client": "$PYSTAC_CLIENT_VERSION",
    "stac-fastapi-geoparquet": "$GEOPARQUET_SERVER_VERSION",
    "stac-fastapi-api": "$STAC_FASTAPI_VERSION",
    "stac-fastapi-extensions": "$STAC_FASTAPI_VERSION",
    "stac-fastapi-types": "$STAC_FASTAPI_VERSION",
    "rustac": "$RUSTAC_VERSION",
    "uvicorn": "$UVICORN_VERSION",
    "fastapi": "$FASTAPI_VERSION",
    **{f"duckdb-ext-{e}": "$DUCKDB_EXTENSIONS_VERSION" for e in ("spatial", "icu", "parquet", "json")},
}
if any(m.version(name) != version for name, version in want.items()):
    sys.exit(1)
import pystac_client, rustac, stac_fastapi.geoparquet.api, uvicorn
EOF
}

if [ -x "$venv/bin/python" ] && installed; then
    exit 0
fi

if ! "$python" -c "import venv, ensurepip" 2>/dev/null; then
    echo "install-bench-python: $python cannot make a virtualenv (on Debian: apt-get install python3-venv)" >&2
    exit 1
fi
# A fresh virtualenv: one left by another set of versions may hold files
# a downgrade does not remove.
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "pystac-client==$PYSTAC_CLIENT_VERSION" \
    "stac-fastapi-geoparquet==$GEOPARQUET_SERVER_VERSION" \
    "stac-fastapi-api==$STAC_FASTAPI_VERSION" \
    "stac-fastapi-extensions==$STAC_FASTAPI_VERSION" \
    "stac-fastapi-types==$STAC_FASTAPI_VERSION" \
    "rustac==$RUSTAC_VERSION" \
    "uvicorn==$UVICORN_VERSION" \
    "fastapi==$FASTAPI_VERSION" \
    "duckdb-ext-spatial==$DUCKDB_EXTENSIONS_VERSION" \
    "duckdb-ext-icu==$DUCKDB_EXTENSIONS_VERSION" \
    "duckdb-ext-parquet==$DUCKDB_EXTENSIONS_VERSION" \
    "duckdb-ext-json==$DUCKDB_EXTENSIONS_VERSION"
installed || { echo "install-bench-python: the pinned packages are still not all in $venv" >&2; exit 1; }
echo "install-bench-python: installed into $venv"
