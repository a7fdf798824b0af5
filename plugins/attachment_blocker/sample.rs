//! Sample data: most guilds block some attachment types in a few channels.

use mongodb::bson::doc;

use heimdall_host::seed::{Sample, SampleGuild, Samples};

#[async_trait::async_trait]
impl Samples for super::AttachmentBlockerPlugin {
    async fn guild(&self, s: &mut Sample<'_>, guild: &SampleGuild) -> anyhow::Result<()> {
        let Sample { g, w, .. } = s;
        if g.chance(0.8) {
            w.put(
                "attachment_blocker_configs",
                doc! { "_id": g.oid(), "guildId": &guild.id, "enabled": true, "__v": 0 },
            )
            .await?;
            for _ in 0..g.count(3.0, 1.0, 1.0, 1) {
                w.put(
                    "attachment_blocker_channels",
                    doc! { "_id": g.oid(), "guildId": &guild.id, "channelId": g.snowflake(), "blockedTypes": ["video", "executable"], "__v": 0 },
                )
                .await?;
            }
        }
        Ok(())
    }
}
