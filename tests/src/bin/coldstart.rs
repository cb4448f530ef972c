//! Cold-start benchmark: for each binary, spawn it as a Lambda function (Runtime API emulator),
//! send it one event (an API Gateway v2 `GET /health`, or an empty SQS batch for a queue worker)
//! and time spawn → first response. The binaries take turns run by run. Prints the median, p90
//! and min of N runs, the binary's size, and each median's ratio to the last binary's (the floor).
//! Each binary is first written out as Lambda unpacks it (see `stage`).
//!   coldstart --runs 25 login=target/release/login hello=target/release/hello-lambda
//!   coldstart --runs 25 --functions target/release   (every function in the table, then
//!                                                     hello-lambda from the same folder)

use anyhow::{Context, Result, bail};
use gantry::function::{Need, Trigger};
use gantry_tests::lambda::{RuntimeApi, http_api_event, runtime_env, spawn, sqs_event};
use std::path::PathBuf;
use std::time::{Duration, Instant};

struct Target {
    label: String,
    path: PathBuf,
    queue: bool,
    /// What the function's deployment gives it (from the function table); `None`: everything.
    needs: Option<&'static [&'static Need]>,
}

/// Whether a deployment of a function with `needs` sets variable `name`.
fn given(needs: &[&Need], name: &str) -> bool {
    needs
        .iter()
        .any(|need| need.vars.iter().any(|var| var.name == name))
}

/// Every function in `gantry::app::FUNCTIONS`, built in `dir`, then the floor.
fn every_function(dir: &str) -> Vec<Target> {
    let dir = PathBuf::from(dir);
    let mut targets: Vec<Target> = gantry::app::FUNCTIONS
        .iter()
        .map(|f| Target {
            label: f.name.to_owned(),
            path: dir.join(f.name),
            queue: matches!(f.trigger, Trigger::Queue { .. }),
            needs: Some(f.needs),
        })
        .collect();
    targets.push(Target {
        label: "hello-lambda".to_owned(),
        path: dir.join("hello-lambda"),
        queue: false,
        needs: Some(&[]),
    });
    targets
}

fn parse_args() -> Result<(usize, Vec<Target>)> {
    let mut runs = 25;
    let mut targets = Vec::new();
    let mut floor = None;
    let mut only: Option<Vec<String>> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--runs" {
            runs = args.next().context("--runs needs a number")?.parse()?;
        } else if arg == "--floor" {
            floor = Some(PathBuf::from(args.next().context("--floor needs a path")?));
        } else if arg == "--only" {
            let names = args.next().context("--only needs names")?;
            only = Some(names.split(',').map(str::to_owned).collect());
        } else if arg == "--functions" {
            targets.extend(every_function(
                &args.next().context("--functions needs a folder")?,
            ));
        } else if let Some((label, path)) = arg.split_once('=') {
            targets.push(Target {
                label: label.to_owned(),
                path: PathBuf::from(path),
                queue: false,
                needs: None,
            });
        } else {
            bail!("usage: coldstart [--runs N] label=path ...");
        }
    }
    // `--floor PATH`: the floor built apart (its own, stricter profile), not from `--functions`.
    if let Some(path) = floor {
        for target in targets.iter_mut().filter(|t| t.label == "hello-lambda") {
            target.path = path.clone();
        }
    }
    if let Some(only) = only {
        targets.retain(|t| t.label == "hello-lambda" || only.contains(&t.label));
    }
    if targets.is_empty() || runs == 0 {
        bail!(
            "usage: coldstart [--runs N] [--functions DIR [--only a,b] [--floor PATH]] label=path ..."
        );
    }
    Ok((runs, targets))
}

async fn one_run(target: &Target, env: &[(&str, String)]) -> Result<Duration> {
    let api = RuntimeApi::start().await?;
    let mut env = env.to_vec();
    if let Some(needs) = target.needs {
        env.retain(|(name, _)| given(needs, name));
    }
    env.extend(runtime_env(&api, "coldstart"));
    let event = if target.queue {
        sqs_event(&[])
    } else {
        http_api_event("GET", "/health", &[], None)
    };
    let started = Instant::now();
    let mut child = spawn(&target.path, &env)?;
    let answer = api.invoke(event, Duration::from_secs(20)).await?;
    let elapsed = started.elapsed();
    let _ = child.kill().await;
    let ok = if target.queue {
        answer["batchItemFailures"] == serde_json::json!([])
    } else {
        answer["statusCode"] == 200
    };
    if !ok {
        bail!("{} answered {answer}", target.label);
    }
    Ok(elapsed)
}

/// Writes each binary into `dir` as Lambda unpacks a deployment zip: `bootstrap`, written with
/// write(2), executable. A binary measured where the linker left it is not what Lambda runs: lld
/// writes its output through a memory map, and such a file started 0.1-0.2 ms slower from the
/// page cache here than the same bytes written out (more so the bigger it is). So every binary,
/// the floor included, is staged alike.
fn stage(targets: &mut [Target], dir: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for (i, target) in targets.iter_mut().enumerate() {
        let bytes = std::fs::read(&target.path)
            .with_context(|| format!("reading {}", target.path.display()))?;
        let folder = dir.join(i.to_string());
        std::fs::create_dir(&folder)?;
        let bootstrap = folder.join("bootstrap");
        std::fs::write(&bootstrap, bytes)?;
        std::fs::set_permissions(&bootstrap, std::fs::Permissions::from_mode(0o755))?;
        target.path = bootstrap;
    }
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> Result<()> {
    let (runs, mut targets) = parse_args()?;
    let staged = std::env::temp_dir().join(format!("coldstart-{}", std::process::id()));
    std::fs::create_dir_all(&staged)?;
    let outcome = match stage(&mut targets, &staged) {
        Ok(()) => measure(runs, &targets).await,
        Err(err) => Err(err),
    };
    let _ = std::fs::remove_dir_all(&staged);
    outcome
}

async fn measure(runs: usize, targets: &[Target]) -> Result<()> {
    let key = gantry::auth::SigningKey::generate();
    let pem = key.to_pem()?;
    let jwks = serde_json::to_string(&gantry::auth::keys::Jwks {
        keys: vec![key.public_jwk()],
    })?;
    // COLDSTART_BARE=1: no configuration at all, to separate start-up work from loading.
    // COLDSTART_KEEP=A,B: only those variables, to find which start-up work costs what.
    let bare = std::env::var_os("COLDSTART_BARE").is_some();
    let keep = std::env::var("COLDSTART_KEEP").ok();
    let mut env: Vec<(&str, String)> = if bare {
        Vec::new()
    } else {
        vec![
            // What a deployed function reads at start: a (lazy) pool URL, keys, SIWE settings.
            // A function from the table gets only what its deployment gives it.
            (
                "DATABASE_URL",
                "postgres://gantry@127.0.0.1:5432/gantry".into(),
            ),
            (
                "JWT_PRIVATE_KEY",
                secrecy::ExposeSecret::expose_secret(&pem).to_owned(),
            ),
            ("JWT_PUBLIC_KEYS", jwks),
            ("SIWE_DOMAINS", "app.example.com".into()),
            (
                "SIWE_NONCE_SECRET",
                gantry::identity::wallet::nonce::NonceKey::generate_secret(),
            ),
            ("CHAIN_RPC_URLS", "1=https://rpc.example.com".into()),
            // Under Lambda the disk blockstore is refused; a deployment names a Kubo node.
            ("IPFS_BACKEND", "s3".into()),
            ("IPFS_S3_BUCKET", "gantry-documents".into()),
        ]
    };
    if let Some(keep) = keep {
        env.retain(|(name, _)| keep.split(',').any(|k| k == *name));
    }
    println!("| binary | runs | median ms | p90 ms | min ms | size KiB |");
    println!("|---|---|---|---|---|---|");
    // One warm-up each so every binary is in the page cache, as on a warm Lambda host. Then the
    // binaries take turns, run by run, so drift in the machine's speed hits them all alike.
    for target in targets {
        one_run(target, &env).await?;
    }
    let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(runs); targets.len()];
    for _ in 0..runs {
        for (target, times) in targets.iter().zip(samples.iter_mut()) {
            times.push(one_run(target, &env).await?);
        }
    }
    let mut medians = Vec::new();
    for (target, mut times) in targets.iter().zip(samples) {
        times.sort();
        let median = percentile(&times, 0.5);
        let size = std::fs::metadata(&target.path)?.len() / 1024;
        println!(
            "| {} | {runs} | {:.2} | {:.2} | {:.2} | {size} |",
            target.label,
            median.as_secs_f64() * 1e3,
            percentile(&times, 0.9).as_secs_f64() * 1e3,
            times[0].as_secs_f64() * 1e3,
        );
        medians.push((target.label.clone(), median));
    }
    if let Some((base_label, base)) = medians.last() {
        println!("\n| binary | median / {base_label} |\n|---|---|");
        for (label, median) in &medians[..medians.len() - 1] {
            println!(
                "| {label} | {:.2} |",
                median.as_secs_f64() / base.as_secs_f64()
            );
        }
    }
    Ok(())
}
