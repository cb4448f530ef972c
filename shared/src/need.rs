//! What a function needs from its deployment, declared as data by the module that reads it:
//! [`Need`] (its variables, how SAM and OpenFaaS give each, its AWS access, whether it can make
//! routes answer 503), and the core's own needs ([`needs`]). `crate::function` re-exports these;
//! this module imports nothing of the crate, so any module may declare a need.

use serde::Serialize;

/// A secret or setting group a function's deployment must provide, declared as data by the
/// module that reads it (the core, or an area): its variables, how each is given under SAM and
/// under OpenFaaS, the AWS access it brings, and whether its routes answer 503 while it is down
/// or missing. `gantry manifests` (`crate::manifests`), the OpenAPI 503s and the
/// cold-start benchmark read these declarations; none of them branches on a need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Need {
    /// Short and unique: `database`, `stripe`.
    pub name: &'static str,
    /// Its routes answer 503 while it is down or not configured.
    pub can_be_unavailable: bool,
    pub vars: &'static [Var],
    /// What the function's AWS role may do because of it.
    pub aws: &'static [AwsAccess],
}

/// One variable of a [`Need`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Var {
    pub name: &'static str,
    pub sam: SamValue,
    pub openfaas: FaasValue,
}

/// How template.yaml gives a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SamValue {
    /// A stack parameter (`NoEcho` when `secret`); with a default, deploying without it works.
    Parameter {
        name: &'static str,
        secret: bool,
        default: Option<&'static str>,
        description: &'static str,
    },
    /// A value the stack fixes (YAML, such as `s3` or `!Ref DocumentsBucket`).
    Fixed { value: &'static str },
    /// Not set under SAM (the code's default applies).
    Unset,
}

/// How stack.yml gives a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum FaasValue {
    /// An OpenFaaS secret of this name, read through `<NAME>_FILE`.
    Secret { name: &'static str },
    /// A plain value (an example the operator edits, or a fixed choice).
    Value { value: &'static str },
    /// Not set under OpenFaaS (the code's default applies).
    Unset,
}

/// A stack parameter that must be given (no default).
pub const fn required(name: &'static str, secret: bool, description: &'static str) -> SamValue {
    SamValue::Parameter {
        name,
        secret,
        default: None,
        description,
    }
}

/// A stack parameter that may be left empty.
pub const fn optional(name: &'static str, secret: bool, description: &'static str) -> SamValue {
    SamValue::Parameter {
        name,
        secret,
        default: Some(""),
        description,
    }
}

/// An OpenFaaS secret.
pub const fn secret(name: &'static str) -> FaasValue {
    FaasValue::Secret { name }
}

/// The core's needs; areas declare theirs beside their configuration.
pub mod needs {
    use super::{AwsAccess, FaasValue, Need, SamValue, Var, optional, required, secret};

    pub const DATABASE: Need = Need {
        name: "database",
        can_be_unavailable: true,
        vars: &[Var {
            name: "DATABASE_URL",
            sam: required(
                "DatabaseUrl",
                true,
                "Postgres URL, e.g. postgres://gantry:secret@host:5432/gantry?sslmode=require",
            ),
            openfaas: secret("gantry-database-url"),
        }],
        aws: &[],
    };

    /// The function issues tokens.
    pub const PRIVATE_KEY: Need = Need {
        name: "private-key",
        can_be_unavailable: true,
        vars: &[Var {
            name: "JWT_PRIVATE_KEY",
            sam: required(
                "JwtPrivateKey",
                true,
                "PKCS#8 PEM Ed25519 key with newlines as \\n (JWT_PRIVATE_KEY from `gantry keygen`). Only token-issuing functions receive it.",
            ),
            openfaas: secret("gantry-jwt-private-key"),
        }],
        aws: &[],
    };

    /// The function verifies tokens issued elsewhere.
    pub const PUBLIC_KEYS: Need = Need {
        name: "public-keys",
        can_be_unavailable: false,
        vars: &[Var {
            name: "JWT_PUBLIC_KEYS",
            sam: required(
                "JwtPublicKeys",
                false,
                "JWKS of every key that may verify access tokens (JWT_PUBLIC_KEYS from `gantry keygen`).",
            ),
            openfaas: secret("gantry-jwt-public-keys"),
        }],
        aws: &[],
    };

    /// The variable that moves the ephemeral store (rate windows, lockouts, idempotency keys)
    /// to DynamoDB.
    pub const EPHEMERAL_TABLE_VAR: &str = "EPHEMERAL_STORE_TABLE";

    /// The function counts rate windows and lockouts in the shared ephemeral store: on AWS the
    /// stack's DynamoDB table (the function is built with gantry's `dynamodb` feature); on
    /// OpenFaaS and locally, Postgres.
    pub const EPHEMERAL_TABLE: Need = Need {
        name: "ephemeral-table",
        can_be_unavailable: true,
        vars: &[Var {
            name: EPHEMERAL_TABLE_VAR,
            sam: SamValue::Fixed {
                value: "!Ref EphemeralTable",
            },
            openfaas: FaasValue::Unset,
        }],
        aws: &[AwsAccess::EphemeralTable],
    };

    /// The function calls a chain (EIP-1271 contract wallets, on-chain payments).
    pub const CHAIN_RPC: Need = Need {
        name: "chain-rpc",
        can_be_unavailable: true,
        vars: &[Var {
            name: "CHAIN_RPC_URLS",
            sam: optional(
                "ChainRpcUrls",
                true,
                "chain_id=url pairs (EIP-1271 contract-wallet checks, on-chain payments), e.g. 1=https://rpc.example",
            ),
            openfaas: secret("gantry-chain-rpc-urls"),
        }],
        aws: &[],
    };
}

/// An AWS permission a function's role needs beyond logging.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum AwsAccess {
    SendToQueue {
        queue: &'static str,
    },
    /// The stack's documents bucket: read-only for a function whose routes are all GETs (a
    /// worker has none) unless it also has [`AwsAccess::DocumentsBucketWrites`]; read and write
    /// otherwise.
    DocumentsBucket,
    /// Writes to the documents bucket for a function that has no route to show it (a worker
    /// that stores documents).
    DocumentsBucketWrites,
    /// Every queue worker's queue (the outbox relay).
    SendToEveryQueue,
    /// Item reads and writes on the stack's ephemeral-store table (DynamoDB).
    EphemeralTable,
    /// `kms:Sign` and `kms:GetPublicKey` on the KMS key whose id is this stack parameter.
    KmsSign {
        key_parameter: &'static str,
    },
    /// `ses:SendEmail` from the account's verified identities (the mailer).
    SesSend,
}
