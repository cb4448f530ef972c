//! Test support: the whole API on a fresh database, driven in-process through the router,
//! and a Lambda Runtime API emulator for driving real function binaries.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod anvil;
pub mod lambda;
pub mod wallet;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use gantry::Platform;
use gantry::auth::SigningKey;
use gantry::auth::keys::Jwks;
use gantry::config::{CoreConfig, Env, PoolDefault};
use gantry::identity::IdentityState;
use gantry::ipfs::s3::{S3Bucket, S3Settings};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sqlx::PgPool;
use std::sync::Arc;
use std::sync::Once;
use tower::ServiceExt;

pub const ISSUER: &str = "gantry-test";
pub const AUDIENCE: &str = "gantry-test-api";
pub const PASSWORD: &str = "a perfectly fine passphrase";

/// The SIWE domain and chain the tests sign for.
pub const SIWE_DOMAIN: &str = "app.example.com";
pub const SIWE_CHAIN: u64 = 31337;
/// The nonce key every test app shares (any 32+ bytes).
pub const NONCE_SECRET: &str = "0123456789abcdef0123456789abcdef-gantry-tests";

/// The disk blockstore the test apps share (content-addressed, so sharing is harmless).
static IPFS_DIR: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    std::env::temp_dir()
        .join(format!("gantry-tests-ipfs-{}", std::process::id()))
        .display()
        .to_string()
});

/// A tool `scripts/test` starts is missing (`var` unset): a failure in CI (`CI=true`), a loud skip
/// elsewhere.
fn missing<T>(var: &str, tests: &str) -> Option<T> {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{var} is not set: CI must run {tests}"
    );
    eprintln!("\n!!! SKIPPED: {var} is not set (run scripts/test). CI does not skip this.\n");
    None
}

/// The text of a PDF as poppler's `pdftotext` reads it (`scripts/test` installs poppler-utils).
/// Without it a test fails in CI and is skipped, loudly, elsewhere: `None` means skip.
pub fn pdf_text(pdf: &[u8]) -> Option<String> {
    let found = std::process::Command::new("pdftotext")
        .arg("-v")
        .output()
        .is_ok();
    if !found {
        return missing(
            "pdftotext",
            "the PDF tests (scripts/test installs poppler-utils)",
        );
    }
    let file = std::env::temp_dir().join(format!("gantry-{}.pdf", uuid::Uuid::new_v4()));
    std::fs::write(&file, pdf).expect("the PDF written");
    let out = std::process::Command::new("pdftotext")
        .args(["-enc", "UTF-8", "-layout"])
        .arg(&file)
        .arg("-")
        .output()
        .expect("pdftotext runs");
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "pdftotext: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).expect("UTF-8 text"))
}

/// The moto server's endpoint (`scripts/test` starts it and sets `AWS_ENDPOINT_URL`, with
/// `AWS_REGION` and dummy credentials). Without it a test that needs AWS fails in CI
/// (`CI=true`) and is skipped, loudly, elsewhere: `None` means skip.
pub fn moto() -> Option<String> {
    match std::env::var("AWS_ENDPOINT_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => missing(
            "AWS_ENDPOINT_URL",
            "the AWS tests (scripts/test starts moto)",
        ),
    }
}

/// The mail catcher `scripts/test` starts (maildev): its SMTP URL and its web API's base URL, from
/// `MAIL_CATCHER_SMTP` and `MAIL_CATCHER_WEB`. Missing: fails in CI, skipped loudly elsewhere.
pub fn mail_catcher() -> Option<(String, String)> {
    match (
        std::env::var("MAIL_CATCHER_SMTP"),
        std::env::var("MAIL_CATCHER_WEB"),
    ) {
        (Ok(smtp), Ok(web)) if !smtp.is_empty() && !web.is_empty() => Some((smtp, web)),
        _ => missing(
            "MAIL_CATCHER_SMTP",
            "the mail tests (scripts/test starts maildev)",
        ),
    }
}

/// The messages the catcher at `web` holds for `recipient`.
pub async fn caught_mail(web: &str, recipient: &str) -> Vec<serde_json::Value> {
    let all: Vec<serde_json::Value> = reqwest::get(format!("{web}/email"))
        .await
        .expect("the mail catcher answers")
        .json()
        .await
        .expect("a JSON list of messages");
    all.into_iter()
        .filter(|m| {
            m["to"]
                .as_array()
                .is_some_and(|to| to.iter().any(|t| t["address"] == recipient))
        })
        .collect()
}

/// The AWS settings that reach the moto server at `endpoint`, as variables (spawned binaries
/// get a cleared environment, and test apps an environment of their own).
pub fn aws_env(endpoint: &str) -> Vec<(&'static str, String)> {
    let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    vec![
        ("AWS_ENDPOINT_URL", endpoint.to_owned()),
        ("AWS_REGION", var("AWS_REGION", "us-east-1")),
        ("AWS_ACCESS_KEY_ID", var("AWS_ACCESS_KEY_ID", "testing")),
        (
            "AWS_SECRET_ACCESS_KEY",
            var("AWS_SECRET_ACCESS_KEY", "testing"),
        ),
    ]
}

/// A fresh bucket on the moto server, and the variables of an S3 blockstore in it
/// (`IPFS_BACKEND=s3`, the bucket, the AWS settings). `None`: skip (see [`moto`]).
pub async fn moto_bucket() -> Option<(S3Bucket, Vec<(&'static str, String)>)> {
    let endpoint = moto()?;
    let name = format!("gantry-{}", uuid::Uuid::new_v4());
    let mut env = aws_env(&endpoint);
    env.push(("IPFS_BACKEND", "s3".to_owned()));
    env.push(("IPFS_S3_BUCKET", name.clone()));
    let bucket = S3Bucket::new(name, S3Settings::from_env(&Env::from_pairs(env.clone())));
    bucket.create().await.expect("a bucket on the moto server");
    Some((bucket, env))
}

/// The tests' TOTP sealing key (base64 of 32 bytes).
pub const MFA_ENCRYPTION_KEY: &str = "dGVzdHMtb25seS10b3RwLXNlYWxpbmcta2V5LTMyYiE=";

/// The code pyotp, an independent RFC 6238 implementation, gives for `secret` (base32) at
/// `offset` seconds from now. `PYOTP_PYTHON` (set by `scripts/test`) names a Python with pyotp;
/// without it the test fails in CI and is skipped, loudly, elsewhere.
pub fn pyotp_code(secret: &str, offset: i64) -> Option<String> {
    let python = match std::env::var("PYOTP_PYTHON") {
        Ok(python) if !python.is_empty() => python,
        _ => {
            return missing(
                "PYOTP_PYTHON",
                "the TOTP tests (scripts/test installs pyotp)",
            );
        }
    };
    let out = std::process::Command::new(python)
        .args([
            "-c",
            "import pyotp, sys, time; print(pyotp.TOTP(sys.argv[1]).at(int(time.time()) + int(sys.argv[2])))",
            secret,
            &offset.to_string(),
        ])
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "pyotp: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(
        String::from_utf8(out.stdout)
            .expect("digits")
            .trim()
            .to_owned(),
    )
}

/// Waits, if needed, until at least 10 seconds of the current 30-second TOTP step remain, so
/// that codes for the previous, current and next step (offsets -30, 0, +30) are all accepted
/// for the next few seconds.
pub async fn early_in_a_totp_step() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64();
    let left = 30.0 - now % 30.0;
    if left < 10.0 {
        tokio::time::sleep(std::time::Duration::from_secs_f64(left + 0.2)).await;
    }
}

/// Where the tests' mail links point.
pub const PUBLIC_BASE_URL: &str = "https://app.gantry.test";

/// The test environment: SIWE on for `SIWE_DOMAIN`, and rate limits high enough not to
/// interfere (tests of the limits lower them with [`TestApp::with`]). `overrides` win.
pub fn test_env(overrides: &[(&str, &str)]) -> Env {
    let chains = format!("1,{SIWE_CHAIN}");
    let vars: Vec<(String, String)> = [
        ("JWT_ISSUER", ISSUER),
        ("JWT_AUDIENCE", AUDIENCE),
        ("SIWE_DOMAINS", SIWE_DOMAIN),
        ("SIWE_CHAIN_IDS", chains.as_str()),
        ("SIWE_NONCE_SECRET", NONCE_SECRET),
        ("RATE_LIMIT_PER_IP", "10000"),
        ("RATE_LIMIT_PER_IDENTIFIER", "10000"),
        ("TRUST_FORWARDED_FOR", "true"),
        ("IPFS_BLOCKSTORE_DIR", IPFS_DIR.as_str()),
        ("PUBLIC_BASE_URL", PUBLIC_BASE_URL),
        ("MFA_ENCRYPTION_KEY", MFA_ENCRYPTION_KEY),
        // Payout tests turn TOTP on just before; the wait is tested where it is set.
        ("PAYOUT_MFA_MIN_AGE_HOURS", "0"),
    ]
    .iter()
    .chain(overrides)
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    // Later pairs win: the overrides replace the defaults.
    Env::from_pairs(vars)
}

/// A platform on `db` (none: every route that needs it answers 503), signing with `key`.
pub fn platform(
    env: Env,
    db: Option<PgPool>,
    key: Option<&SigningKey>,
    published: Jwks,
) -> Platform {
    let config = CoreConfig::from_env(&env, PoolDefault::Function).expect("config");
    Platform::assemble(env, config, db, key, published).expect("platform")
}

/// A nonce issued with the tests' key a minute ago, valid for a second: expired.
pub fn expired_nonce() -> String {
    let key = gantry::identity::wallet::nonce::NonceKey::new(NONCE_SECRET.to_owned().into())
        .expect("key");
    let then = time::OffsetDateTime::now_utc() - time::Duration::minutes(1);
    key.issue(None, std::time::Duration::from_secs(1), then)
        .nonce
}

/// The URL of a test's own database (the server from `DATABASE_URL`, the database sqlx made),
/// for a function binary spawned against it.
pub fn database_url(pool: &PgPool) -> String {
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let db = pool
        .connect_options()
        .get_database()
        .expect("db name")
        .to_owned();
    let (head, tail) = base.split_at(base.find("://").expect("a URL") + 3);
    let (authority, rest) = tail.split_once('/').unwrap_or((tail, ""));
    let query = rest
        .split_once('?')
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    format!("{head}{authority}/{db}{query}")
}

/// The account the seeded tokens and challenges belong to.
const SEED_USER: &str = "00000000-0000-7000-8000-00000000000a";

/// One expired and one live row in every table housekeeping purges.
pub async fn seed_expired_rows(pool: &PgPool) {
    let statements = [
        format!("INSERT INTO spent_nonces VALUES ('{}', now() - interval '1 minute'), ('{}', now() + interval '5 minutes')", "a".repeat(56), "b".repeat(56)),
        "INSERT INTO rate_limits VALUES ('old', now() - interval '2 hours', 3), ('new', now(), 1)".to_owned(),
        "INSERT INTO login_lockouts (identifier, failures, updated_at) VALUES ('old@x.io', 2, now() - interval '2 days'), ('new@x.io', 2, now())".to_owned(),
        "INSERT INTO login_lockouts (identifier, failures, locked_until, updated_at) VALUES ('locked@x.io', 9, now() + interval '1 hour', now() - interval '2 days')".to_owned(),
        "INSERT INTO idempotency_keys (scope, key, request_hash, expires_at) VALUES ('s', 'old', '\\x00', now() - interval '1 second'), ('s', 'new', '\\x00', now() + interval '1 day')".to_owned(),
        "INSERT INTO queue_messages (id, queue, body, max_attempts, dead_at) VALUES (gen_random_uuid(), 'jobs', 'old', 1, now() - interval '15 days'), (gen_random_uuid(), 'jobs', 'new', 1, now() - interval '1 day')".to_owned(),
        format!("INSERT INTO users (id, name) VALUES ('{SEED_USER}', 'seed') ON CONFLICT DO NOTHING"),
        format!("INSERT INTO identities (id, user_id, type, identifier, credential) VALUES ('{SEED_USER}', '{SEED_USER}', 'email_password', 'seed@x.io', 'x') ON CONFLICT DO NOTHING"),
        format!("INSERT INTO account_tokens (token_hash, purpose, user_id, email, expires_at, used_at) VALUES (sha256('old'), 'password_reset', '{SEED_USER}', 'seed@x.io', now() - interval '2 days', NULL), (sha256('used'), 'email_verification', '{SEED_USER}', 'seed@x.io', now() + interval '1 hour', now() - interval '2 days'), (sha256('new'), 'password_reset', '{SEED_USER}', 'seed@x.io', now() + interval '1 hour', NULL)"),
        format!("INSERT INTO mfa_challenges (token_hash, user_id, identity_id, method, expires_at) VALUES (sha256('old'), '{SEED_USER}', '{SEED_USER}', 'pwd', now() - interval '2 days'), (sha256('new'), '{SEED_USER}', '{SEED_USER}', 'pwd', now() + interval '5 minutes')"),
    ];
    for sql in statements {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(pool)
            .await
            .expect("seed");
    }
}

/// Seeds the expired rows again after a purge (the live ones are still there).
pub async fn seed_expired_rows_again(pool: &PgPool) {
    for table in [
        "spent_nonces",
        "rate_limits",
        "login_lockouts",
        "idempotency_keys",
        "queue_messages",
        "account_tokens",
        "mfa_challenges",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table}")))
            .execute(pool)
            .await
            .expect("clear");
    }
    seed_expired_rows(pool).await;
}

/// After a purge: exactly the live rows [`seed_expired_rows`] made are left.
pub async fn assert_only_live_rows_remain(pool: &PgPool) {
    let checks = [
        ("SELECT count(*) FROM spent_nonces", 1),
        ("SELECT count(*) FROM rate_limits WHERE key = 'new'", 1),
        ("SELECT count(*) FROM rate_limits", 1),
        (
            "SELECT count(*) FROM login_lockouts WHERE identifier IN ('new@x.io', 'locked@x.io')",
            2,
        ),
        ("SELECT count(*) FROM login_lockouts", 2),
        ("SELECT count(*) FROM idempotency_keys", 1),
        ("SELECT count(*) FROM queue_messages WHERE body = 'new'", 1),
        (
            "SELECT count(*) FROM queue_messages WHERE dead_at IS NOT NULL",
            1,
        ),
        (
            "SELECT count(*) FROM account_tokens WHERE token_hash = sha256('new')",
            1,
        ),
        ("SELECT count(*) FROM account_tokens", 1),
        (
            "SELECT count(*) FROM mfa_challenges WHERE token_hash = sha256('new')",
            1,
        ),
        ("SELECT count(*) FROM mfa_challenges", 1),
    ];
    for (sql, want) in checks {
        let got: i64 = sqlx::query_scalar(sql).fetch_one(pool).await.expect(sql);
        assert_eq!(got, want, "{sql}");
    }
}

/// Every route of the gateway on `platform`, with the shared stack (Prometheus metrics, as on
/// the local gateway).
pub fn gateway(platform: &Platform) -> Router {
    gateway_with(platform, &gantry::edge::Metrics::prometheus())
}

/// [`gateway`], recording into `metrics`.
pub fn gateway_with(platform: &Platform, metrics: &gantry::edge::Metrics) -> Router {
    gantry::runtime::finish(
        gantry::app::gateway_router(platform).expect("gateway"),
        &platform.edge_config,
        metrics,
    )
}

/// An HTTP client for talking to spawned binaries. reqwest is built without a TLS provider of
/// its own (one provider per binary: ring, see `gantry::tls`), so install it first.
pub fn http_client() -> reqwest::Client {
    gantry::tls::install_provider();
    reqwest::Client::new()
}

/// Quiet unless `TEST_LOG` is set.
pub fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            gantry::runtime::init_tracing();
        }
    });
}

/// The gateway (every route) on a database of its own, signing with a fresh key.
pub struct TestApp {
    pub pool: PgPool,
    pub key: Arc<SigningKey>,
    pub platform: Platform,
    /// Identity's state, for calling its rules directly.
    pub state: IdentityState,
    pub router: Router,
}

impl TestApp {
    pub fn new(pool: PgPool) -> Self {
        Self::with(pool, &[])
    }

    /// The app with some variables of [`test_env`] overridden.
    pub fn with(pool: PgPool, overrides: &[(&str, &str)]) -> Self {
        init_logs();
        let key = Arc::new(SigningKey::generate());
        // TEST_APP_POOL_SIZE=n: the app on a pool of its own of n connections (scripts/test runs
        // the API tests again with 1: a route holding a connection while it waits for another
        // would wait out the acquire timeout there and fail).
        let app_pool = match std::env::var("TEST_APP_POOL_SIZE").map(|n| n.parse::<u32>()) {
            Ok(Ok(size)) => gantry::db::pool_options(size, gantry::db::PING_AFTER_IDLE)
                .connect_lazy_with((*pool.connect_options()).clone()),
            Ok(Err(err)) => panic!("TEST_APP_POOL_SIZE: {err}"),
            Err(_) => pool.clone(),
        };
        let platform = platform(
            test_env(overrides),
            Some(app_pool),
            Some(&key),
            Jwks::default(),
        );
        let state = IdentityState::new(&platform).expect("identity state");
        let router = gateway(&platform);
        Self {
            pool,
            key,
            platform,
            state,
            router,
        }
    }

    /// The same routes for a function that only verifies: no private key, only the JWKS.
    pub fn verify_only(&self) -> Router {
        let jwks = Jwks {
            keys: vec![self.key.public_jwk()],
        };
        gateway(&platform(
            test_env(&[]),
            Some(self.pool.clone()),
            None,
            jwks,
        ))
    }

    pub fn request(&self, method: Method, path: &str) -> Call {
        Call {
            router: self.router.clone(),
            builder: Request::builder().method(method).uri(path),
            body: Body::empty(),
        }
    }

    pub fn get(&self, path: &str) -> Call {
        self.request(Method::GET, path)
    }

    pub fn post(&self, path: &str) -> Call {
        self.request(Method::POST, path)
    }

    pub fn put(&self, path: &str) -> Call {
        self.request(Method::PUT, path)
    }

    /// Registers an email/password account; returns the 201 body (`user` + tokens).
    pub async fn register(&self, email: &str) -> Value {
        let res = self
            .post("/register-email-password")
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
        res.body
    }

    /// As `staff`: a project for `client` and an invoice of `amount` minor units of
    /// `currency` on it, issued (SENT). The invoice's id.
    pub async fn sent_invoice(
        &self,
        staff: &str,
        client: &str,
        amount: &str,
        currency: &str,
    ) -> String {
        let project = self
            .post("/projects")
            .bearer(staff)
            .json(&json!({"name": "Billed", "client_id": client}))
            .send()
            .await;
        assert_eq!(project.status, StatusCode::CREATED, "{}", project.body);
        let invoice = self
            .post("/invoices")
            .bearer(staff)
            .json(&json!({"project_id": project.str("id"), "amount": amount, "currency": currency}))
            .send()
            .await;
        assert_eq!(invoice.status, StatusCode::CREATED, "{}", invoice.body);
        let id = invoice.str("id");
        let sent = self
            .put(&format!("/invoices/{id}"))
            .bearer(staff)
            .json(&json!({"status": "SENT"}))
            .send()
            .await;
        assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
        id
    }

    /// Registers an account with `role` (set directly, as the CLI would) and logs it in.
    /// Returns (user id, access token).
    pub async fn user_with_role(&self, email: &str, role: &str) -> (String, String) {
        let body = self.register(email).await;
        let id = body["user"]["id"].as_str().unwrap().to_owned();
        sqlx::query("UPDATE users SET role = $1::user_role WHERE id = $2::uuid")
            .bind(role)
            .bind(&id)
            .execute(&self.pool)
            .await
            .unwrap();
        let login = self
            .post("/login-email-password")
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await;
        assert_eq!(login.status, StatusCode::OK, "{}", login.body);
        (id, login.body["access_token"].as_str().unwrap().to_owned())
    }

    /// Turns TOTP on for the account `email` (password [`PASSWORD`]) through the API, then
    /// signs it in again with the password and pyotp's code: the `/login/mfa` body, whose access
    /// token carries a second factor used just now (`amr` [pwd, otp]), as `POST /payouts` wants.
    /// Turning TOTP on ends the account's other sessions (their access tokens live until they
    /// expire). `None` without pyotp (see [`pyotp_code`]).
    pub async fn sign_in_with_totp(&self, email: &str) -> Option<Value> {
        let password_login = || async {
            let res = self
                .post("/login-email-password")
                .json(&json!({"email": email, "password": PASSWORD}))
                .send()
                .await;
            assert_eq!(res.status, StatusCode::OK, "{}", res.body);
            res.body
        };
        let token = password_login().await["access_token"]
            .as_str()
            .expect("TOTP is not on yet")
            .to_owned();
        early_in_a_totp_step().await;
        let (secret, _) = self.turn_on_totp(&token).await?;
        let pending = password_login().await["mfa_token"].clone();
        let done = self
            .post("/login/mfa")
            .json(&json!({"mfa_token": pending, "code": pyotp_code(&secret, 0)?}))
            .send()
            .await;
        assert_eq!(done.status, StatusCode::OK, "{}", done.body);
        Some(done.body)
    }

    /// Enrols and activates TOTP for the account behind `token` with pyotp's code for the previous
    /// step; returns the secret and the recovery codes (`None`: no pyotp, skipped outside CI).
    pub async fn turn_on_totp(&self, token: &str) -> Option<(String, Vec<String>)> {
        let enrolled = self
            .post("/mfa/totp/enroll")
            .bearer(token)
            .json(&json!({}))
            .send()
            .await;
        assert_eq!(enrolled.status, StatusCode::CREATED, "{}", enrolled.body);
        let secret = enrolled.str("secret");
        let code = pyotp_code(&secret, -30)?;
        let activated = self
            .post("/mfa/totp/activate")
            .bearer(token)
            .json(&json!({"code": code}))
            .send()
            .await;
        assert_eq!(activated.status, StatusCode::OK, "{}", activated.body);
        let codes = activated.body["recovery_codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect();
        Some((secret, codes))
    }

    /// A fresh SIWE nonce from `POST /auth/nonce`.
    pub async fn nonce(&self) -> String {
        let res = self.post("/auth/nonce").json(&json!({})).send().await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
        res.str("nonce")
    }

    /// `{"message","signature"}` for `wallet`, over a fresh nonce.
    pub async fn siwe(&self, wallet: &wallet::Wallet) -> Value {
        let message = wallet.message(&self.nonce().await);
        json!({"message": message, "signature": wallet.sign(&message)})
    }

    /// Registers `wallet`; returns the 201 body.
    pub async fn register_wallet(&self, wallet: &wallet::Wallet) -> Value {
        let body = self.siwe(wallet).await;
        let res = self.post("/register-blockchain").json(&body).send().await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
        res.body
    }

    /// Links `wallet` to the account behind `token`, with a fresh proof.
    pub async fn link_wallet(&self, token: &str, wallet: &wallet::Wallet) -> TestResponse {
        let mut body = self.siwe(wallet).await;
        body["type"] = "blockchain_address".into();
        self.post("/link-identity")
            .bearer(token)
            .json(&body)
            .send()
            .await
    }

    /// Delivers the outbox through the real mailer worker over SMTP to the catcher, then reads
    /// the newest mail to `to` and returns the token of its link to `page`
    /// (`PUBLIC_BASE_URL` + `page` + `?token=`), as a person would follow it. `None` when no
    /// catcher runs (a developer's machine; CI fails instead).
    pub async fn mailed_token(&self, to: &str, page: &str) -> Option<String> {
        let newest = self.mailed(to).await?;
        let prefix = format!("{PUBLIC_BASE_URL}{page}?token=");
        let text = newest["text"].as_str().expect("a plain-text body");
        let start = text
            .find(&prefix)
            .unwrap_or_else(|| panic!("no {prefix} link in {text}"))
            + prefix.len();
        let token: String = text[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        let html = newest["html"].as_str().expect("an HTML body");
        assert!(
            html.contains(&format!("href=\"{prefix}{token}\"")),
            "the HTML carries the same link: {html}"
        );
        Some(token)
    }

    /// Delivers the outbox through the real mailer worker over SMTP to the catcher, then
    /// returns the newest mail to `to` as the catcher shows it (`text`, `html`, `subject`).
    /// `None` when no catcher runs (a developer's machine; CI fails instead).
    pub async fn mailed(&self, to: &str) -> Option<Value> {
        let (smtp, web) = mail_catcher()?;
        let env = Env::from_pairs([
            ("MAIL_FROM", "gantry <no-reply@gantry.test>".to_owned()),
            ("MAIL_SMTP_URL", smtp),
        ]);
        let transport = gantry::mail::transport_from_env(&env).expect("smtp transport");
        let mailer =
            gantry::mail::Mailer::new(gantry::db::Db::new(Some(self.pool.clone())), transport);
        self.run_jobs(gantry::mail::QUEUE, &mailer).await;
        let caught = caught_mail(&web, to).await;
        Some(
            caught
                .last()
                .unwrap_or_else(|| panic!("no mail to {to}"))
                .clone(),
        )
    }

    /// Runs every message waiting on `queue` through `handler`, as the local queue would, and
    /// deletes each one it handled (acknowledged). Returns how many there were. Panics when a
    /// job fails: the tests that call this expect them to succeed.
    pub async fn run_jobs(&self, queue: &str, handler: &dyn gantry::queue::JobHandler) -> usize {
        let jobs: Vec<(uuid::Uuid, String)> = sqlx::query_as(
            "SELECT id, body FROM queue_messages WHERE queue = $1 AND dead_at IS NULL ORDER BY id",
        )
        .bind(queue)
        .fetch_all(&self.pool)
        .await
        .unwrap();
        for (id, body) in &jobs {
            let job = gantry::queue::Job {
                id: id.to_string(),
                body: body.clone(),
                attempt: 1,
            };
            handler
                .handle(&job)
                .await
                .unwrap_or_else(|e| panic!("{queue} job {body}: {e}"));
            sqlx::query("DELETE FROM queue_messages WHERE id = $1")
                .bind(id)
                .execute(&self.pool)
                .await
                .unwrap();
        }
        jobs.len()
    }

    /// The `billing-documents` worker of this app's configuration.
    pub fn document_renderer(&self) -> Arc<dyn gantry::queue::JobHandler> {
        let gantry::function::Trigger::Queue { build, .. } =
            gantry::payments::billing::render::BILLING_DOCUMENTS.trigger
        else {
            panic!("billing-documents is a queue worker");
        };
        build(&self.platform).expect("the renderer starts")
    }

    /// Renders, stores and mails every document issued so far (the `billing-documents` jobs
    /// waiting); how many there were.
    pub async fn render_documents(&self) -> usize {
        let renderer = self.document_renderer();
        self.run_jobs(gantry::payments::billing::render::QUEUE, &*renderer)
            .await
    }

    /// The number of mails in the outbox addressed to `to`.
    pub async fn outbox_count(&self, to: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM mail_outbox WHERE recipient = $1")
            .bind(to)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    pub async fn audit_count(&self, action: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = $1")
            .bind(action)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }
}

/// The claims of an access token (its payload, unverified: the tests read what was issued).
pub fn claims_of(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// Every route of the function table that the OpenAPI document files under `tag`, as
/// (method, path): what an area's authorization matrix must have one row for.
pub fn routes_tagged(tag: &str) -> Vec<(String, String)> {
    let mut routes = Vec::new();
    for spec in gantry::app::FUNCTIONS {
        let doc = serde_json::to_value(spec.openapi()).expect("an OpenAPI document");
        for route in spec.routes() {
            let method = route.method.http().as_str().to_owned();
            let tags = &doc["paths"][&route.path][method.to_lowercase()]["tags"];
            let tags = tags
                .as_array()
                .unwrap_or_else(|| panic!("{method} {} has no tags", route.path));
            if tags.contains(&serde_json::json!(tag)) {
                routes.push((method, route.path));
            }
        }
    }
    routes.sort();
    routes
}

/// The callers of an authorization matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    Anonymous,
    /// The CLIENT whose project the row's objects belong to.
    OwnerClient,
    OtherClient,
    Staff,
    Admin,
}

pub const EVERYONE: [Who; 5] = [
    Who::Anonymous,
    Who::OwnerClient,
    Who::OtherClient,
    Who::Staff,
    Who::Admin,
];

/// The email of [`Cast`]'s ADMIN.
pub const CAST_ADMIN: &str = "admin@example.com";

/// One logged-in account per kind of caller (their access tokens), and the owner client's id.
pub struct Cast {
    pub owner: String,
    pub other: String,
    pub staff: String,
    pub admin: String,
    pub owner_id: String,
}

impl Cast {
    pub async fn on(app: &TestApp) -> Self {
        let (owner_id, owner) = app.user_with_role("owner@client.example", "CLIENT").await;
        let (_, other) = app.user_with_role("other@client.example", "CLIENT").await;
        let (_, staff) = app.user_with_role("staff@example.com", "STAFF").await;
        let (_, admin) = app.user_with_role(CAST_ADMIN, "ADMIN").await;
        Self {
            owner,
            other,
            staff,
            admin,
            owner_id,
        }
    }

    /// The ADMIN's access token with a second factor used just now, which `POST /payouts`
    /// needs (TOTP is turned on for the ADMIN: see [`TestApp::sign_in_with_totp`]). `None`
    /// without pyotp.
    pub async fn admin_with_second_factor(&self, app: &TestApp) -> Option<String> {
        let signed_in = app.sign_in_with_totp(CAST_ADMIN).await?;
        Some(signed_in["access_token"].as_str()?.to_owned())
    }

    pub fn token(&self, who: Who) -> Option<&str> {
        match who {
            Who::Anonymous => None,
            Who::OwnerClient => Some(&self.owner),
            Who::OtherClient => Some(&self.other),
            Who::Staff => Some(&self.staff),
            Who::Admin => Some(&self.admin),
        }
    }

    /// `method path` on `app` as `who`, with `body` as JSON if given.
    pub async fn call(
        &self,
        app: &TestApp,
        who: Who,
        method: &Method,
        path: &str,
        body: Option<&Value>,
    ) -> TestResponse {
        let mut call = app.request(method.clone(), path);
        if let Some(token) = self.token(who) {
            call = call.bearer(token);
        }
        if let Some(body) = body {
            call = call.json(body);
        }
        call.send().await
    }
}

/// One request being built.
pub struct Call {
    router: Router,
    builder: axum::http::request::Builder,
    body: Body,
}

impl Call {
    pub fn json(mut self, value: &Value) -> Self {
        self.builder = self
            .builder
            .header(header::CONTENT_TYPE, "application/json");
        self.body = Body::from(value.to_string());
        self
    }

    pub fn raw(mut self, content_type: Option<&str>, body: impl Into<Body>) -> Self {
        if let Some(ct) = content_type {
            self.builder = self.builder.header(header::CONTENT_TYPE, ct);
        }
        self.body = body.into();
        self
    }

    pub fn bearer(mut self, token: &str) -> Self {
        self.builder = self
            .builder
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.builder = self.builder.header(name, value);
        self
    }

    pub async fn send(self) -> TestResponse {
        let request = self.builder.body(self.body).unwrap();
        let response = self.router.oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        TestResponse {
            status,
            headers,
            body,
            raw: bytes.to_vec(),
        }
    }
}

#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub raw: Vec<u8>,
}

impl TestResponse {
    /// Asserts an RFC 9457 problem with `status`, and returns it.
    pub fn problem(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(
            self.headers[header::CONTENT_TYPE],
            "application/problem+json",
            "errors are problem+json"
        );
        for key in ["type", "title", "detail"] {
            assert!(
                self.body[key].is_string(),
                "problem lacks {key}: {}",
                self.body
            );
        }
        assert_eq!(self.body["status"], status);
        &self.body
    }

    /// The field names of a 400's `errors`.
    pub fn fields(&self) -> Vec<String> {
        self.problem(400)["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .filter_map(|e| e["field"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn str(&self, key: &str) -> String {
        self.body[key]
            .as_str()
            .unwrap_or_else(|| panic!("no string {key} in {}", self.body))
            .to_owned()
    }
}
