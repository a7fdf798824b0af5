//! Legacy Import benchmark: records per second and peak RSS of `heimdall migrate legacy` on a
//! modmail-heavy old-bot database, next to the plain-copy ceiling of the same records
//! measured in the same run, and the documents it writes per second next to those of an
//! Instance Clone of what it wrote (the clone's pace on the same documents, same run).
//!
//! `cargo bench --bench legacy -- [--scale X] [--runs N]`

#[path = "common.rs"]
mod common;

use std::time::Instant;

use common::{arg, median, migrate, plain_copy, seed_options, settle};
use heimdall::seed::seed_legacy;

const LEGACY: &[&str] = &[
    "guildsettings",
    "tags",
    "suggestions",
    "modmail",
    "warnings",
    "reminders",
    "reactionroles",
];

#[tokio::main]
async fn main() {
    let scale = arg("--scale", 270.0);
    let runs = arg("--runs", 3.0) as usize;
    let dir = tempfile::tempdir().unwrap();
    let (uri, server) = common::server(dir.path());
    let server_pid = server.as_ref().map(|s| s.pid);
    let client = common::client(&uri).await;
    let (mut rate, mut ceil_rate, mut ratio, mut rss, mut produced_rate) =
        (vec![], vec![], vec![], vec![], vec![]);
    let (mut clone_rate, mut to_clone) = (vec![], vec![]);
    let mut records = 0;
    let mut produced = 0;
    for r in 0..runs {
        let src = client.database(&format!("bench_legacy_src_{r}"));
        let t0 = Instant::now();
        let report = seed_legacy(&src, &seed_options(scale)).await.unwrap();
        records = report.total();
        eprintln!(
            "run {r}: seeded {records} legacy records in {:.1}s",
            t0.elapsed().as_secs_f64()
        );
        let waited = settle(server_pid).await;
        eprintln!("run {r}: the server settled in {waited:.0}s before the ceiling");
        let (ceil, n) = plain_copy(
            &src,
            &client.database(&format!("bench_legacy_ceiling_{r}")),
            LEGACY,
        )
        .await;
        assert_eq!(n, records);
        let target = format!("bench_legacy_dst_{r}");
        settle(server_pid).await;
        let run = migrate(
            &uri,
            &target,
            &["legacy", "--source", &uri, "--source-db", src.name()],
        );
        let (secs, json) = (run.secs, &run.json);
        assert_eq!(json["status"], "completed");
        let tdb = client.database(&target);
        produced = 0;
        for c in tdb.list_collection_names().await.unwrap() {
            if !c.starts_with("migration_") {
                produced += tdb
                    .collection::<mongodb::bson::Document>(&c)
                    .estimated_document_count()
                    .await
                    .unwrap();
            }
        }
        eprintln!(
            "run {r}: ceiling {:.2}s, import {secs:.2}s (copy {:.2}s, verification {:.2}s; {} imported, {} skipped, {} failed; {produced} documents written), {}",
            ceil.as_secs_f64(),
            json["copyMs"].as_f64().unwrap_or(0.0) / 1000.0,
            json["verifyMs"].as_f64().unwrap_or(0.0) / 1000.0,
            json["imported"],
            json["skipped"],
            json["failed"],
            run.memory()
        );
        if let Some(steps) = json["steps"].as_array() {
            let per_step: Vec<String> = steps
                .iter()
                .map(|s| {
                    format!(
                        "{} {}",
                        s["label"].as_str().unwrap_or("?"),
                        s["collections"][0]["processed"]
                    )
                })
                .collect();
            eprintln!("run {r}: records per step: {}", per_step.join(", "));
        }
        // The clone's pace on the same documents: the import's result cloned.
        let cloned = format!("bench_legacy_clone_{r}");
        settle(server_pid).await;
        let crun = migrate(
            &uri,
            &cloned,
            &["clone", "--source", &uri, "--source-db", &target],
        );
        let (csecs, cjson) = (crun.secs, &crun.json);
        let copied = cjson["imported"].as_u64().unwrap_or(0);
        eprintln!(
            "run {r}: clone of the import {csecs:.2}s (copy {:.2}s, verification {:.2}s; {copied} documents, {:.0} documents/s); import ÷ clone documents/s {:.2}",
            cjson["copyMs"].as_f64().unwrap_or(0.0) / 1000.0,
            cjson["verifyMs"].as_f64().unwrap_or(0.0) / 1000.0,
            copied as f64 / csecs,
            (produced as f64 / secs) / (copied as f64 / csecs)
        );
        clone_rate.push(copied as f64 / csecs);
        to_clone.push((produced as f64 / secs) / (copied as f64 / csecs));
        rate.push(records as f64 / secs);
        ceil_rate.push(records as f64 / ceil.as_secs_f64());
        ratio.push(ceil.as_secs_f64() / secs);
        produced_rate.push(produced as f64 / secs);
        rss.push(run.peak_kb as f64);
        for db in [
            src.name().to_string(),
            format!("bench_legacy_ceiling_{r}"),
            target,
            cloned,
        ] {
            client.database(&db).drop().await.unwrap();
        }
    }
    println!("| figure | median of {runs} |");
    println!("|---|---|");
    println!("| legacy records imported | {records} (→ {produced} Heimdall documents) |");
    println!(
        "| ceiling: plain copy of the legacy records | {:.0} records/s |",
        median(ceil_rate)
    );
    println!(
        "| legacy import | {:.0} records/s ({:.0} documents written/s) |",
        median(rate),
        median(produced_rate)
    );
    println!("| legacy import ÷ ceiling | {:.2} |", median(ratio));
    println!(
        "| clone of the imported instance | {:.0} documents/s |",
        median(clone_rate)
    );
    println!(
        "| import ÷ clone, documents written per second | {:.2} (target ≥ 0.9) |",
        median(to_clone)
    );
    println!(
        "| peak RSS of `heimdall migrate legacy` | {:.0} MB |",
        median(rss) / 1024.0
    );
}
