//! Per-server plugin settings on the dashboard: a plugin declares its settings' schema
//! ([`ConfigSpec`]) and the host serves `GET`/`PUT /api/guilds/{guildId}/{plugin}/config`
//! from it.
//!
//! A `PUT` sends the settings to change (`null` clears one). Each is checked against the
//! schema, the result against the plugin's typed struct, and only then written, with `$set`
//! and `$unset`: fields the schema does not name survive. Secret fields are write-only:
//! stored encrypted under their own name, shown as `{"set": true|false}`, never sent back.
//! Every change is announced to the server's room as `<plugin>:config_updated`.

use axum::extract::{Path, State};
use axum::Json;
use mongodb::bson::{doc, Bson, Document};
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};

use crate::auth::AuthUser;
use crate::context::Data;
use crate::error::{AppError, UserError, UserErrorKind};

/// What a setting holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldKind {
    /// Text of at most `max` characters.
    Text {
        /// Longest, in characters.
        max: usize,
    },
    /// A whole number in `min..=max` (stored as int32 when it fits).
    Integer {
        /// Smallest.
        min: i64,
        /// Largest.
        max: i64,
    },
    /// On or off.
    Bool,
    /// One of these values.
    Choice(&'static [&'static str]),
    /// A text channel of the server (its id).
    Channel,
    /// A voice channel of the server (its id).
    VoiceChannel,
    /// A role of the server (its id).
    Role,
    /// Write-only text of at most `max` characters, stored encrypted (`ENCRYPTION_KEY`) in
    /// the field `stored_as`.
    Secret {
        /// The stored (encrypted) field's name.
        stored_as: &'static str,
        /// Longest, in characters.
        max: usize,
    },
}

/// One setting.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigField {
    /// Its name in the API and the document (camelCase).
    pub name: &'static str,
    /// What it holds.
    pub kind: FieldKind,
}

impl ConfigField {
    /// A setting.
    pub const fn new(name: &'static str, kind: FieldKind) -> Self {
        Self { name, kind }
    }
}

/// A plugin's per-server settings: one document per server (`guildId`) in `collection`.
#[derive(Debug, Clone)]
pub struct ConfigSpec {
    /// The collection (one document per server).
    pub collection: &'static str,
    /// The settings the dashboard edits.
    pub fields: Vec<ConfigField>,
    /// Whether a document is one the plugin reads: its typed struct deserializes it.
    pub typed: fn(&Document) -> Result<(), String>,
}

impl ConfigSpec {
    /// Settings in `collection`, checked against the plugin's struct `T`.
    pub fn new<T: DeserializeOwned>(collection: &'static str, fields: Vec<ConfigField>) -> Self {
        Self {
            collection,
            fields,
            typed: typed::<T>,
        }
    }

    fn field(&self, name: &str) -> Option<&ConfigField> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The schema as the dashboard renders it, each field with its `label` (from `label`,
    /// else the name spelled out).
    pub fn schema(&self, label: impl Fn(&str) -> Option<String>) -> Value {
        Value::Array(
            self.fields
                .iter()
                .map(|f| {
                    let mut v = json!({ "name": f.name, "label": label(f.name).unwrap_or_else(|| spell_out(f.name)) });
                    match f.kind {
                        FieldKind::Text { max } => {
                            v["type"] = "text".into();
                            v["max"] = max.into();
                        }
                        FieldKind::Integer { min, max } => {
                            v["type"] = "integer".into();
                            v["min"] = min.into();
                            v["max"] = max.into();
                        }
                        FieldKind::Bool => v["type"] = "bool".into(),
                        FieldKind::Choice(c) => {
                            v["type"] = "choice".into();
                            v["choices"] = json!(c);
                        }
                        FieldKind::Channel => v["type"] = "channel".into(),
                        FieldKind::VoiceChannel => v["type"] = "voice_channel".into(),
                        FieldKind::Role => v["type"] = "role".into(),
                        FieldKind::Secret { max, .. } => {
                            v["type"] = "secret".into();
                            v["max"] = max.into();
                        }
                    }
                    v
                })
                .collect(),
        )
    }

    /// The values the dashboard shows: secrets as `{"set": bool}`.
    pub fn values(&self, stored: &Document) -> Value {
        let mut out = Map::new();
        for f in &self.fields {
            let v = match f.kind {
                FieldKind::Secret { stored_as, .. } => {
                    json!({ "set": matches!(stored.get(stored_as), Some(Bson::String(s)) if !s.is_empty()) })
                }
                _ => stored
                    .get(f.name)
                    .map(|b| b.clone().into_relaxed_extjson())
                    .unwrap_or(Value::Null),
            };
            out.insert(f.name.to_string(), v);
        }
        Value::Object(out)
    }
}

/// `modLogChannelId` → `Mod log channel id`.
fn spell_out(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() {
            out.push(' ');
            out.extend(c.to_lowercase());
        } else if i == 0 {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
    }
    out
}

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

fn typed<T: DeserializeOwned>(d: &Document) -> Result<(), String> {
    mongodb::bson::from_document::<T>(d.clone())
        .map(|_| ())
        .map_err(|e| e.to_string())
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
        if s.len() < 15 || s.len() > 21 || !s.bytes().all(|b| b.is_ascii_digit()) {
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
    let Some(server) = data.lookups.server(data, guild).await? else {
        return Ok(());
    };
    let ok = match f.kind {
        FieldKind::Role => server.roles.iter().any(|r| r.id == id),
        _ => server
            .channels
            .iter()
            .any(|c| c.id == id && wanted.contains(&c.kind)),
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
    body: crate::api::JsonBody<Value>,
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
    if !sent.is_empty() {
        let mut update = Document::new();
        if !set.is_empty() {
            update.insert("$set", set);
        }
        if !unset.is_empty() {
            update.insert("$unset", unset);
        }
        coll.update_one(doc! { "guildId": &guild }, update)
            .upsert(true)
            .await?;
        tracing::info!(guild, plugin, by = user.id, fields = ?announced.keys().collect::<Vec<_>>(), "settings changed");
        data.ws.broadcast_to_guild(
            &guild,
            &format!("{plugin}:config_updated"),
            json!({ "by": user.id.to_string(), "values": announced }),
        );
    }
    let stored = coll
        .find_one(doc! { "guildId": &guild })
        .await?
        .unwrap_or_default();
    Ok(page(&plugin, &found, &locale(&headers), &stored))
}
