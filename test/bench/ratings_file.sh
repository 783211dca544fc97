# shellcheck shell=bash
# Loading a MovieLens ratings file, shared by bench.sh and perf.sh (sourced; uses the caller's
# q (psql) and die functions).
#
#   dmf_bench_copy_ratings FILE TABLE
#
# FILE: ratings.dat ("::"), u.data (tabs) or CSV user_id,item_id,rating[,timestamp], header
# optional, CRLF or LF. It is streamed into TABLE (columns user_id, item_id, rating and ts for
# the timestamp) with \copy: nothing is copied anywhere else.
dmf_bench_copy_ratings() {
    local data=$1 table=$2 first copy_format sep header cols
    local -a reader fields
    first=$(head -n 1 "$data" | tr -d '\r')
    if [[ $first == *::* ]]; then
        reader=(sed -e 's/::/\t/g' -e 's/\r$//' "$data"); copy_format=text; sep=$'\t'
    elif [[ $first == *$'\t'* ]]; then
        reader=(sed -e 's/\r$//' "$data"); copy_format=text; sep=$'\t'
    else
        reader=(sed -e 's/\r$//' "$data"); copy_format=csv; sep=,
    fi
    [[ $copy_format == text ]] && first=${first//::/$'\t'}
    IFS=$sep read -r -a fields <<<"$first"
    header=false
    [[ ${fields[0]} =~ ^[[:space:]]*[0-9]+[[:space:]]*$ ]] || header=true
    case ${#fields[@]} in
        3) cols='user_id, item_id, rating' ;;
        4) cols='user_id, item_id, rating, ts' ;;
        *) die "$data: expected 3 or 4 fields per line (user, item, rating[, timestamp]), found ${#fields[@]}: $first" ;;
    esac
    if [[ $copy_format == csv ]]; then
        "${reader[@]}" | q -c "\\copy $table ($cols) FROM pstdin WITH (FORMAT csv, HEADER $header)"
    elif [[ $header == true ]]; then
        "${reader[@]}" | tail -n +2 | q -c "\\copy $table ($cols) FROM pstdin"
    else
        "${reader[@]}" | q -c "\\copy $table ($cols) FROM pstdin"
    fi
}
