-- The billing-documents worker renders an issued document's PDF once the issue has committed,
-- and mails it to the client it was issued to with the issue's payment links: both are frozen
-- with the document, because a project's client can change before the worker runs.
ALTER TABLE invoices ADD COLUMN mail_to uuid REFERENCES users (id) ON DELETE SET NULL;
ALTER TABLE invoices ADD COLUMN mail_links text;
ALTER TABLE credit_notes ADD COLUMN mail_to uuid REFERENCES users (id) ON DELETE SET NULL;
-- Invoices issued before this: their credit notes (a refund's, say) still go to the client,
-- the project's client now being the best record there is of whom the invoice went to.
UPDATE invoices i SET mail_to = p.client_id
  FROM projects p WHERE p.id = i.project_id AND i.number IS NOT NULL;
-- The reconcile run queues again the documents still without a PDF a while after their issue.
CREATE INDEX invoices_unrendered ON invoices (sent_at) WHERE number IS NOT NULL AND pdf_cid IS NULL;
CREATE INDEX credit_notes_unrendered ON credit_notes (created_at) WHERE pdf_cid IS NULL;

-- One finding per difference (provider, object, kind), however many runs read it.
DELETE FROM reconciliation_findings a USING reconciliation_findings b
 WHERE a.provider = b.provider AND a.provider_ref = b.provider_ref AND a.kind = b.kind
   AND a.id > b.id;
CREATE UNIQUE INDEX reconciliation_findings_once
    ON reconciliation_findings (provider, provider_ref, kind);
