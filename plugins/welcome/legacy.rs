//! Legacy Import, step 1: `guildsettings.welcomeChannel` → `welcome_configs`.

use std::sync::Arc;

use mongodb::bson::{doc, Bson, Document};

use heimdall_host::migration::legacy::{
    coerce, primary_id, LegacyMapper, LegacyStepSpec, MapContext, Mapped, Produced,
};
use heimdall_plugin_core::legacy::{SETTINGS, SETTINGS_LABEL};

/// Maps the welcome part of a settings record (only when a welcome channel is set).
pub struct WelcomeMapper;

impl LegacyMapper for WelcomeMapper {
    fn map(&self, r: &Document, _ctx: &MapContext<'_>) -> Result<Mapped, String> {
        let guild = coerce::required_id(r, "guildID")?;
        let Some(channel) = coerce::id(r, "welcomeChannel")? else {
            return Ok(Mapped::Nothing);
        };
        let opt = |f: &str| coerce::text(r, f).map(Bson::String).unwrap_or(Bson::Null);
        Ok(Mapped::Docs(vec![Produced {
            collection: "welcome_configs",
            doc: doc! {
                "_id": primary_id(r), "guildId": guild, "enabled": true, "channelId": channel,
                "message": opt("welcomeMessage"), "leaveMessage": opt("leaveMessage"),
            },
        }]))
    }
}

/// Step 1 as the welcome plugin contributes it.
pub fn steps() -> Vec<LegacyStepSpec> {
    vec![LegacyStepSpec::new(
        1,
        SETTINGS_LABEL,
        SETTINGS,
        Arc::new(WelcomeMapper),
    )]
}
