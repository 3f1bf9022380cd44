-- PostgreSQL version of migrations/0005_admin_fields.sql: the id of the reply the client
-- received (``chatcmpl-...``) on each spend-log row, for ``/spend/logs?request_id=``.
ALTER TABLE spend_logs ADD COLUMN response_id TEXT;
CREATE INDEX spend_logs_response_id ON spend_logs (response_id);
