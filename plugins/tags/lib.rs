//! Tags: saved answers members call up by name.

pub mod legacy;
pub mod ops;
pub mod sample;

use mongodb::bson::{oid::ObjectId, DateTime, Document};
use serde::{Deserialize, Serialize};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use heimdall_host::auth::AuthUser;
use heimdall_host::context::{Context, Data, Error};
use heimdall_host::error::AppError;
use heimdall_host::extract::JsonBody;
use heimdall_host::plugin::{CloneStepSpec, CollectionSpec, Plugin};
use heimdall_host::routes::{Access, Routes};

/// The tags plugin's strings (`locales/`).
pub static STRINGS: heimdall_host::locales::Strings = heimdall_host::strings!();

/// The tags plugin.
pub struct TagsPlugin;

#[async_trait::async_trait]
impl Plugin for TagsPlugin {
    fn samples(&self) -> Option<&dyn heimdall_host::seed::Samples> {
        Some(self)
    }
    fn name(&self) -> &'static str {
        "tags"
    }
    fn description(&self) -> &'static str {
        "Saved answers called up by name"
    }
    fn collections(&self) -> Vec<CollectionSpec> {
        vec![CollectionSpec::new("tags", "Tag").unique(&["guildId", "name"])]
    }
    fn clone_steps(&self) -> Vec<CloneStepSpec> {
        vec![CloneStepSpec::new("Tags", &["tags"])]
    }
    fn legacy_steps(&self) -> Vec<heimdall_host::migration::legacy::LegacyStepSpec> {
        legacy::steps()
    }
    fn strings(&self) -> Option<&'static heimdall_host::locales::Strings> {
        Some(&STRINGS)
    }
    fn commands(&self) -> Vec<poise::Command<Data, Error>> {
        vec![tag()]
    }
    fn routes(&self) -> Routes {
        use Access::GuildStaff;
        Routes::new()
            .get(
                "/api/guilds/{guild}/tags/items",
                GuildStaff,
                "The server's tags by name, a page at a time (`?q=&after=&limit=`)",
                list_tags,
            )
            .post(
                "/api/guilds/{guild}/tags/items",
                GuildStaff,
                "Create a tag: `{name, content}`",
                create_tag,
            )
            .put(
                "/api/guilds/{guild}/tags/items/{name}",
                GuildStaff,
                "Change a tag's text: `{content}`",
                edit_tag,
            )
            .delete(
                "/api/guilds/{guild}/tags/items/{name}",
                GuildStaff,
                "Delete a tag",
                delete_tag,
            )
    }
}

/// `?q=&after=&limit=` of the tag list.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    q: Option<String>,
    after: Option<String>,
    limit: Option<i64>,
}

async fn list_tags(
    State(data): State<Data>,
    user: AuthUser,
    Path(guild): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Json<ops::TagPage>, AppError> {
    user.require_guild(&data, &guild).await?;
    Ok(Json(
        ops::list(
            &data,
            &guild,
            q.q.as_deref(),
            q.after.as_deref(),
            q.limit.unwrap_or(50),
        )
        .await?,
    ))
}

/// `POST /api/guilds/{guild}/tags/items`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTag {
    name: String,
    content: String,
}

async fn create_tag(
    State(data): State<Data>,
    user: AuthUser,
    Path(guild): Path<String>,
    JsonBody(t): JsonBody<NewTag>,
) -> Result<(StatusCode, Json<ops::TagView>), AppError> {
    user.require_guild(&data, &guild).await?;
    let tag = ops::create(&data, &guild, &t.name, &t.content, user.id).await?;
    Ok((StatusCode::CREATED, Json(tag)))
}

/// `PUT /api/guilds/{guild}/tags/items/{name}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagText {
    content: String,
}

async fn edit_tag(
    State(data): State<Data>,
    user: AuthUser,
    Path((guild, name)): Path<(String, String)>,
    JsonBody(t): JsonBody<TagText>,
) -> Result<Json<ops::TagView>, AppError> {
    user.require_guild(&data, &guild).await?;
    Ok(Json(
        ops::edit(&data, &guild, &name, &t.content, user.id).await?,
    ))
}

async fn delete_tag(
    State(data): State<Data>,
    user: AuthUser,
    Path((guild, name)): Path<(String, String)>,
) -> Result<StatusCode, AppError> {
    user.require_guild(&data, &guild).await?;
    ops::delete(&data, &guild, &name, user.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The reply to a `/tag` command's outcome: its text, or the user's mistake in their language.
fn reply(ctx: &Context<'_>, name: &str, r: Result<&str, Error>) -> Result<String, Error> {
    let locale = ctx.locale().unwrap_or_default();
    match r {
        Ok(key) => Ok(STRINGS.t_in(locale, key, &[("name", name)])),
        Err(e) => match heimdall_host::error::user_error(&e) {
            Some(u)
                if [
                    "tag_exists",
                    "no_such_tag",
                    "invalid_tag_name",
                    "invalid_tag_content",
                ]
                .contains(&u.code) =>
            {
                Ok(STRINGS.t_in(locale, &format!("err-{}", u.code), &[("name", name)]))
            }
            _ => Err(e),
        },
    }
}

/// Says how a `/tag` change went (the reply is ephemeral).
async fn answer(ctx: &Context<'_>, name: &str, done: Result<&str, Error>) -> Result<(), Error> {
    let text = reply(ctx, name, done)?;
    ctx.say(text).await?;
    Ok(())
}

fn guild_of(ctx: &Context<'_>) -> Result<String, Error> {
    ctx.guild_id().map(|g| g.to_string()).ok_or_else(|| {
        heimdall_host::error::UserError::bad_request("guild_only", "tags live in a server").into()
    })
}

/// Saved answers, called up by name.
#[poise::command(
    slash_command,
    guild_only,
    subcommands("tag_show", "tag_create", "tag_edit", "tag_delete"),
    description_localized("de", "Gespeicherte Antworten, per Name abrufbar")
)]
pub async fn tag(_ctx: Context<'_>) -> Result<(), Error> {
    Ok(())
}

/// Posts a tag's text.
#[poise::command(
    slash_command,
    guild_only,
    rename = "show",
    name_localized("de", "zeigen"),
    description_localized("de", "Den Text eines Tags posten")
)]
pub async fn tag_show(
    ctx: Context<'_>,
    #[description = "The tag's name"]
    #[description_localized("de", "Der Name des Tags")]
    name: String,
) -> Result<(), Error> {
    let guild = guild_of(&ctx)?;
    match ops::show(ctx.data(), &guild, &name, ctx.author().id.get()).await {
        Ok(t) => {
            ctx.say(t.content).await?;
        }
        Err(e) => {
            let text = reply(&ctx, &name, Err(e))?;
            ctx.send(poise::CreateReply::default().content(text).ephemeral(true))
                .await?;
        }
    }
    Ok(())
}

/// Creates a tag.
#[poise::command(
    slash_command,
    guild_only,
    rename = "create",
    name_localized("de", "anlegen"),
    description_localized("de", "Einen Tag anlegen"),
    ephemeral,
    default_member_permissions = "MANAGE_MESSAGES"
)]
pub async fn tag_create(
    ctx: Context<'_>,
    #[description = "The tag's name"]
    #[description_localized("de", "Der Name des Tags")]
    name: String,
    #[description = "Its text"]
    #[name_localized("de", "text")]
    #[description_localized("de", "Sein Text")]
    content: String,
) -> Result<(), Error> {
    let (data, by) = (ctx.data(), ctx.author().id.get());
    let guild = guild_of(&ctx)?;
    let done = ops::create(data, &guild, &name, &content, by).await;
    answer(&ctx, &name, done.map(|_| "created")).await
}

/// Changes a tag's text.
#[poise::command(
    slash_command,
    guild_only,
    rename = "edit",
    name_localized("de", "bearbeiten"),
    description_localized("de", "Den Text eines Tags ändern"),
    ephemeral,
    default_member_permissions = "MANAGE_MESSAGES"
)]
pub async fn tag_edit(
    ctx: Context<'_>,
    #[description = "The tag's name"]
    #[description_localized("de", "Der Name des Tags")]
    name: String,
    #[description = "Its new text"]
    #[name_localized("de", "text")]
    #[description_localized("de", "Sein neuer Text")]
    content: String,
) -> Result<(), Error> {
    let (data, by) = (ctx.data(), ctx.author().id.get());
    let guild = guild_of(&ctx)?;
    let done = ops::edit(data, &guild, &name, &content, by).await;
    answer(&ctx, &name, done.map(|_| "edited")).await
}

/// Deletes a tag.
#[poise::command(
    slash_command,
    guild_only,
    rename = "delete",
    name_localized("de", "loeschen"),
    description_localized("de", "Einen Tag löschen"),
    ephemeral,
    default_member_permissions = "MANAGE_MESSAGES"
)]
pub async fn tag_delete(
    ctx: Context<'_>,
    #[description = "The tag's name"]
    #[description_localized("de", "Der Name des Tags")]
    name: String,
) -> Result<(), Error> {
    let (data, by) = (ctx.data(), ctx.author().id.get());
    let guild = guild_of(&ctx)?;
    let done = ops::delete(data, &guild, &name, by).await;
    answer(&ctx, &name, done.map(|_| "deleted")).await
}

/// A tag name as stored: trimmed and lower-cased.
pub fn normalize_name(name: &str) -> String {
    name.trim().to_lowercase()
}

/// `tags`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tag {
    /// Document id.
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    pub id: Option<ObjectId>,
    /// Guild snowflake.
    pub guild_id: String,
    /// Name (lower-case, trimmed; unique per guild).
    pub name: String,
    /// Text.
    pub content: String,
    /// Author.
    pub author_id: String,
    /// Times used.
    #[serde(default)]
    pub uses: i32,
    /// Created.
    #[serde(default)]
    pub created_at: Option<DateTime>,
    /// Fields this struct does not name; kept on write.
    #[serde(flatten)]
    pub extra: Document,
}
