//! A server's channels and roles as Discord lists them (with the bot's token), cached for a
//! minute: the dashboard's channel and role pickers, and the settings check that a channel or
//! role named in a setting is one of the server's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use poise::serenity_prelude as serenity;
use serde::Serialize;

use crate::error::{AppError, UserError, UserErrorKind};

/// How long a server's channels and roles are trusted.
const TTL: Duration = Duration::from_secs(60);

/// A channel of a server.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Channel {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// `text`, `voice`, `category`, `announcement`, `forum`, `stage` or `other`.
    pub kind: &'static str,
}

/// A role of a server.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Role {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its color, `#rrggbb` (`None`: no color).
    pub color: Option<String>,
    /// Whether an integration manages it (members cannot be given it).
    pub managed: bool,
}

/// What is known of one server.
#[derive(Debug, Clone)]
pub struct Server {
    /// Its channels, by position.
    pub channels: Vec<Channel>,
    /// Its roles, highest first, without `@everyone`.
    pub roles: Vec<Role>,
}

impl Server {
    /// Whether `id` is one of the server's roles.
    pub fn has_role(&self, id: &str) -> bool {
        self.roles.iter().any(|r| r.id == id)
    }

    /// Whether `id` is one of the server's channels of one of these `kinds`.
    pub fn has_channel(&self, id: &str, kinds: &[&str]) -> bool {
        self.channels
            .iter()
            .any(|c| c.id == id && kinds.contains(&c.kind))
    }
}

/// The cache.
#[derive(Default)]
pub struct Lookups {
    servers: Mutex<HashMap<String, (Instant, Arc<Server>)>>,
}

impl std::fmt::Debug for Lookups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Lookups")
    }
}

fn kind(k: serenity::ChannelType) -> &'static str {
    use serenity::ChannelType as T;
    match k {
        T::Text => "text",
        T::Voice => "voice",
        T::Category => "category",
        T::News => "announcement",
        T::Forum => "forum",
        T::Stage => "stage",
        _ => "other",
    }
}

impl Lookups {
    /// `guild`'s channels and roles, read with `http` (`None` without Discord).
    pub async fn server(
        &self,
        http: Option<&serenity::Http>,
        guild: &str,
    ) -> Result<Option<Arc<Server>>, AppError> {
        let Some(http) = http else {
            return Ok(None);
        };
        // The lock is held to look and to store, never across Discord's answer: one slow
        // server does not hold up the others' pages.
        if let Some((at, s)) = self.servers.lock().expect("lookups").get(guild) {
            if at.elapsed() < TTL {
                return Ok(Some(s.clone()));
            }
        }
        let id =
            serenity::GuildId::new(heimdall_base::ids::parse_guild(guild)?.parse().unwrap_or(1));
        let unavailable = |e: serenity::Error| {
            tracing::warn!(error = %e, guild, "could not read the server's channels or roles");
            AppError::from(UserError::new(
                UserErrorKind::Unavailable,
                "discord_unavailable",
                "Discord did not list this server's channels and roles (is the bot still in it?); try again in a moment",
            ))
        };
        let mut channels = http.get_channels(id).await.map_err(unavailable)?;
        channels.sort_by_key(|c| (c.position, c.id));
        let mut roles = http.get_guild_roles(id).await.map_err(unavailable)?;
        roles.sort_by(|a, b| b.position.cmp(&a.position).then(a.id.cmp(&b.id)));
        let server = Arc::new(Server {
            channels: channels
                .into_iter()
                .map(|c| Channel {
                    id: c.id.to_string(),
                    name: c.name,
                    kind: kind(c.kind),
                })
                .collect(),
            roles: roles
                .into_iter()
                .filter(|r| r.id.get() != id.get())
                .map(|r| Role {
                    id: r.id.to_string(),
                    name: r.name,
                    color: (r.colour.0 != 0).then(|| format!("#{:06x}", r.colour.0)),
                    managed: r.managed,
                })
                .collect(),
        });
        let mut cache = self.servers.lock().expect("lookups");
        if cache.len() > 10_000 {
            cache.retain(|_, (at, _)| at.elapsed() < TTL);
        }
        cache.insert(guild.to_string(), (Instant::now(), server.clone()));
        Ok(Some(server))
    }
}
