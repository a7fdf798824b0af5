//! Sample data: a server per guild (but one) with an encrypted RCON password, linked
//! players and pending link requests.

use mongodb::bson::{doc, DateTime};
use rand::Rng;

use heimdall_host::seed::{Sample, SampleGuild, Samples};

#[async_trait::async_trait]
impl Samples for super::MinecraftPlugin {
    async fn guild(&self, s: &mut Sample<'_>, guild: &SampleGuild) -> anyhow::Result<()> {
        let Sample {
            g,
            w,
            crypto,
            scale,
            now,
            ..
        } = s;
        let index = guild.index;
        if index == 2 {
            return Ok(());
        }
        let password = format!("rcon-{}", g.rng.gen::<u32>());
        w.put(
            "minecraft_configs",
            doc! {
                "_id": g.oid(), "guildId": &guild.id, "host": format!("mc{index}.example.net"),
                "rconPort": 25575, "encryptedRconPassword": crypto.encrypt_with_nonce(&password, g.nonce()),
                "enabled": true, "__v": 0,
            },
        )
        .await?;
        let linked = g.count(40.0, guild.factor, *scale, 2) as usize;
        for m in guild.members.iter().take(linked) {
            w.put(
                "minecraft_players",
                doc! {
                    "_id": g.oid(), "guildId": &guild.id, "minecraftUuid": g.uuid(), "discordId": m,
                    "username": format!("Steve_{}", g.rng.gen_range(100..99_999)), "__v": 0,
                },
            )
            .await?;
        }
        for i in 0..g.count(5.0, guild.factor, 1.0, 1) {
            let expires =
                DateTime::from_millis(*now + g.rng.gen_range(86_400_000..7 * 86_400_000i64));
            w.put(
                "minecraft_link_requests",
                doc! {
                    "_id": g.oid(), "guildId": &guild.id, "code": format!("LINK{index}{i:04}"),
                    "discordId": g.pick(&guild.members).clone(), "minecraftUuid": g.uuid(), "expiresAt": expires,
                },
            )
            .await?;
        }
        Ok(())
    }
}
