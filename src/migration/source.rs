//! The source side of a migration: checks made before anything is written.

use std::collections::BTreeSet;
use std::time::Duration;

use mongodb::options::{ClientOptions, ServerAddress};
use mongodb::{Client, Database};

use crate::config::redact_uri;
use crate::error::{UserError, UserErrorKind};

/// How long a source may take to answer before it counts as unreachable.
pub const SOURCE_TIMEOUT: Duration = Duration::from_secs(8);

/// Checks a guild id: a Discord snowflake (17 to 20 digits).
pub fn parse_guild(id: &str) -> Result<String, UserError> {
    let id = id.trim();
    if (17..=20).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_digit())
        && id.parse::<u64>().is_ok()
    {
        Ok(id.to_string())
    } else {
        Err(UserError::bad_request(
            "invalid_guild_id",
            format!("{id:?} is not a guild id; a guild id is a Discord snowflake of 17 to 20 digits, e.g. 123456789012345678 (right-click the server with Developer Mode on, then Copy Server ID)"),
        ))
    }
}

/// A connected source database.
#[derive(Debug, Clone)]
pub struct Source {
    /// The client.
    pub client: Client,
    /// The database.
    pub db: Database,
    /// The connection string, redacted, for reports.
    pub display: String,
}

/// The hosts of a connection string, normalised (`localhost` = `127.0.0.1`, port 27017 by
/// default), and its default database.
async fn hosts_of(uri: &str) -> Result<(BTreeSet<String>, Option<String>), UserError> {
    let opts = ClientOptions::parse(uri).await.map_err(|e| {
        UserError::bad_request(
            "invalid_uri",
            format!("{} is not a valid MongoDB connection string: {e}. Expected mongodb://[user:password@]host[:port][/database]", redact_uri(uri)),
        )
    })?;
    let hosts = opts
        .hosts
        .iter()
        .map(|h| match h {
            ServerAddress::Tcp { host, port } => {
                let host = host.to_ascii_lowercase();
                let host = if host == "localhost" || host == "::1" {
                    "127.0.0.1".to_string()
                } else {
                    host
                };
                format!("{host}:{}", port.unwrap_or(27017))
            }
            other => other.to_string(),
        })
        .collect();
    Ok((hosts, opts.default_database.clone()))
}

/// Connects to the source, resolves its database (`source_db`, else the URI's, else
/// `default_db`), refuses the target itself, and checks the database exists.
pub async fn connect(
    uri: &str,
    source_db: Option<&str>,
    default_db: Option<&str>,
    target_uri: &str,
    target_db: &str,
) -> anyhow::Result<Source> {
    crate::config::validate_mongo_uri("--source", uri)
        .map_err(|e| UserError::bad_request("invalid_uri", e.message))?;
    let (hosts, uri_db) = hosts_of(uri).await?;
    let db_name = source_db
        .map(str::to_string)
        .or(uri_db)
        .or(default_db.map(str::to_string))
        .ok_or_else(|| {
            UserError::bad_request(
                "source_db_missing",
                "name the source database with --source-db NAME (or put it in the connection string: mongodb://host/NAME)",
            )
        })?;
    crate::config::validate_db_name("--source-db", &db_name)
        .map_err(|e| UserError::bad_request("invalid_source_db", e.message))?;
    let (target_hosts, _) = hosts_of(target_uri).await?;
    if hosts == target_hosts && db_name == target_db {
        return Err(UserError::bad_request(
            "source_is_target",
            format!("the source ({}, database {db_name}) is this bot's own database; a migration copies from another database into this one", redact_uri(uri)),
        )
        .into());
    }
    let client =
        crate::db::connect(uri, SOURCE_TIMEOUT).await.map_err(
            |e| match crate::error::user_error(&e) {
                Some(u) if u.code == "database_unreachable" => anyhow::Error::from(UserError::new(
                    UserErrorKind::Unavailable,
                    "source_unreachable",
                    format!("the source is unreachable: {}", u.message),
                )),
                _ => e,
            },
        )?;
    let names = client.list_database_names().await.map_err(|e| {
        UserError::new(
            UserErrorKind::Unavailable,
            "source_unreadable",
            format!(
                "cannot list the databases of {}: {e}. Does the user have read access?",
                redact_uri(uri)
            ),
        )
    })?;
    if !names.iter().any(|n| n == &db_name) {
        let mut shown: Vec<_> = names
            .into_iter()
            .filter(|n| !["admin", "local", "config"].contains(&n.as_str()))
            .collect();
        shown.sort();
        return Err(UserError::bad_request(
            "source_db_not_found",
            format!(
                "database {db_name:?} does not exist on {}; the databases there are: {}",
                redact_uri(uri),
                if shown.is_empty() {
                    "(none)".to_string()
                } else {
                    shown.join(", ")
                }
            ),
        )
        .into());
    }
    Ok(Source {
        db: client.database(&db_name),
        client,
        display: redact_uri(uri),
    })
}
