//! Configuration from the environment and an optional `heimdall.toml`.
//!
//! Every setting has an environment variable (`MONGODB_URI`, ...). The same names in lower
//! case (`mongodb_uri = "..."`) may stand in `heimdall.toml`; the environment wins. A wrong
//! value is a [`ConfigError`] that names the setting and says what is expected. Secrets are
//! wrapped in [`Secret`], whose `Debug` never shows them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::crypto::EncryptionKey;

pub use heimdall_base::secret::{redact_uri, Secret};
pub use heimdall_base::settings::{validate_db_name, validate_mongo_uri, ConfigError};

/// How long a session token may live unless `AUTH_MAX_TTL` says otherwise: 30 days.
pub const DEFAULT_MAX_TTL: std::time::Duration = std::time::Duration::from_secs(30 * 86_400);

/// The bot's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `DISCORD_TOKEN`: without it Discord is off and everything else runs.
    pub discord_token: Option<Secret>,
    /// `DISCORD_API_PROXY`: send Discord REST requests to this base URL instead of
    /// `https://discord.com` (a rate-limiting proxy shared by several processes, or a local
    /// stand-in); the proxy does the rate limiting.
    pub discord_api_proxy: Option<String>,
    /// `MONGODB_URI`: without it `heimdall run` starts a local `secantusd-rs`.
    pub mongodb_uri: Option<Secret>,
    /// `MONGODB_DB` (default `heimdall`).
    pub mongodb_db: String,
    /// `OWNER_IDS`: comma-separated Discord user ids with owner rights.
    pub owner_ids: Vec<u64>,
    /// `DEV_GUILD_ID`: slash commands are registered there instantly instead of globally.
    pub dev_guild_id: Option<u64>,
    /// `ENCRYPTION_KEY`: 64 hex characters, the AES-256-GCM key for secrets at rest.
    pub encryption_key: Option<EncryptionKey>,
    /// `AUTH_SECRET`: HS256 secret for session tokens.
    pub auth_secret: Option<Secret>,
    /// `AUTH_MAX_TTL`: the longest a session token may live (default 30 days); longer ones
    /// are neither minted nor accepted.
    pub auth_max_ttl: std::time::Duration,
    /// `API_PORT` (default 3001).
    pub api_port: u16,
    /// `WS_PORT` (default 3002).
    pub ws_port: u16,
    /// `DASHBOARD_ORIGINS`: comma-separated origins allowed to open the gateway.
    pub dashboard_origins: Vec<String>,
    /// HTTP timeouts and connection limits (`HTTP_*`).
    pub http: crate::http::HttpConfig,
    /// Gateway tunables (`HEIMDALL_WS_*`).
    pub gateway: crate::gateway::GatewayConfig,
    /// `REDIS_URL`: fan gateway events out through Redis across bot processes.
    pub redis_url: Option<Secret>,
    /// `HEIMDALL_DATA_DIR` (default `./data`): where the embedded database keeps its files.
    pub data_dir: PathBuf,
    /// `HEIMDALL_BIND` (default `127.0.0.1`): the address the API and gateway listen on.
    pub bind_address: String,
    /// `DISCORD_CLIENT_ID`: the application's OAuth2 client id ("Log in with Discord").
    pub discord_client_id: Option<u64>,
    /// `DISCORD_CLIENT_SECRET`: the application's OAuth2 client secret.
    pub discord_client_secret: Option<Secret>,
    /// `DASHBOARD_URL`: where people open the dashboard (`https://bot.example.org`); Discord
    /// sends them back to `<DASHBOARD_URL>/api/auth/callback` after logging in.
    pub dashboard_url: Option<String>,
    /// `SHARD_ID` and `SHARD_COUNT`: the Discord shards this process runs, when several
    /// processes split the guilds (none: one process runs the only shard).
    pub shards: Option<Shards>,
}

/// The Discord shards one process runs: `first..=last` of `total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shards {
    /// The first shard this process runs.
    pub first: u32,
    /// The last shard this process runs (inclusive).
    pub last: u32,
    /// How many shards the bot has in all, across every process.
    pub total: u32,
}

impl Shards {
    /// Reads `SHARD_ID` (`3`, or a range `0-3`) and `SHARD_COUNT`: both or neither.
    pub fn parse(id: Option<&str>, count: Option<&str>) -> Result<Option<Self>, ConfigError> {
        let (id, count) = match (id, count) {
            (None, None) => return Ok(None),
            (Some(_), None) => {
                return Err(ConfigError::new(
                    "SHARD_COUNT",
                    "is missing: with SHARD_ID, set SHARD_COUNT to the number of shards of all processes together",
                ))
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    "SHARD_ID",
                    "is missing: with SHARD_COUNT, set SHARD_ID to this process's shard (e.g. 0) or range (e.g. 0-3)",
                ))
            }
            (Some(i), Some(c)) => (i.trim(), c.trim()),
        };
        let total = count
            .parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                ConfigError::new(
                    "SHARD_COUNT",
                    format!("{count:?} is not a positive whole number"),
                )
            })?;
        let number = |s: &str| {
            s.trim().parse::<u32>().map_err(|_| {
                ConfigError::new(
                    "SHARD_ID",
                    format!("{id:?} is not a shard number (e.g. 0) or a range of them (e.g. 0-3)"),
                )
            })
        };
        let (first, last) = match id.split_once('-') {
            Some((a, b)) => (number(a)?, number(b)?),
            None => (number(id)?, number(id)?),
        };
        if first > last {
            return Err(ConfigError::new(
                "SHARD_ID",
                format!("{id:?} is a range from high to low; write the lower shard first"),
            ));
        }
        if last >= total {
            return Err(ConfigError::new(
                "SHARD_ID",
                format!(
                    "{id:?} names shard {last}, but SHARD_COUNT is {total}: shards are numbered 0 to {}",
                    total - 1
                ),
            ));
        }
        Ok(Some(Self { first, last, total }))
    }

    /// Whether this process runs shard 0, the one that registers the slash commands.
    pub fn has_first(&self) -> bool {
        self.first == 0
    }
}

/// The settings, in the order the README's table lists them.
pub const SETTINGS: &[&str] = &[
    "DISCORD_TOKEN",
    "MONGODB_URI",
    "MONGODB_DB",
    "OWNER_IDS",
    "DEV_GUILD_ID",
    "ENCRYPTION_KEY",
    "AUTH_SECRET",
    "AUTH_MAX_TTL",
    "API_PORT",
    "WS_PORT",
    "DASHBOARD_ORIGINS",
    "HEIMDALL_DATA_DIR",
    "HEIMDALL_BIND",
    "REDIS_URL",
    "DISCORD_CLIENT_ID",
    "DISCORD_CLIENT_SECRET",
    "DASHBOARD_URL",
    "SHARD_ID",
    "SHARD_COUNT",
];

impl Config {
    /// Reads the process environment and `heimdall.toml` in the working directory (if any),
    /// or the file named by `HEIMDALL_CONFIG`.
    pub fn from_env() -> Result<Self, ConfigError> {
        let file = std::env::var("HEIMDALL_CONFIG")
            .map(PathBuf::from)
            .unwrap_or_else(|_| PathBuf::from("heimdall.toml"));
        let toml = Self::read_toml(&file)?;
        let env: HashMap<String, String> = std::env::vars().collect();
        Self::from_sources(&env, toml.as_deref())
    }

    fn read_toml(path: &Path) -> Result<Option<String>, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ConfigError::new(
                "HEIMDALL_CONFIG",
                format!("cannot read {}: {e}", path.display()),
            )),
        }
    }

    /// Builds the configuration from an environment map and optional TOML text; the
    /// environment wins over the file.
    pub fn from_sources(
        env: &HashMap<String, String>,
        toml_text: Option<&str>,
    ) -> Result<Self, ConfigError> {
        let file: HashMap<String, String> = match toml_text {
            None => HashMap::new(),
            Some(text) => parse_toml(text)?,
        };
        let get = |name: &'static str| -> Option<String> {
            env.get(name)
                .cloned()
                .or_else(|| file.get(&name.to_ascii_lowercase()).cloned())
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };

        let encryption_key = get("ENCRYPTION_KEY")
            .map(|v| {
                v.parse::<EncryptionKey>()
                    .map_err(|e| ConfigError::new("ENCRYPTION_KEY", e.to_string()))
            })
            .transpose()?;
        let owner_ids = match get("OWNER_IDS") {
            None => Vec::new(),
            Some(v) => v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| parse_snowflake("OWNER_IDS", s))
                .collect::<Result<_, _>>()?,
        };
        let dev_guild_id = get("DEV_GUILD_ID")
            .map(|v| parse_snowflake("DEV_GUILD_ID", &v))
            .transpose()?;
        let api_port = parse_port("API_PORT", get("API_PORT"), 3001)?;
        let ws_port = parse_port("WS_PORT", get("WS_PORT"), 3002)?;
        if api_port == ws_port && api_port != 0 {
            return Err(ConfigError::new(
                "WS_PORT",
                format!("WS_PORT and API_PORT are both {api_port}; give the WebSocket gateway its own port"),
            ));
        }
        let mongodb_db = get("MONGODB_DB").unwrap_or_else(|| "heimdall".into());
        validate_db_name("MONGODB_DB", &mongodb_db)?;
        let mongodb_uri = get("MONGODB_URI");
        if let Some(uri) = &mongodb_uri {
            validate_mongo_uri("MONGODB_URI", uri)?;
        }
        let dashboard_origins = get("DASHBOARD_ORIGINS")
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().trim_end_matches('/').to_string())
                    .filter(|s| !s.is_empty())
                    .map(|s| {
                        if s.starts_with("http://") || s.starts_with("https://") {
                            Ok(s)
                        } else {
                            Err(ConfigError::new(
                                "DASHBOARD_ORIGINS",
                                format!("{s:?} is not an origin; expected comma-separated origins like https://dash.example.com"),
                            ))
                        }
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();
        let auth_secret = get("AUTH_SECRET").map(Secret::new);
        if let Some(s) = &auth_secret {
            if s.expose().len() < 32 {
                return Err(ConfigError::new(
                    "AUTH_SECRET",
                    "must be at least 32 characters long (a random string, e.g. `openssl rand -hex 32`)",
                ));
            }
        }

        let auth_max_ttl = match get("AUTH_MAX_TTL") {
            None => DEFAULT_MAX_TTL,
            Some(v) => heimdall_base::settings::parse_duration(&v)
                .map_err(|e| ConfigError::new("AUTH_MAX_TTL", e))?,
        };

        let redis_url = get("REDIS_URL");
        if let Some(u) = &redis_url {
            if !(u.starts_with("redis://")
                || u.starts_with("rediss://")
                || u.starts_with("unix://"))
            {
                return Err(ConfigError::new(
                    "REDIS_URL",
                    format!(
                        "{:?} is not a Redis URL; expected redis://host:port",
                        redact_uri(u)
                    ),
                ));
            }
        }
        let discord_api_proxy = get("DISCORD_API_PROXY");
        if let Some(p) = &discord_api_proxy {
            if !(p.starts_with("http://") || p.starts_with("https://")) {
                return Err(ConfigError::new(
                    "DISCORD_API_PROXY",
                    format!("{p:?} is not an HTTP base URL; expected e.g. http://127.0.0.1:3000"),
                ));
            }
        }
        let discord_client_id = get("DISCORD_CLIENT_ID")
            .map(|v| parse_snowflake("DISCORD_CLIENT_ID", &v))
            .transpose()?;
        let dashboard_url = match get("DASHBOARD_URL") {
            None => None,
            Some(u) => {
                let u = u.trim_end_matches('/').to_string();
                let rest = u
                    .strip_prefix("https://")
                    .or_else(|| u.strip_prefix("http://"));
                if rest.is_none_or(|r| r.is_empty() || r.contains(['?', '#', ' '])) {
                    return Err(ConfigError::new(
                        "DASHBOARD_URL",
                        format!("{u:?} is not the dashboard's address; expected e.g. https://bot.example.org"),
                    ));
                }
                Some(u)
            }
        };
        let mut http = crate::http::HttpConfig::default();
        for (setting, slot) in [
            ("HTTP_HEADER_TIMEOUT", &mut http.header_timeout),
            ("HTTP_BODY_TIMEOUT", &mut http.body_timeout),
        ] {
            if let Some(v) = get(setting) {
                *slot = heimdall_base::settings::parse_duration(&v)
                    .map_err(|e| ConfigError::new(setting, e))?;
            }
        }
        for (setting, slot) in [
            ("HTTP_MAX_CONNECTIONS", &mut http.limits.total),
            (
                "HTTP_MAX_CONNECTIONS_PER_ADDRESS",
                &mut http.limits.per_address,
            ),
            (
                "HTTP_MAX_PENDING_PER_ADDRESS",
                &mut http.limits.pending_per_address,
            ),
        ] {
            if let Some(v) = get(setting) {
                *slot = heimdall_base::settings::parse_positive(setting, &v)?;
            }
        }
        // Read by the migration engine from the process environment; checked here so that a
        // typo stops the start instead of quietly becoming the default.
        for setting in [
            "HEIMDALL_MIGRATION_LEASE_SECS",
            "HEIMDALL_MIGRATION_STALL_SECS",
            "HEIMDALL_MIGRATION_READ_WAIT_SECS",
            "HEIMDALL_MIGRATION_PARALLELISM",
        ] {
            if let Some(v) = env.get(setting).filter(|v| !v.trim().is_empty()) {
                heimdall_base::settings::parse_positive(setting, v)?;
            }
        }
        Ok(Self {
            http,
            discord_api_proxy,
            // The gateway reads its own settings, from the file too (the environment wins).
            gateway: crate::gateway::GatewayConfig::from_vars(
                &file
                    .iter()
                    .map(|(k, v)| (k.to_ascii_uppercase(), v.clone()))
                    .chain(env.iter().map(|(k, v)| (k.clone(), v.clone())))
                    .collect(),
            ),
            redis_url: redis_url.map(Secret::new),
            discord_token: get("DISCORD_TOKEN").map(Secret::new),
            mongodb_uri: mongodb_uri.map(Secret::new),
            mongodb_db,
            owner_ids,
            dev_guild_id,
            encryption_key,
            auth_secret,
            auth_max_ttl,
            api_port,
            ws_port,
            dashboard_origins,
            data_dir: get("HEIMDALL_DATA_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("data")),
            bind_address: get("HEIMDALL_BIND").unwrap_or_else(|| "127.0.0.1".into()),
            discord_client_id,
            discord_client_secret: get("DISCORD_CLIENT_SECRET").map(Secret::new),
            dashboard_url,
            shards: Shards::parse(get("SHARD_ID").as_deref(), get("SHARD_COUNT").as_deref())?,
        })
    }
}

fn parse_toml(text: &str) -> Result<HashMap<String, String>, ConfigError> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        ConfigError::new(
            "HEIMDALL_CONFIG",
            format!("heimdall.toml is not valid TOML: {}", e.message()),
        )
    })?;
    let mut out = HashMap::new();
    for (k, v) in table {
        let value = match v {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Array(items) => items
                .iter()
                .map(|i| match i {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(","),
            other => other.to_string(),
        };
        out.insert(k.to_ascii_lowercase(), value);
    }
    Ok(out)
}

/// Parses a Discord snowflake (a positive integer of up to 20 digits).
pub fn parse_snowflake(setting: &'static str, s: &str) -> Result<u64, ConfigError> {
    match s.parse::<u64>() {
        Ok(v) if v > 0 => Ok(v),
        _ => Err(ConfigError::new(
            setting,
            format!("{s:?} is not a Discord id; expected a number like 123456789012345678"),
        )),
    }
}

fn parse_port(setting: &'static str, v: Option<String>, default: u16) -> Result<u16, ConfigError> {
    match v {
        None => Ok(default),
        Some(v) => v.parse::<u16>().map_err(|_| {
            ConfigError::new(
                setting,
                format!("{v:?} is not a port; expected a number from 1 to 65535"),
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::Shards;

    #[test]
    fn shards_are_one_number_or_a_range_within_the_count() {
        assert_eq!(Shards::parse(None, None).unwrap(), None);
        assert_eq!(
            Shards::parse(Some("1"), Some("4")).unwrap(),
            Some(Shards {
                first: 1,
                last: 1,
                total: 4
            })
        );
        assert_eq!(
            Shards::parse(Some("0-1"), Some("4")).unwrap(),
            Some(Shards {
                first: 0,
                last: 1,
                total: 4
            })
        );
        for (id, count, setting, says) in [
            (Some("4"), Some("4"), "SHARD_ID", "numbered 0 to 3"),
            (Some("2-1"), Some("4"), "SHARD_ID", "lower shard first"),
            (Some("x"), Some("4"), "SHARD_ID", "not a shard number"),
            (Some("0"), Some("0"), "SHARD_COUNT", "positive whole number"),
            (Some("0"), None, "SHARD_COUNT", "is missing"),
            (None, Some("2"), "SHARD_ID", "is missing"),
        ] {
            let e = Shards::parse(id, count).unwrap_err().to_string();
            assert!(
                e.contains(setting) && e.contains(says),
                "{id:?}/{count:?}: {e}"
            );
        }
    }
}
