//! The WebSocket gateway with real clients.

use std::collections::HashMap;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use heimdall_host::auth;
use mongodb::bson::{doc, Document};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::helpers::{spawn_app_with, spawn_app_with_vars, TestApp, AUTH_SECRET, OWNER_ID};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const GUILD_A: &str = "200000000000000001";
const GUILD_B: &str = "200000000000000002";
const USER_A: u64 = 500_000_000_000_000_001;
const USER_B: u64 = 500_000_000_000_000_002;

fn token(user: u64) -> String {
    auth::mint(AUTH_SECRET, user, Duration::from_secs(3600))
}

async fn app(extra: &[(&str, &str)]) -> TestApp {
    // Fast heartbeats and timeouts; `extra` comes after them and so wins.
    let vars: Vec<(&str, &str)> = [
        ("HEIMDALL_WS_HEARTBEAT_MS", "300"),
        ("HEIMDALL_WS_AUTH_TIMEOUT_MS", "400"),
    ]
    .into_iter()
    .chain(extra.iter().copied())
    .collect();
    let app = spawn_app_with_vars(&vars).await;
    let perms = app.db.collection::<Document>("dashboard_permissions");
    // Upserts: processes of one deployment share the database.
    for (guild, user) in [(GUILD_A, USER_A), (GUILD_B, USER_B)] {
        perms
            .update_one(
                doc! { "guildId": guild, "targetType": "user", "targetId": user.to_string() },
                doc! { "$set": { "permissions": ["view"] } },
            )
            .upsert(true)
            .await
            .unwrap();
    }
    app
}

async fn connect(
    app: &TestApp,
    origin: Option<&str>,
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let mut req = app.ws_address.as_str().into_client_request().unwrap();
    if let Some(o) = origin {
        req.headers_mut().insert("Origin", o.parse().unwrap());
    }
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
}

/// The next JSON event (pings are answered by the library while reading).
async fn next(ws: &mut Ws) -> Value {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("no message within 5 s")
        {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).unwrap(),
            Some(Ok(Message::Close(f))) => panic!("closed: {f:?}"),
            Some(Ok(_)) => continue,
            other => panic!("stream ended: {other:?}"),
        }
    }
}

/// The next event with this name, skipping others.
async fn next_event(ws: &mut Ws, name: &str) -> Value {
    loop {
        let v = next(ws).await;
        if v["event"] == name {
            return v;
        }
    }
}

/// Reads until the server closes; returns the close code.
async fn close_code(ws: &mut Ws) -> Option<u16> {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("not closed within 5 s")
        {
            Some(Ok(Message::Close(f))) => return f.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            _ => return None,
        }
    }
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

async fn authed(app: &TestApp, user: u64) -> Ws {
    authed_with_guilds(app, user).await.0
}

/// An authenticated connection of `user`, and the guilds `authenticated` listed.
async fn authed_with_guilds(app: &TestApp, user: u64) -> (Ws, Vec<String>) {
    let mut ws = connect(app, None).await.unwrap();
    let hello = next(&mut ws).await;
    assert_eq!(hello["event"], "hello");
    send(&mut ws, json!({ "type": "auth", "token": token(user) })).await;
    let a = next_event(&mut ws, "authenticated").await;
    assert_eq!(a["data"]["userId"], user.to_string());
    let guilds = a["data"]["guilds"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g.as_str().map(String::from))
        .collect();
    (ws, guilds)
}

async fn subscribe(ws: &mut Ws, guild: &str, last: Option<u64>) -> Value {
    let mut m = json!({ "type": "subscribe", "guildId": guild });
    if let Some(l) = last {
        m["lastSeq"] = l.into();
    }
    send(ws, m).await;
    loop {
        let v = next(ws).await;
        if v["event"] == "subscribed" || v["event"] == "error" {
            return v;
        }
    }
}

/// Nothing arrives (other than control frames) within `ms`.
async fn silent(ws: &mut Ws, ms: u64) -> bool {
    loop {
        match tokio::time::timeout(Duration::from_millis(ms), ws.next()).await {
            Err(_) => return true,
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["event"] != "pong" {
                    return false;
                }
            }
            Ok(Some(Ok(_))) => continue,
            Ok(_) => return true,
        }
    }
}

#[tokio::test]
async fn hello_then_auth_with_bad_missing_or_expired_tokens_is_refused() {
    let app = app(&[]).await;
    // Bad signature.
    let mut ws = connect(&app, None).await.unwrap();
    let hello = next(&mut ws).await;
    assert_eq!(hello["data"]["maxFrameBytes"], 4096);
    assert_eq!(hello["data"]["heartbeatInterval"], 300);
    let forged = auth::mint(
        "another-secret-another-secret-another",
        USER_A,
        Duration::from_secs(60),
    );
    send(&mut ws, json!({ "type": "auth", "token": forged })).await;
    assert_eq!(close_code(&mut ws).await, Some(4003));
    // First frame not auth.
    let mut ws = connect(&app, None).await.unwrap();
    next(&mut ws).await;
    send(&mut ws, json!({ "type": "subscribe", "guildId": GUILD_A })).await;
    assert_eq!(close_code(&mut ws).await, Some(4001));
    // Nothing at all: closed after the auth timeout.
    let mut ws = connect(&app, None).await.unwrap();
    next(&mut ws).await;
    assert_eq!(close_code(&mut ws).await, Some(4001));
    // Expired before use.
    let expired = auth::mint(AUTH_SECRET, USER_A, Duration::from_secs(1));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let mut ws = connect(&app, None).await.unwrap();
    next(&mut ws).await;
    send(&mut ws, json!({ "type": "auth", "token": expired })).await;
    assert_eq!(close_code(&mut ws).await, Some(4004));
}

#[tokio::test]
async fn a_token_that_expires_closes_the_live_socket() {
    let app = app(&[]).await;
    let mut ws = connect(&app, None).await.unwrap();
    next(&mut ws).await;
    send(
        &mut ws,
        json!({ "type": "auth", "token": auth::mint(AUTH_SECRET, USER_A, Duration::from_secs(2)) }),
    )
    .await;
    next_event(&mut ws, "authenticated").await;
    assert_eq!(close_code(&mut ws).await, Some(4004));
}

#[tokio::test]
async fn only_dashboard_origins_may_connect() {
    let app = app(&[("DASHBOARD_ORIGINS", "https://dash.example.com")]).await;
    match connect(&app, Some("https://evil.example.com")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 403),
        other => panic!("a foreign origin was let in: {:?}", other.map(|_| ())),
    }
    assert!(connect(&app, Some("https://dash.example.com"))
        .await
        .is_ok());
    // The bot's own dashboard is always allowed.
    let own = format!(
        "http://127.0.0.1:{}",
        app.address.rsplit(':').next().unwrap()
    );
    assert!(connect(&app, Some(&own)).await.is_ok());
}

#[tokio::test]
async fn guild_rooms_are_isolated_and_need_dashboard_access() {
    let app = app(&[]).await;
    let mut a = authed(&app, USER_A).await;
    let mut b = authed(&app, USER_B).await;
    assert_eq!(
        subscribe(&mut a, GUILD_A, None).await["event"],
        "subscribed"
    );
    let denied = subscribe(&mut a, GUILD_B, None).await;
    assert_eq!(denied["data"]["code"], "forbidden");
    assert_eq!(
        subscribe(&mut b, GUILD_B, None).await["event"],
        "subscribed"
    );

    app.data
        .ws
        .broadcast_to_guild(GUILD_B, "tags:tag_created", json!({ "name": "secret" }));
    app.data
        .ws
        .broadcast_to_guild(GUILD_A, "tags:tag_created", json!({ "name": "hello" }));
    let got = next_event(&mut a, "tags:tag_created").await;
    assert_eq!(got["guildId"], GUILD_A);
    assert_eq!(got["data"]["name"], "hello");
    assert_eq!(got["seq"], 1);
    assert!(got["timestamp"].as_i64().unwrap() > 0);
    assert!(
        silent(&mut a, 300).await,
        "A received another guild's event"
    );
    let got_b = next_event(&mut b, "tags:tag_created").await;
    assert_eq!(got_b["guildId"], GUILD_B);
}

#[tokio::test]
async fn owner_events_reach_owners_only() {
    let app = app(&[]).await;
    let mut owner = authed(&app, OWNER_ID.parse().unwrap()).await;
    let mut member = authed(&app, USER_A).await;
    subscribe(&mut member, GUILD_A, None).await;
    app.data
        .ws
        .broadcast_to_owners("migration:step_start", json!({ "step": 1 }));
    app.data.ws.broadcast_to_guild(GUILD_A, "marker", json!({}));
    let e = next_event(&mut owner, "migration:step_start").await;
    assert_eq!(e["data"]["step"], 1);
    assert!(e.get("guildId").is_none());
    // The member's next event is the guild marker: the owner event never came.
    assert_eq!(next(&mut member).await["event"], "marker");
}

#[tokio::test]
async fn subscribe_floods_and_room_cap_are_refused() {
    // A long heartbeat: this test pauses without reading (so without answering pings).
    let app = app(&[("HEIMDALL_WS_HEARTBEAT_MS", "60000")]).await;
    let mut ws = authed(&app, OWNER_ID.parse().unwrap()).await;
    for i in 0..8 {
        send(
            &mut ws,
            json!({ "type": "subscribe", "guildId": format!("3000000000000000{:02}", i) }),
        )
        .await;
    }
    let mut ok = 0;
    let mut limited = 0;
    for _ in 0..8 {
        let v = next(&mut ws).await;
        match (v["event"].as_str().unwrap(), v["data"]["code"].as_str()) {
            ("subscribed", _) => ok += 1,
            ("error", Some("rate_limited")) => limited += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((ok, limited), (5, 3));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for i in 5..10 {
        assert_eq!(
            subscribe(&mut ws, &format!("3000000000000000{:02}", i), None).await["event"],
            "subscribed"
        );
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let over = subscribe(&mut ws, "300000000000000099", None).await;
    assert_eq!(over["data"]["code"], "room_limit");
}

#[tokio::test]
async fn malformed_and_oversized_frames() {
    let app = app(&[]).await;
    let mut ws = authed(&app, USER_A).await;
    ws.send(Message::Text("{not json".into())).await.unwrap();
    assert_eq!(next(&mut ws).await["data"]["code"], "invalid_json");
    send(&mut ws, json!({ "type": "dance" })).await;
    assert_eq!(next(&mut ws).await["data"]["code"], "invalid_message");
    send(&mut ws, json!({ "type": "ping" })).await;
    assert_eq!(
        next(&mut ws).await["event"],
        "pong",
        "still alive after bad frames"
    );
    ws.send(Message::Text("x".repeat(5000).into()))
        .await
        .unwrap();
    assert_eq!(close_code(&mut ws).await, Some(1009));
}

#[tokio::test]
async fn a_silent_client_is_dropped() {
    let app = app(&[]).await;
    let mut ws = authed(&app, USER_A).await;
    // Stop reading (so no pong goes out) for longer than two heartbeats.
    // (It reads again before the server's half second of waiting for its answer is over.)
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(close_code(&mut ws).await, Some(4000));
}

#[tokio::test]
async fn a_slow_client_is_dropped_while_a_fast_one_gets_every_event() {
    let app = app(&[
        ("HEIMDALL_WS_QUEUE", "64"),
        ("HEIMDALL_WS_HEARTBEAT_MS", "60000"),
    ])
    .await;
    let mut fast = authed(&app, USER_A).await;
    let mut slow = authed(&app, USER_A).await;
    subscribe(&mut fast, GUILD_A, None).await;
    subscribe(&mut slow, GUILD_A, None).await;
    let n = 2000u64;
    let blob = "x".repeat(16 * 1024);
    let ws = app.data.ws.clone();
    let publisher = tokio::spawn(async move {
        for i in 0..n {
            ws.broadcast_to_guild(GUILD_A, "bulk", json!({ "i": i, "blob": blob }));
            tokio::task::yield_now().await;
        }
    });
    let mut seqs = Vec::new();
    while seqs.len() < n as usize {
        let v = next(&mut fast).await;
        if v["event"] == "bulk" {
            seqs.push(v["seq"].as_u64().unwrap());
        }
    }
    publisher.await.unwrap();
    assert_eq!(
        seqs,
        (1..=n).collect::<Vec<_>>(),
        "the fast client missed or reordered events"
    );
    // The slow one was cut off before the end, and can resume.
    let mut last = 0;
    let mut code = None;
    loop {
        match tokio::time::timeout(Duration::from_secs(5), slow.next())
            .await
            .unwrap()
        {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if let Some(s) = v["seq"].as_u64() {
                    last = s;
                }
            }
            Some(Ok(Message::Close(f))) => {
                code = f.map(|f| u16::from(f.code));
                break;
            }
            Some(Ok(_)) => {}
            _ => break,
        }
    }
    assert!(last < n, "the slow client got everything ({last})");
    if let Some(c) = code {
        assert_eq!(c, 4009);
    }
    let mut again = authed(&app, USER_A).await;
    let r = subscribe(&mut again, GUILD_A, Some(last)).await;
    assert_eq!(r["event"], "subscribed");
    let v = next(&mut again).await;
    assert!(
        v["event"] == "resume_gap" || v["seq"].as_u64() == Some(last + 1),
        "resume after a slow close: {v}"
    );
}

#[tokio::test]
async fn resume_replays_exactly_the_missed_events() {
    let app = app(&[]).await;
    let ws = app.data.ws.clone();
    let mut c = authed(&app, USER_A).await;
    subscribe(&mut c, GUILD_A, None).await;
    for i in 1..=3 {
        ws.broadcast_to_guild(GUILD_A, "e", json!({ "i": i }));
    }
    for i in 1..=3 {
        assert_eq!(next_event(&mut c, "e").await["seq"], i);
    }
    drop(c);
    for i in 4..=8 {
        ws.broadcast_to_guild(GUILD_A, "e", json!({ "i": i }));
    }
    let mut c = authed(&app, USER_A).await;
    let sub = subscribe(&mut c, GUILD_A, Some(3)).await;
    assert_eq!(sub["data"]["seq"], 8);
    for i in 4..=8 {
        let v = next(&mut c).await;
        assert_eq!(
            (v["seq"].as_u64(), v["data"]["i"].as_u64()),
            (Some(i), Some(i))
        );
    }
    ws.broadcast_to_guild(GUILD_A, "e", json!({ "i": 9 }));
    assert_eq!(
        next(&mut c).await["seq"],
        9,
        "live events follow the replay"
    );

    // Owner stream: resume through ownerSeq in the auth message.
    let owner: u64 = OWNER_ID.parse().unwrap();
    for i in 1..=4 {
        ws.broadcast_to_owners("migration:step_progress", json!({ "i": i }));
    }
    let mut o = connect(&app, None).await.unwrap();
    next(&mut o).await;
    send(
        &mut o,
        json!({ "type": "auth", "token": token(owner), "ownerSeq": 2 }),
    )
    .await;
    next_event(&mut o, "authenticated").await;
    assert_eq!(next(&mut o).await["seq"], 3);
    assert_eq!(next(&mut o).await["seq"], 4);

    // Too far behind: told to refetch.
    for i in 0..1100 {
        ws.broadcast_to_guild(GUILD_B, "e", json!({ "i": i }));
    }
    let mut late = authed(&app, USER_B).await;
    subscribe(&mut late, GUILD_B, Some(5)).await;
    let gap = next(&mut late).await;
    assert_eq!(gap["event"], "resume_gap");
    assert_eq!(gap["data"]["latestSeq"], 1100);
    assert_eq!(gap["data"]["oldestSeq"], 101);
}

/// A restart loses the history: a client resuming with the old epoch, or with a seq past
/// the new head, is told to refetch instead of waiting in silence for events that never come.
#[tokio::test]
async fn a_resume_across_a_restart_gets_resume_gap_not_silence() {
    let before = app(&[]).await;
    let mut c = authed(&before, USER_A).await;
    let sub = subscribe(&mut c, GUILD_A, None).await;
    let old_epoch = sub["data"]["epoch"].as_str().unwrap().to_string();
    for i in 1..=5 {
        before
            .data
            .ws
            .broadcast_to_guild(GUILD_A, "e", json!({ "i": i }));
    }
    for i in 1..=5 {
        assert_eq!(next_event(&mut c, "e").await["seq"], i);
    }
    drop(c);
    drop(before);

    // "Restarted": a new bot process over the same kind of database, one event in.
    let after = app(&[]).await;
    after
        .data
        .ws
        .broadcast_to_guild(GUILD_A, "e", json!({ "i": 1 }));
    let mut c = authed(&after, USER_A).await;
    let mut m =
        json!({ "type": "subscribe", "guildId": GUILD_A, "lastSeq": 5, "epoch": old_epoch });
    send(&mut c, m.clone()).await;
    let sub = next_event(&mut c, "subscribed").await;
    let new_epoch = sub["data"]["epoch"].as_str().unwrap().to_string();
    assert_ne!(
        new_epoch, old_epoch,
        "a restart without Redis starts a new epoch"
    );
    let gap = next(&mut c).await;
    assert_eq!(gap["event"], "resume_gap", "{gap}");
    assert_eq!(gap["data"]["latestSeq"], 1);
    assert_eq!(gap["data"]["epoch"], new_epoch.as_str());

    // A client that kept no epoch, but whose seq is past the head, is told too.
    let mut c = authed(&after, USER_A).await;
    m.as_object_mut().unwrap().remove("epoch");
    send(&mut c, m).await;
    next_event(&mut c, "subscribed").await;
    assert_eq!(next(&mut c).await["event"], "resume_gap");

    // The same epoch and a seq it knows: replay, no gap.
    let mut c = authed(&after, USER_A).await;
    send(
        &mut c,
        json!({ "type": "subscribe", "guildId": GUILD_A, "lastSeq": 0, "epoch": new_epoch }),
    )
    .await;
    next_event(&mut c, "subscribed").await;
    let v = next(&mut c).await;
    assert_eq!(
        (v["event"].as_str(), v["seq"].as_u64()),
        (Some("e"), Some(1))
    );
}

/// A redis-server of this test on a free port.
struct Redis(std::process::Child, u16);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_redis() -> Redis {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server is installed (scripts/install-deps.sh installs it)");
    let redis = Redis(child, port);
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return redis;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("redis-server did not start");
}

#[tokio::test]
async fn two_processes_share_events_through_redis_in_order() {
    let redis = start_redis();
    let url = format!("redis://127.0.0.1:{}", redis.1);
    let db = crate::helpers::unique_db_name("redis");
    let one = app(&[("REDIS_URL", &url), ("MONGODB_DB", &db)]).await;
    let two = spawn_app_with(|env| {
        env.insert("REDIS_URL".into(), url.clone());
        env.insert("MONGODB_DB".into(), db.clone());
    })
    .await;
    let mut c = authed(&one, USER_A).await;
    subscribe(&mut c, GUILD_A, None).await;
    let mut o = authed(&one, OWNER_ID.parse().unwrap()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Both processes publish to one stream, interleaved.
    for i in 0..100 {
        one.data
            .ws
            .broadcast_to_guild(GUILD_A, "e", json!({ "from": 1, "i": i }));
        two.data
            .ws
            .broadcast_to_guild(GUILD_A, "e", json!({ "from": 2, "i": i }));
    }
    two.data
        .ws
        .broadcast_to_owners("migration:complete", json!({ "ok": true }));
    let mut seqs = Vec::new();
    let mut last_i = HashMap::new();
    while seqs.len() < 200 {
        let v = next_event(&mut c, "e").await;
        seqs.push(v["seq"].as_u64().unwrap());
        let from = v["data"]["from"].as_u64().unwrap();
        let i = v["data"]["i"].as_i64().unwrap();
        let prev = last_i.insert(from, i).unwrap_or(-1);
        assert_eq!(i, prev + 1, "events of process {from} out of order");
    }
    assert_eq!(
        seqs,
        (1..=200).collect::<Vec<_>>(),
        "seq numbers are one sequence across processes"
    );
    let e = next_event(&mut o, "migration:complete").await;
    assert_eq!(e["data"]["ok"], true);
}

/// A process of a Redis-backed deployment: `app()`'s settings, the shared Redis and database.
async fn redis_app(url: &str, db: &str) -> TestApp {
    app(&[("REDIS_URL", url), ("MONGODB_DB", db)]).await
}

/// The `seq` and `i` of the next `n` events named `e`.
async fn events(ws: &mut Ws, n: usize) -> Vec<(u64, i64)> {
    let mut out = Vec::new();
    while out.len() < n {
        let v = next_event(ws, "e").await;
        out.push((v["seq"].as_u64().unwrap(), v["data"]["i"].as_i64().unwrap()));
    }
    out
}

/// Behind a load balancer a reconnecting client may reach any process, even one started
/// after it left: the history is in Redis, so it resumes without a gap or a duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_resumes_on_another_process_even_one_started_later() {
    let redis = start_redis();
    let url = format!("redis://127.0.0.1:{}", redis.1);
    let db = crate::helpers::unique_db_name("redis_resume");
    let one = redis_app(&url, &db).await;
    let two = redis_app(&url, &db).await;
    let mut c = authed(&one, USER_A).await;
    let sub = subscribe(&mut c, GUILD_A, None).await;
    let epoch = sub["data"]["epoch"].as_str().unwrap().to_string();
    for i in 0..10 {
        two.data
            .ws
            .broadcast_to_guild(GUILD_A, "e", json!({ "i": i }));
    }
    let seen = events(&mut c, 10).await;
    let last = seen.last().unwrap().0;
    drop(c);

    // Gone for a while: events keep coming from both processes.
    for i in 10..40 {
        let p = if i % 2 == 0 { &one } else { &two };
        p.data
            .ws
            .broadcast_to_guild(GUILD_A, "e", json!({ "i": i }));
    }
    // A third process joins, knowing nothing of the room; the client lands there.
    let three = redis_app(&url, &db).await;
    let mut c = authed(&three, USER_A).await;
    send(
        &mut c,
        json!({ "type": "subscribe", "guildId": GUILD_A, "lastSeq": last, "epoch": epoch }),
    )
    .await;
    let sub = next_event(&mut c, "subscribed").await;
    assert_eq!(
        sub["data"]["epoch"],
        epoch.as_str(),
        "one epoch for all processes"
    );
    assert_eq!(sub["data"]["seq"], 40, "the room's head, from Redis");
    let replayed = events(&mut c, 30).await;
    let seqs: Vec<u64> = replayed.iter().map(|e| e.0).collect();
    assert_eq!(
        seqs,
        (11..=40).collect::<Vec<_>>(),
        "exactly the missed seqs, in order"
    );
    let mut is: Vec<i64> = replayed.iter().map(|e| e.1).collect();
    for parity in [0, 1] {
        let of: Vec<i64> = is.iter().copied().filter(|i| i % 2 == parity).collect();
        assert!(of.is_sorted(), "each process's events in its order: {is:?}");
    }
    is.sort();
    assert_eq!(is, (10..40).collect::<Vec<_>>(), "each missed event once");
    // Live ones follow, from any process, and nothing comes twice.
    one.data
        .ws
        .broadcast_to_guild(GUILD_A, "e", json!({ "i": 40 }));
    assert_eq!(events(&mut c, 1).await, vec![(41, 40)]);
    assert!(silent(&mut c, 300).await, "no duplicate arrives");

    // Back on a process that was up all along: the same.
    drop(c);
    for i in 41..45 {
        three
            .data
            .ws
            .broadcast_to_guild(GUILD_A, "e", json!({ "i": i }));
    }
    let mut c = authed(&two, USER_A).await;
    send(
        &mut c,
        json!({ "type": "subscribe", "guildId": GUILD_A, "lastSeq": 41, "epoch": epoch }),
    )
    .await;
    next_event(&mut c, "subscribed").await;
    assert_eq!(
        events(&mut c, 4).await,
        (42..=45).zip(41..45).collect::<Vec<_>>()
    );
}

/// A sign-out on one process closes the user's sockets on every process within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_out_closes_the_users_sockets_on_every_process() {
    let redis = start_redis();
    let url = format!("redis://127.0.0.1:{}", redis.1);
    let db = crate::helpers::unique_db_name("redis_signout");
    let one = redis_app(&url, &db).await;
    let two = redis_app(&url, &db).await;
    let three = redis_app(&url, &db).await;
    let mut on_two = authed(&two, USER_A).await;
    let mut on_three = authed(&three, USER_A).await;
    let mut other = authed(&three, USER_B).await;
    subscribe(&mut other, GUILD_B, None).await;
    let r = one
        .http
        .post(format!("{}/api/auth/logout", one.address))
        .bearer_auth(token(USER_A))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let started = std::time::Instant::now();
    let (a, b) = tokio::join!(close_code(&mut on_two), close_code(&mut on_three));
    assert!(
        started.elapsed() <= Duration::from_secs(1),
        "closed after {:?}",
        started.elapsed()
    );
    assert_eq!((a, b), (Some(4003), Some(4003)), "closed as signed out");
    // Another user's socket is untouched.
    three
        .data
        .ws
        .broadcast_to_guild(GUILD_B, "e", json!({ "i": 1 }));
    assert_eq!(events(&mut other, 1).await, vec![(1, 1)]);
}

const GUILD_C: &str = "200000000000000003";
const ROLE_MOD: &str = "700000000000000001";
const USER_C: u64 = 500_000_000_000_000_003;

/// A stand-in for Discord's API answering `GET /guilds/{g}/members/{u}`: USER_A has
/// ROLE_MOD in GUILD_C, USER_B another role, USER_C is not a member. Counts member lookups.
async fn members_stand_in() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use axum::extract::{Path, State};
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    async fn member(
        State(hits): State<std::sync::Arc<AtomicUsize>>,
        Path((guild, user)): Path<(String, u64)>,
    ) -> axum::response::Response {
        hits.fetch_add(1, Ordering::SeqCst);
        let roles = match (guild.as_str(), user) {
            (GUILD_C, USER_A) => vec![ROLE_MOD],
            (GUILD_C, USER_B) => vec!["700000000000000002"],
            _ => {
                return (
                    StatusCode::NOT_FOUND,
                    axum::Json(json!({"message": "Unknown Member", "code": 10007})),
                )
                    .into_response()
            }
        };
        axum::Json(json!({
            "user": { "id": user.to_string(), "username": "someone", "discriminator": "0000", "avatar": null },
            "roles": roles, "joined_at": "2026-01-01T00:00:00.000000+00:00",
            "deaf": false, "mute": false, "flags": 0, "pending": false
        }))
        .into_response()
    }
    let router = axum::Router::new()
        .route(
            "/api/v10/guilds/{guild}/members/{user}",
            axum::routing::get(member),
        )
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                axum::Json(json!({"message": "404", "code": 0})),
            )
        })
        .with_state(hits.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (format!("http://{addr}"), hits)
}

/// A bot whose Discord is [`members_stand_in`], and its count of member look-ups.
async fn app_asking_members() -> (TestApp, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let (proxy, hits) = members_stand_in().await;
    let app = app(&[
        ("DISCORD_TOKEN", "test-token"),
        ("DISCORD_API_PROXY", proxy.as_str()),
    ])
    .await;
    (app, hits)
}

#[tokio::test]
async fn role_entries_ask_discord_only_about_the_servers_the_user_is_in() {
    let (app, hits) = app_asking_members().await;
    // 40 servers grant a role; Discord listed two servers at USER_A's login, GUILD_C among
    // them.
    let grants: Vec<Document> = (0..40u64)
        .map(|i| {
            let guild = if i == 0 {
                GUILD_C.to_string()
            } else {
                (210_000_000_000_000_000 + i).to_string()
            };
            doc! { "guildId": guild, "targetType": "role", "targetId": ROLE_MOD, "permissions": ["view"] }
        })
        .collect();
    app.db
        .collection::<Document>("dashboard_permissions")
        .insert_many(grants)
        .await
        .unwrap();
    app.db
        .collection::<Document>("dashboard_logins")
        .insert_one(doc! {
            "userId": USER_A.to_string(),
            "guilds": [
                { "id": GUILD_C, "name": "C", "owner": false, "permissions": "0" },
                { "id": "299999999999999999", "name": "Z", "owner": false, "permissions": "0" },
            ],
        })
        .await
        .unwrap();

    let (mut a, guilds) = authed_with_guilds(&app, USER_A).await;
    assert!(guilds.iter().any(|g| g == GUILD_C), "{guilds:?}");
    assert_eq!(
        subscribe(&mut a, GUILD_C, None).await["event"],
        "subscribed"
    );
    // One question to Discord (GUILD_C's member, then cached), not one per granting server.
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_role_entry_grants_dashboard_access_to_members_with_that_role() {
    let (app, hits) = app_asking_members().await;
    app.db
        .collection::<Document>("dashboard_permissions")
        .insert_one(doc! { "guildId": GUILD_C, "targetType": "role", "targetId": ROLE_MOD, "permissions": ["view"] })
        .await
        .unwrap();

    // USER_A has the role: GUILD_C is among its guilds and its room opens.
    let (mut a, guilds) = authed_with_guilds(&app, USER_A).await;
    assert!(
        guilds.iter().any(|g| g == GUILD_C) && guilds.iter().any(|g| g == GUILD_A),
        "{guilds:?}"
    );
    assert_eq!(
        subscribe(&mut a, GUILD_C, None).await["event"],
        "subscribed"
    );
    // The member's roles were read once and cached for the subscribe.
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);

    // Another role, or not a member at all: no access.
    let mut b = authed(&app, USER_B).await;
    assert_eq!(
        subscribe(&mut b, GUILD_C, None).await["data"]["code"],
        "forbidden"
    );
    let mut c = authed(&app, USER_C).await;
    assert_eq!(
        subscribe(&mut c, GUILD_C, None).await["data"]["code"],
        "forbidden"
    );

    app.data
        .ws
        .broadcast_to_guild(GUILD_C, "tags:tag_created", json!({ "name": "mods" }));
    assert_eq!(
        next_event(&mut a, "tags:tag_created").await["guildId"],
        GUILD_C
    );
}

/// Sixty users come in at once, as after a restart: their look-ups are read together, and
/// each still gets exactly its own servers, and a signed-out user its refusal.
#[tokio::test]
async fn users_authenticating_at_once_each_get_their_own_guilds_and_sign_outs() {
    let app = app(&[("WS_MAX_PENDING_PER_ADDRESS", "1000")]).await;
    let users: Vec<u64> = (0..60).map(|k| 600_000_000_000_000_000 + k).collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let granted = |k: usize| format!("3000000000000000{k:02}");
    let managed = |k: usize| format!("4000000000000000{k:02}");
    for (k, user) in users.iter().enumerate() {
        app.db
            .collection::<Document>("dashboard_permissions")
            .insert_one(doc! { "guildId": granted(k), "targetType": "user", "targetId": user.to_string(), "permissions": ["view"] })
            .await
            .unwrap();
        if k % 2 == 0 {
            app.db
                .collection::<Document>("dashboard_logins")
                .insert_one(doc! { "userId": user.to_string(), "guilds": [
                    { "id": managed(k), "name": "managed", "owner": true, "permissions": "0" },
                    { "id": "499999999999999999", "name": "member only", "owner": false, "permissions": "0" },
                ] })
                .await
                .unwrap();
        }
        if k % 3 == 0 {
            app.db
                .collection::<Document>("session_revocations")
                .insert_one(doc! { "userId": user.to_string(), "before": now + 60 })
                .await
                .unwrap();
        }
    }
    let outcomes = futures::future::join_all(users.iter().map(|&user| {
        let app = &app;
        async move {
            let mut ws = connect(app, None).await.unwrap();
            next_event(&mut ws, "hello").await;
            send(&mut ws, json!({ "type": "auth", "token": token(user) })).await;
            loop {
                match tokio::time::timeout(Duration::from_secs(10), ws.next())
                    .await
                    .expect("no answer within 10 s")
                {
                    Some(Ok(Message::Text(t))) => {
                        let v: Value = serde_json::from_str(&t).unwrap();
                        if v["event"] == "authenticated" {
                            assert_eq!(v["data"]["userId"], user.to_string());
                            let mut g: Vec<String> = v["data"]["guilds"]
                                .as_array()
                                .unwrap()
                                .iter()
                                .map(|g| g.as_str().unwrap().to_string())
                                .collect();
                            g.sort();
                            return Ok(g);
                        }
                    }
                    Some(Ok(Message::Close(f))) => return Err(f.map(|f| u16::from(f.code))),
                    Some(Ok(_)) => continue,
                    other => panic!("stream ended: {other:?}"),
                }
            }
        }
    }))
    .await;
    for (k, outcome) in outcomes.into_iter().enumerate() {
        if k % 3 == 0 {
            assert_eq!(outcome, Err(Some(4003)), "user {k} signed out");
            continue;
        }
        let mut want = vec![granted(k)];
        if k % 2 == 0 {
            want.push(managed(k));
        }
        want.sort();
        assert_eq!(outcome, Ok(want), "user {k}");
    }
}
