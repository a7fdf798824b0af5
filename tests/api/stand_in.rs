//! A local stand-in for Discord: the OAuth2 authorize page and token endpoint, and the REST
//! calls the dashboard makes (`/users/@me`, `/users/@me/guilds` for a user and for the bot,
//! a member's roles). Payloads follow Discord's documentation; what Discord would refuse
//! (a wrong client secret, a reused code, another redirect URI) it refuses too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use serde_json::{json, Value};

/// The application's OAuth2 client id and secret, as the tests configure them.
pub const CLIENT_ID: &str = "930000000000000001";
/// The client secret.
pub const CLIENT_SECRET: &str = "stand-in-client-secret";

/// A user's server as Discord lists it for them.
#[derive(Debug, Clone)]
pub struct UserGuild {
    /// Guild id.
    pub id: String,
    /// Name.
    pub name: String,
    /// The user's permission bits there.
    pub permissions: u64,
}

/// What the stand-in knows.
#[derive(Default)]
pub struct World {
    /// Who is "logged in on discord.com" in the browser that opens the authorize page.
    pub browser_user: Option<u64>,
    /// Each user's servers.
    pub user_guilds: HashMap<u64, Vec<UserGuild>>,
    /// The servers the bot is in: `(id, name)`.
    pub bot_guilds: Vec<(String, String)>,
    /// Each server's channels: `(id, name, type)` (Discord's channel types: 0 text, 2 voice).
    pub channels: HashMap<String, Vec<(String, String, u8)>>,
    /// Each server's roles besides `@everyone`: `(id, name)`.
    pub roles: HashMap<String, Vec<(String, String)>>,
    /// Users' Discord languages (default `en-US`).
    pub locales: HashMap<u64, String>,
    /// Members' roles: `(guild, user) -> roles`.
    pub members: HashMap<(String, u64), Vec<String>>,
    /// Direct messages the bot sent: `(user, content)`.
    pub dms: Vec<(u64, String)>,
    /// Users whose DMs are closed (Discord answers 50007).
    pub closed_dms: Vec<u64>,
    /// Messages the bot sent to servers' channels: `(channel, content, allowed_mentions)`.
    pub messages: Vec<(String, String, Value)>,
    dm_channels: Vec<u64>,
    codes: HashMap<String, (u64, String)>,
    /// Paths asked, in order.
    pub seen: Vec<String>,
}

/// The running stand-in.
#[derive(Clone)]
pub struct Discord {
    /// Its base URL (`DISCORD_API_PROXY`).
    pub url: String,
    /// What it knows; change it as the test goes.
    pub world: Arc<Mutex<World>>,
}

impl Discord {
    /// Starts one on a free port.
    pub async fn start() -> Self {
        let world = Arc::new(Mutex::new(World::default()));
        let router = axum::Router::new()
            .route("/oauth2/authorize", axum::routing::get(authorize))
            .route("/api/v10/oauth2/token", axum::routing::post(token))
            .route("/api/v10/users/@me", axum::routing::get(me))
            .route("/api/v10/users/@me/guilds", axum::routing::get(guilds))
            .route(
                "/api/v10/guilds/{guild}/members/{user}",
                axum::routing::get(member),
            )
            .route("/api/v10/users/@me/channels", axum::routing::post(open_dm))
            .route(
                "/api/v10/guilds/{guild}/channels",
                axum::routing::get(channels),
            )
            .route("/api/v10/guilds/{guild}/roles", axum::routing::get(roles))
            .route(
                "/api/v10/channels/{channel}/messages",
                axum::routing::post(send_dm),
            )
            .fallback(|| async {
                (
                    StatusCode::NOT_FOUND,
                    Json(json!({"message": "404: Not Found", "code": 0})),
                )
            })
            .with_state(world.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self {
            url: format!("http://{addr}"),
            world,
        }
    }

    /// The settings that point a bot at this stand-in, with login configured for
    /// `dashboard_url`.
    pub fn settings(&self, dashboard_url: &str) -> Vec<(String, String)> {
        [
            ("DISCORD_TOKEN", "stand-in-bot-token"),
            ("DISCORD_API_PROXY", self.url.as_str()),
            ("DISCORD_CLIENT_ID", CLIENT_ID),
            ("DISCORD_CLIENT_SECRET", CLIENT_SECRET),
            ("DASHBOARD_URL", dashboard_url),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// Changes what it knows.
    pub fn with<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        f(&mut self.world.lock().unwrap())
    }
}

type Shared = State<Arc<Mutex<World>>>;

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": "invalid_request", "error_description": message, "message": message, "code": 0 }))).into_response()
}

/// The authorize page: the browser's user "approves" at once and goes back with a code.
async fn authorize(State(w): Shared, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut w = w.lock().unwrap();
    w.seen.push("/oauth2/authorize".into());
    if q.get("client_id").map(String::as_str) != Some(CLIENT_ID)
        || q.get("response_type").map(String::as_str) != Some("code")
    {
        return error(StatusCode::BAD_REQUEST, "unknown client or response type");
    }
    let scopes: Vec<&str> = q
        .get("scope")
        .map(|s| s.split(' ').collect())
        .unwrap_or_default();
    if !(scopes.contains(&"identify") && scopes.contains(&"guilds")) {
        return error(
            StatusCode::BAD_REQUEST,
            "scopes must include identify and guilds",
        );
    }
    let (Some(redirect), Some(user)) = (q.get("redirect_uri"), w.browser_user) else {
        return error(
            StatusCode::BAD_REQUEST,
            "no redirect_uri, or nobody logged in",
        );
    };
    let code = format!("code-{}-{}", user, w.codes.len());
    w.codes.insert(code.clone(), (user, redirect.clone()));
    let state = q.get("state").cloned().unwrap_or_default();
    Redirect::to(&format!("{redirect}?code={code}&state={state}")).into_response()
}

/// The token endpoint: client credentials in Basic auth, a code good once, the same
/// redirect URI.
async fn token(
    State(w): Shared,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    use base64::Engine;
    let mut w = w.lock().unwrap();
    w.seen.push("/api/v10/oauth2/token".into());
    let basic = headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    if basic.as_deref() != Some(&format!("{CLIENT_ID}:{CLIENT_SECRET}")) {
        return error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    if f.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    let Some((user, redirect)) = f.get("code").and_then(|c| w.codes.remove(c)) else {
        return error(StatusCode::BAD_REQUEST, "invalid_grant");
    };
    if f.get("redirect_uri") != Some(&redirect) {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_grant: redirect_uri mismatch",
        );
    }
    Json(json!({
        "access_token": format!("access-{user}"), "token_type": "Bearer", "expires_in": 604800,
        "refresh_token": format!("refresh-{user}"), "scope": "identify guilds",
    }))
    .into_response()
}

fn bearer_user(headers: &HeaderMap) -> Option<u64> {
    headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer access-")?
        .parse()
        .ok()
}

fn is_bot(headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .is_some_and(|h| h.starts_with("Bot "))
}

async fn me(State(w): Shared, headers: HeaderMap) -> Response {
    let mut w = w.lock().unwrap();
    w.seen.push("/api/v10/users/@me".into());
    match bearer_user(&headers) {
        Some(id) => Json(json!({
            "id": id.to_string(), "username": format!("user{}", id % 1000), "discriminator": "0",
            "global_name": format!("User {}", id % 1000), "avatar": null,
            "locale": w.locales.get(&id).cloned().unwrap_or_else(|| "en-US".into()),
        }))
        .into_response(),
        None => error(StatusCode::UNAUTHORIZED, "401: Unauthorized"),
    }
}

async fn guilds(State(w): Shared, headers: HeaderMap) -> Response {
    let mut w = w.lock().unwrap();
    w.seen.push("/api/v10/users/@me/guilds".into());
    let partial = |id: &str, name: &str, perms: u64| {
        json!({ "id": id, "name": name, "icon": null, "banner": null, "owner": false,
                "permissions": perms.to_string(), "features": [] })
    };
    if is_bot(&headers) {
        return Json(
            w.bot_guilds
                .iter()
                .map(|(id, name)| partial(id, name, 0))
                .collect::<Vec<_>>(),
        )
        .into_response();
    }
    match bearer_user(&headers) {
        Some(user) => Json(
            w.user_guilds
                .get(&user)
                .map(|gs| {
                    gs.iter()
                        .map(|g| partial(&g.id, &g.name, g.permissions))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default(),
        )
        .into_response(),
        None => error(StatusCode::UNAUTHORIZED, "401: Unauthorized"),
    }
}

async fn member(State(w): Shared, Path((guild, user)): Path<(String, u64)>) -> Response {
    let w = w.lock().unwrap();
    match w.members.get(&(guild, user)) {
        Some(roles) => Json(json!({
            "user": { "id": user.to_string(), "username": "someone", "discriminator": "0", "avatar": null },
            "roles": roles, "joined_at": "2026-01-01T00:00:00.000000+00:00",
            "deaf": false, "mute": false, "flags": 0, "pending": false
        }))
        .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"message": "Unknown Member", "code": 10007})),
        )
            .into_response(),
    }
}

/// `GET /guilds/{id}/channels` (bot): channel objects as documented.
async fn channels(State(w): Shared, headers: HeaderMap, Path(guild): Path<String>) -> Response {
    if !is_bot(&headers) {
        return error(StatusCode::UNAUTHORIZED, "401: Unauthorized");
    }
    let w = w.lock().unwrap();
    let Some(list) = w.channels.get(&guild) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({ "message": "Unknown Guild", "code": 10004 })),
        )
            .into_response();
    };
    Json(
        list.iter()
            .enumerate()
            .map(|(i, (id, name, kind))| {
                json!({ "id": id, "type": kind, "guild_id": guild, "position": i, "permission_overwrites": [],
                        "name": name, "nsfw": false, "parent_id": null, "last_message_id": null, "topic": null,
                        "rate_limit_per_user": 0, "flags": 0 })
            })
            .collect::<Vec<_>>(),
    )
    .into_response()
}

/// `GET /guilds/{id}/roles` (bot): role objects as documented, `@everyone` first.
async fn roles(State(w): Shared, headers: HeaderMap, Path(guild): Path<String>) -> Response {
    if !is_bot(&headers) {
        return error(StatusCode::UNAUTHORIZED, "401: Unauthorized");
    }
    let w = w.lock().unwrap();
    let role = |id: &str, name: &str, position: usize| {
        let color = if position == 0 { 0 } else { 0x5865f2 };
        json!({ "id": id, "name": name, "color": color, "hoist": false, "icon": null,
                "colors": { "primary_color": color, "secondary_color": null, "tertiary_color": null },
                "unicode_emoji": null, "position": position, "permissions": "0", "managed": false,
                "mentionable": false, "flags": 0 })
    };
    let mut list = vec![role(&guild, "@everyone", 0)];
    for (i, (id, name)) in w.roles.get(&guild).into_iter().flatten().enumerate() {
        list.push(role(id, name, i + 1));
    }
    Json(list).into_response()
}

/// `POST /users/@me/channels`: a DM channel whose id is the user's id plus one.
async fn open_dm(State(w): Shared, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    if !is_bot(&headers) {
        return error(StatusCode::UNAUTHORIZED, "401: Unauthorized");
    }
    let mut w = w.lock().unwrap();
    w.seen.push("/api/v10/users/@me/channels".into());
    let user: u64 = body["recipient_id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .or(body["recipient_id"].as_u64())
        .unwrap_or(0);
    w.dm_channels.push(user + 1);
    Json(json!({
        "id": (user + 1).to_string(), "type": 1, "last_message_id": null,
        "recipients": [{ "id": user.to_string(), "username": "member", "discriminator": "0", "avatar": null }]
    }))
    .into_response()
}

/// `POST /channels/{id}/messages` in a DM channel opened above.
async fn send_dm(
    State(w): Shared,
    headers: HeaderMap,
    Path(channel): Path<u64>,
    Json(body): Json<Value>,
) -> Response {
    if !is_bot(&headers) {
        return error(StatusCode::UNAUTHORIZED, "401: Unauthorized");
    }
    let mut w = w.lock().unwrap();
    let content = body["content"].as_str().unwrap_or_default().to_string();
    if !w.dm_channels.contains(&channel) {
        // A server's channel: it must exist.
        let id = channel.to_string();
        if !w.channels.values().flatten().any(|(c, _, _)| *c == id) {
            return (
                StatusCode::NOT_FOUND,
                Json(json!({ "message": "Unknown Channel", "code": 10003 })),
            )
                .into_response();
        }
        let mentions = body["allowed_mentions"].clone();
        w.messages.push((id, content.clone(), mentions));
        return Json(json!({
            "id": "2", "channel_id": channel.to_string(), "content": content,
            "author": { "id": "930000000000000001", "username": "heimdall", "discriminator": "0", "avatar": null, "bot": true },
            "timestamp": "2026-12-02T00:00:00.000000+00:00", "edited_timestamp": null,
            "tts": false, "mention_everyone": false, "mentions": [], "mention_roles": [],
            "attachments": [], "embeds": [], "pinned": false, "type": 0
        }))
        .into_response();
    }
    let user = channel - 1;
    if w.closed_dms.contains(&user) {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({ "message": "Cannot send messages to this user", "code": 50007 })),
        )
            .into_response();
    }
    if content.is_empty() || content.chars().count() > 2000 {
        return error(StatusCode::BAD_REQUEST, "Invalid Form Body");
    }
    w.dms.push((user, content.clone()));
    Json(json!({
        "id": "1", "channel_id": channel.to_string(), "content": content,
        "author": { "id": "930000000000000001", "username": "heimdall", "discriminator": "0", "avatar": null, "bot": true },
        "timestamp": "2026-12-02T00:00:00.000000+00:00", "edited_timestamp": null,
        "tts": false, "mention_everyone": false, "mentions": [], "mention_roles": [],
        "attachments": [], "embeds": [], "pinned": false, "type": 0
    }))
    .into_response()
}

/// A browser's session after logging in: its cookie and CSRF token.
#[derive(Debug, Clone)]
pub struct Browser {
    /// `heimdall_session=...`.
    pub cookie: String,
    /// From `GET /api/auth/me`.
    pub csrf: String,
}

/// A client that does not follow redirects (each hop is checked).
pub fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The `Set-Cookie` headers of a response.
pub fn set_cookies(r: &reqwest::Response) -> Vec<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

/// Logs `user` in through the whole flow, as a browser would, starting at `next`.
pub async fn log_in(app_url: &str, discord: &Discord, user: u64, next: &str) -> (Browser, String) {
    discord.with(|w| w.browser_user = Some(user));
    let http = no_redirects();
    let r = http
        .get(format!("{app_url}/api/auth/login?next={next}"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());
    let state_cookie = set_cookies(&r)[0].split(';').next().unwrap().to_string();
    let to_discord = r.headers()["location"].to_str().unwrap().to_string();
    assert!(to_discord.starts_with(&discord.url), "{to_discord}");
    let r = http.get(&to_discord).send().await.unwrap();
    let back = r.headers()["location"].to_str().unwrap().to_string();
    let r = http
        .get(&back)
        .header("cookie", &state_cookie)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());
    let landing = r.headers()["location"].to_str().unwrap().to_string();
    let cookie = set_cookies(&r)
        .into_iter()
        .find(|c| c.starts_with("heimdall_session=") && !c.starts_with("heimdall_session=;"))
        .unwrap_or_else(|| panic!("no session cookie; landed on {landing}"));
    let cookie = cookie.split(';').next().unwrap().to_string();
    let me: Value = http
        .get(format!("{app_url}/api/auth/me"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let csrf = me["csrfToken"].as_str().unwrap().to_string();
    (Browser { cookie, csrf }, landing)
}
