//! `gantry`: the operator CLI. Reads the same environment as the functions (README).

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use gantry::auth::SigningKey;
use gantry::auth::keys::Jwks;
use gantry::config::{Env, PoolDefault};
use gantry::domain::Email;
use gantry::identity::IdentityState;
use gantry::identity::account::{self as service, NewAccount};
use gantry::identity::wallet::nonce::NonceKey;
use gantry::payments::ledger::Verdict;
use gantry::{AppError, Platform};
use secrecy::ExposeSecret;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "gantry", version, about = "gantry operator commands")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply pending database migrations (DATABASE_URL).
    Migrate,
    /// Print new secrets as shell-quoted lines: an Ed25519 signing key (JWT_PRIVATE_KEY,
    /// JWT_PUBLIC_KEYS), a SIWE nonce key (SIWE_NONCE_SECRET) and a TOTP sealing key
    /// (MFA_ENCRYPTION_KEY).
    Keygen,
    /// Manage ADMIN accounts.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Print the OpenAPI document.
    Openapi,
    /// Print the table of deployable functions as JSON (what `gantry manifests` writes from).
    Functions,
    /// Write template.yaml (AWS SAM) and stack.yml (OpenFaaS) from the function table, at the
    /// root of the checkout this CLI was built from, or in --out.
    Manifests {
        /// The directory to write them in.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Write nothing; exit 1 naming each file that is not what the table gives.
        #[arg(long)]
        check: bool,
    },
    /// Print the CID of FILE, exactly as `ipfs add --cid-version=1` would give it in Kubo.
    Cid { file: std::path::PathBuf },
    /// The payment ledger (DATABASE_URL).
    #[command(subcommand)]
    Ledger(LedgerCommand),
}

#[derive(Subcommand)]
enum LedgerCommand {
    /// Recompute every payment event's hash from the first: exits 1 and names the first row
    /// whose content or link was changed, or where rows were removed. With --anchor, also
    /// checks that the chain still leads to a head anchored by a reconcile run (its CID, read
    /// through the IPFS store the functions use).
    Verify {
        #[arg(long)]
        anchor: Option<String>,
    },
    /// Run the reconciliation once (as the `reconcile` worker does) and print its findings and
    /// the ledger head's new anchor as JSON.
    Reconcile,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create a new ADMIN with an email/password identity. The password is read from
    /// GANTRY_ADMIN_PASSWORD, or from standard input with --password-stdin.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Promote the existing account that owns EMAIL to ADMIN.
    Promote {
        #[arg(long)]
        email: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {:#}", gantry::redact::Redacted(&err));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Keygen => keygen(),
        Command::Openapi => {
            print!("{}", gantry::app::spec_json());
            Ok(())
        }
        Command::Functions => {
            let table: Vec<_> = gantry::app::FUNCTIONS
                .iter()
                .map(|f| f.describe())
                .collect();
            println!("{}", serde_json::to_string_pretty(&table)?);
            Ok(())
        }
        Command::Manifests { out, check } => {
            let dir = out.unwrap_or_else(checkout);
            manifests(&dir, check)
        }
        Command::Cid { file } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            println!("{}", gantry::ipfs::import(&bytes).root);
            Ok(())
        }
        Command::Ledger(LedgerCommand::Reconcile) => {
            let platform = platform().await?;
            let reconciler = gantry::payments::reconcile::Reconciler::from_platform(&platform)?;
            let ran = reconciler.run().await.map_err(describe)?;
            println!("{}", serde_json::to_string_pretty(&ran)?);
            Ok(())
        }
        Command::Ledger(LedgerCommand::Verify { anchor }) => {
            let platform = platform().await?;
            let mut conn = platform.db.pool().map_err(describe)?.acquire().await?;
            let verdict = match anchor {
                None => gantry::payments::ledger::verify(&mut conn).await?,
                Some(cid) => {
                    let config = gantry::ipfs::IpfsConfig::from_env(&platform.env, false)?;
                    let store = config.build(&platform.env);
                    gantry::payments::reconcile::verify_anchor(&mut conn, &*store, &cid)
                        .await
                        .map_err(describe)?
                }
            };
            match verdict {
                Verdict::Intact { rows } => {
                    println!("ledger intact: {rows} events");
                    Ok(())
                }
                Verdict::Broken { seq, reason } => bail!("ledger broken at event {seq}: {reason}"),
            }
        }
        Command::Migrate => {
            let platform = platform().await?;
            gantry::db::MIGRATOR
                .run(platform.db.pool().map_err(describe)?)
                .await
                .context("running migrations")?;
            eprintln!("migrations applied");
            Ok(())
        }
        Command::Admin(AdminCommand::Create {
            email,
            name,
            password_stdin,
        }) => {
            let password = read_password(password_stdin)?;
            let account = NewAccount::parse(&email, password, name.as_deref()).map_err(describe)?;
            let user = service::create_admin(&state().await?, account)
                .await
                .map_err(describe)?;
            println!("{}", serde_json::to_string(&user)?);
            Ok(())
        }
        Command::Admin(AdminCommand::Promote { email }) => {
            let email = Email::parse(&email).map_err(|e| anyhow::anyhow!("email {}", e.message))?;
            let user = service::promote_by_email(&state().await?, &email)
                .await
                .map_err(|err| match err {
                    AppError::NotFound => anyhow::anyhow!("no account has the email {email}"),
                    other => describe(other),
                })?;
            println!("{}", serde_json::to_string(&user)?);
            Ok(())
        }
    }
}

async fn platform() -> Result<Platform> {
    let platform = Platform::load(Env::process(), PoolDefault::Function).await?;
    if platform.db.get().is_none() {
        bail!("DATABASE_URL is not set");
    }
    Ok(platform)
}

async fn state() -> Result<IdentityState> {
    Ok(IdentityState::new(&platform().await?)?)
}

/// Turns an API error into a readable CLI error (validation errors list their fields).
fn describe(err: AppError) -> anyhow::Error {
    let problem = err.problem();
    let fields: Vec<String> = problem
        .errors
        .iter()
        .map(|e| format!("{} {}", e.field, e.message))
        .collect();
    if fields.is_empty() {
        anyhow::anyhow!("{}", problem.detail)
    } else {
        anyhow::anyhow!("{}: {}", problem.detail, fields.join("; "))
    }
}

fn read_password(from_stdin: bool) -> Result<String> {
    if from_stdin {
        let mut password = String::new();
        std::io::stdin().read_to_string(&mut password)?;
        return Ok(password.trim_end_matches(['\r', '\n']).to_owned());
    }
    std::env::var("GANTRY_ADMIN_PASSWORD")
        .context("set GANTRY_ADMIN_PASSWORD or pass --password-stdin")
}

/// The root of the checkout this CLI was built from, where the deploy files are committed.
fn checkout() -> PathBuf {
    let cli = Path::new(env!("CARGO_MANIFEST_DIR"));
    cli.parent().unwrap_or(cli).to_path_buf()
}

/// Writes (or with `check`, compares) the deploy files in `dir`.
fn manifests(dir: &Path, check: bool) -> Result<()> {
    let functions = gantry::app::FUNCTIONS;
    let files = [
        ("template.yaml", gantry::manifests::template_yaml(functions)),
        ("stack.yml", gantry::manifests::stack_yml(functions)),
    ];
    let mut stale = Vec::new();
    for (name, text) in &files {
        let path = dir.join(name);
        if check {
            let committed = match std::fs::read_to_string(&path) {
                Ok(committed) => Some(committed),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
                Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
            };
            if committed.as_ref() != Some(text) {
                stale.push(*name);
            }
        } else {
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
    }
    if !stale.is_empty() {
        bail!(
            "stale in {}: {} (run `cargo run -p gantry-cli -- manifests`)",
            dir.display(),
            stale.join(", ")
        );
    }
    Ok(())
}

fn keygen() -> Result<()> {
    let key = SigningKey::generate();
    let pem = key.to_pem()?;
    let jwks = Jwks {
        keys: vec![key.public_jwk()],
    };
    // Single-quoted so the file can be sourced by a shell; neither value contains a quote.
    println!(
        "JWT_PRIVATE_KEY='{}'",
        pem.expose_secret().trim_end().replace('\n', "\\n")
    );
    println!("JWT_PUBLIC_KEYS='{}'", serde_json::to_string(&jwks)?);
    println!("SIWE_NONCE_SECRET='{}'", NonceKey::generate_secret());
    println!(
        "MFA_ENCRYPTION_KEY='{}'",
        gantry::identity::mfa::totp::SealingKey::generate_base64()
    );
    Ok(())
}
