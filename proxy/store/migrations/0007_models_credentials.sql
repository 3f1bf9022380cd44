-- Models added through /model/new (store_model_in_db) and reusable credentials (/credentials).
-- Secret fields inside litellm_params / credential_values are sealed (AES-GCM) before they
-- are written: see proxy/secrets_crypto.py.
CREATE TABLE IF NOT EXISTS proxy_models (
    model_id TEXT PRIMARY KEY,
    model_name TEXT NOT NULL,
    litellm_params TEXT NOT NULL,
    model_info TEXT NOT NULL DEFAULT '{}',
    created_at REAL,
    updated_at REAL,
    created_by TEXT
);
CREATE TABLE IF NOT EXISTS credentials (
    credential_name TEXT PRIMARY KEY,
    credential_values TEXT NOT NULL,
    credential_info TEXT NOT NULL DEFAULT '{}',
    created_at REAL,
    updated_at REAL,
    created_by TEXT
);
