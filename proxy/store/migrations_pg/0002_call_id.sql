-- PostgreSQL version of migrations/0002_call_id.sql: the call id the client saw.
ALTER TABLE spend_logs ADD COLUMN call_id TEXT;
