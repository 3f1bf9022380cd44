-- PostgreSQL version of migrations/0006_customers_orgs_budgets.sql: organizations, end users
-- (customers), reusable budgets, and the end user of every spend-log row.

CREATE TABLE budgets (
    budget_id             TEXT PRIMARY KEY,
    max_budget            DOUBLE PRECISION,
    soft_budget           DOUBLE PRECISION,
    budget_duration       TEXT,
    rpm_limit             BIGINT,
    tpm_limit             BIGINT,
    max_parallel_requests BIGINT,
    created_at            DOUBLE PRECISION,
    updated_at            DOUBLE PRECISION,
    created_by            TEXT,
    seq                   BIGINT GENERATED ALWAYS AS IDENTITY
);

CREATE TABLE end_users (
    user_id               TEXT PRIMARY KEY,
    alias                 TEXT,
    max_budget            DOUBLE PRECISION,
    budget_duration       TEXT,
    budget_reset_at       DOUBLE PRECISION,
    spend                 DOUBLE PRECISION NOT NULL DEFAULT 0,
    rpm_limit             BIGINT,
    tpm_limit             BIGINT,
    max_parallel_requests BIGINT,
    budget_id             TEXT,
    blocked               BOOLEAN NOT NULL DEFAULT FALSE,
    allowed_model_region  TEXT,
    default_model         TEXT,
    metadata              TEXT,
    created_at            DOUBLE PRECISION,
    updated_at            DOUBLE PRECISION,
    seq                   BIGINT GENERATED ALWAYS AS IDENTITY
);

CREATE TABLE organizations (
    organization_id       TEXT PRIMARY KEY,
    organization_alias    TEXT,
    models                TEXT,
    max_budget            DOUBLE PRECISION,
    budget_duration       TEXT,
    budget_reset_at       DOUBLE PRECISION,
    spend                 DOUBLE PRECISION NOT NULL DEFAULT 0,
    rpm_limit             BIGINT,
    tpm_limit             BIGINT,
    max_parallel_requests BIGINT,
    budget_id             TEXT,
    blocked               BOOLEAN NOT NULL DEFAULT FALSE,
    metadata              TEXT,
    created_at            DOUBLE PRECISION,
    updated_at            DOUBLE PRECISION,
    created_by            TEXT,
    seq                   BIGINT GENERATED ALWAYS AS IDENTITY
);

ALTER TABLE spend_logs ADD COLUMN end_user TEXT;
ALTER TABLE spend_logs ADD COLUMN organization_id TEXT;
CREATE INDEX spend_logs_end_user_time ON spend_logs (end_user, start_time);

-- Announced like keys, teams and users (see 0001).
CREATE TRIGGER budgets_notify AFTER INSERT OR UPDATE OR DELETE ON budgets
    FOR EACH ROW EXECUTE FUNCTION tollway_notify_record('budget_id');
CREATE TRIGGER end_users_notify AFTER INSERT OR UPDATE OR DELETE ON end_users
    FOR EACH ROW EXECUTE FUNCTION tollway_notify_record('user_id');
CREATE TRIGGER organizations_notify AFTER INSERT OR UPDATE OR DELETE ON organizations
    FOR EACH ROW EXECUTE FUNCTION tollway_notify_record('organization_id');
