-- The call id the client saw (its own x-request-id when it sent one). request_id stays the
-- gateway's unique id, so a client re-using an x-request-id can never merge two spend rows.
ALTER TABLE spend_logs ADD COLUMN call_id TEXT;
