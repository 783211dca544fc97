-- One dmf_train call in a session of its own (so VmHWM is this training's peak): wall
-- clock, peak memory, dmf_info, or the error it raised.
-- psql variables: name, tbl, opts (jsonb text), setup (SQL run first, may be empty);
-- environment: DMF_PERF_HWMFILE (where the shell writes VmHWM when SQL cannot read it).
SET client_min_messages = warning;
DELETE FROM dmf_perf.models WHERE name = :'name';
DELETE FROM dmf_perf.runs WHERE name = :'name';
INSERT INTO dmf_perf.runs (name, relation, options) VALUES (:'name', :'tbl', :'opts');
SELECT pg_backend_pid() AS bpid \gset
\setenv DMF_PERF_BPID :bpid
:setup
SET client_min_messages = notice;
SELECT clock_timestamp() AS t0 \gset
-- an error is a result here (dmf.max_memory, the model size limit)
\set ON_ERROR_STOP 0
INSERT INTO dmf_perf.models (name, model)
SELECT :'name', dmf_train(:'tbl'::regclass, 'user_id', 'item_id', 'rating', :'opts'::jsonb);
\set train_failed :ERROR
\set ON_ERROR_STOP 1
SELECT extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) AS secs \gset
SET client_min_messages = warning;
-- peak memory: from SQL when allowed, else (local server) from the shell while the backend lives
\! grep -s '^VmHWM' "/proc/$DMF_PERF_BPID/status" > "$DMF_PERF_HWMFILE" 2>/dev/null; grep -qs postgres "/proc/$DMF_PERF_BPID/cmdline" || : > "$DMF_PERF_HWMFILE"
SELECT dmf_perf.vmhwm_kb() AS hwm \gset
\if :train_failed
UPDATE dmf_perf.runs SET wall_seconds = :secs, error = :'LAST_ERROR_MESSAGE' WHERE name = :'name';
\else
UPDATE dmf_perf.runs SET wall_seconds = :secs, vmhwm_kb = nullif(:'hwm', '')::bigint,
       info = (SELECT dmf_info(model) FROM dmf_perf.models WHERE name = :'name')
WHERE name = :'name';
\endif
