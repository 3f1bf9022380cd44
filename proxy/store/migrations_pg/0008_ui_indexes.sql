-- PostgreSQL version of migrations/0008_ui_indexes.sql: the usage charts read one day of
-- spend logs at a time grouped by key, team, user or model; served from the index alone.
CREATE INDEX IF NOT EXISTS spend_logs_time_rollup ON spend_logs (start_time)
    INCLUDE (model, team_id, user_id, key_hash, cost, prompt_tokens, completion_tokens,
             total_tokens, cache_hit, saved_cost);
