//! The WebSocket gateway: live events for dashboard clients.
//!
//! [`WebSocketManager`] is the hub plugins publish through (`broadcast_to_guild`,
//! `broadcast_to_owners`). Every stream (a guild room, the owner stream) numbers its events
//! and keeps the last [`GatewayConfig::replay`] of them, so a client that reconnects with its
//! last `seq` gets exactly what it missed. Each message is serialised once; every client has
//! a bounded queue, and a client whose queue is full is dropped (close code 4009) instead of
//! slowing the others. No lock is held across an await.
//!
//! With `REDIS_URL` set, publishes go through Redis: a Lua script numbers and publishes each
//! event atomically, so every process sees every stream in the same order with the same
//! sequence numbers. The protocol is in `docs/websocket.md`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_util::sync::CancellationToken;

pub mod coalesce;
pub mod server;

pub use server::{Gatekeeper, Gateway, GatewayContext, Rejection, Session};

/// Tunables of the gateway.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// How often the server pings; a client silent for two intervals is closed.
    pub heartbeat: Duration,
    /// How long a new socket may take to authenticate.
    pub auth_timeout: Duration,
    /// Largest inbound frame (bytes).
    pub max_frame: usize,
    /// Most guild rooms per client.
    pub max_rooms: usize,
    /// Most subscribe/unsubscribe messages per second.
    pub subscribe_rate: usize,
    /// Messages queued per client before it counts as slow.
    pub queue: usize,
    /// Events kept per stream for resume.
    pub replay: usize,
    /// How long a new connection may take to finish the WebSocket handshake.
    pub handshake_timeout: Duration,
    /// Connections at once, per client address, and not yet authenticated per address.
    pub limits: heimdall_base::net::Limits,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(20),
            auth_timeout: Duration::from_secs(5),
            max_frame: 4096,
            max_rooms: 10,
            subscribe_rate: 5,
            queue: 256,
            replay: 1000,
            handshake_timeout: Duration::from_secs(5),
            limits: heimdall_base::net::Limits {
                total: 20_000,
                per_address: 1_000,
                pending_per_address: 64,
            },
        }
    }
}

impl GatewayConfig {
    /// Defaults, with `HEIMDALL_WS_HEARTBEAT_MS`, `HEIMDALL_WS_AUTH_TIMEOUT_MS`,
    /// `HEIMDALL_WS_HANDSHAKE_TIMEOUT_MS`, `HEIMDALL_WS_QUEUE`, `WS_MAX_CONNECTIONS`,
    /// `WS_MAX_CONNECTIONS_PER_ADDRESS` and `WS_MAX_PENDING_PER_ADDRESS` applied when set (in
    /// `vars`, the configuration's environment).
    pub fn from_vars(vars: &std::collections::HashMap<String, String>) -> Self {
        let mut c = Self::default();
        let num = |k: &str| vars.get(k).and_then(|v| v.trim().parse::<u64>().ok());
        if let Some(ms) = num("HEIMDALL_WS_HEARTBEAT_MS") {
            c.heartbeat = Duration::from_millis(ms.max(10));
        }
        if let Some(ms) = num("HEIMDALL_WS_AUTH_TIMEOUT_MS") {
            c.auth_timeout = Duration::from_millis(ms.max(10));
        }
        if let Some(ms) = num("HEIMDALL_WS_HANDSHAKE_TIMEOUT_MS") {
            c.handshake_timeout = Duration::from_millis(ms.max(10));
        }
        if let Some(q) = num("HEIMDALL_WS_QUEUE") {
            c.queue = q.max(1) as usize;
        }
        if let Some(n) = num("WS_MAX_CONNECTIONS") {
            c.limits.total = n.max(1) as usize;
        }
        if let Some(n) = num("WS_MAX_CONNECTIONS_PER_ADDRESS") {
            c.limits.per_address = n.max(1) as usize;
        }
        if let Some(n) = num("WS_MAX_PENDING_PER_ADDRESS") {
            c.limits.pending_per_address = n.max(1) as usize;
        }
        c
    }
}

/// A numbered stream of events.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StreamKey {
    /// Owner-only events (migration progress).
    Owner,
    /// One guild's room.
    Guild(String),
}

impl StreamKey {
    fn wire(&self) -> String {
        match self {
            Self::Owner => "owner".into(),
            Self::Guild(g) => format!("guild:{g}"),
        }
    }

    fn parse(s: &str) -> Option<Self> {
        if s == "owner" {
            Some(Self::Owner)
        } else {
            s.strip_prefix("guild:").map(|g| Self::Guild(g.to_string()))
        }
    }
}

/// A frame waiting in a client's queue: 40 bytes where tungstenite's `Message` takes 56.
#[derive(Debug)]
pub(crate) enum Out {
    /// A JSON text frame.
    Text(Utf8Bytes),
    /// A heartbeat ping with its payload.
    Ping(u64),
    /// The closing frame: code and reason.
    Close(u16, Utf8Bytes),
}

impl From<Out> for Message {
    fn from(o: Out) -> Self {
        use tokio_tungstenite::tungstenite::protocol::{frame::coding::CloseCode, CloseFrame};
        match o {
            Out::Text(t) => Message::Text(t),
            Out::Ping(p) => Message::Ping(p.to_be_bytes().to_vec().into()),
            Out::Close(code, reason) => Message::Close(Some(CloseFrame {
                code: CloseCode::from(code),
                reason,
            })),
        }
    }
}

/// A client's bounded outgoing queue. Unlike a channel it allocates nothing while empty: an
/// idle connection holds no buffer (a tokio channel allocates a block of 32 slots up front).
pub(crate) struct Outbox {
    items: Mutex<VecDeque<Out>>,
    ready: tokio::sync::Notify,
    limit: usize,
}

impl Outbox {
    /// A queue of at most `limit` frames.
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            items: Mutex::new(VecDeque::new()),
            ready: tokio::sync::Notify::new(),
            limit: limit.max(1),
        })
    }

    fn len(&self) -> usize {
        self.items.lock().expect("outbox lock").len()
    }

    /// Queues `o`; false when the queue is full.
    fn try_push(&self, o: Out) -> bool {
        let mut items = self.items.lock().expect("outbox lock");
        if items.len() >= self.limit {
            return false;
        }
        items.push_back(o);
        drop(items);
        self.ready.notify_one();
        true
    }

    /// The next frame, if one is waiting.
    pub(crate) fn try_pop(&self) -> Option<Out> {
        let mut items = self.items.lock().expect("outbox lock");
        let o = items.pop_front();
        if items.is_empty() && items.capacity() > 64 {
            // A burst is over: give its buffer back.
            *items = VecDeque::new();
        }
        o
    }

    /// The next frame, waiting for one.
    pub(crate) async fn pop(&self) -> Out {
        loop {
            if let Some(o) = self.try_pop() {
                return o;
            }
            // A push between the check and here leaves a permit: no wake-up is lost.
            self.ready.notified().await;
        }
    }
}

/// A connected client's outgoing queue: every frame the server sends it goes through here,
/// to the one task that writes to its socket.
#[derive(Clone)]
pub(crate) struct ClientHandle {
    pub outbox: Arc<Outbox>,
    /// Cancelled when the client is too slow.
    pub slow: CancellationToken,
    /// Places kept free for replays and control frames: live events beyond
    /// [`GatewayConfig::queue`] make the client slow.
    pub reserve: usize,
}

impl ClientHandle {
    /// Queues a live event; a client with `queue` events waiting is slow (and `false`).
    pub(crate) fn push_event(&self, frame: Utf8Bytes) -> bool {
        if self.outbox.len() + self.reserve >= self.outbox.limit {
            self.slow.cancel();
            return false;
        }
        self.push(Out::Text(frame))
    }

    /// Queues a control frame or a replayed event; a full queue makes the client slow.
    pub(crate) fn push(&self, m: Out) -> bool {
        if self.outbox.try_push(m) {
            true
        } else {
            self.slow.cancel();
            false
        }
    }
}

#[derive(Default)]
struct Stream {
    seq: u64,
    buffer: VecDeque<(u64, Utf8Bytes)>,
    subs: HashMap<u64, ClientHandle>,
}

impl Stream {
    /// The oldest seq still buffered (the next one when nothing is).
    fn oldest(&self) -> u64 {
        self.buffer.front().map_or(self.seq + 1, |(s, _)| *s)
    }

    /// Whether every event after `last` is here to replay.
    fn holds_after(&self, last: u64) -> bool {
        last <= self.seq && last + 1 >= self.oldest()
    }
}

/// What a (re)subscription returns: events to replay, or that they are gone.
#[derive(Debug)]
pub enum Replay {
    /// The missed events, in order (possibly none).
    Events(Vec<Utf8Bytes>),
    /// The client's `lastSeq` is older than the buffer: refetch state over HTTP.
    Gap {
        /// Oldest seq still buffered.
        oldest: u64,
        /// Latest seq of the stream.
        latest: u64,
    },
}

/// What a process sends to the others through Redis.
#[derive(Debug)]
enum ToRedis {
    /// An event for a stream (its envelope, without `seq`).
    Event(StreamKey, String),
    /// Close every connection of this user, on every process.
    SignOut(u64),
}

/// The hub's side of Redis: where its publishes go, and where history is read back.
struct Shared {
    out: mpsc::UnboundedSender<ToRedis>,
    conn: redis::aio::MultiplexedConnection,
    namespace: String,
}

/// A per-stream Redis key of the gateway: `what` is `seq` (its counter) or `hist` (its
/// history).
fn stream_key(namespace: &str, what: &str, stream: &StreamKey) -> String {
    format!("heimdall:{namespace}:ws:{what}:{}", stream.wire())
}

pub(crate) struct Hub {
    streams: Mutex<HashMap<StreamKey, Stream>>,
    /// Changes whenever the streams' history is lost (see [`WebSocketManager::epoch`]).
    epoch: String,
    replay: usize,
    next_client: AtomicU64,
    redis: Option<Shared>,
    /// Events delivered (all streams), for metrics and tests.
    delivered: AtomicU64,
    /// Connected clients per user, each with the token that signs it out.
    sessions: Mutex<HashMap<u64, HashMap<u64, CancellationToken>>>,
}

/// The gateway's publishing side, shared with plugins through the context. Cheap to clone.
/// A disabled manager (no gateway running) accepts every call and does nothing.
#[derive(Clone, Default)]
pub struct WebSocketManager {
    hub: Option<Arc<Hub>>,
}

impl std::fmt::Debug for WebSocketManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketManager")
            .field("enabled", &self.hub.is_some())
            .finish()
    }
}

/// A fresh epoch: 64 random bits in hex.
fn new_epoch() -> String {
    format!("{:016x}", rand_u64())
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// An event as Redis carries it, `seq|stream|envelope`: its seq, stream and envelope (with
/// its `seq`).
fn parse_published(payload: &str) -> Option<(u64, StreamKey, Value)> {
    let (seq, rest) = payload.split_once('|')?;
    let (stream, json) = rest.split_once('|')?;
    let seq = seq.parse::<u64>().ok()?;
    let stream = StreamKey::parse(stream)?;
    let mut v = serde_json::from_str::<Value>(json).ok()?;
    v.as_object_mut()?.insert("seq".into(), seq.into());
    Some((seq, stream, v))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl WebSocketManager {
    /// A manager that drops everything (the gateway is off).
    pub fn disabled() -> Self {
        Self { hub: None }
    }

    /// An in-process hub.
    pub fn new(config: &GatewayConfig) -> Self {
        Self {
            hub: Some(Arc::new(Hub {
                streams: Mutex::new(HashMap::new()),
                epoch: new_epoch(),
                replay: config.replay,
                next_client: AtomicU64::new(1),
                redis: None,
                delivered: AtomicU64::new(0),
                sessions: Mutex::new(HashMap::new()),
            })),
        }
    }

    /// A hub that publishes through Redis at `url` (channel and counters under `namespace`).
    /// Its tasks stop when `shutdown` is cancelled.
    pub async fn with_redis(
        config: &GatewayConfig,
        url: &str,
        namespace: &str,
        tasks: &tokio_util::task::TaskTracker,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        use futures::StreamExt;
        let client = redis::Client::open(url).map_err(|e| {
            anyhow::anyhow!(
                "REDIS_URL {} is not a Redis URL: {}",
                heimdall_base::secret::redact_uri(url),
                heimdall_base::secret::scrub(&e.to_string(), url)
            )
        })?;
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot reach Redis at {}: {}",
                    heimdall_base::secret::redact_uri(url),
                    heimdall_base::secret::scrub(&e.to_string(), url)
                )
            })?;
        let mut pubsub = client
            .get_async_pubsub()
            .await
            .context("opening the Redis subscription")?;
        let channel = format!("heimdall:{namespace}:ws");
        pubsub
            .subscribe(&channel)
            .await
            .context("subscribing to the gateway channel")?;
        // The epoch lives beside the counters: set once, it stays while Redis keeps them; a
        // Redis that lost its data loses it too, and the next process makes a new one.
        let epoch_key = format!("heimdall:{namespace}:ws:epoch");
        redis::cmd("SET")
            .arg(&epoch_key)
            .arg(new_epoch())
            .arg("NX")
            .query_async::<Option<String>>(&mut conn)
            .await
            .context("setting the gateway's epoch in Redis")?;
        let epoch: String = redis::cmd("GET")
            .arg(&epoch_key)
            .query_async(&mut conn)
            .await
            .context("reading the gateway's epoch from Redis")?;
        let (tx, mut rx) = mpsc::unbounded_channel::<ToRedis>();
        let me = Self {
            hub: Some(Arc::new(Hub {
                streams: Mutex::new(HashMap::new()),
                epoch,
                replay: config.replay,
                next_client: AtomicU64::new(1),
                redis: Some(Shared {
                    out: tx,
                    conn: conn.clone(),
                    namespace: namespace.to_string(),
                }),
                delivered: AtomicU64::new(0),
                sessions: Mutex::new(HashMap::new()),
            })),
        };
        // Publisher: numbers, keeps in the stream's history (its last `replay` events, so a
        // client may resume on any process) and publishes, atomically, in this process's
        // order.
        let script = redis::Script::new(
            "local seq = redis.call('INCR', KEYS[1]) \
             local msg = seq .. '|' .. ARGV[1] \
             redis.call('RPUSH', KEYS[3], msg) \
             redis.call('LTRIM', KEYS[3], -tonumber(ARGV[2]), -1) \
             redis.call('PUBLISH', KEYS[2], msg) \
             return seq",
        );
        let ns = namespace.to_string();
        let stop = shutdown.clone();
        let chan = channel.clone();
        let replay = config.replay.max(1);
        tasks.spawn(async move {
            loop {
                let out = tokio::select! {
                    _ = stop.cancelled() => return,
                    m = rx.recv() => match m { Some(m) => m, None => return },
                };
                let r: redis::RedisResult<()> = match out {
                    ToRedis::Event(stream, msg) => {
                        script
                            .key(stream_key(&ns, "seq", &stream))
                            .key(&chan)
                            .key(stream_key(&ns, "hist", &stream))
                            .arg(format!("{}|{msg}", stream.wire()))
                            .arg(replay)
                            .invoke_async::<i64>(&mut conn)
                            .await
                            .map(drop)
                    }
                    ToRedis::SignOut(user) => redis::cmd("PUBLISH")
                        .arg(&chan)
                        .arg(format!("signout|{user}"))
                        .query_async::<i64>(&mut conn)
                        .await
                        .map(drop),
                };
                if let Err(e) = r {
                    tracing::warn!(error = %e, "publishing to the other gateway processes through Redis failed");
                }
            }
        });
        // Subscriber: delivers every process's events locally, in Redis order, and signs
        // out here whom another process signed out.
        let hub = me.clone();
        tasks.spawn(async move {
            let mut messages = pubsub.into_on_message();
            loop {
                let m = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    m = messages.next() => match m { Some(m) => m, None => { tracing::error!("the Redis subscription ended"); return } },
                };
                let Ok(payload) = m.get_payload::<String>() else { continue };
                if let Some(user) = payload.strip_prefix("signout|") {
                    if let Ok(user) = user.parse() {
                        hub.sign_out_here(user);
                    }
                    continue;
                }
                if let Some((seq, stream, v)) = parse_published(&payload) {
                    hub.deliver(&stream, Some(seq), v);
                }
            }
        });
        Ok(me)
    }

    /// With Redis, brings this process's copy of `stream` up to Redis's history before a
    /// client subscribes, when this process cannot answer it alone: a stream it has not
    /// seen yet (its numbers come from Redis), or a resume from a `seq` it does not hold
    /// (the client was on another process, or this one joined later). Each event is
    /// delivered once: what arrives later through the subscription is dropped by its seq.
    pub(crate) async fn catch_up(&self, stream: &StreamKey, last_seq: Option<u64>) {
        let Some(hub) = &self.hub else { return };
        let Some(r) = &hub.redis else { return };
        {
            let streams = hub.streams.lock().expect("gateway lock");
            if let Some(st) = streams.get(stream) {
                if st.seq > 0 && last_seq.is_none_or(|last| st.holds_after(last)) {
                    return;
                }
            }
        }
        let mut conn = r.conn.clone();
        let history: Vec<String> = match redis::cmd("LRANGE")
            .arg(stream_key(&r.namespace, "hist", stream))
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await
        {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "reading a stream's history from Redis failed");
                return;
            }
        };
        for item in history {
            if let Some((seq, key, v)) = parse_published(&item) {
                if &key == stream {
                    self.deliver(&key, Some(seq), v);
                }
            }
        }
    }

    /// Whether a gateway is running.
    pub fn enabled(&self) -> bool {
        self.hub.is_some()
    }

    /// Sends `event` to every client subscribed to `guild`'s room.
    pub fn broadcast_to_guild(&self, guild: &str, event: &str, data: Value) {
        self.publish(
            StreamKey::Guild(guild.to_string()),
            event,
            Some(guild),
            data,
        );
    }

    /// Sends `event` to every connected owner.
    pub fn broadcast_to_owners(&self, event: &str, data: Value) {
        self.publish(StreamKey::Owner, event, None, data);
    }

    /// Events delivered to streams so far (all streams).
    pub fn delivered(&self) -> u64 {
        self.hub
            .as_ref()
            .map_or(0, |h| h.delivered.load(Ordering::Relaxed))
    }

    fn publish(&self, stream: StreamKey, event: &str, guild: Option<&str>, data: Value) {
        let Some(hub) = &self.hub else { return };
        let mut v = serde_json::json!({ "event": event, "data": data, "timestamp": now_ms() });
        if let Some(g) = guild {
            v["guildId"] = Value::String(g.to_string());
        }
        match &hub.redis {
            Some(r) => {
                let _ = r.out.send(ToRedis::Event(stream, v.to_string()));
            }
            None => self.deliver(&stream, None, v),
        }
    }

    /// Numbers (unless numbered by Redis), serialises once, buffers and fans out.
    fn deliver(&self, stream: &StreamKey, seq: Option<u64>, mut envelope: Value) {
        let Some(hub) = &self.hub else { return };
        let mut streams = hub.streams.lock().expect("gateway lock");
        let st = streams.entry(stream.clone()).or_default();
        let seq = seq.unwrap_or(st.seq + 1);
        if seq <= st.seq {
            return; // already delivered
        }
        st.seq = seq;
        envelope["seq"] = seq.into();
        let frame = Utf8Bytes::from(envelope.to_string());
        st.buffer.push_back((seq, frame.clone()));
        while st.buffer.len() > hub.replay {
            st.buffer.pop_front();
        }
        st.subs.retain(|_, c| c.push_event(frame.clone()));
        hub.delivered.fetch_add(1, Ordering::Relaxed);
    }

    /// Closes every connection of `user` (its sessions were signed out): in this process
    /// now, and with Redis in every other process as soon as it hears of it. Returns how
    /// many this process closed.
    pub fn sign_out(&self, user: u64) -> usize {
        if let Some(r) = self.hub.as_ref().and_then(|h| h.redis.as_ref()) {
            let _ = r.out.send(ToRedis::SignOut(user));
        }
        self.sign_out_here(user)
    }

    /// [`Self::sign_out`] in this process only.
    fn sign_out_here(&self, user: u64) -> usize {
        let Some(hub) = &self.hub else { return 0 };
        let clients = hub
            .sessions
            .lock()
            .expect("sessions lock")
            .remove(&user)
            .unwrap_or_default();
        for token in clients.values() {
            token.cancel();
        }
        clients.len()
    }

    /// Takes `user`'s connections in this process out of `guild`'s room (their access to it
    /// was taken away): each is told with `unsubscribed` (`reason: "access_revoked"`), and
    /// joining again is refused while access is missing. Returns how many were in the room.
    pub fn leave_room(&self, user: u64, guild: &str) -> usize {
        let Some(hub) = &self.hub else { return 0 };
        let clients: Vec<u64> = hub
            .sessions
            .lock()
            .expect("sessions lock")
            .get(&user)
            .map(|m| m.keys().copied().collect())
            .unwrap_or_default();
        let mut streams = hub.streams.lock().expect("gateway lock");
        let Some(st) = streams.get_mut(&StreamKey::Guild(guild.to_string())) else {
            return 0;
        };
        let frame = serde_json::json!({
            "event": "unsubscribed", "guildId": guild, "timestamp": now_ms(),
            "data": { "reason": "access_revoked", "message": "your access to this server's dashboard was taken away" },
        })
        .to_string();
        let mut n = 0;
        for c in clients {
            if let Some(handle) = st.subs.remove(&c) {
                handle.push(Out::Text(Utf8Bytes::from(frame.clone())));
                n += 1;
            }
        }
        n
    }

    /// How many connections of `user` are open in this process.
    pub fn connections_of(&self, user: u64) -> usize {
        self.hub.as_ref().map_or(0, |h| {
            h.sessions
                .lock()
                .expect("sessions lock")
                .get(&user)
                .map_or(0, HashMap::len)
        })
    }

    /// Registers a connection of `user`; the token is cancelled when the user signs out.
    pub(crate) fn track_session(&self, user: u64, client: u64) -> CancellationToken {
        let token = CancellationToken::new();
        if let Some(hub) = &self.hub {
            hub.sessions
                .lock()
                .expect("sessions lock")
                .entry(user)
                .or_default()
                .insert(client, token.clone());
        }
        token
    }

    /// Forgets a closed connection.
    pub(crate) fn untrack_session(&self, user: u64, client: u64) {
        if let Some(hub) = &self.hub {
            let mut sessions = hub.sessions.lock().expect("sessions lock");
            if let Some(c) = sessions.get_mut(&user) {
                c.remove(&client);
                if c.is_empty() {
                    sessions.remove(&user);
                }
            }
        }
    }

    pub(crate) fn next_client_id(&self) -> u64 {
        self.hub
            .as_ref()
            .map_or(0, |h| h.next_client.fetch_add(1, Ordering::Relaxed))
    }

    /// This hub's epoch: it changes whenever the streams' history is lost (a restart
    /// without shared history), so a client resuming with a `seq` of another epoch is told
    /// of the gap instead of being answered with silence.
    pub fn epoch(&self) -> String {
        self.hub
            .as_ref()
            .map_or_else(String::new, |h| h.epoch.clone())
    }

    /// Registers a client on a stream and queues, before any later event of the stream,
    /// what `announce(latest seq)` says and then what the client missed after `last_seq`
    /// of `epoch` (the events, or a gap).
    pub(crate) fn subscribe(
        &self,
        stream: StreamKey,
        client: u64,
        handle: ClientHandle,
        resume: Option<(u64, Option<&str>)>,
        announce: impl FnOnce(u64) -> Out,
        gap: impl FnOnce((u64, u64)) -> Out,
    ) {
        let Some(hub) = &self.hub else {
            handle.push(announce(0));
            return;
        };
        let mut streams = hub.streams.lock().expect("gateway lock");
        let st = streams.entry(stream).or_default();
        let latest = st.seq;
        let replay = match resume {
            None => Replay::Events(Vec::new()),
            Some((last, epoch))
                if epoch.is_some_and(|e| e != hub.epoch) || !st.holds_after(last) =>
            {
                Replay::Gap {
                    oldest: st.oldest(),
                    latest,
                }
            }
            Some((last, _)) => Replay::Events(
                st.buffer
                    .iter()
                    .filter(|(s, _)| *s > last)
                    .map(|(_, f)| f.clone())
                    .collect(),
            ),
        };
        // Queued under the lock: no live event of this stream can come before them.
        if !handle.push(announce(latest)) {
            return;
        }
        let queued = match &replay {
            Replay::Events(frames) => frames.iter().all(|f| handle.push(Out::Text(f.clone()))),
            Replay::Gap { oldest, latest } => handle.push(gap((*oldest, *latest))),
        };
        if queued {
            st.subs.insert(client, handle);
        }
    }

    /// Removes a client from a stream.
    pub(crate) fn unsubscribe(&self, stream: &StreamKey, client: u64) {
        if let Some(hub) = &self.hub {
            if let Some(st) = hub.streams.lock().expect("gateway lock").get_mut(stream) {
                st.subs.remove(&client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{GatewayConfig, Out, Outbox};

    #[tokio::test]
    async fn the_outbox_is_bounded_keeps_order_and_wakes_its_writer() {
        let outbox = Outbox::new(2);
        assert!(outbox.try_push(Out::Ping(1)));
        assert!(outbox.try_push(Out::Ping(2)));
        assert!(!outbox.try_push(Out::Ping(3)), "full at its limit");
        assert!(matches!(outbox.pop().await, Out::Ping(1)));
        assert!(matches!(outbox.try_pop(), Some(Out::Ping(2))));
        assert!(outbox.try_pop().is_none());
        // A writer waiting on an empty queue wakes for the next frame.
        let waiting = tokio::spawn({
            let outbox = outbox.clone();
            async move { outbox.pop().await }
        });
        tokio::task::yield_now().await;
        assert!(outbox.try_push(Out::Ping(4)));
        let got = tokio::time::timeout(std::time::Duration::from_secs(1), waiting)
            .await
            .expect("woken")
            .unwrap();
        assert!(matches!(got, Out::Ping(4)));
    }

    use std::collections::HashMap;
    use std::time::Duration;

    #[test]
    fn tunables_come_from_the_environment_with_floors() {
        let vars = HashMap::from([
            ("HEIMDALL_WS_HEARTBEAT_MS".to_string(), "1".to_string()),
            ("HEIMDALL_WS_AUTH_TIMEOUT_MS".to_string(), "250".to_string()),
            ("HEIMDALL_WS_QUEUE".to_string(), "0".to_string()),
        ]);
        let c = GatewayConfig::from_vars(&vars);
        assert_eq!(c.heartbeat, Duration::from_millis(10));
        assert_eq!(c.auth_timeout, Duration::from_millis(250));
        assert_eq!(c.queue, 1);
        let d = GatewayConfig::from_vars(&HashMap::new());
        assert_eq!(d.heartbeat, GatewayConfig::default().heartbeat);
    }
}
