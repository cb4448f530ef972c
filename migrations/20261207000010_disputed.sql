-- Card disputes (chargebacks), issue H.
--
-- A payment whose charge is disputed is DISPUTED: it no longer counts towards its invoice (paid
-- sums count CONFIRMED and REFUNDED only), so a PAID invoice is owed again. It stays DISPUTED when
-- the dispute is lost, and is CONFIRMED again when it is won (or an inquiry closes without a
-- chargeback).
--
-- `dispute` is where the dispute stands, so that Stripe's events may arrive in any order: it only
-- moves forward (none -> OPEN -> WON or LOST), and a dispute closed before its "created" event
-- arrives stays closed. A payment is DISPUTED only once its success was checked (amount,
-- currency, invoice): a dispute reported for a payment still PENDING is recorded here and takes
-- effect when the success does.
--
-- Written to be re-runnable (development databases are migrated by hand, too).
ALTER TYPE payment_status ADD VALUE IF NOT EXISTS 'DISPUTED';

DO $$
BEGIN
    CREATE TYPE payment_dispute AS ENUM ('OPEN', 'WON', 'LOST');
EXCEPTION WHEN duplicate_object THEN NULL;
END
$$;

ALTER TABLE payments ADD COLUMN IF NOT EXISTS dispute payment_dispute;
