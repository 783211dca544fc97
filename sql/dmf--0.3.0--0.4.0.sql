-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION dmf UPDATE TO '0.4.0'" to load this file. \quit

-- 0.4.0 changes the library only (see CHANGELOG.md): no catalog object changes.
