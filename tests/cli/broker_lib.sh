# tests/cli/broker_lib.sh: helpers that the broker's CLI tests share
# (broker.sh, broker_chaos.sh), sourced after lib.sh.  Not a test itself.
# They use $T (lib.sh), $BELT, and $PORT / $URL once the caller set them.

# free_port: prints a TCP port nobody listens on now (python3 when there is
# one, else a random one that redis-cli cannot reach).
free_port() {
    if command -v python3 >/dev/null 2>&1 &&
       python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null; then
        return 0
    fi
    local p
    while :; do
        p=$((20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 40000))
        if ! redis-cli -p "$p" ping >/dev/null 2>&1; then
            echo "$p"
            return 0
        fi
    done
}

# redis_start DIR PORT [ARGS...]: starts redis-server in DIR on 127.0.0.1:PORT
# with AOF (appendfsync always), pid in $rpid; waits until it answers.
redis_start() {
    local dir=$1 port=$2
    shift 2
    mkdir -p "$dir"
    redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --save '' \
        --appendonly yes --appendfsync always --daemonize no \
        --logfile "$dir/redis.log" "$@" &
    rpid=$!
    t_bg_pids="$t_bg_pids $rpid"
    wait_for redis_up "$port" "$@"
}

# redis_up PORT [ARGS]: true when the server answers (with --requirepass
# in ARGS, an auth error counts as an answer).
redis_up() {
    local out
    out=$(redis-cli -p "$1" ping 2>&1) || return 1
    case "$out" in PONG|*NOAUTH*|*"Authentication required"*) return 0 ;; esac
    return 1
}

# rc_ CMD...: redis-cli on the main server.
rc_() {
    redis-cli -p "$PORT" "$@"
}

# worker NAME ARGS...: starts `belt worker` in the background, pid in
# $T/NAME.pid, output in $T/NAME.log.  Not under `timeout`: signals go to
# belt itself, and lib.sh's trap kills belt itself (a killed wrapper would
# leave it running).
worker() {
    local name=$1
    shift
    "$BELT" worker --broker "$URL" "$@" >"$T/$name.log" 2>&1 &
    echo $! >"$T/$name.pid"
    t_bg_pids="$t_bg_pids $!"
}

# stop_workers NAME...: SIGTERM, then waits for them (bounded by the
# timeout wrapping each).
stop_workers() {
    local n p
    for n in "$@"; do
        p=$(cat "$T/$n.pid")
        kill -TERM "$p" 2>/dev/null
    done
    for n in "$@"; do
        p=$(cat "$T/$n.pid")
        wait "$p" 2>/dev/null
    done
}


# need_redis: skips the test (77) when redis-server or redis-cli is missing
# (scripts/deps.sh installs them).
need_redis() {
    if ! command -v redis-server >/dev/null 2>&1 ||
       ! command -v redis-cli >/dev/null 2>&1; then
        echo "$(basename "$0"): redis-server/redis-cli not installed (apt-get install redis-server redis-tools); skipping"
        echo "0 passed, 0 failed"
        exit 77
    fi
}
