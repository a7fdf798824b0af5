//! The HTTP API: health, the plugin catalog, every plugin's routes, and the dashboard.
//!
//! Errors answer `{code, message}` (see [`AppError`]).

use std::path::PathBuf;

use axum::extract::{Path, State};
use axum::http::{Request, StatusCode};
use axum::{Json, Router};
use mongodb::bson::doc;
use serde::Serialize;
use tower_http::services::{ServeDir, ServeFile};
use tower_http::trace::TraceLayer;

use crate::context::Data;
use crate::error::{AppError, UserError, UserErrorKind};
use crate::routes::{Access, RouteDoc, Routes};

/// Every route of the API, described (the host's, then each plugin's, then `/ws` when the
/// gateway runs).
pub fn routes(data: &Data, gateway: Option<crate::gateway::Gateway>) -> Routes {
    use crate::settings_routes::{get_config, put_config};
    use Access::*;
    let mut r = Routes::new()
        .get(
            "/api/health",
            Anyone,
            "Status, version, whether Discord is on, plugins, the gateway's port",
            health,
        )
        .get(
            "/api/plugins",
            Anyone,
            "The plugins with their collections and clone steps",
            plugins,
        )
        .get(
            "/api/auth/login",
            Anyone,
            "To Discord's authorize page (Log in with Discord); `?next=/path` to come back to",
            crate::oauth::login,
        )
        .get(
            "/api/auth/callback",
            Anyone,
            "Where Discord sends the browser back: sets the session cookie",
            crate::oauth::callback,
        )
        .get(
            "/api/auth/config",
            Anyone,
            "Whether Log in with Discord is set up",
            crate::oauth::config,
        )
        .get(
            "/api/auth/me",
            SignedIn,
            "Who is logged in, and the session's CSRF token",
            crate::oauth::me,
        )
        .post(
            "/api/auth/logout",
            SignedIn,
            "Sign out everywhere: every session of the caller, and this browser's cookie",
            logout,
        )
        .post(
            "/api/auth/revoke/{user}",
            Owners,
            "Sign out every session of a user",
            revoke,
        )
        .get(
            "/api/guilds",
            SignedIn,
            "The server picker: the servers the caller may open",
            guilds,
        )
        .get(
            "/api/guilds/{guild}",
            GuildStaff,
            "A server's plugins, with which have settings",
            guild,
        )
        .get(
            "/api/guilds/{guild}/discord",
            GuildStaff,
            "The server's channels and roles, for the pickers",
            lookups,
        )
        .get(
            "/api/guilds/{guild}/{plugin}/config",
            GuildStaff,
            "A plugin's settings: `{fields, values}`",
            get_config,
        )
        .put(
            "/api/guilds/{guild}/{plugin}/config",
            GuildStaff,
            "Change a plugin's settings (`null` clears one)",
            put_config,
        );
    for p in data.registry.plugins() {
        r = r.merge(p.routes(), p.name());
    }
    if let Some(gw) = gateway {
        r = r.get(
            "/ws",
            SignedIn,
            "The WebSocket gateway (an upgrade): see docs/websocket.md",
            move |req: Request<axum::body::Body>| websocket(gw.clone(), req),
        );
    }
    r
}

/// The full router: the API's routes, `/api/openapi.json` describing them, and the
/// dashboard's static files.
pub fn router(data: Data, gateway: Option<crate::gateway::Gateway>) -> Router {
    let routes = routes(&data, gateway);
    let spec_route = RouteDoc {
        method: "GET",
        path: "/api/openapi.json",
        summary: "This description of the API (OpenAPI 3.1)",
        access: Access::Anyone,
        owner: "host",
    };
    let mut docs = routes.docs().to_vec();
    docs.push(spec_route.clone());
    let spec = std::sync::Arc::new(crate::routes::openapi(&docs));
    let (api, _) = routes
        .get(
            spec_route.path,
            spec_route.access,
            spec_route.summary,
            move || {
                let spec = spec.clone();
                async move { Json((*spec).clone()) }
            },
        )
        .into_parts();
    let api = api.route("/api/{*rest}", axum::routing::any(api_not_found));
    let api = match dashboard_dir() {
        // Development: the files as they are on disk, edited without a rebuild.
        Some(dir) => {
            let index = dir.join("index.html");
            api.fallback_service(ServeDir::new(&dir).fallback(ServeFile::new(index)))
        }
        None => api.fallback(embedded),
    };
    api.layer(axum::middleware::map_response(harden))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                tracing::info_span!("api", method = %req.method(), path = %req.uri().path())
            }),
        )
        .with_state(data)
}

/// The Content-Security-Policy of every answer: scripts, styles and connections from this
/// origin only (the gateway is `/ws` here), Discord's CDN for avatars and icons, no framing.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https://cdn.discordapp.com; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'";

/// Adds the security headers to every answer, and turns the framework's plain-text
/// rejections (a path id that is not a number, a bad query string, a wrong method) into
/// `{code, message}` without the parser's words.
async fn harden(mut r: axum::response::Response) -> axum::response::Response {
    use axum::http::{header, HeaderValue};
    use axum::response::IntoResponse;
    let plain = r
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    let status = r.status();
    if plain && status.is_client_error() {
        let (code, message) = match status {
            StatusCode::METHOD_NOT_ALLOWED => (
                "method_not_allowed",
                "this endpoint does not take that method; see the API table in the README",
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => (
                "unsupported_media_type",
                "send the body as JSON, with `Content-Type: application/json`",
            ),
            StatusCode::PAYLOAD_TOO_LARGE => (
                "body_too_large",
                "the request body is larger than the API accepts (2 MB)",
            ),
            _ => (
                "invalid_request",
                "the request's path or query is not valid: ids are numbers, and parameters are spelled as the README's API table shows",
            ),
        };
        let body = crate::error::ErrorBody {
            code: code.into(),
            message: message.into(),
        };
        let mut fresh = (status, Json(body)).into_response();
        std::mem::swap(fresh.headers_mut(), r.headers_mut());
        fresh.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        fresh.headers_mut().remove(header::CONTENT_LENGTH);
        r = fresh;
    }
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    r
}

/// The dashboard built into the binary (`dashboard/public` when it was compiled).
pub mod dashboard {
    include!(concat!(env!("OUT_DIR"), "/dashboard_files.rs"));

    /// The contents of the file at URL `path`.
    pub fn file(path: &str) -> Option<&'static [u8]> {
        FILES.iter().find(|(p, _)| *p == path).map(|(_, b)| *b)
    }
}

/// `HEIMDALL_DASHBOARD_DIR`: serve the dashboard from this directory instead of the copy
/// built into the binary (for working on it without rebuilding).
pub fn dashboard_dir() -> Option<PathBuf> {
    std::env::var("HEIMDALL_DASHBOARD_DIR")
        .ok()
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
}

/// Serves the embedded dashboard: the file at the path, else `index.html` (the page
/// decides), with its content type.
async fn embedded(uri: axum::http::Uri) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path = match uri.path() {
        "/" => "/index.html",
        p => p,
    };
    let (path, body) = match dashboard::file(path) {
        Some(b) => (path, b),
        None => match dashboard::file("/index.html") {
            Some(b) => ("/index.html", b),
            None => return StatusCode::NOT_FOUND.into_response(),
        },
    };
    let kind = match path.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        _ => "application/octet-stream",
    };
    // Built assets carry a hash in their name: cached for good. Pages: asked again each time.
    let cache = if path.starts_with("/assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    (
        [
            (axum::http::header::CONTENT_TYPE, kind),
            (axum::http::header::CACHE_CONTROL, cache),
        ],
        body,
    )
        .into_response()
}

/// `GET /ws`: the gateway on the API's port (one origin for a reverse proxy). Checks the
/// handshake and the origin, admits the connection against the gateway's limits, answers
/// `101` and hands the socket (and its session cookie) to the gateway.
async fn websocket(
    gw: crate::gateway::Gateway,
    mut req: Request<axum::body::Body>,
) -> axum::response::Response {
    use axum::http::header;
    use axum::response::IntoResponse;
    let headers = req.headers();
    let text = |h: header::HeaderName| headers.get(h).and_then(|v| v.to_str().ok());
    let upgrade = text(header::UPGRADE).is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    let key = headers.get(header::SEC_WEBSOCKET_KEY).cloned();
    let (true, Some(key), Some("13")) = (upgrade, key, text(header::SEC_WEBSOCKET_VERSION)) else {
        return (
            StatusCode::UPGRADE_REQUIRED,
            [(header::SEC_WEBSOCKET_VERSION, "13")],
            AppError::from(UserError::bad_request(
                "websocket_expected",
                "/ws is the live-update gateway: connect with a WebSocket client (version 13)",
            )),
        )
            .into_response();
    };
    let origin = text(header::ORIGIN);
    if !gw.origin_allowed(origin) {
        return AppError::from(UserError::new(
            UserErrorKind::Forbidden,
            "origin_not_allowed",
            format!(
                "origin {} is not allowed; add it to DASHBOARD_ORIGINS",
                origin.unwrap_or_default()
            ),
        ))
        .into_response();
    }
    let cookie = text(header::COOKIE).map(String::from);
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    let ticket = match gw.admit(peer) {
        Ok(t) => t,
        Err(why) => {
            // Said as the gateway's own port says it (`heimdall_base::net::refuse`).
            let (status, _, message) = why.answer();
            let body = crate::error::ErrorBody {
                code: heimdall_base::net::REFUSAL_CODE.into(),
                message: message.into(),
            };
            let status = StatusCode::from_u16(status).expect("a valid status");
            return (status, [(header::RETRY_AFTER, "5")], Json(body)).into_response();
        }
    };
    let Some(on) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
        return StatusCode::UPGRADE_REQUIRED.into_response();
    };
    gw.spawn_upgraded(
        async move { Ok(hyper_util::rt::TokioIo::new(on.await?)) },
        ticket,
        cookie,
    );
    (
        StatusCode::SWITCHING_PROTOCOLS,
        [
            (header::UPGRADE, "websocket".to_string()),
            (header::CONNECTION, "Upgrade".to_string()),
            (
                header::SEC_WEBSOCKET_ACCEPT,
                crate::gateway::server::accept_key(key.as_bytes()),
            ),
        ],
    )
        .into_response()
}

/// `GET /api/guilds/{guild}`: what the dashboard shows of a server.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GuildPage {
    /// Guild snowflake.
    pub id: String,
    /// The plugins, each with its dashboard page.
    pub plugins: Vec<GuildPlugin>,
}

/// One plugin on a server's dashboard.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GuildPlugin {
    /// Name.
    pub name: &'static str,
    /// What it does.
    pub description: &'static str,
    /// Whether it has per-server settings (`GET .../{plugin}/config`).
    pub settings: bool,
}

async fn guild(
    State(data): State<Data>,
    user: crate::auth::AuthUser,
    Path(guild): Path<String>,
) -> Result<Json<GuildPage>, AppError> {
    user.require_guild(&data, &guild).await?;
    Ok(Json(GuildPage {
        id: guild,
        plugins: data
            .registry
            .plugins()
            .iter()
            .map(|p| GuildPlugin {
                name: p.name(),
                description: p.description(),
                settings: p.config().is_some(),
            })
            .collect(),
    }))
}

/// `GET /api/guilds/{guildId}/discord`: the server's channels and roles, for the pickers
/// (`{channels: [], roles: [], discord: false}` without Discord).
async fn lookups(
    State(data): State<Data>,
    user: crate::auth::AuthUser,
    Path(guild): Path<String>,
) -> Result<Json<serde_json::Value>, AppError> {
    user.require_guild(&data, &guild).await?;
    Ok(Json(
        match data.lookups.server(data.discord.as_deref(), &guild).await? {
            Some(s) => {
                serde_json::json!({ "discord": true, "channels": s.channels, "roles": s.roles })
            }
            None => serde_json::json!({ "discord": false, "channels": [], "roles": [] }),
        },
    ))
}

/// `GET /api/health` answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// `ok` when the database answers.
    pub status: &'static str,
    /// Heimdall's version.
    pub version: &'static str,
    /// Whether the Discord connection is configured.
    pub discord: bool,
    /// Registered plugins.
    pub plugins: Vec<&'static str>,
    /// The WebSocket gateway's port (on this host).
    pub gateway_port: u16,
}

async fn health(State(data): State<Data>) -> Result<Json<Health>, AppError> {
    data.db.run_command(doc! { "ping": 1 }).await.map_err(|e| {
        tracing::warn!(error = %e, "health: database ping failed");
        UserError::new(
            UserErrorKind::Unavailable,
            "database_unreachable",
            "the database does not answer",
        )
    })?;
    Ok(Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        discord: data.config.discord_token.is_some(),
        plugins: data.registry.plugin_names(),
        gateway_port: data.gateway_port,
    }))
}

/// One plugin in `GET /api/plugins`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginInfo {
    /// Name.
    pub name: &'static str,
    /// What it does.
    pub description: &'static str,
    /// Its collections.
    pub collections: Vec<&'static str>,
    /// Its clone steps as `(order, label)`.
    pub clone_steps: Vec<(u16, &'static str)>,
}

async fn plugins(State(data): State<Data>) -> Json<Vec<PluginInfo>> {
    let reg = &data.registry;
    Json(
        reg.plugins()
            .iter()
            .map(|p| PluginInfo {
                name: p.name(),
                description: p.description(),
                collections: reg
                    .collections()
                    .iter()
                    .filter(|c| c.plugin == p.name())
                    .map(|c| c.spec.name)
                    .collect(),
                clone_steps: reg
                    .clone_steps()
                    .iter()
                    .filter(|s| s.plugin == p.name())
                    .map(|s| (s.spec.order, s.spec.label))
                    .collect(),
            })
            .collect(),
    )
}

async fn api_not_found(req: Request<axum::body::Body>) -> (StatusCode, AppError) {
    (
        StatusCode::NOT_FOUND,
        UserError::new(
            UserErrorKind::NotFound,
            "not_found",
            format!("no API endpoint {} {}", req.method(), req.uri().path()),
        )
        .into(),
    )
}

fn policy(data: &Data) -> Result<&std::sync::Arc<dyn crate::plugin::AccessPolicy>, AppError> {
    data.access().ok_or_else(|| {
        UserError::new(
            UserErrorKind::Unavailable,
            "no_access_policy",
            "no plugin manages dashboard sessions, so none can be signed out",
        )
        .into()
    })
}

/// `POST /api/auth/logout`: signs out every session of the caller issued until now (this
/// one included, in every browser and tab, and their live connections), and clears this
/// browser's cookie. 204.
async fn logout(
    State(data): State<Data>,
    user: crate::auth::AuthUser,
) -> Result<axum::response::Response, AppError> {
    use axum::response::IntoResponse;
    policy(&data)?.revoke_sessions(user.id).await?;
    let closed = data.ws.sign_out(user.id);
    tracing::info!(user = user.id, closed, "sessions signed out");
    Ok((
        StatusCode::NO_CONTENT,
        [(
            axum::http::header::SET_COOKIE,
            crate::oauth::clear_session_cookie(&data),
        )],
    )
        .into_response())
}

/// `GET /api/guilds`: the servers the caller may open on the dashboard (owners: every
/// server the bot is in).
async fn guilds(
    State(data): State<Data>,
    user: crate::auth::AuthUser,
) -> Result<Json<Vec<crate::plugin::GuildSummary>>, AppError> {
    let list = match data.access() {
        Some(a) => a.picker(user.id, user.owner).await?,
        None => Vec::new(),
    };
    Ok(Json(list))
}

/// `POST /api/auth/revoke/{user}` (owners): signs out every session token of `user`, e.g.
/// one that leaked. 204.
async fn revoke(
    State(data): State<Data>,
    caller: crate::auth::AuthUser,
    Path(user): Path<String>,
) -> Result<StatusCode, AppError> {
    caller.require_owner()?;
    let target: u64 = user.parse().map_err(|_| {
        UserError::bad_request(
            "invalid_user_id",
            format!("{user:?} is not a Discord user id (a snowflake: digits only)"),
        )
    })?;
    policy(&data)?.revoke_sessions(target).await?;
    let closed = data.ws.sign_out(target);
    tracing::info!(user = target, by = caller.id, closed, "sessions revoked");
    Ok(StatusCode::NO_CONTENT)
}
