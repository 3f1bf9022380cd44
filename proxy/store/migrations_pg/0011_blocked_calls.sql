-- PostgreSQL version of migrations/0011_blocked_calls.sql: a partial index on the few blocked
-- calls, for the reports' guardrail-block counts.
CREATE INDEX IF NOT EXISTS spend_logs_blocked ON spend_logs (start_time)
    WHERE guardrails LIKE '%"action":"block"%';
