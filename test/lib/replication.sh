# shellcheck shell=bash
# Several throwaway clusters at once ("nodes"): a primary and its streaming
# standby, or a coordinator and its shards.  test/lib/cluster.sh runs one
# cluster and points the PG* variables at it; these helpers run any number,
# each named, and leave PG* alone.  Source test/lib/cluster.sh first.
#
#   dmf_install_deps
#   dmf_node_start primary "wal_level = replica"
#   dmf_node_standby standby primary      # pg_basebackup -R, then started
#   dmf_node_psql primary -c 'CREATE TABLE t AS SELECT 1 AS x'
#   dmf_node_wait_replay standby primary  # prints the milliseconds waited
#   dmf_node_psql standby -c 'SELECT x FROM t'
#
# Each node lives in its own directory under one temporary directory: data/,
# server.log and its unix socket (the node's host).  Nodes listen on no TCP
# port; their port numbers are the first free ones from DMF_NODE_PGPORT
# (54900), never one of another node.  All of them are stopped and deleted
# when the script exits (through dmf_at_exit), also when a test fails half
# way; DMF_KEEP_CLUSTER=1 keeps the stopped nodes' directories.
#
# As root the servers run as an unprivileged user (postgres, or dmf), as the
# throwaway cluster of test/lib/cluster.sh does.
#
# A session that stays open across several queries (one backend, so one
# model cache): dmf_session_open NAME NODE, dmf_session_query NAME SQL,
# dmf_session_close NAME.

DMF_NODES_BASE=""           # temp dir holding one directory per node
DMF_NODES_OWNER=""          # OS user that runs the servers
DMF_NODE_NAMES=()           # in order of creation
declare -gA DMF_NODE_PORT=()
declare -gA DMF_NODE_DIR=()

# Run a command as the nodes' owner, from a directory that user can read.
dmf_node__as_owner() { dmf__run_as "$DMF_NODES_BASE" "$DMF_NODES_OWNER" "$@"; }

# The base directory, the owner and the exit hook, once.
dmf_node__init() {
    [[ -n "$DMF_NODES_BASE" ]] && return 0
    dmf__use_pg_bindir || { dmf_err "pg_config not found (run dmf_install_deps)"; return 1; }
    DMF_NODES_OWNER="$(dmf__pick_owner)" || { dmf_err "could not create user dmf"; return 1; }
    DMF_NODES_BASE="$(mktemp -d "${TMPDIR:-/tmp}/dmf-nodes.XXXXXX")" || return 1
    dmf_at_exit dmf_nodes_stop_all
    if dmf__is_root; then
        chown "$DMF_NODES_OWNER" "$DMF_NODES_BASE" || return 1
    fi
}

# True when one of our nodes has the port, or anything else answers on it.
dmf_node__port_taken() {
    local port=$1 name
    for name in "${DMF_NODE_NAMES[@]}"; do
        [[ "${DMF_NODE_PORT[$name]}" == "$port" ]] && return 0
    done
    dmf__port_busy "$port"
}

dmf_node__pick_port() {
    local port=${DMF_NODE_PGPORT:-54900} tries=0
    while dmf_node__port_taken "$port"; do
        port=$((port + 1))
        tries=$((tries + 1))
        ((tries < 200)) || { dmf_err "no free port found from ${DMF_NODE_PGPORT:-54900}"; return 1; }
    done
    echo "$port"
}

# dmf_node__register NAME: a directory and a port for a new node.
dmf_node__register() {
    local name=$1 port
    [[ "$name" =~ ^[a-z][a-z0-9_]*$ ]] || { dmf_err "bad node name: $name"; return 1; }
    [[ -z "${DMF_NODE_DIR[$name]:-}" ]] || { dmf_err "node $name exists already"; return 1; }
    dmf_node__init || return 1
    port="$(dmf_node__pick_port)" || return 1
    mkdir "$DMF_NODES_BASE/$name" || return 1
    if dmf__is_root; then
        chown "$DMF_NODES_OWNER" "$DMF_NODES_BASE/$name" || return 1
    fi
    DMF_NODE_DIR[$name]="$DMF_NODES_BASE/$name"
    DMF_NODE_PORT[$name]=$port
    DMF_NODE_NAMES+=("$name")
}

# dmf_node__conf NAME [line...]: append the node's own settings; later lines win.
dmf_node__conf() {
    local name=$1 dir=${DMF_NODE_DIR[$1]} line
    shift
    {
        echo
        echo "# throwaway test node $name"
        echo "listen_addresses = ''"            # unix socket only
        echo "unix_socket_directories = '$dir'"
        echo "port = ${DMF_NODE_PORT[$name]}"
        echo "fsync = off"                     # data is thrown away anyway
        echo "log_line_prefix = '%m [%p] %q%u@%d '"
        for line in "$@"; do
            printf '%s\n' "$line"
        done
    } >>"$dir/data/postgresql.conf"
    if dmf__is_root; then
        chown "$DMF_NODES_OWNER" "$dir/data/postgresql.conf" || return 1
    fi
}

dmf_node__pg_ctl_start() {
    local name=$1 dir=${DMF_NODE_DIR[$1]}
    dmf_log "starting node $name in $dir (port ${DMF_NODE_PORT[$name]}, user $DMF_NODES_OWNER)"
    if ! dmf_node__as_owner pg_ctl -D "$dir/data" -l "$dir/server.log" -w -t 120 start >/dev/null; then
        dmf_node_log_tail "$name" 30 >&2
        dmf_err "node $name did not start"
        return 1
    fi
}

# dmf_node_start NAME [postgresql.conf line...]: initdb and start a node.
# Local connections are trusted, replication ones too (initdb's pg_hba.conf).
dmf_node_start() {
    local name=$1 dir
    shift
    dmf_node__register "$name" || return 1
    dir=${DMF_NODE_DIR[$name]}
    # C locale and UTF8: identical results whatever the machine's locale.
    dmf_node__as_owner initdb -D "$dir/data" -U postgres \
        --auth-local=trust --auth-host=reject \
        --encoding=UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1 || {
        cat "$dir/initdb.log" >&2
        dmf_err "initdb of node $name failed"
        return 1
    }
    dmf_node__conf "$name" "$@" || return 1
    dmf_node__pg_ctl_start "$name"
}

# dmf_node_standby NAME PRIMARY [postgresql.conf line...]: a streaming hot
# standby of PRIMARY, from pg_basebackup -R over PRIMARY's socket, with a
# replication slot of NAME's name (so the primary keeps the WAL it needs),
# started.
dmf_node_standby() {
    local name=$1 primary=$2 dir
    shift 2
    [[ -n "${DMF_NODE_DIR[$primary]:-}" ]] || { dmf_err "no node $primary"; return 1; }
    dmf_node__register "$name" || return 1
    dir=${DMF_NODE_DIR[$name]}
    dmf_log "base backup of node $primary into node $name"
    dmf_node__as_owner pg_basebackup -D "$dir/data" -h "${DMF_NODE_DIR[$primary]}" \
        -p "${DMF_NODE_PORT[$primary]}" -U postgres -X stream -R -C -S "$name" \
        --checkpoint=fast --no-sync >"$dir/basebackup.log" 2>&1 || {
        cat "$dir/basebackup.log" >&2
        dmf_err "pg_basebackup of node $primary failed"
        return 1
    }
    # the copied postgresql.conf has the primary's port and socket: overridden
    dmf_node__conf "$name" "hot_standby = on" "$@" || return 1
    [[ -f "$dir/data/standby.signal" ]] || { dmf_err "pg_basebackup -R wrote no standby.signal"; return 1; }
    dmf_node__pg_ctl_start "$name"
}

dmf_node_host() { printf '%s\n' "${DMF_NODE_DIR[$1]}"; }
dmf_node_port() { printf '%s\n' "${DMF_NODE_PORT[$1]}"; }

# dmf_node_psql NAME [psql argument...]: psql on the node, as postgres, in
# database postgres unless -d says otherwise; no psqlrc.
dmf_node_psql() {
    local name=$1
    shift
    [[ -n "${DMF_NODE_DIR[$name]:-}" ]] || { dmf_err "no node $name"; return 1; }
    PGHOST="${DMF_NODE_DIR[$name]}" PGPORT="${DMF_NODE_PORT[$name]}" PGUSER=postgres \
        PGDATABASE=postgres psql -X "$@"
}

# dmf_node_sql NAME [psql argument...]: the same, unaligned, tuples only, quiet,
# stopping at the first error: for queries whose output is compared.
dmf_node_sql() {
    local name=$1
    shift
    dmf_node_psql "$name" -q -A -t -v ON_ERROR_STOP=1 "$@"
}

# dmf_now_us: microseconds since the epoch (bash 5's EPOCHREALTIME, else date).
dmf_now_us() {
    if [[ -n "${EPOCHREALTIME:-}" ]]; then
        local t=${EPOCHREALTIME/[.,]/}
        echo "$((10#$t))"
    else
        echo "$(($(date +%s%N) / 1000))"
    fi
}

# dmf_node_wait_replay STANDBY PRIMARY [TIMEOUT_SECONDS]: wait until STANDBY
# has replayed PRIMARY's WAL up to its current write position (which covers
# every transaction committed so far with synchronous_commit on, the
# default); print the milliseconds waited, from before the position was
# read.  The standby polls in one statement, every millisecond, so what is
# measured beyond the replay itself is two psql runs (a few ms: call it with
# nothing to replay to see how much).
dmf_node_wait_replay() {
    local standby=$1 primary=$2 timeout=${3:-60} target start now
    start="$(dmf_now_us)"
    target="$(dmf_node_sql "$primary" -c 'SELECT pg_current_wal_lsn()')" || return 1
    dmf_node_sql "$standby" -c "DO \$\$
BEGIN
    WHILE NOT coalesce(pg_last_wal_replay_lsn() >= '$target'::pg_lsn, false) LOOP
        IF clock_timestamp() - statement_timestamp() > interval '$timeout s' THEN
            RAISE EXCEPTION 'node $standby has not replayed $primary''s WAL up to $target in $timeout s (at %)',
                pg_last_wal_replay_lsn();
        END IF;
        PERFORM pg_sleep(0.001);
    END LOOP;
END \$\$" || return 1
    now="$(dmf_now_us)"
    printf '%d.%d\n' $(((now - start) / 1000)) $(((now - start) / 100 % 10))
}

# dmf_node_log_tail NAME [LINES]: the last lines of the node's server log.
dmf_node_log_tail() {
    local name=$1 n=${2:-30} log
    log="${DMF_NODE_DIR[$name]:-}/server.log"
    [[ -f "$log" ]] || return 0
    echo "---- last $n lines of node $name's server log ($log) ----"
    tail -n "$n" "$log"
    echo "---- end of node $name's server log ----"
}

dmf_nodes_log_tail() {
    local name
    for name in "${DMF_NODE_NAMES[@]}"; do
        dmf_node_log_tail "$name" "${1:-30}"
    done
}

# dmf_node_stop NAME: stop the node (fast, else immediate, else SIGKILL).
dmf_node_stop() {
    local name=$1 data pid=""
    data="${DMF_NODE_DIR[$name]:-}/data"
    [[ -f "$data/postmaster.pid" ]] || return 0
    pid="$(head -n 1 "$data/postmaster.pid" 2>/dev/null || true)"
    if ! dmf_node__as_owner pg_ctl -D "$data" -m fast -w -t 60 stop >/dev/null 2>&1; then
        dmf_err "fast shutdown of node $name failed, trying immediate"
        dmf_node__as_owner pg_ctl -D "$data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
    fi
    if [[ -n "$pid" ]] && dmf__pid_alive "$pid"; then
        dmf_err "killing the postmaster $pid of node $name"
        kill -KILL "$pid" 2>/dev/null || true
    fi
}

# Close every session, stop every node (the last created first: standbys
# before their primary) and delete them.  Safe to call more than once.
dmf_nodes_stop_all() {
    local k name
    for name in "${!DMF_SESSION_FD[@]}"; do
        dmf_session_close "$name" || true
    done
    for ((k = ${#DMF_NODE_NAMES[@]} - 1; k >= 0; k--)); do
        dmf_node_stop "${DMF_NODE_NAMES[$k]}"
    done
    if [[ -n "$DMF_NODES_BASE" ]]; then
        if [[ "${DMF_KEEP_CLUSTER:-}" == 1 ]]; then
            dmf_log "nodes left in $DMF_NODES_BASE"
        else
            rm -rf "$DMF_NODES_BASE"
        fi
    fi
    DMF_NODES_BASE=""
    DMF_NODE_NAMES=()
    DMF_NODE_DIR=()
    DMF_NODE_PORT=()
}

# ---------------------------------------------------------------------------
# Sessions: one psql (so one backend) fed through a fifo, kept open
# ---------------------------------------------------------------------------

declare -gA DMF_SESSION_FD=()   # write end of the session's fifo
declare -gA DMF_SESSION_PID=()  # its psql
declare -gA DMF_SESSION_OUT=()  # what psql printed, errors included

# dmf_session_open NAME NODE [psql argument...]: start psql on NODE, reading
# from a fifo this shell holds open; unaligned, tuples only, ON_ERROR_STOP.
dmf_session_open() {
    local name=$1 node=$2 fifo out fd
    shift 2
    [[ -z "${DMF_SESSION_FD[$name]:-}" ]] || { dmf_err "session $name is open already"; return 1; }
    [[ -n "${DMF_NODE_DIR[$node]:-}" ]] || { dmf_err "no node $node"; return 1; }
    fifo="$DMF_NODES_BASE/session_$name.fifo"
    out="$DMF_NODES_BASE/session_$name.out"
    mkfifo "$fifo" || return 1
    : >"$out"
    # a simple command, so $! is psql itself
    PGHOST="${DMF_NODE_DIR[$node]}" PGPORT="${DMF_NODE_PORT[$node]}" PGUSER=postgres \
        PGDATABASE=postgres psql -X -q -A -t -v ON_ERROR_STOP=1 "$@" <"$fifo" >"$out" 2>&1 &
    DMF_SESSION_PID[$name]=$!
    # opening the write end lets psql's redirection (blocked until now) go on
    exec {fd}>"$fifo" || return 1
    DMF_SESSION_FD[$name]=$fd
    DMF_SESSION_OUT[$name]=$out
}

# dmf_session_query NAME SQL [TIMEOUT_SECONDS]: run SQL (one or more
# statements or meta-commands; a last statement needs no ';') in the
# session and print what it printed.
# Fails when psql has stopped (an error ends it: ON_ERROR_STOP) or the
# answer takes more than TIMEOUT_SECONDS (60).
dmf_session_query() {
    local name=$1 sql=$2 timeout=${3:-60} seq out fd begin end waited=0
    fd=${DMF_SESSION_FD[$name]:-}
    [[ -n "$fd" ]] || { dmf_err "no open session $name"; return 1; }
    out=${DMF_SESSION_OUT[$name]}
    # unique without a counter: callers often run this in $(...), a subshell
    seq="$(dmf_now_us)_${RANDOM}"
    begin="__dmf_session_${name}_begin_${seq}"
    end="__dmf_session_${name}_end_${seq}"
    # a write to a fifo nobody reads would kill this shell (SIGPIPE)
    kill -0 "${DMF_SESSION_PID[$name]}" 2>/dev/null || {
        dmf_err "session $name: its psql has ended; its output:"
        cat "$out" >&2
        return 1
    }
    # The write runs in a subshell that ignores SIGPIPE, so a psql that ends
    # meanwhile fails the write instead of killing this shell (whose EXIT
    # trap stops the nodes).  The ';' ends a last statement that has none,
    # which would otherwise stay buffered past the end marker.
    (
        trap '' PIPE
        printf '\\echo %s\n%s\n;\n\\echo %s\n' "$begin" "$sql" "$end" >&"$fd"
    ) 2>/dev/null || {
        dmf_err "session $name: its psql is gone"
        cat "$out" >&2
        return 1
    }
    # poll for the end marker: 0.02 s steps
    while ! grep -qx "$end" "$out"; do
        if ! kill -0 "${DMF_SESSION_PID[$name]}" 2>/dev/null; then
            grep -qx "$end" "$out" && break
            dmf_err "session $name: psql ended; its output:"
            sed -n "/^$begin\$/,\$p" "$out" >&2
            return 1
        fi
        if ((waited > timeout * 50)); then
            dmf_err "session $name: no answer in $timeout s"
            return 1
        fi
        sleep 0.02
        waited=$((waited + 1))
    done
    sed -n "/^$begin\$/,/^$end\$/p" "$out" | sed '1d;$d'
}

# dmf_session_close NAME: end psql (end of its input) and wait for it.
dmf_session_close() {
    local name=$1 fd pid k
    fd=${DMF_SESSION_FD[$name]:-}
    pid=${DMF_SESSION_PID[$name]:-}
    [[ -n "$fd" ]] && exec {fd}>&-
    if [[ -n "$pid" ]]; then
        for ((k = 0; k < 100; k++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -f "$DMF_NODES_BASE/session_$name.fifo"
    unset "DMF_SESSION_FD[$name]" "DMF_SESSION_PID[$name]" "DMF_SESSION_OUT[$name]"
}

# dmf_nodes_need_dmf: the nodes run the server's installed dmf (test/check.sh
# has installed the working tree's); when it is not installed at all, build
# and install it, as dmf_use_server would.  Prints the installed version.
dmf_nodes_need_dmf() {
    local pgc control
    pgc="$(dmf_pg_config)" || { dmf_err "pg_config not found (run dmf_install_deps)"; return 1; }
    control="$("$pgc" --sharedir)/extension/dmf.control"
    if [[ ! -f "$control" || ! -f "$("$pgc" --pkglibdir)/dmf.so" ]]; then
        if [[ "${DMF_USE_EXISTING:-}" == 1 ]]; then
            dmf_err "dmf is not installed in $("$pgc" --pkglibdir)"
            return 1
        fi
        # stdout is the version: the build talks on stderr
        dmf_build_install >&2 || return 1
    fi
    sed -n "s/^default_version = '\(.*\)'/\1/p" "$control"
}
