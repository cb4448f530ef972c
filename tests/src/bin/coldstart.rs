//! Cold-start benchmark: for each binary, spawn it as a Lambda function (Runtime API emulator),
//! send one API Gateway v2 `GET /health` event, and time spawn → first response. The binaries
//! take turns run by run. Prints the median, p90 and min of N runs, and the binary's size.
//!   coldstart --runs 25 login=target/release/login hello=target/release/hello-lambda

use anyhow::{Context, Result, bail};
use gantry_tests::lambda::{RuntimeApi, http_api_event, runtime_env, spawn};
use std::path::PathBuf;
use std::time::{Duration, Instant};

struct Target {
    label: String,
    path: PathBuf,
}

fn parse_args() -> Result<(usize, Vec<Target>)> {
    let mut runs = 25;
    let mut targets = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--runs" {
            runs = args.next().context("--runs needs a number")?.parse()?;
        } else if let Some((label, path)) = arg.split_once('=') {
            targets.push(Target {
                label: label.to_owned(),
                path: PathBuf::from(path),
            });
        } else {
            bail!("usage: coldstart [--runs N] label=path ...");
        }
    }
    if targets.is_empty() || runs == 0 {
        bail!("usage: coldstart [--runs N] label=path ...");
    }
    Ok((runs, targets))
}

async fn one_run(target: &Target, env: &[(&str, String)]) -> Result<Duration> {
    let api = RuntimeApi::start().await?;
    let mut env = env.to_vec();
    env.extend(runtime_env(&api, "coldstart"));
    let event = http_api_event("GET", "/health", &[], None);
    let started = Instant::now();
    let mut child = spawn(&target.path, &env)?;
    let answer = api.invoke(event, Duration::from_secs(20)).await?;
    let elapsed = started.elapsed();
    let _ = child.kill().await;
    if answer["statusCode"] != 200 {
        bail!("{} answered {answer}", target.label);
    }
    Ok(elapsed)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> Result<()> {
    let (runs, targets) = parse_args()?;
    let pem = gantry::auth::SigningKey::generate().to_pem()?;
    // COLDSTART_BARE=1: no configuration at all, to separate start-up work from loading.
    let bare = std::env::var_os("COLDSTART_BARE").is_some();
    let env: Vec<(&str, String)> = if bare {
        Vec::new()
    } else {
        vec![
            // What a deployed function reads at start: a (lazy) pool URL and the signing key.
            (
                "DATABASE_URL",
                "postgres://gantry@127.0.0.1:5432/gantry".into(),
            ),
            (
                "JWT_PRIVATE_KEY",
                secrecy::ExposeSecret::expose_secret(&pem).to_owned(),
            ),
        ]
    };
    println!("| binary | runs | median ms | p90 ms | min ms | size KiB |");
    println!("|---|---|---|---|---|---|");
    // One warm-up each so every binary is in the page cache, as on a warm Lambda host. Then the
    // binaries take turns, run by run, so drift in the machine's speed hits them all alike.
    for target in &targets {
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
        for (label, median) in &medians[..medians.len() - 1] {
            println!(
                "\n{label} / {base_label} median ratio: {:.2}",
                median.as_secs_f64() / base.as_secs_f64()
            );
        }
    }
    Ok(())
}
