//! The one place that defines `Data` (the shared context), `Error` and `Context`.

use std::ops::Deref;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::crypto::Crypto;
use crate::plugin::Registry;

/// The error type of commands, handlers and plugin hooks. A
/// [`UserError`](crate::error::UserError) inside it is shown to the user as it is.
pub type Error = anyhow::Error;

/// The poise command context.
pub type Context<'a> = poise::Context<'a, Data, Error>;

/// The shared context handed to every plugin, command and API handler. Cheap to clone.
#[derive(Clone)]
pub struct Data(Arc<Inner>);

/// What [`Data`] holds.
pub struct Inner {
    /// The configuration.
    pub config: Config,
    /// The MongoDB client (connection pool).
    pub client: mongodb::Client,
    /// The bot's database.
    pub db: mongodb::Database,
    /// Who owns the bot: the one owner policy of every command, route and gateway event.
    pub owners: Arc<crate::owners::Owners>,
    /// The checked plugin catalog.
    pub registry: Arc<Registry>,
    /// Encryption with `ENCRYPTION_KEY`, when configured.
    pub crypto: Option<Crypto>,
    /// The WebSocket gateway's publishing side (disabled when no gateway runs).
    pub ws: crate::gateway::WebSocketManager,
    /// The port the gateway listens on (the dashboard connects to it).
    pub gateway_port: u16,
    /// The dashboard access policy (set once at start-up, from the plugin providing it).
    pub access: std::sync::OnceLock<Option<Arc<dyn crate::plugin::AccessPolicy>>>,
    /// Discord's REST API (with `DISCORD_TOKEN`): for lookups outside commands, such as a
    /// member's roles.
    pub discord: Option<Arc<poise::serenity_prelude::Http>>,
    /// Servers' channels and roles read from Discord, cached.
    pub lookups: crate::lookups::Lookups,
    /// The connection string of `db` (to refuse migrating a database into itself).
    pub db_uri: String,
    /// Cancelled when the bot shuts down; every task watches it.
    pub shutdown: CancellationToken,
    /// Tracks every task spawned on behalf of the bot, so shutdown can wait for them.
    pub tasks: TaskTracker,
}

impl Data {
    /// Wraps the parts into a shared context.
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }

    /// The dashboard access policy, if a plugin provides one.
    pub fn access(&self) -> Option<&Arc<dyn crate::plugin::AccessPolicy>> {
        self.access.get().and_then(Option::as_ref)
    }

    /// The `ENCRYPTION_KEY` cipher, or a user error saying how to configure it.
    pub fn crypto(&self) -> Result<&Crypto, Error> {
        self.crypto.as_ref().ok_or_else(|| {
            crate::error::UserError::bad_request(
                "encryption_key_missing",
                "ENCRYPTION_KEY is not set; set it to the 64-hex-character key of this instance",
            )
            .into()
        })
    }
}

impl Deref for Data {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}
