#!/usr/bin/env bash
# The dmf benchmark in one command: the protocol of docs/evaluation.md (splits by hashtext,
# P1 matrix completion, P2 extendability areas I-IV), baselines on the same split, DMF,
# DMF rounded and DMF-D, time and memory. A markdown report goes to stdout; raw CSV,
# dmf_info JSON and plots go to the output directory.
#
#   test/bench/bench.sh [--data PATH] [--seeds 1,2,3,4,5] [--quick] [--options JSON]
#                       [--out DIR] [--protocols p1,p2] [--baselines-only]
#
# --data PATH      ratings file: MovieLens ratings.dat ("::"), u.data (tabs), or CSV
#                  user_id,item_id,rating[,timestamp] (header optional). Default: $DMF_BENCH_DATA,
#                  else ../shared/data/ml-1m/ratings.csv beside the project root if it exists.
#                  The file is streamed into the database; nothing is copied into the project.
# --seeds LIST     split seeds (default 1,2,3,4,5)
# --quick          a deterministic synthetic MovieLens-shaped data set generated in SQL
#                  (600 users x 400 items), seed 1 only, few epochs (--options still apply)
# --options JSON   dmf_train options merged into every training (they override the defaults
#                  {"seed": <split seed>, "verbose": true}; "validation" is always the split's)
# --out DIR        output directory (default test/bench/results/<timestamp>)
# --protocols L    p1, p2 or p1,p2 (default)
# --baselines-only skip DMF (also what happens when the extension is not installed)
#
# Server: with DMF_USE_EXISTING=1, or PGHOST / PGPORT / PGDATABASE / PGSERVICE set, the
# server those name is used (the extension must be installed there). Otherwise
# test/lib/cluster.sh builds and installs the extension and starts a throwaway cluster.
# Objects go to schema dmf_bench, which is dropped and recreated at the start.
#
# Tunables (environment): DMF_BENCH_LAMBDA_U (10), DMF_BENCH_LAMBDA_I (25), DMF_BENCH_ROUNDS (5)
# for the bias baseline; DMF_BENCH_MF_OPTIONS for the MF yardstick (test/bench/mf_baseline.c,
# default: the settings chosen on seed 1's validation split, docs/bench/search.md);
# DMF_BENCH_QUICK_OPTIONS ('{"epochs": 5}') for --quick;
# DMF_BENCH_KEEP_MODELS=1 keeps the trained models in dmf_bench.models.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/../.." && pwd)
SQL_DIR=$BENCH_DIR/sql
# shellcheck source=test/bench/ratings_file.sh
source "$BENCH_DIR/ratings_file.sh"

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

data=${DMF_BENCH_DATA:-}
seeds=1,2,3,4,5
seeds_given=0
quick=0
user_options='{}'
out=
protocols=p1,p2
baselines_only=0
while (($#)); do
    case $1 in
        --data) data=${2:?--data needs a path}; shift 2 ;;
        --data=*) data=${1#*=}; shift ;;
        --seeds) seeds=${2:?--seeds needs a list}; seeds_given=1; shift 2 ;;
        --seeds=*) seeds=${1#*=}; seeds_given=1; shift ;;
        --quick) quick=1; shift ;;
        --options) user_options=${2:?--options needs JSON}; shift 2 ;;
        --options=*) user_options=${1#*=}; shift ;;
        --out) out=${2:?--out needs a directory}; shift 2 ;;
        --out=*) out=${1#*=}; shift ;;
        --protocols) protocols=${2:?--protocols needs a list}; shift 2 ;;
        --protocols=*) protocols=${1#*=}; shift ;;
        --baselines-only) baselines_only=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done

lambda_u=${DMF_BENCH_LAMBDA_U:-10}
lambda_i=${DMF_BENCH_LAMBDA_I:-25}
rounds=${DMF_BENCH_ROUNDS:-5}
mf_options=${DMF_BENCH_MF_OPTIONS:---dim 100 --lr 0.005 --reg 0.04 --init 0.01 --fold-reg 15}
quick_options=${DMF_BENCH_QUICK_OPTIONS:-'{"epochs": 5}'}

# --- arguments ---------------------------------------------------------------------------
if ((quick)); then
    ((seeds_given)) || seeds=1
    [[ -z $data || -n ${DMF_BENCH_DATA:-} ]] || log "--quick: ignoring --data, using synthetic data"
    data=
else
    if [[ -z $data ]]; then
        candidate=${DMF_ROOT:-$ROOT}/../shared/data/ml-1m/ratings.csv
        if [[ -f $candidate ]]; then data=$candidate; fi
        [[ -n $data ]] || die "no ratings file: pass --data PATH or set DMF_BENCH_DATA (MovieLens: https://grouplens.org/datasets/movielens/), or use --quick"
    fi
    [[ -f $data && -r $data ]] || die "cannot read ratings file $data"
    data=$(cd "$(dirname "$data")" && pwd)/$(basename "$data")
fi
[[ $seeds =~ ^[0-9]+(,[0-9]+)*$ ]] || die "--seeds must be a comma-separated list of integers: $seeds"
IFS=, read -r -a seed_list <<<"$seeds"
do_p1=false; do_p2=false
IFS=, read -r -a proto_list <<<"${protocols,,}"
for p in "${proto_list[@]}"; do
    case $p in p1) do_p1=true ;; p2) do_p2=true ;; *) die "--protocols: unknown protocol $p" ;; esac
done
for v in lambda_u lambda_i rounds; do
    [[ ${!v} =~ ^[0-9]+([.][0-9]+)?$ ]] || die "$v must be a number: ${!v}"
done

[[ -n $out ]] || out=$BENCH_DIR/results/$(date +%Y%m%d-%H%M%S)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/dmf-bench.XXXXXX")
export DMF_BENCH_HWMFILE=$tmp/vmhwm

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
have_dmf=0
if ((baselines_only)); then
    log "--baselines-only: DMF skipped"
else
    if [[ $(q -c "SELECT count(*) FROM pg_proc WHERE proname = 'dmf_train' AND pg_function_is_visible(oid)") == 0 &&
          $(q -c "SELECT count(*) FROM pg_available_extensions WHERE name = 'dmf'") != 0 ]]; then
        q -c 'SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS dmf'
        ext_schema=$(q -c "SELECT extnamespace::regnamespace FROM pg_extension WHERE extname = 'dmf'")
        if [[ $(q -v s="$ext_schema" <<<"SELECT :'s' = ANY (current_schemas(false))") != t ]]; then
            export PGOPTIONS="${PGOPTIONS:-} -c search_path=public,$ext_schema"
        fi
    fi
    have_dmf=1
fi
has_fn() {
    ((have_dmf)) || { echo 0; return; }
    q -v f="$1" <<<"SELECT count(*) FROM pg_proc WHERE proname = :'f' AND pg_function_is_visible(oid)"
}
has_train=$(has_fn dmf_train); has_predict=$(has_fn dmf_predict); has_info=$(has_fn dmf_info)
has_refresh=$(has_fn dmf_refresh); has_discrete=$(has_fn dmf_predict_discrete)
if ((have_dmf)) && [[ $has_train == 0 || $has_predict == 0 ]]; then
    # --quick is the smoke test (CI): it must exercise the extension
    ((quick)) && die "extension dmf not installed (or dmf_train / dmf_predict missing); --baselines-only runs without it"
    log "WARNING: extension dmf not installed (or dmf_train / dmf_predict missing): only the baselines run"
    have_dmf=0
fi
[[ $has_info != 0 ]] && has_info=true || has_info=false

mkdir -p "$out"
out=$(cd "$out" && pwd)

# --- machine -----------------------------------------------------------------------------
threads=$(q -v o="$user_options" <<<"SELECT coalesce(:'o'::jsonb ->> 'threads', 'extension default')")
server_local=no
[[ -z ${PGHOST:-} || ${PGHOST:-} == /* || ${PGHOST:-} == localhost || ${PGHOST:-} == 127.0.0.1 ]] && server_local=yes
{
    echo "## dmf benchmark"
    echo
    if ((quick)); then
        echo "- data: synthetic (--quick: 600 users x 400 items, generated in SQL); the paper's figures are for MovieLens-1M"
    else
        echo "- data: $(basename "$(dirname "$data")")/$(basename "$data")"
    fi
    echo "- seeds: $seeds; protocols: $protocols; dmf_train options: $user_options"
    echo "- baselines: global mean of the training ratings; mu + b_u + b_i (lambda_u $lambda_u, lambda_i $lambda_i, $rounds alternating rounds, clamped to the rating range)"
    echo "- MF yardstick: mu + b_u + b_i + p_u.q_i by SGD over shuffled ratings with early stopping on validation (test/bench/mf_baseline.c, one thread: $mf_options); P2: new users and items folded in by ridge regression against the frozen other side"
    echo "- CPU: $(grep -m1 '^model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || echo unknown); cores: $(nproc 2>/dev/null || echo ?) (this machine; server local: $server_local)"
    echo "- PostgreSQL: $(q -c 'SHOW server_version')"
    echo "- OpenBLAS: $(dpkg-query -W -f='${Package} ${Version}\n' 'libopenblas0*' 2>/dev/null | awk 'NF == 2' | paste -sd ';' | sed 's/;/; /g' || true)"
    echo "- threads option: $threads"
    if ((have_dmf)); then
        echo "- dmf: $(q -c "SELECT coalesce((SELECT extversion FROM pg_extension WHERE extname = 'dmf'), 'functions without the extension')")"
    else
        echo "- dmf: not run (baselines only)"
    fi
} >"$out/machine.md"
cat "$out/machine.md"

# --- data --------------------------------------------------------------------------------
qf -f "$SQL_DIR/setup.sql"
if ((quick)); then
    log "generating the synthetic data set"
    qf -f "$SQL_DIR/synth.sql"
else
    log "loading $data"
    dmf_bench_copy_ratings "$data" dmf_bench.raw
fi
q -f "$SQL_DIR/prepare.sql" | while IFS= read -r line; do log "$line"; done

# --- the MF yardstick --------------------------------------------------------------------
mf_bin=$tmp/mf_baseline
if ! gcc -std=gnu99 -O2 -o "$mf_bin" "$BENCH_DIR/mf_baseline.c" -lm; then
    log "WARNING: could not build test/bench/mf_baseline.c: no MF yardstick"
    mf_bin=
fi
mf() { # seed protocol train val test_table by_area [fold_table]
    local s=$1 f summary
    for f in train:"$3" val:"$4" test:"$5" ${7:+fold:"$7"}; do
        q -c "\\copy (SELECT user_id, item_id, rating FROM ${f#*:}) TO '$tmp/mf_${f%%:*}.tsv'"
    done
    log "$2 seed $s: MF yardstick ($mf_options) on $3"
    # shellcheck disable=SC2086  # the options are words
    summary=$("$mf_bin" --train "$tmp/mf_train.tsv" --val "$tmp/mf_val.tsv" --test "$tmp/mf_test.tsv" \
              --out "$tmp/mf_pred.tsv" ${7:+--fold "$tmp/mf_fold.tsv"} --seed "$s" \
              --min "$(q -c 'SELECT min(level) FROM dmf_bench.levels')" \
              --max "$(q -c 'SELECT max(level) FROM dmf_bench.levels')" $mf_options) \
        || die "mf_baseline failed on $2 seed $s"
    log "$2 seed $s: MF $summary"
    q -c 'DROP TABLE IF EXISTS dmf_bench.mf_pred' \
      -c 'CREATE TABLE dmf_bench.mf_pred (user_id bigint, item_id bigint, p float8)' \
      -c "\\copy dmf_bench.mf_pred FROM '$tmp/mf_pred.tsv'"
    q -v seed="$s" -v protocol="$2" -v test="$5" -v by_area="$6" -v summary="$summary" \
        -f "$SQL_DIR/mf.sql" | while IFS= read -r line; do log "$line"; done
}

# --- runs --------------------------------------------------------------------------------
train() { # name seed protocol method train_table validation_table extra_json
    local opts
    opts=$(q -v s="$2" -v u="$user_options" -v v="$6" -v x="$7" <<<"
        SELECT (jsonb_build_object('seed', :'s'::int, 'verbose', true) || :'u'::jsonb || :'x'::jsonb
                || jsonb_build_object('validation', :'v'))::text")
    log "$3 seed $2: training $4 on $5 with $opts"
    : >"$DMF_BENCH_HWMFILE"
    qf -v name="$1" -v seed="$2" -v protocol="$3" -v method="$4" -v train_tbl="$5" -v opts="$opts" \
        -v has_info="$has_info" -f "$SQL_DIR/dmf_train.sql"
    record_hwm "$1" train_vmhwm_kb
}
record_hwm() { # when SQL could not read /proc, take what the shell read
    local kb
    kb=$(awk '/^VmHWM/ {print $2}' "$DMF_BENCH_HWMFILE" 2>/dev/null || true)
    [[ $kb =~ ^[0-9]+$ ]] || return 0
    q -v n="$1" -v kb="$kb" <<<"UPDATE dmf_bench.runs SET $2 = :kb WHERE name = :'n' AND $2 IS NULL"
}
predict() { # name model seed protocol method test_table by_area discrete dmfd_method
    log "$4 seed $3: predicting the test split with $2"
    q -v name="$1" -v model="$2" -v seed="$3" -v protocol="$4" -v method="$5" -v test_tbl="$6" \
        -v by_area="$7" -v discrete="$8" -v dmfd_method="$9" -f "$SQL_DIR/dmf_predict.sql" \
        | while IFS= read -r line; do log "$line"; done
}

if ((have_dmf)) && [[ $do_p2 == true && $has_refresh == 0 ]]; then
    log "NOTE: dmf_refresh does not exist in this version of the extension: DMF is skipped in P2 (baselines only)"
fi
if ((have_dmf)) && [[ $do_p1 == true && $has_discrete == 0 ]]; then
    log "NOTE: dmf_predict_discrete does not exist: DMF-D is skipped (DMF rounded is reported)"
fi

for s in "${seed_list[@]}"; do
    q -v seed="$s" -f "$SQL_DIR/split.sql" | while IFS= read -r line; do log "$line"; done
    log "seed $s: baselines (lambda_u $lambda_u, lambda_i $lambda_i, $rounds rounds)"
    q -v seed="$s" -v lambda_u="$lambda_u" -v lambda_i="$lambda_i" -v rounds="$rounds" \
        -v do_p1="$do_p1" -v do_p2="$do_p2" -f "$SQL_DIR/baselines.sql" | while IFS= read -r line; do log "$line"; done
    if [[ -n $mf_bin ]]; then
        if [[ $do_p1 == true ]]; then
            mf "$s" P1 "dmf_bench.train_s$s" "dmf_bench.val_s$s" "dmf_bench.test_s$s" false
        fi
        if [[ $do_p2 == true ]]; then
            # new users and items are folded in from the train ratings of every area
            mf "$s" P2 "dmf_bench.p2_train_s$s" "dmf_bench.p2_val_s$s" "dmf_bench.test_s$s" true "dmf_bench.train_s$s"
        fi
    fi
    ((have_dmf)) || continue
    if [[ $do_p1 == true ]]; then
        train "p1_s$s" "$s" P1 DMF "dmf_bench.train_s$s" "dmf_bench.val_s$s" '{}'
        predict "p1_s$s" "p1_s$s" "$s" P1 DMF "dmf_bench.test_s$s" false false ''
        if [[ $has_discrete != 0 ]]; then
            train "p1d_s$s" "$s" P1 DMF-D "dmf_bench.train_s$s" "dmf_bench.val_s$s" '{"discrete": true}'
            predict "p1d_s$s" "p1d_s$s" "$s" P1 'DMF-D continuous' "dmf_bench.test_s$s" false true DMF-D
        fi
    fi
    if [[ $do_p2 == true && $has_refresh != 0 ]]; then
        train "p2_s$s" "$s" P2 DMF "dmf_bench.p2_train_s$s" "dmf_bench.p2_val_s$s" '{}'
        log "P2 seed $s: dmf_refresh with every train rating (dmf_bench.train_s$s)"
        : >"$DMF_BENCH_HWMFILE"
        qf -v name="p2_s$s" -v rname="p2r_s$s" -v all_train="dmf_bench.train_s$s" -v has_info="$has_info" \
            -f "$SQL_DIR/dmf_refresh.sql"
        record_hwm "p2_s$s" refresh_vmhwm_kb
        predict "p2_s$s" "p2r_s$s" "$s" P2 DMF "dmf_bench.test_s$s" true false ''
    fi
    # dmf_info and the history are recorded; the models themselves take room (tens of MB on
    # ML-1M): they are dropped unless DMF_BENCH_KEEP_MODELS=1
    if [[ ${DMF_BENCH_KEEP_MODELS:-0} != 1 ]]; then
        q -v s="$s" <<<"DELETE FROM dmf_bench.models WHERE name IN ('p1_s' || :'s', 'p1d_s' || :'s', 'p2_s' || :'s', 'p2r_s' || :'s')"
    fi
done

# --- outputs -----------------------------------------------------------------------------
q -c "\\copy (SELECT * FROM dmf_bench.metrics ORDER BY protocol, method, area, seed) TO '$out/metrics.csv' WITH (FORMAT csv, HEADER)"
q -c "\\copy (SELECT * FROM dmf_bench.run_figures ORDER BY protocol, method, seed) TO '$out/runs.csv' WITH (FORMAT csv, HEADER)"
q -c "\\copy (SELECT * FROM dmf_bench.history ORDER BY name, epoch) TO '$out/history.csv' WITH (FORMAT csv, HEADER)"
for name in $(q -c "SELECT name FROM dmf_bench.runs WHERE info IS NOT NULL ORDER BY name"); do
    q -v n="$name" <<<"SELECT jsonb_pretty(info - 'history') FROM dmf_bench.runs WHERE name = :'n'" >"$out/info_$name.json"
done
for name in $(q -c "SELECT name FROM dmf_bench.runs WHERE refresh_info IS NOT NULL ORDER BY name"); do
    q -v n="$name" <<<"SELECT jsonb_pretty(refresh_info - 'history') FROM dmf_bench.runs WHERE name = :'n'" >"$out/info_${name}_refreshed.json"
done

q -f "$SQL_DIR/report.sql" >"$out/tables.md"
cat "$out/tables.md"   # machine info is already on stdout
cat "$out/machine.md" "$out/tables.md" >"$out/report.md"
rm -f "$out/tables.md"

# A broken model must not pass unnoticed: every DMF run scored something, and no NaN.
if ((have_dmf)); then
    bad=$(q <<<"SELECT string_agg(format('%s seed %s %s area %s: %s/%s predicted, RMSE %s', protocol, seed, method, area,
                                         covered, n, rmse), '; ')
                FROM dmf_bench.metrics
                WHERE method NOT IN ('global mean', 'bias')
                  AND (covered = 0 OR rmse IS NULL OR rmse = 'NaN' OR mae = 'NaN')")
    if [[ -n $bad ]]; then
        log "ERROR: DMF predictions are missing or NaN: $bad"
        exit_code=1
    fi
fi

# --- plots -------------------------------------------------------------------------------
plots() {
    # RMSE per protocol / area: global mean, bias, the MF yardstick, DMF (mean and std over
    # seeds), paper
    q -F ' ' <<'SQL' >"$out/rmse_by_area.dat"
SELECT v.label,
       coalesce(round(g.rmse::numeric, 4)::text, 'NaN'), coalesce(round(g.rmse_sd::numeric, 4)::text, '0'),
       coalesce(round(b.rmse::numeric, 4)::text, 'NaN'), coalesce(round(b.rmse_sd::numeric, 4)::text, '0'),
       coalesce(round(f.rmse::numeric, 4)::text, 'NaN'), coalesce(round(f.rmse_sd::numeric, 4)::text, '0'),
       coalesce(round(d.rmse::numeric, 4)::text, 'NaN'), coalesce(round(d.rmse_sd::numeric, 4)::text, '0'),
       v.paper, 0
FROM (VALUES (1, 'P1', 'P1', 'all', 0.850), (2, 'P2-I', 'P2', 'I', 0.850), (3, 'P2-II', 'P2', 'II', 0.883),
             (4, 'P2-III', 'P2', 'III', 0.864), (5, 'P2-IV', 'P2', 'IV', 0.904)) v (ord, label, protocol, area, paper)
LEFT JOIN dmf_bench.summary g ON (g.protocol, g.area, g.method) = (v.protocol, v.area, 'global mean')
LEFT JOIN dmf_bench.summary b ON (b.protocol, b.area, b.method) = (v.protocol, v.area, 'bias')
LEFT JOIN dmf_bench.summary f ON (f.protocol, f.area, f.method) = (v.protocol, v.area, 'MF')
LEFT JOIN dmf_bench.summary d ON (d.protocol, d.area, d.method) = (v.protocol, v.area, 'DMF')
WHERE EXISTS (SELECT FROM dmf_bench.summary s WHERE s.protocol = v.protocol)
ORDER BY v.ord
SQL
    if [[ -s $out/rmse_by_area.dat ]]; then
        # only the series that have a number (gnuplot rejects an all-missing histogram column)
        local series='' col title ymin
        # the bars start a little below the smallest RMSE
        ymin=$(awk '{for (c = 2; c <= 10; c += 2) if ($c != "NaN" && (m == "" || $c < m)) m = $c}
                    END {printf "%.2f", (m == "" ? 0 : int(m * 20 - 1) / 20)}' "$out/rmse_by_area.dat")
        for col in 2:'global mean' 4:'mu + b_u + b_i' 6:'biased MF' 8:DMF 10:'paper DMF (ML-1M)'; do
            title=${col#*:}; col=${col%%:*}
            awk -v c="$col" '$c != "NaN" {found = 1} END {exit !found}' "$out/rmse_by_area.dat" || continue
            if [[ -z $series ]]; then
                series="'$out/rmse_by_area.dat' using $col:$((col + 1)):xtic(1) title '$title'"
            else
                series+=", '' using $col:$((col + 1)) title '$title'"
            fi
        done
        gnuplot <<GP
set terminal pngcairo size 900,540 noenhanced
set output '$out/rmse_by_area.png'
set title 'Test RMSE per protocol and area (mean and std over seeds $seeds)'
set ylabel 'RMSE'
set yrange [$ymin:*]
set grid ytics
set key outside right top
set style data histograms
set style histogram errorbars gap 1 lw 1
set style fill solid 0.8 border -1
set boxwidth 0.9
plot $series
GP
    fi
    # validation RMSE per epoch, one line per training run
    local names max_epoch
    max_epoch=$(q -c "SELECT coalesce(max(epoch), 0) FROM dmf_bench.history")
    names=$(q -c "SELECT string_agg(DISTINCT name, ' ' ORDER BY name) FROM dmf_bench.history WHERE validation_rmse IS NOT NULL")
    if [[ -n $names ]]; then
        local plot_cmd='' n
        for n in $names; do
            plot_cmd+="${plot_cmd:+, }'$out/history.csv' using 2:(strcol(1) eq '$n' ? column('validation_rmse') : NaN) with linespoints title '$n'"
        done
        gnuplot <<GP
set terminal pngcairo size 900,540 noenhanced
set output '$out/validation_rmse.png'
set datafile separator ','
set key autotitle columnhead
set title 'Validation RMSE per epoch'
set xlabel 'epoch'
$( ((max_epoch <= 25)) && echo 'set xtics 1' )
set ylabel 'validation RMSE'
set grid
set key outside right top
plot $plot_cmd
GP
    fi
}
if command -v gnuplot >/dev/null 2>&1; then
    plots || log "WARNING: plotting failed"
    pngs=("$out"/*.png)
    if [[ -e ${pngs[0]} ]]; then log "plots: ${pngs[*]##*/}"; fi
else
    log "gnuplot not found: no plots"
fi
log "results in $out"
exit "${exit_code:-0}"
