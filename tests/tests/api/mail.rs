//! Mail through the outbox and the mailer worker, delivered over real SMTP to the catcher
//! (maildev) that `scripts/test` starts.

use gantry::config::Env;
use gantry::db::Db;
use gantry::mail::{self, Mail, Mailer};
use gantry::queue::{Job, JobError, JobHandler};
use sqlx::PgPool;
use std::time::Duration;
use tokio::io::AsyncReadExt;

fn mail_to(to: &str) -> Mail<'_> {
    Mail {
        to,
        subject: "Reset your password",
        text: "Open https://app.example.com/reset?token=abc to choose a new password.",
        html: "<p>Open <a href=\"https://app.example.com/reset?token=abc\">this link</a>.</p>",
    }
}

fn recipient() -> String {
    format!("u{}@example.com", uuid::Uuid::new_v4().simple())
}

/// The mailer jobs waiting in the local queue.
async fn jobs(pool: &PgPool) -> Vec<Job> {
    let rows: Vec<(uuid::Uuid, String)> = sqlx::query_as(
        "SELECT id, body FROM queue_messages WHERE queue = 'mailer' ORDER BY created_at",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(id, body)| Job {
            id: id.to_string(),
            body,
            attempt: 1,
        })
        .collect()
}

fn mailer(pool: &PgPool, smtp: Option<&str>) -> Mailer {
    let mut vars = vec![("MAIL_FROM", "gantry <no-reply@gantry.test>".to_owned())];
    if let Some(smtp) = smtp {
        vars.push(("MAIL_SMTP_URL", smtp.to_owned()));
    }
    let transport = mail::transport_from_env(&Env::from_pairs(vars)).unwrap();
    Mailer::new(Db::new(Some(pool.clone())), transport)
}

async fn sent_at(pool: &PgPool) -> Vec<Option<time::OffsetDateTime>> {
    sqlx::query_scalar("SELECT sent_at FROM mail_outbox")
        .fetch_all(pool)
        .await
        .unwrap()
}

/// Mail written in a transaction that rolls back never exists; committed, it is delivered over
/// SMTP as plain text and HTML with its outbox id as Message-ID, once, however often its job
/// comes (three deliveries, two of them at once).
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn committed_mail_is_delivered_once_and_rolled_back_mail_never(pool: PgPool) {
    let Some((smtp, web)) = gantry_tests::mail_catcher() else {
        return;
    };
    let to = recipient();
    let mut tx = pool.begin().await.unwrap();
    mail::send(&mut tx, &mail_to(&to)).await.unwrap();
    tx.rollback().await.unwrap();
    assert!(
        jobs(&pool).await.is_empty(),
        "no job for a rolled-back mail"
    );

    let mut tx = pool.begin().await.unwrap();
    let id = mail::send(&mut tx, &mail_to(&to)).await.unwrap();
    tx.commit().await.unwrap();
    let job = jobs(&pool).await.remove(0);
    let mailer = mailer(&pool, Some(&smtp));
    let (a, b) = tokio::join!(mailer.handle(&job), mailer.handle(&job));
    a.unwrap();
    b.unwrap();
    mailer.handle(&job).await.unwrap();

    let caught = gantry_tests::caught_mail(&web, &to).await;
    assert_eq!(caught.len(), 1, "{caught:?}");
    let message = &caught[0];
    assert_eq!(message["subject"], "Reset your password");
    assert!(
        message["text"]
            .as_str()
            .unwrap()
            .contains("reset?token=abc")
    );
    assert!(
        message["html"]
            .as_str()
            .unwrap()
            .contains("href=\"https://app.example.com/reset?token=abc\"")
    );
    assert!(
        message["messageId"]
            .as_str()
            .unwrap_or_default()
            .contains(&id.to_string())
            || message["headers"]["message-id"]
                .as_str()
                .unwrap_or_default()
                .contains(&id.to_string()),
        "{message}"
    );
    assert!(sent_at(&pool).await[0].is_some());
}

/// No transport configured: the job waits (no attempt spent) and the mail stays unsent.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn without_a_transport_mail_waits(pool: PgPool) {
    let mut tx = pool.begin().await.unwrap();
    mail::send(&mut tx, &mail_to("waits@example.com"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let job = jobs(&pool).await.remove(0);
    assert!(matches!(
        mailer(&pool, None).handle(&job).await,
        Err(JobError::Later(_))
    ));
    assert_eq!(sent_at(&pool).await, [None]);
}

/// An SMTP server that drops the connection: the job is retried and nothing is marked sent;
/// once a server answers, the mail arrives, once.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_dropped_smtp_connection_delays_the_mail_and_never_loses_it(pool: PgPool) {
    let Some((smtp, web)) = gantry_tests::mail_catcher() else {
        return;
    };
    let dropper = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = dropper.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = dropper.accept().await {
            // Reads the start of nothing, and hangs up before the greeting.
            let mut buf = [0u8; 1];
            let _ = tokio::time::timeout(Duration::from_millis(10), socket.read(&mut buf)).await;
            drop(socket);
        }
    });
    let to = recipient();
    let mut tx = pool.begin().await.unwrap();
    mail::send(&mut tx, &mail_to(&to)).await.unwrap();
    tx.commit().await.unwrap();
    let job = jobs(&pool).await.remove(0);

    let broken = mailer(&pool, Some(&format!("smtp://127.0.0.1:{port}")));
    assert!(matches!(broken.handle(&job).await, Err(JobError::Retry(_))));
    assert_eq!(sent_at(&pool).await, [None]);

    mailer(&pool, Some(&smtp)).handle(&job).await.unwrap();
    mailer(&pool, Some(&smtp)).handle(&job).await.unwrap();
    assert_eq!(gantry_tests::caught_mail(&web, &to).await.len(), 1);
}

/// A recipient the server can never take is refused for good: recorded, not retried.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_malformed_recipient_is_refused_for_good(pool: PgPool) {
    let Some((smtp, _)) = gantry_tests::mail_catcher() else {
        return;
    };
    let mut tx = pool.begin().await.unwrap();
    mail::send(&mut tx, &mail_to("not an address"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let job = jobs(&pool).await.remove(0);
    mailer(&pool, Some(&smtp)).handle(&job).await.unwrap();
    let failure: Option<String> = sqlx::query_scalar("SELECT failure FROM mail_outbox")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(failure.is_some_and(|f| f.contains("not a mailbox")));
}

fn ses_mailer(pool: &PgPool, endpoint: &str, from: &str) -> Mailer {
    let mut vars: Vec<(&str, String)> = gantry_tests::aws_env(endpoint);
    vars.push(("MAIL_TRANSPORT", "ses".to_owned()));
    vars.push(("MAIL_FROM", from.to_owned()));
    let transport = mail::transport_from_env(&Env::from_pairs(vars)).unwrap();
    Mailer::new(Db::new(Some(pool.clone())), transport)
}

/// The messages moto's SES holds for `recipient` (its state API).
async fn ses_messages(endpoint: &str, recipient: &str) -> Vec<serde_json::Value> {
    let state: serde_json::Value = reqwest::get(format!("{endpoint}/moto-api/data.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    state["ses"]["Message"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m["destinations"]["ToAddresses"][0] == recipient)
        .collect()
}

/// With MAIL_TRANSPORT=ses the mailer sends through Amazon SES v2 (moto): from a verified
/// identity the mail is sent, once however often its job comes; from an unverified one SES
/// rejects it, which is recorded for good and not retried.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn ses_delivers_from_a_verified_identity_and_refusals_are_final(pool: PgPool) {
    let Some(endpoint) = gantry_tests::moto() else {
        return;
    };
    let sender = format!("s{}@gantry.test", uuid::Uuid::new_v4().simple());
    gantry::tls::install_provider();
    let config = aws_sdk_sesv2::Config::builder()
        .behavior_version(aws_sdk_sesv2::config::BehaviorVersion::latest())
        .region(aws_sdk_sesv2::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sesv2::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .endpoint_url(&endpoint)
        .http_client(smithy_transport_reqwest::ReqwestHttpClient::new())
        .build();
    aws_sdk_sesv2::Client::from_conf(config)
        .create_email_identity()
        .email_identity(&sender)
        .send()
        .await
        .unwrap();

    let to = recipient();
    let mut tx = pool.begin().await.unwrap();
    mail::send(&mut tx, &mail_to(&to)).await.unwrap();
    tx.commit().await.unwrap();
    let job = jobs(&pool).await.remove(0);
    let mailer = ses_mailer(&pool, &endpoint, &sender);
    mailer.handle(&job).await.unwrap();
    mailer.handle(&job).await.unwrap();
    let sent = ses_messages(&endpoint, &to).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["subject"], "Reset your password");
    assert_eq!(sent[0]["source"], sender.as_str());
    assert!(sent_at(&pool).await[0].is_some());

    let refused_to = recipient();
    let mut tx = pool.begin().await.unwrap();
    mail::send(&mut tx, &mail_to(&refused_to)).await.unwrap();
    tx.commit().await.unwrap();
    let job = jobs(&pool).await.pop().unwrap();
    ses_mailer(&pool, &endpoint, "nobody@unverified.test")
        .handle(&job)
        .await
        .unwrap();
    let failure: Option<String> =
        sqlx::query_scalar("SELECT failure FROM mail_outbox WHERE recipient = $1")
            .bind(&refused_to)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(
        failure.is_some_and(|f| f.contains("SES")),
        "refused for good"
    );
    assert!(ses_messages(&endpoint, &refused_to).await.is_empty());
}
