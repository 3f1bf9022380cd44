-- What the guardrails decided on each call (JSON: name, direction, action, reason, ms).
ALTER TABLE spend_logs ADD COLUMN guardrails TEXT NOT NULL DEFAULT '[]';
