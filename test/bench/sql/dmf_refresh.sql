-- P2: extend a trained model with the train ratings of every area (no retraining).
-- psql variables: name (trained model), rname (refreshed model), all_train, has_info.
SET client_min_messages = warning;
DELETE FROM dmf_bench.models WHERE name = :'rname';
SELECT pg_backend_pid() AS bpid \gset
\setenv DMF_BENCH_BPID :bpid
SET client_min_messages = notice;
SELECT clock_timestamp() AS t0 \gset
INSERT INTO dmf_bench.models (name, model)
SELECT :'rname', dmf_refresh(model, :'all_train'::regclass, 'user_id', 'item_id', 'rating')
FROM dmf_bench.models WHERE name = :'name';
SELECT extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) AS secs \gset
SET client_min_messages = warning;
\! grep -s '^VmHWM' "/proc/$DMF_BENCH_BPID/status" > "$DMF_BENCH_HWMFILE" 2>/dev/null; grep -qs postgres "/proc/$DMF_BENCH_BPID/cmdline" || : > "$DMF_BENCH_HWMFILE"
UPDATE dmf_bench.runs SET refresh_seconds = :secs, refresh_vmhwm_kb = dmf_bench.vmhwm_kb() WHERE name = :'name';
\if :has_info
\o /dev/null
UPDATE dmf_bench.runs r SET refresh_info = dmf_info(m.model) FROM dmf_bench.models m
WHERE r.name = :'name' AND m.name = :'rname';
\o
\endif
