//! The `Plugin` trait: what a plugin stores (its catalog, checked in the base crate's
//! [`Catalog`]), what it offers (commands, routes, dashboard access) and how it starts;
//! and the [`Registry`] of all plugins the binary lists.

use std::sync::Arc;

use async_trait::async_trait;

pub use heimdall_base::catalog::*;

use crate::context::{Data, Error};
use crate::migration::legacy::LegacyStepSpec;

/// A Heimdall plugin: what it stores, what it offers and how its data is migrated.
#[async_trait]
pub trait Plugin: Send + Sync + 'static {
    /// Unique name, e.g. `moderation`.
    fn name(&self) -> &'static str;

    /// One line saying what the plugin does.
    fn description(&self) -> &'static str;

    /// The collections this plugin owns.
    fn collections(&self) -> Vec<CollectionSpec> {
        Vec::new()
    }

    /// The clone steps copying this plugin's collections.
    fn clone_steps(&self) -> Vec<CloneStepSpec> {
        Vec::new()
    }

    /// This plugin's mappings of the old bot's records (Legacy Import).
    fn legacy_steps(&self) -> Vec<LegacyStepSpec> {
        Vec::new()
    }

    /// Slash commands.
    fn commands(&self) -> Vec<poise::Command<Data, Error>> {
        Vec::new()
    }

    /// HTTP routes, each described, merged into the API (paths start with `/api/`; they
    /// are listed in `/api/openapi.json` under the plugin's name).
    fn routes(&self) -> crate::routes::Routes {
        crate::routes::Routes::new()
    }

    /// Its user-facing strings (Fluent, `locales/` in the plugin's folder), declared with
    /// [`strings!`](crate::strings).
    fn strings(&self) -> Option<&'static crate::locales::Strings> {
        None
    }

    /// Its sample data for `heimdall seed` (its own collections, and the old bot's where
    /// it imports them).
    fn samples(&self) -> Option<&dyn crate::seed::Samples> {
        None
    }

    /// Its per-server settings, edited on the dashboard (`GET`/`PUT
    /// /api/guilds/{guildId}/{plugin}/config`).
    fn config(&self) -> Option<crate::guild_config::ConfigSpec> {
        None
    }

    /// Called once the shared context exists, before the bot serves anything.
    async fn start(&self, _data: &Data) -> Result<(), Error> {
        Ok(())
    }

    /// Called on shutdown; the plugin stops its tasks.
    async fn shutdown(&self, _data: &Data) {}

    /// Who may use the dashboard: which guilds a user sees (on the dashboard and in the
    /// gateway's guild rooms) and which sessions were signed out. At most one plugin
    /// answers; without one, only owners see guilds and no session is ever revoked.
    fn access_policy(&self, _data: &Data) -> Option<Arc<dyn AccessPolicy>> {
        None
    }
}

/// Dashboard access (owners see every guild without asking).
#[async_trait]
pub trait AccessPolicy: Send + Sync {
    /// The guilds `user` may see.
    async fn guilds(&self, user: u64) -> anyhow::Result<Vec<String>>;
    /// Whether `user` may see `guild`.
    async fn may_view(&self, guild: &str, user: u64) -> anyhow::Result<bool>;
    /// Whether a session token of `user` issued at `issued_at` (seconds since the epoch) is
    /// still good, i.e. was not signed out since.
    async fn session_valid(&self, user: u64, issued_at: u64) -> anyhow::Result<bool>;
    /// Signs out every session token of `user` issued until now.
    async fn revoke_sessions(&self, user: u64) -> anyhow::Result<()>;
    /// `user` just logged in with Discord, which listed these servers of theirs (with their
    /// permissions there).
    async fn remember_login(&self, _user: u64, _guilds: &[LoginGuild]) -> anyhow::Result<()> {
        Ok(())
    }
    /// Whether `user` may change who has access to `guild`'s dashboard: Manage Server there
    /// (owners may always; an entry in the access list alone is not enough).
    async fn may_manage(&self, _guild: &str, _user: u64) -> anyhow::Result<bool> {
        Ok(false)
    }
    /// The dashboard's server picker for `user` (`owner`: one of the bot's owners).
    async fn picker(&self, user: u64, _owner: bool) -> anyhow::Result<Vec<GuildSummary>> {
        Ok(self
            .guilds(user)
            .await?
            .into_iter()
            .map(|id| GuildSummary {
                id,
                name: None,
                icon: None,
            })
            .collect())
    }
}

/// Discord's `MANAGE_GUILD` permission bit.
pub const MANAGE_GUILD: u64 = 1 << 5;
/// Discord's `ADMINISTRATOR` permission bit.
pub const ADMINISTRATOR: u64 = 1 << 3;

/// A server as Discord lists it for a logged-in user (`GET /users/@me/guilds`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LoginGuild {
    /// Guild snowflake.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its icon hash.
    #[serde(default)]
    pub icon: Option<String>,
    /// Whether the user owns it.
    #[serde(default)]
    pub owner: bool,
    /// The user's permissions there: a decimal bit set.
    #[serde(default)]
    pub permissions: String,
}

impl LoginGuild {
    /// Whether the user may manage the server (owner, Administrator or Manage Server).
    pub fn manages(&self) -> bool {
        let bits: u64 = self.permissions.parse().unwrap_or(0);
        self.owner || bits & (MANAGE_GUILD | ADMINISTRATOR) != 0
    }
}

/// A server on the dashboard's picker.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GuildSummary {
    /// Guild snowflake.
    pub id: String,
    /// Its name, when known.
    pub name: Option<String>,
    /// Its icon hash, when known.
    pub icon: Option<String>,
}

/// Every plugin, with their checked catalog (which it dereferences to).
pub struct Registry {
    plugins: Vec<Arc<dyn Plugin>>,
    catalog: Arc<Catalog>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.catalog.fmt(f)
    }
}

impl std::ops::Deref for Registry {
    type Target = Catalog;

    fn deref(&self) -> &Catalog {
        &self.catalog
    }
}

impl Registry {
    /// Checks the plugins' catalog and builds the registry.
    pub fn new(plugins: Vec<Arc<dyn Plugin>>) -> Result<Self, CatalogError> {
        let declared = plugins
            .iter()
            .map(|p| Declared {
                name: p.name(),
                collections: p.collections(),
                clone_steps: p.clone_steps(),
                legacy_steps: p.legacy_steps(),
            })
            .collect();
        Ok(Self {
            catalog: Arc::new(Catalog::new(declared)?),
            plugins,
        })
    }

    /// The plugins, in list order.
    pub fn plugins(&self) -> &[Arc<dyn Plugin>] {
        &self.plugins
    }

    /// The checked catalog, shared.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.clone()
    }

    /// The sample data of every plugin that has some, in list order.
    pub fn samples(&self) -> Vec<&dyn crate::seed::Samples> {
        self.plugins.iter().filter_map(|p| p.samples()).collect()
    }

    /// All slash commands of all plugins.
    pub fn commands(&self) -> Vec<poise::Command<Data, Error>> {
        self.plugins.iter().flat_map(|p| p.commands()).collect()
    }

    /// The access policy of the one plugin that provides it (two are refused).
    pub fn access_policy(&self, data: &Data) -> anyhow::Result<Option<Arc<dyn AccessPolicy>>> {
        let mut found = self
            .plugins
            .iter()
            .filter_map(|p| p.access_policy(data).map(|a| (p.name(), a)));
        let first = found.next();
        if let (Some((a, _)), Some((b, _))) = (&first, found.next()) {
            anyhow::bail!("plugins {a} and {b} both decide dashboard access; only one may");
        }
        Ok(first.map(|(_, a)| a))
    }
}
