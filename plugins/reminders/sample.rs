//! Sample data: guild and DM reminders (pending, so they lie in the future) and users'
//! reminder settings; the old bot's reminders (past, DM and guild ones).

use mongodb::bson::{doc, Bson, DateTime};
use rand::Rng;

use heimdall_host::seed::{
    fixed_oid, LegacyGuild, Sample, SampleGuild, Samples, LEGACY_FIXTURE_GUILD,
};

/// Known legacy reminders.
pub mod fixtures {
    /// A reminder already due (skipped as expired).
    pub const REMINDER_PAST: &str = "5f00000000000000000005a1";
    /// A future reminder without `guildID` (a DM reminder).
    pub const REMINDER_DM: &str = "5f00000000000000000005a2";
    /// A future reminder with `guildID: ""` (also a DM reminder).
    pub const REMINDER_EMPTY_GUILD: &str = "5f00000000000000000005a3";
    /// A future guild reminder, `remindAt` as Double ms.
    pub const REMINDER_GUILD: &str = "5f00000000000000000005a4";
}

#[async_trait::async_trait]
impl Samples for super::RemindersPlugin {
    async fn guild(&self, s: &mut Sample<'_>, guild: &SampleGuild) -> anyhow::Result<()> {
        let Sample {
            g, w, scale, now, ..
        } = s;
        for _ in 0..g.count(50.0, guild.factor, *scale, 1) {
            let remind_at =
                DateTime::from_millis(*now + g.rng.gen_range(3_600_000..60 * 86_400_000i64));
            w.put(
                "reminders",
                doc! {
                    "_id": g.oid(), "userId": g.pick(&guild.members).clone(), "guildId": &guild.id, "channelId": g.snowflake(),
                    "content": g.text(2, 12), "remindAt": remind_at, "createdAt": g.past_date(), "__v": 0,
                },
            )
            .await?;
        }
        Ok(())
    }

    async fn users(&self, s: &mut Sample<'_>, users: &[String]) -> anyhow::Result<()> {
        let Sample {
            g, w, scale, now, ..
        } = s;
        let settings_n = (users.len() / 4).max(1);
        for user in users.iter().take(settings_n) {
            let tz = *g.pick(&[
                "Europe/Berlin",
                "America/New_York",
                "Asia/Tokyo",
                "UTC",
                "Australia/Sydney",
            ]);
            w.put(
                "reminder_settings",
                doc! { "_id": g.oid(), "userId": user, "timezone": tz, "dmByDefault": g.chance(0.5), "__v": 0 },
            )
            .await?;
        }
        // DM reminders (guildId null).
        for _ in 0..g.count(20.0, 1.0, *scale, 2) {
            let user = g.pick(users).clone();
            let remind_at =
                DateTime::from_millis(*now + g.rng.gen_range(3_600_000..30 * 86_400_000i64));
            w.put(
                "reminders",
                doc! {
                    "_id": g.oid(), "userId": user, "guildId": Bson::Null, "channelId": Bson::Null,
                    "content": g.text(2, 10), "remindAt": remind_at, "createdAt": g.past_date(), "__v": 0,
                },
            )
            .await?;
        }
        Ok(())
    }

    async fn legacy_fixtures(&self, s: &mut Sample<'_>) -> anyhow::Result<()> {
        use fixtures::*;
        let Sample { w, now, .. } = s;
        let now = *now;
        let day = 86_400_000i64;
        let t2020 = 1_577_836_800_000i64;
        let guild = LEGACY_FIXTURE_GUILD;
        w.put("reminders", doc! { "_id": fixed_oid(REMINDER_PAST), "userID": "390000000000000001", "channelID": "310000000000000001", "guildID": guild, "message": "too late", "remindAt": now - day }).await?;
        w.put("reminders", doc! { "_id": fixed_oid(REMINDER_DM), "userID": "390000000000000001", "channelID": "311000000000000001", "message": "dm me ⏰", "remindAt": DateTime::from_millis(now + 30 * day) }).await?;
        w.put("reminders", doc! { "_id": fixed_oid(REMINDER_EMPTY_GUILD), "userID": 390_000_000_000_000_002i64, "channelID": "311000000000000002", "guildID": "", "message": "also dm", "remindAt": ((now + 31 * day) as f64) }).await?;
        w.put("reminders", doc! { "_id": fixed_oid(REMINDER_GUILD), "userID": "390000000000000003", "channelID": "310000000000000001", "guildID": guild, "message": "standup", "remindAt": ((now + 32 * day) as f64), "createdAt": t2020 }).await?;
        Ok(())
    }

    async fn legacy_guild(&self, s: &mut Sample<'_>, guild: &LegacyGuild) -> anyhow::Result<()> {
        let Sample {
            g, w, scale, now, ..
        } = s;
        for _ in 0..g.count(40.0, guild.factor, *scale, 2) {
            let due = if g.chance(0.3) {
                *now - g.rng.gen_range(1..400) * 86_400_000
            } else {
                *now + g.rng.gen_range(1..400) * 86_400_000
            };
            let uid = guild.user(g);
            let uid = g.legacy_id(uid);
            let due = g.legacy_date(due);
            let mut r = doc! { "_id": g.oid(), "userID": uid, "channelID": g.snowflake(), "message": g.text(1, 12), "remindAt": due };
            if g.chance(0.8) {
                r.insert("guildID", g.legacy_id(guild.id));
            }
            w.put("reminders", r).await?;
        }
        Ok(())
    }
}
