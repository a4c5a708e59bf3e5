# deps.sh: installs what belt needs to build and test on Debian/Ubuntu.
# Sourced by scripts/test and scripts/quickstart; defines belt_install_deps.
#
# belt_install_deps [extra packages...]: checks each package with dpkg -s and,
# only if some are missing, runs `apt-get update` once and installs them
# (through sudo when not root).  Does nothing on a machine that has them all;
# on a system without dpkg it only warns, and configure reports what's missing.

# jq: the CLI tests read result lines with it.  clang and libclang-rt-dev:
# the libFuzzer run of the config parser.  libhiredis-dev, redis-server,
# redis-tools: the Redis broker (belt worker, run --broker) and its tests;
# libssl-dev: OpenSSL's libcrypto, which signs the broker's jobs and results.
# gnuplot-nox: the plots of `belt experiment` (optional at run time).
# parallel: GNU parallel, the reference tests/cli/parallel_compat.sh runs
# every `belt run COMMAND` case against.
BELT_DEPS="build-essential autoconf automake libtool pkg-config check libjansson-dev jq clang libclang-rt-dev libhiredis-dev libssl-dev redis-server redis-tools gnuplot-nox parallel"

belt_install_deps() {
    local pkg missing=() sudo=()
    if ! command -v dpkg >/dev/null 2>&1; then
        echo "deps: no dpkg here; install by hand: $BELT_DEPS $*" >&2
        return 0
    fi
    for pkg in $BELT_DEPS "$@"; do
        if ! dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed'; then
            missing+=("$pkg")
        fi
    done
    if [ ${#missing[@]} -eq 0 ]; then
        return 0
    fi
    if [ "$(id -u)" -ne 0 ]; then
        if ! command -v sudo >/dev/null 2>&1; then
            echo "deps: missing ${missing[*]}, and not root and no sudo" >&2
            return 1
        fi
        sudo=(sudo)
    fi
    echo "deps: installing ${missing[*]}"
    "${sudo[@]}" apt-get update -q
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
}
