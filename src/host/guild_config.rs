//! Per-server plugin settings on the dashboard: a plugin declares its settings' schema
//! ([`ConfigSpec`]) and the host serves `GET`/`PUT /api/guilds/{guildId}/{plugin}/config`
//! from it.
//!
//! A `PUT` sends the settings to change (`null` clears one). Each is checked against the
//! schema, the result against the plugin's typed struct, and only then written, with `$set`
//! and `$unset`: fields the schema does not name survive. Secret fields are write-only:
//! stored encrypted under their own name, shown as `{"set": true|false}`, never sent back.
//! Every change is announced to the server's room as `<plugin>:config_updated`.

use mongodb::bson::{Bson, Document};
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};

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

    /// The setting named `name`.
    pub fn field(&self, name: &str) -> Option<&ConfigField> {
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

fn typed<T: DeserializeOwned>(d: &Document) -> Result<(), String> {
    mongodb::bson::from_document::<T>(d.clone())
        .map(|_| ())
        .map_err(|e| e.to_string())
}
