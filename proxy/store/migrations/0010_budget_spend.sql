-- A key's spend on the reusable budget it names (budget_id), apart from the key's own spend:
-- the budget has its own duration and resets. One row per (key, budget):
-- account = '<token_hash>:<budget_id>'. spend / budget_reset_at are the ledger flusher's.
CREATE TABLE key_budget_spend (
    account         TEXT PRIMARY KEY,
    spend           REAL NOT NULL DEFAULT 0,
    budget_reset_at REAL
);
