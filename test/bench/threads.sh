#!/usr/bin/env bash
# Epoch time of dmf_train by thread count, and how the work spreads over the
# threads.  Builds the working tree into a private copy of PostgreSQL
# (test/lib/private_tree.sh, so the system's dmf is never touched), loads a
# ratings file, then for each thread count trains with the default options
# and a fixed number of epochs and prints the median epoch (dmf_info's
# history; the first epoch left out).  For the largest count it also samples
# /proc/<backend>/task/*/stat while the training runs: the CPU time (utime +
# stime) each thread gets over the window, and how many threads had at
# least half of an even share of it.
#
#   test/bench/threads.sh [--data FILE] [--threads "1 2 8"] [--epochs N]
#                         [--options JSON] [--window SECONDS]
#
# FILE: a CSV user_id,item_id,rating[,...] with a header (MovieLens-1M as
# ../shared/data/ml-1m/ratings.csv by default).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=../lib/cluster.sh
source "$here/../lib/cluster.sh"
# shellcheck source-path=SCRIPTDIR source=../lib/private_tree.sh
source "$here/../lib/private_tree.sh"

data="${DMF_BENCH_DATA:-$DMF_ROOT/../shared/data/ml-1m/ratings.csv}"
thread_counts="1 2 8"
epochs=6
options='{}'
window=5
while (($# > 0)); do
    case $1 in
        --data) data=$2; shift 2 ;;
        --threads) thread_counts=$2; shift 2 ;;
        --epochs) epochs=$2; shift 2 ;;
        --options) options=$2; shift 2 ;;
        --window) window=$2; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
[[ -f "$data" ]] || { echo "no ratings file $data" >&2; exit 2; }

root="$(mktemp -d)"
dmf_at_exit "dmf_cluster_stop; rm -rf '$root'"
dmf_private_tree "$root"
dmf_private_source "$root/src"
dmf_private_install "$root/src" "$root" >"$root/build.log" 2>&1 || { cat "$root/build.log"; exit 1; }
dmf_private_cluster_start "$root" "jit = off" >/dev/null

psql -X -q -v ON_ERROR_STOP=1 -d postgres <<SQL
CREATE EXTENSION dmf;
CREATE TABLE ratings (user_id bigint, item_id bigint, rating real);
\copy ratings FROM PROGRAM 'cut -d, -f1-3 "$data"' WITH (FORMAT csv, HEADER true)
CREATE TABLE runs (threads int, model bytea);
SQL

echo "data: $data ($(psql -X -A -t -q -d postgres -c 'SELECT count(*) FROM ratings') ratings)"
echo "CPU: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1); cores: $(nproc)"
echo "options: $options, \"epochs\": $epochs; load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"

# utime + stime of each thread of PID, in clock ticks: "tid ticks" lines
thread_ticks() {
    local t
    for t in /proc/"$1"/task/*/stat; do
        awk -v tid="$(basename "$(dirname "$t")")" '{ sub(/^.*\) /, ""); print tid, $12 + $13 }' "$t" 2>/dev/null || true
    done
}

last=${thread_counts##* }
for n in $thread_counts; do
    opts=$(python3 -c 'import json,sys; o=json.loads(sys.argv[1]); o.update({"threads": int(sys.argv[2]), "epochs": int(sys.argv[3]), "patience": 1000}); print(json.dumps(o))' "$options" "$n" "$epochs")
    psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "SET dmf.max_threads = 64" \
        -c "SET application_name = 'dmf_threads_$n'" \
        -c "INSERT INTO runs SELECT $n, dmf_train('ratings', options => '$opts')" &
    bg=$!
    if [[ $n == "$last" ]]; then
        pid=""
        for _ in $(seq 1 300); do
            pid=$(psql -X -A -t -q -d postgres -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'dmf_threads_$n' AND state = 'active'")
            [[ -n "$pid" ]] && break
            sleep 0.1
        done
        # past the loading, into the epochs
        sleep 6
        thread_ticks "$pid" | sort >"$root/before"
        sleep "$window"
        thread_ticks "$pid" | sort >"$root/after"
        join "$root/before" "$root/after" | awk -v n="$n" -v w="$window" '
            { d[NR] = $3 - $2; total += d[NR]; k = NR }
            END {
                share = total / n; busy = 0; line = ""
                for (i = 1; i <= k; i++) { if (d[i] >= share / 2) busy++; line = line " " d[i] }
                printf "threads %d: %d threads in the backend, CPU ticks over %d s:%s (total %d); %d of them at least half of an even share of %d threads\n", n, k, w, line, total, busy, n
            }'
    fi
    wait "$bg"
done

psql -X -A -t -F ' ' -q -d postgres <<'SQL'
SELECT 'threads ' || threads || ': threads_used ' || (dmf_info(model)->>'threads_used')
       || ', median epoch ' || round(percentile_cont(0.5) WITHIN GROUP (ORDER BY (h->>'seconds')::float8)::numeric, 3)
       || ' s (epochs 2..' || count(*) + 1 || ': '
       || string_agg(round((h->>'seconds')::numeric, 2)::text, ' ' ORDER BY (h->>'epoch')::int) || ')'
FROM runs, jsonb_array_elements(dmf_info(model)->'history') h
WHERE (h->>'epoch')::int > 1
GROUP BY threads, model ORDER BY threads;
SQL
