//! Sample data: each guild's welcome and leave messages.

use mongodb::bson::doc;

use heimdall_host::seed::{Sample, SampleGuild, Samples};

#[async_trait::async_trait]
impl Samples for super::WelcomePlugin {
    async fn guild(&self, s: &mut Sample<'_>, guild: &SampleGuild) -> anyhow::Result<()> {
        let Sample { g, w, .. } = s;
        w.put(
            "welcome_configs",
            doc! {
                "_id": g.oid(), "guildId": &guild.id, "enabled": true, "channelId": g.snowflake(),
                "message": "Willkommen {user}! 🎉 Read the rules in #règles", "leaveMessage": "{user} left us 👋", "__v": 0,
            },
        )
        .await?;
        Ok(())
    }
}
