-- PostgreSQL version of migrations/0012_lean_spend_log_indexes.sql: the reply id index is
-- never used (the id lookup ORs request_id, call_id and response_id, and call_id has no
-- index, so PostgreSQL scans the table for it) and costs every insert an entry.
DROP INDEX IF EXISTS spend_logs_response_id;
