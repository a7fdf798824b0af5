//! MongoDB connection and the indexes every plugin declares.

use std::time::Duration;

use anyhow::Context as _;
use mongodb::bson::{doc, Document};
use mongodb::options::{ClientOptions, IndexOptions};
use mongodb::{Client, Database, IndexModel};

use crate::catalog::{Catalog, CollectionSpec};
use crate::error::{UserError, UserErrorKind};
use crate::secret::{redact_uri, scrub};

/// How long [`close`] waits for the driver to stop.
pub const CLOSE_WITHIN: Duration = Duration::from_secs(5);

/// Closes `client` now: its sessions ended and its connections closed before the caller
/// goes on. Without it, the last handle's drop leaves that to a task of the driver's own,
/// and a process that exits while that task runs panics in the driver (mongodb 3.9,
/// `connection_requester.rs`: its connection pool stopped under it). Other handles to the
/// client fail from then on.
///
/// Waits at most [`CLOSE_WITHIN`]: the driver's shutdown waits for every operation still
/// using a connection and for the server's answer to `endSessions`, and a process must
/// still end when the server does not answer (then the driver's tasks are left as they
/// were before this existed, and a warning says so).
pub async fn close(client: Client) {
    if tokio::time::timeout(CLOSE_WITHIN, client.shutdown().immediate(true))
        .await
        .is_err()
    {
        tracing::warn!(
            within_secs = CLOSE_WITHIN.as_secs(),
            "the MongoDB client did not close in time; leaving it to the driver"
        );
    }
}

/// Connects to `uri` and checks the server answers within `timeout`.
///
/// An unreachable server or a malformed URI is a [`UserError`] naming the (redacted) URI.
pub async fn connect(uri: &str, timeout: Duration) -> anyhow::Result<Client> {
    let mut opts = ClientOptions::parse(uri).await.map_err(|e| {
        UserError::bad_request(
            "invalid_uri",
            format!(
                "{} is not a valid MongoDB connection string: {}",
                redact_uri(uri),
                scrub(&e.to_string(), uri)
            ),
        )
    })?;
    opts.server_selection_timeout = Some(timeout);
    opts.connect_timeout = Some(timeout);
    opts.app_name = Some("heimdall".into());
    let client = Client::with_options(opts).context("building MongoDB client")?;
    client
        .database("admin")
        .run_command(doc! { "ping": 1 })
        .await
        .map_err(|e| {
            UserError::new(
                UserErrorKind::Unavailable,
                "database_unreachable",
                format!(
                    "cannot reach MongoDB at {} within {}s: {}. Check that the server is running and the address is right.",
                    redact_uri(uri),
                    timeout.as_secs(),
                    scrub(&first_line(&e.to_string()), uri)
                ),
            )
        })?;
    Ok(client)
}

/// Whether `e` is a duplicate-key error (code 11000): a unique index refused the write.
pub fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    match e.kind.as_ref() {
        mongodb::error::ErrorKind::Write(mongodb::error::WriteFailure::WriteError(w)) => {
            w.code == 11000
        }
        mongodb::error::ErrorKind::InsertMany(im) => im
            .write_errors
            .as_ref()
            .is_some_and(|ws| ws.iter().all(|w| w.code == 11000)),
        mongodb::error::ErrorKind::Command(c) => c.code == 11000,
        _ => false,
    }
}

/// A driver error during a migration or a request, said the way an owner can act on it.
pub fn describe_db_error(e: &mongodb::error::Error) -> String {
    use mongodb::error::{ErrorKind, WriteFailure};
    let code = match e.kind.as_ref() {
        ErrorKind::Command(c) => Some(c.code),
        ErrorKind::Write(WriteFailure::WriteError(w)) => Some(w.code),
        ErrorKind::InsertMany(im) => im
            .write_errors
            .as_ref()
            .and_then(|w| w.first())
            .map(|w| w.code),
        _ => None,
    };
    match (e.kind.as_ref(), code) {
        (_, Some(10334)) | (_, Some(17419)) | (_, Some(17420)) => {
            "a document or update became larger than MongoDB's 16 MB limit".into()
        }
        (_, Some(13)) | (_, Some(8000)) => {
            "the database user may not do this (check its roles)".into()
        }
        (ErrorKind::Authentication { .. }, _) => {
            "authentication failed (check the user and password)".into()
        }
        (ErrorKind::ServerSelection { .. }, _) | (ErrorKind::Io(_), _) => format!(
            "the database stopped answering ({})",
            first_line(&e.to_string())
        ),
        (_, Some(c)) => format!(
            "the database refused the operation (code {c}: {})",
            first_line(&e.to_string())
        ),
        _ => first_line(&e.to_string()),
    }
}

/// The gist of a driver error: the cause a person can act on, not the topology dump.
fn first_line(s: &str) -> String {
    for (needle, said) in [
        (
            "Connection refused",
            "connection refused (nothing listens there)",
        ),
        ("failed to lookup address", "the host name does not resolve"),
        (
            "Name or service not known",
            "the host name does not resolve",
        ),
        (
            "Authentication failed",
            "authentication failed (check the user and password)",
        ),
        ("timed out", "the connection timed out"),
    ] {
        if s.contains(needle) {
            return said.to_string();
        }
    }
    let s = s.lines().next().unwrap_or(s);
    s.chars().take(300).collect()
}

/// The index models a collection declares: its unique key, its other indexes and its TTL
/// index.
pub fn index_models(spec: &CollectionSpec) -> Vec<IndexModel> {
    let keys = |fields: &[&str]| -> Document {
        fields
            .iter()
            .map(|f| ((*f).to_string(), 1i32.into()))
            .collect()
    };
    let mut out = Vec::new();
    if !spec.unique_key.is_empty() {
        out.push(
            IndexModel::builder()
                .keys(keys(&spec.unique_key))
                .options(IndexOptions::builder().unique(true).build())
                .build(),
        );
    }
    for fields in spec.indexes.iter().filter(|f| !f.is_empty()) {
        out.push(IndexModel::builder().keys(keys(fields)).build());
    }
    if let Some(ttl) = spec.ttl {
        out.push(
            IndexModel::builder()
                .keys(doc! { ttl.field: 1 })
                .options(
                    IndexOptions::builder()
                        .expire_after(Duration::from_secs(ttl.expire_after_secs))
                        .build(),
                )
                .build(),
        );
    }
    out
}

/// Creates the indexes of one collection in `db` (see [`index_models`]).
pub async fn ensure_collection_indexes(db: &Database, spec: &CollectionSpec) -> anyhow::Result<()> {
    let models = index_models(spec);
    if models.is_empty() {
        return Ok(());
    }
    db.collection::<Document>(spec.name)
        .create_indexes(models)
        .await
        .with_context(|| format!("creating indexes of {}", spec.name))?;
    Ok(())
}

/// Creates every index of every registered collection (see [`index_models`]).
pub async fn ensure_indexes(db: &Database, registry: &Catalog) -> anyhow::Result<()> {
    for c in registry.collections() {
        ensure_collection_indexes(db, &c.spec).await?;
    }
    Ok(())
}
