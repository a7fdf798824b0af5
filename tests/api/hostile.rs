//! Hostile and broken clients: connections that never finish a handshake, floods from one
//! address, clients that stop reading. Every loop is bounded in count and time, on 127.0.0.1.

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use heimdall_host::auth;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{spawn_app_with_vars, TestApp, AUTH_SECRET};

const USER: u64 = 510_000_000_000_000_001;
const GUILD: &str = "210000000000000001";

/// Lets this process hold a few thousand sockets (both ends live here).
fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit on this process's own limit, with a valid struct.
    unsafe {
        let mut l = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 && l.rlim_cur < 16_384 {
            l.rlim_cur = l.rlim_max.min(16_384);
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
    }
}

async fn app(extra: &[(&str, &str)]) -> TestApp {
    // Fast heartbeats and timeouts; `extra` comes after them and so wins.
    let vars: Vec<(&str, &str)> = [
        ("HEIMDALL_WS_HEARTBEAT_MS", "300"),
        ("HEIMDALL_WS_AUTH_TIMEOUT_MS", "400"),
        ("HEIMDALL_WS_HANDSHAKE_TIMEOUT_MS", "400"),
    ]
    .into_iter()
    .chain(extra.iter().copied())
    .collect();
    let app = spawn_app_with_vars(&vars).await;
    app.db
        .collection::<mongodb::bson::Document>("dashboard_permissions")
        .insert_one(mongodb::bson::doc! {
            "guildId": GUILD, "targetType": "user", "targetId": USER.to_string(), "permissions": ["view"],
        })
        .await
        .unwrap();
    app
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

async fn authed(app: &TestApp, token: &str) -> Ws {
    let (mut ws, _) = tokio_tungstenite::connect_async(app.ws_address.as_str())
        .await
        .expect("the gateway accepts a client");
    ws.send(Message::Text(
        json!({ "type": "auth", "token": token }).to_string().into(),
    ))
    .await
    .unwrap();
    loop {
        let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("authenticated within 5 s")
            .expect("open")
            .expect("a frame");
        if let Message::Text(t) = m {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["event"] == "authenticated" {
                return ws;
            }
        }
    }
}

/// Waits until `user` has no open connection in the bot; returns how long that took.
async fn closed_within(app: &TestApp, user: u64, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if app.data.ws.connections_of(user) == 0 {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// A client that stops reading but keeps sending: with its buffers full of events it
/// cannot take, it still answers nothing the server can count as alive.
async fn stuck_reader(app: &TestApp, token: &str) -> (Instant, tokio::task::JoinHandle<()>) {
    let mut ws = authed(app, token).await;
    ws.send(Message::Text(
        json!({ "type": "subscribe", "guildId": GUILD })
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let subscribed = loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["event"] == "subscribed" || v["event"] == "error" {
                    break v;
                }
            }
            Ok(Some(Ok(_))) => {}
            other => panic!("no answer to subscribe: {other:?}"),
        }
    };
    assert_eq!(subscribed["event"], "subscribed", "{subscribed}");
    let stopped_reading = Instant::now();
    // Fill the socket buffers both ways (loopback's may take 32 MB): 64 MB of events the
    // client never reads.
    let blob = "x".repeat(16 * 1024);
    for i in 0..4000 {
        app.data
            .ws
            .broadcast_to_guild(GUILD, "bulk", json!({ "i": i, "blob": blob }));
    }
    // Keep sending application pings (never reading) for at most 10 s.
    let sender = tokio::spawn(async move {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            let ping = Message::Text(json!({ "type": "ping" }).to_string().into());
            if tokio::time::timeout(Duration::from_millis(200), ws.send(ping))
                .await
                .is_ok_and(|r| r.is_err())
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    (stopped_reading, sender)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_reader_is_closed_within_a_second_of_its_token_expiring() {
    // A heartbeat far away and a queue that never fills: only the expiry can close it.
    let app = app(&[
        ("HEIMDALL_WS_HEARTBEAT_MS", "60000"),
        ("HEIMDALL_WS_QUEUE", "100000"),
    ])
    .await;
    let token = auth::mint(AUTH_SECRET, USER, Duration::from_secs(2));
    let expires = Instant::now() + Duration::from_secs(2);
    let (_, client) = stuck_reader(&app, &token).await;
    assert_eq!(app.data.ws.connections_of(USER), 1);
    tokio::time::sleep_until(expires.into()).await;
    let took = closed_within(&app, USER, Duration::from_secs(3)).await;
    assert!(
        took.is_some_and(|t| t <= Duration::from_millis(1500)),
        "closed after the expiry: {took:?}"
    );
    client.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_reader_is_closed_within_a_second_of_a_sign_out() {
    let app = app(&[
        ("HEIMDALL_WS_HEARTBEAT_MS", "60000"),
        ("HEIMDALL_WS_QUEUE", "100000"),
    ])
    .await;
    let token = auth::mint(AUTH_SECRET, USER, Duration::from_secs(3600));
    let (_, client) = stuck_reader(&app, &token).await;
    let r = app
        .http
        .post(format!("{}/api/auth/logout", app.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let took = closed_within(&app, USER, Duration::from_secs(3)).await;
    assert!(
        took.is_some_and(|t| t <= Duration::from_secs(1)),
        "closed after the sign-out: {took:?}"
    );
    client.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_closed_within_two_heartbeats_whatever_it_sends() {
    let app = app(&[("HEIMDALL_WS_QUEUE", "100000")]).await;
    let token = auth::mint(AUTH_SECRET, USER, Duration::from_secs(3600));
    let (stopped_reading, client) = stuck_reader(&app, &token).await;
    // Two heartbeats are 600 ms from when it stopped reading; the test's own load (64 MB
    // through loopback on the same two cores) gets 400 ms.
    let closed = closed_within(&app, USER, Duration::from_secs(3)).await;
    let took = closed.map(|_| stopped_reading.elapsed());
    assert!(
        took.is_some_and(|t| t <= Duration::from_millis(1000)),
        "closed after: {took:?}"
    );
    client.abort();
}

#[tokio::test]
async fn a_half_open_handshake_is_closed_after_the_handshake_timeout() {
    let app = app(&[]).await;
    let addr = app.ws_address.trim_start_matches("ws://").to_string();
    let mut tcp = TcpStream::connect(&addr).await.unwrap();
    // A slow loris: half a request line, then nothing.
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(3), tcp.read(&mut buf))
        .await
        .expect("the server closes a handshake that never ends");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    assert!(start.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn two_thousand_idle_connections_from_one_address_lock_nobody_out() {
    raise_fd_limit();
    let app = app(&[("WS_MAX_PENDING_PER_ADDRESS", "50")]).await;
    let addr = app.ws_address.trim_start_matches("ws://").to_string();
    let mut idle = Vec::new();
    let start = Instant::now();
    while idle.len() < 2000 && start.elapsed() < Duration::from_secs(20) {
        if let Ok(Ok(s)) =
            tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(&addr)).await
        {
            idle.push(s);
        }
    }
    assert_eq!(idle.len(), 2000, "the kernel accepted every connection");
    // A real client right after the flood gets in and is served.
    let token = auth::mint(AUTH_SECRET, USER, Duration::from_secs(3600));
    let mut ws = authed(&app, &token).await;
    ws.send(Message::Text(json!({ "type": "ping" }).to_string().into()))
        .await
        .unwrap();
    // And the flood holds at most 50 pending connections (plus those being closed).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut open = 0;
    for s in &mut idle {
        let mut b = [0u8; 1];
        // Still waiting after a millisecond: open (a closed one answers EOF or a reset).
        if tokio::time::timeout(Duration::from_millis(1), s.read(&mut b))
            .await
            .is_err()
        {
            open += 1;
        }
    }
    assert!(open <= 60, "{open} of the idle connections are still open");
}

/// Reads from `tcp` until the server closes it (EOF or reset), for at most `limit`;
/// returns what was read and when it closed.
async fn read_until_closed(
    tcp: &mut (impl tokio::io::AsyncRead + Unpin),
    limit: Duration,
) -> (String, Option<Duration>) {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        match tokio::time::timeout(limit - start.elapsed(), tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                return (String::from_utf8_lossy(&got).into(), Some(start.elapsed()))
            }
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    (String::from_utf8_lossy(&got).into(), None)
}

fn api_addr(app: &TestApp) -> String {
    app.address.trim_start_matches("http://").to_string()
}

#[tokio::test]
async fn the_api_closes_a_slow_loris_and_an_idle_keep_alive_connection() {
    let app = app(&[("HTTP_HEADER_TIMEOUT", "1s")]).await;
    // Headers that never end, a byte every 150 ms.
    let loris = TcpStream::connect(api_addr(&app)).await.unwrap();
    let (mut rd, mut wr) = loris.into_split();
    wr.write_all(b"GET /api/health HTTP/1.1\r\n").await.unwrap();
    let drip = tokio::spawn(async move {
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            if wr.write_all(b"X").await.is_err() {
                break;
            }
        }
    });
    let (answer, at) = read_until_closed(&mut rd, Duration::from_secs(4)).await;
    drip.abort();
    let at = at.expect("the slow loris is closed");
    assert!(
        at >= Duration::from_millis(900) && at <= Duration::from_millis(2500),
        "{at:?}"
    );
    assert!(!answer.contains("200 OK"), "{answer}");

    // A kept-alive connection idle after its request.
    let mut idle = TcpStream::connect(api_addr(&app)).await.unwrap();
    idle.write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (answer, at) = read_until_closed(&mut idle, Duration::from_secs(4)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let at = at.expect("the idle connection is closed");
    assert!(
        at >= Duration::from_millis(900) && at <= Duration::from_millis(2500),
        "{at:?}"
    );
}

#[tokio::test]
async fn a_body_that_never_arrives_gets_408() {
    let app = app(&[("HTTP_BODY_TIMEOUT", "1s")]).await;
    let mut tcp = TcpStream::connect(api_addr(&app)).await.unwrap();
    tcp.write_all(
        b"POST /api/auth/logout HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer x\r\nContent-Length: 100\r\n\r\n{\"a\"",
    )
    .await
    .unwrap();
    let (answer, _) = read_until_closed(&mut tcp, Duration::from_secs(4)).await;
    // Either the body timeout (408) or the token check answers; never a hang.
    assert!(
        answer.starts_with("HTTP/1.1 408") || answer.starts_with("HTTP/1.1 401"),
        "{answer:?}"
    );
}

#[tokio::test]
async fn a_flood_of_api_connections_from_one_address_locks_nobody_out() {
    raise_fd_limit();
    let app = app(&[
        ("HTTP_MAX_PENDING_PER_ADDRESS", "20"),
        ("HTTP_MAX_CONNECTIONS_PER_ADDRESS", "1500"),
    ])
    .await;
    let mut idle = Vec::new();
    let start = Instant::now();
    while idle.len() < 2000 && start.elapsed() < Duration::from_secs(20) {
        if let Ok(Ok(s)) =
            tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(api_addr(&app))).await
        {
            idle.push(s);
        }
    }
    assert_eq!(idle.len(), 2000);
    // A real request right after the flood is answered.
    let (status, body) = app.get_json("/api/health").await;
    assert_eq!(status, 200, "{body}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut open = 0;
    let mut refused = 0;
    for s in &mut idle {
        let mut b = [0u8; 512];
        match tokio::time::timeout(Duration::from_millis(1), s.read(&mut b)).await {
            Err(_) => open += 1,
            Ok(Ok(n)) if String::from_utf8_lossy(&b[..n]).contains("429") => refused += 1,
            Ok(_) => {}
        }
    }
    assert!(open <= 30, "{open} idle API connections still open");
    assert!(
        refused == 0,
        "evictions, not refusals, below the per-address limit"
    );
}

#[tokio::test]
async fn over_the_per_address_limit_the_api_answers_429() {
    let app = app(&[("HTTP_MAX_CONNECTIONS_PER_ADDRESS", "3")]).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(api_addr(&app)).await.unwrap();
        // A complete request: established, not evictable.
        s.write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut b = [0u8; 512];
        let _ = s.read(&mut b).await.unwrap();
        held.push(s);
    }
    let mut extra = TcpStream::connect(api_addr(&app)).await.unwrap();
    let (answer, _) = read_until_closed(&mut extra, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer:?}");
    assert!(answer.contains("Retry-After") && answer.contains("too_many_connections"));
}
