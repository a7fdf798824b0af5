//! Minecraft: a guild's server (RCON), linked players and pending link codes.

pub mod sample;

use mongodb::bson::{oid::ObjectId, DateTime, Document};
use serde::{Deserialize, Serialize};

use heimdall_host::guild_config::{ConfigField, ConfigSpec, FieldKind};
use heimdall_host::plugin::{CloneStepSpec, CollectionSpec, Plugin};

/// The Minecraft plugin.
pub struct MinecraftPlugin;

/// The minecraft plugin's strings (`locales/`).
pub static STRINGS: heimdall_host::locales::Strings = heimdall_host::strings!();

#[async_trait::async_trait]
impl Plugin for MinecraftPlugin {
    fn samples(&self) -> Option<&dyn heimdall_host::seed::Samples> {
        Some(self)
    }
    fn name(&self) -> &'static str {
        "minecraft"
    }
    fn description(&self) -> &'static str {
        "Links Discord members to Minecraft players and talks to the server over RCON"
    }
    fn strings(&self) -> Option<&'static heimdall_host::locales::Strings> {
        Some(&STRINGS)
    }
    fn config(&self) -> Option<ConfigSpec> {
        Some(ConfigSpec::new::<MinecraftConfig>(
            "minecraft_configs",
            vec![
                ConfigField::new("enabled", FieldKind::Bool),
                ConfigField::new("host", FieldKind::Text { max: 253 }),
                ConfigField::new("rconPort", FieldKind::Integer { min: 1, max: 65535 }),
                ConfigField::new(
                    "rconPassword",
                    FieldKind::Secret {
                        stored_as: "encryptedRconPassword",
                        max: 256,
                    },
                ),
            ],
        ))
    }
    fn collections(&self) -> Vec<CollectionSpec> {
        vec![
            CollectionSpec::new("minecraft_configs", "MinecraftConfig")
                .unique(&["guildId"])
                .encrypted(&["encryptedRconPassword"]),
            CollectionSpec::new("minecraft_players", "MinecraftPlayer")
                .unique(&["guildId", "minecraftUuid"]),
            CollectionSpec::new("minecraft_link_requests", "MinecraftLinkRequest")
                .unique(&["guildId", "code"])
                .ttl("expiresAt", 0),
        ]
    }
    fn clone_steps(&self) -> Vec<CloneStepSpec> {
        vec![
            CloneStepSpec::new("Minecraft config", &["minecraft_configs"]),
            CloneStepSpec::new(
                "Minecraft players",
                &["minecraft_players", "minecraft_link_requests"],
            ),
        ]
    }
}

/// `minecraft_configs`: the guild's server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MinecraftConfig {
    /// Document id.
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    pub id: Option<ObjectId>,
    /// Guild snowflake.
    pub guild_id: String,
    /// Server host.
    #[serde(default)]
    pub host: Option<String>,
    /// RCON port.
    #[serde(default)]
    pub rcon_port: Option<i32>,
    /// Encrypted RCON password.
    #[serde(default)]
    pub encrypted_rcon_password: Option<String>,
    /// Whether the integration is on.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Fields this struct does not name; kept on write.
    #[serde(flatten)]
    pub extra: Document,
}

/// `minecraft_players`: a linked player.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MinecraftPlayer {
    /// Document id.
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    pub id: Option<ObjectId>,
    /// Guild snowflake.
    pub guild_id: String,
    /// Player UUID.
    pub minecraft_uuid: String,
    /// Linked Discord user.
    #[serde(default)]
    pub discord_id: Option<String>,
    /// Player name.
    #[serde(default)]
    pub username: Option<String>,
    /// Fields this struct does not name; kept on write.
    #[serde(flatten)]
    pub extra: Document,
}

/// `minecraft_link_requests`: a pending link code (expires by TTL).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MinecraftLinkRequest {
    /// Document id.
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    pub id: Option<ObjectId>,
    /// Guild snowflake.
    pub guild_id: String,
    /// The code the player types in game.
    pub code: String,
    /// Discord user.
    pub discord_id: String,
    /// Player UUID.
    #[serde(default)]
    pub minecraft_uuid: Option<String>,
    /// Expiry.
    pub expires_at: DateTime,
    /// Fields this struct does not name; kept on write.
    #[serde(flatten)]
    pub extra: Document,
}
