//! What the work area's rules use: the database, token verification and the IPFS store.

use crate::db::Db;
use crate::error::{AppError, AppResult};
use crate::ipfs::{IpfsConfig, IpfsStore};
use crate::platform::{Platform, StartupError, Tokens};
use axum::extract::FromRef;
use sqlx::PgPool;
use std::sync::Arc;

#[derive(Clone)]
pub struct WorkState {
    db: Db,
    tokens: Tokens,
    /// `None` in the functions that never touch documents (tasks, work orders).
    ipfs: Option<Arc<dyn IpfsStore>>,
}

impl FromRef<WorkState> for Tokens {
    fn from_ref(state: &WorkState) -> Self {
        state.tokens.clone()
    }
}

impl WorkState {
    /// Reads the IPFS backend (`IPFS_BACKEND`, …) from the platform's environment.
    pub fn new(platform: &Platform) -> Result<Self, StartupError> {
        let config = IpfsConfig::from_env(&platform.env, crate::runtime::under_lambda())?;
        Ok(Self::with_ipfs(platform, config.build(&platform.env)))
    }

    /// With a given IPFS store (tests: a stub backend).
    pub fn with_ipfs(platform: &Platform, ipfs: Arc<dyn IpfsStore>) -> Self {
        Self {
            ipfs: Some(ipfs),
            ..Self::without_ipfs(platform)
        }
    }

    /// For the functions that read and write only rows: no IPFS settings needed.
    pub fn without_ipfs(platform: &Platform) -> Self {
        Self {
            db: platform.db.clone(),
            tokens: platform.tokens.clone(),
            ipfs: None,
        }
    }

    pub fn db(&self) -> AppResult<&PgPool> {
        self.db.pool()
    }

    pub fn ipfs(&self) -> AppResult<&dyn IpfsStore> {
        self.ipfs.as_deref().ok_or_else(|| {
            AppError::internal(anyhow::anyhow!(
                "this function was built without an IPFS store"
            ))
        })
    }
}
