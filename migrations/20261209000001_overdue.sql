-- A SENT invoice past its due date (issue I). Its own migration: a new enum value cannot be used
-- in the transaction that adds it.
ALTER TYPE invoice_status ADD VALUE IF NOT EXISTS 'OVERDUE' AFTER 'SENT';
