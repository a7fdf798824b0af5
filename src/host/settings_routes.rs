//! `GET`/`PUT /api/guilds/{guildId}/{plugin}/config`: a plugin's settings, served from its
//! [`ConfigSpec`] (see [`crate::guild_config`] for what a `PUT` checks and keeps).

use axum::extract::{Path, State};
use axum::Json;
use mongodb::bson::{doc, Bson, Document};
use serde_json::{json, Map, Value};

use crate::auth::AuthUser;
use crate::context::Data;
use crate::error::{AppError, UserError, UserErrorKind};
use crate::guild_config::{ConfigField, ConfigSpec, FieldKind};

/// The caller's language: the first of `Accept-Language`.
fn locale(headers: &axum::http::HeaderMap) -> String {
    headers
        .get(axum::http::header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split([',', ';']).next())
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty() && v.len() < 36)
        .unwrap_or_else(|| crate::locales::DEFAULT_LOCALE.to_string())
}

fn invalid(field: &str, what: impl std::fmt::Display) -> AppError {
    UserError::bad_request("invalid_field", format!("`{field}` {what}")).into()
}

/// The change one sent value makes: a value to set, or `None` to clear.
fn check_value(
    data: &Data,
    f: &ConfigField,
    v: &Value,
) -> Result<(&'static str, Option<Bson>), AppError> {
    if v.is_null() {
        let name = match f.kind {
            FieldKind::Secret { stored_as, .. } => stored_as,
            _ => f.name,
        };
        return Ok((name, None));
    }
    let text = |max: usize| -> Result<String, AppError> {
        let s = v.as_str().ok_or_else(|| invalid(f.name, "must be text"))?;
        if s.chars().count() > max {
            return Err(invalid(f.name, format!("is longer than {max} characters")));
        }
        Ok(s.to_string())
    };
    let snowflake = |what: &str| -> Result<Bson, AppError> {
        let s = v.as_str().unwrap_or_default();
        if !heimdall_base::ids::is_snowflake(s) {
            return Err(invalid(
                f.name,
                format!("must be a {what} id (a snowflake, as text: digits only)"),
            ));
        }
        Ok(Bson::String(s.to_string()))
    };
    let value = match f.kind {
        FieldKind::Text { max } => Bson::String(text(max)?),
        FieldKind::Integer { min, max } => {
            let n = v
                .as_i64()
                .ok_or_else(|| invalid(f.name, "must be a whole number"))?;
            if n < min || n > max {
                return Err(invalid(f.name, format!("must be between {min} and {max}")));
            }
            match i32::try_from(n) {
                Ok(i) => Bson::Int32(i),
                Err(_) => Bson::Int64(n),
            }
        }
        FieldKind::Bool => Bson::Boolean(
            v.as_bool()
                .ok_or_else(|| invalid(f.name, "must be true or false"))?,
        ),
        FieldKind::Choice(choices) => {
            let s = v.as_str().unwrap_or_default();
            if !choices.contains(&s) {
                return Err(invalid(
                    f.name,
                    format!("must be one of {}", choices.join(", ")),
                ));
            }
            Bson::String(s.into())
        }
        FieldKind::Channel | FieldKind::VoiceChannel => snowflake("channel")?,
        FieldKind::Role => snowflake("role")?,
        FieldKind::Secret { stored_as, max } => {
            let plain = text(max)?;
            let sealed = data.crypto()?.encrypt(&plain);
            return Ok((stored_as, Some(Bson::String(sealed))));
        }
    };
    Ok((f.name, Some(value)))
}

/// With Discord on: a channel or role setting names one of the server's, of the right kind.
async fn exists(data: &Data, guild: &str, f: &ConfigField, id: &str) -> Result<(), AppError> {
    let wanted: &[&str] = match f.kind {
        FieldKind::Channel => &["text", "announcement", "forum"],
        FieldKind::VoiceChannel => &["voice", "stage"],
        FieldKind::Role => &[],
        _ => return Ok(()),
    };
    let Some(server) = data.lookups.server(data.discord.as_deref(), guild).await? else {
        return Ok(());
    };
    let ok = match f.kind {
        FieldKind::Role => server.has_role(id),
        _ => server.has_channel(id, wanted),
    };
    if ok {
        return Ok(());
    }
    Err(invalid(
        f.name,
        match f.kind {
            FieldKind::Role => "is not a role of this server".to_string(),
            _ => format!("is not a {} channel of this server", wanted.join(" or ")),
        },
    ))
}

/// The plugin named `name` and its settings, or 404.
fn spec(
    data: &Data,
    name: &str,
) -> Result<(ConfigSpec, Option<&'static crate::locales::Strings>), AppError> {
    let plugin = data
        .registry
        .plugins()
        .iter()
        .find(|p| p.name() == name)
        .ok_or_else(|| {
            UserError::new(
                UserErrorKind::NotFound,
                "unknown_plugin",
                format!("there is no plugin {name:?}"),
            )
        })?;
    let spec = plugin.config().ok_or_else(|| {
        AppError::from(UserError::new(
            UserErrorKind::NotFound,
            "no_settings",
            format!("the {name} plugin has no per-server settings"),
        ))
    })?;
    Ok((spec, plugin.strings()))
}

/// `GET`/`PUT` answer: the schema (labels in `locale`, from the plugin's strings
/// `config-<field>`) and the values.
fn page(
    plugin: &str,
    (spec, strings): &(ConfigSpec, Option<&'static crate::locales::Strings>),
    locale: &str,
    stored: &Document,
) -> Json<Value> {
    let label = |name: &str| strings.and_then(|s| s.lookup(locale, &format!("config-{name}")));
    Json(json!({ "plugin": plugin, "fields": spec.schema(label), "values": spec.values(stored) }))
}

/// `GET /api/guilds/{guildId}/{plugin}/config`.
pub async fn get_config(
    State(data): State<Data>,
    headers: axum::http::HeaderMap,
    user: AuthUser,
    Path((guild, plugin)): Path<(String, String)>,
) -> Result<Json<Value>, AppError> {
    user.require_guild(&data, &guild).await?;
    let found = spec(&data, &plugin)?;
    let stored = data
        .db
        .collection::<Document>(found.0.collection)
        .find_one(doc! { "guildId": &guild })
        .await?
        .unwrap_or_default();
    Ok(page(&plugin, &found, &locale(&headers), &stored))
}

/// `PUT /api/guilds/{guildId}/{plugin}/config`: changes the settings sent.
pub async fn put_config(
    State(data): State<Data>,
    headers: axum::http::HeaderMap,
    user: AuthUser,
    Path((guild, plugin)): Path<(String, String)>,
    body: crate::extract::JsonBody<Value>,
) -> Result<Json<Value>, AppError> {
    user.require_guild(&data, &guild).await?;
    let found = spec(&data, &plugin)?;
    let spec = &found.0;
    let Value::Object(sent) = body.0 else {
        return Err(UserError::bad_request(
            "invalid_body",
            "send the settings to change as a JSON object, e.g. {\"enabled\": true}",
        )
        .into());
    };
    let mut set = Document::new();
    let mut unset = Document::new();
    let mut announced = Map::new();
    for (name, v) in &sent {
        let f = spec.field(name).ok_or_else(|| {
            UserError::bad_request(
                "unknown_field",
                format!(
                    "the {plugin} plugin has no setting `{name}`; its settings are {}",
                    spec.fields
                        .iter()
                        .map(|f| format!("`{}`", f.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?;
        let (stored_name, value) = check_value(&data, f, v)?;
        if let Some(Bson::String(id)) = &value {
            exists(&data, &guild, f, id).await?;
        }
        if !matches!(f.kind, FieldKind::Secret { .. }) {
            announced.insert(name.clone(), v.clone());
        } else {
            announced.insert(name.clone(), json!({ "set": value.is_some() }));
        }
        match value {
            Some(b) => set.insert(stored_name, b),
            None => unset.insert(stored_name, ""),
        };
    }
    let coll = data.db.collection::<Document>(spec.collection);
    let mut next = coll
        .find_one(doc! { "guildId": &guild })
        .await?
        .unwrap_or_else(|| doc! { "guildId": &guild });
    for (k, v) in &set {
        next.insert(k.clone(), v.clone());
    }
    for k in unset.keys() {
        next.remove(k);
    }
    (spec.typed)(&next).map_err(|e| {
        UserError::bad_request(
            "invalid_settings",
            format!("the {plugin} plugin cannot read these settings: {e}"),
        )
    })?;
    if sent.is_empty() {
        return Ok(page(&plugin, &found, &locale(&headers), &next));
    }
    let mut update = Document::new();
    if !set.is_empty() {
        update.insert("$set", set);
    }
    if !unset.is_empty() {
        update.insert("$unset", unset);
    }
    // The settings as stored now, in the same round trip as the write.
    let stored = coll
        .find_one_and_update(doc! { "guildId": &guild }, update)
        .upsert(true)
        .return_document(mongodb::options::ReturnDocument::After)
        .await?
        .unwrap_or_default();
    tracing::info!(guild, plugin, by = user.id, fields = ?announced.keys().collect::<Vec<_>>(), "settings changed");
    data.ws.broadcast_to_guild(
        &guild,
        &format!("{plugin}:config_updated"),
        json!({ "by": user.id.to_string(), "values": announced }),
    );
    Ok(page(&plugin, &found, &locale(&headers), &stored))
}
