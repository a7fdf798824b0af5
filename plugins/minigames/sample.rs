//! Sample data: a few running boards (recent, so the TTL keeps them for a day) and the
//! players' statistics.

use mongodb::bson::{doc, Bson, DateTime};
use rand::Rng;

use heimdall_host::seed::{Sample, SampleGuild, Samples};

#[async_trait::async_trait]
impl Samples for super::MinigamesPlugin {
    async fn guild(&self, s: &mut Sample<'_>, guild: &SampleGuild) -> anyhow::Result<()> {
        let Sample {
            g, w, scale, now, ..
        } = s;
        for coll in ["tictactoe_games", "connect4_games"] {
            for _ in 0..g.count(3.0, 1.0, 1.0, 1) {
                let a = g.pick(&guild.members).clone();
                let b = g.pick(&guild.members).clone();
                let created = DateTime::from_millis(*now - g.rng.gen_range(0..3_600_000i64));
                w.put(
                    coll,
                    doc! {
                        "_id": g.oid(), "guildId": &guild.id, "channelId": g.snowflake(), "players": [a, b],
                        "board": if coll == "tictactoe_games" { Bson::String("X O  X O ".into()) } else { Bson::Array(vec![Bson::Int32(0); 42]) },
                        "createdAt": created, "__v": 0,
                    },
                )
                .await?;
            }
        }
        let stats_users = g.count(60.0, guild.factor, *scale, 2) as usize;
        for m in guild.members.iter().take(stats_users) {
            for game in ["tictactoe", "connect4"] {
                if g.chance(0.6) {
                    w.put(
                        "minigame_stats",
                        doc! {
                            "_id": g.oid(), "guildId": &guild.id, "userId": m, "game": game,
                            "wins": g.rng.gen_range(0..50), "losses": g.rng.gen_range(0..50), "draws": g.rng.gen_range(0..10), "__v": 0,
                        },
                    )
                    .await?;
                }
            }
        }
        Ok(())
    }
}
