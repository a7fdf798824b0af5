//! The migration API (owner-only): start, watch, cancel and resume runs over HTTP. Progress
//! goes to owners over the WebSocket gateway; the run record is the truth anyone (owner) can
//! read later.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use heimdall_host::extract::JsonBody;
use heimdall_host::routes::{Access, Routes};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::OwnerSink;
use heimdall_host::auth::AuthUser;
use heimdall_host::context::Data;
use heimdall_host::error::{AppError, UserError};
use heimdall_host::migration::clone::{self, CloneOptions};
use heimdall_host::migration::legacy::engine::{self as legacy, LegacyOptions};
use heimdall_host::migration::runs::RunStore;
use heimdall_host::migration::undo::{self, UndoOptions};
use heimdall_host::migration::{Begun, PendingRun, ProgressSink};

/// Runs executing in this process, with their cancel tokens.
#[derive(Default)]
pub struct DevState {
    running: Mutex<HashMap<String, CancellationToken>>,
}

/// The dev plugin's routes.
pub fn routes(state: Arc<DevState>) -> Routes {
    use Access::Owners;
    Routes::new()
        .get("/api/dev/migrations", Owners, "The latest migration runs", list)
        .post("/api/dev/migrations/clone", Owners, "Plan (dry run) or start an Instance Clone: `{source, sourceDb?, guildId?, dryRun?, overwrite?, sync?, follow?, allowKeyMismatch?}`", start_clone)
        .post("/api/dev/migrations/legacy", Owners, "Plan (dry run) or start a Legacy Import: `{source, sourceDb?, guildId?, modmailCollection?, dryRun?}`", start_legacy)
        .get("/api/dev/migrations/{id}", Owners, "A run's record", status)
        .post("/api/dev/migrations/{id}/cancel", Owners, "Stop a run at its next batch", cancel)
        .post("/api/dev/migrations/{id}/resume", Owners, "Continue a cancelled, failed or interrupted run", resume)
        .post("/api/dev/migrations/{id}/undo", Owners, "Plan (dry run) or start the undo of a run from its journal: `{dryRun?, force?}`", start_undo)
        .get("/api/dev/migrations/{id}/failures", Owners, "A run's failed, skipped or missing records, a page at a time (`?kind=&after=&limit=`)", failures)
        .post("/api/dev/gateway/ping", Owners, "Send test events to the connected owners or a guild room", gateway_ping)
        .wrap(|r| r.layer(Extension(state)))
}

/// Body of `POST /api/dev/migrations/clone` (and what `/migrate clone` asks for).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CloneRequest {
    /// Source connection string.
    pub source: String,
    /// Source database.
    #[serde(default)]
    pub source_db: Option<String>,
    /// Copy only this guild.
    #[serde(default)]
    pub guild_id: Option<String>,
    /// Return the plan only.
    #[serde(default)]
    pub dry_run: bool,
    /// Replace existing documents.
    #[serde(default)]
    pub overwrite: bool,
    /// Catch up: update what changed in the source, list what is gone from it.
    #[serde(default)]
    pub sync: bool,
    /// After the copy, keep applying the source's changes until cancelled.
    #[serde(default)]
    pub follow: bool,
    /// Copy despite a key mismatch.
    #[serde(default)]
    pub allow_key_mismatch: bool,
}

/// Body of `POST /api/dev/migrations/legacy` (and what `/migrate legacy` asks for).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LegacyRequest {
    /// The old bot's connection string.
    pub source: String,
    /// Its database.
    #[serde(default)]
    pub source_db: Option<String>,
    /// Import only this guild.
    #[serde(default)]
    pub guild_id: Option<String>,
    /// The modmail collection's name.
    #[serde(default)]
    pub modmail_collection: Option<String>,
    /// Return the plan only.
    #[serde(default)]
    pub dry_run: bool,
}

/// Body of `POST /api/dev/migrations/{id}/undo` (and what `/migrate undo` asks for).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UndoRequest {
    /// Return the plan only.
    #[serde(default)]
    pub dry_run: bool,
    /// Undo documents changed since the run wrote them too (their changes are lost).
    #[serde(default)]
    pub force: bool,
}

impl UndoRequest {
    /// The engine's options for undoing `run_id`, asked by `started_by`.
    pub fn options(self, run_id: String, started_by: String) -> UndoOptions {
        let mut opts = UndoOptions::new(run_id, started_by);
        opts.dry_run = self.dry_run;
        opts.force = self.force;
        opts
    }
}

impl CloneRequest {
    /// The engine's options for this request, started by `started_by`.
    pub fn options(self, started_by: String) -> CloneOptions {
        let mut opts = CloneOptions::new(self.source, started_by);
        opts.source_db = self.source_db;
        opts.guild = self.guild_id;
        opts.dry_run = self.dry_run;
        opts.overwrite = self.overwrite;
        opts.sync = self.sync;
        opts.follow = self.follow;
        opts.allow_key_mismatch = self.allow_key_mismatch;
        opts
    }
}

impl LegacyRequest {
    /// The engine's options for this request, started by `started_by`.
    pub fn options(self, started_by: String) -> LegacyOptions {
        let mut opts = LegacyOptions::new(self.source, started_by);
        opts.source_db = self.source_db;
        opts.guild = self.guild_id;
        if let Some(m) = self.modmail_collection {
            opts.modmail_collection = m;
        }
        opts.dry_run = self.dry_run;
        opts
    }
}

fn sink(data: &Data) -> Arc<dyn ProgressSink> {
    Arc::new(OwnerSink(data.ws.clone()))
}

/// Where a request's progress goes: the owners' stream for a run; nowhere for a plan (a
/// dry run is answered in the response, and a page showing a run must not switch to it).
fn sink_for(data: &Data, dry_run: bool) -> Arc<dyn ProgressSink> {
    if dry_run {
        Arc::new(heimdall_host::migration::NullSink)
    } else {
        sink(data)
    }
}

/// Runs `pending` in the background, owned by the bot's task tracker; cancelled at shutdown.
fn spawn(
    data: &Data,
    state: &Arc<DevState>,
    pending: PendingRun,
    cancel: CancellationToken,
) -> (StatusCode, Json<Value>) {
    let id = pending.id.clone();
    state
        .running
        .lock()
        .expect("runs lock")
        .insert(id.clone(), cancel);
    let st = state.clone();
    let run_id = id.clone();
    data.tasks.spawn(
        async move {
            match pending.run().await {
                Ok(r) => tracing::info!(
                    status = r.status.as_str(),
                    imported = r.imported(),
                    "migration ended"
                ),
                Err(e) => tracing::error!(error = ?e, "migration ended with an error"),
            }
            st.running.lock().expect("runs lock").remove(&run_id);
        }
        .instrument(tracing::info_span!("migration", run = %id)),
    );
    (
        StatusCode::ACCEPTED,
        Json(
            json!({ "runId": id, "status": "running", "statusUrl": format!("/api/dev/migrations/{id}") }),
        ),
    )
}

async fn start_clone(
    State(data): State<Data>,
    Extension(state): Extension<Arc<DevState>>,
    user: AuthUser,
    JsonBody(req): JsonBody<CloneRequest>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    user.require_owner()?;
    let opts = req.options(format!("api:{}", user.id));
    let dry_run = opts.dry_run;
    let cancel = data.shutdown.child_token();
    let begun = clone::begin(
        &super::migration_env(&data),
        opts,
        sink_for(&data, dry_run),
        cancel.clone(),
    )
    .await?;
    answer(&data, &state, begun, cancel)
}

async fn start_legacy(
    State(data): State<Data>,
    Extension(state): Extension<Arc<DevState>>,
    user: AuthUser,
    JsonBody(req): JsonBody<LegacyRequest>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    user.require_owner()?;
    let opts = req.options(format!("api:{}", user.id));
    let dry_run = opts.dry_run;
    let cancel = data.shutdown.child_token();
    let begun = legacy::begin(
        &super::migration_env(&data),
        opts,
        sink_for(&data, dry_run),
        cancel.clone(),
    )
    .await?;
    answer(&data, &state, begun, cancel)
}

async fn start_undo(
    State(data): State<Data>,
    Extension(state): Extension<Arc<DevState>>,
    user: AuthUser,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<UndoRequest>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    user.require_owner()?;
    let opts = req.options(id, format!("api:{}", user.id));
    let dry_run = opts.dry_run;
    let cancel = data.shutdown.child_token();
    let begun = undo::begin(
        &super::migration_env(&data),
        opts,
        sink_for(&data, dry_run),
        cancel.clone(),
    )
    .await?;
    answer(&data, &state, begun, cancel)
}

/// A dry run's plan (200), or the run started in the background (202).
fn answer<P: serde::Serialize>(
    data: &Data,
    state: &Arc<DevState>,
    begun: Begun<P>,
    cancel: CancellationToken,
) -> Result<(StatusCode, Json<Value>), AppError> {
    match begun {
        Begun::Plan(p) => Ok((StatusCode::OK, Json(serde_json::to_value(p)?))),
        Begun::Run(r) => Ok(spawn(data, state, r, cancel)),
    }
}

async fn list(State(data): State<Data>, user: AuthUser) -> Result<Json<Value>, AppError> {
    user.require_owner()?;
    let runs = RunStore::new(&data.db).list(50).await?;
    Ok(Json(Value::Array(
        runs.iter().map(|r| r.to_json()).collect(),
    )))
}

async fn status(
    State(data): State<Data>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    user.require_owner()?;
    let store = RunStore::new(&data.db);
    let record = store.require(&id).await?;
    let mut v = record.to_json();
    v["active"] = Value::Bool(
        store
            .active_lease()
            .await?
            .is_some_and(|l| l.get_str("runId") == Ok(id.as_str())),
    );
    Ok(Json(v))
}

async fn cancel(
    State(data): State<Data>,
    Extension(state): Extension<Arc<DevState>>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    user.require_owner()?;
    RunStore::new(&data.db).request_cancel(&id).await?;
    if let Some(t) = state.running.lock().expect("runs lock").get(&id) {
        t.cancel();
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "runId": id, "status": "cancelling" })),
    ))
}

async fn resume(
    State(data): State<Data>,
    Extension(state): Extension<Arc<DevState>>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    user.require_owner()?;
    let cancel = data.shutdown.child_token();
    let pending = heimdall_host::migration::begin_resume(
        &super::migration_env(&data),
        &id,
        None,
        sink(&data),
        cancel.clone(),
    )
    .await?;
    Ok(spawn(&data, &state, pending, cancel))
}

/// Query of `GET /api/dev/migrations/{id}/failures`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FailuresQuery {
    /// `error` (default), `skip` or `missing`.
    #[serde(default)]
    pub kind: Option<String>,
    /// The `next` cursor of the previous page.
    #[serde(default)]
    pub after: Option<String>,
    /// Records per page (1 to 1000, default 100).
    #[serde(default)]
    pub limit: Option<i64>,
}

/// Every failed (or skipped, or missing) record of a run, page by page: the run record
/// keeps only the first ones.
async fn failures(
    State(data): State<Data>,
    user: AuthUser,
    Path(id): Path<String>,
    query: Result<axum::extract::Query<FailuresQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, AppError> {
    use heimdall_host::migration::runs::FailureKind;
    user.require_owner()?;
    let axum::extract::Query(q) = query.map_err(|e| {
        UserError::bad_request(
            "invalid_query",
            format!("the query is not valid: {}; use kind=error|skip|missing, after=CURSOR, limit=1..1000", e.body_text()),
        )
    })?;
    let kind = match q.kind.as_deref().unwrap_or("error") {
        "error" => FailureKind::Error,
        "skip" => FailureKind::Skip,
        "missing" => FailureKind::Missing,
        other => {
            return Err(UserError::bad_request(
                "invalid_kind",
                format!("kind {other:?} is not one of error, skip, missing"),
            )
            .into())
        }
    };
    let store = RunStore::new(&data.db);
    store.require(&id).await?;
    let (items, next) = store
        .failures(&id, kind, q.after.as_deref(), q.limit.unwrap_or(100))
        .await?;
    let total = store.failure_count(&id, kind).await?;
    Ok(Json(
        json!({ "runId": id, "kind": kind, "total": total, "items": items, "next": next }),
    ))
}

/// Body of `POST /api/dev/gateway/ping`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PingRequest {
    /// How many `dev:ping` events (1 to 100,000).
    #[serde(default = "one")]
    pub count: u32,
    /// Pause between events, in milliseconds.
    #[serde(default)]
    pub interval_ms: u64,
    /// Padding bytes per event (at most 64 KiB).
    #[serde(default)]
    pub padding: usize,
    /// Send to this guild's room instead of the owners.
    #[serde(default)]
    pub guild_id: Option<String>,
}

fn one() -> u32 {
    1
}

/// Sends test events to every connected owner, or to one guild's room: `{i, sentAtUs}`
/// (checks a live connection; the gateway benchmark measures latency with it).
async fn gateway_ping(
    State(data): State<Data>,
    user: AuthUser,
    JsonBody(req): JsonBody<PingRequest>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    user.require_owner()?;
    if req.count == 0 || req.count > 100_000 || req.padding > 65_536 {
        return Err(UserError::bad_request(
            "invalid_ping",
            "count must be 1 to 100000 and padding at most 65536",
        )
        .into());
    }
    if let Some(g) = &req.guild_id {
        heimdall_host::ids::parse_guild(g).map_err(|_| {
            UserError::bad_request(
                "invalid_guild",
                "guildId must be a Discord guild id (digits)",
            )
        })?;
    }
    let ws = data.ws.clone();
    let stop = data.shutdown.clone();
    data.tasks.spawn(async move {
        let pad = "x".repeat(req.padding);
        for i in 0..req.count {
            if stop.is_cancelled() {
                return;
            }
            let us = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_micros() as u64)
                .unwrap_or(0);
            let event = json!({ "i": i, "sentAtUs": us, "pad": pad });
            match &req.guild_id {
                Some(g) => ws.broadcast_to_guild(g, "dev:ping", event),
                None => ws.broadcast_to_owners("dev:ping", event),
            }
            if req.interval_ms > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(req.interval_ms)).await;
            } else if i % 64 == 63 {
                tokio::task::yield_now().await;
            }
        }
    });
    Ok((StatusCode::ACCEPTED, Json(json!({ "count": req.count }))))
}
