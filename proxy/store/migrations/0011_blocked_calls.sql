-- The usage reports count guardrail blocks per group. Reading the guardrails column for every
-- row of a day (27k rows a day at 10M a year) cost the by-key report its covering index
-- (161 -> 326 ms). Blocked calls are few: a partial index holds just them, and the reports
-- count them with a second query whose WHERE repeats this predicate word for word (SQLite
-- uses a partial index only then).
CREATE INDEX IF NOT EXISTS spend_logs_blocked ON spend_logs (start_time)
    WHERE guardrails LIKE '%"action":"block"%';
