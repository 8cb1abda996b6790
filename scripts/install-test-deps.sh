#!/usr/bin/env bash
# Installs what the test suite needs beyond the Rust toolchain: SpatiaLite
# (Debian's libsqlite3-mod-spatialite), which catalogues load to store
# footprints as muninn does, and script(1) (util-linux; Debian's bsdutils),
# which gives the progress-line test a terminal; then Python muninn 7.5 in a
# virtualenv under target/ (install-python-muninn.sh), whose tools the
# python_muninn tests run on our catalogues. Does nothing when all are
# already installed.
set -euo pipefail

scripts="$(cd "$(dirname "$0")" && pwd)"

have_spatialite() {
    local candidate
    for candidate in /usr/lib/*/mod_spatialite.so /usr/lib/mod_spatialite.so /usr/local/lib/mod_spatialite.so; do
        [ -e "$candidate" ] && return 0
    done
    return 1
}

install_system_packages() {
    local as_root
    if [ "$(id -u)" -eq 0 ]; then
        as_root=()
    elif command -v sudo >/dev/null 2>&1; then
        as_root=(sudo)
    else
        echo "install-test-deps: mod_spatialite or script is missing; install libsqlite3-mod-spatialite and bsdutils as root" >&2
        exit 1
    fi

    if command -v apt-get >/dev/null 2>&1; then
        export DEBIAN_FRONTEND=noninteractive
        "${as_root[@]}" apt-get update -qq
        "${as_root[@]}" apt-get install -y -qq libsqlite3-mod-spatialite bsdutils >/dev/null
    else
        echo "install-test-deps: no apt-get here; install SpatiaLite (mod_spatialite) with your package manager" >&2
        exit 1
    fi

    have_spatialite || { echo "install-test-deps: mod_spatialite still not found after installing" >&2; exit 1; }
}

if ! have_spatialite || ! command -v script >/dev/null 2>&1; then
    install_system_packages
fi

"$scripts/install-python-muninn.sh"
