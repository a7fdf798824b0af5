//! Core: per-guild configuration, per-guild secrets and bot-wide settings.

pub mod legacy;
pub mod sample;

use mongodb::bson::{oid::ObjectId, Bson, DateTime, Document};
use serde::{Deserialize, Serialize};

use heimdall_host::context::{Context, Error};
use heimdall_host::guild_config::{ConfigField, ConfigSpec, FieldKind};
use heimdall_host::plugin::{CloneStepSpec, CollectionSpec, Plugin};

/// The core plugin's strings (`locales/`).
pub static STRINGS: heimdall_host::locales::Strings = heimdall_host::strings!();

/// The core plugin.
pub struct CorePlugin;

#[async_trait::async_trait]
impl Plugin for CorePlugin {
    fn samples(&self) -> Option<&dyn heimdall_host::seed::Samples> {
        Some(self)
    }
    fn name(&self) -> &'static str {
        "core"
    }
    fn description(&self) -> &'static str {
        "Guild configuration, guild secrets and bot-wide settings"
    }
    fn config(&self) -> Option<ConfigSpec> {
        Some(ConfigSpec::new::<GuildConfig>(
            "guild_configs",
            vec![
                ConfigField::new("prefix", FieldKind::Text { max: 5 }),
                ConfigField::new("locale", FieldKind::Choice(&["en-US", "de"])),
            ],
        ))
    }
    fn collections(&self) -> Vec<CollectionSpec> {
        vec![
            CollectionSpec::new("guild_configs", "GuildConfig").unique(&["guildId"]),
            CollectionSpec::new("guild_envs", "GuildEnv")
                .unique(&["guildId", "key"])
                .encrypted(&["encryptedValue"]),
            CollectionSpec::new("bot_settings", "BotSetting")
                .unique(&["key"])
                .global(),
        ]
    }
    fn clone_steps(&self) -> Vec<CloneStepSpec> {
        vec![CloneStepSpec::new(
            "Core settings",
            &["guild_configs", "guild_envs", "bot_settings"],
        )]
    }
    fn legacy_steps(&self) -> Vec<heimdall_host::migration::legacy::LegacyStepSpec> {
        legacy::steps()
    }
    fn strings(&self) -> Option<&'static heimdall_host::locales::Strings> {
        Some(&STRINGS)
    }
    fn commands(&self) -> Vec<poise::Command<heimdall_host::context::Data, Error>> {
        vec![about()]
    }
}

/// The language a server chose (`guild_configs.locale`), for what the bot says there without
/// a user to follow: e.g. `de`; the default when none is set.
pub async fn guild_locale(data: &heimdall_host::context::Data, guild: &str) -> String {
    data.db
        .collection::<GuildConfig>("guild_configs")
        .find_one(mongodb::bson::doc! { "guildId": guild })
        .await
        .ok()
        .flatten()
        .and_then(|c| c.locale)
        .unwrap_or_else(|| heimdall_host::locales::DEFAULT_LOCALE.to_string())
}

/// Shows Heimdall's version and its plugins.
#[poise::command(
    slash_command,
    ephemeral,
    name_localized("de", "info"),
    description_localized("de", "Zeigt Heimdalls Version und seine Plugins")
)]
pub async fn about(ctx: Context<'_>) -> Result<(), Error> {
    let names = ctx.data().registry.plugin_names().join(", ");
    ctx.say(STRINGS.t_in(
        ctx.locale().unwrap_or_default(),
        "about",
        &[("version", env!("CARGO_PKG_VERSION")), ("plugins", &names)],
    ))
    .await?;
    Ok(())
}

/// `guild_configs`: a guild's basic settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GuildConfig {
    /// Document id.
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    pub id: Option<ObjectId>,
    /// Guild snowflake.
    pub guild_id: String,
    /// Text command prefix.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Locale, e.g. `en-US`.
    #[serde(default)]
    pub locale: Option<String>,
    /// Enabled plugin names.
    #[serde(default)]
    pub enabled_plugins: Vec<String>,
    /// Creation time.
    #[serde(default)]
    pub created_at: Option<DateTime>,
    /// Fields this struct does not name; kept on write.
    #[serde(flatten)]
    pub extra: Document,
}

/// `guild_envs`: an encrypted per-guild secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GuildEnv {
    /// Document id.
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    pub id: Option<ObjectId>,
    /// Guild snowflake.
    pub guild_id: String,
    /// Variable name.
    pub key: String,
    /// `v1:<nonce>:<ciphertext>`.
    pub encrypted_value: String,
    /// Last change.
    #[serde(default)]
    pub updated_at: Option<DateTime>,
    /// Fields this struct does not name; kept on write.
    #[serde(flatten)]
    pub extra: Document,
}

/// `bot_settings`: a bot-wide setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BotSetting {
    /// Document id.
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    pub id: Option<ObjectId>,
    /// Setting name.
    pub key: String,
    /// Any BSON value.
    #[serde(default)]
    pub value: Bson,
    /// Fields this struct does not name; kept on write.
    #[serde(flatten)]
    pub extra: Document,
}
