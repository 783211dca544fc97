#!/usr/bin/env bash
# The dmf performance benchmark in one command: epoch throughput against OpenBLAS sgemm,
# training time with 1 and 2 threads, dmf_predict inside queries, a million-row query,
# parallel scoring, dmf_refresh, dmf_recommend for every user, a MovieLens-10M-shaped scale
# run and the model size limit. A markdown report goes to stdout; perf.csv (every figure),
# sgemm.csv, runs.csv, history.csv and dmf_info JSON go to the output directory.
#
#   test/bench/perf.sh [--data PATH] [--quick] [--options JSON] [--out DIR]
#                      [--scale] [--scale-factor F] [--scale-options JSON]
#                      [--pairs N] [--sgemm-seconds S]
#                      [--torch] [--torch-epochs N]
#
# --data PATH        ratings file, parsed as bench.sh does (ratings.dat, u.data or CSV).
#                    Default: $DMF_BENCH_DATA, else ../shared/data/ml-1m/ratings.csv beside
#                    the project root if it exists. Streamed into the database, never copied.
# --quick            generated data (gen_ratings.c: 2,000 users x 800 items, ~120k ratings),
#                    few epochs, 1M pairs to score: about a minute (CI)
# --options JSON     dmf_train options merged into every training (default: dmf's defaults;
#                    "threads" is set by the benchmark where it compares thread counts)
# --out DIR          output directory (default test/bench/results/perf-<timestamp>)
# --scale            also train on a MovieLens-10M-shaped data set (gen_ratings.c: 70,000
#                    users x 10,000 items x 10M ratings); slow: tens of minutes and GBs
# --scale-factor F   users, items and ratings of --scale times F (default 1; 0.05 to try it)
# --scale-options J  dmf_train options merged into the --scale training only, e.g.
#                    '{"epochs": 5}' to measure its epochs, memory and model without
#                    training to convergence (default: none)
# --pairs N          rows of the parallel scoring table (default 10,000,000; --quick 1,000,000)
# --sgemm-seconds S  time per sgemm shape and thread count (default 1; --quick 0.3)
# --torch            also time test/bench/torch_dmf.py, the same training in PyTorch on the
#                    CPU (Debian's python3-torch, run by /usr/bin/python3), on the same rows
#                    with the options dmf_train resolved; per-epoch ratio to dmf's
# --torch-epochs N   epochs of the PyTorch run (default 3: its seconds per epoch is the figure)
#
# Server: with DMF_USE_EXISTING=1, or PGHOST / PGPORT / PGDATABASE / PGSERVICE set, the
# server those name is used (the extension must be installed there). Otherwise
# test/lib/cluster.sh builds and installs the extension and starts a throwaway cluster.
# Objects go to schema dmf_perf, dropped and recreated at the start; its big tables are
# dropped at the end unless DMF_PERF_KEEP=1.
#
# Environment: DMF_PERF_QUICK_OPTIONS ('{"epochs": 5}') for --quick;
# DMF_PERF_SCALE_MAX_MEMORY: dmf.max_memory for the --scale training (default: the server's
# setting, raised to what the training asks for when that fits in the free memory).
# The C helpers (gen_ratings.c, sgemm_bench.c) are built with gcc into a temporary directory;
# sgemm_bench needs OpenBLAS's headers (libopenblas-dev).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/../.." && pwd)
SQL_DIR=$BENCH_DIR/sql
# shellcheck source=test/bench/ratings_file.sh
source "$BENCH_DIR/ratings_file.sh"

log() { printf '[perf %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

data=${DMF_BENCH_DATA:-}
quick=0
user_options='{}'
out=
scale=0
scale_factor=1
scale_options='{}'
pairs=
sgemm_seconds=
torch=0
torch_epochs=3
while (($#)); do
    case $1 in
        --data) data=${2:?--data needs a path}; shift 2 ;;
        --data=*) data=${1#*=}; shift ;;
        --quick) quick=1; shift ;;
        --options) user_options=${2:?--options needs JSON}; shift 2 ;;
        --options=*) user_options=${1#*=}; shift ;;
        --out) out=${2:?--out needs a directory}; shift 2 ;;
        --out=*) out=${1#*=}; shift ;;
        --scale) scale=1; shift ;;
        --scale-factor) scale_factor=${2:?--scale-factor needs a number}; shift 2 ;;
        --scale-factor=*) scale_factor=${1#*=}; shift ;;
        --scale-options) scale_options=${2:?--scale-options needs JSON}; shift 2 ;;
        --scale-options=*) scale_options=${1#*=}; shift ;;
        --pairs) pairs=${2:?--pairs needs a number}; shift 2 ;;
        --pairs=*) pairs=${1#*=}; shift ;;
        --sgemm-seconds) sgemm_seconds=${2:?--sgemm-seconds needs a number}; shift 2 ;;
        --sgemm-seconds=*) sgemm_seconds=${1#*=}; shift ;;
        --torch) torch=1; shift ;;
        --torch-epochs) torch_epochs=${2:?--torch-epochs needs a number}; shift 2 ;;
        --torch-epochs=*) torch_epochs=${1#*=}; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
quick_options=${DMF_PERF_QUICK_OPTIONS:-'{"epochs": 5}'}

# --- arguments ---------------------------------------------------------------------------
if ((quick)); then
    [[ -z $data || -n ${DMF_BENCH_DATA:-} ]] || log "--quick: ignoring --data, using generated data"
    data=
    : "${pairs:=1000000}" "${sgemm_seconds:=0.3}"
else
    if [[ -z $data ]]; then
        candidate=${DMF_ROOT:-$ROOT}/../shared/data/ml-1m/ratings.csv
        if [[ -f $candidate ]]; then data=$candidate; fi
        [[ -n $data ]] || die "no ratings file: pass --data PATH or set DMF_BENCH_DATA (MovieLens: https://grouplens.org/datasets/movielens/), or use --quick"
    fi
    [[ -f $data && -r $data ]] || die "cannot read ratings file $data"
    data=$(cd "$(dirname "$data")" && pwd)/$(basename "$data")
    : "${pairs:=10000000}" "${sgemm_seconds:=1}"
fi
[[ $pairs =~ ^[1-9][0-9]*$ ]] || die "--pairs must be a positive integer: $pairs"
[[ $torch_epochs =~ ^[1-9][0-9]*$ ]] || die "--torch-epochs must be a positive integer: $torch_epochs"
if ((torch)); then
    /usr/bin/python3 -c 'import torch' 2>/dev/null ||
        die "--torch needs PyTorch for /usr/bin/python3: apt-get install python3-torch"
fi
[[ $sgemm_seconds =~ ^[0-9]*[.]?[0-9]+$ ]] || die "--sgemm-seconds must be a number: $sgemm_seconds"
if ! [[ $scale_factor =~ ^[0-9]*[.]?[0-9]+$ ]] || ! awk -v f="$scale_factor" 'BEGIN {exit !(f > 0 && f <= 1)}'; then
    die "--scale-factor must be a number in (0, 1]: $scale_factor"
fi

[[ -n $out ]] || out=$BENCH_DIR/results/perf-$(date +%Y%m%d-%H%M%S)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/dmf-perf.XXXXXX")
export DMF_PERF_HWMFILE=$tmp/vmhwm

# --- server ------------------------------------------------------------------------------
# shellcheck source=server.sh
source "$BENCH_DIR/server.sh"

q -c 'SELECT 1' >/dev/null || die "cannot connect to the server"
[[ $(q -v o="$user_options" <<<"SELECT jsonb_typeof(:'o'::jsonb)" 2>/dev/null) == object ]] \
    || die "--options must be a JSON object: $user_options"
if ((quick)); then
    user_options=$(q -v a="$quick_options" -v b="$user_options" <<<"SELECT (:'a'::jsonb || :'b'::jsonb)::text")
fi

# The dmf functions: from the extension (created here when it is available), or whatever
# functions of those names the search path shows.
if [[ $(q -c "SELECT count(*) FROM pg_proc WHERE proname = 'dmf_train' AND pg_function_is_visible(oid)") == 0 &&
      $(q -c "SELECT count(*) FROM pg_available_extensions WHERE name = 'dmf'") != 0 ]]; then
    q -c 'SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS dmf'
    ext_schema=$(q -c "SELECT extnamespace::regnamespace FROM pg_extension WHERE extname = 'dmf'")
    if [[ $(q -v s="$ext_schema" <<<"SELECT :'s' = ANY (current_schemas(false))") != t ]]; then
        export PGOPTIONS="${PGOPTIONS:-} -c search_path=public,$ext_schema"
    fi
fi
has_fn() { q -v f="$1" <<<"SELECT count(*) FROM pg_proc WHERE proname = :'f' AND pg_function_is_visible(oid)"; }
for f in dmf_train dmf_predict dmf_info; do
    [[ $(has_fn $f) != 0 ]] || die "function $f not found: is the extension dmf installed on this server?"
done
has_refresh=$(has_fn dmf_refresh)
has_recommend=$(has_fn dmf_recommend)

mkdir -p "$out"
out=$(cd "$out" && pwd)

# --- helpers -----------------------------------------------------------------------------
fig() { # section key value unit what
    q -v s="$1" -v k="$2" -v v="$3" -v u="$4" -v w="$5" \
        <<<"SELECT dmf_perf.fig(:s, :'k', nullif(:'v', '')::float8, :'u', :'w')" >/dev/null
}
note() { # section text
    q -v s="$1" -v t="$2" <<<"SELECT dmf_perf.note(:s, :'t')" >/dev/null
}
# time_sql REPS SETUP LABEL QUERY [LABEL QUERY ...]: in one session, after SETUP, REPS + 1
# rounds of the queries in turn; round 0 (the first in the session: model decoding, cold
# caches) is recorded as rep 0, reported apart from the median of the others.
time_sql() {
    local reps=$1 setup=$2 r k script query
    shift 2
    local -a qs=("$@")
    script="SET client_min_messages = warning;"$'\n'"$setup"$'\n'
    for ((r = 0; r <= reps; r++)); do
        for ((k = 0; k < ${#qs[@]}; k += 2)); do
            query=$(sed -e 's/[[:space:];]*$//' <<<"${qs[k + 1]}")
            script+="SELECT clock_timestamp() AS t0 \\gset"$'\n'"$query"$'\n'"\\g /dev/null"$'\n'
            script+="SELECT format('%s,%s,%s', '${qs[k]}', $r, extract(epoch FROM clock_timestamp() - :'t0'::timestamptz));"$'\n'
        done
    done
    local labels=
    for ((k = 0; k < ${#qs[@]}; k += 2)); do labels+=" ${qs[k]}"; done
    log "timing$labels: $((reps + 1)) rounds"
    q <<<"$script" >"$tmp/timings.csv"
    q -c "\\copy dmf_perf.timings FROM '$tmp/timings.csv' WITH (FORMAT csv)"
}
train() { # name relation options_json [setup_sql]
    log "dmf_train on $2 with $3 (as $1)"
    : >"$DMF_PERF_HWMFILE"
    qf -v name="$1" -v tbl="$2" -v opts="$3" -v setup="${4:-}" -f "$SQL_DIR/perf_train.sql"
    local kb
    kb=$(awk '/^VmHWM/ {print $2}' "$DMF_PERF_HWMFILE" 2>/dev/null || true)
    if [[ $kb =~ ^[0-9]+$ ]]; then
        q -v n="$1" -v kb="$kb" <<<"UPDATE dmf_perf.runs SET vmhwm_kb = :kb WHERE name = :'n' AND vmhwm_kb IS NULL AND error IS NULL"
    fi
    local err
    err=$(q -v n="$1" <<<"SELECT coalesce(error, '') FROM dmf_perf.runs WHERE name = :'n'")
    [[ -z $err ]] || log "dmf_train ($1) failed: $err"
}
run_ok() { [[ $(q -v n="$1" <<<"SELECT count(*) FROM dmf_perf.runs WHERE name = :'n' AND error IS NULL AND info IS NOT NULL") == 1 ]]; }
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN {printf "%.3f", b - a}'; }

# --- C helpers ---------------------------------------------------------------------------
gen=
sgemm=
if command -v gcc >/dev/null 2>&1; then
    if gcc -O2 -o "$tmp/gen_ratings" "$BENCH_DIR/gen_ratings.c" -lm 2>"$tmp/gcc.log"; then
        gen=$tmp/gen_ratings
    else
        log "WARNING: could not build gen_ratings.c: $(head -n 3 "$tmp/gcc.log")"
    fi
    # -O3 as the extension's PG_CFLAGS: its Adam loop is compared with the extension's
    if gcc -O3 -o "$tmp/sgemm_bench" "$BENCH_DIR/sgemm_bench.c" -lopenblas -lm 2>"$tmp/gcc.log"; then
        sgemm=$tmp/sgemm_bench
    else
        log "WARNING: could not build sgemm_bench.c (libopenblas-dev?): $(head -n 3 "$tmp/gcc.log")"
    fi
else
    log "WARNING: gcc not found: no generated data, no sgemm comparison"
fi
((quick == 0 && scale == 0)) || [[ -n $gen ]] || die "gen_ratings.c could not be built: --quick and --scale need it"

# --- schema and data ---------------------------------------------------------------------
qf -f "$SQL_DIR/perf_setup.sql"
if ((quick)); then
    data_name="generated (gen_ratings 2000 800 120000: MovieLens-shaped, --quick)"
    log "generating the --quick data set"
    "$gen" 2000 800 120000 1 | q -c "\\copy dmf_perf.raw (user_id, item_id, rating) FROM pstdin"
else
    data_name="$(basename "$(dirname "$data")")/$(basename "$data")"
    log "loading $data"
    dmf_bench_copy_ratings "$data" dmf_perf.raw
fi
q -f "$SQL_DIR/perf_prepare.sql" | while IFS= read -r line; do log "$line"; done

# --- machine -----------------------------------------------------------------------------
# what the server's backends run with: OpenBLAS's core choice can be forced through the
# environment, and a niced server is slower on a busy machine (only visible when local).
# The environment is the postmaster's: a backend's /proc environ holds its ps title.
server_local=no
[[ -z ${PGHOST:-} || ${PGHOST:-} == /* || ${PGHOST:-} == localhost || ${PGHOST:-} == 127.0.0.1 ]] && server_local=yes
server_coretype=
server_nice='unknown (server not local)'
if [[ $server_local == yes ]]; then
    q >"$tmp/backend" <<'SQL'
SELECT pg_backend_pid() AS bpid \gset
\setenv DMF_PERF_BPID :bpid
\! printf '%s|%s\n' "$(tr '\0' '\n' < "/proc/$(awk '{print $4}' /proc/$DMF_PERF_BPID/stat 2>/dev/null)/environ" 2>/dev/null | sed -n 's/^OPENBLAS_CORETYPE=//p')" "$(awk '{print $19}' /proc/$DMF_PERF_BPID/stat 2>/dev/null)"
SQL
    server_coretype=$(cut -d'|' -f1 "$tmp/backend" 2>/dev/null || true)
    server_nice=$(cut -d'|' -f2 "$tmp/backend" 2>/dev/null || true)
    [[ $server_nice =~ ^-?[0-9]+$ ]] || server_nice=unknown
fi
cpu=$(grep -m1 '^model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || echo unknown)
cpu_id=$(awk -F': ' '/^cpu family/ {f = $2} /^model[[:space:]]*:/ {m = $2} END {print "family " f ", model " m}' /proc/cpuinfo 2>/dev/null || true)
simd=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | tr ' ' '\n' | grep -xE 'avx512(f|dq|bw|vl)|avx2|fma' | paste -sd ' ' || true)
load_start=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
# the setting exists once the library is loaded: a call on a non-model loads it
load_dmf="DO \$\$ BEGIN PERFORM dmf_predict('\\x00'::bytea, 1, 1); EXCEPTION WHEN OTHERS THEN NULL; END \$\$;"
max_memory=$(q -c "$load_dmf" -c 'SHOW dmf.max_memory' 2>/dev/null || echo unknown)
{
    echo "## dmf performance benchmark"
    echo
    echo "- data: $data_name"
    echo "- dmf_train options: dmf's defaults merged with $user_options (\"threads\" set per run where noted)"
    echo "- CPU: $cpu ($cpu_id; ${simd:-no AVX}); cores: $(nproc 2>/dev/null || echo ?); memory: $(awk '/^MemTotal/ {printf "%.1f GB", $2 / 1048576}' /proc/meminfo 2>/dev/null || echo ?) (this machine; server local: $server_local)"
    echo "- load average at the start (1, 5, 15 min): $load_start; perf.sh nice $(nice), server backends nice $server_nice"
    echo "- PostgreSQL: $(q -c 'SHOW server_version'); max_parallel_workers $(q -c 'SHOW max_parallel_workers'), max_worker_processes $(q -c 'SHOW max_worker_processes'); dmf.max_memory $max_memory"
    echo "- OpenBLAS: $(dpkg-query -W -f='${Package} ${Version}\n' 'libopenblas0*' 2>/dev/null | awk 'NF == 2' | paste -sd ';' | sed 's/;/; /g' || true); server's OPENBLAS_CORETYPE: $([[ $server_local == yes ]] && echo "${server_coretype:-not set}" || echo 'unknown (server not local)')"
    echo "- dmf: $(q -c "SELECT coalesce((SELECT extversion FROM pg_extension WHERE extname = 'dmf'), 'functions without the extension')")"
} >"$out/machine.md"
cat "$out/machine.md"

# --- 2. training time, threads 1 and 2 ---------------------------------------------------
opts_for() { q -v u="$user_options" -v t="$1" <<<"SELECT (jsonb_build_object('verbose', true) || :'u'::jsonb || jsonb_build_object('threads', :t))::text"; }
train threads_1 dmf_perf.ratings "$(opts_for 1)"
train threads_2 dmf_perf.ratings "$(opts_for 2)"
main=threads_2
run_ok $main || die "training failed: $(q -c "SELECT error FROM dmf_perf.runs WHERE name = 'threads_2'")"
q >/dev/null <<'SQL'
SELECT dmf_perf.fig(2, r.name || '_' || x.k, x.v, x.u, x.w)
FROM dmf_perf.runs r,
     LATERAL (SELECT (r.options ->> 'threads') AS t) t,
     LATERAL (VALUES
        (1, 'wall_seconds', r.wall_seconds, 's', 'dmf_train wall clock, threads ' || t.t || ' (load + training + encoding the model)'),
        (2, 'load_seconds', dmf_perf.jnum(r.info, 'load_seconds'), 's', 'reading the ratings (dmf_info load_seconds)'),
        (3, 'training_seconds', dmf_perf.jnum(r.info, 'training_seconds'), 's', 'training loop and final factors (dmf_info training_seconds)'),
        (4, 'epochs', dmf_perf.jnum(r.info, 'epochs_run'), '', 'epochs run (early stopping; best epoch ' || coalesce(r.info ->> 'best_epoch', '?') || ')'),
        (5, 'seconds_per_epoch', dmf_perf.jnum(r.info, 'seconds_per_epoch'), 's', 'mean epoch, validation pass included (dmf_info seconds_per_epoch)'),
        (6, 'peak_memory', r.vmhwm_kb / 1024.0, 'MB', 'peak resident memory of the training backend (VmHWM)')
     ) x (o, k, v, u, w)
WHERE r.name IN ('threads_1', 'threads_2') AND r.error IS NULL
ORDER BY r.name, x.o;
SELECT dmf_perf.fig(2, 'speedup_wall', a.wall_seconds / b.wall_seconds, 'x', 'dmf_train wall clock, threads 1 / threads 2'),
       dmf_perf.fig(2, 'speedup_epoch', dmf_perf.jnum(a.info, 'seconds_per_epoch') / dmf_perf.jnum(b.info, 'seconds_per_epoch'),
                    'x', 'seconds per epoch, threads 1 / threads 2')
FROM dmf_perf.runs a, dmf_perf.runs b
WHERE a.name = 'threads_1' AND b.name = 'threads_2' AND a.error IS NULL AND b.error IS NULL;
SELECT dmf_perf.note(2, format('%s ratings (%s train, %s validation held out by dmf_train), %s users, %s items; user branch %s, item branch %s (input, hidden, dim), batch_size %s',
           info ->> 'rows', info ->> 'train_rows', info ->> 'validation_rows', info ->> 'users', info ->> 'items',
           info -> 'user_branch', info -> 'item_branch', info -> 'options' ->> 'batch_size'))
FROM dmf_perf.runs WHERE name = 'threads_2';
SELECT dmf_perf.note(2, 'With 2 threads the user and the item branch of each block run on one core each (OpenBLAS single-threaded in each); the validation pass uses OpenBLAS with 2 threads. The result does not depend on the thread count, so both runs do the same epochs.');
SQL
if ! run_ok threads_1; then
    note 2 "threads 1: $(q -c "SELECT error FROM dmf_perf.runs WHERE name = 'threads_1'")"
fi

# the MF yardstick of bench.sh (test/bench/mf_baseline.c) on the same ratings, 5% held out for
# its early stopping as dmf_train holds out 5%: the time dmf_train's is measured against
mf_options=${DMF_BENCH_MF_OPTIONS:---dim 100 --lr 0.005 --reg 0.04 --init 0.01 --fold-reg 15}
if gcc -std=gnu99 -O2 -o "$tmp/mf_baseline" "$BENCH_DIR/mf_baseline.c" -lm; then
    held_out="abs(hashtext(user_id || ':' || item_id)) % 100 < 5"
    q -c "\\copy (SELECT user_id, item_id, rating FROM dmf_perf.ratings WHERE NOT ($held_out)) TO '$tmp/mf_train.tsv'"
    q -c "\\copy (SELECT user_id, item_id, rating FROM dmf_perf.ratings WHERE $held_out) TO '$tmp/mf_val.tsv'"
    log "MF yardstick ($mf_options)"
    mf_start=$(date +%s.%N)
    # shellcheck disable=SC2086  # the options are words
    mf_summary=$("$tmp/mf_baseline" --train "$tmp/mf_train.tsv" --val "$tmp/mf_val.tsv" \
                 --test "$tmp/mf_val.tsv" --out "$tmp/mf_pred.tsv" --seed 1 $mf_options)
    mf_wall=$(elapsed "$mf_start")
    log "MF: $mf_summary (wall $mf_wall s)"
    read -r _ mf_epochs _ _ _ mf_seconds _ mf_rmse _ <<<"$mf_summary"
    fig 2 mf_wall_seconds "$mf_wall" s "the MF yardstick (mf_baseline.c, one thread: $mf_options), reading its files and training with early stopping"
    fig 2 mf_training_seconds "$mf_seconds" s "its training alone: $mf_epochs epochs, best validation RMSE $mf_rmse on its 5% hold-out"
    q -v mf="$mf_wall" >/dev/null <<'SQL'
SELECT dmf_perf.fig(2, 'ratio_mf_' || r.name, r.wall_seconds / :mf, 'x',
                    'dmf_train wall clock, ' || r.name || ', / the MF yardstick''s wall clock (bar: <= 1.5)')
FROM dmf_perf.runs r WHERE r.name IN ('threads_1', 'threads_2') AND r.error IS NULL ORDER BY r.name;
SQL
else
    note 2 "the MF yardstick was not timed: test/bench/mf_baseline.c could not be built"
fi

# PyTorch on the CPU, the same rows and the options dmf_train resolved (threads 2)
if ((torch)); then
    q -c "\\copy (SELECT user_id, item_id, rating FROM dmf_perf.ratings) TO '$tmp/torch_train.csv' WITH (FORMAT csv)"
    IFS='|' read -r t_lr t_drop t_batch t_layers t_dim t_seed t_vf < <(q -c "
        SELECT concat_ws('|', o ->> 'learning_rate', o ->> 'dropout', o ->> 'batch_size',
                         (SELECT string_agg(x, ',') FROM jsonb_array_elements_text(o -> 'user_layers') x),
                         o ->> 'dim', o ->> 'seed', o ->> 'validation_fraction')
        FROM (SELECT info -> 'options' AS o FROM dmf_perf.runs WHERE name = '$main') r")
    log "PyTorch: $torch_epochs epochs, lr $t_lr, dropout $t_drop, batch $t_batch, layers $t_layers, dim $t_dim"
    if /usr/bin/python3 "$BENCH_DIR/torch_dmf.py" --train "$tmp/torch_train.csv" \
            --validation-fraction "$t_vf" --epochs "$torch_epochs" --lr "$t_lr" --dropout "$t_drop" \
            --batch-size "$t_batch" --layers "$t_layers" --dim "$t_dim" --seed "$t_seed" --threads 2 \
            >"$out/torch.json" 2>"$tmp/torch.log"; then
        q -v j="$(cat "$out/torch.json")" -v m="$main" >/dev/null <<'SQL'
SELECT dmf_perf.fig(2, 'torch_seconds_per_epoch', (:'j'::jsonb ->> 'seconds_per_epoch')::float8, 's',
                    format('PyTorch %s on the CPU (test/bench/torch_dmf.py, %s threads), same rows and options, mean over %s epoch(s)',
                           :'j'::jsonb ->> 'torch_version', :'j'::jsonb ->> 'threads', :'j'::jsonb ->> 'epochs')),
       dmf_perf.fig(2, 'torch_ratio_epoch', (:'j'::jsonb ->> 'seconds_per_epoch')::float8 / dmf_perf.jnum(r.info, 'seconds_per_epoch'),
                    'x', 'PyTorch seconds per epoch / dmf_train seconds per epoch (threads 2)')
FROM dmf_perf.runs r WHERE r.name = :'m';
SQL
    else
        note 2 "PyTorch run failed: $(tail -n 3 "$tmp/torch.log" | tr '\n' ' ')"
    fi
fi

# --- 1. epoch throughput vs sgemm ----------------------------------------------------------
log "counting the FLOPs of an epoch"
q -v run=$main -v tbl=dmf_perf.ratings -f "$SQL_DIR/perf_flops.sql" >"$tmp/shapes"
q >/dev/null <<'SQL'
SELECT dmf_perf.fig(1, 'flops_' || component, flops / 1e9, 'GFLOP', what)
FROM (SELECT * FROM dmf_perf.flops
      JOIN (VALUES (1, 'sparse_train'), (2, 'dense_train'), (3, 'sparse_val'), (4, 'dense_val'), (5, 'loss'), (6, 'total')) o (ord, component) USING (component)
      WHERE run = 'threads_2' ORDER BY ord) f;
SELECT dmf_perf.fig(1, 'epoch_gflops_threads_' || (r.options ->> 'threads'), f.flops / 1e9 / dmf_perf.jnum(r.info, 'seconds_per_epoch'),
                    'GFLOP/s', 'FLOPs of an epoch / seconds per epoch of the threads ' || (r.options ->> 'threads') || ' training')
FROM dmf_perf.runs r, dmf_perf.flops f
WHERE r.name IN ('threads_1', 'threads_2') AND r.error IS NULL AND f.run = 'threads_2' AND f.component = 'total'
ORDER BY r.name;
SELECT dmf_perf.fig(1, 'adam_traffic', flops / 1e9, 'GB', what || ', per epoch') FROM dmf_perf.flops WHERE run = 'threads_2' AND component = 'adam_bytes';
SELECT dmf_perf.note(1, string_agg(component || ' ' || dmf_perf.fmt(flops) || ' (' || what || ')', '; ' ORDER BY component))
FROM dmf_perf.flops WHERE run = 'threads_2' AND component IN ('blocks', 'user_rows', 'item_rows', 'user_inputs', 'item_inputs', 'params');
SELECT dmf_perf.note(1, 'FLOPs counted from the data''s shape as src/core/train.c runs an epoch (formula: test/bench/sql/perf_flops.sql): the sparse first layer 2 x inputs x width each way per side, dense layers 2 m n k forward and twice that backward, for both branches, over the blocks of the epoch, plus the validation pass (every user and item forward) and the loss. Adam''s elementwise update of every parameter at every block is left out of the FLOPs; its memory traffic is shown apart.');
SQL
cp "$tmp/shapes" "$out/sgemm_shapes.txt"
if [[ -n $sgemm ]]; then
    # the kernels the server's backends get: the server's OPENBLAS_CORETYPE, else the
    # ones dmf asks for from the CPU's instruction set (src/blas.c, coretype_for_cpu)
    run_sgemm() { # variant threads [coretype]
        local env=(env -u OPENBLAS_CORETYPE -u OPENBLAS_NUM_THREADS)
        [[ -n ${3:-} ]] && env+=(OPENBLAS_CORETYPE="$3")
        log "sgemm_bench: $1, $2 thread(s)${3:+, OPENBLAS_CORETYPE=$3}"
        "${env[@]}" "$sgemm" "$2" "$sgemm_seconds" <"$tmp/shapes" >"$tmp/sgemm_$1_$2.csv"
        grep '^#' "$tmp/sgemm_$1_$2.csv" | sed 's/^# //' >"$tmp/sgemm_$1_$2.core"
        grep -v '^#' "$tmp/sgemm_$1_$2.csv" | tail -n +2 | sed "s/^/$1,/" >>"$tmp/sgemm.csv"
    }
    : >"$tmp/sgemm.csv"
    dmf_core=$server_coretype
    if [[ -z $dmf_core ]]; then
        if [[ " $simd " == *" avx512f "* && " $simd " == *" avx512dq "* &&
              " $simd " == *" avx512bw "* && " $simd " == *" avx512vl "* ]]; then dmf_core=SkylakeX
        elif [[ " $simd " == *" avx2 "* && " $simd " == *" fma "* ]]; then dmf_core=Haswell; fi
    fi
    run_sgemm server 1 "$dmf_core"
    run_sgemm server 2 "$dmf_core"
    # what OpenBLAS would pick by itself, for comparison
    run_sgemm detected 1 ""
    detected_core=$(sed -n 's/.*; core \([^;]*\);.*/\1/p' "$tmp/sgemm_detected_1.core")
    forced=
    q -c "\\copy dmf_perf.sgemm FROM '$tmp/sgemm.csv' WITH (FORMAT csv)"
    q -v core="$(cat "$tmp/sgemm_server_1.core")" -v forced="$forced" >/dev/null <<'SQL'
CREATE TEMP VIEW mix AS
SELECT variant, threads, sum(2.0 * m * n * k * calls) AS flops, sum(seconds_per_call * calls) AS seconds
FROM dmf_perf.sgemm WHERE transa <> 'A' GROUP BY variant, threads;
-- Adam's loop does not use OpenBLAS: the 1-thread run's rows are the ones to read
CREATE TEMP VIEW adam AS
SELECT sum(seconds_per_call * calls) AS seconds, max(seconds_per_call * calls) AS longest_side,
       sum(32.0 * m * calls) / sum(seconds_per_call * calls) / 1e9 AS gbs
FROM dmf_perf.sgemm WHERE transa = 'A' AND variant = 'server' AND threads = 1;
SELECT dmf_perf.fig(1, 'sgemm_gflops_threads_' || threads, flops / seconds / 1e9, 'GFLOP/s',
                    'OpenBLAS cblas_sgemm, ' || threads || ' thread(s), the dense calls of an epoch at their shapes (test/bench/sgemm_bench.c; total FLOPs / total time)')
FROM mix WHERE variant = 'server' ORDER BY threads;
SELECT dmf_perf.fig(1, 'ratio_threads_' || (r.options ->> 'threads'),
                    f.flops / dmf_perf.jnum(r.info, 'seconds_per_epoch') / (x.flops / x.seconds), '',
                    'epoch GFLOP/s / sgemm GFLOP/s, threads ' || (r.options ->> 'threads') || ' (bar: >= 0.5)')
FROM dmf_perf.runs r, dmf_perf.flops f, mix x
WHERE r.name IN ('threads_1', 'threads_2') AND r.error IS NULL AND f.run = 'threads_2' AND f.component = 'total'
  AND x.variant = 'server' AND x.threads = (r.options ->> 'threads')::int
ORDER BY r.name;
SELECT dmf_perf.fig(1, 'sgemm_dense_seconds_threads_' || x.threads, x.seconds, 's',
                    'time sgemm takes for the dense layers of one epoch (' || dmf_perf.fmt(x.flops / 1e9) || ' GFLOP), against '
                    || dmf_perf.fmt(dmf_perf.jnum(r.info, 'seconds_per_epoch')) || ' s per epoch measured')
FROM mix x JOIN dmf_perf.runs r ON r.name = 'threads_' || x.threads AND r.error IS NULL
WHERE x.variant = 'server' ORDER BY x.threads;
SELECT dmf_perf.fig(1, 'adam_seconds_threads_1', a.seconds, 's',
                    'time the Adam updates of one epoch take (src/core/adam.c''s loop timed in sgemm_bench.c: every parameter of both branches at every block, '
                    || dmf_perf.fmt(a.gbs) || ' GB/s), against ' || dmf_perf.fmt(dmf_perf.jnum(r.info, 'seconds_per_epoch')) || ' s per epoch measured')
FROM adam a, dmf_perf.runs r WHERE r.name = 'threads_1' AND r.error IS NULL AND a.seconds IS NOT NULL;
SELECT dmf_perf.fig(1, 'adam_seconds_threads_2', a.longest_side, 's',
                    'the same with the two branches updated at once (threads 2): the larger branch''s share')
FROM adam a WHERE a.seconds IS NOT NULL;
SELECT dmf_perf.fig(1, 'other_seconds_threads_' || x.threads,
                    dmf_perf.jnum(r.info, 'seconds_per_epoch') - x.seconds
                    - CASE WHEN x.threads = 1 THEN a.seconds ELSE a.longest_side END, 's',
                    'what is left of an epoch (threads ' || x.threads || ') after the dense layers at sgemm speed and Adam: the sparse first layer, the loss, the validation RMSE, bookkeeping')
FROM mix x JOIN dmf_perf.runs r ON r.name = 'threads_' || x.threads AND r.error IS NULL, adam a
WHERE x.variant = 'server' AND a.seconds IS NOT NULL ORDER BY x.threads;
SELECT dmf_perf.fig(1, 'sgemm_gflops_' || :'forced' || '_threads_' || threads, flops / seconds / 1e9, 'GFLOP/s',
                    'the same sgemm calls with OPENBLAS_CORETYPE=' || :'forced' || ' (kernels for this CPU''s instruction set)')
FROM mix WHERE variant = 'forced' ORDER BY threads;
SELECT dmf_perf.fig(1, 'ratio_' || :'forced' || '_threads_' || x.threads,
                    f.flops / dmf_perf.jnum(r.info, 'seconds_per_epoch') / (x.flops / x.seconds), '',
                    'epoch GFLOP/s (as trained) / sgemm GFLOP/s with ' || :'forced' || ' kernels, threads ' || x.threads)
FROM mix x JOIN dmf_perf.runs r ON r.name = 'threads_' || x.threads AND r.error IS NULL
JOIN dmf_perf.flops f ON f.run = 'threads_2' AND f.component = 'total'
WHERE x.variant = 'forced' ORDER BY x.threads;
SELECT dmf_perf.note(1, 'OpenBLAS as the server loads it: ' || :'core' || '.');
SQL
    q -c "SELECT dmf_perf.fig(1, 'sgemm_gflops_detected_threads_1', flops / seconds / 1e9, 'GFLOP/s', 'the same sgemm calls with the kernels OpenBLAS detects by itself ($detected_core)') FROM (SELECT sum(2.0 * m * n * k * calls) AS flops, sum(seconds_per_call * calls) AS seconds FROM dmf_perf.sgemm WHERE transa <> 'A' AND variant = 'detected') d WHERE seconds > 0" >/dev/null
    note 1 "Kernels: dmf asks OpenBLAS for those of the CPU's instruction set (${dmf_core:-none: OpenBLAS detects them}) unless the server's environment sets OPENBLAS_CORETYPE (src/blas.c); left to itself this OpenBLAS picks $detected_core on this CPU ($cpu_id)."
    [[ $server_local == yes ]] || note 1 "The server is not on this machine: sgemm ran here, the training there, so the ratios compare two machines."
    note 1 "Both training runs use the same data and options, so one FLOP count serves both; sgemm runs with the shapes' mean block rows (per-block sizes vary around it). On a machine shared with other jobs, the 2-thread figures are the noisiest."
    cp "$tmp/sgemm.csv" "$out/sgemm.csv.tmp"
    { echo "variant,label,threads,transa,transb,m,n,k,calls,seconds_per_call,gflops"; cat "$out/sgemm.csv.tmp"; } >"$out/sgemm.csv"
    rm -f "$out/sgemm.csv.tmp"
else
    note 1 "sgemm comparison skipped: sgemm_bench.c could not be built (gcc and libopenblas-dev are needed)"
fi

# --- 3. prediction inside queries ----------------------------------------------------------
# as the README asks of users: an analyzed models table (else the planner expects hundreds of
# models, millions of predictions, and JIT-compiles both queries)
q -c 'ANALYZE dmf_perf.models'
serial='SET max_parallel_workers_per_gather = 0;'
time_sql 5 "$serial" \
    sum_rating "SELECT sum(t.rating) FROM dmf_perf.test t, dmf_perf.models m WHERE m.name = '$main'" \
    sum_predict "SELECT sum(dmf_predict(m.model, t.user_id, t.item_id)) FROM dmf_perf.test t, dmf_perf.models m WHERE m.name = '$main'"
q >/dev/null <<'SQL'
SELECT dmf_perf.fig(3, 'sum_rating_seconds', dmf_perf.median('sum_rating'), 's', 'SELECT sum(t.rating) FROM test t, models m WHERE m.name = ..., median of ' || dmf_perf.reps('sum_rating')),
       dmf_perf.fig(3, 'sum_predict_seconds', dmf_perf.median('sum_predict'), 's', 'SELECT sum(dmf_predict(m.model, t.user_id, t.item_id)) FROM the same, median of ' || dmf_perf.reps('sum_predict')),
       dmf_perf.fig(3, 'ratio', dmf_perf.median('sum_predict') / dmf_perf.median('sum_rating'), 'x', 'dmf_predict query / sum(rating) query (bar: <= 1.5)'),
       dmf_perf.fig(3, 'predictions_per_second', n / dmf_perf.median('sum_predict'), '/s', 'test rows / dmf_predict query time'),
       dmf_perf.fig(3, 'predict_cost_per_row', (dmf_perf.median('sum_predict') - dmf_perf.median('sum_rating')) / n * 1e9, 'ns', 'extra time per row of dmf_predict over reading the rating'),
       dmf_perf.fig(3, 'first_predict_seconds', dmf_perf.first('sum_predict'), 's', 'the dmf_predict query the first time in its session (the model decoded)')
FROM (SELECT count(*) AS n FROM dmf_perf.test) t;
SELECT dmf_perf.note(3, format('Test split: %s ratings (20%% by hashtext, as bench.sh''s seed 1); one session, parallel query off, one warm-up round, then the two queries alternate.', count(*)))
FROM dmf_perf.test;
SQL

# --- pairs to score (4, 5) -----------------------------------------------------------------
log "creating $pairs (user, item) pairs to score"
q -v n="$pairs" -f "$SQL_DIR/perf_pairs.sql" | while IFS= read -r line; do log "$line"; done

# --- 4. a million-row query ----------------------------------------------------------------
million=$((pairs < 1000000 ? pairs : 1000000))
q -v m=$main <<<"INSERT INTO dmf_perf.models SELECT 'copy', model FROM dmf_perf.models WHERE name = :'m'"
# the library loaded first, so the first call times decoding and not the loading
time_sql 3 "$serial $load_dmf" \
    one_prediction "SELECT dmf_predict(m.model, p.user_id, p.item_id) FROM (SELECT * FROM dmf_perf.pairs LIMIT 1) p, dmf_perf.models m WHERE m.name = 'copy'" \
    million_join "SELECT sum(dmf_predict(m.model, p.user_id, p.item_id)) FROM (SELECT * FROM dmf_perf.pairs LIMIT $million) p, dmf_perf.models m WHERE m.name = '$main'" \
    million_subquery "SELECT sum(dmf_predict((SELECT model FROM dmf_perf.models WHERE name = '$main'), p.user_id, p.item_id)) FROM (SELECT * FROM dmf_perf.pairs LIMIT $million) p"
q -v n="$million" >/dev/null <<'SQL'
SELECT dmf_perf.fig(4, 'model_size', length(model) / 1048576.0, 'MB', 'the model (bytea)') FROM dmf_perf.models WHERE name = 'copy';
SELECT dmf_perf.fig(4, 'first_call_ms', dmf_perf.first('one_prediction') * 1000, 'ms', 'one dmf_predict, first use of a model in the backend: the pages it needs read and checked (bar: <= 15 ms)'),
       dmf_perf.fig(4, 'next_call_ms', dmf_perf.median('one_prediction') * 1000, 'ms', 'the same query again (median of ' || dmf_perf.reps('one_prediction') || '): model from the backend''s cache'),
       dmf_perf.fig(4, 'million_seconds', dmf_perf.median('million_join'), 's', :n || ' predictions, SELECT sum(dmf_predict(m.model, ...)) joined with the models table, median of ' || dmf_perf.reps('million_join')),
       dmf_perf.fig(4, 'million_first_seconds', dmf_perf.first('million_join'), 's', 'the same, first in its session (the model decoded once more)'),
       dmf_perf.fig(4, 'predictions_per_second', :n / dmf_perf.median('million_join'), '/s', 'predictions per second, one backend'),
       dmf_perf.fig(4, 'per_prediction_us', dmf_perf.median('million_join') / :n * 1e6, 'us', 'time per prediction, against ' || dmf_perf.fmt(dmf_perf.first('one_prediction') * 1e6) || ' us for a first call'),
       dmf_perf.fig(4, 'million_subquery_seconds', dmf_perf.median('million_subquery'), 's', 'the same ' || :n || ' predictions with the model from a scalar subquery, median of ' || dmf_perf.reps('million_subquery')),
       dmf_perf.fig(4, 'decoded_per_row_hours', :n * (dmf_perf.first('one_prediction') - dmf_perf.median('one_prediction')) / 3600, 'h', 'what the query would take if the model were decoded for every row');
SQL
note 4 "One session, parallel query off. The models table stores its models out of line and uncompressed (STORAGE EXTERNAL), so a first dmf_predict reads only the pages it needs (format 2); the million-row query reads every factor's page once, each further row is a cache hit."

# --- 5. parallel scoring -------------------------------------------------------------------
# The model from a scalar subquery: an InitPlan the leader evaluates and hands to the workers,
# so each worker predicts its share. The join with the models table (section 3's form) is
# also timed: with a one-row table on one side the planner's choice is shown in plans.txt.
pq="SELECT sum(dmf_predict((SELECT model FROM dmf_perf.models WHERE name = '$main'), p.user_id, p.item_id)) FROM dmf_perf.pairs p"
pq_join="SELECT sum(dmf_predict(m.model, p.user_id, p.item_id)) FROM dmf_perf.pairs p, dmf_perf.models m WHERE m.name = '$main'"
par='SET max_parallel_workers_per_gather = 2;'
q -c "$par EXPLAIN (COSTS OFF) $pq" >"$tmp/plan"
if ! grep -q Gather "$tmp/plan"; then
    # the planner's cost model may keep a small table serial: make starting workers cheap
    par+=' SET parallel_setup_cost = 0; SET min_parallel_table_scan_size = 0;'
    q -c "$par EXPLAIN (COSTS OFF) $pq" >"$tmp/plan"
    note 5 "The planner kept the query serial at default costs; parallel_setup_cost and min_parallel_table_scan_size were set to 0 for the parallel runs."
fi
q -c "$serial EXPLAIN (COSTS OFF) $pq" >"$tmp/plan_serial"
q -c "$par EXPLAIN (ANALYZE, TIMING OFF, COSTS OFF) $pq" >"$tmp/plan_analyze"
q -c "$par EXPLAIN (ANALYZE, TIMING OFF, COSTS OFF) $pq_join" >"$tmp/plan_join"
{
    echo "-- serial ($serial)"; echo "$pq"; cat "$tmp/plan_serial"; echo
    echo "-- parallel ($par)"; cat "$tmp/plan"; echo
    echo "-- parallel, EXPLAIN ANALYZE"; cat "$tmp/plan_analyze"; echo
    echo "-- the join with the models table, parallel ($par), EXPLAIN ANALYZE"; echo "$pq_join"; cat "$tmp/plan_join"
} >"$out/plans.txt"
time_sql 3 "$serial" serial "$pq"
time_sql 3 "$par" parallel "$pq"
time_sql 2 "$par" parallel_join "$pq_join"
oneline() { sed -e '/^Planning Time/d' -e '/^Execution Time/d' -e 's/^ *//' -e 's/^-> *//' "$1" | paste -sd '|' | sed 's/|/ → /g'; }
launched=$(sed -n 's/.*Workers Launched: *\([0-9]*\).*/\1/p' "$tmp/plan_analyze" | head -n 1)
fig 5 workers_launched "${launched:-0}" '' "parallel workers launched (EXPLAIN ANALYZE of the parallel query; planned: $(sed -n 's/.*Workers Planned: *\([0-9]*\).*/\1/p' "$tmp/plan" | head -n 1))"
q -v n="$pairs" >/dev/null <<'SQL'
SELECT dmf_perf.fig(5, 'serial_seconds', dmf_perf.median('serial'), 's', :n || ' predictions, SELECT sum(dmf_predict((SELECT model FROM models WHERE name = ...), p.user_id, p.item_id)) FROM pairs p, max_parallel_workers_per_gather = 0, median of ' || dmf_perf.reps('serial')),
       dmf_perf.fig(5, 'parallel_seconds', dmf_perf.median('parallel'), 's', 'the same with max_parallel_workers_per_gather = 2, median of ' || dmf_perf.reps('parallel')),
       dmf_perf.fig(5, 'speedup', dmf_perf.median('serial') / dmf_perf.median('parallel'), 'x', 'serial / parallel'),
       dmf_perf.fig(5, 'parallel_predictions_per_second', :n / dmf_perf.median('parallel'), '/s', 'predictions per second with the workers'),
       dmf_perf.fig(5, 'parallel_join_seconds', dmf_perf.median('parallel_join'), 's', 'the join with the models table instead (FROM pairs p, models m WHERE m.name = ...), max_parallel_workers_per_gather = 2, median of ' || dmf_perf.reps('parallel_join'));
SQL
note 5 "Plan: $(oneline "$tmp/plan")"
note 5 "The join form's plan: $(oneline "$tmp/plan_join")"
if ! grep -q Gather "$tmp/plan_join"; then
    note 5 "Finding: with the model joined from the models table, the planner keeps the query serial (no Gather) under the same settings; the scalar subquery form runs in parallel."
elif ! grep -q 'Partial Aggregate' "$tmp/plan_join" || grep -q 'Parallel .* on models' "$tmp/plan_join"; then
    note 5 "Finding: with the model joined from the models table, the workers do not share the predictions (the Gather sits below the join, or the one-row models table is the parallel side, so one process predicts every row); the scalar subquery form splits them."
fi
note 5 "Each worker decodes the model once for itself; with 2 cores shared with other jobs the leader and its workers compete for them."

# --- 6. dmf_refresh ------------------------------------------------------------------------
if [[ $has_refresh != 0 ]]; then
    time_sql 2 "$serial" \
        warm_refresh "SELECT dmf_predict(m.model, 1, 1) FROM dmf_perf.models m WHERE m.name = '$main'" \
        refresh "SELECT length(dmf_refresh(m.model, 'dmf_perf.ratings')) FROM dmf_perf.models m WHERE m.name = '$main'"
    q >/dev/null <<'SQL'
SELECT dmf_perf.fig(6, 'refresh_seconds', dmf_perf.median('refresh'), 's', 'dmf_refresh(model, ratings) over every rating (' || count(*) || '), median of ' || dmf_perf.reps('refresh') || ' (bar on ML-1M: < 2 s)'),
       dmf_perf.fig(6, 'refresh_first_seconds', dmf_perf.first('refresh'), 's', 'round 0 of the session (right after the first, decoding, query)'),
       dmf_perf.fig(6, 'ratings_per_second', count(*) / dmf_perf.median('refresh'), '/s', 'ratings refreshed per second')
FROM dmf_perf.ratings;
SQL
    note 6 "The model was decoded by an earlier query of the session: the time is the refresh (read the table, every factor through its branch and fold-in, encode the new model)."
else
    note 6 "skipped: dmf_refresh does not exist in this version of the extension"
fi

# --- 7. dmf_recommend ----------------------------------------------------------------------
if [[ $has_recommend != 0 ]]; then
    time_sql 2 "$serial" \
        warm_recommend "SELECT dmf_predict(m.model, 1, 1) FROM dmf_perf.models m WHERE m.name = '$main'" \
        recommend "SELECT count(*) FROM dmf_perf.users u, dmf_perf.models m, LATERAL dmf_recommend(m.model, u.user_id, 10) r WHERE m.name = '$main'"
    q >/dev/null <<'SQL'
SELECT dmf_perf.fig(7, 'recommend_all_seconds', dmf_perf.median('recommend'), 's', 'top-10 for every user (' || count(*) || ') in one query, LATERAL dmf_recommend, median of ' || dmf_perf.reps('recommend') || ' (bar: < 10 s)'),
       dmf_perf.fig(7, 'users_per_second', count(*) / dmf_perf.median('recommend'), '/s', 'users served per second'),
       dmf_perf.fig(7, 'per_user_ms', dmf_perf.median('recommend') / count(*) * 1000, 'ms', 'per user (one sgemv over the item factors, a top-k heap, the rated items left out)')
FROM dmf_perf.users;
SQL
    note 7 "One backend, parallel query off."
else
    note 7 "skipped: dmf_recommend is not installed on this server (\\df dmf_recommend finds nothing)"
fi

# --- 9. model size limit -------------------------------------------------------------------
size_test() { # label layers_json what dmf.max_memory
    local t0 err secs
    log "size limit: layers $2, dmf.max_memory $4"
    t0=$(date +%s.%N)
    err=$(q -v l="$2" -v mm="$4" 2>&1 >/dev/null <<'SQL' || true
SET dmf.max_memory = :'mm';
SET statement_timeout = '600s';
SELECT length(dmf_train('dmf_perf.ratings', options => jsonb_build_object('layers', :'l'::jsonb, 'threads', 1)));
SQL
)
    secs=$(elapsed "$t0")
    err=$(printf '%s\n' "$err" | sed -n 's/^psql:[^ ]* ERROR: *//p; s/^ERROR: *//p; s/^DETAIL: */detail: /p; s/^HINT: */hint: /p' | paste -sd ' ')
    fig 9 "$1_seconds" "$secs" s "time until dmf_train returned, layers $2 ($3)"
    note 9 "layers $2: ${err:-no error (the model was built)}"
}
read -r nu ni dim < <(q -c "SELECT info ->> 'users', info ->> 'items', info ->> 'dim' FROM dmf_perf.runs WHERE name = '$main'" | tr '|' ' ')
width=$(awk -v u="$nu" -v i="$ni" 'BEGIN {w = int(1.1 * 2^30 / (4 * (u + i))) + 1; print (w <= 65536 ? w : 0)}')
size_test width_100000 '[100000]' "a first layer of 100,000 units" 1GB
if ((width > 0)); then
    layers="[$width]"
    weights=$(awk -v u="$nu" -v i="$ni" -v w="$width" -v d="$dim" 'BEGIN {print 4 * ((u + i) * w + 2 * w * d)}')
else
    # a first layer cannot make 1 GB on so few users and items: two wide hidden layers can
    layers='[16384, 16384]'
    weights=$(awk -v u="$nu" -v i="$ni" -v d="$dim" 'BEGIN {w = 16384; print 4 * ((u + i) * w + 2 * w * w + 2 * w * d)}')
fi
size_test over_1gb "$layers" "weights alone $(awk -v b="$weights" 'BEGIN {printf "%.2f GB", b / 2^30}'), over the 1 GB a bytea holds; dmf.max_memory at its maximum, so only the model size check stands" 2147483647kB
q -v l="$main" >/dev/null <<'SQL'
SELECT dmf_perf.fig(9, 'load_seconds', dmf_perf.jnum(info, 'load_seconds'), 's', 'for comparison: reading the ratings, before any training (dmf_info load_seconds of the threads 2 run)'),
       dmf_perf.fig(9, 'epoch_seconds', dmf_perf.jnum(info, 'seconds_per_epoch'), 's', 'for comparison: one epoch at the default width')
FROM dmf_perf.runs WHERE name = :'l';
SQL
note 9 "A call that errs in about the time of reading the ratings has not trained: dmf_train checks the option ranges, the training's memory estimate (dmf.max_memory) and the size of the model it would return (a bytea holds at most 1 GB) before allocating anything."

# --- 8. scale ------------------------------------------------------------------------------
if ((scale)); then
    read -r su si sr < <(awk -v f="$scale_factor" 'BEGIN {printf "%d %d %d\n", 70000 * f + 0.5, 10000 * f + 0.5, 10000000 * f + 0.5}')
    log "--scale: generating $su users x $si items x $sr ratings"
    t0=$(date +%s.%N)
    q -c "SET client_min_messages = warning; DROP TABLE IF EXISTS dmf_perf.scale_ratings;
          CREATE UNLOGGED TABLE dmf_perf.scale_ratings (user_id bigint NOT NULL, item_id bigint NOT NULL, rating float8 NOT NULL)"
    "$gen" "$su" "$si" "$sr" 1 | q -c "\\copy dmf_perf.scale_ratings FROM pstdin"
    q -c "ANALYZE dmf_perf.scale_ratings"
    fig 8 generate_seconds "$(elapsed "$t0")" s "gen_ratings $su $si $sr piped into the table with \\copy"
    q -v f="$scale_factor" >/dev/null <<'SQL'
WITH u AS (SELECT count(*) AS n FROM dmf_perf.scale_ratings GROUP BY user_id),
     i AS (SELECT count(*) AS n FROM dmf_perf.scale_ratings GROUP BY item_id)
SELECT dmf_perf.fig(8, 'ratings', (SELECT count(*) FROM dmf_perf.scale_ratings), '', 'ratings (scale factor ' || :'f' || ' of 70,000 users x 10,000 items x 10M ratings)'),
       dmf_perf.fig(8, 'users', (SELECT count(*) FROM u), '', 'users (median ' || (SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY n) FROM u) || ' ratings, most ' || (SELECT max(n) FROM u) || ')'),
       dmf_perf.fig(8, 'items', (SELECT count(*) FROM i), '', 'items (median ' || (SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY n) FROM i) || ' ratings, most ' || (SELECT max(n) FROM i) || ', least ' || (SELECT min(n) FROM i) || ')'),
       dmf_perf.fig(8, 'mean_rating', (SELECT avg(rating) FROM dmf_perf.scale_ratings), '', 'mean rating (sd ' || (SELECT round(stddev(rating)::numeric, 2) FROM dmf_perf.scale_ratings) || ')');
SQL
    scale_opts=$(q -v a="$(opts_for 2)" -v b="$scale_options" <<<"SELECT (:'a'::jsonb || :'b'::jsonb)::text")
    [[ $scale_options == '{}' ]] || note 8 "The --scale training adds the options $scale_options to those of section 2."
    scale_setup=
    [[ -n ${DMF_PERF_SCALE_MAX_MEMORY:-} ]] && scale_setup="SET dmf.max_memory = '$DMF_PERF_SCALE_MAX_MEMORY';"
    train scale dmf_perf.scale_ratings "$scale_opts" "$scale_setup"
    err=$(q -c "SELECT coalesce(error, '') FROM dmf_perf.runs WHERE name = 'scale'")
    if [[ $err == *dmf.max_memory* && -z ${DMF_PERF_SCALE_MAX_MEMORY:-} ]]; then
        # the training says what it needs: give it that when the machine has it
        need_mb=$(sed -n 's/.*need about \([0-9.]*\) \([kMGT]B\).*/\1 \2/p' <<<"$err" |
                  awk '{m = $1; if ($2 == "kB") m /= 1024; if ($2 == "GB") m *= 1024; if ($2 == "TB") m *= 1048576; printf "%d", m * 1.1 + 1}')
        avail_mb=$(awk '/^MemAvailable/ {printf "%d", $2 / 1024}' /proc/meminfo 2>/dev/null || echo 0)
        note 8 "With dmf.max_memory = $max_memory: $err"
        if [[ $need_mb =~ ^[0-9]+$ && $server_local == yes ]] && ((need_mb < avail_mb * 7 / 10)); then
            train scale dmf_perf.scale_ratings "$scale_opts" "SET dmf.max_memory = '${need_mb}MB';"
            note 8 "Trained with SET dmf.max_memory = '${need_mb}MB' (what the error asked for + 10%)."
        else
            note 8 "Not retried: it needs about ${need_mb:-?} MB, more than 70% of the available memory (${avail_mb} MB) or the server is not local; set DMF_PERF_SCALE_MAX_MEMORY to force it."
        fi
    fi
    if run_ok scale; then
        q -v tbl=dmf_perf.scale_ratings -v run=scale -f "$SQL_DIR/perf_flops.sql" >/dev/null
        q -v d="$data_name" >/dev/null <<'SQL'
SELECT dmf_perf.fig(8, x.k, x.v, x.u, x.w)
FROM dmf_perf.runs s, dmf_perf.runs b,
     LATERAL (SELECT flops FROM dmf_perf.flops WHERE run = 'scale' AND component = 'total') fs,
     LATERAL (SELECT flops FROM dmf_perf.flops WHERE run = 'threads_2' AND component = 'total') fb,
     LATERAL (VALUES
        (1, 'wall_seconds', s.wall_seconds, 's', 'dmf_train wall clock, threads 2 (options of section 2, plus --scale-options)'),
        (2, 'load_seconds', dmf_perf.jnum(s.info, 'load_seconds'), 's', 'reading the ratings'),
        (3, 'epochs', dmf_perf.jnum(s.info, 'epochs_run'), '', 'epochs run (best ' || coalesce(s.info ->> 'best_epoch', '?') || ')'),
        (4, 'seconds_per_epoch', dmf_perf.jnum(s.info, 'seconds_per_epoch'), 's', 'mean epoch'),
        (5, 'epoch_ratio', dmf_perf.jnum(s.info, 'seconds_per_epoch') / dmf_perf.jnum(b.info, 'seconds_per_epoch'), 'x', 's/epoch here / s/epoch on ' || :'d' || ' (threads 2)'),
        (6, 'flops_ratio', fs.flops / fb.flops, 'x', 'the same ratio predicted by the FLOP count of section 1 (' || dmf_perf.fmt(fs.flops / 1e9) || ' / ' || dmf_perf.fmt(fb.flops / 1e9) || ' GFLOP)'),
        (7, 'epoch_gflops', fs.flops / 1e9 / dmf_perf.jnum(s.info, 'seconds_per_epoch'), 'GFLOP/s', 'FLOPs of an epoch / seconds per epoch'),
        (8, 'peak_memory', s.vmhwm_kb / 1024.0, 'MB', 'peak resident memory of the training backend (VmHWM)'),
        (9, 'model_size', dmf_perf.jnum(s.info, 'size_bytes') / 1048576.0, 'MB', 'the model (dmf_info size_bytes)'),
        (10, 'bytes_per_user', dmf_perf.jnum(s.info, 'size_bytes') / dmf_perf.jnum(s.info, 'users'), 'B', 'model size / users'),
        (11, 'bytes_per_item', dmf_perf.jnum(s.info, 'size_bytes') / dmf_perf.jnum(s.info, 'items'), 'B', 'model size / items'),
        (12, 'bytes_per_rating', dmf_perf.jnum(s.info, 'size_bytes') / dmf_perf.jnum(s.info, 'rows'), 'B', 'model size / ratings')
     ) x (o, k, v, u, w)
WHERE s.name = 'scale' AND b.name = 'threads_2'
ORDER BY x.o;
-- what each user, item and rating adds to a model (plan_sections in src/core/model_encode.c): an
-- id (8 B), an input index (4 B), a factor and an anchor (2 x dim x 4 B), a row of the other
-- branch's first layer (width x 4 B), for a user also its offset in the rated pairs (8 B);
-- a rating, its entry in the rated pairs (4 B)
SELECT dmf_perf.note(8, format('Model layout: a user adds 8 + 4 + 8 + 8 x %s + 4 x %s = %s B (id, input index, offset of its rated items, factor and anchor, a row of the item branch''s first layer), an item %s B likewise (no offset), a rating 4 B (who rated what, for dmf_recommend); %s users, %s items, %s ratings make %s MB of the %s MB.',
           d, w, 20 + 8 * d + 4 * w, 12 + 8 * d + 4 * wi, u, i, r,
           round(((20 + 8 * d + 4 * w) * u + (12 + 8 * d + 4 * wi) * i + 4 * r) / 1048576.0),
           round(sz / 1048576.0)))
FROM (SELECT dmf_perf.jnum(info, 'dim')::int AS d, (info -> 'item_branch' ->> 1)::int AS w,
             (info -> 'user_branch' ->> 1)::int AS wi, dmf_perf.jnum(info, 'users')::bigint AS u,
             dmf_perf.jnum(info, 'items')::bigint AS i, dmf_perf.jnum(info, 'rows')::bigint AS r,
             dmf_perf.jnum(info, 'size_bytes') AS sz
      FROM dmf_perf.runs WHERE name = 'scale') x;
SQL
    else
        note 8 "training did not finish: $(q -c "SELECT coalesce(error, 'no model') FROM dmf_perf.runs WHERE name = 'scale'")"
    fi
    ((quick)) && note 8 "Options as in section 2 (--quick: $user_options), threads 2; the ratio compares with the --quick data, not ML-1M."
else
    note 8 "not run: pass --scale (70,000 users x 10,000 items x 10M ratings; --scale-factor F for a smaller one)"
fi

# --- outputs -------------------------------------------------------------------------------
load_end=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
note 2 "Load average (1, 5, 15 min) at the start $load_start, at the end $load_end: other jobs on this machine slow every figure here."
q -c "\\copy (SELECT section, key, value, unit, what FROM dmf_perf.results ORDER BY section, ord) TO '$out/perf.csv' WITH (FORMAT csv, HEADER)"
q -c "\\copy (SELECT name, relation, options, wall_seconds, vmhwm_kb, info - 'history' AS info, error FROM dmf_perf.runs ORDER BY name) TO '$out/runs.csv' WITH (FORMAT csv, HEADER)"
q -c "\\copy (SELECT r.name, (h ->> 'epoch')::int AS epoch, (h ->> 'train_rmse')::float8 AS train_rmse, (h ->> 'validation_rmse')::float8 AS validation_rmse, (h ->> 'seconds')::float8 AS seconds FROM dmf_perf.runs r, jsonb_array_elements(r.info -> 'history') h ORDER BY 1, 2) TO '$out/history.csv' WITH (FORMAT csv, HEADER)"
q -c "\\copy (SELECT * FROM dmf_perf.flops ORDER BY run, component) TO '$out/flops.csv' WITH (FORMAT csv, HEADER)"
q -c "\\copy (SELECT * FROM dmf_perf.timings ORDER BY label, rep) TO '$out/timings.csv' WITH (FORMAT csv, HEADER)"
for name in $(q -c "SELECT name FROM dmf_perf.runs WHERE info IS NOT NULL ORDER BY name"); do
    q -v n="$name" <<<"SELECT jsonb_pretty(info - 'history') FROM dmf_perf.runs WHERE name = :'n'" >"$out/info_$name.json"
done
q -f "$SQL_DIR/perf_report.sql" >"$out/tables.md"
cat "$out/tables.md"
cat "$out/machine.md" "$out/tables.md" >"$out/report.md"
rm -f "$out/tables.md"

if [[ ${DMF_PERF_KEEP:-0} != 1 ]]; then
    q -c "SET client_min_messages = warning; DROP TABLE IF EXISTS dmf_perf.pairs, dmf_perf.scale_ratings; DELETE FROM dmf_perf.models"
fi
log "report: $out/report.md"
