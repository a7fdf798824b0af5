//! Sample data: each guild's log channels.

use mongodb::bson::doc;

use heimdall_host::seed::{Sample, SampleGuild, Samples};

#[async_trait::async_trait]
impl Samples for super::LoggingPlugin {
    async fn guild(&self, s: &mut Sample<'_>, guild: &SampleGuild) -> anyhow::Result<()> {
        let Sample { g, w, .. } = s;
        w.put(
            "logging_configs",
            doc! {
                "_id": g.oid(), "guildId": &guild.id,
                "channels": { "messages": g.snowflake(), "members": g.snowflake(), "moderation": g.snowflake() }, "__v": 0,
            },
        )
        .await?;
        Ok(())
    }
}
