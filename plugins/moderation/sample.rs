//! Sample data: moderation settings, automod presets and rules, infractions (manual and
//! automod) and notes; the old bot's `warnings` with missing case numbers and types.

use mongodb::bson::{doc, Bson, DateTime};
use rand::Rng;

use heimdall_host::seed::{
    fixed_oid, LegacyGuild, Sample, SampleGuild, Samples, LEGACY_FIXTURE_GUILD,
};

/// Known legacy warnings.
pub mod fixtures {
    /// Warnings with caseID 1, 2 and 5.
    pub const WARNING_CASE_IDS: [i32; 3] = [1, 2, 5];
    /// A warning without caseID (older; becomes case 6).
    pub const WARNING_NO_CASE_OLD: &str = "5f00000000000000000004a1";
    /// A warning without caseID (newer; becomes case 7), no `type`, date as ISO string.
    pub const WARNING_NO_CASE_NEW: &str = "5f00000000000000000004a2";
    /// A user id stored as a Double above 2^53 in a warning (an error naming `userID`).
    pub const WARNING_LOST_USER: &str = "5f00000000000000000004a3";
}

#[async_trait::async_trait]
impl Samples for super::ModerationPlugin {
    async fn guild(&self, s: &mut Sample<'_>, guild: &SampleGuild) -> anyhow::Result<()> {
        let Sample { g, w, scale, .. } = s;
        let (members, staff) = (&guild.members, &guild.staff);
        w.put(
            "moderation_configs",
            doc! {
                "_id": g.oid(), "guildId": &guild.id, "muteRoleId": g.snowflake(), "modLogChannelId": g.snowflake(),
                "automodEnabled": true, "__v": 0,
            },
        )
        .await?;
        let mut presets = Vec::new();
        for name in ["strict", "lenient", "spam-only"] {
            let id = g.oid();
            presets.push(id);
            w.put(
                "automod_presets",
                doc! {
                    "_id": id, "guildId": &guild.id, "name": name,
                    "actions": [ { "type": "delete" }, { "type": "warn", "points": 1 } ], "__v": 0,
                },
            )
            .await?;
        }
        let mut rules = Vec::new();
        for (i, name) in ["spam", "caps", "invites", "links", "mentions", "zalgo"]
            .iter()
            .enumerate()
        {
            let id = g.oid();
            rules.push(id);
            let mut rule = doc! {
                "_id": id, "guildId": &guild.id, "name": *name, "enabled": i != 5,
                "trigger": { "kind": *name, "threshold": g.rng.gen_range(3..10) }, "__v": 0,
            };
            if i % 3 != 2 {
                rule.insert("presetId", presets[i % presets.len()]);
            }
            w.put("automod_rules", rule).await?;
        }
        let n_inf = g.count(400.0, guild.factor, *scale, 3);
        for case in 1..=n_inf {
            let automod = g.chance(0.4);
            let kind = *g.pick(&["warn", "warn", "mute", "kick", "ban", "timeout"]);
            let created = g.past_date();
            w.put(
                "infractions",
                doc! {
                    "_id": g.oid(), "guildId": &guild.id, "caseNumber": case as i32, "userId": g.pick(members).clone(),
                    "moderatorId": g.pick(staff).clone(), "type": kind, "reason": g.text(0, 8),
                    "points": g.rng.gen_range(1..4), "ruleId": if automod { Bson::ObjectId(*g.pick(&rules)) } else { Bson::Null },
                    "createdAt": created,
                    "expiresAt": if kind == "mute" || kind == "timeout" { Bson::DateTime(DateTime::from_millis(created.timestamp_millis() + 3_600_000)) } else { Bson::Null },
                    "source": if automod { "automod" } else { "manual" }, "__v": 0,
                },
            )
            .await?;
        }
        for _ in 0..g.count(80.0, guild.factor, *scale, 1) {
            w.put(
                "mod_notes",
                doc! {
                    "_id": g.oid(), "guildId": &guild.id, "userId": g.pick(members).clone(),
                    "moderatorId": g.pick(staff).clone(), "content": g.text(3, 20), "createdAt": g.past_date(), "__v": 0,
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
        for (i, case) in WARNING_CASE_IDS.iter().enumerate() {
            w.put("warnings", doc! {
                "_id": fixed_oid(&format!("5f00000000000000000004b{i}")), "guildID": LEGACY_FIXTURE_GUILD, "userID": "380000000000000001", "moderatorID": "370000000000000001",
                "reason": format!("case {case}"), "type": "mute", "date": t2020 + (*case as i64) * day, "caseID": *case,
            }).await?;
        }
        w.put("warnings", doc! {
            "_id": fixed_oid(WARNING_NO_CASE_NEW), "guildID": LEGACY_FIXTURE_GUILD, "userID": "380000000000000002", "moderatorID": "370000000000000001",
            "reason": "", "date": "2020-03-01T00:00:00Z",
        }).await?;
        w.put("warnings", doc! {
            "_id": fixed_oid(WARNING_NO_CASE_OLD), "guildID": LEGACY_FIXTURE_GUILD, "userID": "380000000000000003", "moderatorID": "370000000000000001",
            "reason": "spam", "type": "kick", "date": DateTime::from_millis(t2020 + 40 * day),
        }).await?;
        w.put("warnings", doc! {
            "_id": fixed_oid(WARNING_LOST_USER), "guildID": LEGACY_FIXTURE_GUILD, "userID": 380_000_000_000_000_009.0, "moderatorID": "370000000000000001",
            "type": "ban", "date": t2020,
        }).await?;
        Ok(())
    }

    async fn legacy_guild(&self, s: &mut Sample<'_>, guild: &LegacyGuild) -> anyhow::Result<()> {
        let Sample { g, w, scale, .. } = s;
        for case in 1..=g.count(200.0, guild.factor, *scale, 2) {
            let gid = g.legacy_id(guild.id);
            let uid = guild.user(g);
            let uid = g.legacy_id(uid);
            let d = guild.date(g);
            let d = g.legacy_date(d);
            let mut warning = doc! {
                "_id": g.oid(), "guildID": gid, "userID": uid, "moderatorID": guild.users[0].to_string(),
                "reason": g.text(0, 10), "date": d,
            };
            if g.chance(0.8) {
                warning.insert("type", *g.pick(&["warn", "mute", "kick", "ban"]));
            }
            if g.chance(0.9) {
                warning.insert("caseID", case as i32);
            }
            w.put("warnings", warning).await?;
        }
        Ok(())
    }
}
