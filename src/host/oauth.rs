//! "Log in with Discord": Discord's OAuth2 authorization-code flow (scopes `identify guilds`)
//! ending in the dashboard's session cookie.
//!
//! 1. `GET /api/auth/login?next=/path` sends the browser to Discord's authorize page with a
//!    random `state`, kept in a short-lived HttpOnly cookie.
//! 2. Discord sends it back to `GET /api/auth/callback?code&state`: the state must match the
//!    cookie; the code is exchanged for an access token, which reads the user and their
//!    servers (with their permissions) once. The servers are handed to the access policy
//!    ([`AccessPolicy::remember_login`](crate::plugin::AccessPolicy::remember_login)); the
//!    access token is not kept.
//! 3. The browser gets [`SESSION_COOKIE`]: a session token (as `heimdall token` mints, plus a
//!    CSRF token and the user's name) that only the server can read.
//!
//! Every Discord call goes to `DISCORD_API_PROXY` when set (a local stand-in in the tests).

use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::auth::{AuthUser, Claims, SESSION_COOKIE};
use crate::context::Data;
use crate::error::{AppError, UserError, UserErrorKind};
use crate::plugin::LoginGuild;

/// The cookie holding the login's `state` and where to go after it.
const STATE_COOKIE: &str = "heimdall_oauth";
/// How long a dashboard session lasts (at most `AUTH_MAX_TTL`).
pub const SESSION_TTL: Duration = Duration::from_secs(7 * 86_400);
/// How long the browser may spend on Discord's authorize page.
const LOGIN_TTL: Duration = Duration::from_secs(600);

/// Discord's OAuth2 client settings, when all are configured.
struct Client {
    base: String,
    client_id: u64,
    secret: String,
    redirect: String,
    auth_secret: String,
    secure: bool,
}

fn client(data: &Data) -> Result<Client, AppError> {
    let c = &data.config;
    match (
        c.discord_client_id,
        &c.discord_client_secret,
        &c.dashboard_url,
        &c.auth_secret,
    ) {
        (Some(id), Some(secret), Some(url), Some(auth)) => Ok(Client {
            base: c
                .discord_api_proxy
                .clone()
                .unwrap_or_else(|| "https://discord.com".into())
                .trim_end_matches('/')
                .to_string(),
            client_id: id,
            secret: secret.expose().to_string(),
            redirect: format!("{url}/api/auth/callback"),
            auth_secret: auth.expose().to_string(),
            secure: url.starts_with("https://"),
        }),
        _ => Err(UserError::new(
            UserErrorKind::Unavailable,
            "login_not_configured",
            "Log in with Discord is not set up on this bot: its operator sets DISCORD_CLIENT_ID, DISCORD_CLIENT_SECRET, DASHBOARD_URL and AUTH_SECRET",
        )
        .into()),
    }
}

/// A `Set-Cookie` value.
fn set_cookie(name: &str, value: &str, path: &str, max_age: Duration, secure: bool) -> String {
    format!(
        "{name}={value}; Path={path}; Max-Age={}; HttpOnly; SameSite=Lax{}",
        max_age.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` that ends the dashboard session in this browser.
pub fn clear_session_cookie(data: &Data) -> String {
    let secure = data
        .config
        .dashboard_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"));
    set_cookie(SESSION_COOKIE, "", "/", Duration::ZERO, secure)
}

/// A local path to return to after logging in (anything else: `/`).
fn local_path(next: Option<&str>) -> String {
    match next {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.contains(['\\', '\r', '\n'])
                && p.len() <= 512 =>
        {
            p.to_string()
        }
        _ => "/".into(),
    }
}

fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut b = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// `?next=` of `GET /api/auth/login`.
#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

/// `GET /api/auth/login`: to Discord's authorize page.
pub async fn login(
    State(data): State<Data>,
    Query(q): Query<LoginQuery>,
) -> Result<Response, AppError> {
    let c = client(&data)?;
    let state = random_hex(16);
    let next = local_path(q.next.as_deref());
    let url = format!(
        "{}/oauth2/authorize?response_type=code&client_id={}&scope=identify%20guilds&state={state}&redirect_uri={}&prompt=none",
        c.base,
        c.client_id,
        encode(&c.redirect),
    );
    let cookie = set_cookie(
        STATE_COOKIE,
        &format!("{state}.{}", hex::encode(next.as_bytes())),
        "/api/auth",
        LOGIN_TTL,
        c.secure,
    );
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to(&url)).into_response())
}

/// Percent-encodes a query parameter value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// What Discord sends the browser back with.
#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// Where a failed login lands: the app's login page, told why.
fn failed(code: &str) -> Response {
    Redirect::to(&format!("/login?error={code}")).into_response()
}

/// `GET /api/auth/callback`: checks the state, exchanges the code, reads the user and their
/// servers, sets the session cookie and returns to where the login started.
pub async fn callback(
    State(data): State<Data>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let c = match client(&data) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let saved = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .find_map(|h| crate::auth::cookie(h, STATE_COOKIE))
        .and_then(|v| v.split_once('.'))
        .map(|(s, n)| (s.to_string(), n.to_string()));
    let clear_state = set_cookie(STATE_COOKIE, "", "/api/auth", Duration::ZERO, c.secure);
    if q.error.is_some() {
        // The user pressed "Cancel" on Discord's page.
        return ([(header::SET_COOKIE, clear_state)], failed("cancelled")).into_response();
    }
    let (Some(code), Some(state), Some((expected, next))) = (q.code, q.state, saved) else {
        return ([(header::SET_COOKIE, clear_state)], failed("state")).into_response();
    };
    if state.len() != expected.len() || state != expected {
        tracing::warn!("login refused: state does not match the browser's");
        return ([(header::SET_COOKIE, clear_state)], failed("state")).into_response();
    }
    let next = hex::decode(next)
        .ok()
        .and_then(|b| String::from_utf8(b).ok());
    let next = local_path(next.as_deref());
    match finish_login(&data, &c, &code).await {
        Ok(claims) => {
            let token = crate::auth::encode(&c.auth_secret, &claims);
            let ttl = Duration::from_secs(claims.exp - claims.iat);
            let session = set_cookie(SESSION_COOKIE, &token, "/", ttl, c.secure);
            let mut r = Redirect::to(&next).into_response();
            r.headers_mut()
                .append(header::SET_COOKIE, session.parse().expect("cookie header"));
            r.headers_mut().append(
                header::SET_COOKIE,
                clear_state.parse().expect("cookie header"),
            );
            r
        }
        Err(e) => {
            tracing::warn!(error = ?e, "login with Discord failed");
            ([(header::SET_COOKIE, clear_state)], failed("discord")).into_response()
        }
    }
}

/// Discord's token answer.
#[derive(Debug, Deserialize)]
struct TokenAnswer {
    access_token: String,
}

/// `GET /users/@me`.
#[derive(Debug, Deserialize)]
struct DiscordUser {
    id: String,
    username: String,
    #[serde(default)]
    global_name: Option<String>,
    #[serde(default)]
    avatar: Option<String>,
    #[serde(default)]
    locale: Option<String>,
}

async fn finish_login(data: &Data, c: &Client, code: &str) -> anyhow::Result<Claims> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()?;
    let token: TokenAnswer = http
        .post(format!("{}/api/v10/oauth2/token", c.base))
        .basic_auth(c.client_id, Some(&c.secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &c.redirect),
        ])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let get = |path: &str| {
        http.get(format!("{}/api/v10{path}", c.base))
            .bearer_auth(&token.access_token)
            .send()
    };
    let user: DiscordUser = get("/users/@me").await?.error_for_status()?.json().await?;
    let guilds: Vec<LoginGuild> = get("/users/@me/guilds")
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id: u64 = user
        .id
        .parse()
        .map_err(|_| anyhow::anyhow!("Discord answered a user id that is not a snowflake"))?;
    if let Some(access) = data.access() {
        access.remember_login(id, &guilds).await?;
    }
    tracing::info!(user = id, guilds = guilds.len(), "logged in with Discord");
    let iat = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let ttl = SESSION_TTL.min(data.config.auth_max_ttl);
    Ok(Claims {
        sub: user.id,
        iat,
        exp: iat + ttl.as_secs(),
        csrf: Some(random_hex(16)),
        name: Some(user.global_name.unwrap_or(user.username)),
        avatar: user.avatar,
        locale: user.locale.filter(|l| l.len() <= 16),
    })
}

/// `GET /api/auth/me`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Me {
    /// Discord user id.
    pub user_id: String,
    /// Display name (cookie sessions).
    pub name: Option<String>,
    /// Avatar hash.
    pub avatar: Option<String>,
    /// Whether the user owns the bot.
    pub owner: bool,
    /// The user's Discord language, when known.
    pub locale: Option<String>,
    /// What state-changing requests send in `X-CSRF-Token` (cookie sessions).
    pub csrf_token: Option<String>,
    /// Whether Log in with Discord is set up.
    pub login: bool,
}

/// `GET /api/auth/me`: who is logged in.
pub async fn me(State(data): State<Data>, user: AuthUser) -> Json<Me> {
    Json(Me {
        user_id: user.id.to_string(),
        name: user.claims.name.clone(),
        avatar: user.claims.avatar.clone(),
        locale: user.claims.locale.clone(),
        owner: user.owner,
        csrf_token: user.claims.csrf.clone(),
        login: client(&data).is_ok(),
    })
}

/// `GET /api/auth/config`: whether Log in with Discord is available (no session needed).
pub async fn config(State(data): State<Data>) -> impl IntoResponse {
    (
        StatusCode::OK,
        Json(serde_json::json!({ "login": client(&data).is_ok() })),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_returned_to() {
        assert_eq!(local_path(Some("/guilds/1")), "/guilds/1");
        for bad in ["//evil.example", "https://evil.example", "/\\evil", "x"] {
            assert_eq!(local_path(Some(bad)), "/", "{bad}");
        }
        assert_eq!(local_path(None), "/");
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(
            encode("http://a.b/api/auth/callback"),
            "http%3A%2F%2Fa.b%2Fapi%2Fauth%2Fcallback"
        );
    }
}
