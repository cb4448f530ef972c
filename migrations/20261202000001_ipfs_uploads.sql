-- Everyone who stored a CID, not only the first: content addressing makes a second upload of the
-- same bytes free for storage, and the second uploader must still be able to read them back
-- (a CLIENT reads what they uploaded). Found by the contract gate's stateful phase.
CREATE TABLE ipfs_uploads (
    cid        text NOT NULL REFERENCES ipfs_objects (cid) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cid, user_id)
);
CREATE INDEX ipfs_uploads_user ON ipfs_uploads (user_id);

INSERT INTO ipfs_uploads (cid, user_id)
SELECT cid, created_by FROM ipfs_objects WHERE created_by IS NOT NULL;
