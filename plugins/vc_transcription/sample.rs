//! Sample data: each guild's transcription setting.

use mongodb::bson::doc;

use heimdall_host::seed::{Sample, SampleGuild, Samples};

#[async_trait::async_trait]
impl Samples for super::VcTranscriptionPlugin {
    async fn guild(&self, s: &mut Sample<'_>, guild: &SampleGuild) -> anyhow::Result<()> {
        let Sample { g, w, .. } = s;
        w.put(
            "vc_transcription_configs",
            doc! { "_id": g.oid(), "guildId": &guild.id, "enabled": g.chance(0.5), "language": "auto", "__v": 0 },
        )
        .await?;
        Ok(())
    }
}
