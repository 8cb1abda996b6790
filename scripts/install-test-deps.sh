#!/usr/bin/env bash
# Installs what the test suite needs beyond the Rust toolchain: SpatiaLite
# (Debian's libsqlite3-mod-spatialite), which catalogues load to store
# footprints as muninn does; script(1) (util-linux; Debian's bsdutils),
# which gives the progress-line test a terminal; PostgreSQL with PostGIS
# (Debian's postgresql and postgresql-15-postgis-3), which the PostgreSQL
# tests start a private cluster of (test-support/postgres); then Python
# muninn 7.5 and its PostgreSQL driver in a virtualenv under target/
# (install-python-muninn.sh), whose tools the python_muninn tests run on our
# catalogues. Installs only what is missing, and nothing when all is there.
set -euo pipefail

scripts="$(cd "$(dirname "$0")" && pwd)"

have_spatialite() {
    local candidate
    for candidate in /usr/lib/*/mod_spatialite.so /usr/lib/mod_spatialite.so /usr/local/lib/mod_spatialite.so; do
        [ -e "$candidate" ] && return 0
    done
    return 1
}

# initdb and postgres, where test-support/postgres looks for them.
postgres_bindirs() {
    if command -v pg_config >/dev/null 2>&1; then
        pg_config --bindir 2>/dev/null || true
    fi
    local dir
    for dir in /usr/lib/postgresql/*/bin; do
        [ -d "$dir" ] && echo "$dir"
    done
}

have_postgresql() {
    local dir
    while read -r dir; do
        [ -x "$dir/initdb" ] && [ -x "$dir/postgres" ] && return 0
    done < <(postgres_bindirs)
    return 1
}

have_postgis() {
    local candidate
    if command -v pg_config >/dev/null 2>&1; then
        candidate="$(pg_config --sharedir 2>/dev/null || true)/extension/postgis.control"
        [ -e "$candidate" ] && return 0
    fi
    for candidate in /usr/share/postgresql/*/extension/postgis.control; do
        [ -e "$candidate" ] && return 0
    done
    return 1
}

# Debian's packages for what is missing.
missing=()
have_spatialite || missing+=(libsqlite3-mod-spatialite)
command -v script >/dev/null 2>&1 || missing+=(bsdutils)
have_postgresql || missing+=(postgresql)
# PostGIS's package is named for a PostgreSQL major version; it is chosen
# once apt's lists are up to date (postgis_package).
have_postgis || missing+=(postgis)

# postgresql-N-postgis-3 for the PostgreSQL installed (the newest), or else
# for the one Debian's postgresql package brings (15 on Debian 12).
postgis_package() {
    local major=""
    local dir
    for dir in /usr/lib/postgresql/*/bin; do
        [ -x "$dir/postgres" ] && major="$(basename "$(dirname "$dir")")"
    done
    if [ -z "$major" ]; then
        major="$(apt-cache depends postgresql 2>/dev/null | sed -n 's/^ *Depends: postgresql-\([0-9][0-9]*\)$/\1/p' | head -n 1)"
    fi
    echo "postgresql-${major:-15}-postgis-3"
}

install_system_packages() {
    local as_root
    if [ "$(id -u)" -eq 0 ]; then
        as_root=()
    elif command -v sudo >/dev/null 2>&1; then
        as_root=(sudo)
    else
        echo "install-test-deps: missing, and not root to install them: ${missing[*]} (Debian: libsqlite3-mod-spatialite, bsdutils, postgresql, postgresql-15-postgis-3); install them as root" >&2
        exit 1
    fi

    if command -v apt-get >/dev/null 2>&1; then
        export DEBIAN_FRONTEND=noninteractive
        "${as_root[@]}" apt-get update -qq
        local packages=() package
        for package in "${missing[@]}"; do
            if [ "$package" = postgis ]; then
                packages+=("$(postgis_package)")
            else
                packages+=("$package")
            fi
        done
        echo "install-test-deps: installing ${packages[*]}" >&2
        # Debian's postgresql package also makes a cluster of its own (main,
        # port 5432, started where services start); the tests never use it:
        # each test process starts a private one (test-support/postgres).
        "${as_root[@]}" apt-get install -y -qq "${packages[@]}" >/dev/null
    else
        echo "install-test-deps: no apt-get here; install with your package manager: SpatiaLite (mod_spatialite), script(1), PostgreSQL 15 and PostGIS 3" >&2
        exit 1
    fi

    have_spatialite || { echo "install-test-deps: mod_spatialite still not found after installing" >&2; exit 1; }
    have_postgresql || { echo "install-test-deps: PostgreSQL's initdb and postgres still not found after installing" >&2; exit 1; }
    have_postgis || { echo "install-test-deps: PostGIS's postgis.control still not found after installing" >&2; exit 1; }
}

if [ "${#missing[@]}" -gt 0 ]; then
    install_system_packages
fi

"$scripts/install-python-muninn.sh"
