//! What moderators do with cases, as plain functions: `/warn` and the dashboard's
//! infractions page call these, and each change is announced to the server's room
//! (`moderation:infraction_created|updated`, with who did it).

use futures::TryStreamExt;
use mongodb::bson::{doc, DateTime, Document};
use serde::Serialize;
use serde_json::json;

use heimdall_host::context::Data;
use heimdall_host::error::{UserError, UserErrorKind};

use crate::Infraction;

/// The collection.
pub const INFRACTIONS: &str = "infractions";
/// Longest reason: Discord's audit-log reason limit.
pub const MAX_REASON: usize = 512;
/// The case types.
pub const KINDS: &[&str] = &["warn", "mute", "kick", "ban", "timeout"];

/// A case as the dashboard shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CaseView {
    /// Case number.
    pub case_number: i32,
    /// The member.
    pub user_id: String,
    /// The moderator.
    pub moderator_id: String,
    /// `warn`, `mute`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// Reason.
    pub reason: Option<String>,
    /// Points.
    pub points: i32,
    /// `manual`, `automod` or `legacy`.
    pub source: String,
    /// When, milliseconds since the epoch.
    pub created_at: i64,
    /// Whether it was pardoned, by whom and why.
    pub pardoned: bool,
    /// Who pardoned it.
    pub pardoned_by: Option<String>,
    /// Why.
    pub pardon_reason: Option<String>,
}

impl From<Infraction> for CaseView {
    fn from(i: Infraction) -> Self {
        Self {
            pardoned: i.extra.get_bool("pardoned").unwrap_or(false),
            pardoned_by: i.extra.get_str("pardonedBy").ok().map(String::from),
            pardon_reason: i.extra.get_str("pardonReason").ok().map(String::from),
            case_number: i.case_number,
            user_id: i.user_id,
            moderator_id: i.moderator_id,
            kind: i.kind,
            reason: i.reason,
            points: i.points,
            source: i.source,
            created_at: i.created_at.timestamp_millis(),
        }
    }
}

/// One page of CaseViews.
pub type CasePage = heimdall_host::extract::Page<CaseView, i32>;

/// Which cases to list.
#[derive(Debug, Clone, Default)]
pub struct CaseFilter {
    /// One member's.
    pub user: Option<String>,
    /// One type.
    pub kind: Option<String>,
    /// One case.
    pub case: Option<i32>,
    /// Older than this case number.
    pub before: Option<i32>,
}

fn coll(data: &Data) -> mongodb::Collection<Infraction> {
    data.db.collection(INFRACTIONS)
}

fn check_reason(reason: Option<&str>) -> Result<Option<String>, UserError> {
    match reason.map(str::trim).filter(|r| !r.is_empty()) {
        Some(r) if r.chars().count() > MAX_REASON => Err(UserError::bad_request(
            "invalid_reason",
            format!("a reason is at most {MAX_REASON} characters"),
        )),
        r => Ok(r.map(String::from)),
    }
}

/// A server's cases, newest first.
pub async fn list(
    data: &Data,
    guild: &str,
    f: &CaseFilter,
    limit: i64,
) -> anyhow::Result<CasePage> {
    let limit = CasePage::limit(limit);
    let mut filter = doc! { "guildId": guild };
    if let Some(u) = &f.user {
        filter.insert("userId", u);
    }
    if let Some(k) = &f.kind {
        if !KINDS.contains(&k.as_str()) {
            return Err(UserError::bad_request(
                "invalid_type",
                format!("{k:?} is not a case type; one of {}", KINDS.join(", ")),
            )
            .into());
        }
        filter.insert("type", k);
    }
    match (f.case, f.before) {
        (Some(c), _) => {
            filter.insert("caseNumber", c);
        }
        (None, Some(b)) => {
            filter.insert("caseNumber", doc! { "$lt": b });
        }
        _ => {}
    }
    let items: Vec<CaseView> = coll(data)
        .find(filter)
        .sort(doc! { "caseNumber": -1 })
        .limit(limit + 1)
        .await?
        .map_ok(CaseView::from)
        .try_collect()
        .await?;
    Ok(CasePage::of(items, limit, |c| c.case_number))
}

/// Warns `user`: a new case with the next number.
pub async fn warn(
    data: &Data,
    guild: &str,
    user: u64,
    moderator: u64,
    reason: Option<&str>,
) -> anyhow::Result<CaseView> {
    let reason = check_reason(reason)?;
    // The next number; two moderators at once: the second insert retries with the next.
    for _ in 0..10 {
        let last = data
            .db
            .collection::<Document>(INFRACTIONS)
            .find_one(doc! { "guildId": guild })
            .sort(doc! { "caseNumber": -1 })
            .projection(doc! { "caseNumber": 1 })
            .await?
            .and_then(|d| match d.get("caseNumber") {
                Some(mongodb::bson::Bson::Int32(n)) => Some(*n),
                Some(mongodb::bson::Bson::Int64(n)) => i32::try_from(*n).ok(),
                _ => None,
            })
            .unwrap_or(0);
        let case = Infraction {
            id: None,
            guild_id: guild.to_string(),
            case_number: last + 1,
            user_id: user.to_string(),
            moderator_id: moderator.to_string(),
            kind: "warn".into(),
            reason: reason.clone(),
            points: 1,
            rule_id: None,
            created_at: DateTime::now(),
            expires_at: None,
            source: "manual".into(),
            extra: Document::new(),
        };
        match coll(data).insert_one(&case).await {
            Ok(_) => {
                let view = CaseView::from(case);
                tracing::info!(
                    guild,
                    case = view.case_number,
                    user,
                    moderator,
                    "member warned"
                );
                data.ws.broadcast_to_guild(
                    guild,
                    "moderation:infraction_created",
                    json!({ "by": moderator.to_string(), "infraction": view }),
                );
                tell(data, guild, &view).await;
                return Ok(view);
            }
            Err(e) if heimdall_host::db::is_duplicate_key(&e) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    anyhow::bail!("could not number the case: too many at once")
}

/// Tells the member by DM, and the server's mod log channel (when set), of a new case, in
/// the server's language. Discord refusing (closed DMs, a deleted channel) is logged: the case
/// stands.
async fn tell(data: &Data, guild: &str, case: &CaseView) {
    use poise::serenity_prelude as serenity;
    let Some(http) = data.discord.as_deref() else {
        return;
    };
    let lang = heimdall_plugin_core::guild_locale(data, guild).await;
    let reason = case.reason.clone().unwrap_or_else(|| "—".into());
    let number = case.case_number.to_string();
    let dm = crate::STRINGS.t_in(&lang, "warn-dm", &[("case", &number), ("reason", &reason)]);
    if let Ok(member) = case.user_id.parse::<u64>() {
        let sent = async {
            let channel = serenity::UserId::new(member)
                .create_dm_channel(http)
                .await?;
            channel
                .id
                .send_message(http, serenity::CreateMessage::new().content(dm))
                .await
        }
        .await;
        if let Err(e) = sent {
            tracing::info!(error = %e, guild, member, "could not tell the member of their case by DM");
        }
    }
    let log_channel = data
        .db
        .collection::<crate::ModerationConfig>("moderation_configs")
        .find_one(doc! { "guildId": guild })
        .await
        .ok()
        .flatten()
        .and_then(|c| c.mod_log_channel_id)
        .and_then(|c| c.parse::<u64>().ok());
    if let Some(channel) = log_channel {
        let line = crate::STRINGS.t_in(
            &lang,
            "warn-log",
            &[
                ("case", &number),
                ("member", &format!("<@{}>", case.user_id)),
                ("moderator", &format!("<@{}>", case.moderator_id)),
                ("reason", &reason),
            ],
        );
        let allowed = serenity::CreateAllowedMentions::new();
        if let Err(e) = serenity::ChannelId::new(channel)
            .send_message(
                http,
                serenity::CreateMessage::new()
                    .content(line)
                    .allowed_mentions(allowed),
            )
            .await
        {
            tracing::warn!(error = %e, guild, channel, "could not write the case to the mod log channel");
        }
    }
}

/// Pardons case `case`: it stays on record, marked pardoned.
pub async fn pardon(
    data: &Data,
    guild: &str,
    case: i32,
    by: u64,
    reason: Option<&str>,
) -> anyhow::Result<CaseView> {
    let reason = check_reason(reason)?;
    let updated = coll(data)
        .find_one_and_update(
            doc! { "guildId": guild, "caseNumber": case },
            doc! { "$set": {
                "pardoned": true, "pardonedBy": by.to_string(), "pardonedAt": DateTime::now(),
                "pardonReason": reason,
            } },
        )
        .return_document(mongodb::options::ReturnDocument::After)
        .await?
        .ok_or_else(|| {
            UserError::new(
                UserErrorKind::NotFound,
                "no_such_case",
                format!("there is no case #{case} in this server"),
            )
        })?;
    let view = CaseView::from(updated);
    data.ws.broadcast_to_guild(
        guild,
        "moderation:infraction_updated",
        json!({ "by": by.to_string(), "infraction": view }),
    );
    Ok(view)
}
