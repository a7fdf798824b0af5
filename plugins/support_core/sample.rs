//! Sample data: each guild's support staff and opening hours.

use mongodb::bson::{doc, Bson};

use heimdall_host::seed::{Sample, SampleGuild, Samples};

#[async_trait::async_trait]
impl Samples for super::SupportCorePlugin {
    async fn guild(&self, s: &mut Sample<'_>, guild: &SampleGuild) -> anyhow::Result<()> {
        let Sample { g, w, .. } = s;
        for staff in &guild.staff {
            w.put(
                "support_staff",
                doc! { "_id": g.oid(), "guildId": &guild.id, "userId": staff, "roles": ["modmail", "tickets"], "__v": 0 },
            )
            .await?;
        }
        w.put(
            "support_schedules",
            doc! { "_id": g.oid(), "guildId": &guild.id, "timezone": "Europe/Berlin", "hours": { "mon": "09-17", "sat": Bson::Null }, "__v": 0 },
        )
        .await?;
        Ok(())
    }
}
