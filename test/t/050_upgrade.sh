#!/usr/bin/env bash
# Every release's install script plus the upgrade scripts must give the same
# extension as installing the current version directly: same functions with
# the same signatures, volatility, strictness, parallel safety, rows and C
# symbols, same aggregates. Also: every upgrade path from each older version
# exists, a model trained before the upgrade keeps working after it, and
# privileges on a function an upgrade replaces (dmf_train in 0.7.0) are kept.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# one version number, dmf.control's: the Makefile and the library take it
# from there, META.json and CHANGELOG.md (its first release heading, after
# any "## Unreleased") must state the same
control=$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$root/dmf.control")
declare -A stated=(
    [META.json]=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$root/META.json")
    [META.json provides]=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["provides"]["dmf"]["version"])' "$root/META.json")
    [CHANGELOG.md]=$(sed -n 's/^## //p' "$root/CHANGELOG.md" | grep -vx 'Unreleased' | head -n 1)
)
for f in "${!stated[@]}"; do
    [[ ${stated[$f]} == "$control" ]] || { echo "$f says version ${stated[$f]}, dmf.control $control"; exit 1; }
done
# like contrib's modules, a release adds an upgrade script, not a copy of the
# install script: the current version installs through a chain from the
# last full script
[[ -f $root/sql/dmf--$control.sql ]] || compgen -G "$root/sql/dmf--*--$control.sql" >/dev/null ||
    { echo "no install or upgrade script gives version $control"; exit 1; }
grep -q '^EXTVERSION :=.*dmf\.control' "$root/Makefile" ||
    { echo "the Makefile does not take EXTVERSION from dmf.control"; exit 1; }
echo "version $control in dmf.control (the Makefile and the library take it from there), META.json and CHANGELOG.md"

fresh=dmf_t_upgrade_fresh
upgraded=dmf_t_upgrade_path
q() { psql -X -q -v ON_ERROR_STOP=1 -At "$@"; }
cleanup() {
    for db in $fresh $upgraded; do
        psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
    done
    psql -X -q -d postgres -c "DROP ROLE IF EXISTS dmf_t050_trainer" -c "DROP ROLE IF EXISTS dmf_t050_other" \
        >/dev/null 2>&1 || true
}
trap cleanup EXIT
cleanup

# what the extension consists of, independent of OIDs and install order
catalog() {
    q -d "$1" <<'SQL'
SELECT 'function ' || p.oid::regprocedure || ' returns ' || pg_get_function_result(p.oid)
       || ' volatile=' || p.provolatile::text || ' strict=' || p.proisstrict::text
       || ' parallel=' || p.proparallel::text || ' rows=' || p.prorows::text || ' kind=' || p.prokind::text
       || ' symbol=' || p.prosrc
       || coalesce(' args=' || pg_get_function_arguments(p.oid), '')
FROM pg_depend d JOIN pg_proc p ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
JOIN pg_extension e ON d.refobjid = e.oid AND d.refclassid = 'pg_extension'::regclass
WHERE e.extname = 'dmf' AND d.deptype = 'e'
UNION ALL
SELECT 'aggregate ' || a.aggfnoid::regprocedure || ' sfunc=' || a.aggtransfn::regproc
       || ' final=' || a.aggfinalfn::regproc || ' combine=' || a.aggcombinefn::regproc
       || ' serial=' || a.aggserialfn::regproc || ' deserial=' || a.aggdeserialfn::regproc
FROM pg_aggregate a JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = a.aggfnoid
JOIN pg_extension e ON d.refobjid = e.oid AND d.refclassid = 'pg_extension'::regclass
WHERE e.extname = 'dmf' AND d.deptype = 'e'
UNION ALL
SELECT 'object ' || pg_describe_object(d.classid, d.objid, d.objsubid)
FROM pg_depend d JOIN pg_extension e ON d.refobjid = e.oid AND d.refclassid = 'pg_extension'::regclass
WHERE e.extname = 'dmf' AND d.deptype = 'e' AND d.classid <> 'pg_proc'::regclass
ORDER BY 1;
SQL
}

q -d postgres -c "CREATE DATABASE $fresh" -c "CREATE DATABASE $upgraded" \
    -c "DROP ROLE IF EXISTS dmf_t050_trainer" -c "DROP ROLE IF EXISTS dmf_t050_other" \
    -c "CREATE ROLE dmf_t050_trainer" -c "CREATE ROLE dmf_t050_other"
q -d $fresh -c "CREATE EXTENSION dmf"
current=$(q -d $fresh -c "SELECT extversion FROM pg_extension WHERE extname = 'dmf'")
default=$(q -d $fresh -c "SELECT default_version FROM pg_available_extensions WHERE name = 'dmf'")
echo "current version $current (default $default)"
[[ $current == "$default" ]] || { echo "CREATE EXTENSION did not install the default version"; exit 1; }
# the installed library says the same version in the models it writes
library=$(q -d $fresh <<'SQL'
CREATE TEMP TABLE r AS SELECT u AS user_id, i AS item_id, 1 + (u * i) % 5 AS rating
FROM generate_series(1, 20) u, generate_series(1, 10) i;
SELECT dmf_info(dmf_train('r', options => '{"epochs": 1, "layers": [4], "dim": 2}')) ->> 'dmf_version';
SQL
)
[[ $library == "$current" ]] || { echo "the library says version $library, the extension $current"; exit 1; }
echo "the library writes version $library into its models"

# every older version that ships an install script must reach the current one
mapfile -t older < <(q -d $fresh -c "SELECT version FROM pg_available_extension_versions
                                     WHERE name = 'dmf' AND version <> '$current' ORDER BY version")
((${#older[@]} > 0)) || { echo "no older version to upgrade from"; exit 1; }
want=$(catalog $fresh)
status=0
for v in "${older[@]}"; do
    q -d $upgraded -c "SET client_min_messages = warning" -c "DROP EXTENSION IF EXISTS dmf CASCADE" -c "CREATE EXTENSION dmf VERSION '$v'"
    path=$(q -d $upgraded -c "SELECT path FROM pg_extension_update_paths('dmf')
                              WHERE source = '$v' AND target = '$current'")
    if [[ -z $path ]]; then
        echo "no upgrade path from $v to $current"
        status=1
        continue
    fi
    # a model trained with the old version is an ordinary value: it survives
    q -d $upgraded <<'SQL'
SET client_min_messages = warning;
DROP TABLE IF EXISTS r, m;
CREATE TABLE r AS
SELECT u AS user_id, i AS item_id, 1 + (u * 7 + i * 3) % 5 AS rating
FROM generate_series(1, 40) u, generate_series(1, 30) i WHERE (u + i) % 3 = 0;
CREATE TABLE m AS
SELECT dmf_train('r', options => '{"epochs": 2, "layers": [8], "dim": 4, "threads": 1}') AS model;
CREATE TABLE before AS SELECT dmf_predict(model, 1, 2) AS p FROM m;
SQL
    # a site's privileges on dmf_train survive the update that replaces it
    q -d $upgraded <<'SQL'
DO $$
DECLARE f regprocedure := (SELECT oid FROM pg_proc WHERE proname = 'dmf_train');
BEGIN
    EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f);
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO dmf_t050_trainer', f);
END $$;
SQL
    q -d $upgraded -c "ALTER EXTENSION dmf UPDATE"
    acl=$(q -d $upgraded -c "SELECT has_function_privilege('dmf_t050_trainer', oid, 'EXECUTE')::text || ' '
                                    || has_function_privilege('dmf_t050_other', oid, 'EXECUTE')::text
                             FROM pg_proc WHERE proname = 'dmf_train'")
    [[ $acl == "true false" ]] || { echo "upgrade $path: dmf_train's privileges were not kept: $acl"; status=1; }
    got=$(catalog $upgraded)
    if [[ $got != "$want" ]]; then
        echo "upgrade $path differs from a fresh install of $current:"
        diff <(printf '%s\n' "$want") <(printf '%s\n' "$got") || true
        status=1
    else
        echo "upgrade $path: same $(wc -l <<<"$got") objects as a fresh install"
    fi
    same=$(q -d $upgraded -c "SELECT bool_and(b.p = dmf_predict(m.model, 1, 2)) FROM before b, m")
    [[ $same == t ]] || { echo "a model trained before the upgrade predicts differently after it"; status=1; }
    q -d $upgraded -c "SELECT count(*) FROM m, dmf_recommend(m.model, 1, 3)" >/dev/null ||
        { echo "new functions fail on a model trained before the upgrade"; status=1; }
    q -d $upgraded -c "DROP TABLE before, m, r"
done
((status == 0)) && echo ok
exit $status
