-- Organizations, end users (customers) and reusable budgets (LiteLLM's names), and the end
-- user of every spend-log row. spend / budget_reset_at are the ledger flusher's, as for keys.

CREATE TABLE budgets (
    budget_id             TEXT PRIMARY KEY,
    max_budget            REAL,
    soft_budget           REAL,
    budget_duration       TEXT,
    rpm_limit             INTEGER,
    tpm_limit             INTEGER,
    max_parallel_requests INTEGER,
    created_at            REAL,
    updated_at            REAL,
    created_by            TEXT
);

CREATE TABLE end_users (
    user_id               TEXT PRIMARY KEY,
    alias                 TEXT,
    max_budget            REAL,
    budget_duration       TEXT,
    budget_reset_at       REAL,
    spend                 REAL NOT NULL DEFAULT 0,
    rpm_limit             INTEGER,
    tpm_limit             INTEGER,
    max_parallel_requests INTEGER,
    budget_id             TEXT,
    blocked               INTEGER NOT NULL DEFAULT 0,
    allowed_model_region  TEXT,
    default_model         TEXT,
    metadata              TEXT,                      -- JSON object
    created_at            REAL,
    updated_at            REAL
);

CREATE TABLE organizations (
    organization_id       TEXT PRIMARY KEY,
    organization_alias    TEXT,
    models                TEXT,                      -- JSON list
    max_budget            REAL,
    budget_duration       TEXT,
    budget_reset_at       REAL,
    spend                 REAL NOT NULL DEFAULT 0,
    rpm_limit             INTEGER,
    tpm_limit             INTEGER,
    max_parallel_requests INTEGER,
    budget_id             TEXT,
    blocked               INTEGER NOT NULL DEFAULT 0,
    metadata              TEXT,                      -- JSON object
    created_at            REAL,
    updated_at            REAL,
    created_by            TEXT
);

ALTER TABLE spend_logs ADD COLUMN end_user TEXT;
ALTER TABLE spend_logs ADD COLUMN organization_id TEXT;
CREATE INDEX spend_logs_end_user_time ON spend_logs (end_user, start_time);
