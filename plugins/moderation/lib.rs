//! Moderation: settings, automod presets and rules, infractions (cases) and notes.

pub mod legacy;
pub mod ops;
pub mod sample;

use mongodb::bson::{oid::ObjectId, DateTime, Document};
use serde::{Deserialize, Serialize};

use axum::extract::{Path, Query, State};
use axum::Json;
use heimdall_host::auth::AuthUser;
use heimdall_host::context::{Context, Data, Error};
use heimdall_host::error::AppError;
use heimdall_host::extract::JsonBody;
use heimdall_host::guild_config::{ConfigField, ConfigSpec, FieldKind};
use heimdall_host::plugin::{CloneStepSpec, CollectionSpec, Plugin};
use heimdall_host::routes::{Access, Routes};
use poise::serenity_prelude as serenity;

/// The moderation plugin's strings (`locales/`).
pub static STRINGS: heimdall_host::locales::Strings = heimdall_host::strings!();

/// The moderation plugin.
pub struct ModerationPlugin;

#[async_trait::async_trait]
impl Plugin for ModerationPlugin {
    fn samples(&self) -> Option<&dyn heimdall_host::seed::Samples> {
        Some(self)
    }
    fn name(&self) -> &'static str {
        "moderation"
    }
    fn description(&self) -> &'static str {
        "Warnings, mutes, kicks and bans as numbered cases, automod rules and mod notes"
    }
    fn config(&self) -> Option<ConfigSpec> {
        Some(ConfigSpec::new::<ModerationConfig>(
            "moderation_configs",
            vec![
                ConfigField::new("muteRoleId", FieldKind::Role),
                ConfigField::new("modLogChannelId", FieldKind::Channel),
                ConfigField::new("automodEnabled", FieldKind::Bool),
            ],
        ))
    }
    fn collections(&self) -> Vec<CollectionSpec> {
        vec![
            CollectionSpec::new("moderation_configs", "ModerationConfig").unique(&["guildId"]),
            CollectionSpec::new("automod_presets", "AutomodPreset").unique(&["guildId", "name"]),
            CollectionSpec::new("automod_rules", "AutomodRule")
                .unique(&["guildId", "name"])
                .optional_reference("presetId", "automod_presets"),
            CollectionSpec::new("infractions", "Infraction")
                .unique(&["guildId", "caseNumber"])
                .optional_reference("ruleId", "automod_rules"),
            CollectionSpec::new("mod_notes", "ModNote"),
        ]
    }
    fn clone_steps(&self) -> Vec<CloneStepSpec> {
        vec![
            CloneStepSpec::new(
                "Moderation config",
                &["moderation_configs", "automod_presets"],
            ),
            CloneStepSpec::new("Automod rules", &["automod_rules"]),
            CloneStepSpec::new("Infractions", &["infractions", "mod_notes"]),
        ]
    }
    fn legacy_steps(&self) -> Vec<heimdall_host::migration::legacy::LegacyStepSpec> {
        legacy::steps()
    }
    fn strings(&self) -> Option<&'static heimdall_host::locales::Strings> {
        Some(&STRINGS)
    }
    fn commands(&self) -> Vec<poise::Command<Data, Error>> {
        vec![warn()]
    }
    fn routes(&self) -> Routes {
        use Access::GuildStaff;
        Routes::new()
            .get(
                "/api/guilds/{guild}/moderation/infractions",
                GuildStaff,
                "The server's cases, newest first (`?user=&type=&case=&before=&limit=`)",
                list_cases,
            )
            .post(
                "/api/guilds/{guild}/moderation/infractions/{case}/pardon",
                GuildStaff,
                "Pardon a case: `{reason?}`",
                pardon_case,
            )
    }
}

/// `?user=&type=&case=&before=&limit=` of the infractions list.
#[derive(Debug, Deserialize)]
pub struct CaseQuery {
    user: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    case: Option<i32>,
    before: Option<i32>,
    limit: Option<i64>,
}

async fn list_cases(
    State(data): State<Data>,
    user: AuthUser,
    Path(guild): Path<String>,
    Query(q): Query<CaseQuery>,
) -> Result<Json<ops::CasePage>, AppError> {
    user.require_guild(&data, &guild).await?;
    let filter = ops::CaseFilter {
        user: q.user.filter(|u| !u.is_empty()),
        kind: q.kind.filter(|k| !k.is_empty()),
        case: q.case,
        before: q.before,
    };
    Ok(Json(
        ops::list(&data, &guild, &filter, q.limit.unwrap_or(50)).await?,
    ))
}

/// `POST .../infractions/{case}/pardon`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pardon {
    #[serde(default)]
    reason: Option<String>,
}

async fn pardon_case(
    State(data): State<Data>,
    user: AuthUser,
    Path((guild, case)): Path<(String, i32)>,
    JsonBody(p): JsonBody<Pardon>,
) -> Result<Json<ops::CaseView>, AppError> {
    user.require_guild(&data, &guild).await?;
    Ok(Json(
        ops::pardon(&data, &guild, case, user.id, p.reason.as_deref()).await?,
    ))
}

/// Warns a member: a numbered case on their record.
#[poise::command(
    slash_command,
    guild_only,
    ephemeral,
    default_member_permissions = "MODERATE_MEMBERS",
    name_localized("de", "verwarnen"),
    description_localized("de", "Ein Mitglied verwarnen: ein nummerierter Fall in seiner Akte")
)]
pub async fn warn(
    ctx: Context<'_>,
    #[description = "The member to warn"]
    #[name_localized("de", "mitglied")]
    #[description_localized("de", "Das zu verwarnende Mitglied")]
    member: serenity::User,
    #[description = "Why"]
    #[name_localized("de", "grund")]
    #[description_localized("de", "Warum")]
    reason: Option<String>,
) -> Result<(), Error> {
    let guild = ctx.guild_id().map(|g| g.to_string()).ok_or_else(|| {
        heimdall_host::error::UserError::bad_request("guild_only", "warnings live in a server")
    })?;
    let case = ops::warn(
        ctx.data(),
        &guild,
        member.id.get(),
        ctx.author().id.get(),
        reason.as_deref(),
    )
    .await?;
    let text = STRINGS.t_in(
        ctx.locale().unwrap_or_default(),
        "warned",
        &[
            ("member", &format!("<@{}>", member.id)),
            ("case", &case.case_number.to_string()),
        ],
    );
    ctx.say(text).await?;
    Ok(())
}

/// `moderation_configs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModerationConfig {
    /// Document id.
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    pub id: Option<ObjectId>,
    /// Guild snowflake.
    pub guild_id: String,
    /// Mute role.
    #[serde(default)]
    pub mute_role_id: Option<String>,
    /// Mod log channel.
    #[serde(default)]
    pub mod_log_channel_id: Option<String>,
    /// Whether automod is on.
    #[serde(default)]
    pub automod_enabled: Option<bool>,
    /// Fields this struct does not name; kept on write.
    #[serde(flatten)]
    pub extra: Document,
}

/// `automod_presets`: a named set of actions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AutomodPreset {
    /// Document id.
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    pub id: Option<ObjectId>,
    /// Guild snowflake.
    pub guild_id: String,
    /// Preset name (unique per guild).
    pub name: String,
    /// Actions taken.
    #[serde(default)]
    pub actions: Vec<Document>,
    /// Fields this struct does not name; kept on write.
    #[serde(flatten)]
    pub extra: Document,
}

/// `automod_rules`: a trigger and optionally a preset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AutomodRule {
    /// Document id.
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    pub id: Option<ObjectId>,
    /// Guild snowflake.
    pub guild_id: String,
    /// Rule name (unique per guild).
    pub name: String,
    /// Whether the rule is on.
    #[serde(default)]
    pub enabled: bool,
    /// Trigger definition.
    #[serde(default)]
    pub trigger: Document,
    /// Preset applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset_id: Option<ObjectId>,
    /// Fields this struct does not name; kept on write.
    #[serde(flatten)]
    pub extra: Document,
}

/// `infractions`: a numbered moderation case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Infraction {
    /// Document id.
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    pub id: Option<ObjectId>,
    /// Guild snowflake.
    pub guild_id: String,
    /// Case number (unique per guild).
    pub case_number: i32,
    /// Sanctioned member.
    pub user_id: String,
    /// Moderator.
    pub moderator_id: String,
    /// `warn`, `mute`, `kick`, `ban` or `timeout`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Reason.
    #[serde(default)]
    pub reason: Option<String>,
    /// Points.
    #[serde(default)]
    pub points: i32,
    /// The automod rule, null for manual actions.
    #[serde(default)]
    pub rule_id: Option<ObjectId>,
    /// When.
    pub created_at: DateTime,
    /// Expiry.
    #[serde(default)]
    pub expires_at: Option<DateTime>,
    /// `manual`, `automod` or `legacy`.
    pub source: String,
    /// Fields this struct does not name; kept on write.
    #[serde(flatten)]
    pub extra: Document,
}

/// `mod_notes`: a moderator's note on a member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModNote {
    /// Document id.
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    pub id: Option<ObjectId>,
    /// Guild snowflake.
    pub guild_id: String,
    /// Member.
    pub user_id: String,
    /// Author.
    pub moderator_id: String,
    /// Text.
    pub content: String,
    /// When.
    #[serde(default)]
    pub created_at: Option<DateTime>,
    /// Fields this struct does not name; kept on write.
    #[serde(flatten)]
    pub extra: Document,
}
