//! The ephemeral stores (Postgres, and DynamoDB on the moto server), through their traits.

use aws_sdk_dynamodb::types::AttributeValue;
use gantry::config::Env;
use gantry::store::{
    DynamoEphemeral, Idempotency, IdempotencyStore, LockoutPolicy, Lockouts, PARTITION_KEY,
    PgEphemeral, RateDecision, RateLimiter, TTL_ATTRIBUTE, conformance,
};
use sqlx::PgPool;
use std::time::Duration;

const DAY: Duration = Duration::from_secs(86_400);

/// The conformance suite every ephemeral-store implementation passes (the in-memory one runs it
/// in unit tests): replay, mismatch, scopes, 10 concurrent first uses, rate windows, lockouts.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn the_postgres_store_meets_the_conformance_suite(pool: PgPool) {
    conformance::the_whole_contract(&PgEphemeral::new(pool))
        .await
        .unwrap();
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn an_expired_key_starts_afresh(pool: PgPool) {
    let store = PgEphemeral::new(pool.clone());
    store.begin("payouts", "old", b"req", DAY).await.unwrap();
    sqlx::query("UPDATE idempotency_keys SET expires_at = now() - interval '1 second'")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        store.begin("payouts", "old", b"other", DAY).await.unwrap(),
        Idempotency::Started
    );
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_new_rate_window_starts_the_count_again(pool: PgPool) {
    let store = PgEphemeral::new(pool.clone());
    let window = Duration::from_secs(3600);
    for _ in 0..3 {
        store.hit("k", 3, window).await.unwrap();
    }
    assert!(matches!(
        store.hit("k", 3, window).await.unwrap(),
        RateDecision::Limited { .. }
    ));
    // A new window starts the count again.
    sqlx::query("UPDATE rate_limits SET window_start = window_start - interval '2 hours'")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        store.hit("k", 3, window).await.unwrap(),
        RateDecision::Allowed
    );
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn postgres_entries_end_on_time(pool: PgPool) {
    conformance::entries_end_on_time(&PgEphemeral::new(pool))
        .await
        .unwrap();
}

/// A fresh table on the moto server, as template.yaml declares it: partition key `pk`, TTL on
/// `expires_at`.
async fn dynamo_table(endpoint: &str) -> (aws_sdk_dynamodb::Client, String) {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        TimeToLiveSpecification,
    };
    gantry::tls::install_provider();
    let config = aws_sdk_dynamodb::Config::builder()
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .endpoint_url(endpoint)
        .http_client(smithy_transport_reqwest::ReqwestHttpClient::new())
        .build();
    let client = aws_sdk_dynamodb::Client::from_conf(config);
    let table = format!("ephemeral-{}", uuid::Uuid::new_v4().simple());
    client
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(PARTITION_KEY)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name(PARTITION_KEY)
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    client
        .update_time_to_live()
        .table_name(&table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(TTL_ATTRIBUTE)
                .enabled(true)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    (client, table)
}

/// The store as a function gets it: from `EPHEMERAL_STORE_TABLE` and the AWS variables.
fn dynamo_store(endpoint: &str, table: &str) -> DynamoEphemeral {
    let mut vars = gantry_tests::aws_env(endpoint);
    vars.push(("EPHEMERAL_STORE_TABLE", table.to_owned()));
    DynamoEphemeral::new(&Env::from_pairs(vars), table.to_owned())
}

/// The same suite on DynamoDB (the moto server): conditional writes, so 10 concurrent first
/// uses of one key have one winner; entries end on time although moto, like DynamoDB, deletes
/// expired items late or never.
#[tokio::test]
async fn the_dynamodb_store_meets_the_conformance_suite() {
    let Some(endpoint) = gantry_tests::moto() else {
        return;
    };
    let (_, table) = dynamo_table(&endpoint).await;
    let store = dynamo_store(&endpoint, &table);
    conformance::the_whole_contract(&store).await.unwrap();
    conformance::entries_end_on_time(&store).await.unwrap();
}

/// Every item the store writes carries the TTL attribute, in epoch seconds no later than its
/// use ends (a lockout streak: a day), and the table's TTL is on that attribute.
#[tokio::test]
async fn every_dynamodb_item_expires() {
    let Some(endpoint) = gantry_tests::moto() else {
        return;
    };
    let (client, table) = dynamo_table(&endpoint).await;
    let store = dynamo_store(&endpoint, &table);
    store
        .hit("ip:login:192.0.2.1", 5, Duration::from_secs(60))
        .await
        .unwrap();
    let policy = LockoutPolicy {
        threshold: 1,
        base: Duration::from_secs(30),
        max: Duration::from_secs(30),
    };
    store.record_failure("a@x.io", policy).await.unwrap();
    store
        .begin("payouts", "k", b"req", Duration::from_secs(600))
        .await
        .unwrap();

    let ttl = client
        .describe_time_to_live()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let ttl = ttl.time_to_live_description().unwrap();
    assert_eq!(ttl.attribute_name(), Some(TTL_ATTRIBUTE));

    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let items = client.scan().table_name(&table).send().await.unwrap();
    let mut expiries: Vec<i64> = items
        .items()
        .iter()
        .map(|item| match item.get(TTL_ATTRIBUTE) {
            Some(AttributeValue::N(n)) => n.parse::<i64>().unwrap() - now,
            other => panic!("an item without {TTL_ATTRIBUTE}: {item:?} ({other:?})"),
        })
        .collect();
    expiries.sort_unstable();
    assert_eq!(expiries.len(), 3, "a window, a streak and a key");
    // The window ends within a minute, the key in ten, the streak in a day.
    assert!((0..=61).contains(&expiries[0]), "{expiries:?}");
    assert!((599..=601).contains(&expiries[1]), "{expiries:?}");
    assert!((86_399..=86_401).contains(&expiries[2]), "{expiries:?}");
}

/// A stale lockout streak (expired, but not yet deleted by TTL) starts again at one failure,
/// as in the Postgres store, and 10 concurrent failures on a fresh identifier count 10.
#[tokio::test]
async fn dynamodb_lockout_streaks_count_every_failure_and_forget_stale_ones() {
    let Some(endpoint) = gantry_tests::moto() else {
        return;
    };
    let (client, table) = dynamo_table(&endpoint).await;
    let store = dynamo_store(&endpoint, &table);
    let policy = LockoutPolicy {
        threshold: 10,
        base: Duration::from_secs(30),
        max: Duration::from_secs(30),
    };
    let failures = (0..10).map(|_| store.record_failure("many@x.io", policy));
    let locks: Vec<_> = futures::future::join_all(failures)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        locks.iter().filter(|l| l.is_some()).count(),
        1,
        "the tenth failure, and only it, locks: {locks:?}"
    );
    assert!(store.locked_for("many@x.io").await.unwrap().is_some());

    let two = LockoutPolicy {
        threshold: 2,
        ..policy
    };
    store.record_failure("stale@x.io", two).await.unwrap();
    // The streak's day is over, but the item is still there.
    client
        .update_item()
        .table_name(&table)
        .key(PARTITION_KEY, AttributeValue::S("lock#stale@x.io".into()))
        .update_expression("SET expires_at = :past")
        .expression_attribute_values(":past", AttributeValue::N("1".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        store.record_failure("stale@x.io", two).await.unwrap(),
        None,
        "a stale failure does not count toward the lock"
    );
    assert!(
        store
            .record_failure("stale@x.io", two)
            .await
            .unwrap()
            .is_some()
    );
}

/// A store that cannot reach DynamoDB answers an error (503 at the edge), never a panic.
#[tokio::test]
async fn an_unreachable_table_is_an_error() {
    let store = dynamo_store("http://127.0.0.1:9", "nowhere");
    assert!(store.hit("k", 1, Duration::from_secs(60)).await.is_err());
    assert!(store.locked_for("k").await.is_err());
}

/// With `EPHEMERAL_STORE_TABLE` set, the API's limits and lockouts live in DynamoDB: the lock
/// holds over HTTP, the streak is an item of the table, and Postgres holds none of it.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn with_a_table_the_api_locks_out_through_dynamodb(pool: PgPool) {
    let Some(endpoint) = gantry_tests::moto() else {
        return;
    };
    let (client, table) = dynamo_table(&endpoint).await;
    let aws = gantry_tests::aws_env(&endpoint);
    let mut env: Vec<(&str, &str)> = aws.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.extend([
        ("EPHEMERAL_STORE_TABLE", table.as_str()),
        ("LOCKOUT_THRESHOLD", "2"),
        ("LOCKOUT_BASE_SECONDS", "60"),
    ]);
    let app = gantry_tests::TestApp::with(pool, &env);
    app.register("ada@example.com").await;
    for _ in 0..2 {
        app.post("/login-email-password")
            .json(&serde_json::json!({"email": "ada@example.com", "password": "wrong password"}))
            .send()
            .await
            .problem(401);
    }
    app.post("/login-email-password")
        .json(&serde_json::json!({"email": "ada@example.com", "password": gantry_tests::PASSWORD}))
        .send()
        .await
        .problem(429);

    let streak = client
        .get_item()
        .table_name(&table)
        .key(
            PARTITION_KEY,
            AttributeValue::S("lock#ada@example.com".into()),
        )
        .send()
        .await
        .unwrap();
    let streak = streak.item().expect("the streak is an item of the table");
    assert_eq!(streak.get("failures"), Some(&AttributeValue::N("2".into())));
    assert!(streak.contains_key("locked_until"));
    let rows: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM login_lockouts) + (SELECT count(*) FROM rate_limits)",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(rows, 0, "lockouts and rate windows in Postgres");
}
