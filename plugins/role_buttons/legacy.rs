//! Legacy Import, step 7: `reactionroles` → `role_button_panels`; each role becomes a
//! button labelled with its emoji.

use std::sync::Arc;

use mongodb::bson::{doc, Bson, Document};

use heimdall_host::migration::legacy::{
    coerce, primary_id, LegacyMapper, LegacySource, LegacyStepSpec, MapContext, Mapped, Produced,
};

/// Maps a legacy reaction-role message to a button panel.
pub struct PanelMapper;

impl LegacyMapper for PanelMapper {
    fn map(&self, r: &Document, _ctx: &MapContext<'_>) -> Result<Mapped, String> {
        let guild = coerce::required_id(r, "guildID")?;
        let channel = coerce::required_id(r, "channelID")?;
        let message = coerce::required_id(r, "messageID")?;
        let roles = match r.get("roles") {
            None | Some(Bson::Null) => Vec::new(),
            Some(Bson::Array(a)) => a.clone(),
            Some(other) => {
                return Err(format!(
                    "`roles` is {:?}, expected a list",
                    other.element_type()
                ))
            }
        };
        let mut buttons = Vec::new();
        for (i, role) in roles.iter().enumerate() {
            let role = role
                .as_document()
                .ok_or_else(|| format!("roles[{i}] is not a document"))?;
            let id = coerce::id(role, "roleID")
                .map_err(|e| format!("roles[{i}]: {e}"))?
                .ok_or_else(|| format!("roles[{i}]: `roleID` is missing"))?;
            let emoji = coerce::text(role, "emoji");
            buttons.push(doc! { "roleId": id, "emoji": emoji.clone(), "label": emoji });
        }
        Ok(Mapped::Docs(vec![Produced {
            collection: "role_button_panels",
            doc: doc! { "_id": primary_id(r), "guildId": guild, "channelId": channel, "messageId": message, "buttons": buttons },
        }]))
    }
}

/// The role buttons plugin's legacy step.
pub fn steps() -> Vec<LegacyStepSpec> {
    vec![LegacyStepSpec::new(
        7,
        "Reaction roles",
        LegacySource::Collection("reactionroles"),
        Arc::new(PanelMapper),
    )]
}
