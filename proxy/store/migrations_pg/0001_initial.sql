-- Tollway initial schema, PostgreSQL version of migrations/0001_initial.sql.
-- Timestamps are UNIX epoch seconds (double precision). JSON columns hold JSON text, as in
-- SQLite, so one codec serves both stores. `seq` gives rows a stable insertion order (the
-- role SQLite's rowid plays). spend / budget_reset_at are written only by the ledger flush,
-- as increments beside the spend-log rows they come from.

CREATE TABLE keys (
    token_hash            TEXT PRIMARY KEY,
    key_alias             TEXT,
    key_name              TEXT,
    team_id               TEXT,
    user_id               TEXT,
    models                TEXT,
    max_budget            DOUBLE PRECISION,
    soft_budget           DOUBLE PRECISION,
    budget_duration       TEXT,
    budget_reset_at       DOUBLE PRECISION,
    spend                 DOUBLE PRECISION NOT NULL DEFAULT 0,
    rpm_limit             BIGINT,
    tpm_limit             BIGINT,
    max_parallel_requests BIGINT,
    metadata              TEXT,
    tags                  TEXT,
    blocked               BOOLEAN NOT NULL DEFAULT FALSE,
    key_type              TEXT,
    expires               DOUBLE PRECISION,
    created_at            DOUBLE PRECISION,
    updated_at            DOUBLE PRECISION,
    created_by            TEXT,
    seq                   BIGINT GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX keys_team_id ON keys (team_id);
CREATE INDEX keys_user_id ON keys (user_id);

CREATE TABLE teams (
    team_id               TEXT PRIMARY KEY,
    team_alias            TEXT,
    models                TEXT,
    max_budget            DOUBLE PRECISION,
    budget_duration       TEXT,
    budget_reset_at       DOUBLE PRECISION,
    spend                 DOUBLE PRECISION NOT NULL DEFAULT 0,
    rpm_limit             BIGINT,
    tpm_limit             BIGINT,
    max_parallel_requests BIGINT,
    members               TEXT,
    metadata              TEXT,
    blocked               BOOLEAN NOT NULL DEFAULT FALSE,
    created_at            DOUBLE PRECISION,
    updated_at            DOUBLE PRECISION,
    seq                   BIGINT GENERATED ALWAYS AS IDENTITY
);

CREATE TABLE users (
    user_id               TEXT PRIMARY KEY,
    user_email            TEXT,
    user_role             TEXT,
    max_budget            DOUBLE PRECISION,
    budget_duration       TEXT,
    budget_reset_at       DOUBLE PRECISION,
    spend                 DOUBLE PRECISION NOT NULL DEFAULT 0,
    models                TEXT,
    rpm_limit             BIGINT,
    tpm_limit             BIGINT,
    max_parallel_requests BIGINT,
    metadata              TEXT,
    created_at            DOUBLE PRECISION,
    updated_at            DOUBLE PRECISION,
    seq                   BIGINT GENERATED ALWAYS AS IDENTITY
);

CREATE TABLE spend_logs (
    request_id        TEXT NOT NULL UNIQUE,
    key_hash          TEXT,
    user_id           TEXT,
    team_id           TEXT,
    model             TEXT,
    deployment        TEXT,
    prompt_tokens     BIGINT,
    completion_tokens BIGINT,
    cached_tokens     BIGINT,
    total_tokens      BIGINT,
    cost              DOUBLE PRECISION,
    latency_ms        DOUBLE PRECISION,
    status            TEXT,
    status_code       BIGINT,
    tags              TEXT,
    estimated         BOOLEAN NOT NULL DEFAULT FALSE,
    start_time        DOUBLE PRECISION,
    end_time          DOUBLE PRECISION,
    seq               BIGINT GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX spend_logs_start_time ON spend_logs (start_time);
CREATE INDEX spend_logs_key_time ON spend_logs (key_hash, start_time);
CREATE INDEX spend_logs_team_time ON spend_logs (team_id, start_time);
CREATE INDEX spend_logs_user_time ON spend_logs (user_id, start_time);
CREATE INDEX spend_logs_model_time ON spend_logs (model, start_time);

-- Replicas learn of admin changes through NOTIFY (delivered at commit): the payload names
-- the table and the primary key, never a value. Spend-only updates from the ledger flush
-- are not announced: every replica keeps its own live spend.
CREATE FUNCTION tollway_notify_record() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed jsonb := CASE WHEN TG_OP = 'DELETE' THEN to_jsonb(OLD) ELSE to_jsonb(NEW) END;
BEGIN
    IF TG_OP = 'UPDATE' AND (to_jsonb(OLD) - 'spend' - 'budget_reset_at')
            = (to_jsonb(NEW) - 'spend' - 'budget_reset_at') THEN
        RETURN NULL;
    END IF;
    PERFORM pg_notify('tollway_records', json_build_object(
        'table', TG_TABLE_NAME, 'id', changed ->> TG_ARGV[0], 'op', lower(TG_OP))::text);
    RETURN NULL;
END
$$;
CREATE TRIGGER keys_notify AFTER INSERT OR UPDATE OR DELETE ON keys
    FOR EACH ROW EXECUTE FUNCTION tollway_notify_record('token_hash');
CREATE TRIGGER teams_notify AFTER INSERT OR UPDATE OR DELETE ON teams
    FOR EACH ROW EXECUTE FUNCTION tollway_notify_record('team_id');
CREATE TRIGGER users_notify AFTER INSERT OR UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION tollway_notify_record('user_id');
