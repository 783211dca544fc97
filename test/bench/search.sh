#!/usr/bin/env bash
# The search behind dmf_train's defaults: each candidate option set is trained on the P1
# training split of one seed and judged by its RMSE on that seed's validation split only
# (dmf_info's best_validation_rmse); the test split is never read. Prints a markdown table.
#
#   test/bench/search.sh [--seed N] [OPTIONS_JSON ...]
#
# Needs the splits of bench.sh in schema dmf_bench on the server the PG* variables name:
#   DMF_USE_EXISTING=1 test/bench/bench.sh --seeds N --protocols p1 --baselines-only
# Without candidates it runs the list below, each a change of one default (the rounds that
# chose the defaults, with their candidate lists, are in docs/bench/search.md).
set -euo pipefail

seed=1
if [[ ${1:-} == --seed ]]; then seed=${2:?--seed needs a number}; shift 2; fi
candidates=("$@")
if ((${#candidates[@]} == 0)); then
    candidates=(
        '{}'
        '{"dropout": 0}'
        '{"learning_rate": 0.002}'
        '{"learning_rate": 0.004}'
        '{"batch_size": 16384}'
        '{"layers": [512]}'
        '{"dim": 64}'
        '{"l2": 0.00001}'
    )
fi
q() { psql -X -v ON_ERROR_STOP=1 -qAt "$@"; }
q -c "SELECT 1 FROM dmf_bench.train_s$seed, dmf_bench.val_s$seed LIMIT 1" >/dev/null ||
    { echo "no splits for seed $seed in schema dmf_bench: run bench.sh --baselines-only first" >&2; exit 1; }

echo "| options (over the defaults) | best validation RMSE | epochs (best) | s / epoch |"
echo "|---|---|---|---|"
for c in "${candidates[@]}"; do
    q -v o="$c" -v s="$seed" <<'SQL'
SET client_min_messages = warning;
WITH m AS (
    SELECT dmf_train(format('dmf_bench.train_s%s', :'s')::regclass,
                     options => :'o'::jsonb || jsonb_build_object('seed', :'s'::int,
                                                                 'validation', format('dmf_bench.val_s%s', :'s'))) AS model),
i AS (SELECT dmf_info(model) AS info FROM m)
SELECT format('| `%s` | %s | %s (%s) | %s |', :'o',
              round((info ->> 'best_validation_rmse')::numeric, 4),
              info ->> 'epochs_run', info ->> 'best_epoch',
              round((info ->> 'seconds_per_epoch')::numeric, 1))
FROM i;
SQL
done
