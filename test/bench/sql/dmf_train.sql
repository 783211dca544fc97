-- Train one model in this session and record wall time, peak backend memory and dmf_info.
-- psql variables: name, seed, protocol, method, train_tbl, opts (jsonb text), has_info;
-- environment: DMF_BENCH_HWMFILE (where the shell writes VmHWM when SQL cannot read it).
SET client_min_messages = warning;
DELETE FROM dmf_bench.models WHERE name = :'name';
DELETE FROM dmf_bench.runs WHERE name = :'name';
INSERT INTO dmf_bench.runs (name, seed, protocol, method) VALUES (:'name', :seed, :'protocol', :'method');
SELECT pg_backend_pid() AS bpid \gset
\setenv DMF_BENCH_BPID :bpid
SET client_min_messages = notice;
SELECT clock_timestamp() AS t0 \gset
INSERT INTO dmf_bench.models (name, model)
SELECT :'name', dmf_train(:'train_tbl'::regclass, 'user_id', 'item_id', 'rating', :'opts'::jsonb);
SELECT extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) AS secs \gset
SET client_min_messages = warning;
-- peak memory: from SQL when allowed, else (local server) from the shell while the backend lives
\! grep -s '^VmHWM' "/proc/$DMF_BENCH_BPID/status" > "$DMF_BENCH_HWMFILE" 2>/dev/null; grep -qs postgres "/proc/$DMF_BENCH_BPID/cmdline" || : > "$DMF_BENCH_HWMFILE"
UPDATE dmf_bench.runs SET train_seconds = :secs, train_vmhwm_kb = dmf_bench.vmhwm_kb() WHERE name = :'name';
\if :has_info
\o /dev/null
SELECT dmf_bench.record_info(:'name', dmf_info(model)) FROM dmf_bench.models WHERE name = :'name';
\o
\endif
