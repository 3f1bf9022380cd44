-- PostgreSQL version of migrations/0007_models_credentials.sql: models added through
-- /model/new and reusable credentials (secret fields sealed before they are written).
CREATE TABLE IF NOT EXISTS proxy_models (
    model_id TEXT PRIMARY KEY,
    model_name TEXT NOT NULL,
    litellm_params TEXT NOT NULL,
    model_info TEXT NOT NULL DEFAULT '{}',
    created_at DOUBLE PRECISION,
    updated_at DOUBLE PRECISION,
    created_by TEXT,
    seq BIGINT GENERATED ALWAYS AS IDENTITY
);
CREATE TABLE IF NOT EXISTS credentials (
    credential_name TEXT PRIMARY KEY,
    credential_values TEXT NOT NULL,
    credential_info TEXT NOT NULL DEFAULT '{}',
    created_at DOUBLE PRECISION,
    updated_at DOUBLE PRECISION,
    created_by TEXT,
    seq BIGINT GENERATED ALWAYS AS IDENTITY
);
