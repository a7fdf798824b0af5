//! Instance Clone benchmark: throughput as a ratio to a plain copy measured in the same run.
//!
//! `cargo bench --bench clone -- [--scale X] [--runs N]`
//!
//! Per run: seed a source instance, measure the ceiling (cursor read + unordered
//! `insert_many` of 1,000 into empty collections with the same indexes, no checks), then a
//! first clone and a re-run with nothing to copy, each through the `heimdall` binary (which
//! reports its peak RSS). Prints medians. Uses `MONGODB_BENCH_URI` or starts a secantusd-rs.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use heimdall::embedded::{self, ServerOptions};
use heimdall::plugin::{Lifetime, Registry};
use heimdall::seed::{seed_instance, SeedOptions};
use mongodb::bson::{doc, Document};
use mongodb::options::InsertManyOptions;
use mongodb::Database;

const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

fn arg(name: &str, default: f64) -> f64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

async fn ceiling(registry: &Registry, source: &Database, target: &Database) -> (Duration, u64) {
    heimdall::db::ensure_indexes(target, registry)
        .await
        .unwrap();
    let start = Instant::now();
    let mut n = 0;
    for c in registry
        .collections()
        .iter()
        .filter(|c| c.spec.lifetime == Lifetime::Durable)
    {
        let mut cursor = source
            .collection::<Document>(c.spec.name)
            .find(doc! {})
            .batch_size(1000)
            .await
            .unwrap();
        let out = target.collection::<Document>(c.spec.name);
        let mut buf = Vec::with_capacity(1000);
        loop {
            let next = cursor.try_next().await.unwrap();
            let end = next.is_none();
            if let Some(d) = next {
                buf.push(d);
            }
            if buf.len() == 1000 || (end && !buf.is_empty()) {
                n += buf.len() as u64;
                out.insert_many(std::mem::take(&mut buf))
                    .with_options(InsertManyOptions::builder().ordered(false).build())
                    .await
                    .unwrap();
            }
            if end {
                break;
            }
        }
    }
    (start.elapsed(), n)
}

/// Runs `heimdall migrate clone` and returns (seconds, peak RSS in kB, result JSON).
fn clone_cli(uri: &str, source: &str, target: &str) -> (f64, u64, serde_json::Value) {
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_heimdall"))
        .args([
            "migrate",
            "clone",
            "--source",
            uri,
            "--source-db",
            source,
            "--json",
        ])
        .env("MONGODB_URI", uri)
        .env("MONGODB_DB", target)
        .env("ENCRYPTION_KEY", KEY)
        .env("HEIMDALL_REPORT_PEAK_RSS", "1")
        .env("HEIMDALL_CONFIG", "/nonexistent")
        .output()
        .unwrap();
    let secs = start.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "clone failed: {stderr}");
    let rss = stderr
        .lines()
        .find_map(|l| l.strip_prefix("peak-rss "))
        .and_then(|v| v.trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0);
    (secs, rss, serde_json::from_slice(&out.stdout).unwrap())
}

#[tokio::main]
async fn main() {
    let scale = arg("--scale", 110.0);
    let runs = arg("--runs", 3.0) as usize;
    let dir = tempfile::tempdir().unwrap();
    let _server;
    let uri = match std::env::var("MONGODB_BENCH_URI") {
        Ok(u) => u,
        Err(_) => {
            let mut o = ServerOptions::new(dir.path().join("db"));
            o.cache_size = "2G".into();
            let s = embedded::start(&o).unwrap();
            let u = s.uri.clone();
            _server = s;
            u
        }
    };
    let client = heimdall::db::connect(&uri, Duration::from_secs(20))
        .await
        .unwrap();
    let registry = Arc::new(Registry::new(heimdall::plugins::all()).unwrap());
    let key: heimdall::crypto::EncryptionKey = KEY.parse().unwrap();

    let (mut ratios, mut rerun_ratios, mut rss, mut ceil_rate, mut clone_rate, mut copy_ratio) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let mut docs = 0;
    for r in 0..runs {
        let src = client.database(&format!("bench_src_{r}"));
        let t0 = Instant::now();
        let report = seed_instance(
            &src,
            &SeedOptions {
                scale,
                ..SeedOptions::new(key.clone())
            },
        )
        .await
        .unwrap();
        let durable: u64 = registry
            .collections()
            .iter()
            .filter(|c| c.spec.lifetime == Lifetime::Durable)
            .map(|c| report.counts.get(c.spec.name).copied().unwrap_or(0))
            .sum();
        docs = durable;
        eprintln!(
            "run {r}: seeded {} documents ({durable} durable) in {:.1}s",
            report.total(),
            t0.elapsed().as_secs_f64()
        );

        let (ceil, n) = ceiling(
            &registry,
            &src,
            &client.database(&format!("bench_ceiling_{r}")),
        )
        .await;
        assert_eq!(n, durable);
        let target = format!("bench_dst_{r}");
        let (first, peak, json) = clone_cli(&uri, src.name(), &target);
        assert_eq!(json["imported"].as_u64().unwrap(), durable);
        let (again, peak2, json2) = clone_cli(&uri, src.name(), &target);
        assert_eq!(json2["imported"].as_u64().unwrap(), 0);
        let copy_secs = json["copyMs"].as_f64().unwrap() / 1000.0;
        eprintln!(
            "run {r}: ceiling {:.2}s, clone {first:.2}s (copy {copy_secs:.2}s, verify {:.2}s), re-run {again:.2}s, peak RSS {} / {} kB",
            ceil.as_secs_f64(),
            json["verifyMs"].as_f64().unwrap() / 1000.0,
            peak,
            peak2
        );
        ceil_rate.push(durable as f64 / ceil.as_secs_f64());
        clone_rate.push(durable as f64 / first);
        ratios.push(ceil.as_secs_f64() / first);
        copy_ratio.push(ceil.as_secs_f64() / copy_secs);
        rerun_ratios.push(again / first);
        rss.push(peak.max(peak2) as f64);
        for db in [src.name().to_string(), format!("bench_ceiling_{r}"), target] {
            client.database(&db).drop().await.unwrap();
        }
    }
    println!("| figure | median of {runs} | target |");
    println!("|---|---|---|");
    println!("| documents cloned (durable) | {docs} | ≥ 500,000 |");
    println!(
        "| ceiling: plain copy | {:.0} docs/s | — |",
        median(ceil_rate)
    );
    println!(
        "| clone, end to end (copy + verification) | {:.0} docs/s | — |",
        median(clone_rate)
    );
    println!("| clone end to end ÷ ceiling | {:.2} | — |", median(ratios));
    println!(
        "| clone copy phase ÷ ceiling | {:.2} | ≥ 0.9 |",
        median(copy_ratio)
    );
    println!(
        "| re-run time ÷ first-run time | {:.2} | ≤ 0.5 |",
        median(rerun_ratios)
    );
    println!(
        "| peak RSS of `heimdall migrate clone` | {:.0} MB | ≤ 150 MB |",
        median(rss) / 1024.0
    );
}
