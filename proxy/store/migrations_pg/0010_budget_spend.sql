-- PostgreSQL version of migrations/0010_budget_spend.sql: a key's spend on the reusable
-- budget it names, one row per (key, budget): account = '<token_hash>:<budget_id>'.
CREATE TABLE key_budget_spend (
    account         TEXT PRIMARY KEY,
    spend           DOUBLE PRECISION NOT NULL DEFAULT 0,
    budget_reset_at DOUBLE PRECISION,
    seq             BIGINT GENERATED ALWAYS AS IDENTITY
);
