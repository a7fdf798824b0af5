//! Legacy Import, step 1: `guildsettings` → `guild_configs`.

use std::sync::Arc;

use mongodb::bson::{doc, Document};

use heimdall_host::migration::legacy::{
    coerce, primary_id, LegacyMapper, LegacySource, LegacyStepSpec, MapContext, Mapped, Produced,
};

/// The legacy collection of per-guild settings, and step 1's label.
pub const SETTINGS: LegacySource = LegacySource::Collection("guildsettings");
/// Step 1's label.
pub const SETTINGS_LABEL: &str = "Settings";

/// Maps a settings record to a guild configuration (prefix `!` and locale `en-US` by default).
pub struct GuildConfigMapper;

impl LegacyMapper for GuildConfigMapper {
    fn map(&self, r: &Document, ctx: &MapContext<'_>) -> Result<Mapped, String> {
        let guild = coerce::required_id(r, "guildID")?;
        Ok(Mapped::Docs(vec![Produced {
            collection: "guild_configs",
            doc: doc! {
                "_id": primary_id(r),
                "guildId": guild,
                "prefix": coerce::text(r, "prefix").unwrap_or_else(|| "!".into()),
                "locale": coerce::text(r, "locale").unwrap_or_else(|| "en-US".into()),
                "enabledPlugins": [],
                "createdAt": coerce::created_at(r, "createdAt", ctx.now)?,
            },
        }]))
    }
}

/// Step 1 as the core plugin contributes it.
pub fn steps() -> Vec<LegacyStepSpec> {
    vec![LegacyStepSpec::new(
        1,
        SETTINGS_LABEL,
        SETTINGS,
        Arc::new(GuildConfigMapper),
    )]
}
