//! Step-up for money (RFC 9470) on a real chain (anvil): `POST /payouts` needs the caller's
//! role as the database has it now, and a second factor (`amr` has `otp` or `rec`) whose
//! sign-in (`auth_time`) is at most five minutes old; a refresh keeps the sign-in's time.

use axum::http::StatusCode;
use gantry_tests::anvil::Anvil;
use gantry_tests::{TestApp, TestResponse, claims_of};
use serde_json::{Value, json};
use sqlx::PgPool;

const ETH: u128 = 1_000_000_000_000_000_000;
const CHAIN: u64 = 31337;
/// anvil's well-known account 3: the payout account.
const PAYOUT_KEY: &str = "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6";
const PAYEE: &str = "0x000000000000000000000000000000000000beef";
const ADMIN: &str = "treasurer@example.com";

/// The app paying out ETH on anvil (`None` where anvil is missing on a developer's machine),
/// and the chain, which must live as long as the test.
async fn start(pool: PgPool) -> Option<(TestApp, Anvil)> {
    start_with(pool, &[]).await
}

/// [`start`] with more variables (they win).
async fn start_with(pool: PgPool, extra: &[(&str, &str)]) -> Option<(TestApp, Anvil)> {
    let anvil = Anvil::start_or_skip().await?;
    let accounts = anvil.accounts().await.unwrap();
    let chains = json!({CHAIN.to_string(): {
        "receiver": accounts[1], "confirmations": 1, "assets": {"ETH": "native"},
    }})
    .to_string();
    let urls = format!("{CHAIN}={}", anvil.url);
    let limits = json!({"ETH": (5 * ETH).to_string()}).to_string();
    let mut env = vec![
        ("CHAIN_RPC_URLS", urls.as_str()),
        ("PAYMENT_CHAINS", chains.as_str()),
        ("PAYOUT_PRIVATE_KEY", PAYOUT_KEY),
        ("PAYOUT_DAILY_LIMITS", limits.as_str()),
    ];
    env.extend_from_slice(extra);
    let app = TestApp::with(pool, &env);
    Some((app, anvil))
}

async fn payout(app: &TestApp, token: &str, key: &str) -> TestResponse {
    app.post("/payouts")
        .bearer(token)
        .json(
            &json!({"chain_id": CHAIN, "to": PAYEE, "amount": (ETH / 10).to_string(),
                      "currency": "ETH", "idempotency_key": key}),
        )
        .send()
        .await
}

/// The RFC 9470 answer: 401, `insufficient_user_authentication` with `max_age`, and a problem
/// type that says to step up.
fn assert_step_up(res: &TestResponse) {
    let problem = res.problem(401);
    assert_eq!(problem["type"], "urn:gantry:problem:step-up-required");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("POST /login/mfa")
    );
    let challenge = res.headers["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.starts_with("Bearer error=\"insufficient_user_authentication\""),
        "{challenge}"
    );
    assert!(challenge.contains("max_age=300"), "{challenge}");
}

async fn payouts(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM payouts")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

async fn refresh(app: &TestApp, refresh_token: &Value) -> TestResponse {
    app.post("/token/refresh")
        .json(&json!({"refresh_token": refresh_token}))
        .send()
        .await
}

/// A password alone sends nothing; a TOTP code passed at /login/mfa a moment ago does, also
/// after a refresh (which keeps `auth_time` and `amr`); once that sign-in is more than five
/// minutes old, a refreshed token is refused again.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_payout_needs_a_second_factor_used_minutes_ago(pool: PgPool) {
    let Some((app, _anvil)) = start(pool).await else {
        return;
    };
    let (admin_id, password_only) = app.user_with_role(ADMIN, "ADMIN").await;
    assert_eq!(claims_of(&password_only)["amr"], json!(["pwd"]));
    assert_step_up(&payout(&app, &password_only, "pwd").await);
    assert_eq!(payouts(&app).await, 0);

    let Some(signed_in) = app.sign_in_with_totp(ADMIN).await else {
        return;
    };
    let stepped_up = signed_in["access_token"].as_str().unwrap();
    let claims = claims_of(stepped_up);
    assert_eq!(claims["amr"], json!(["pwd", "otp"]));
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let auth_time = claims["auth_time"].as_i64().unwrap();
    assert!((now - 5..=now + 1).contains(&auth_time), "{claims}");
    let sent = payout(&app, stepped_up, "otp").await;
    assert_eq!(sent.status, StatusCode::ACCEPTED, "{}", sent.body);
    // The password-only token is still valid, and still not enough.
    assert_step_up(&payout(&app, &password_only, "pwd-again").await);

    // A refresh is not a sign-in: the same auth_time and amr, still fresh enough.
    let refreshed = refresh(&app, &signed_in["refresh_token"]).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
    let renewed = claims_of(refreshed.body["access_token"].as_str().unwrap());
    assert_eq!(renewed["auth_time"], claims["auth_time"]);
    assert_eq!(renewed["amr"], claims["amr"]);
    let again = payout(
        &app,
        refreshed.body["access_token"].as_str().unwrap(),
        "refreshed",
    )
    .await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{}", again.body);

    // Six minutes after the sign-in, a refreshed token carries that old time: step up again.
    sqlx::query(
        "UPDATE refresh_tokens SET auth_time = now() - interval '6 minutes'
         WHERE user_id = $1::uuid",
    )
    .bind(&admin_id)
    .execute(&app.pool)
    .await
    .unwrap();
    let stale = refresh(&app, &refreshed.body["refresh_token"]).await;
    assert_eq!(stale.status, StatusCode::OK, "{}", stale.body);
    let stale_token = stale.body["access_token"].as_str().unwrap();
    let stale_time = claims_of(stale_token)["auth_time"].as_i64().unwrap();
    assert!(stale_time <= now - 300, "{stale_time}");
    assert_step_up(&payout(&app, stale_token, "stale").await);
    assert_eq!(payouts(&app).await, 2);
}

/// A role change takes effect for payouts at once: a demoted ADMIN's token, still valid and
/// still saying ADMIN, with a fresh second factor, gets 403, and nothing is sent.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_demoted_admin_cannot_pay_out_with_a_still_valid_token(pool: PgPool) {
    let Some((app, _anvil)) = start(pool).await else {
        return;
    };
    let (admin_id, _) = app.user_with_role(ADMIN, "ADMIN").await;
    let Some(signed_in) = app.sign_in_with_totp(ADMIN).await else {
        return;
    };
    let token = signed_in["access_token"].as_str().unwrap();
    sqlx::query("UPDATE users SET role = 'STAFF' WHERE id = $1::uuid")
        .bind(&admin_id)
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(claims_of(token)["role"], "ADMIN");
    payout(&app, token, "demoted").await.problem(403);
    assert_eq!(payouts(&app).await, 0);
}

/// The password thief's path: an ADMIN without TOTP, whose password leaked, turns TOTP on and
/// steps up at once. The owner is mailed that TOTP was turned on, and the fresh factor approves
/// no payout until `PAYOUT_MFA_MIN_AGE_HOURS` have passed (403 `second-factor-too-new`).
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_second_factor_turned_on_moments_ago_approves_no_payout(pool: PgPool) {
    let Some((app, _anvil)) = start_with(pool, &[("PAYOUT_MFA_MIN_AGE_HOURS", "24")]).await else {
        return;
    };
    let (admin_id, _) = app.user_with_role(ADMIN, "ADMIN").await;
    let Some(signed_in) = app.sign_in_with_totp(ADMIN).await else {
        return;
    };
    let fresh = signed_in["access_token"].as_str().unwrap().to_owned();
    let refused = payout(&app, &fresh, "thief").await;
    assert_eq!(
        refused.problem(403)["type"],
        "urn:gantry:problem:second-factor-too-new"
    );
    assert_eq!(payouts(&app).await, 0);
    let mails: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM mail_outbox WHERE recipient = $1 AND subject = 'Two-factor sign-in was turned on'",
    )
    .bind(ADMIN)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(mails, 1, "the owner hears of it");

    // A day later, the same factor approves it.
    sqlx::query(
        "UPDATE mfa_totp SET activated_at = now() - interval '25 hours' WHERE user_id = $1::uuid",
    )
    .bind(&admin_id)
    .execute(&app.pool)
    .await
    .unwrap();
    let sent = payout(&app, &fresh, "owner").await;
    assert_eq!(sent.status, StatusCode::ACCEPTED, "{}", sent.body);
}
