//! Sample data: suggestion settings, suggestions and their votes; the old bot's
//! suggestions with every status encoding and embedded vote arrays.

use mongodb::bson::{doc, Bson};
use rand::seq::SliceRandom;
use rand::Rng;

use heimdall_host::seed::{
    fixed_oid, LegacyGuild, Sample, SampleGuild, Samples, LEGACY_FIXTURE_GUILD,
};

/// Known legacy suggestions.
pub mod fixtures {
    /// A suggestion with string status "Approved", 2 up and 1 down votes; `sID` 1.
    pub const SUGGESTION_APPROVED: &str = "5f00000000000000000002a1";
    /// A suggestion with numeric status 2 (denied) and no vote arrays; `sID` 2.
    pub const SUGGESTION_DENIED_NUMERIC: &str = "5f00000000000000000002a2";
    /// A suggestion with status "IMPLEMENTED" and `upvotes: null`; `sID` 3.
    pub const SUGGESTION_IMPLEMENTED: &str = "5f00000000000000000002a3";
}

#[async_trait::async_trait]
impl Samples for super::SuggestionsPlugin {
    async fn guild(&self, s: &mut Sample<'_>, guild: &SampleGuild) -> anyhow::Result<()> {
        let Sample { g, w, scale, .. } = s;
        w.put(
            "suggestion_configs",
            doc! { "_id": g.oid(), "guildId": &guild.id, "channelId": g.snowflake(), "enabled": true, "__v": 0 },
        )
        .await?;
        for number in 1..=g.count(150.0, guild.factor, *scale, 2) {
            let id = g.oid();
            // A few distinct voters, drawn without shuffling every member (the seed's time
            // stays linear in its size).
            let n_votes = g.rng.gen_range(0..guild.members.len().min(12));
            let voters: Vec<&String> = guild.members.choose_multiple(&mut g.rng, n_votes).collect();
            let mut up = 0;
            let mut down = 0;
            let mut votes = Vec::new();
            for v in voters {
                let is_up = g.chance(0.7);
                if is_up {
                    up += 1
                } else {
                    down += 1
                }
                votes.push(doc! { "_id": g.oid(), "suggestionId": id, "userId": v, "vote": if is_up { "up" } else { "down" }, "__v": 0 });
            }
            w.put(
                "suggestions",
                doc! {
                    "_id": id, "guildId": &guild.id, "number": number as i32, "authorId": g.pick(&guild.members).clone(),
                    "content": g.text(4, 30), "status": *g.pick(&["pending", "approved", "denied", "implemented"]),
                    "messageId": g.snowflake(), "upvotes": up, "downvotes": down, "createdAt": g.past_date(), "__v": 0,
                },
            )
            .await?;
            for v in votes {
                w.put("suggestion_votes", v).await?;
            }
        }
        Ok(())
    }

    async fn legacy_fixtures(&self, s: &mut Sample<'_>) -> anyhow::Result<()> {
        use fixtures::*;
        let w = &mut s.w;
        let t2020 = 1_577_836_800_000i64;
        let guild = LEGACY_FIXTURE_GUILD;
        w.put("suggestions", doc! {
            "_id": fixed_oid(SUGGESTION_APPROVED), "guildID": guild, "sID": 1, "userID": "340000000000000001", "suggestion": "Add a music channel 🎵",
            "status": "Approved", "upvotes": ["340000000000000002", "340000000000000003"], "downvotes": ["340000000000000004"],
            "messageID": "350000000000000001", "createdAt": t2020,
        }).await?;
        w.put("suggestions", doc! {
            "_id": fixed_oid(SUGGESTION_DENIED_NUMERIC), "guildID": guild, "sID": 2i64, "userID": 340_000_000_000_000_001i64, "suggestion": "Remove all rules", "status": 2,
        }).await?;
        w.put("suggestions", doc! {
            "_id": fixed_oid(SUGGESTION_IMPLEMENTED), "guildID": guild, "sID": 3.0, "userID": "340000000000000005", "suggestion": "Dark mode", "status": "IMPLEMENTED",
            "upvotes": Bson::Null, "downvotes": ["340000000000000002"], "createdAt": "2020-06-01T00:00:00.000Z",
        }).await?;
        Ok(())
    }

    async fn legacy_guild(&self, s: &mut Sample<'_>, guild: &LegacyGuild) -> anyhow::Result<()> {
        let Sample { g, w, scale, .. } = s;
        let users = &guild.users;
        for sid in 1..=g.count(120.0, guild.factor, *scale, 2) {
            let n_up = g.rng.gen_range(0..8usize).min(users.len());
            let up: Vec<Bson> = users[..n_up]
                .iter()
                .map(|u| Bson::String(u.to_string()))
                .collect();
            let down: Vec<Bson> = users
                [users.len() - g.rng.gen_range(0..3usize).min(users.len() - n_up)..]
                .iter()
                .map(|u| Bson::String(u.to_string()))
                .collect();
            let status: Bson = if g.chance(0.5) {
                Bson::Int32(g.rng.gen_range(0..4))
            } else {
                Bson::String((*g.pick(&["pending", "Approved", "DENIED", "implemented"])).into())
            };
            let gid = g.legacy_id(guild.id);
            let author = guild.user(g);
            let author = g.legacy_id(author);
            let created = guild.date(g);
            let created = g.legacy_date(created);
            w.put("suggestions", doc! {
                "_id": g.oid(), "guildID": gid, "sID": sid as i32, "userID": author, "suggestion": g.text(3, 30),
                "status": status, "upvotes": up, "downvotes": down, "messageID": g.snowflake(), "createdAt": created,
            }).await?;
        }
        Ok(())
    }
}
