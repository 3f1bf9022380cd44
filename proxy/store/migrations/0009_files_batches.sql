-- Files and batches created through /v1/files and /v1/batches: which key owns each (another
-- key gets 404), the deployment it lives on, and whether a batch's output was billed (once).
CREATE TABLE IF NOT EXISTS owned_objects (
    object_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    owner TEXT NOT NULL,
    deployment_id TEXT NOT NULL,
    billed INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
