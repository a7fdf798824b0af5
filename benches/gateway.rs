//! Gateway benchmark against a real `heimdall run` process:
//! - memory per idle authenticated connection (server RSS delta over N connections);
//! - owner broadcast to 1,000 sockets: latency from publish to receipt, p50 and p99;
//! - sustained events delivered per second to those 1,000 sockets.
//!
//! `cargo bench --bench gateway -- [--idle N] [--owners N] [--runs N]`

#[path = "common.rs"]
mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{arg, median};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "bench-secret-bench-secret-bench-secret-0000";
const OWNER: u64 = 100_000_000_000_000_001;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn raise_fd_limit() {
    // SAFETY: plain getrlimit/setrlimit on this process.
    unsafe {
        let mut l = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut l);
        l.rlim_cur = l.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &l);
    }
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// Connects and authenticates; the returned task answers pings and feeds `on_event`.
async fn client(
    ws_url: &str,
    user: u64,
    on_event: impl Fn(&str) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url)
        .await
        .expect("connect");
    ws.next().await.unwrap().unwrap(); // hello
    let token = heimdall_host::auth::mint(SECRET, user, Duration::from_secs(3600));
    ws.send(Message::Text(
        json!({ "type": "auth", "token": token }).to_string().into(),
    ))
    .await
    .unwrap();
    loop {
        if let Message::Text(t) = ws.next().await.unwrap().unwrap() {
            if t.contains("\"authenticated\"") {
                break;
            }
        }
    }
    tokio::spawn(async move {
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Text(t) = m {
                on_event(&t);
            }
        }
    })
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize] as f64 / 1000.0
}

#[tokio::main]
async fn main() {
    raise_fd_limit();
    let idle = arg("--idle", 10_000.0) as usize;
    let owners = arg("--owners", 1_000.0) as usize;
    let runs = arg("--runs", 3.0) as usize;
    let dir = tempfile::tempdir().unwrap();
    let (uri, _server) = common::server(dir.path());

    let (mut per_conn, mut p50s, mut p99s, mut rates) = (vec![], vec![], vec![], vec![]);
    for r in 0..runs {
        let (api, wsp) = (free_port(), free_port());
        let mut bot = std::process::Command::new(env!("CARGO_BIN_EXE_heimdall"))
            .arg("run")
            .env("MONGODB_URI", &uri)
            .env("MONGODB_DB", format!("bench_gw_{r}"))
            .env("API_PORT", api.to_string())
            .env("WS_PORT", wsp.to_string())
            .env("AUTH_SECRET", SECRET)
            .env("OWNER_IDS", OWNER.to_string())
            .env("HEIMDALL_CONFIG", "/nonexistent")
            .env("RUST_LOG", "warn")
            // Every client of the benchmark comes from 127.0.0.1.
            .env("WS_MAX_CONNECTIONS", (idle + owners + 1_000).to_string())
            .env(
                "WS_MAX_CONNECTIONS_PER_ADDRESS",
                (idle + owners + 1_000).to_string(),
            )
            .env("WS_MAX_PENDING_PER_ADDRESS", "1000")
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{api}");
        while http.get(format!("{base}/api/health")).send().await.is_err() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let ws_url = format!("ws://127.0.0.1:{wsp}");

        // 1. Idle connections.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = rss_kb(bot.id());
        let mut idle_tasks = Vec::with_capacity(idle);
        for chunk in (0..idle).collect::<Vec<_>>().chunks(250) {
            let conns = futures::future::join_all(
                chunk
                    .iter()
                    .map(|i| client(&ws_url, 500_000_000_000_000_000 + *i as u64, |_| {})),
            )
            .await;
            idle_tasks.extend(conns);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = rss_kb(bot.id());
        let kib = (after.saturating_sub(before)) as f64 / idle as f64;
        eprintln!("run {r}: {idle} idle connections: server RSS {before} → {after} kB = {kib:.2} KiB per connection");
        per_conn.push(kib);
        for t in idle_tasks {
            t.abort();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;

        // 2. Latency of owner broadcasts to `owners` sockets.
        let lat: Arc<Mutex<Option<Vec<u64>>>> = Arc::new(Mutex::new(Some(Vec::new())));
        let got = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for chunk in (0..owners).collect::<Vec<_>>().chunks(250) {
            let conns = futures::future::join_all(chunk.iter().map(|_| {
                let (lat, got) = (lat.clone(), got.clone());
                client(&ws_url, OWNER, move |t| {
                    if !t.contains("\"dev:ping\"") {
                        return;
                    }
                    got.fetch_add(1, Ordering::Relaxed);
                    // Parse only in the latency phase (the throughput phase counts).
                    if let Some(lat) = lat.lock().unwrap().as_mut() {
                        let v: Value = serde_json::from_str(t).unwrap_or_default();
                        let sent = v["data"]["sentAtUs"].as_u64().unwrap_or(0);
                        lat.push(now_us().saturating_sub(sent));
                    }
                })
            }))
            .await;
            tasks.extend(conns);
        }
        let token = heimdall_host::auth::mint(SECRET, OWNER, Duration::from_secs(3600));
        let ping = |count: u32, interval: u64| {
            http.post(format!("{base}/api/dev/gateway/ping"))
                .bearer_auth(&token)
                .json(&json!({ "count": count, "intervalMs": interval, "padding": 200 }))
                .send()
        };
        let n_lat = 200u32;
        ping(n_lat, 20).await.unwrap();
        let want = u64::from(n_lat) * owners as u64;
        let t0 = Instant::now();
        while got.load(Ordering::Relaxed) < want && t0.elapsed() < Duration::from_secs(60) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut l = lat.lock().unwrap().take().unwrap_or_default();
        l.sort_unstable();
        let (p50, p99) = (percentile(&l, 0.50), percentile(&l, 0.99));
        eprintln!(
            "run {r}: {} samples, latency p50 {p50:.2} ms, p99 {p99:.2} ms",
            l.len()
        );
        p50s.push(p50);
        p99s.push(p99);

        // 3. Sustained delivery: 2,000 events at up to 1,000 a second to every socket.
        got.store(0, Ordering::Relaxed);
        let burst = 2_000u32;
        let t0 = Instant::now();
        ping(burst, 1).await.unwrap();
        let want = u64::from(burst) * owners as u64;
        while got.load(Ordering::Relaxed) < want && t0.elapsed() < Duration::from_secs(120) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let secs = t0.elapsed().as_secs_f64();
        let delivered = got.load(Ordering::Relaxed);
        eprintln!(
            "run {r}: {delivered} of {want} events delivered in {secs:.2}s = {:.0}/s",
            delivered as f64 / secs
        );
        rates.push(delivered as f64 / secs);
        for t in tasks {
            t.abort();
        }
        // SAFETY: signalling our own child.
        unsafe { libc::kill(bot.id() as i32, libc::SIGINT) };
        let _ = bot.wait();
    }
    println!("| figure | median of {runs} | target |");
    println!("|---|---|---|");
    println!("| server RSS per idle authenticated connection ({idle} connections) | {:.1} KiB | ≤ 10 KiB |", median(per_conn));
    println!(
        "| owner broadcast to {owners} sockets, publish → receipt p50 | {:.2} ms | — |",
        median(p50s)
    );
    println!(
        "| owner broadcast to {owners} sockets, publish → receipt p99 | {:.2} ms | ≤ 20 ms |",
        median(p99s)
    );
    println!(
        "| sustained events delivered per second ({owners} sockets) | {:.0} | — |",
        median(rates)
    );
}
