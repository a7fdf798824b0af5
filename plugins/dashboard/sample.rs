//! Sample data: who may use the dashboard of each guild, and its look.

use mongodb::bson::doc;

use heimdall_host::seed::{Sample, SampleGuild, Samples};

#[async_trait::async_trait]
impl Samples for super::DashboardPlugin {
    async fn guild(&self, s: &mut Sample<'_>, guild: &SampleGuild) -> anyhow::Result<()> {
        let Sample { g, w, .. } = s;
        for (i, staff) in guild.staff.iter().take(4).enumerate() {
            w.put(
                "dashboard_permissions",
                doc! {
                    "_id": g.oid(), "guildId": &guild.id, "targetType": if i == 3 { "role" } else { "user" },
                    "targetId": staff, "permissions": ["view", "moderation", "config"], "__v": 0,
                },
            )
            .await?;
        }
        w.put(
            "dashboard_settings",
            doc! { "_id": g.oid(), "guildId": &guild.id, "theme": *g.pick(&["dark", "light"]), "compact": g.chance(0.3), "__v": 0 },
        )
        .await?;
        Ok(())
    }
}
