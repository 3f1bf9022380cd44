-- PostgreSQL version of migrations/0009_files_batches.sql: which key owns each file and
-- batch, the deployment it lives on, and whether a batch's output was billed (0/1, as in
-- SQLite, so the shared SQL sets it with `billed = 1`).
CREATE TABLE IF NOT EXISTS owned_objects (
    object_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    owner TEXT NOT NULL,
    deployment_id TEXT NOT NULL,
    billed INTEGER NOT NULL DEFAULT 0,
    created_at DOUBLE PRECISION NOT NULL,
    seq BIGINT GENERATED ALWAYS AS IDENTITY
);
