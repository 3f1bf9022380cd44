-- Calls answered from the cache (billed 0) and what they saved.
ALTER TABLE spend_logs ADD COLUMN cache_hit INTEGER NOT NULL DEFAULT 0;
ALTER TABLE spend_logs ADD COLUMN saved_cost REAL NOT NULL DEFAULT 0;
