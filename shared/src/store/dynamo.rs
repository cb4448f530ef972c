//! The ephemeral store on DynamoDB (the `dynamodb` feature): one table (`EPHEMERAL_STORE_TABLE`)
//! with a string partition key `pk` and a TTL attribute `expires_at` (epoch seconds), which
//! template.yaml creates. Every rule is one conditional write:
//!
//! - a rate window is an item per key and window (`ADD hits`), so a new window starts at 0;
//! - a lockout streak is an item per identifier (`ADD failures`); a stale streak (a day without
//!   failures, and no lock) starts again at 1, as in the Postgres store;
//! - an idempotency key is written with `attribute_not_exists OR expired`, so of concurrent first
//!   uses exactly one starts; the others read the winner's item from the refusal itself.
//!
//! DynamoDB deletes expired items only eventually (within days), so every read also checks the
//! expiry itself: an expired item counts as absent.
//!
//! The client is configured from the environment (`crate::aws`, no `aws-config`) and built on
//! first use, so a start and every request that needs no store pay nothing for it.

use super::{
    Idempotency, IdempotencyStore, LockoutPolicy, Lockouts, RateDecision, RateLimiter, StoreError,
    StoreResult, lock_left, millis_left, now_ms, stored, whole_seconds_left,
};
use crate::config::Env;
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::OnceCell;

/// The table's partition key.
pub const PARTITION_KEY: &str = "pk";
/// The table's TTL attribute (epoch seconds), as template.yaml declares it.
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// How long a streak of failures is remembered without a new one (the Postgres store's purge).
const STREAK_MEMORY: Duration = Duration::from_secs(86_400);

/// Attempts at counting a failure when concurrent writers keep renewing a stale streak.
const STREAK_ATTEMPTS: usize = 3;

type Item = HashMap<String, AttributeValue>;

pub struct DynamoEphemeral {
    env: Env,
    table: String,
    client: OnceCell<Client>,
}

impl DynamoEphemeral {
    pub fn new(env: &Env, table: String) -> Self {
        Self {
            env: env.clone(),
            table,
            client: OnceCell::new(),
        }
    }

    async fn client(&self) -> &Client {
        self.client
            .get_or_init(|| async {
                crate::aws::sdk_client!(aws_sdk_dynamodb, &self.env, "DYNAMODB")
            })
            .await
    }
}

/// The TTL attribute's value for an item that may go at `ms` (rounded up to whole seconds).
fn ttl_at(ms: u128) -> AttributeValue {
    AttributeValue::N(ms.div_ceil(1000).to_string())
}

fn number(ms: u128) -> AttributeValue {
    AttributeValue::N(ms.to_string())
}

/// A number attribute of `item`, if present and whole.
fn read_number(item: &Item, name: &str) -> Option<u128> {
    match item.get(name) {
        Some(AttributeValue::N(n)) => n.parse().ok(),
        _ => None,
    }
}

fn key(pk: &str) -> AttributeValue {
    AttributeValue::S(stored(pk).into_owned())
}

/// Any SDK failure: the store could not answer (throttled, unreachable, misconfigured). A
/// service's refusal is told by its code and message; anything else with its causes.
fn failed<E, R>(err: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + aws_sdk_dynamodb::error::ProvideErrorMetadata + 'static,
    R: std::fmt::Debug + 'static,
{
    let told = match err.as_service_error() {
        Some(service) => format!(
            "{}: {}",
            service.code().unwrap_or("unknown error"),
            service.message().unwrap_or_default()
        ),
        None => aws_sdk_dynamodb::error::DisplayErrorContext(err).to_string(),
    };
    StoreError::Dynamo(told)
}

/// Whether `err` is DynamoDB refusing a write because its condition did not hold.
fn refused<E, R>(err: &SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    err.as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "ConditionalCheckFailedException")
}

#[async_trait]
impl RateLimiter for DynamoEphemeral {
    async fn hit(&self, key_name: &str, limit: u32, window: Duration) -> StoreResult<RateDecision> {
        let now = now_ms();
        let length = window.as_millis().max(1);
        let start = now - now % length;
        let counted = self
            .client()
            .await
            .update_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, key(&format!("rate#{start}#{key_name}")))
            .update_expression("ADD hits :one SET expires_at = if_not_exists(expires_at, :ttl)")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":ttl", ttl_at(start + length))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(failed)?;
        let hits = counted
            .attributes()
            .and_then(|item| read_number(item, "hits"))
            .unwrap_or(u128::MAX);
        if hits <= u128::from(limit) {
            return Ok(RateDecision::Allowed);
        }
        Ok(RateDecision::Limited {
            retry_after: whole_seconds_left(millis_left(start + length, now)),
        })
    }
}

impl DynamoEphemeral {
    /// Adds one failure to `identifier`'s streak, starting a new streak where the old one is
    /// stale; returns the streak's length.
    async fn count_failure(&self, pk: &AttributeValue) -> StoreResult<u128> {
        for _ in 0..STREAK_ATTEMPTS {
            let now = now_ms();
            let remember = ttl_at(now + STREAK_MEMORY.as_millis());
            let added = self
                .client()
                .await
                .update_item()
                .table_name(&self.table)
                .key(PARTITION_KEY, pk.clone())
                .update_expression("ADD failures :one SET expires_at = :ttl")
                .condition_expression("attribute_not_exists(pk) OR expires_at > :now")
                .expression_attribute_values(":one", AttributeValue::N("1".into()))
                .expression_attribute_values(":ttl", remember.clone())
                .expression_attribute_values(":now", AttributeValue::N((now / 1000).to_string()))
                .return_values(ReturnValue::AllNew)
                .send()
                .await;
            match added {
                Ok(out) => {
                    return Ok(out
                        .attributes()
                        .and_then(|item| read_number(item, "failures"))
                        .unwrap_or(1));
                }
                Err(err) if !refused(&err) => return Err(failed(err)),
                Err(_) => {}
            }
            // The streak is stale: replace it, unless another writer just did.
            let renewed = self
                .client()
                .await
                .put_item()
                .table_name(&self.table)
                .item(PARTITION_KEY, pk.clone())
                .item("failures", AttributeValue::N("1".into()))
                .item(TTL_ATTRIBUTE, remember)
                .condition_expression("attribute_not_exists(pk) OR expires_at <= :now")
                .expression_attribute_values(":now", AttributeValue::N((now / 1000).to_string()))
                .send()
                .await;
            match renewed {
                Ok(_) => return Ok(1),
                Err(err) if !refused(&err) => return Err(failed(err)),
                Err(_) => {}
            }
        }
        Err(StoreError::Contended)
    }
}

#[async_trait]
impl Lockouts for DynamoEphemeral {
    async fn locked_for(&self, identifier: &str) -> StoreResult<Option<Duration>> {
        let now = now_ms();
        let item = self
            .client()
            .await
            .get_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, key(&format!("lock#{identifier}")))
            .consistent_read(true)
            .projection_expression("locked_until")
            .send()
            .await
            .map_err(failed)?;
        Ok(lock_left(
            item.item()
                .and_then(|item| read_number(item, "locked_until")),
            now,
        ))
    }

    async fn record_failure(
        &self,
        identifier: &str,
        policy: LockoutPolicy,
    ) -> StoreResult<Option<Duration>> {
        let pk = key(&format!("lock#{identifier}"));
        let failures = self.count_failure(&pk).await?;
        let Some(lock) = policy.lock_for(u32::try_from(failures).unwrap_or(u32::MAX)) else {
            return Ok(None);
        };
        let now = now_ms();
        let until = now + lock.as_millis();
        let keep = (now + STREAK_MEMORY.as_millis()).max(until);
        // Only while the streak is still this long: a later failure sets its own, longer lock.
        let locked = self
            .client()
            .await
            .update_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, pk)
            .update_expression("SET locked_until = :until, expires_at = :ttl")
            .condition_expression("failures = :n")
            .expression_attribute_values(":until", number(until))
            .expression_attribute_values(":ttl", ttl_at(keep))
            .expression_attribute_values(":n", AttributeValue::N(failures.to_string()))
            .send()
            .await;
        match locked {
            Err(err) if !refused(&err) => Err(failed(err)),
            _ => Ok(Some(lock)),
        }
    }

    async fn clear(&self, identifier: &str) -> StoreResult<()> {
        self.client()
            .await
            .delete_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, key(&format!("lock#{identifier}")))
            .send()
            .await
            .map_err(failed)?;
        Ok(())
    }
}

/// An idempotency key's partition key: the scope's length first, so no scope and key pair can
/// spell another's.
fn idempotency_key(scope: &str, key_name: &str) -> AttributeValue {
    key(&format!("idem#{}#{scope}#{key_name}", scope.len()))
}

/// Where a stored key stands for a request with `request_hash`.
fn standing(item: &Item, request_hash: &[u8]) -> Idempotency {
    let same = matches!(item.get("request_hash"), Some(AttributeValue::B(b)) if b.as_ref() == request_hash);
    if !same {
        return Idempotency::Mismatch;
    }
    let status = read_number(item, "http_status").and_then(|s| u16::try_from(s).ok());
    let response = match item.get("response_json") {
        Some(AttributeValue::S(json)) => serde_json::from_str::<Value>(json).ok(),
        _ => None,
    };
    match (status, response) {
        (Some(status), Some(response)) => Idempotency::Completed { status, response },
        _ => Idempotency::InProgress,
    }
}

#[async_trait]
impl IdempotencyStore for DynamoEphemeral {
    async fn begin(
        &self,
        scope: &str,
        key_name: &str,
        request_hash: &[u8],
        ttl: Duration,
    ) -> StoreResult<Idempotency> {
        let now = now_ms();
        let expires = now + ttl.as_millis();
        let client = self.client().await;
        let written = client
            .put_item()
            .table_name(&self.table)
            .item(PARTITION_KEY, idempotency_key(scope, key_name))
            .item(
                "request_hash",
                AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(request_hash)),
            )
            .item("expires_ms", number(expires))
            .item(TTL_ATTRIBUTE, ttl_at(expires))
            .condition_expression("attribute_not_exists(pk) OR expires_ms <= :now")
            .expression_attribute_values(":now", number(now))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let err = match written {
            Ok(_) => return Ok(Idempotency::Started),
            Err(err) if !refused(&err) => return Err(failed(err)),
            Err(err) => err,
        };
        // Refused: the key is live. The refusal carries the item; read it if it did not.
        let carried = match err.into_service_error() {
            PutItemError::ConditionalCheckFailedException(refusal) => refusal.item,
            _ => None,
        };
        let item = match carried {
            Some(item) => item,
            None => client
                .get_item()
                .table_name(&self.table)
                .key(PARTITION_KEY, idempotency_key(scope, key_name))
                .consistent_read(true)
                .send()
                .await
                .map_err(failed)?
                .item
                .unwrap_or_default(),
        };
        Ok(standing(&item, request_hash))
    }

    async fn complete(
        &self,
        scope: &str,
        key_name: &str,
        status: u16,
        response: &Value,
    ) -> StoreResult<()> {
        let done = self
            .client()
            .await
            .update_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, idempotency_key(scope, key_name))
            .update_expression("SET http_status = :status, response_json = :response")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":status", AttributeValue::N(status.to_string()))
            .expression_attribute_values(":response", AttributeValue::S(response.to_string()))
            .send()
            .await;
        match done {
            // Gone (expired and deleted): nothing to complete, as in the Postgres store.
            Err(err) if !refused(&err) => Err(failed(err)),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pairs: &[(&str, AttributeValue)]) -> Item {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    fn blob(b: &[u8]) -> AttributeValue {
        AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(b))
    }

    #[test]
    fn a_stored_key_stands_by_its_hash_and_its_response() {
        let started = item(&[("request_hash", blob(b"a"))]);
        assert_eq!(standing(&started, b"a"), Idempotency::InProgress);
        assert_eq!(standing(&started, b"b"), Idempotency::Mismatch);
        let done = item(&[
            ("request_hash", blob(b"a")),
            ("http_status", AttributeValue::N("202".into())),
            ("response_json", AttributeValue::S("{\"ok\":true}".into())),
        ]);
        assert_eq!(
            standing(&done, b"a"),
            Idempotency::Completed {
                status: 202,
                response: serde_json::json!({"ok": true})
            }
        );
        // An item the refusal did not carry (or an unreadable one) is never a match.
        assert_eq!(standing(&Item::new(), b"a"), Idempotency::Mismatch);
    }

    #[test]
    fn scopes_and_keys_cannot_spell_each_other() {
        assert_ne!(idempotency_key("a#b", "c"), idempotency_key("a", "b#c"));
    }

    #[test]
    fn the_ttl_is_whole_seconds_rounded_up() {
        assert_eq!(ttl_at(1_000), AttributeValue::N("1".into()));
        assert_eq!(ttl_at(1_001), AttributeValue::N("2".into()));
    }
}
