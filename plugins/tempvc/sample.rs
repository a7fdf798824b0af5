//! Sample data: each guild's hub channel and a few open temporary channels.

use mongodb::bson::doc;

use heimdall_host::seed::{Sample, SampleGuild, Samples};

#[async_trait::async_trait]
impl Samples for super::TempVcPlugin {
    async fn guild(&self, s: &mut Sample<'_>, guild: &SampleGuild) -> anyhow::Result<()> {
        let Sample { g, w, scale, .. } = s;
        w.put(
            "tempvc_configs",
            doc! { "_id": g.oid(), "guildId": &guild.id, "hubChannelId": g.snowflake(), "__v": 0 },
        )
        .await?;
        for _ in 0..g.count(6.0, guild.factor, *scale, 1) {
            w.put(
                "tempvc_channels",
                doc! { "_id": g.oid(), "guildId": &guild.id, "channelId": g.snowflake(), "ownerId": g.pick(&guild.members).clone(), "__v": 0 },
            )
            .await?;
        }
        Ok(())
    }
}
