//! Sample data: role-button panels; the old bot's reaction-role panels.

use mongodb::bson::{doc, Bson, Document};
use rand::Rng;

use heimdall_host::seed::{
    fixed_oid, LegacyGuild, Sample, SampleGuild, Samples, LEGACY_FIXTURE_GUILD,
};

/// Known legacy panels.
pub mod fixtures {
    /// A reaction-role panel with three roles.
    pub const REACTION_PANEL: &str = "5f00000000000000000006a1";
}

#[async_trait::async_trait]
impl Samples for super::RoleButtonsPlugin {
    async fn guild(&self, s: &mut Sample<'_>, guild: &SampleGuild) -> anyhow::Result<()> {
        let Sample { g, w, .. } = s;
        for _ in 0..g.count(4.0, 1.0, 1.0, 1) {
            let buttons: Vec<Document> = (0..g.rng.gen_range(1..6))
                .map(|_| doc! { "roleId": g.snowflake(), "emoji": *g.pick(&["🎮", "🎨", "🎵", "📢", "🐉"]), "label": g.text(1, 2) })
                .collect();
            w.put(
                "role_button_panels",
                doc! { "_id": g.oid(), "guildId": &guild.id, "channelId": g.snowflake(), "messageId": g.snowflake(), "buttons": buttons, "__v": 0 },
            )
            .await?;
        }
        Ok(())
    }

    async fn legacy_fixtures(&self, s: &mut Sample<'_>) -> anyhow::Result<()> {
        s.w.put("reactionroles", doc! {
            "_id": fixed_oid(fixtures::REACTION_PANEL), "guildID": LEGACY_FIXTURE_GUILD, "channelID": "310000000000000007", "messageID": "350000000000000009",
            "roles": [ { "emoji": "🎮", "roleID": "320000000000000002" }, { "emoji": "🎨", "roleID": 320_000_000_000_000_003i64 }, { "emoji": "<:custom:123>", "roleID": "320000000000000004" } ],
        }).await?;
        Ok(())
    }

    async fn legacy_guild(&self, s: &mut Sample<'_>, guild: &LegacyGuild) -> anyhow::Result<()> {
        let Sample { g, w, .. } = s;
        for _ in 0..g.count(3.0, 1.0, 1.0, 1) {
            let roles: Vec<Bson> = (0..g.rng.gen_range(1..6))
                .map(|_| {
                    Bson::Document(
                        doc! { "emoji": *g.pick(&["🎮", "🎨", "🎵", "📢"]), "roleID": g.snowflake() },
                    )
                })
                .collect();
            let gid = g.legacy_id(guild.id);
            w.put("reactionroles", doc! { "_id": g.oid(), "guildID": gid, "channelID": g.snowflake(), "messageID": g.snowflake(), "roles": roles }).await?;
        }
        Ok(())
    }
}
