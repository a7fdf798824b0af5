//! Accepting and serving gateway connections.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tokio_util::sync::CancellationToken;
use tokio_util::task::{AbortOnDropHandle, TaskTracker};
use tracing::Instrument;

use heimdall_base::net::{accept, Admission, Ticket};

use super::coalesce::Coalesce;
use super::{ClientHandle, GatewayConfig, Out, Outbox, StreamKey, WebSocketManager};

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
    /// The session behind the `Cookie` header of the upgrade request, if it carries one
    /// (`None`: no session cookie).
    fn verify_cookie(&self, _cookie: &str) -> Option<Result<Session, Rejection>> {
        None
    }
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

/// A running gateway: its hub, its gatekeeper and one admission for every way in (its own
/// port, and WebSocket upgrades another HTTP server hands it). Cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    hub: WebSocketManager,
    ctx: GatewayContext,
    admission: Admission,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Gateway {
    /// A gateway publishing through `hub`; its connections are tasks of `tasks` and close
    /// when `shutdown` is cancelled.
    pub fn new(
        hub: WebSocketManager,
        ctx: GatewayContext,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) -> Self {
        Self {
            admission: Admission::new(ctx.config.limits),
            hub,
            ctx,
            shutdown,
            tasks,
        }
    }

    /// Accepts connections on `listener` until shutdown; every connection is a tracked
    /// task, admitted against the configured limits first.
    pub async fn serve(self, listener: TcpListener) {
        while let Some((tcp, peer, ticket)) = accept(
            &listener,
            &self.admission,
            &self.shutdown,
            &self.tasks,
            "gateway",
        )
        .await
        {
            let gw = self.clone();
            self.tasks.spawn(
                async move {
                    if let Err(e) = gw.handshake(tcp, ticket).await {
                        tracing::debug!(error = %e, "gateway connection ended with an error");
                    }
                }
                .instrument(tracing::debug_span!("ws_client", %peer)),
            );
        }
    }

    /// Admits a connection from `address` that another HTTP server is about to upgrade.
    pub fn admit(&self, address: std::net::IpAddr) -> Result<Ticket, heimdall_base::net::Refusal> {
        self.admission.admit(address)
    }

    /// Whether a browser page from `origin` may connect (`None`: not a browser).
    pub fn origin_allowed(&self, origin: Option<&str>) -> bool {
        origin_allowed(&self.ctx.origins, origin)
    }

    /// Serves a connection another HTTP server already upgraded to WebSocket (it answered
    /// the handshake), as a tracked task. `cookie` is the upgrade request's `Cookie`
    /// header: a client may then authenticate without a token.
    pub fn spawn_upgraded<F, S>(&self, io: F, ticket: Ticket, cookie: Option<String>)
    where
        F: std::future::Future<Output = anyhow::Result<S>> + Send + 'static,
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let gw = self.clone();
        self.tasks.spawn(
            async move {
                let io = tokio::select! {
                    io = io => match io {
                        Ok(io) => io,
                        Err(e) => {
                            tracing::debug!(error = %e, "WebSocket upgrade failed");
                            return;
                        }
                    },
                    _ = gw.shutdown.cancelled() => return,
                };
                let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                    Coalesce::new(io),
                    tokio_tungstenite::tungstenite::protocol::Role::Server,
                    Some(websocket_config(&gw.ctx.config)),
                )
                .await;
                if let Err(e) = gw.session(ws, ticket, cookie).await {
                    tracing::debug!(error = %e, "gateway connection ended with an error");
                }
            }
            .instrument(tracing::debug_span!("ws_client_upgraded")),
        );
    }
}

/// The `Sec-WebSocket-Accept` answer to a handshake's `Sec-WebSocket-Key`.
pub fn accept_key(key: &[u8]) -> String {
    tokio_tungstenite::tungstenite::handshake::derive_accept_key(key)
}

/// Small per-connection buffers: a 1 KiB read buffer that grows up to `max_frame`, and
/// outbound frames are written as they come (the defaults allocate 128 KiB per connection)
/// to a [`Coalesce`], which sends them together at the writer's flush.
fn websocket_config(cfg: &GatewayConfig) -> WebSocketConfig {
    let mut wsc = WebSocketConfig::default();
    wsc.max_frame_size = Some(cfg.max_frame);
    wsc.max_message_size = Some(cfg.max_frame);
    wsc.read_buffer_size = 1024;
    wsc.write_buffer_size = 0;
    wsc.max_write_buffer_size = 4 << 20;
    wsc
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMessage {
    Auth {
        /// Absent: the session cookie sent with the upgrade request authenticates.
        #[serde(default)]
        token: Option<String>,
        #[serde(default, rename = "ownerSeq")]
        owner_seq: Option<u64>,
        /// The epoch `ownerSeq` belongs to (from `hello`).
        #[serde(default)]
        epoch: Option<String>,
    },
    Subscribe {
        #[serde(rename = "guildId")]
        guild_id: String,
        #[serde(default, rename = "lastSeq")]
        last_seq: Option<u64>,
        /// The epoch `lastSeq` belongs to (from `hello`).
        #[serde(default)]
        epoch: Option<String>,
    },
    Unsubscribe {
        #[serde(rename = "guildId")]
        guild_id: String,
    },
    Ping,
}

fn control(event: &str, guild: Option<&str>, data: Value) -> Out {
    let mut v = json!({ "event": event, "data": data, "timestamp": now_millis() });
    if let Some(g) = guild {
        v["guildId"] = Value::String(g.into());
    }
    Out::Text(Utf8Bytes::from(v.to_string()))
}

fn error_event(code: &str, message: &str) -> Out {
    control("error", None, json!({ "code": code, "message": message }))
}

fn close_frame(code: u16, reason: &str) -> Out {
    Out::Close(code, Utf8Bytes::from(reason.to_string()))
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

/// Frames kept free in a client's queue for replays and control frames, beyond the replay.
const CONTROL_RESERVE: usize = 16;

/// Writes a client's queued frames to its socket, as many as are waiting per flush, until a
/// Close frame went out or the socket fails (or the connection drops it). The only place
/// that writes: the connection's own loop never waits on the network.
async fn write_frames<S>(mut sink: S, outbox: Arc<Outbox>)
where
    S: SinkExt<Message, Error = WsError> + Unpin,
{
    loop {
        let mut next = Some(outbox.pop().await);
        let mut closing = false;
        while let Some(m) = next.take() {
            closing = matches!(m, Out::Close(..));
            if sink.feed(Message::from(m)).await.is_err() {
                return;
            }
            if closing {
                break;
            }
            next = outbox.try_pop();
        }
        if sink.flush().await.is_err() || closing {
            return;
        }
    }
}

/// `resume_gap`: the events after `last` are not buffered (oldest and latest seq kept).
fn gap_frame(
    (oldest, latest): (u64, u64),
    guild: Option<&str>,
    stream: &str,
    last: Option<u64>,
    epoch: &str,
) -> Out {
    control(
        "resume_gap",
        guild,
        json!({
            "stream": stream, "lastSeq": last, "oldestSeq": oldest, "latestSeq": latest, "epoch": epoch,
            "message": "the events after lastSeq are no longer buffered, or belong to an earlier run of the server; refetch the state over HTTP",
        }),
    )
}

impl Gateway {
    /// The WebSocket handshake on the gateway's own port (origin checked, `Cookie` kept),
    /// then the session.
    async fn handshake(&self, tcp: TcpStream, ticket: Ticket) -> anyhow::Result<()> {
        let cfg = &self.ctx.config;
        let origins = self.ctx.origins.clone();
        let cookie = Arc::new(std::sync::Mutex::new(None::<String>));
        let seen = cookie.clone();
        // The error type is tungstenite's handshake callback contract.
        #[allow(clippy::result_large_err)]
        let check = move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
            let origin = req.headers().get("origin").and_then(|v| v.to_str().ok());
            *seen.lock().expect("cookie slot") = req
                .headers()
                .get("cookie")
                .and_then(|v| v.to_str().ok())
                .map(String::from);
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
        let evicted = ticket.evicted();
        let handshake = tokio::time::timeout(
            cfg.handshake_timeout,
            tokio_tungstenite::accept_hdr_async_with_config(
                Coalesce::new(tcp),
                check,
                Some(websocket_config(cfg)),
            ),
        );
        let ws = tokio::select! {
            r = handshake => match r {
                Err(_) => return Ok(()), // never finished its handshake
                Ok(r) => r?,
            },
            _ = evicted.cancelled() => return Ok(()),
            _ = self.shutdown.cancelled() => return Ok(()),
        };
        let cookie = cookie.lock().expect("cookie slot").take();
        self.session(ws, ticket, cookie).await
    }

    /// One client, from `hello` to its close.
    async fn session<S>(
        &self,
        ws: tokio_tungstenite::WebSocketStream<S>,
        ticket: Ticket,
        cookie: Option<String>,
    ) -> anyhow::Result<()>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (hub, ctx, shutdown) = (&self.hub, &self.ctx, &self.shutdown);
        let cfg = ctx.config.clone();
        let evicted = ticket.evicted();
        let (sink, mut stream) = ws.split();
        let reserve = cfg.replay + CONTROL_RESERVE;
        let outbox = Outbox::new(cfg.queue.max(1) + reserve);
        let slow = CancellationToken::new();
        let handle = ClientHandle {
            outbox: outbox.clone(),
            slow: slow.clone(),
            reserve,
        };
        // Aborted when the connection ends, however it ends.
        let mut writer = AbortOnDropHandle::new(tokio::spawn(write_frames(sink, outbox)));
        let epoch = hub.epoch();

        handle.push(control(
            "hello",
            None,
            json!({
                "protocol": 1,
                "heartbeatInterval": cfg.heartbeat.as_millis() as u64,
                "authTimeout": cfg.auth_timeout.as_millis() as u64,
                "maxFrameBytes": cfg.max_frame,
                "maxRooms": cfg.max_rooms,
                "subscribesPerSecond": cfg.subscribe_rate,
                "epoch": epoch,
            }),
        ));

        // Authentication: the first frame, within the timeout.
        let first = tokio::select! {
            r = tokio::time::timeout(cfg.auth_timeout, stream.next()) => r,
            _ = evicted.cancelled() => {
                let frame = close_frame(close::UNAUTHENTICATED, "too many connections from your address are waiting to authenticate; authenticate right after connecting");
                return finish(handle, writer, stream, Some(frame), GOODBYE).await;
            }
            _ = shutdown.cancelled() => {
                let frame = close_frame(close::GOING_AWAY, "the server is shutting down; reconnect and resume");
                return finish(handle, writer, stream, Some(frame), GOODBYE).await;
            }
        };
        // The first frame authenticates, or says why the connection closes (`None`: it is gone).
        let auth: Result<_, Option<Out>> = match first {
            Err(_) => Err(Some(close_frame(
                close::UNAUTHENTICATED,
                "authenticate within the auth timeout",
            ))),
            Ok(None) => Err(None),
            Ok(Some(Err(WsError::Capacity(_)))) => Err(Some(close_frame(
                close::TOO_BIG,
                "frame too large (limit in hello.maxFrameBytes)",
            ))),
            Ok(Some(Err(e))) => return Err(e.into()),
            Ok(Some(Ok(Message::Text(t)))) => match serde_json::from_str::<ClientMessage>(&t) {
                Ok(ClientMessage::Auth {
                    token,
                    owner_seq,
                    epoch,
                }) => match token
                    .map(|t| ctx.gatekeeper.verify(&t))
                    .or_else(|| {
                        cookie
                            .as_deref()
                            .and_then(|c| ctx.gatekeeper.verify_cookie(c))
                    })
                    .unwrap_or_else(|| {
                        Err(Rejection::Invalid(
                            "send your session token in the auth frame, or log in on the dashboard"
                                .into(),
                        ))
                    }) {
                    Ok(c) => Ok((c, owner_seq, epoch)),
                    Err(Rejection::Expired) => Err(Some(close_frame(
                        close::TOKEN_EXPIRED,
                        "the session token has expired",
                    ))),
                    Err(Rejection::Invalid(why)) => {
                        Err(Some(close_frame(close::INVALID_TOKEN, &why)))
                    }
                },
                _ => Err(Some(close_frame(
                    close::UNAUTHENTICATED,
                    "the first frame must be {\"type\":\"auth\",\"token\":...}",
                ))),
            },
            Ok(Some(Ok(_))) => Err(Some(close_frame(
                close::UNAUTHENTICATED,
                "the first frame must be a text auth message",
            ))),
        };
        let (claims, owner_seq, owner_epoch) = match auth {
            Ok(auth) => auth,
            Err(frame) => return finish(handle, writer, stream, frame, GOODBYE).await,
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
        // The guilds are read beside the check (one round trip, not two) and sent only if
        // it passes.
        let (valid, guilds) = tokio::join!(
            ctx.gatekeeper.session_valid(user, claims.issued_at),
            permitted_guilds(ctx, user)
        );
        let valid = valid.unwrap_or_else(|e| {
            tracing::warn!(error = ?e, user, "checking the session failed; refused");
            false
        });
        if !valid {
            let frame = close_frame(
                close::INVALID_TOKEN,
                "this session was signed out; sign in with a new token",
            );
            return finish(handle, writer, stream, Some(frame), GOODBYE).await;
        }
        ticket.established();
        let owner = ctx.gatekeeper.is_owner(user);
        let mut rooms: HashSet<String> = HashSet::new();

        let authenticated = control(
            "authenticated",
            None,
            json!({ "userId": claims.user.to_string(), "owner": owner, "guilds": guilds, "epoch": epoch }),
        );
        if owner {
            hub.catch_up(&StreamKey::Owner, owner_seq).await;
            hub.subscribe(
                StreamKey::Owner,
                client,
                handle.clone(),
                owner_seq.map(|s| (s, owner_epoch.as_deref())),
                |_| authenticated,
                |gap| gap_frame(gap, None, "owner", owner_seq, &epoch),
            );
        } else {
            handle.push(authenticated);
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
        // Liveness is a pong that echoes one of our last two pings: a client that stops
        // reading cannot answer them, whatever else it sends.
        let mut last_pong = Instant::now();
        let mut pings: [u64; 2] = [0, 0];
        let mut recent: VecDeque<Instant> = VecDeque::new();

        let result: anyhow::Result<Option<Out>> = async {
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
                _ = &mut writer => {
                    return Ok(None); // the socket failed under the writer
                }
                _ = tokio::time::sleep_until((last_pong + cfg.heartbeat * 2).into()) => {
                    return Ok(Some(close_frame(close::HEARTBEAT_TIMEOUT, "no heartbeat answer")));
                }
                _ = heartbeat.tick() => {
                    pings = [super::rand_u64(), pings[0]];
                    handle.push(Out::Ping(pings[0]));
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
                    let text = match msg {
                        Message::Text(t) => t,
                        Message::Close(_) => return Ok(None),
                        Message::Pong(payload) => {
                            if pings.iter().any(|p| *p != 0 && payload.as_ref() == p.to_be_bytes()) {
                                last_pong = Instant::now();
                            }
                            continue;
                        }
                        Message::Binary(_) => {
                            handle.push(error_event("unsupported", "send JSON text frames"));
                            continue;
                        }
                        _ => continue,
                    };
                    let parsed = match serde_json::from_str::<ClientMessage>(&text) {
                        Ok(m) => m,
                        Err(e) => {
                            let code = if serde_json::from_str::<Value>(&text).is_ok() { "invalid_message" } else { "invalid_json" };
                            handle.push(error_event(code, &format!("could not read the message: {e}")));
                            continue;
                        }
                    };
                    match parsed {
                        ClientMessage::Ping => { handle.push(control("pong", None, json!({}))); }
                        ClientMessage::Auth { .. } => { handle.push(error_event("already_authenticated", "this socket is already authenticated")); }
                        m @ (ClientMessage::Subscribe { .. } | ClientMessage::Unsubscribe { .. }) => {
                            let now = Instant::now();
                            while recent.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1)) {
                                recent.pop_front();
                            }
                            if recent.len() >= cfg.subscribe_rate {
                                handle.push(error_event("rate_limited", &format!("at most {} subscribe/unsubscribe messages per second", cfg.subscribe_rate)));
                                continue;
                            }
                            recent.push_back(now);
                            match m {
                                ClientMessage::Subscribe { guild_id, last_seq, epoch: client_epoch } => {
                                    if heimdall_base::ids::parse_guild(&guild_id).is_err() {
                                        handle.push(error_event("invalid_guild", "guildId must be a Discord guild id"));
                                    } else if !rooms.contains(&guild_id) && rooms.len() >= cfg.max_rooms {
                                        handle.push(error_event("room_limit", &format!("at most {} guild rooms per connection", cfg.max_rooms)));
                                    } else if !owner && !may_view(ctx, &guild_id, user).await {
                                        handle.push(error_event("forbidden", "you have no dashboard access to this guild"));
                                    } else {
                                        rooms.insert(guild_id.clone());
                                        hub.catch_up(&StreamKey::Guild(guild_id.clone()), last_seq).await;
                                        hub.subscribe(
                                            StreamKey::Guild(guild_id.clone()),
                                            client,
                                            handle.clone(),
                                            last_seq.map(|s| (s, client_epoch.as_deref())),
                                            |latest| control("subscribed", Some(&guild_id), json!({ "seq": latest, "epoch": epoch })),
                                            |gap| gap_frame(gap, Some(&guild_id), "guild", last_seq, &epoch),
                                        );
                                    }
                                }
                                ClientMessage::Unsubscribe { guild_id } => {
                                    rooms.remove(&guild_id);
                                    hub.unsubscribe(&StreamKey::Guild(guild_id.clone()), client);
                                    handle.push(control("unsubscribed", Some(&guild_id), json!({})));
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
        for g in rooms {
            hub.unsubscribe(&StreamKey::Guild(g), client);
        }
        hub.unsubscribe(&StreamKey::Owner, client);
        match result {
            // A client that does not answer or cannot keep up is hardly reading: its Close
            // frame gets a tenth of a second to go out.
            Ok(Some(Out::Close(code, reason)))
                if [close::HEARTBEAT_TIMEOUT, close::SLOW_CONSUMER].contains(&code) =>
            {
                let frame = Some(Out::Close(code, reason));
                finish(handle, writer, stream, frame, Duration::from_millis(100)).await
            }
            Ok(frame) => finish(handle, writer, stream, frame, GOODBYE).await,
            Err(e) => Err(e),
        }
    }
}

/// How long the writer gets to send the Close frame of a client that is reading.
const GOODBYE: Duration = Duration::from_millis(500);

/// Ends a connection within a second, whatever the client does: queues `frame` (a Close),
/// gives the writer `grace` to send it and, if it went out, the peer half a second to
/// answer, then drops the socket (and with it the writer).
async fn finish<S>(
    handle: ClientHandle,
    mut writer: AbortOnDropHandle<()>,
    mut stream: S,
    frame: Option<Out>,
    grace: Duration,
) -> anyhow::Result<()>
where
    S: StreamExt<Item = Result<Message, WsError>> + Unpin,
{
    let Some(frame) = frame else {
        return Ok(());
    };
    handle.push(frame);
    if tokio::time::timeout(grace, &mut writer).await.is_ok() {
        let _ = tokio::time::timeout(Duration::from_millis(500), async {
            while let Some(Ok(m)) = stream.next().await {
                if matches!(m, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }
    Ok(())
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
