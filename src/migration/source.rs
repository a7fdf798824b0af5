//! The source side of a migration: checks made before anything is written.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use std::time::Duration;

use mongodb::options::{ClientOptions, ServerAddress};
use mongodb::{Client, Database};

use heimdall_base::error::{UserError, UserErrorKind};
use heimdall_base::secret::{redact_uri, scrub};

/// How long a source may take to answer before it counts as unreachable.
pub const SOURCE_TIMEOUT: Duration = Duration::from_secs(8);

pub use heimdall_base::ids::parse_guild;

/// A connected source database.
#[derive(Debug, Clone)]
pub struct Source {
    /// The client.
    pub client: Client,
    /// The database.
    pub db: Database,
    /// The connection string, redacted, for reports.
    pub display: String,
    /// Who the database is, however it was named.
    pub identity: DbIdentity,
}

/// Who a database is, read without writing anything: the server process that answers
/// (`hello`'s `topologyVersion.processId`) and the UUIDs of its collections, which are the
/// same whatever host name, address, port alias or user reaches them, and new when a
/// collection is dropped and made again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DbIdentity {
    /// The server process, when the server says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<String>,
    /// The database name.
    pub db: String,
    /// Collection name → UUID (hex).
    #[serde(default)]
    pub collections: BTreeMap<String, String>,
}

impl DbIdentity {
    /// Reads the identity of `db`.
    pub async fn of(db: &Database) -> anyhow::Result<Self> {
        use futures::TryStreamExt;
        let process = db
            .run_command(mongodb::bson::doc! { "hello": 1 })
            .await
            .ok()
            .and_then(|h| {
                h.get_document("topologyVersion")
                    .ok()
                    .and_then(|t| t.get_object_id("processId").ok())
                    .map(|o| o.to_hex())
            });
        let mut collections = BTreeMap::new();
        let mut cursor = db.list_collections().await?;
        while let Some(c) = cursor.try_next().await? {
            if let Some(uuid) = c.info.uuid {
                collections.insert(c.name, hex::encode(&uuid.bytes));
            }
        }
        Ok(Self {
            process,
            db: db.name().to_string(),
            collections,
        })
    }

    /// Whether `self` and `other` are one database: the same server process and name, or
    /// a collection of one is a collection of the other.
    pub fn same_database(&self, other: &DbIdentity) -> bool {
        let same_process = self.process.is_some() && self.process == other.process;
        let shared = self
            .collections
            .values()
            .any(|u| other.collections.values().any(|v| v == u));
        (same_process && self.db == other.db) || shared
    }

    /// Whether `now` is still the data set `self` was: the same database name, and every
    /// collection both have is the same collection (none dropped and made again). With
    /// collections on neither side to compare, the name decides.
    pub fn same_data_set(&self, now: &DbIdentity) -> bool {
        if self.db != now.db {
            return false;
        }
        let common: Vec<(&String, &String)> = self
            .collections
            .iter()
            .filter_map(|(n, u)| now.collections.get(n).map(|v| (u, v)))
            .collect();
        if common.is_empty() {
            return self.collections.is_empty() || now.collections.is_empty();
        }
        common.iter().all(|(a, b)| a == b)
    }
}

/// The hosts of a connection string, normalised (`localhost` = `127.0.0.1`, port 27017 by
/// default), and its default database.
async fn hosts_of(uri: &str) -> Result<(BTreeSet<String>, Option<String>), UserError> {
    let opts = ClientOptions::parse(uri).await.map_err(|e| {
        UserError::bad_request(
            "invalid_uri",
            format!("{} is not a valid MongoDB connection string: {}. Expected mongodb://[user:password@]host[:port][/database]", redact_uri(uri), scrub(&e.to_string(), uri)),
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
    target: &Database,
) -> anyhow::Result<Source> {
    let target_db = target.name();
    heimdall_base::settings::validate_mongo_uri("--source", uri)
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
    heimdall_base::settings::validate_db_name("--source-db", &db_name)
        .map_err(|e| UserError::bad_request("invalid_source_db", e.message))?;
    let (target_hosts, _) = hosts_of(target_uri).await?;
    if hosts == target_hosts && db_name == target_db {
        return Err(UserError::bad_request(
            "source_is_target",
            format!("the source ({}, database {db_name}) is this bot's own database; a migration copies from another database into this one", redact_uri(uri)),
        )
        .into());
    }
    let client = heimdall_base::db::connect(uri, SOURCE_TIMEOUT)
        .await
        .map_err(|e| match heimdall_base::error::user_error(&e) {
            Some(u) if u.code == "database_unreachable" => anyhow::Error::from(UserError::new(
                UserErrorKind::Unavailable,
                "source_unreachable",
                format!("the source is unreachable: {}", u.message),
            )),
            _ => e,
        })?;
    let names = client.list_database_names().await.map_err(|e| {
        UserError::new(
            UserErrorKind::Unavailable,
            "source_unreadable",
            format!(
                "cannot list the databases of {}: {}. Does the user have read access?",
                redact_uri(uri),
                scrub(&e.to_string(), uri)
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
    let db = client.database(&db_name);
    // However the two are named (an alias, an address form, another user): by identity.
    let identity = DbIdentity::of(&db).await?;
    let target_identity = DbIdentity::of(target).await?;
    if identity.same_database(&target_identity) {
        return Err(UserError::bad_request(
            "source_is_target",
            format!("the source ({}, database {db_name}) is this bot's own database, reached under another name; a migration copies from another database into this one", redact_uri(uri)),
        )
        .into());
    }
    Ok(Source {
        db,
        client,
        display: redact_uri(uri),
        identity,
    })
}
