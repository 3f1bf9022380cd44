-- Every request writes a spend_logs row, and each index on the table adds to what the
-- flusher spends on it (~37 us of CPU a row with migration 0011's ten indexes, ~20 us with
-- none). Two kinds of entries cost without serving a query.

-- The reply id index was never used: the only query on response_id is the id lookup of
-- /spend/logs, `request_id = ? OR call_id = ? OR response_id = ?`, and call_id has no
-- index, so SQLite scans the table for it whatever response_id has. Its random keys made
-- it the dearest index to keep up: ~9 us a row.
DROP INDEX IF EXISTS spend_logs_response_id;

-- Most calls have no team or user, yet each got an entry here under NULL. Every query on
-- these columns filters with `col = ?`, which SQLite serves from a `col IS NOT NULL`
-- partial index; a report grouped by team or user over the whole table reads the covering
-- spend_logs_time_rollup instead (10 s rather than 23 s at 10M rows). ~1-2 us a row.
DROP INDEX IF EXISTS spend_logs_team_time;
CREATE INDEX spend_logs_team_time ON spend_logs (team_id, start_time)
    WHERE team_id IS NOT NULL;
DROP INDEX IF EXISTS spend_logs_user_time;
CREATE INDEX spend_logs_user_time ON spend_logs (user_id, start_time)
    WHERE user_id IS NOT NULL;

-- Kept whole, on purpose:
-- * spend_logs_start_time, though a prefix of spend_logs_time_rollup: the logs list is
--   ordered by (start_time, rowid), which only this index holds; with the rollup's order
--   SQLite sorts every skipped row too (the 1000th page of 50 rows: 4 ms -> 114 ms at
--   10M rows), to save ~2-3 us a row.
-- * spend_logs_end_user_time: end_user is in no covering index, so a partial one leaves a
--   report grouped by end user over the whole table to a scan and sort (8 s -> 13 s at
--   10M rows), for a saving per row too small to measure.
-- * spend_logs_key_time and spend_logs_model_time: almost every row has a key and a model.
