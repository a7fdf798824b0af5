//! Sample data: tags with unicode names; the old bot's tags (names that collide once
//! trimmed and lower-cased, empty content, numbers stored as doubles).

use mongodb::bson::{doc, Bson, DateTime};
use rand::Rng;

use heimdall_host::seed::{
    fixed_oid, LegacyGuild, Sample, SampleGuild, Samples, LEGACY_FIXTURE_GUILD,
};

/// Known legacy tags.
pub mod fixtures {
    /// Older of two tags that collide as `rules` (wins).
    pub const TAG_RULES_OLD: &str = "5f00000000000000000001a1";
    /// Newer of the two (skipped as a conflict).
    pub const TAG_RULES_NEW: &str = "5f00000000000000000001a2";
    /// A tag with empty content (an error).
    pub const TAG_EMPTY: &str = "5f00000000000000000001a3";
}

const NAMES: &[&str] = &[
    "Rules",
    "FAQ",
    "help",
    "Ünïcödé",
    "install",
    "日本語",
    "emoji-🎉",
    "links",
];

#[async_trait::async_trait]
impl Samples for super::TagsPlugin {
    async fn guild(&self, s: &mut Sample<'_>, guild: &SampleGuild) -> anyhow::Result<()> {
        let Sample { g, w, scale, .. } = s;
        for i in 0..g.count(120.0, guild.factor, *scale, 2) {
            let name = format!("{}-{i}", g.pick(NAMES)).to_lowercase();
            w.put(
                "tags",
                doc! {
                    "_id": g.oid(), "guildId": &guild.id, "name": name, "content": g.text(3, 60), "authorId": g.pick(&guild.staff).clone(),
                    "uses": g.rng.gen_range(0..500), "createdAt": g.past_date(), "__v": 0,
                },
            )
            .await?;
        }
        Ok(())
    }

    async fn legacy_fixtures(&self, s: &mut Sample<'_>) -> anyhow::Result<()> {
        use fixtures::*;
        let w = &mut s.w;
        let day = 86_400_000i64;
        let t2020 = 1_577_836_800_000i64;
        let guild = LEGACY_FIXTURE_GUILD;
        w.put("tags", doc! { "_id": fixed_oid(TAG_RULES_OLD), "guildID": guild, "name": "Rules", "content": "Be nice. 🙂", "owner": "330000000000000001", "uses": 12.0, "createdAt": t2020 }).await?;
        w.put("tags", doc! { "_id": fixed_oid(TAG_RULES_NEW), "guildID": guild, "name": "  rules ", "content": "Newer rules", "owner": 330_000_000_000_000_002i64, "createdAt": "2021-03-04T05:06:07Z" }).await?;
        w.put("tags", doc! { "_id": fixed_oid(TAG_EMPTY), "guildID": guild, "name": "empty", "content": "", "owner": "330000000000000001" }).await?;
        w.put("tags", doc! { "_id": fixed_oid("5f00000000000000000001a4"), "guildID": guild, "name": "Ünïcödé 日本", "content": "ユニコード ✨", "owner": "330000000000000003", "uses": Bson::Null, "createdAt": DateTime::from_millis(t2020 + day) }).await?;
        Ok(())
    }

    async fn legacy_guild(&self, s: &mut Sample<'_>, guild: &LegacyGuild) -> anyhow::Result<()> {
        let Sample { g, w, scale, .. } = s;
        for i in 0..g.count(100.0, guild.factor, *scale, 2) {
            let gid = g.legacy_id(guild.id);
            let owner = guild.user(g);
            let owner = g.legacy_id(owner);
            let created = guild.date(g);
            let created = g.legacy_date(created);
            w.put("tags", doc! {
                "_id": g.oid(), "guildID": gid, "name": format!("{} {i}", g.pick(&["Rules", "faq", "Help", "links"])),
                "content": g.text(2, 40), "owner": owner, "uses": g.rng.gen_range(0..300), "createdAt": created,
            }).await?;
        }
        Ok(())
    }
}
