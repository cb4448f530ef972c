-- On-chain payments bound to their payer and their time (issue H).
--
-- 1. An invoice remembers when it was issued (DRAFT -> SENT): a transfer mined before then never
--    pays it. Invoices already past DRAFT take the time of their audited DRAFT -> SENT change,
--    else their creation: never a later time (updated_at moved with every submission), so no
--    payment already made counts as older than its invoice.
ALTER TABLE invoices ADD COLUMN sent_at timestamptz;
UPDATE invoices i SET sent_at = COALESCE(
    (SELECT min(a.occurred_at) FROM audit_log a
     WHERE a.action = 'invoice.updated' AND a.subject_id = i.id
       AND a.details->>'from' = 'DRAFT' AND a.details->>'to' = 'SENT'),
    i.created_at)
WHERE status <> 'DRAFT';

-- 2. What the monitor judges a transfer by is fixed at submission, as the rest of the row is:
--    the earliest time its block may have.
ALTER TABLE chain_payments ADD COLUMN not_before timestamptz;
UPDATE chain_payments c SET not_before = COALESCE(i.sent_at, i.created_at)
FROM payments p JOIN invoices i ON i.id = p.invoice_id
WHERE p.id = c.payment_id;
ALTER TABLE chain_payments ALTER COLUMN not_before SET NOT NULL;
-- A transaction the node has never heard of fails after a short while (it may still be on its
-- way to the node's pool), not after the whole watch: made-up hashes stop costing RPC calls.
ALTER TABLE chain_payments ADD COLUMN unknown_until timestamptz;
UPDATE chain_payments SET unknown_until = watch_until;
ALTER TABLE chain_payments ALTER COLUMN unknown_until SET NOT NULL;

-- 3. A FAILED on-chain payment releases its transaction: a stranger who submitted somebody
--    else's transaction for their own invoice (FAILED: not their payer) must not keep the real
--    payer from submitting it for theirs. A transaction is still recorded at most once while it
--    is PENDING or has credited (CONFIRMED, REFUNDED, ...), so it pays one invoice, ever. Other
--    providers keep one row per object, whatever its status.
ALTER TABLE payments DROP CONSTRAINT payments_provider_ref;
CREATE UNIQUE INDEX payments_provider_ref ON payments (provider, provider_ref)
    WHERE NOT (status = 'FAILED' AND provider LIKE 'evm:%');
ALTER TABLE chain_payments DROP CONSTRAINT chain_payments_tx;
CREATE INDEX chain_payments_tx ON chain_payments (chain_id, tx_hash);

-- 4. The invoice's transaction is the one that paid it, derived, never a claim: it was written
--    by every submission, so thirty random hashes overwrote it thirty times.
CREATE OR REPLACE VIEW invoice_view AS
SELECT i.id, i.project_id, i.amount::text AS amount, i.currency, i.status, i.due_date,
       (SELECT p.provider_ref FROM payments p
        WHERE p.invoice_id = i.id AND p.provider LIKE 'evm:%' AND p.status IN ('CONFIRMED', 'REFUNDED')
        ORDER BY p.id DESC LIMIT 1) AS blockchain_tx_hash,
       i.created_at, i.updated_at,
       COALESCE((SELECT sum(p.amount - p.refunded) FROM payments p
                 WHERE p.invoice_id = i.id AND p.status IN ('CONFIRMED', 'REFUNDED')), 0)::text
           AS amount_paid
FROM invoices i;
ALTER TABLE invoices DROP COLUMN blockchain_tx_hash;

-- 5. Finding an invoice's waiting on-chain payments (at most a few may wait at once).
CREATE INDEX payments_pending_onchain ON payments (invoice_id)
    WHERE status = 'PENDING' AND provider LIKE 'evm:%';
