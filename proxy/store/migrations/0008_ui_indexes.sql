-- The usage charts (admin UI) read /global/spend/report one day at a time, grouped by key,
-- team, user or model. This covering index serves every such range from the index alone
-- (no row lookups, ~27k index entries per day at 10M rows a year), and stops SQLite from
-- walking the per-key index once per key (a skip-scan over 100k keys) for the GROUP BY.
CREATE INDEX IF NOT EXISTS spend_logs_time_rollup ON spend_logs (
    start_time, model, team_id, user_id, key_hash,
    cost, prompt_tokens, completion_tokens, total_tokens, cache_hit, saved_cost
);
