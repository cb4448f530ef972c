//! Work management: the authorization matrix (every route × every kind of caller, from one
//! table), project CRUD and pagination, metadata CIDs, and documents on IPFS.

use axum::http::{Method, StatusCode};
use gantry_tests::{Cast, EVERYONE, TestApp, Who};
use serde_json::{Value, json};
use sqlx::PgPool;

struct World {
    app: TestApp,
    cast: Cast,
}

/// The cast's tokens read as the world's own (`world.staff`).
impl std::ops::Deref for World {
    type Target = Cast;
    fn deref(&self) -> &Cast {
        &self.cast
    }
}

impl World {
    async fn new(pool: PgPool) -> Self {
        let app = TestApp::new(pool);
        let cast = Cast::on(&app).await;
        Self { app, cast }
    }

    /// A project for the owner client, made by staff.
    async fn project(&self, name: &str) -> Value {
        let res = self
            .app
            .post("/projects")
            .bearer(&self.staff)
            .json(&json!({"name": name, "client_id": self.owner_id}))
            .send()
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
        res.body
    }

    /// A task or a work order (`kind` as in its path) under `project`, made by staff: its id.
    async fn item(&self, project: &str, kind: &str) -> String {
        let res = self
            .app
            .post(&format!("/projects/{project}/{kind}"))
            .bearer(&self.staff)
            .json(&json!({"title": "Item"}))
            .send()
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
        res.str("id")
    }

    /// Every page of a list, following `next_cursor` `limit` rows at a time: the `field` of
    /// each item, in order.
    async fn all_pages(&self, token: &str, path: &str, limit: u32, field: &str) -> Vec<String> {
        let join = if path.contains('?') { '&' } else { '?' };
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page_path = match &cursor {
                Some(c) => format!("{path}{join}limit={limit}&cursor={c}"),
                None => format!("{path}{join}limit={limit}"),
            };
            let page = self.app.get(&page_path).bearer(token).send().await;
            assert_eq!(page.status, StatusCode::OK, "{}", page.body);
            let items = page.body["items"].as_array().unwrap();
            assert!(items.len() <= limit as usize);
            for item in items {
                seen.push(item[field].as_str().unwrap().to_owned());
            }
            match page.body["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        seen
    }

    async fn call(
        &self,
        who: Who,
        method: &Method,
        path: &str,
        body: Option<&Value>,
    ) -> StatusCode {
        self.cast
            .call(&self.app, who, method, path, body)
            .await
            .status
    }
}

/// One row per route: the method, the path (with `{id}` for the owner's project, or for its
/// task or work order on `/tasks/` and `/work-orders/` paths, and `{cid}` for the project's
/// metadata document), the body, and the exact status for each caller, in the order
/// anonymous, owner client, other client, staff, admin. A route in the function table without
/// a row here fails `every_work_route_has_a_row`.
fn matrix() -> Vec<(Method, String, Option<Value>, [u16; 5])> {
    let project = json!({"name": "Renamed", "description": "d", "status": "IN_PROGRESS"});
    let mut rows: Vec<(Method, &str, Option<Value>, [u16; 5])> = vec![
        (Method::GET, "/projects", None, [401, 200, 200, 200, 200]),
        (
            Method::POST,
            "/projects",
            Some(json!({"name": "New"})),
            [401, 403, 403, 201, 201],
        ),
        (
            Method::GET,
            "/projects/{id}",
            None,
            [401, 200, 404, 200, 200],
        ),
        (
            Method::PUT,
            "/projects/{id}",
            Some(project),
            [401, 403, 404, 200, 200],
        ),
        (Method::GET, "/ipfs/{cid}", None, [401, 200, 404, 200, 200]),
        (
            Method::POST,
            "/ipfs?project_id={id}",
            None,
            [401, 403, 404, 201, 201],
        ),
        // Last: it removes the project the rows above use.
        (
            Method::DELETE,
            "/projects/{id}",
            None,
            [401, 403, 404, 403, 204],
        ),
    ];
    // Tasks and work orders: "like its project", the same row for both kinds.
    let mut items = Vec::new();
    for (kind, _, later, _, _) in KINDS {
        let (list, one) = (
            format!("/projects/{{id}}/{kind}"),
            format!("/{kind}/{{id}}"),
        );
        items.extend([
            (Method::GET, list.clone(), None, [401, 200, 404, 200, 200]),
            (
                Method::POST,
                list,
                Some(json!({"title": "T"})),
                [401, 403, 404, 201, 201],
            ),
            (Method::GET, one.clone(), None, [401, 200, 404, 200, 200]),
            (
                Method::PUT,
                one.clone(),
                Some(json!({"title": "T2", "status": later})),
                [401, 403, 404, 200, 200],
            ),
            (Method::DELETE, one, None, [401, 403, 404, 403, 204]),
        ]);
    }
    // The project's DELETE stays last: it removes the project the rows above use.
    let last = rows.pop();
    let mut all: Vec<_> = rows
        .into_iter()
        .map(|(m, p, b, s)| (m, p.to_owned(), b, s))
        .chain(items)
        .collect();
    all.extend(last.map(|(m, p, b, s)| (m, p.to_owned(), b, s)));
    all
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn the_authorization_matrix_holds_for_every_route_and_caller(pool: PgPool) {
    let world = World::new(pool).await;
    for (method, template, body, expected) in matrix() {
        let template = template.as_str();
        for (who, want) in EVERYONE.iter().zip(expected) {
            // A fresh project per cell, so one cell's change cannot decide another's.
            let project = world.project("Matrix").await;
            let project_id = project["id"].as_str().unwrap();
            let id = if template.starts_with("/tasks/") {
                world.item(project_id, "tasks").await
            } else if template.starts_with("/work-orders/") {
                world.item(project_id, "work-orders").await
            } else {
                project_id.to_owned()
            };
            let path = template
                .replace("{id}", &id)
                .replace("{cid}", project["ipfs_metadata_cid"].as_str().unwrap());
            let status = if template.starts_with("/ipfs?") {
                let mut call = world.app.post(&path).raw(Some("text/plain"), "a document");
                if let Some(token) = world.token(*who) {
                    call = call.bearer(token);
                }
                call.send().await.status
            } else {
                world.call(*who, &method, &path, body.as_ref()).await
            };
            assert_eq!(status.as_u16(), want, "{method} {template} as {who:?}");
        }
    }
}

#[test]
fn every_work_route_has_a_row() {
    let rows: Vec<(String, String)> = matrix()
        .into_iter()
        .map(|(m, p, _, _)| {
            let path = p.split('?').next().unwrap_or(&p).to_owned();
            (m.as_str().to_owned(), path)
        })
        .collect();
    let work = ["/projects", "/tasks/", "/work-orders/", "/ipfs"];
    for spec in gantry::app::FUNCTIONS {
        for route in spec.routes() {
            if !work.iter().any(|prefix| route.path.starts_with(prefix)) {
                continue;
            }
            let key = (
                route.method.http().as_str().to_owned(),
                route.path.to_owned(),
            );
            assert!(rows.contains(&key), "{key:?} has no row in the matrix");
        }
    }
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn projects_are_created_replaced_listed_and_deleted(pool: PgPool) {
    let world = World::new(pool).await;
    let created = world.project("Bridge").await;
    assert_eq!(created["status"], "PLANNING");
    assert_eq!(created["client_id"], world.owner_id.as_str());
    let id = created["id"].as_str().unwrap().to_owned();
    let first_cid = created["ipfs_metadata_cid"].as_str().unwrap().to_owned();
    assert!(first_cid.starts_with("bafkrei"), "{first_cid}");

    // The metadata document is the canonical JSON of the project's content.
    let doc = world
        .app
        .get(&format!("/ipfs/{first_cid}"))
        .bearer(&world.owner)
        .send()
        .await;
    assert_eq!(doc.status, StatusCode::OK);
    let expected = format!(
        r#"{{"client_id":"{}","description":"","id":"{id}","name":"Bridge","status":"PLANNING"}}"#,
        world.owner_id
    );
    assert_eq!(String::from_utf8(doc.raw).unwrap(), expected);

    let body = json!({"name": "Bridge", "description": "steel", "status": "IN_PROGRESS", "client_id": world.owner_id});
    let put = |body: Value| {
        world
            .app
            .put(&format!("/projects/{id}"))
            .bearer(&world.staff)
            .json(&body)
            .send()
    };
    let updated = put(body.clone()).await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    let second_cid = updated.body["ipfs_metadata_cid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(second_cid, first_cid);
    assert!(updated.body["updated_at"].as_str() > created["updated_at"].as_str());
    // The same content again: the same CID.
    let again = put(body).await;
    assert_eq!(again.body["ipfs_metadata_cid"], second_cid.as_str());

    // Mass assignment: server-owned fields are refused, not ignored.
    let res = world
        .app
        .put(&format!("/projects/{id}"))
        .bearer(&world.staff)
        .json(&json!({"name": "x", "ipfs_metadata_cid": "bafkreihack"}))
        .send()
        .await;
    assert_eq!(res.fields(), ["ipfs_metadata_cid"]);
    // A client_id that is not a CLIENT is a 422.
    let staff_id = world
        .app
        .get("/profile")
        .bearer(&world.staff)
        .send()
        .await
        .body["user"]["id"]
        .clone();
    let res = put(json!({"name": "x", "client_id": staff_id})).await;
    res.problem(422);

    let deleted = world
        .app
        .request(Method::DELETE, &format!("/projects/{id}"))
        .bearer(&world.admin)
        .send()
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = world
        .app
        .get(&format!("/projects/{id}"))
        .bearer(&world.admin)
        .send()
        .await;
    gone.problem(404);
    for action in ["project.created", "project.updated", "project.deleted"] {
        assert!(world.app.audit_count(action).await >= 1, "{action}");
    }
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn project_lists_are_scoped_paginated_and_filtered(pool: PgPool) {
    let world = World::new(pool).await;
    for n in 0..5 {
        world.project(&format!("P{n}")).await;
    }
    let res = world
        .app
        .post("/projects")
        .bearer(&world.admin)
        .json(&json!({"name": "Internal", "status": "COMPLETED"}))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED);

    let seen = world.all_pages(&world.owner, "/projects", 2, "name").await;
    assert_eq!(
        seen,
        ["P0", "P1", "P2", "P3", "P4"],
        "the owner sees only theirs, in order"
    );
    let other = world.app.get("/projects").bearer(&world.other).send().await;
    assert_eq!(other.body["items"], json!([]));
    let done = world
        .app
        .get("/projects?status=COMPLETED")
        .bearer(&world.staff)
        .send()
        .await;
    assert_eq!(done.body["items"].as_array().unwrap().len(), 1);
    for bad in ["limit=0", "limit=101", "status=DONE", "cursor=nope"] {
        let res = world
            .app
            .get(&format!("/projects?{bad}"))
            .bearer(&world.staff)
            .send()
            .await;
        res.problem(400);
    }
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn invalid_projects_name_every_bad_field(pool: PgPool) {
    let world = World::new(pool).await;
    let cases = [
        (json!({"name": ""}), vec!["name"]),
        (json!({"name": "x".repeat(201)}), vec!["name"]),
        (json!({"name": "a\u{7}b"}), vec!["name"]),
        (
            json!({"name": "ok", "description": "a\u{0}b"}),
            vec!["description"],
        ),
        (
            json!({"name": "  ", "description": "x".repeat(10_001)}),
            vec!["name", "description"],
        ),
        (json!({"name": "ok", "status": "DONE"}), vec!["status"]),
        (
            json!({"name": "ok", "client_id": "not-a-uuid"}),
            vec!["client_id"],
        ),
        (json!({"description": "no name"}), vec!["name"]),
    ];
    for (body, fields) in cases {
        let res = world
            .app
            .post("/projects")
            .bearer(&world.staff)
            .json(&body)
            .send()
            .await;
        assert_eq!(res.fields(), fields, "for {body}");
    }
}

/// A vector of tests/fixtures/cid/vectors.json, which the js reference importer made (see
/// scripts/cid-fixtures): its input, xorshift32 from seed 0x9E3779B9, the low byte of each
/// step (the stream generate.mjs feeds it), and the CID it gave.
fn cid_fixture(name: &str) -> (Vec<u8>, String) {
    let fixtures: Value =
        serde_json::from_str(include_str!("../../fixtures/cid/vectors.json")).unwrap();
    let vector = fixtures["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap();
    let mut s: u32 = 0x9E37_79B9;
    let input = (0..vector["size"].as_u64().unwrap())
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            s.to_le_bytes()[0]
        })
        .collect();
    (input, vector["cid"].as_str().unwrap().to_owned())
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn documents_round_trip_and_are_recorded_on_their_project(pool: PgPool) {
    let world = World::new(pool).await;
    let project = world.project("Docs").await;
    let id = project["id"].as_str().unwrap();
    // Three chunks and a bit: a dag-pb root over raw leaves, with the reference importer's CID.
    let (bytes, expected) = cid_fixture("three_chunks_and_a_bit");
    assert_eq!(bytes.len(), 787_432);
    let res = world
        .app
        .post(&format!("/ipfs?project_id={id}"))
        .bearer(&world.staff)
        .raw(Some("application/pdf"), bytes.clone())
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
    let cid = res.body["cid"].as_str().unwrap().to_owned();
    assert_eq!(cid, expected);
    assert_eq!(res.body["size"], 787_432);
    assert_eq!(res.body["pinned"], true);
    let row: (String, i64, String) = sqlx::query_as(
        "SELECT cid, size, content_type FROM project_documents WHERE project_id = $1::uuid",
    )
    .bind(id)
    .fetch_one(&world.app.pool)
    .await
    .unwrap();
    assert_eq!(row, (cid.clone(), 787_432, "application/pdf".to_owned()));

    // The owner client reads it back, verified, with its content type, as an attachment.
    let back = world
        .app
        .get(&format!("/ipfs/{cid}"))
        .bearer(&world.owner)
        .send()
        .await;
    assert_eq!(back.status, StatusCode::OK);
    assert_eq!(back.raw, bytes);
    assert_eq!(back.headers["content-type"], "application/pdf");
    assert_eq!(back.headers["content-disposition"], "attachment");
    // Another client may not; nor may anyone read a CID this API never stored.
    world
        .app
        .get(&format!("/ipfs/{cid}"))
        .bearer(&world.other)
        .send()
        .await
        .problem(404);
    let unknown = gantry::ipfs::import(b"never stored").root;
    world
        .app
        .get(&format!("/ipfs/{unknown}"))
        .bearer(&world.admin)
        .send()
        .await
        .problem(404);
    world
        .app
        .get("/ipfs/not-a-cid")
        .bearer(&world.admin)
        .send()
        .await
        .problem(400);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn documents_over_five_mib_are_refused(pool: PgPool) {
    let world = World::new(pool).await;
    let res = world
        .app
        .post("/ipfs")
        .bearer(&world.staff)
        .raw(
            Some("application/octet-stream"),
            vec![7u8; 5 * 1024 * 1024 + 1],
        )
        .send()
        .await;
    res.problem(413);
    let exactly = world
        .app
        .post("/ipfs")
        .bearer(&world.staff)
        .raw(Some("application/octet-stream"), vec![7u8; 5 * 1024 * 1024])
        .send()
        .await;
    assert_eq!(exactly.status, StatusCode::CREATED, "{}", exactly.body);
}

/// Tasks and work orders share their rules; each test runs for both kinds: (path segment,
/// initial status, a later status, the other kind's path segment, audit prefix).
const KINDS: [(&str, &str, &str, &str, &str); 2] = [
    ("tasks", "TODO", "DONE", "work-orders", "task"),
    ("work-orders", "OPEN", "CANCELLED", "tasks", "work_order"),
];

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn items_are_created_replaced_read_and_deleted(pool: PgPool) {
    let world = World::new(pool).await;
    let project = world.project("Items").await;
    let project_id = project["id"].as_str().unwrap();
    for (kind, initial, later, other_kind, audit) in KINDS {
        let created = world
            .app
            .post(&format!("/projects/{project_id}/{kind}"))
            .bearer(&world.staff)
            .json(&json!({"title": "  Survey  "}))
            .send()
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        let id = created.str("id");
        assert_eq!(created.body["title"], "Survey", "{kind}: trimmed");
        assert_eq!(created.body["status"], initial);
        assert_eq!(created.body["project_id"], project_id);
        assert_eq!(created.body["due_date"], Value::Null);
        assert_eq!(created.body["assignee_id"], Value::Null);

        // The owner client may be assigned; so may staff.
        let replaced = world
            .app
            .put(&format!("/{kind}/{id}"))
            .bearer(&world.admin)
            .json(
                &json!({"title": "Survey", "description": "north side", "status": later,
                          "due_date": "2027-02-28", "assignee_id": world.owner_id}),
            )
            .send()
            .await;
        assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.body);
        assert_eq!(replaced.body["status"], later);
        assert_eq!(replaced.body["due_date"], "2027-02-28");
        assert_eq!(replaced.body["assignee_id"], world.owner_id.as_str());
        assert!(replaced.body["updated_at"].as_str() > created.body["updated_at"].as_str());
        assert_eq!(replaced.body["created_at"], created.body["created_at"]);

        let read = world
            .app
            .get(&format!("/{kind}/{id}"))
            .bearer(&world.owner)
            .send()
            .await;
        assert_eq!(
            read.body, replaced.body,
            "{kind}: the owner client reads it"
        );
        // A task is not a work order: the other kind's route does not find it.
        world
            .app
            .get(&format!("/{other_kind}/{id}"))
            .bearer(&world.admin)
            .send()
            .await
            .problem(404);

        let deleted = world
            .app
            .request(Method::DELETE, &format!("/{kind}/{id}"))
            .bearer(&world.admin)
            .send()
            .await;
        assert_eq!(deleted.status, StatusCode::NO_CONTENT);
        world
            .app
            .get(&format!("/{kind}/{id}"))
            .bearer(&world.admin)
            .send()
            .await
            .problem(404);
        for action in ["created", "updated", "deleted"] {
            let action = format!("{audit}.{action}");
            assert_eq!(world.app.audit_count(&action).await, 1, "{action}");
        }
    }
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn item_lists_are_paginated_filtered_and_scoped_to_their_project(pool: PgPool) {
    let world = World::new(pool).await;
    let project = world.project("Lists").await;
    let project_id = project["id"].as_str().unwrap();
    let elsewhere = world.project("Elsewhere").await;
    let elsewhere_id = elsewhere["id"].as_str().unwrap();
    for (kind, initial, later, _, _) in KINDS {
        for n in 0..5 {
            let status = if n % 2 == 0 { later } else { initial };
            let res = world
                .app
                .post(&format!("/projects/{project_id}/{kind}"))
                .bearer(&world.staff)
                .json(&json!({"title": format!("I{n}"), "status": status}))
                .send()
                .await;
            assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
        }
        world.item(elsewhere_id, kind).await;

        let list = format!("/projects/{project_id}/{kind}");
        let all = world.all_pages(&world.owner, &list, 2, "title").await;
        assert_eq!(all, ["I0", "I1", "I2", "I3", "I4"], "{kind}");
        let filtered = world
            .all_pages(&world.staff, &format!("{list}?status={later}"), 1, "title")
            .await;
        assert_eq!(filtered, ["I0", "I2", "I4"], "{kind}");
        for bad in ["limit=0", "limit=101", "status=PLANNING", "cursor=nope"] {
            world
                .app
                .get(&format!("{list}?{bad}"))
                .bearer(&world.staff)
                .send()
                .await
                .problem(400);
        }
        // Another client sees neither the list nor its project.
        world
            .app
            .get(&list)
            .bearer(&world.other)
            .send()
            .await
            .problem(404);
    }
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn invalid_items_are_refused_and_nothing_is_written(pool: PgPool) {
    let world = World::new(pool.clone()).await;
    let project = world.project("Checks").await;
    let project_id = project["id"].as_str().unwrap();
    let staff_id = world
        .app
        .get("/profile")
        .bearer(&world.staff)
        .send()
        .await
        .body["user"]["id"]
        .clone();
    let other_id = world
        .app
        .get("/profile")
        .bearer(&world.other)
        .send()
        .await
        .body["user"]["id"]
        .clone();
    for (kind, _, _, _, _) in KINDS {
        let path = format!("/projects/{project_id}/{kind}");
        let cases = [
            (json!({"title": ""}), vec!["title"]),
            (json!({"title": "x".repeat(201)}), vec!["title"]),
            (
                json!({"title": "a\u{7}b", "description": "d".repeat(10_001)}),
                vec!["title", "description"],
            ),
            (
                json!({"title": "x", "due_date": "2027-13-01"}),
                vec!["due_date"],
            ),
            (
                json!({"title": "x", "due_date": "tomorrow"}),
                vec!["due_date"],
            ),
            (json!({"title": "x", "status": "PLANNING"}), vec!["status"]),
            // Mass assignment: the server's fields are refused, not ignored.
            (
                json!({"title": "x", "project_id": project_id}),
                vec!["project_id"],
            ),
            (json!({"title": "x", "id": project_id}), vec!["id"]),
        ];
        for (body, fields) in cases {
            let res = world
                .app
                .post(&path)
                .bearer(&world.staff)
                .json(&body)
                .send()
                .await;
            res.problem(400);
            assert_eq!(res.fields(), fields, "{kind} {body}");
        }
        // An assignee who cannot see the project is refused (422); so is an unknown user.
        for assignee in [other_id.clone(), json!(uuid::Uuid::now_v7())] {
            let res = world
                .app
                .post(&path)
                .bearer(&world.staff)
                .json(&json!({"title": "x", "assignee_id": assignee}))
                .send()
                .await;
            res.problem(422);
        }
        let ok = world
            .app
            .post(&path)
            .bearer(&world.staff)
            .json(&json!({"title": "x", "assignee_id": staff_id}))
            .send()
            .await;
        assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.body);
        // An unknown project is a 404, even for an ADMIN.
        world
            .app
            .post(&format!("/projects/{}/{kind}", uuid::Uuid::now_v7()))
            .bearer(&world.admin)
            .json(&json!({"title": "x"}))
            .send()
            .await
            .problem(404);
    }
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM work_items")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 2, "only the two valid items were written");
}

/// A project without a client has no CLIENT who may be assigned in it: a 422 naming the field
/// (the one-statement check this replaced answered 500, as its NULL comparison fell through).
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_project_without_a_client_takes_no_client_as_assignee(pool: PgPool) {
    let world = World::new(pool.clone()).await;
    let project = world
        .app
        .post("/projects")
        .bearer(&world.staff)
        .json(&json!({"name": "In-house"}))
        .send()
        .await;
    assert_eq!(project.status, StatusCode::CREATED, "{}", project.body);
    assert_eq!(project.body["client_id"], Value::Null);
    let project_id = project.body["id"].as_str().unwrap();
    for (kind, _, _, _, _) in KINDS {
        let res = world
            .app
            .post(&format!("/projects/{project_id}/{kind}"))
            .bearer(&world.staff)
            .json(&json!({"title": "x", "assignee_id": world.owner_id}))
            .send()
            .await;
        let problem = res.problem(422);
        assert_eq!(problem["errors"][0]["field"], "assignee_id", "{kind}");
    }
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM work_items")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 0);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn deleting_a_project_deletes_its_items(pool: PgPool) {
    let world = World::new(pool.clone()).await;
    let doomed = world.project("Doomed").await;
    let doomed_id = doomed["id"].as_str().unwrap();
    let kept = world.project("Kept").await;
    let kept_id = kept["id"].as_str().unwrap();
    let task = world.item(doomed_id, "tasks").await;
    let order = world.item(doomed_id, "work-orders").await;
    let survivor = world.item(kept_id, "tasks").await;
    let res = world
        .app
        .request(Method::DELETE, &format!("/projects/{doomed_id}"))
        .bearer(&world.admin)
        .send()
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    for path in [format!("/tasks/{task}"), format!("/work-orders/{order}")] {
        world
            .app
            .get(&path)
            .bearer(&world.admin)
            .send()
            .await
            .problem(404);
    }
    let left: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM work_items")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(left, [survivor.parse::<uuid::Uuid>().unwrap()]);
}

/// Content addressing makes a second upload of the same bytes a no-op for storage; the second
/// uploader must still read them back (the contract gate found this), and a caller who never
/// uploaded them still may not.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn every_uploader_of_the_same_bytes_reads_them_back(pool: PgPool) {
    let world = World::new(pool).await;
    let mut cids = Vec::new();
    for token in [&world.staff, &world.owner] {
        let res = world
            .app
            .post("/ipfs")
            .bearer(token)
            .raw(Some("text/plain"), "the same bytes")
            .send()
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
        cids.push(res.str("cid"));
    }
    assert_eq!(cids[0], cids[1]);
    let path = format!("/ipfs/{}", cids[0]);
    let read = world.app.get(&path).bearer(&world.owner).send().await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.raw, b"the same bytes");
    world
        .app
        .get(&path)
        .bearer(&world.other)
        .send()
        .await
        .problem(404);
}
