-- PostgreSQL version of migrations/0003_guardrails.sql: what the guardrails decided (JSON).
ALTER TABLE spend_logs ADD COLUMN guardrails TEXT NOT NULL DEFAULT '[]';
