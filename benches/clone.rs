//! Instance Clone benchmark: throughput as a ratio to a plain copy measured in the same run.
//!
//! `cargo bench --bench clone -- [--scale X] [--runs N] [--clone-only 1] [--seed-once 1]
//! [--scattered-ids 1] [--cache 2G]`
//!
//! Per run: seed a source instance, measure the ceiling (cursor read + unordered
//! `insert_many` of 1,000 into empty collections with the same indexes, no checks), then a
//! first clone and a re-run with nothing to copy, each through the `heimdall` binary (which
//! reports its peak RSS; the benchmark samples the anonymous and file-backed parts of it).
//! `--seed-once 1`: the runs share one seeded source (read only; at ten million documents the
//! seed takes as long as a clone). `--scattered-ids 1`: a source whose ObjectIds carry random
//! times, so no collection is stored in `_id` order (`heimdall seed --scattered-ids`). Prints
//! medians, and where the CPU went: the database server's CPU seconds in the ceiling and in
//! the first run (when the benchmark started the server), and the `heimdall` process's own.
//! Uses `MONGODB_BENCH_URI` or starts a secantusd-rs with a cache of `--cache`.

#[path = "common.rs"]
mod common;

use std::sync::Arc;
use std::time::Instant;

use common::{arg, median, migrate, plain_copy, seed_options, settle, CpuClock};
use heimdall::seed::seed_instance;
use heimdall_host::plugin::{Lifetime, Registry};

#[tokio::main]
async fn main() {
    let scale = arg("--scale", 120.0);
    let runs = arg("--runs", 3.0) as usize;
    // The first run and the re-run only (no sync, no undo): the flat-memory figures at scale.
    let clone_only = arg("--clone-only", 0.0) > 0.0;
    let seed_once = arg("--seed-once", 0.0) > 0.0;
    let dir = tempfile::tempdir().unwrap();
    let (uri, server) = common::server(dir.path());
    let server_pid = server.as_ref().map(|s| s.pid);
    let client = common::client(&uri).await;
    let registry = Arc::new(Registry::new(heimdall::plugins::all()).unwrap());
    let durable_names: Vec<&str> = registry
        .collections()
        .iter()
        .filter(|c| c.spec.lifetime == Lifetime::Durable)
        .map(|c| c.spec.name)
        .collect();

    let (mut ratios, mut rerun_ratios, mut rss, mut ceil_rate, mut clone_rate) =
        (vec![], vec![], vec![], vec![], vec![]);
    let (mut rss2, mut anon, mut anon2) = (vec![], vec![], vec![]);
    let (mut undo_ratios, mut undo_rss, mut sync_ratios) = (vec![], vec![], vec![]);
    let (mut cpu_ratios, mut ceil_cpu, mut clone_server_cpu, mut clone_own_cpu) =
        (vec![], vec![], vec![], vec![]);
    let mut docs = 0;
    for r in 0..runs {
        let src = if seed_once {
            client.database("bench_src")
        } else {
            client.database(&format!("bench_src_{r}"))
        };
        if r == 0 || !seed_once {
            let t0 = Instant::now();
            let report = seed_instance(&src, &seed_options(scale)).await.unwrap();
            docs = durable_names
                .iter()
                .map(|c| report.counts.get(*c).copied().unwrap_or(0))
                .sum();
            eprintln!(
                "run {r}: seeded {} documents ({docs} durable) in {:.1}s",
                report.total(),
                t0.elapsed().as_secs_f64()
            );
        }
        let durable = docs;

        let ceiling_db = client.database(&format!("bench_ceiling_{r}"));
        heimdall_host::db::ensure_indexes(&ceiling_db, &registry)
            .await
            .unwrap();
        let waited = settle(server_pid).await;
        eprintln!("run {r}: the server settled in {waited:.0}s before the ceiling");
        let clock = CpuClock::start(server_pid);
        let (ceil, n) = plain_copy(&src, &ceiling_db, &durable_names).await;
        let (ceil_server, _) = clock.elapsed();
        assert_eq!(n, durable);
        let target = format!("bench_dst_{r}");
        let clone_args = ["clone", "--source", uri.as_str(), "--source-db", src.name()];
        let waited = settle(server_pid).await;
        eprintln!("run {r}: the server settled in {waited:.0}s before the clone");
        let clock = CpuClock::start(server_pid);
        let run1 = migrate(&uri, &target, &clone_args);
        let (first_server, first_own) = clock.elapsed();
        let (first, json) = (run1.secs, &run1.json);
        assert_eq!(json["imported"].as_u64().unwrap(), durable);
        settle(server_pid).await;
        let run2 = migrate(&uri, &target, &clone_args);
        let (again, json2) = (run2.secs, &run2.json);
        assert_eq!(json2["imported"].as_u64().unwrap(), 0);
        let secs = |j: &serde_json::Value, k: &str| j[k].as_f64().unwrap_or(0.0) / 1000.0;
        eprintln!(
            "run {r}: ceiling {:.2}s, clone {first:.2}s (copy {:.2}s, verification {:.2}s), re-run {again:.2}s (copy {:.2}s, verification {:.2}s); first run {}; re-run {}",
            ceil.as_secs_f64(),
            secs(json, "copyMs"),
            secs(json, "verifyMs"),
            secs(json2, "copyMs"),
            secs(json2, "verifyMs"),
            run1.memory(),
            run2.memory(),
        );
        if let (Some(c), Some(f)) = (ceil_server, first_server) {
            eprintln!(
                "run {r}: CPU seconds: server {c:.1} in the ceiling, {f:.1} in the first run ({:.2}×); heimdall {first_own:.1}",
                f / c
            );
            cpu_ratios.push(f / c);
            ceil_cpu.push(c);
            clone_server_cpu.push(f);
        }
        clone_own_cpu.push(first_own);
        ceil_rate.push(durable as f64 / ceil.as_secs_f64());
        clone_rate.push(durable as f64 / first);
        ratios.push(ceil.as_secs_f64() / first);
        rerun_ratios.push(again / first);
        rss.push(run1.peak_kb as f64);
        rss2.push(run2.peak_kb as f64);
        anon.push(run1.anon_kb as f64);
        anon2.push(run2.anon_kb as f64);
        if !clone_only {
            // A sync with nothing changed: compared with the first run (and the plain re-run).
            let sync_args = [
                "clone",
                "--source",
                uri.as_str(),
                "--source-db",
                src.name(),
                "--sync",
            ];
            settle(server_pid).await;
            let run4 = migrate(&uri, &target, &sync_args);
            let (sync, json4) = (run4.secs, &run4.json);
            assert_eq!(json4["imported"].as_u64().unwrap(), 0, "{json4}");
            eprintln!(
                "run {r}: sync with nothing changed {sync:.2}s (copy {:.2}s, verification {:.2}s; {:.2} × the re-run)",
                secs(json4, "copyMs"),
                secs(json4, "verifyMs"),
                sync / again
            );
            sync_ratios.push(sync / first);
            // Undo of the first run: every document it inserted removed, checked again.
            let first_id = json["runId"].as_str().unwrap().to_string();
            settle(server_pid).await;
            let run3 = migrate(&uri, &target, &["undo", &first_id]);
            let (undo, json3) = (run3.secs, &run3.json);
            assert_eq!(json3["status"], "completed", "{json3}");
            assert_eq!(json3["verification"]["ok"], true, "{json3}");
            eprintln!(
                "run {r}: undo of the first run {undo:.2}s (undo {:.2}s, verification {:.2}s), {}",
                secs(json3, "copyMs"),
                secs(json3, "verifyMs"),
                run3.memory(),
            );
            undo_ratios.push(undo / first);
            undo_rss.push(run3.peak_kb as f64);
        }
        for db in [format!("bench_ceiling_{r}"), target] {
            client.database(&db).drop().await.unwrap();
        }
        if !seed_once || r + 1 == runs {
            src.drop().await.unwrap();
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
        "| clone, first run, copy and verification | {:.0} docs/s | — |",
        median(clone_rate)
    );
    println!(
        "| clone first run ÷ ceiling | {:.2} | ≥ 0.9 |",
        median(ratios)
    );
    println!(
        "| re-run time ÷ first-run time | {:.2} | ≤ 0.35 |",
        median(rerun_ratios)
    );
    let mb = |v: &Vec<f64>| median(v.clone()) / 1024.0;
    println!(
        "| peak RSS of `heimdall migrate clone`, first run / re-run | {:.1} / {:.1} MB | ≤ 150 MB |",
        mb(&rss),
        mb(&rss2)
    );
    println!(
        "| of which anonymous (largest sampled `RssAnon`), first run / re-run | {:.1} / {:.1} MB | — |",
        mb(&anon),
        mb(&anon2)
    );
    eprintln!(
        "per run: peak RSS {:?} / {:?} kB; anonymous {:?} / {:?} kB",
        rss, rss2, anon, anon2
    );
    if !cpu_ratios.is_empty() {
        println!(
            "| database server CPU seconds: ceiling / first run | {:.1} / {:.1} | — |",
            median(ceil_cpu),
            median(clone_server_cpu)
        );
        println!(
            "| server CPU seconds, first run ÷ ceiling | {:.2} | — |",
            median(cpu_ratios)
        );
    }
    println!(
        "| `heimdall migrate clone` CPU seconds, first run | {:.1} | — |",
        median(clone_own_cpu)
    );
    if clone_only {
        return;
    }
    println!(
        "| sync with nothing changed, time ÷ first-run time | {:.2} | ≤ re-run's |",
        median(sync_ratios)
    );
    println!(
        "| undo of the first run, time ÷ first-run time | {:.2} | — |",
        median(undo_ratios)
    );
    println!(
        "| peak RSS of `heimdall migrate undo` | {:.0} MB | — |",
        median(undo_rss) / 1024.0
    );
}
