-- The books (issue I): line items, numbers, parties, credit notes and reminders.
--
-- 1. An invoice's lines and totals. `items` holds the lines as the API takes them (canonical
--    decimals); `taxes` one {rate, base, amount} per rate; `amount` stays the total. An invoice
--    made before items existed is one line of its amount with no tax.
ALTER TABLE invoices
    ADD COLUMN items    jsonb,
    ADD COLUMN subtotal numeric(38, 0),
    ADD COLUMN tax      numeric(38, 0),
    ADD COLUMN taxes    jsonb,
    ADD COLUMN notes    text CHECK (char_length(notes) <= 2000),
    -- Assigned when the invoice is issued (DRAFT -> SENT), from its series' counter.
    ADD COLUMN number   text UNIQUE,
    -- The parties as they were when it was issued: frozen with the items.
    ADD COLUMN seller   jsonb,
    ADD COLUMN buyer    jsonb,
    -- The issued PDF (with its e-invoice) in the IPFS blockstore.
    ADD COLUMN pdf_cid  text,
    -- The sum of its credit notes: what is due is amount - credited.
    ADD COLUMN credited numeric(38, 0) NOT NULL DEFAULT 0 CHECK (credited >= 0);
UPDATE invoices SET
    items = jsonb_build_array(jsonb_build_object(
        'description', 'Services', 'quantity', '1', 'unit_price', amount::text, 'tax_rate', NULL)),
    subtotal = amount,
    tax = 0,
    taxes = jsonb_build_array(jsonb_build_object('rate', NULL, 'base', amount::text, 'amount', '0'));
ALTER TABLE invoices
    ALTER COLUMN items SET NOT NULL,
    ALTER COLUMN subtotal SET NOT NULL,
    ALTER COLUMN tax SET NOT NULL,
    ALTER COLUMN taxes SET NOT NULL,
    ADD CONSTRAINT invoices_totals CHECK (amount = subtotal + tax AND credited <= amount),
    -- A draft has no number. (Invoices issued before numbering existed keep none: they have no
    -- PDF either, and take no credit note.)
    ADD CONSTRAINT invoices_draft_unnumbered CHECK (status <> 'DRAFT' OR number IS NULL);

-- 2. Gap-free numbers: one counter row per series (e.g. `INV-2027-`), incremented under its row
--    lock in the issuing transaction. A rolled-back issue rolls the counter back with it, and a
--    concurrent issue waits for the lock, so numbers never skip or repeat (a sequence would skip).
CREATE TABLE number_series (
    series text PRIMARY KEY CHECK (char_length(series) BETWEEN 1 AND 100),
    last   bigint NOT NULL CHECK (last >= 1)
);

-- 3. A user's billing details: the buyer on the invoices of the projects they are the client of.
CREATE TABLE billing_details (
    user_id       uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    name          text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    address_lines text[] NOT NULL DEFAULT '{}' CHECK (cardinality(address_lines) <= 4),
    postal_code   text NOT NULL DEFAULT '' CHECK (char_length(postal_code) <= 20),
    city          text NOT NULL DEFAULT '' CHECK (char_length(city) <= 100),
    country       text NOT NULL CHECK (country ~ '^[A-Z]{2}$'),
    tax_id        text CHECK (char_length(tax_id) BETWEEN 1 AND 40),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- 4. Credit notes: corrections of an issued invoice, numbered in their own series. What an
--    invoice's credit notes total never exceeds the invoice (checked on invoices.credited).
CREATE TABLE credit_notes (
    id         uuid PRIMARY KEY,
    invoice_id uuid NOT NULL REFERENCES invoices (id) ON DELETE RESTRICT,
    number     text NOT NULL UNIQUE,
    items      jsonb NOT NULL,
    subtotal   numeric(38, 0) NOT NULL,
    tax        numeric(38, 0) NOT NULL,
    taxes      jsonb NOT NULL,
    total      numeric(38, 0) NOT NULL CHECK (total > 0 AND total = subtotal + tax),
    reason     text NOT NULL CHECK (char_length(reason) BETWEEN 1 AND 500),
    pdf_cid    text,
    created_by uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX credit_notes_invoice ON credit_notes (invoice_id, id);

-- 5. Reminders: each stage (days after the due date) once per invoice. The primary key is what
--    makes two workers, or two runs, send a stage once.
CREATE TABLE invoice_reminders (
    invoice_id uuid NOT NULL REFERENCES invoices (id) ON DELETE CASCADE,
    stage      integer NOT NULL CHECK (stage >= 0),
    sent_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (invoice_id, stage)
);
CREATE INDEX invoices_due ON invoices (due_date) WHERE status IN ('SENT', 'OVERDUE');

-- 6. The view gains what the API shows.
DROP VIEW invoice_view;
CREATE VIEW invoice_view AS
SELECT i.id, i.project_id, i.amount::text AS amount, i.currency, i.status, i.due_date,
       (SELECT p.provider_ref FROM payments p
        WHERE p.invoice_id = i.id AND p.provider LIKE 'evm:%' AND p.status IN ('CONFIRMED', 'REFUNDED')
        ORDER BY p.id DESC LIMIT 1) AS blockchain_tx_hash,
       i.created_at, i.updated_at,
       COALESCE((SELECT sum(p.amount - p.refunded) FROM payments p
                 WHERE p.invoice_id = i.id AND p.status IN ('CONFIRMED', 'REFUNDED')), 0)::text
           AS amount_paid,
       i.number, i.items, i.subtotal::text AS subtotal, i.tax::text AS tax, i.notes, i.pdf_cid,
       i.credited::text AS credited
FROM invoices i;
