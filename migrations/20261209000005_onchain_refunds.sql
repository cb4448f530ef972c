-- On-chain refunds (issue I): an on-chain payment is paid back to the wallet that paid it, as a
-- payout of the payout account (its signer, its daily limits, its step-up).
--
-- 1. The wallet that paid, as the chain monitor found it when it confirmed the payment (a
--    native transfer's sender, a token Transfer's sender among the client's wallets). NULL for
--    a payment not confirmed yet, or confirmed before this column: a refund then reads it from
--    the chain again, by the same rule.
ALTER TABLE chain_payments ADD COLUMN payer text CHECK (payer ~ '^0x[0-9a-f]{40}$');

-- 2. A payout that pays a refund back: at most one per refund. The monitor settles the refund
--    when it finds the payout final (CONFIRMED: SUCCEEDED, FAILED: FAILED).
ALTER TABLE payouts ADD COLUMN refund_id uuid UNIQUE REFERENCES refunds (id) ON DELETE RESTRICT;
