-- Tollway initial schema.
-- Timestamps are UNIX epoch seconds (REAL). JSON columns hold UTF-8 JSON text.
-- spend / budget_reset_at are written only by the ledger flusher (Store.apply_flush);
-- admin upserts never overwrite them.

CREATE TABLE keys (
    token_hash            TEXT PRIMARY KEY,          -- sha256 hex of the key, never the key
    key_alias             TEXT,
    key_name              TEXT,                      -- masked display form, e.g. "sk-...abcd"
    team_id               TEXT,
    user_id               TEXT,
    models                TEXT,                      -- JSON list
    max_budget            REAL,
    soft_budget           REAL,
    budget_duration       TEXT,
    budget_reset_at       REAL,
    spend                 REAL NOT NULL DEFAULT 0,
    rpm_limit             INTEGER,
    tpm_limit             INTEGER,
    max_parallel_requests INTEGER,
    metadata              TEXT,                      -- JSON object
    tags                  TEXT,                      -- JSON list
    blocked               INTEGER NOT NULL DEFAULT 0,
    key_type              TEXT,
    expires               REAL,
    created_at            REAL,
    updated_at            REAL,
    created_by            TEXT
);
CREATE INDEX keys_team_id ON keys (team_id);
CREATE INDEX keys_user_id ON keys (user_id);

CREATE TABLE teams (
    team_id               TEXT PRIMARY KEY,
    team_alias            TEXT,
    models                TEXT,                      -- JSON list
    max_budget            REAL,
    budget_duration       TEXT,
    budget_reset_at       REAL,
    spend                 REAL NOT NULL DEFAULT 0,
    rpm_limit             INTEGER,
    tpm_limit             INTEGER,
    max_parallel_requests INTEGER,
    members               TEXT,                      -- JSON list
    metadata              TEXT,                      -- JSON object
    blocked               INTEGER NOT NULL DEFAULT 0,
    created_at            REAL,
    updated_at            REAL
);

CREATE TABLE users (
    user_id               TEXT PRIMARY KEY,
    user_email            TEXT,
    user_role             TEXT,
    max_budget            REAL,
    budget_duration       TEXT,
    budget_reset_at       REAL,
    spend                 REAL NOT NULL DEFAULT 0,
    models                TEXT,                      -- JSON list
    rpm_limit             INTEGER,
    tpm_limit             INTEGER,
    max_parallel_requests INTEGER,
    metadata              TEXT,                      -- JSON object
    created_at            REAL,
    updated_at            REAL
);

CREATE TABLE spend_logs (
    request_id        TEXT NOT NULL UNIQUE,
    key_hash          TEXT,
    user_id           TEXT,
    team_id           TEXT,
    model             TEXT,                          -- requested model group
    deployment        TEXT,                          -- the deployment's provider/model
    prompt_tokens     INTEGER,
    completion_tokens INTEGER,
    cached_tokens     INTEGER,
    total_tokens      INTEGER,
    cost              REAL,
    latency_ms        REAL,
    status            TEXT,                          -- success | error | cancelled
    status_code       INTEGER,
    tags              TEXT,                          -- JSON list
    estimated         INTEGER NOT NULL DEFAULT 0,
    start_time        REAL,
    end_time          REAL
);
CREATE INDEX spend_logs_start_time ON spend_logs (start_time);
CREATE INDEX spend_logs_key_time ON spend_logs (key_hash, start_time);
CREATE INDEX spend_logs_team_time ON spend_logs (team_id, start_time);
CREATE INDEX spend_logs_user_time ON spend_logs (user_id, start_time);
CREATE INDEX spend_logs_model_time ON spend_logs (model, start_time);
