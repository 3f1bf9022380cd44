-- PostgreSQL version of migrations/0004_cache.sql: calls answered from the cache.
ALTER TABLE spend_logs ADD COLUMN cache_hit BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE spend_logs ADD COLUMN saved_cost DOUBLE PRECISION NOT NULL DEFAULT 0;
