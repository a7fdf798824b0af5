//! Several bot processes split Discord's shards (`SHARD_ID`, `SHARD_COUNT`): each identifies
//! with its own shards, and only the one running shard 0 registers the slash commands.
//!
//! Discord is a local stand-in here: its REST side answers `GET /gateway` with the address
//! of a local WebSocket gateway that speaks Discord's protocol (Hello, Identify, Ready,
//! heartbeats), and records the commands registered.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::Json;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::spawn_app_with;

/// The bot's application and user id.
const APP_ID: &str = "930000000000000077";

/// What the stand-in saw.
#[derive(Default)]
struct Seen {
    /// Each IDENTIFY's `shard` (`[id, count]`) and token.
    identified: Vec<(Value, String)>,
    /// Bodies of the global command registrations.
    registrations: Vec<Value>,
}

#[derive(Clone)]
struct Discord {
    seen: Arc<Mutex<Seen>>,
    ws_url: String,
}

/// Guild ids as Discord spreads them: shard = (id >> 22) % count.
fn guilds_of(shard: u64, count: u64) -> Vec<u64> {
    (1..=20u64)
        .map(|n| n << 22 | 7)
        .filter(|id| (id >> 22) % count == shard)
        .collect()
}

async fn start() -> (String, Arc<Mutex<Seen>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let gateway = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let d = Discord {
        seen: seen.clone(),
        ws_url: format!("ws://{}", gateway.local_addr().unwrap()),
    };
    let app = axum::Router::new()
        .route("/api/v10/gateway", axum::routing::get(gateway_url))
        .route("/api/v10/gateway/bot", axum::routing::get(gateway_bot))
        .route("/api/v10/users/@me", axum::routing::get(me))
        .route(
            "/api/v10/applications/{app}/commands",
            axum::routing::put(register),
        )
        .fallback(|| async {
            (
                axum::http::StatusCode::NOT_FOUND,
                Json(json!({ "message": "404: Not Found", "code": 0 })),
            )
        })
        .with_state(d.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    tokio::spawn(async move {
        while let Ok((tcp, _)) = gateway.accept().await {
            let d = d.clone();
            tokio::spawn(async move {
                if let Ok(socket) = tokio_tungstenite::accept_async(tcp).await {
                    session(d, socket).await;
                }
            });
        }
    });
    (format!("http://{addr}"), seen)
}

async fn gateway_url(State(d): State<Discord>) -> Json<Value> {
    Json(json!({ "url": d.ws_url }))
}

async fn gateway_bot(State(d): State<Discord>) -> Json<Value> {
    Json(json!({
        "url": d.ws_url, "shards": 2,
        "session_start_limit": { "total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1 },
    }))
}

fn bot_user() -> Value {
    json!({ "id": APP_ID, "username": "heimdall", "discriminator": "0", "global_name": null, "avatar": null, "bot": true })
}

async fn me() -> Json<Value> {
    Json(bot_user())
}

async fn register(State(d): State<Discord>, Json(body): Json<Value>) -> Json<Value> {
    d.seen.lock().unwrap().registrations.push(body);
    Json(json!([]))
}

/// One shard's session: Hello, then Ready for its Identify, heartbeats acknowledged.
async fn session(
    d: Discord,
    mut socket: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
) {
    let hello = json!({ "op": 10, "d": { "heartbeat_interval": 41250 }, "s": null, "t": null });
    if socket
        .send(Message::Text(hello.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    while let Some(Ok(msg)) = socket.next().await {
        let Message::Text(text) = msg else { continue };
        let Ok(v) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        match v["op"].as_u64() {
            Some(1) => {
                let ack = json!({ "op": 11, "d": null, "s": null, "t": null });
                let _ = socket.send(Message::Text(ack.to_string().into())).await;
            }
            Some(2) => {
                let shard = v["d"]["shard"].clone();
                let token = v["d"]["token"].as_str().unwrap_or_default().to_string();
                let (id, count) = (
                    shard[0].as_u64().unwrap_or(0),
                    shard[1].as_u64().unwrap_or(1),
                );
                let guilds = guilds_of(id, count);
                d.seen
                    .lock()
                    .unwrap()
                    .identified
                    .push((shard.clone(), token));
                let ready = json!({
                    "op": 0, "s": 1, "t": "READY",
                    "d": {
                        "v": 10,
                        "user": bot_user(),
                        "guilds": guilds.iter().map(|g| json!({ "id": g.to_string(), "unavailable": true })).collect::<Vec<_>>(),
                        "session_id": format!("session-{id}"),
                        "resume_gateway_url": d.ws_url,
                        "shard": [id, count],
                        "application": { "id": APP_ID, "flags": 0 },
                        "private_channels": [], "relationships": [], "presences": [], "_trace": ["stand-in"],
                    },
                });
                if socket
                    .send(Message::Text(ready.to_string().into()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            _ => {}
        }
    }
}

/// Waits (at most 20 s) until `check` holds.
async fn until(what: &str, check: impl Fn() -> bool) {
    let start = std::time::Instant::now();
    while !check() {
        assert!(start.elapsed() < Duration::from_secs(20), "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_split_the_shards_and_register_the_commands_once() {
    let (discord, seen) = start().await;
    let db = crate::helpers::unique_db_name("shards");
    let process = |shard: &'static str| {
        let (discord, db) = (discord.clone(), db.clone());
        spawn_app_with(move |env| {
            env.insert("DISCORD_TOKEN".into(), "stand-in-bot-token".into());
            env.insert("DISCORD_API_PROXY".into(), discord);
            env.insert("MONGODB_DB".into(), db);
            env.insert("SHARD_ID".into(), shard.into());
            env.insert("SHARD_COUNT".into(), "2".into());
        })
    };
    let _one = process("0").await;
    let _two = process("1").await;
    until("both shards identified", || {
        seen.lock().unwrap().identified.len() >= 2
    })
    .await;
    until("the commands are registered", || {
        !seen.lock().unwrap().registrations.is_empty()
    })
    .await;
    // Both are ready by now; give the second a moment to register, wrongly, if it would.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let seen = seen.lock().unwrap();
    let mut shards: Vec<Value> = seen.identified.iter().map(|(s, _)| s.clone()).collect();
    shards.sort_by_key(|s| s[0].as_u64());
    assert_eq!(shards, vec![json!([0, 2]), json!([1, 2])], "one shard each");
    assert!(seen
        .identified
        .iter()
        .all(|(_, t)| t.ends_with("stand-in-bot-token")));
    assert_eq!(
        seen.registrations.len(),
        1,
        "only shard 0's process registers the commands"
    );
    let names: Vec<&str> = seen.registrations[0]
        .as_array()
        .expect("a list of commands")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert!(names.contains(&"migrate"), "{names:?}");
}
