-- The id of the reply the client received (``chatcmpl-...``) on each spend-log row, so that
-- ``/spend/logs?request_id=`` finds a call by the id its client saw, as LiteLLM's does.
ALTER TABLE spend_logs ADD COLUMN response_id TEXT;
CREATE INDEX spend_logs_response_id ON spend_logs (response_id);
