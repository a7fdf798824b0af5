//! The HTTP API: health, the plugin catalog, every plugin's routes, and the dashboard.
//!
//! Errors answer `{code, message}` (see [`AppError`]).

use std::path::PathBuf;

use axum::extract::{Path, State};
use axum::http::{Request, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use mongodb::bson::doc;
use serde::Serialize;
use tower_http::services::{ServeDir, ServeFile};
use tower_http::trace::TraceLayer;

use crate::context::Data;
use crate::error::{AppError, UserError, UserErrorKind};

/// The full router: `/api/...` plus the dashboard's static files.
pub fn router(data: Data) -> Router {
    let mut api = Router::new()
        .route("/api/health", get(health))
        .route("/api/plugins", get(plugins))
        .route("/api/auth/logout", axum::routing::post(logout))
        .route("/api/auth/revoke/{user}", axum::routing::post(revoke));
    for p in data.registry.plugins() {
        api = api.merge(p.routes());
    }
    let api = api.route("/api/{*rest}", axum::routing::any(api_not_found));
    let api = match dashboard_dir() {
        // Development: the files as they are on disk, edited without a rebuild.
        Some(dir) => {
            let index = dir.join("index.html");
            api.fallback_service(ServeDir::new(&dir).fallback(ServeFile::new(index)))
        }
        None => api.fallback(embedded),
    };
    api.layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                tracing::info_span!("api", method = %req.method(), path = %req.uri().path())
            }),
        )
        .with_state(data)
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
    ([(axum::http::header::CONTENT_TYPE, kind)], body).into_response()
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

/// `POST /api/auth/logout`: signs out every session token of the caller issued until now
/// (this one included). 204.
async fn logout(
    State(data): State<Data>,
    user: crate::auth::AuthUser,
) -> Result<StatusCode, AppError> {
    policy(&data)?.revoke_sessions(user.id).await?;
    let closed = data.ws.sign_out(user.id);
    tracing::info!(user = user.id, closed, "sessions signed out");
    Ok(StatusCode::NO_CONTENT)
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
