//! What expires, as each table's owner declares it: a [`Purge`] per kind of expired row (the
//! ephemeral store its rate windows, lockouts and idempotency keys; the queue its old dead
//! letters; identity its spent SIWE nonces, ...). The housekeeping job
//! (`crate::queue::housekeeping`) runs them and names no table.

use futures_util::future::BoxFuture;
use sqlx::PgPool;

/// One kind of expired row, registered by the module that owns its table: a name for the logs,
/// and the statement that deletes what has expired (returning how many rows it deleted).
#[derive(Clone, Copy)]
pub struct Purge {
    pub name: &'static str,
    pub run: for<'c> fn(&'c PgPool) -> BoxFuture<'c, sqlx::Result<u64>>,
}

/// Rows deleted by one run, per purge.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Purged(pub Vec<(&'static str, u64)>);

impl Purged {
    /// Rows the purge called `name` deleted (0 when none ran by that name).
    pub fn of(&self, name: &str) -> u64 {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0, |(_, count)| *count)
    }
}
