-- A rotated key keeps the caps of the key it replaced: budget_key_id names the
-- key id its key-scoped budgets are set on ('' = its own id), and a key budget
-- counts the spend of every key that names it (services/src/budgets/).
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS budget_key_id String DEFAULT '' AFTER kind;
