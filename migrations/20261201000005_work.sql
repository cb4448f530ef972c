-- Work management: projects, their tasks and work orders, and content-addressed documents.
-- Deleting a project deletes its tasks, work orders and document records with it (ON DELETE
-- CASCADE): they have no meaning outside it. The IPFS blocks stay (content-addressed, maybe
-- shared with another record); only the records go.

CREATE TYPE project_status AS ENUM ('PLANNING', 'IN_PROGRESS', 'COMPLETED');
CREATE TYPE work_item_kind AS ENUM ('TASK', 'WORK_ORDER');

-- Every CID this API stored, and who stored it: GET /ipfs/{cid} serves only these.
CREATE TABLE ipfs_objects (
    cid          text PRIMARY KEY,
    size         bigint NOT NULL CHECK (size >= 0),
    content_type text NOT NULL,
    created_by   uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE projects (
    id                uuid PRIMARY KEY,
    name              text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    description       text NOT NULL DEFAULT '' CHECK (char_length(description) <= 10000),
    status            project_status NOT NULL DEFAULT 'PLANNING',
    client_id         uuid REFERENCES users (id) ON DELETE SET NULL,
    ipfs_metadata_cid text REFERENCES ipfs_objects (cid),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX projects_client ON projects (client_id, id);
CREATE INDEX projects_status ON projects (status, id);

-- Tasks and work orders are one kind of record, an item under a project, told apart by `kind`;
-- each kind has its own statuses.
CREATE TABLE work_items (
    id          uuid PRIMARY KEY,
    kind        work_item_kind NOT NULL,
    project_id  uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    title       text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
    description text NOT NULL DEFAULT '' CHECK (char_length(description) <= 10000),
    status      text NOT NULL CHECK (
        (kind = 'TASK' AND status IN ('TODO', 'IN_PROGRESS', 'DONE'))
        OR (kind = 'WORK_ORDER' AND status IN ('OPEN', 'IN_PROGRESS', 'DONE', 'CANCELLED'))),
    due_date    date,
    assignee_id uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX work_items_project ON work_items (project_id, kind, id);

CREATE TABLE project_documents (
    id           uuid PRIMARY KEY,
    project_id   uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    cid          text NOT NULL REFERENCES ipfs_objects (cid),
    size         bigint NOT NULL,
    content_type text NOT NULL,
    uploaded_by  uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX project_documents_project ON project_documents (project_id, id);
CREATE INDEX project_documents_cid ON project_documents (cid);
