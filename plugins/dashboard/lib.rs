//! Dashboard: who may see and change which guild on the web dashboard.

pub mod access;
pub mod sample;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use mongodb::bson::{doc, oid::ObjectId, Document};
use poise::serenity_prelude as serenity;
use serde::{Deserialize, Serialize};

use heimdall_host::batch::Batcher;
use heimdall_host::context::Data;
use heimdall_host::plugin::{
    AccessPolicy, CloneStepSpec, CollectionSpec, GuildSummary, LoginGuild, Plugin,
};

/// The dashboard plugin.
pub struct DashboardPlugin;

/// The dashboard plugin's strings (`locales/`).
pub static STRINGS: heimdall_host::locales::Strings = heimdall_host::strings!();

#[async_trait::async_trait]
impl Plugin for DashboardPlugin {
    fn samples(&self) -> Option<&dyn heimdall_host::seed::Samples> {
        Some(self)
    }
    fn name(&self) -> &'static str {
        "dashboard"
    }
    fn description(&self) -> &'static str {
        "Dashboard access rights and per-guild dashboard settings"
    }
    fn collections(&self) -> Vec<CollectionSpec> {
        vec![
            CollectionSpec::new(PERMISSIONS, "DashboardPermission")
                .unique(&["guildId", "targetType", "targetId"])
                // Every gateway authentication looks a user's grants up in every guild, and
                // the guilds granting roles (see `granted`).
                .index(&["targetType", "targetId"]),
            CollectionSpec::new("dashboard_settings", "DashboardSettings").unique(&["guildId"]),
            CollectionSpec::new(SESSION_REVOCATIONS, "SessionRevocation")
                .unique(&["userId"])
                .internal(),
            CollectionSpec::new(LOGINS, "DashboardLogin")
                .unique(&["userId"])
                .internal(),
        ]
    }
    fn clone_steps(&self) -> Vec<CloneStepSpec> {
        vec![CloneStepSpec::new(
            "Dashboard access",
            &["dashboard_permissions", "dashboard_settings"],
        )]
    }
    fn routes(&self) -> heimdall_host::routes::Routes {
        access::routes()
    }
    fn strings(&self) -> Option<&'static heimdall_host::locales::Strings> {
        Some(&STRINGS)
    }
    fn access_policy(&self, data: &Data) -> Option<Arc<dyn AccessPolicy>> {
        Some(Arc::new(DashboardAccess::new(
            data.db.clone(),
            data.discord.clone(),
        )))
    }
}

/// A guild's dashboard grants, to users and roles (`{guildId, targetType, targetId,
/// permissions}`).
pub const PERMISSIONS: &str = "dashboard_permissions";

/// Per user, the time before which its session tokens are signed out (`{userId, before}`,
/// seconds since the epoch). Internal: an instance's sign-outs are not cloned.
pub const SESSION_REVOCATIONS: &str = "session_revocations";

/// Per user, the servers Discord listed at their last login, with their permissions there
/// (`{userId, guilds: [{id, name, icon, owner, permissions}], at}`). Internal.
pub const LOGINS: &str = "dashboard_logins";

/// How long the list of the bot's servers, read from Discord, is trusted.
const BOT_GUILDS_TTL: Duration = Duration::from_secs(60);

/// How long a member's roles, read from Discord, are trusted.
const ROLES_TTL: Duration = Duration::from_secs(60);

/// Dashboard access from `dashboard_permissions`: an entry for the user (`targetType:
/// "user"`), or for one of the user's roles in that guild (`"role"`; the member's roles come
/// from Discord's API and are cached for a minute). Without Discord, role entries grant
/// nothing.
///
/// Every gateway authentication reads a user's sign-out, grants and last login; those
/// reads go through [`Batcher`]s, so that thousands of clients coming back at once are a
/// few queries, not three each.
pub struct DashboardAccess {
    db: mongodb::Database,
    discord: Option<Arc<serenity::Http>>,
    roles: Mutex<HashMap<(String, u64), CachedRoles>>,
    bot_guilds: tokio::sync::Mutex<Option<(Instant, Arc<Vec<GuildSummary>>)>>,
    /// By user id: the time before which its sessions are signed out.
    revocations: Batcher<String, i64>,
    /// By user id: the servers Discord listed at its last login.
    logins: Batcher<String, Vec<LoginGuild>>,
    /// By user id: the guilds granting it dashboard access by a `"user"` entry.
    grants: Batcher<String, Vec<String>>,
}

/// A member's role ids in a guild, and when they were read.
type CachedRoles = (Instant, Vec<String>);

/// The servers Discord listed at a user's last login (`None`: never logged in).
type Login = Option<Vec<LoginGuild>>;

/// Most users read by one query, and queries out at once for each kind of read (the
/// driver's pool holds 10 connections).
const BATCH: usize = 256;
const BATCHES_AT_ONCE: usize = 3;

/// A [`Batcher`] of look-ups by `field` (a user id) in `collection`: one `{field: {$in:
/// ids}, ..extra}` query a batch, each document it finds folded into the answers.
fn by_user<V: Clone + Send + 'static>(
    db: &mongodb::Database,
    name: &'static str,
    collection: &'static str,
    field: &'static str,
    extra: Document,
    projection: Document,
    fold: fn(&mut HashMap<String, V>, Document),
) -> Batcher<String, V> {
    let db = db.clone();
    Batcher::new(
        name,
        BATCH,
        BATCHES_AT_ONCE,
        Arc::new(move |ids: Vec<String>| {
            let c = db.collection::<Document>(collection);
            let (mut filter, projection) = (extra.clone(), projection.clone());
            Box::pin(async move {
                filter.insert(field, doc! { "$in": ids });
                let mut cursor = c.find(filter).projection(projection).await?;
                let mut found = HashMap::new();
                while let Some(d) = cursor.try_next().await? {
                    fold(&mut found, d);
                }
                Ok(found)
            })
        }),
    )
}

impl DashboardAccess {
    /// Access decided from `db`'s collections, and from Discord's API when given.
    pub fn new(db: mongodb::Database, discord: Option<Arc<serenity::Http>>) -> Self {
        let revocations = by_user(
            &db,
            "reading sign-outs",
            SESSION_REVOCATIONS,
            "userId",
            doc! {},
            doc! { "userId": 1, "before": 1 },
            |found, d| {
                if let (Ok(u), Ok(b)) = (d.get_str("userId"), d.get_i64("before")) {
                    found.insert(u.to_string(), b);
                }
            },
        );
        let logins = by_user(
            &db,
            "reading logins",
            LOGINS,
            "userId",
            doc! {},
            doc! { "userId": 1, "guilds": 1 },
            |found, d| {
                if let (Ok(u), Ok(g)) = (d.get_str("userId"), d.get_array("guilds")) {
                    let guilds = g
                        .iter()
                        .filter_map(|g| mongodb::bson::from_bson(g.clone()).ok())
                        .collect();
                    found.insert(u.to_string(), guilds);
                }
            },
        );
        let grants = by_user::<Vec<String>>(
            &db,
            "reading dashboard grants",
            PERMISSIONS,
            "targetId",
            doc! { "targetType": "user" },
            doc! { "guildId": 1, "targetId": 1 },
            |found, d| {
                if let (Ok(u), Ok(g)) = (d.get_str("targetId"), d.get_str("guildId")) {
                    found.entry(u.to_string()).or_default().push(g.to_string());
                }
            },
        );
        Self {
            db,
            discord,
            roles: Mutex::new(HashMap::new()),
            bot_guilds: tokio::sync::Mutex::new(None),
            revocations,
            logins,
            grants,
        }
    }
    fn permissions(&self) -> mongodb::Collection<Document> {
        self.db.collection(PERMISSIONS)
    }

    /// The member's role ids in `guild` (none when not a member or Discord is off).
    async fn member_roles(&self, guild: &str, user: u64) -> anyhow::Result<Vec<String>> {
        let key = (guild.to_string(), user);
        if let Some((at, roles)) = self.roles.lock().expect("roles cache").get(&key) {
            if at.elapsed() < ROLES_TTL {
                return Ok(roles.clone());
            }
        }
        let Some(http) = &self.discord else {
            return Ok(Vec::new());
        };
        let Ok(guild_id) = guild.parse::<u64>() else {
            return Ok(Vec::new());
        };
        let roles = match http
            .get_member(
                serenity::GuildId::new(guild_id),
                serenity::UserId::new(user),
            )
            .await
        {
            Ok(m) => m.roles.iter().map(|r| r.get().to_string()).collect(),
            Err(serenity::Error::Http(e)) if e.status_code().is_some_and(|s| s.as_u16() == 404) => {
                Vec::new()
            }
            Err(e) => return Err(anyhow::Error::from(e).context("reading the member's roles")),
        };
        let mut cache = self.roles.lock().expect("roles cache");
        if cache.len() > 10_000 {
            cache.retain(|_, (at, _)| at.elapsed() < ROLES_TTL);
        }
        cache.insert(key, (Instant::now(), roles.clone()));
        Ok(roles)
    }

    /// The servers the bot is in (`None` without Discord, or when Discord does not answer),
    /// read at most once a minute.
    async fn bot_guilds(&self) -> anyhow::Result<Option<Arc<Vec<GuildSummary>>>> {
        let Some(http) = &self.discord else {
            return Ok(None);
        };
        let mut cached = self.bot_guilds.lock().await;
        if let Some((at, list)) = &*cached {
            if at.elapsed() < BOT_GUILDS_TTL {
                return Ok(Some(list.clone()));
            }
        }
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let page = match http
                .get_guilds(after.map(serenity::GuildPagination::After), Some(200))
                .await
            {
                Ok(p) => p,
                Err(e) => {
                    // Which servers the bot is in only narrows the list; access itself
                    // comes from Manage Server and dashboard permissions.
                    tracing::warn!(error = %e, "could not list the bot's servers; not filtering by them");
                    return Ok(None);
                }
            };
            let n = page.len();
            after = page.last().map(|g| g.id);
            all.extend(page.into_iter().map(|g| GuildSummary {
                id: g.id.to_string(),
                name: Some(g.name),
                icon: g.icon.map(|i| i.to_string()),
            }));
            if n < 200 {
                break;
            }
        }
        let list = Arc::new(all);
        *cached = Some((Instant::now(), list.clone()));
        Ok(Some(list))
    }

    /// The servers Discord listed at `user`'s last login.
    async fn login_guilds(&self, user: u64) -> anyhow::Result<Vec<LoginGuild>> {
        Ok(self.last_login(user).await?.unwrap_or_default())
    }

    /// The servers Discord listed at `user`'s last login; `None` when `user` never logged
    /// in on the dashboard (a token made otherwise).
    async fn last_login(&self, user: u64) -> anyhow::Result<Option<Vec<LoginGuild>>> {
        self.logins.get(user.to_string()).await
    }

    /// The guilds granting `user` access by a `"user"` entry, and its last login, read
    /// together.
    async fn grants_and_login(&self, user: u64) -> anyhow::Result<(Vec<String>, Login)> {
        let (grants, login) =
            tokio::join!(self.grants.get(user.to_string()), self.last_login(user));
        Ok((grants?.unwrap_or_default(), login?))
    }

    /// The servers `user` may open by `dashboard_permissions` (`guilds`: its `"user"`
    /// entries) and by managing them (`login`), before asking whether the bot is there.
    async fn granted(
        &self,
        user: u64,
        mut guilds: Vec<String>,
        login: &Login,
    ) -> anyhow::Result<Vec<String>> {
        guilds.extend(
            login
                .iter()
                .flatten()
                .filter(|g| g.manages())
                .map(|g| g.id.clone()),
        );
        if self.discord.is_some() {
            // Guilds that grant access to roles: is the user a member with one of them? Only
            // those Discord listed at the user's login are asked about: each question is a
            // request to Discord (the bot may make 50 a second in all), and of a bot's many
            // servers granting roles, the user is in a few.
            let mut filter = doc! { "targetType": "role" };
            if let Some(login) = login {
                let member_of: Vec<&str> = login.iter().map(|g| g.id.as_str()).collect();
                filter.insert("guildId", doc! { "$in": member_of });
            }
            let mut by_guild: HashMap<String, Vec<String>> = HashMap::new();
            let mut cursor = self
                .permissions()
                .find(filter)
                .projection(doc! { "guildId": 1, "targetId": 1 })
                .await?;
            while let Some(d) = cursor.try_next().await? {
                if let (Ok(g), Ok(r)) = (d.get_str("guildId"), d.get_str("targetId")) {
                    by_guild
                        .entry(g.to_string())
                        .or_default()
                        .push(r.to_string());
                }
            }
            for (guild, roles) in by_guild {
                if !guilds.contains(&guild) && self.has_role(&guild, user, &roles).await? {
                    guilds.push(guild);
                }
            }
        }
        guilds.sort();
        guilds.dedup();
        Ok(guilds)
    }

    /// The guilds of [`granted`](Self::granted) the bot is in.
    async fn visible(
        &self,
        user: u64,
        grants: Vec<String>,
        login: &Login,
    ) -> anyhow::Result<Vec<String>> {
        let mut guilds = self.granted(user, grants, login).await?;
        if let Some(bot) = self.bot_guilds().await? {
            guilds.retain(|g| bot.iter().any(|b| &b.id == g));
        }
        Ok(guilds)
    }

    /// Whether one of the member's roles in `guild` is among `role_ids`.
    async fn has_role(&self, guild: &str, user: u64, role_ids: &[String]) -> anyhow::Result<bool> {
        if role_ids.is_empty() {
            return Ok(false);
        }
        let roles = self.member_roles(guild, user).await?;
        Ok(roles.iter().any(|r| role_ids.contains(r)))
    }
}

#[async_trait::async_trait]
impl AccessPolicy for DashboardAccess {
    async fn guilds(&self, user: u64) -> anyhow::Result<Vec<String>> {
        let (grants, login) = self.grants_and_login(user).await?;
        self.visible(user, grants, &login).await
    }

    async fn picker(&self, user: u64, owner: bool) -> anyhow::Result<Vec<GuildSummary>> {
        let bot = self.bot_guilds().await?;
        if owner {
            if let Some(bot) = &bot {
                return Ok(bot.to_vec());
            }
        }
        let (grants, login) = self.grants_and_login(user).await?;
        let visible = self.visible(user, grants, &login).await?;
        let logins = login.unwrap_or_default();
        Ok(visible
            .into_iter()
            .map(|id| {
                let known = bot
                    .iter()
                    .flat_map(|b| b.iter())
                    .find(|b| b.id == id)
                    .map(|b| (b.name.clone(), b.icon.clone()))
                    .or_else(|| {
                        logins
                            .iter()
                            .find(|l| l.id == id)
                            .map(|l| (Some(l.name.clone()), l.icon.clone()))
                    });
                let (name, icon) = known.unwrap_or_default();
                GuildSummary { id, name, icon }
            })
            .collect())
    }

    async fn may_manage(&self, guild: &str, user: u64) -> anyhow::Result<bool> {
        Ok(self
            .login_guilds(user)
            .await?
            .iter()
            .any(|g| g.id == guild && g.manages()))
    }

    async fn remember_login(&self, user: u64, guilds: &[LoginGuild]) -> anyhow::Result<()> {
        let guilds = mongodb::bson::to_bson(guilds)?;
        self.db
            .collection::<Document>(LOGINS)
            .update_one(
                doc! { "userId": user.to_string() },
                doc! { "$set": { "guilds": guilds, "at": mongodb::bson::DateTime::now() } },
            )
            .upsert(true)
            .await?;
        Ok(())
    }

    async fn may_view(&self, guild: &str, user: u64) -> anyhow::Result<bool> {
        if let Some(bot) = self.bot_guilds().await? {
            if !bot.iter().any(|b| b.id == guild) {
                return Ok(false);
            }
        }
        if self
            .login_guilds(user)
            .await?
            .iter()
            .any(|g| g.id == guild && g.manages())
        {
            return Ok(true);
        }
        let entries: Vec<Document> = self
            .permissions()
            .find(doc! { "guildId": guild, "$or": [
                { "targetType": "user", "targetId": user.to_string() },
                { "targetType": "role" },
            ] })
            .projection(doc! { "targetType": 1, "targetId": 1 })
            .await?
            .try_collect()
            .await?;
        if entries
            .iter()
            .any(|e| e.get_str("targetType") == Ok("user"))
        {
            return Ok(true);
        }
        let roles: Vec<String> = entries
            .iter()
            .filter_map(|e| e.get_str("targetId").ok().map(String::from))
            .collect();
        self.has_role(guild, user, &roles).await
    }

    async fn session_valid(&self, user: u64, issued_at: u64) -> anyhow::Result<bool> {
        let before = self
            .revocations
            .get(user.to_string())
            .await?
            .unwrap_or(i64::MIN);
        Ok(i64::try_from(issued_at).unwrap_or(i64::MAX) > before)
    }

    async fn revoke_sessions(&self, user: u64) -> anyhow::Result<()> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        self.db
            .collection::<Document>(SESSION_REVOCATIONS)
            .update_one(
                doc! { "userId": user.to_string() },
                doc! { "$max": { "before": now } },
            )
            .upsert(true)
            .await?;
        Ok(())
    }
}

/// `dashboard_permissions`: a user's or role's rights on a guild's dashboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DashboardPermission {
    /// Document id.
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    pub id: Option<ObjectId>,
    /// Guild snowflake.
    pub guild_id: String,
    /// `"user"` or `"role"`.
    pub target_type: String,
    /// User or role snowflake.
    pub target_id: String,
    /// Granted permissions.
    #[serde(default)]
    pub permissions: Vec<String>,
    /// Fields this struct does not name; kept on write.
    #[serde(flatten)]
    pub extra: Document,
}

/// `dashboard_settings`: a guild's dashboard preferences.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DashboardSettings {
    /// Document id.
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    pub id: Option<ObjectId>,
    /// Guild snowflake.
    pub guild_id: String,
    /// Fields this struct does not name; kept on write.
    #[serde(flatten)]
    pub extra: Document,
}
