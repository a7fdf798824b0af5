//! Gateway benchmark against a real `heimdall run` process:
//! - memory per idle authenticated connection (server RSS delta over `--idle` connections,
//!   100,000 by default; the benchmark raises its file-descriptor limits, and its clients
//!   come from many loopback addresses, 50 each, as from real networks);
//! - one event to `--room` sockets (10,000) in one guild room: publish → receipt p50 and
//!   p99, against a minimal tokio-tungstenite broadcaster (this binary run with
//!   `--minimal-broadcaster`, a separate process as the bot is; it writes what is waiting
//!   for a client and flushes once, as the gateway does) in the same run;
//! - owner broadcast to `--owners` sockets: sustained events delivered per second;
//! - a reconnect storm: `--storm N` owner connections dropped at once while events keep
//!   coming, all reconnecting and resuming from their last `seq`: time until every one has
//!   resumed, events lost or duplicated (must be 0), and the server's RSS afterwards
//!   against its idle figure. `--storm-users U` (1 by default, as first measured): the
//!   storm's clients are U owners, client `i` signed in as the `i % U`-th.
//!
//! `cargo bench --bench gateway -- [--idle N] [--room N] [--owners N] [--storm N]
//! [--storm-users U] [--runs N]`

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
/// The guild room of the latency test.
const GUILD: &str = "200000000000000042";

/// The owner storm client `i` signs in as, of `users`.
fn storm_user(i: usize, users: usize) -> u64 {
    OWNER + (i % users.max(1)) as u64
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Raises this process's open-file limit (inherited by the bot it starts): to 1,048,576
/// where allowed (root), else to the hard limit.
fn raise_fd_limit() {
    // SAFETY: plain getrlimit/setrlimit on this process.
    unsafe {
        let mut l = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut l);
        let want = libc::rlimit {
            rlim_cur: 1 << 20,
            rlim_max: 1 << 20,
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &want) != 0 {
            l.rlim_cur = l.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut l);
        eprintln!("open files allowed: {}", l.rlim_cur);
    }
}

/// Client sockets keep small buffers: the benchmark's 100,000 clients share the machine
/// with the server they measure.
fn client_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
}

/// A WebSocket connection to `port` from loopback address `src`.
async fn connect_from(
    port: u16,
    src: std::net::Ipv4Addr,
) -> Option<tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>> {
    let sock = tokio::net::TcpSocket::new_v4().ok()?;
    sock.bind((src, 0).into()).ok()?;
    let tcp = sock.connect(([127, 0, 0, 1], port).into()).await.ok()?;
    let url = format!("ws://127.0.0.1:{port}");
    let (ws, _) =
        tokio_tungstenite::client_async_with_config(url.as_str(), tcp, Some(client_config()))
            .await
            .ok()?;
    Some(ws)
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

/// Connects from loopback address `src`, authenticates as `user` (and subscribes to
/// `room`, when given); the returned task answers pings and feeds `on_event`.
async fn client(
    port: u16,
    src: std::net::Ipv4Addr,
    user: u64,
    room: Option<&str>,
    on_event: impl Fn(&str) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let mut ws = connect_from(port, src).await.expect("connect");
    ws.next().await.unwrap().unwrap(); // hello
    let token = heimdall_host::auth::mint(SECRET, user, Duration::from_secs(3600));
    ws.send(Message::Text(
        json!({ "type": "auth", "token": token }).to_string().into(),
    ))
    .await
    .unwrap();
    wait_for(&mut ws, "\"authenticated\"").await;
    if let Some(g) = room {
        ws.send(Message::Text(
            json!({ "type": "subscribe", "guildId": g })
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
        wait_for(&mut ws, "\"subscribed\"").await;
    }
    tokio::spawn(async move {
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Text(t) = m {
                on_event(&t);
            }
        }
    })
}

/// Reads until a text frame containing `what` arrives.
async fn wait_for(ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>, what: &str) {
    loop {
        if let Message::Text(t) = ws.next().await.unwrap().unwrap() {
            if t.contains(what) {
                return;
            }
        }
    }
}

/// A client of the minimal broadcaster: connects, then feeds `on_event`.
async fn bare_client(
    port: u16,
    src: std::net::Ipv4Addr,
    on_event: impl Fn(&str) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let mut ws = connect_from(port, src).await.expect("connect");
    tokio::spawn(async move {
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Text(t) = m {
                on_event(&t);
            }
        }
    })
}

/// The minimal broadcaster (`--minimal-broadcaster PORT`): accepts WebSocket connections,
/// and for each line `go COUNT INTERVAL_MS` on standard input sends COUNT events
/// shaped as the gateway's (`{"data": {"i", "sentAtUs"}, "event", "timestamp", "guildId",
/// "seq"}`) INTERVAL_MS apart to every connection, through a tokio broadcast
/// channel and one writer task per connection. Nothing else: the floor a gateway's
/// fan-out is compared with.
async fn minimal_broadcaster(port: u16) {
    use tokio::io::AsyncBufReadExt;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let (tx, _) =
        tokio::sync::broadcast::channel::<tokio_tungstenite::tungstenite::Utf8Bytes>(4096);
    let accept_tx = tx.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let mut rx = accept_tx.subscribe();
            tokio::spawn(async move {
                // tungstenite's write buffer: what is fed before a flush leaves together,
                // as the gateway's own writer does.
                let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
                    .read_buffer_size(4096);
                let Ok(ws) = tokio_tungstenite::accept_async_with_config(tcp, Some(config)).await
                else {
                    return;
                };
                let (mut sink, mut stream) = ws.split();
                tokio::spawn(async move { while let Some(Ok(_)) = stream.next().await {} });
                while let Ok(m) = rx.recv().await {
                    if sink.feed(Message::Text(m)).await.is_err() {
                        return;
                    }
                    // Everything else already waiting, then one flush.
                    loop {
                        match rx.try_recv() {
                            Ok(m) => {
                                if sink.feed(Message::Text(m)).await.is_err() {
                                    return;
                                }
                            }
                            Err(tokio::sync::broadcast::error::TryRecvError::Empty) => break,
                            Err(_) => return,
                        }
                    }
                    if sink.flush().await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    println!("ready");
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let parts: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|p| p.parse().ok())
            .collect();
        let (count, interval) = (
            parts.first().copied().unwrap_or(1),
            parts.get(1).copied().unwrap_or(20),
        );
        for i in 0..count {
            // The gateway's frame for the same event, byte for byte in shape: the clients
            // parse as much from either.
            let ms = now_us() / 1000;
            let _ = tx.send(
                json!({
                    "data": { "i": i, "sentAtUs": now_us() },
                    "event": "dev:ping",
                    "timestamp": ms,
                    "guildId": GUILD,
                    "seq": i + 1,
                })
                .to_string()
                .into(),
            );
            tokio::time::sleep(Duration::from_millis(interval)).await;
        }
    }
}

/// Latencies (µs) of `dev:ping` events: publish → receipt.
type Samples = Arc<Mutex<Vec<u64>>>;

fn record(samples: &Samples, got: &AtomicU64, t: &str) {
    if !t.contains("\"dev:ping\"") {
        return;
    }
    got.fetch_add(1, Ordering::Relaxed);
    let v: Value = serde_json::from_str(t).unwrap_or_default();
    let sent = v["data"]["sentAtUs"].as_u64().unwrap_or(0);
    samples.lock().unwrap().push(now_us().saturating_sub(sent));
}

/// Waits until `got` reaches `want` (at most 60 s) and returns the sorted samples.
async fn collect(samples: &Samples, got: &AtomicU64, want: u64) -> Vec<u64> {
    let t0 = Instant::now();
    while got.load(Ordering::Relaxed) < want && t0.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut l = std::mem::take(&mut *samples.lock().unwrap());
    l.sort_unstable();
    l
}

/// What one storm client saw of the owner stream.
#[derive(Default)]
struct Tracker {
    /// The first `seq` received.
    first: AtomicU64,
    /// The last `seq` received in order.
    last: AtomicU64,
    /// Events missing (a jump past `last + 1`, or a `resume_gap`).
    lost: AtomicU64,
    /// Events received again (`seq` ≤ `last`).
    duplicated: AtomicU64,
    /// Set once a reconnected client has received the first event after its `ownerSeq`.
    resumed: std::sync::atomic::AtomicBool,
    /// When that was (µs since the epoch).
    resumed_us: AtomicU64,
    /// Connection attempts that failed or timed out (each then retried after a back-off).
    retries: AtomicU64,
}

/// The loopback address storm client `i` connects from: 50 clients per address.
fn storm_source(i: usize) -> std::net::Ipv4Addr {
    let a = i / 50;
    std::net::Ipv4Addr::new(127, 1, (a / 250) as u8, (a % 250 + 1) as u8)
}

/// Connects from `src` (retrying while the server is busy, as real clients do),
/// authenticates as the owner, resuming after `resume` when given, and tracks every
/// owner event's `seq`.
async fn storm_client(
    port: u16,
    src: std::net::Ipv4Addr,
    user: u64,
    resume: Option<u64>,
    tracker: Arc<Tracker>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(50);
        let mut ws = loop {
            let attempt = async {
                let mut ws = connect_from(port, src).await?;
                ws.next().await?.ok()?; // hello
                let token = heimdall_host::auth::mint(SECRET, user, Duration::from_secs(3600));
                let mut auth = json!({ "type": "auth", "token": token });
                if let Some(seq) = resume {
                    auth["ownerSeq"] = seq.into();
                }
                ws.send(Message::Text(auth.to_string().into())).await.ok()?;
                Some(ws)
            };
            match tokio::time::timeout(Duration::from_secs(10), attempt).await {
                Ok(Some(ws)) => break ws,
                _ => {
                    tracker.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        };
        while let Some(Ok(m)) = ws.next().await {
            let Message::Text(t) = m else { continue };
            if t.contains("\"resume_gap\"") {
                tracker.lost.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if !t.contains("\"dev:ping\"") {
                continue;
            }
            let v: Value = serde_json::from_str(&t).unwrap_or_default();
            let seq = v["seq"].as_u64().unwrap_or(0);
            let last = tracker.last.load(Ordering::Relaxed);
            if seq <= last {
                tracker.duplicated.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if last > 0 && seq > last + 1 {
                tracker.lost.fetch_add(seq - last - 1, Ordering::Relaxed);
            }
            let _ = tracker
                .first
                .compare_exchange(0, seq, Ordering::Relaxed, Ordering::Relaxed);
            tracker.last.store(seq, Ordering::Relaxed);
            if !tracker.resumed.swap(true, Ordering::Relaxed) {
                tracker.resumed_us.store(now_us(), Ordering::Relaxed);
            }
        }
    })
}

/// The storm's figures.
struct Storm {
    resumed_in: f64,
    lost: u64,
    duplicated: u64,
    rss_idle_kb: u64,
    rss_after_kb: u64,
}

/// Connects `n` owner clients, keeps owner events coming (10 a second), drops every client
/// at once, reconnects them all resuming from their last `seq`, and checks what each got.
async fn storm(base: &str, port: u16, pid: u32, n: usize, users: usize) -> Storm {
    let http = reqwest::Client::new();
    let token = heimdall_host::auth::mint(SECRET, OWNER, Duration::from_secs(3600));
    let trackers: Vec<Arc<Tracker>> = (0..n).map(|_| Arc::new(Tracker::default())).collect();
    let mut tasks = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(250) {
        for &i in chunk {
            tasks.push(
                storm_client(
                    port,
                    storm_source(i),
                    storm_user(i, users),
                    None,
                    trackers[i].clone(),
                )
                .await,
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Events from now on: 10 a second for 30 s (the first ones tell who is connected).
    http.post(format!("{base}/api/dev/gateway/ping"))
        .bearer_auth(&token)
        .json(&json!({ "count": 300, "intervalMs": 100 }))
        .send()
        .await
        .unwrap();
    let t0 = Instant::now();
    while trackers.iter().any(|t| t.last.load(Ordering::Relaxed) == 0)
        && t0.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_idle_kb = rss_kb(pid);

    // Everyone drops at once; everyone comes back at once, from where it was (read once
    // each old task is over: an abort lands at its next await, and it may take one more
    // event before that).
    for t in &tasks {
        t.abort();
    }
    let dropped = Instant::now();
    let dropped_us = now_us();
    for t in tasks.drain(..) {
        let _ = t.await;
    }
    for t in &trackers {
        t.resumed.store(false, Ordering::Relaxed);
        t.retries.store(0, Ordering::Relaxed);
    }
    let reconnects = futures::future::join_all((0..n).map(|i| {
        let last = trackers[i].last.load(Ordering::Relaxed);
        storm_client(
            port,
            storm_source(i),
            storm_user(i, users),
            Some(last),
            trackers[i].clone(),
        )
    }))
    .await;
    tasks.extend(reconnects);
    while trackers.iter().any(|t| !t.resumed.load(Ordering::Relaxed))
        && dropped.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let resumed_in = dropped.elapsed().as_secs_f64();
    // How the clients' resumptions spread over that time, and how many had to try again.
    let mut each: Vec<u64> = trackers
        .iter()
        .map(|t| {
            t.resumed_us
                .load(Ordering::Relaxed)
                .saturating_sub(dropped_us)
        })
        .collect();
    each.sort_unstable();
    let retried = trackers
        .iter()
        .filter(|t| t.retries.load(Ordering::Relaxed) > 0)
        .count();
    eprintln!(
        "storm: clients resumed after p50 {:.0} / p90 {:.0} / p99 {:.0} / max {:.0} ms; {retried} of {n} tried more than once",
        percentile(&each, 0.5),
        percentile(&each, 0.9),
        percentile(&each, 0.99),
        percentile(&each, 1.0),
    );
    // Until the last event: every client must hold every seq exactly once. The storm's
    // 300 events are the owner stream's from the first one every client saw.
    let head = |t: &Arc<Tracker>| t.last.load(Ordering::Relaxed);
    let first = trackers
        .iter()
        .map(|t| t.first.load(Ordering::Relaxed))
        .filter(|f| *f > 0)
        .min()
        .unwrap_or(1);
    let last = first + 299;
    let t1 = Instant::now();
    while trackers.iter().any(|t| head(t) < last) && t1.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after_kb = rss_kb(pid);
    let lost = trackers
        .iter()
        .map(|t| t.lost.load(Ordering::Relaxed))
        .sum::<u64>()
        + trackers
            .iter()
            .map(|t| last.saturating_sub(head(t)))
            .sum::<u64>();
    let duplicated = trackers
        .iter()
        .map(|t| t.duplicated.load(Ordering::Relaxed))
        .sum();
    for t in tasks {
        t.abort();
    }
    Storm {
        resumed_in,
        lost,
        duplicated,
        rss_idle_kb,
        rss_after_kb,
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize] as f64 / 1000.0
}

#[tokio::main]
async fn main() {
    let broadcaster_port = arg("--minimal-broadcaster", 0.0) as u16;
    if broadcaster_port != 0 {
        return minimal_broadcaster(broadcaster_port).await;
    }
    raise_fd_limit();
    let idle = arg("--idle", 100_000.0) as usize;
    let room = arg("--room", 10_000.0) as usize;
    let owners = arg("--owners", 1_000.0) as usize;
    let runs = arg("--runs", 5.0) as usize;
    let storm_n = arg("--storm", 10_000.0) as usize;
    let storm_users = arg("--storm-users", 1.0).max(1.0) as usize;
    // Every storm user is an owner (the storm resumes the owner stream).
    let owner_ids: Vec<String> = (0..storm_users.min(storm_n.max(1)))
        .map(|i| storm_user(i, storm_users).to_string())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let (uri, _server) = common::server(dir.path());

    let (mut per_conn, mut p50s, mut p99s, mut rates) = (vec![], vec![], vec![], vec![]);
    let (mut min_p99s, mut p99_ratios) = (vec![], vec![]);
    let mut storms: Vec<Storm> = Vec::new();
    for r in 0..runs {
        let (api, wsp) = (free_port(), free_port());
        let most = idle.max(room).max(storm_n) + owners + 1_000;
        let mut bot = std::process::Command::new(env!("CARGO_BIN_EXE_heimdall"))
            .arg("run")
            .env("MONGODB_URI", &uri)
            .env("MONGODB_DB", format!("bench_gw_{r}"))
            .env("API_PORT", api.to_string())
            .env("WS_PORT", wsp.to_string())
            .env("AUTH_SECRET", SECRET)
            .env("OWNER_IDS", owner_ids.join(","))
            .env("HEIMDALL_CONFIG", "/nonexistent")
            .env("RUST_LOG", "warn")
            .env("WS_MAX_CONNECTIONS", most.to_string())
            .env("WS_MAX_PENDING_PER_ADDRESS", "1000")
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{api}");
        while http.get(format!("{base}/api/health")).send().await.is_err() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let token = heimdall_host::auth::mint(SECRET, OWNER, Duration::from_secs(3600));
        let ping = |count: u32, interval: u64, guild: Option<&str>| {
            let mut body = json!({ "count": count, "intervalMs": interval, "padding": 200 });
            if let Some(g) = guild {
                body["guildId"] = g.into();
            }
            http.post(format!("{base}/api/dev/gateway/ping"))
                .bearer_auth(&token)
                .json(&body)
                .send()
        };

        // 1. Idle connections.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = rss_kb(bot.id());
        let mut idle_tasks = Vec::with_capacity(idle);
        let t0 = Instant::now();
        for chunk in (0..idle).collect::<Vec<_>>().chunks(500) {
            let conns = futures::future::join_all(chunk.iter().map(|i| {
                let user = 500_000_000_000_000_000 + *i as u64;
                client(wsp, storm_source(*i), user, None, |_| {})
            }))
            .await;
            idle_tasks.extend(conns);
        }
        let took = t0.elapsed().as_secs_f64();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let after = rss_kb(bot.id());
        let kib = (after.saturating_sub(before)) as f64 / idle as f64;
        eprintln!("run {r}: {idle} idle connections (opened in {took:.1}s): server RSS {before} → {after} kB = {kib:.2} KiB per connection");
        per_conn.push(kib);
        for t in &idle_tasks {
            t.abort();
        }
        for t in idle_tasks {
            let _ = t.await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;

        // 2. One event to `room` sockets in one guild room, 200 times 20 ms apart; then the
        //    same through the minimal broadcaster.
        let samples: Samples = Arc::new(Mutex::new(Vec::new()));
        let got = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for chunk in (0..room).collect::<Vec<_>>().chunks(500) {
            let conns = futures::future::join_all(chunk.iter().map(|i| {
                let (samples, got) = (samples.clone(), got.clone());
                client(wsp, storm_source(*i), OWNER, Some(GUILD), move |t| {
                    record(&samples, &got, t)
                })
            }))
            .await;
            tasks.extend(conns);
        }
        let n_lat = 200u32;
        ping(n_lat, 20, Some(GUILD)).await.unwrap();
        let l = collect(&samples, &got, u64::from(n_lat) * room as u64).await;
        let (p50, p99) = (percentile(&l, 0.50), percentile(&l, 0.99));
        for t in tasks.drain(..) {
            t.abort();
        }
        let bport = free_port();
        let mut minimal = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--minimal-broadcaster", &bport.to_string()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::BufRead;
            let mut line = String::new();
            std::io::BufReader::new(minimal.stdout.as_mut().unwrap())
                .read_line(&mut line)
                .unwrap();
        }
        got.store(0, Ordering::Relaxed);
        for chunk in (0..room).collect::<Vec<_>>().chunks(500) {
            let conns = futures::future::join_all(chunk.iter().map(|i| {
                let (samples, got) = (samples.clone(), got.clone());
                bare_client(bport, storm_source(*i), move |t| record(&samples, &got, t))
            }))
            .await;
            tasks.extend(conns);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        {
            use std::io::Write;
            writeln!(minimal.stdin.as_mut().unwrap(), "go {n_lat} 20").unwrap();
        }
        let m = collect(&samples, &got, u64::from(n_lat) * room as u64).await;
        let (m50, m99) = (percentile(&m, 0.50), percentile(&m, 0.99));
        for t in tasks.drain(..) {
            t.abort();
        }
        let _ = minimal.kill();
        let _ = minimal.wait();
        eprintln!(
            "run {r}: one event to {room} sockets in a guild room: {} samples, p50 {p50:.2} ms, p99 {p99:.2} ms; minimal broadcaster {} samples, p50 {m50:.2} ms, p99 {m99:.2} ms; p99 ratio {:.2}",
            l.len(),
            m.len(),
            p99 / m99
        );
        p50s.push(p50);
        p99s.push(p99);
        min_p99s.push(m99);
        p99_ratios.push(p99 / m99);
        tokio::time::sleep(Duration::from_secs(1)).await;

        // 3. Sustained delivery: 2,000 owner events at up to 1,000 a second to `owners`
        //    sockets.
        let got = Arc::new(AtomicU64::new(0));
        for chunk in (0..owners).collect::<Vec<_>>().chunks(250) {
            let conns = futures::future::join_all(chunk.iter().map(|i| {
                let got = got.clone();
                client(wsp, storm_source(*i), OWNER, None, move |t| {
                    if t.contains("\"dev:ping\"") {
                        got.fetch_add(1, Ordering::Relaxed);
                    }
                })
            }))
            .await;
            tasks.extend(conns);
        }
        let burst = 2_000u32;
        let t0 = Instant::now();
        ping(burst, 1, None).await.unwrap();
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

        // 4. Reconnect storm.
        if storm_n > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let st = storm(&base, wsp, bot.id(), storm_n, storm_users).await;
            eprintln!(
                "run {r}: storm of {storm_n} ({storm_users} users): all resumed in {:.2}s, {} lost, {} duplicated, server RSS {} kB idle → {} kB after",
                st.resumed_in, st.lost, st.duplicated, st.rss_idle_kb, st.rss_after_kb
            );
            storms.push(st);
        }
        // SAFETY: signalling our own child.
        unsafe { libc::kill(bot.id() as i32, libc::SIGINT) };
        let _ = bot.wait();
    }
    let spread = |v: &[f64]| {
        let (lo, hi) = v
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), x| (lo.min(*x), hi.max(*x)));
        let m = median(v.to_vec());
        ((lo / m - 1.0) * 100.0, (hi / m - 1.0) * 100.0)
    };
    let (lo, hi) = spread(&per_conn);
    println!("| figure | median of {runs} | target |");
    println!("|---|---|---|");
    println!(
        "| server RSS per idle authenticated connection ({idle} connections) | {:.2} KiB (runs {lo:+.1}% … {hi:+.1}%) | ≤ 10 KiB, ±15% |",
        median(per_conn.clone()),
    );
    println!(
        "| one event to {room} sockets in one guild room, p50 / p99 | {:.2} / {:.2} ms | — |",
        median(p50s),
        median(p99s)
    );
    println!(
        "| minimal tokio-tungstenite broadcaster, same clients, p99 | {:.2} ms | — |",
        median(min_p99s)
    );
    println!(
        "| guild room p99 ÷ minimal broadcaster p99 | {:.2} | ≤ 1.5 |",
        median(p99_ratios)
    );
    println!(
        "| sustained events delivered per second ({owners} sockets) | {:.0} | — |",
        median(rates)
    );
    if !storms.is_empty() {
        println!(
            "| reconnect storm of {storm_n} ({storm_users} users): all resumed, seconds after the drop | {:.2} | ≤ 10 |",
            median(storms.iter().map(|s| s.resumed_in).collect())
        );
        println!(
            "| reconnect storm: events lost / duplicated (sum of runs) | {} / {} | 0 / 0 |",
            storms.iter().map(|s| s.lost).sum::<u64>(),
            storms.iter().map(|s| s.duplicated).sum::<u64>()
        );
        println!(
            "| reconnect storm: server RSS after ÷ before (all connected, idle) | {:.2} | ≈ 1 |",
            median(
                storms
                    .iter()
                    .map(|s| s.rss_after_kb as f64 / s.rss_idle_kb.max(1) as f64)
                    .collect()
            )
        );
    }
}
