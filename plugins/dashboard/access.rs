//! Who may open a server's dashboard, managed on the dashboard itself: the server's
//! `dashboard_permissions` entries (a user, or a role). Anyone with access sees the list;
//! only those with Manage Server there (and the bot's owners) change it. Each change is
//! announced to the server's room (`dashboard:access_updated`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use futures::TryStreamExt;
use heimdall_host::routes::{Access, Routes};
use mongodb::bson::{doc, Document};
use serde::{Deserialize, Serialize};
use serde_json::json;

use heimdall_host::auth::AuthUser;
use heimdall_host::context::Data;
use heimdall_host::error::{AppError, UserError, UserErrorKind};
use heimdall_host::extract::JsonBody;

use crate::PERMISSIONS;

/// The routes.
pub fn routes() -> Routes {
    use Access::GuildStaff;
    Routes::new()
        .get(
            "/api/guilds/{guild}/dashboard/access",
            GuildStaff,
            "Who may open the server's dashboard, and whether the caller may change it",
            list,
        )
        .post(
            "/api/guilds/{guild}/dashboard/access",
            GuildStaff,
            "Give a user or a role access (Manage Server needed): `{targetType, targetId}`",
            grant,
        )
        .delete(
            "/api/guilds/{guild}/dashboard/access/{kind}/{target}",
            GuildStaff,
            "Take a user's or a role's access away (Manage Server needed)",
            revoke,
        )
}

/// One entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Entry {
    /// `user` or `role`.
    pub target_type: String,
    /// The user's or role's id.
    pub target_id: String,
}

async fn entries(data: &Data, guild: &str) -> anyhow::Result<Vec<Entry>> {
    Ok(data
        .db
        .collection::<Document>(PERMISSIONS)
        .find(doc! { "guildId": guild })
        .sort(doc! { "targetType": 1, "targetId": 1 })
        .await?
        .try_collect::<Vec<_>>()
        .await?
        .into_iter()
        .filter_map(|d| {
            Some(Entry {
                target_type: d.get_str("targetType").ok()?.to_string(),
                target_id: d.get_str("targetId").ok()?.to_string(),
            })
        })
        .collect())
}

/// `GET .../dashboard/access`: the entries, and whether the caller may change them.
async fn list(
    State(data): State<Data>,
    user: AuthUser,
    Path(guild): Path<String>,
) -> Result<Json<serde_json::Value>, AppError> {
    user.require_guild(&data, &guild).await?;
    let manage = may_manage(&data, &user, &guild).await?;
    Ok(Json(
        json!({ "entries": entries(&data, &guild).await?, "mayManage": manage }),
    ))
}

async fn may_manage(data: &Data, user: &AuthUser, guild: &str) -> Result<bool, AppError> {
    if user.owner {
        return Ok(true);
    }
    match data.access() {
        Some(a) => Ok(a
            .may_manage(guild, user.id)
            .await
            .map_err(|e| AppError::from(e.context("checking Manage Server")))?),
        None => Ok(false),
    }
}

async fn require_manage(data: &Data, user: &AuthUser, guild: &str) -> Result<(), AppError> {
    user.require_guild(data, guild).await?;
    if may_manage(data, user, guild).await? {
        return Ok(());
    }
    Err(UserError::new(
        UserErrorKind::Forbidden,
        "manage_server_needed",
        "only members with Manage Server in this server (and the bot's owners) change who may open its dashboard",
    )
    .into())
}

fn check(entry: &Entry) -> Result<(), AppError> {
    if !["user", "role"].contains(&entry.target_type.as_str()) {
        return Err(UserError::bad_request(
            "invalid_target_type",
            format!("{:?} is not user or role", entry.target_type),
        )
        .into());
    }
    let id = &entry.target_id;
    if !heimdall_host::ids::is_snowflake(id) {
        return Err(UserError::bad_request(
            "invalid_target_id",
            format!(
                "`targetId` must be a {} id (a snowflake, as text: digits only)",
                entry.target_type
            ),
        )
        .into());
    }
    Ok(())
}

/// `POST .../dashboard/access` `{targetType, targetId}`: gives a user or a role access.
async fn grant(
    State(data): State<Data>,
    user: AuthUser,
    Path(guild): Path<String>,
    JsonBody(entry): JsonBody<Entry>,
) -> Result<(StatusCode, Json<Entry>), AppError> {
    require_manage(&data, &user, &guild).await?;
    check(&entry)?;
    if entry.target_type == "role" {
        if let Some(server) = data.lookups.server(data.discord.as_deref(), &guild).await? {
            if !server.has_role(&entry.target_id) {
                return Err(UserError::bad_request(
                    "invalid_target_id",
                    "`targetId` is not a role of this server",
                )
                .into());
            }
        }
    }
    let found = data
        .db
        .collection::<Document>(PERMISSIONS)
        .update_one(
            doc! { "guildId": &guild, "targetType": &entry.target_type, "targetId": &entry.target_id },
            doc! { "$setOnInsert": { "permissions": ["view", "edit"], "grantedBy": user.id.to_string() } },
        )
        .upsert(true)
        .await?;
    if found.upserted_id.is_none() {
        return Err(UserError::new(
            UserErrorKind::Conflict,
            "already_granted",
            format!("this {} already has access", entry.target_type),
        )
        .into());
    }
    tracing::info!(guild, by = user.id, target = %entry.target_id, kind = %entry.target_type, "dashboard access granted");
    announce(&data, &guild, user.id).await?;
    Ok((StatusCode::CREATED, Json(entry)))
}

/// `DELETE .../dashboard/access/{user|role}/{id}`.
async fn revoke(
    State(data): State<Data>,
    user: AuthUser,
    Path((guild, kind, target)): Path<(String, String, String)>,
) -> Result<StatusCode, AppError> {
    require_manage(&data, &user, &guild).await?;
    let gone = data
        .db
        .collection::<Document>(PERMISSIONS)
        .delete_one(doc! { "guildId": &guild, "targetType": &kind, "targetId": &target })
        .await?;
    if gone.deleted_count == 0 {
        return Err(UserError::new(
            UserErrorKind::NotFound,
            "no_such_entry",
            format!("no {kind} {target} has access here"),
        )
        .into());
    }
    // A member's open pages stop hearing of the server at once (a role's members are not
    // known here: their sockets are refused at their next join).
    let closed = match (kind.as_str(), target.parse::<u64>()) {
        ("user", Ok(member)) => data.ws.leave_room(member, &guild),
        _ => 0,
    };
    tracing::info!(guild, by = user.id, %target, %kind, closed, "dashboard access revoked");
    announce(&data, &guild, user.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn announce(data: &Data, guild: &str, by: u64) -> anyhow::Result<()> {
    data.ws.broadcast_to_guild(
        guild,
        "dashboard:access_updated",
        json!({ "by": by.to_string(), "entries": entries(data, guild).await? }),
    );
    Ok(())
}
