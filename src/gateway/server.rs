//! Accepting and serving gateway connections.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::{ClientHandle, GatewayConfig, Replay, StreamKey, WebSocketManager};

/// Milliseconds since the epoch.
fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Who a client is, once its token checked out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    /// The Discord user id.
    pub user: u64,
    /// When the token was issued, seconds since the epoch.
    pub issued_at: u64,
    /// When it expires, seconds since the epoch.
    pub expires_at: u64,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// Its time is over (close 4004: get a new token, then resume).
    Expired,
    /// Anything else (close 4003), with the reason shown to the client.
    Invalid(String),
}

/// The gateway's seam to whoever runs it: who a token belongs to, whether a user is an
/// owner, and what a user may see. The gateway knows nothing else of its host.
#[async_trait::async_trait]
pub trait Gatekeeper: Send + Sync {
    /// The session behind `token`.
    fn verify(&self, token: &str) -> Result<Session, Rejection>;
    /// Whether `user` receives the owner stream.
    fn is_owner(&self, user: u64) -> bool;
    /// Whether a session of `user` issued at `issued_at` is still good (not signed out).
    async fn session_valid(&self, _user: u64, _issued_at: u64) -> anyhow::Result<bool> {
        Ok(true)
    }
    /// Whether `user` may see `guild` (owners are not asked).
    async fn may_view(&self, _guild: &str, _user: u64) -> anyhow::Result<bool> {
        Ok(false)
    }
    /// The guilds `user` may see (owners are not asked).
    async fn guilds(&self, _user: u64) -> anyhow::Result<Vec<String>> {
        Ok(Vec::new())
    }
}

/// Close codes (see `docs/websocket.md`).
pub mod close {
    /// The server is shutting down: reconnect.
    pub const GOING_AWAY: u16 = 1001;
    /// A frame above the size limit: do not resend it.
    pub const TOO_BIG: u16 = 1009;
    /// No heartbeat answer: reconnect.
    pub const HEARTBEAT_TIMEOUT: u16 = 4000;
    /// Not authenticated in time, or the first frame was not `auth`: reconnect and authenticate.
    pub const UNAUTHENTICATED: u16 = 4001;
    /// The token is invalid: get a new token before reconnecting.
    pub const INVALID_TOKEN: u16 = 4003;
    /// The token expired: get a new token, then reconnect and resume.
    pub const TOKEN_EXPIRED: u16 = 4004;
    /// The client could not keep up: reconnect and resume with the last seq.
    pub const SLOW_CONSUMER: u16 = 4009;
}

/// What a connection needs besides the hub.
#[derive(Clone)]
pub struct GatewayContext {
    /// Tokens, owners and access.
    pub gatekeeper: Arc<dyn Gatekeeper>,
    /// Allowed `Origin`s (`DASHBOARD_ORIGINS` plus the bot's own dashboard).
    pub origins: Vec<String>,
    /// Tunables.
    pub config: GatewayConfig,
}

/// Accepts connections until `shutdown`; every connection is a tracked task.
pub async fn serve(
    listener: TcpListener,
    hub: WebSocketManager,
    ctx: GatewayContext,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "gateway accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let (hub, ctx, stop) = (hub.clone(), ctx.clone(), shutdown.clone());
        tasks.spawn(
            async move {
                if let Err(e) = connection(tcp, hub, ctx, stop).await {
                    tracing::debug!(error = %e, "gateway connection ended with an error");
                }
            }
            .instrument(tracing::debug_span!("ws_client", %peer)),
        );
    }
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMessage {
    Auth {
        token: String,
        #[serde(default, rename = "ownerSeq")]
        owner_seq: Option<u64>,
    },
    Subscribe {
        #[serde(rename = "guildId")]
        guild_id: String,
        #[serde(default, rename = "lastSeq")]
        last_seq: Option<u64>,
    },
    Unsubscribe {
        #[serde(rename = "guildId")]
        guild_id: String,
    },
    Ping,
}

fn control(event: &str, guild: Option<&str>, data: Value) -> Message {
    let mut v = json!({ "event": event, "data": data, "timestamp": now_millis() });
    if let Some(g) = guild {
        v["guildId"] = Value::String(g.into());
    }
    Message::Text(Utf8Bytes::from(v.to_string()))
}

fn error_event(code: &str, message: &str) -> Message {
    control("error", None, json!({ "code": code, "message": message }))
}

fn close_frame(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: Utf8Bytes::from(reason.to_string()),
    }))
}

fn origin_allowed(origins: &[String], origin: Option<&str>) -> bool {
    match origin {
        None => true, // not a browser: the token is the gate
        Some(o) => {
            let o = o.trim_end_matches('/');
            origins.iter().any(|a| a == o)
        }
    }
}

async fn connection(
    tcp: TcpStream,
    hub: WebSocketManager,
    ctx: GatewayContext,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let cfg = ctx.config.clone();
    let origins = ctx.origins.clone();
    // The error type is tungstenite's handshake callback contract.
    #[allow(clippy::result_large_err)]
    let check = move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        let origin = req.headers().get("origin").and_then(|v| v.to_str().ok());
        if origin_allowed(&origins, origin) {
            Ok(resp)
        } else {
            let mut r = ErrorResponse::new(Some(format!(
                "origin {} is not allowed; add it to DASHBOARD_ORIGINS",
                origin.unwrap_or("")
            )));
            *r.status_mut() = StatusCode::FORBIDDEN;
            Err(r)
        }
    };
    // Small per-connection buffers: a 1 KiB read buffer that grows up to `max_frame`, and outbound
    // frames are written as they come (the defaults allocate 128 KiB per connection).
    let mut wsc = WebSocketConfig::default();
    wsc.max_frame_size = Some(cfg.max_frame);
    wsc.max_message_size = Some(cfg.max_frame);
    wsc.read_buffer_size = 1024;
    wsc.write_buffer_size = 0;
    wsc.max_write_buffer_size = 4 << 20;
    let ws = tokio_tungstenite::accept_hdr_async_with_config(tcp, check, Some(wsc)).await?;
    let (mut sink, mut stream) = ws.split();

    sink.send(control(
        "hello",
        None,
        json!({
            "protocol": 1,
            "heartbeatInterval": cfg.heartbeat.as_millis() as u64,
            "authTimeout": cfg.auth_timeout.as_millis() as u64,
            "maxFrameBytes": cfg.max_frame,
            "maxRooms": cfg.max_rooms,
            "subscribesPerSecond": cfg.subscribe_rate,
        }),
    ))
    .await?;

    // Authentication: the first frame, within the timeout.
    let first = tokio::time::timeout(cfg.auth_timeout, stream.next()).await;
    let (claims, owner_seq) = match first {
        Err(_) => {
            let _ = sink
                .send(close_frame(
                    close::UNAUTHENTICATED,
                    "authenticate within the auth timeout",
                ))
                .await;
            return Ok(());
        }
        Ok(None) => return Ok(()),
        Ok(Some(Err(e))) => return close_on_error(&mut sink, e).await,
        Ok(Some(Ok(Message::Text(t)))) => match serde_json::from_str::<ClientMessage>(&t) {
            Ok(ClientMessage::Auth { token, owner_seq }) => match ctx.gatekeeper.verify(&token) {
                Ok(c) => (c, owner_seq),
                Err(Rejection::Expired) => {
                    let _ = sink
                        .send(close_frame(
                            close::TOKEN_EXPIRED,
                            "the session token has expired",
                        ))
                        .await;
                    return Ok(());
                }
                Err(Rejection::Invalid(why)) => {
                    let _ = sink.send(close_frame(close::INVALID_TOKEN, &why)).await;
                    return Ok(());
                }
            },
            _ => {
                let _ = sink
                    .send(close_frame(
                        close::UNAUTHENTICATED,
                        "the first frame must be {\"type\":\"auth\",\"token\":...}",
                    ))
                    .await;
                return Ok(());
            }
        },
        Ok(Some(Ok(_))) => {
            let _ = sink
                .send(close_frame(
                    close::UNAUTHENTICATED,
                    "the first frame must be a text auth message",
                ))
                .await;
            return Ok(());
        }
    };
    let user = claims.user;
    // Registered before the session check: a sign-out either fails the check or, coming
    // after it, cancels `signed_out` and closes this connection.
    let client = hub.next_client_id();
    let signed_out = hub.track_session(user, client);
    let _session = SessionGuard {
        hub: hub.clone(),
        user,
        client,
    };
    let valid = ctx
        .gatekeeper
        .session_valid(user, claims.issued_at)
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = ?e, user, "checking the session failed; refused");
            false
        });
    if !valid {
        let _ = sink
            .send(close_frame(
                close::INVALID_TOKEN,
                "this session was signed out; sign in with a new token",
            ))
            .await;
        return Ok(());
    }
    let owner = ctx.gatekeeper.is_owner(user);
    let (tx, mut rx) = mpsc::channel::<Utf8Bytes>(cfg.queue.max(1));
    let slow = CancellationToken::new();
    let handle = ClientHandle {
        tx,
        slow: slow.clone(),
    };
    let mut rooms: HashSet<String> = HashSet::new();

    let guilds: Vec<String> = permitted_guilds(&ctx, user).await;
    sink.send(control(
        "authenticated",
        None,
        json!({ "userId": claims.user.to_string(), "owner": owner, "guilds": guilds }),
    ))
    .await?;
    if owner {
        let (replay, _) = hub.subscribe(StreamKey::Owner, client, handle.clone(), owner_seq);
        send_replay(&mut sink, replay, None, "owner", owner_seq).await?;
    }

    let secs_left = claims.expires_at.saturating_sub(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    );
    let expiry = tokio::time::sleep(Duration::from_secs(secs_left));
    tokio::pin!(expiry);
    let mut heartbeat = tokio::time::interval(cfg.heartbeat);
    heartbeat.tick().await;
    let mut last_seen = Instant::now();
    let mut recent: VecDeque<Instant> = VecDeque::new();

    let result: anyhow::Result<Option<Message>> = async {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    return Ok(Some(close_frame(close::GOING_AWAY, "the server is shutting down; reconnect and resume")));
                }
                _ = slow.cancelled() => {
                    return Ok(Some(close_frame(close::SLOW_CONSUMER, "too slow: reconnect and resume with your last seq")));
                }
                _ = &mut expiry => {
                    return Ok(Some(close_frame(close::TOKEN_EXPIRED, "the session token has expired")));
                }
                _ = signed_out.cancelled() => {
                    return Ok(Some(close_frame(close::INVALID_TOKEN, "this session was signed out; sign in with a new token")));
                }
                _ = heartbeat.tick() => {
                    if last_seen.elapsed() > cfg.heartbeat * 2 {
                        return Ok(Some(close_frame(close::HEARTBEAT_TIMEOUT, "no heartbeat answer")));
                    }
                    sink.send(Message::Ping(Default::default())).await?;
                }
                frame = rx.recv() => {
                    let Some(frame) = frame else { return Ok(None) };
                    tokio::select! {
                        r = sink.send(Message::Text(frame)) => r?,
                        _ = slow.cancelled() => {
                            return Ok(Some(close_frame(close::SLOW_CONSUMER, "too slow: reconnect and resume with your last seq")));
                        }
                    }
                }
                msg = stream.next() => {
                    let msg = match msg {
                        None => return Ok(None),
                        Some(Err(WsError::Capacity(_))) => {
                            return Ok(Some(close_frame(close::TOO_BIG, "frame too large (limit in hello.maxFrameBytes)")));
                        }
                        Some(Err(e)) => return Err(e.into()),
                        Some(Ok(m)) => m,
                    };
                    last_seen = Instant::now();
                    let text = match msg {
                        Message::Text(t) => t,
                        Message::Close(_) => return Ok(None),
                        Message::Binary(_) => {
                            sink.send(error_event("unsupported", "send JSON text frames")).await?;
                            continue;
                        }
                        _ => continue,
                    };
                    let parsed = match serde_json::from_str::<ClientMessage>(&text) {
                        Ok(m) => m,
                        Err(e) => {
                            let code = if serde_json::from_str::<Value>(&text).is_ok() { "invalid_message" } else { "invalid_json" };
                            sink.send(error_event(code, &format!("could not read the message: {e}"))).await?;
                            continue;
                        }
                    };
                    match parsed {
                        ClientMessage::Ping => sink.send(control("pong", None, json!({}))).await?,
                        ClientMessage::Auth { .. } => sink.send(error_event("already_authenticated", "this socket is already authenticated")).await?,
                        m @ (ClientMessage::Subscribe { .. } | ClientMessage::Unsubscribe { .. }) => {
                            let now = Instant::now();
                            while recent.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1)) {
                                recent.pop_front();
                            }
                            if recent.len() >= cfg.subscribe_rate {
                                sink.send(error_event("rate_limited", &format!("at most {} subscribe/unsubscribe messages per second", cfg.subscribe_rate))).await?;
                                continue;
                            }
                            recent.push_back(now);
                            match m {
                                ClientMessage::Subscribe { guild_id, last_seq } => {
                                    if heimdall_base::ids::parse_guild(&guild_id).is_err() {
                                        sink.send(error_event("invalid_guild", "guildId must be a Discord guild id")).await?;
                                    } else if !rooms.contains(&guild_id) && rooms.len() >= cfg.max_rooms {
                                        sink.send(error_event("room_limit", &format!("at most {} guild rooms per connection", cfg.max_rooms))).await?;
                                    } else if !owner && !may_view(&ctx, &guild_id, user).await {
                                        sink.send(error_event("forbidden", "you have no dashboard access to this guild")).await?;
                                    } else {
                                        rooms.insert(guild_id.clone());
                                        let (replay, latest) = hub.subscribe(StreamKey::Guild(guild_id.clone()), client, handle.clone(), last_seq);
                                        sink.send(control("subscribed", Some(&guild_id), json!({ "seq": latest }))).await?;
                                        send_replay(&mut sink, replay, Some(&guild_id), "guild", last_seq).await?;
                                    }
                                }
                                ClientMessage::Unsubscribe { guild_id } => {
                                    rooms.remove(&guild_id);
                                    hub.unsubscribe(&StreamKey::Guild(guild_id.clone()), client);
                                    sink.send(control("unsubscribed", Some(&guild_id), json!({}))).await?;
                                }
                                _ => {}
                            }
                        }
                    }
                }
            }
        }
    }
    .await;
    // The closing handshake: send our Close, then give the peer a moment to answer.
    let result = match result {
        Ok(Some(frame)) => {
            let _ = tokio::time::timeout(Duration::from_millis(500), sink.send(frame)).await;
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                while let Some(Ok(m)) = stream.next().await {
                    if matches!(m, Message::Close(_)) {
                        break;
                    }
                }
            })
            .await;
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(e) => Err(e),
    };
    for g in rooms {
        hub.unsubscribe(&StreamKey::Guild(g), client);
    }
    hub.unsubscribe(&StreamKey::Owner, client);
    result
}

async fn send_replay<S>(
    sink: &mut S,
    replay: Replay,
    guild: Option<&str>,
    stream: &str,
    last: Option<u64>,
) -> anyhow::Result<()>
where
    S: SinkExt<Message, Error = WsError> + Unpin,
{
    match replay {
        Replay::Events(frames) => {
            for f in frames {
                sink.send(Message::Text(f)).await?;
            }
        }
        Replay::Gap { oldest, latest } => {
            sink.send(control(
                "resume_gap",
                guild,
                json!({ "stream": stream, "lastSeq": last, "oldestSeq": oldest, "latestSeq": latest, "message": "events after lastSeq are no longer buffered; refetch the state over HTTP" }),
            ))
            .await?;
        }
    }
    Ok(())
}

async fn close_on_error<S>(sink: &mut S, e: WsError) -> anyhow::Result<()>
where
    S: SinkExt<Message, Error = WsError> + Unpin,
{
    if let WsError::Capacity(_) = e {
        let _ = sink
            .send(close_frame(
                close::TOO_BIG,
                "frame too large (limit in hello.maxFrameBytes)",
            ))
            .await;
        return Ok(());
    }
    Err(e.into())
}

/// Forgets a connection's sign-out registration however the connection ends.
struct SessionGuard {
    hub: WebSocketManager,
    user: u64,
    client: u64,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.hub.untrack_session(self.user, self.client);
    }
}

async fn may_view(ctx: &GatewayContext, guild: &str, user: u64) -> bool {
    ctx.gatekeeper
        .may_view(guild, user)
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = ?e, guild, user, "dashboard access check failed; denied");
            false
        })
}

async fn permitted_guilds(ctx: &GatewayContext, user: u64) -> Vec<String> {
    ctx.gatekeeper.guilds(user).await.unwrap_or_else(|e| {
        tracing::warn!(error = ?e, user, "listing a user's dashboard guilds failed");
        Vec::new()
    })
}
