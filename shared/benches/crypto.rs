//! Credential hot paths: Argon2id at OWASP cost, and EdDSA access-token signing/verification.
//!   cargo bench -p gantry --bench crypto

use criterion::{Criterion, criterion_group, criterion_main};
use gantry::auth::jwt::Subject;
use gantry::auth::keys::Jwks;
use gantry::auth::{Amr, PasswordHasher, SigningKey, TokenSigner, TokenVerifier};
use gantry::domain::Role;
use std::hint::black_box;
use std::time::Duration;

fn passwords(c: &mut Criterion) {
    let hasher = PasswordHasher::owasp();
    let mut group = c.benchmark_group("argon2id_owasp");
    group.sample_size(20);
    group.bench_function("hash", |b| {
        b.iter(|| hasher.hash_blocking(black_box("correct horse battery staple")))
    });
    let stored = hasher
        .hash_blocking("correct horse battery staple")
        .unwrap_or_default();
    group.bench_function("verify", |b| {
        b.iter(|| hasher.verify_blocking(black_box("correct horse battery staple"), Some(&stored)))
    });
    group.bench_function("verify_unknown_account", |b| {
        b.iter(|| hasher.verify_blocking(black_box("correct horse battery staple"), None))
    });
    group.finish();
}

fn tokens(c: &mut Criterion) {
    let key = SigningKey::generate();
    let Ok(signer) = TokenSigner::new(&key, "gantry", "gantry-api", Duration::from_secs(900))
    else {
        return;
    };
    let jwks = Jwks {
        keys: vec![key.public_jwk()],
    };
    let Ok(verifier) = TokenVerifier::new(jwks, "gantry", "gantry-api") else {
        return;
    };
    let subject = Subject {
        user_id: uuid::Uuid::now_v7(),
        role: Role::Client,
        identity_id: uuid::Uuid::now_v7(),
        amr: Amr::Pwd.into(),
        email_verified: true,
    };
    let sid = uuid::Uuid::now_v7();
    let token = signer.issue(subject, sid).unwrap_or_default();
    let mut group = c.benchmark_group("jwt_eddsa");
    group.bench_function("sign", |b| b.iter(|| signer.issue(black_box(subject), sid)));
    group.bench_function("verify", |b| b.iter(|| verifier.verify(black_box(&token))));
    group.finish();
}

criterion_group!(benches, passwords, tokens);
criterion_main!(benches);
