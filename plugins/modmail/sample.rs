//! Sample data: modmail settings with encrypted webhook tokens, snippets, conversations
//! and their messages; the old bot's threads (messages embedded, ordering ties, a long
//! thread, dates in every encoding).

use mongodb::bson::{doc, Bson, DateTime, Document};
use rand::Rng;

use heimdall_host::seed::{
    fixed_oid, LegacyGuild, Sample, SampleGuild, Samples, LEGACY_FIXTURE_GUILD,
};

/// Known legacy threads.
pub mod fixtures {
    /// The long modmail thread.
    pub const MODMAIL_LONG: &str = "5f00000000000000000003a1";
    /// Messages in the long thread.
    pub const MODMAIL_LONG_MESSAGES: usize = 5000;
    /// In bulk guilds, one thread in this many is a very long one.
    pub const MODMAIL_HUGE_EVERY: u64 = 2000;
    /// Messages in each of those very long threads (the biggest a big community has).
    pub const MODMAIL_HUGE_MESSAGES: i64 = 20_000;
    /// Two conversations with the same `createdAt` (ties go by `_id`).
    pub const MODMAIL_TIE_A: &str = "5f00000000000000000003a2";
    /// The second of the tie.
    pub const MODMAIL_TIE_B: &str = "5f00000000000000000003a3";
    /// The oldest conversation (date as Int64 ms): ticket number 1.
    pub const MODMAIL_OLDEST: &str = "5f00000000000000000003a4";
}

#[async_trait::async_trait]
impl Samples for super::ModmailPlugin {
    async fn guild(&self, s: &mut Sample<'_>, guild: &SampleGuild) -> anyhow::Result<()> {
        let Sample {
            g,
            w,
            crypto,
            scale,
            ..
        } = s;
        let categories: Vec<Document> = ["General", "Appeals", "Reports 🚨"]
            .iter()
            .map(|name| {
                let token = format!("webhook-token-{}", g.rng.gen::<u64>());
                doc! { "name": *name, "channelId": g.snowflake(), "encryptedWebhookToken": crypto.encrypt_with_nonce(&token, g.nonce()), "emoji": "📨" }
            })
            .collect();
        w.put(
            "modmail_configs",
            doc! { "_id": g.oid(), "guildId": &guild.id, "enabled": true, "categories": categories, "__v": 0 },
        )
        .await?;
        for name in ["hello", "closing", "appeal-info", "règles"] {
            w.put(
                "modmail_snippets",
                doc! { "_id": g.oid(), "guildId": &guild.id, "name": name, "content": g.text(5, 25), "__v": 0 },
            )
            .await?;
        }
        let n_conv = g.count(60.0, guild.factor, *scale, 2);
        for number in 1..=n_conv {
            let conv = g.oid();
            let user = g.pick(&guild.members).clone();
            let created = g.past_date().timestamp_millis();
            let closed = g.chance(0.8);
            w.put(
                "modmail_conversations",
                doc! {
                    "_id": conv, "guildId": &guild.id, "ticketNumber": number as i32, "userId": &user,
                    "status": if closed { "closed" } else { "open" },
                    "claimedBy": if g.chance(0.7) { Bson::String(g.pick(&guild.staff).clone()) } else { Bson::Null },
                    "createdAt": DateTime::from_millis(created),
                    "closedAt": if closed { Bson::DateTime(DateTime::from_millis(created + 86_400_000)) } else { Bson::Null },
                    "__v": 0,
                },
            )
            .await?;
            let n_msg = g.rng.gen_range(3..28);
            for m in 0..n_msg {
                let is_staff = m % 2 == 1;
                let attachments: Vec<String> = if g.chance(0.1) {
                    vec![format!(
                        "https://cdn.discordapp.com/attachments/{}/{}/image.png",
                        g.snowflake(),
                        g.snowflake()
                    )]
                } else {
                    vec![]
                };
                w.put(
                    "modmail_messages",
                    doc! {
                        "_id": g.oid(), "guildId": &guild.id, "conversationId": conv,
                        "authorId": if is_staff { g.pick(&guild.staff).clone() } else { user.clone() },
                        "isStaff": is_staff, "content": g.text(1, 40), "attachments": attachments,
                        "createdAt": DateTime::from_millis(created + m * 60_000), "__v": 0,
                    },
                )
                .await?;
            }
        }
        Ok(())
    }

    async fn legacy_fixtures(&self, s: &mut Sample<'_>) -> anyhow::Result<()> {
        use fixtures::*;
        let Sample {
            g,
            w,
            modmail_collection,
            ..
        } = s;
        let modmail = modmail_collection.unwrap_or(crate::legacy::DEFAULT_COLLECTION);
        let day = 86_400_000i64;
        let t2020 = 1_577_836_800_000i64;
        w.put(modmail, doc! {
            "_id": fixed_oid(MODMAIL_OLDEST), "guildID": LEGACY_FIXTURE_GUILD, "userID": "360000000000000001", "status": "closed",
            "messages": [ { "authorID": "360000000000000001", "content": "hi", "createdAt": t2020 } ],
            "createdAt": t2020, "closedAt": t2020 + day,
        }).await?;
        for id in [MODMAIL_TIE_B, MODMAIL_TIE_A] {
            w.put(modmail, doc! {
                "_id": fixed_oid(id), "guildID": LEGACY_FIXTURE_GUILD, "userID": "360000000000000002", "channelID": "", "status": "open",
                "messages": [ { "authorID": "360000000000000002", "content": "help ✋", "createdAt": DateTime::from_millis(t2020 + 10 * day), "attachments": ["https://cdn.example/a.png"] },
                              { "authorID": "370000000000000001", "content": "on it", "createdAt": "2020-01-11T00:05:00Z", "isStaff": true } ],
                "createdAt": DateTime::from_millis(t2020 + 10 * day),
            }).await?;
        }
        let long: Vec<Bson> = (0..MODMAIL_LONG_MESSAGES as i64)
            .map(|i| {
                let staff = i % 3 == 2;
                Bson::Document(doc! {
                    "authorID": if staff { "370000000000000001" } else { "360000000000000003" },
                    "content": format!("message {i} {}", g.text(1, 12)), "createdAt": g.legacy_date(t2020 + 20 * day + i * 1000),
                    "isStaff": staff,
                })
            })
            .collect();
        w.put(modmail, doc! {
            "_id": fixed_oid(MODMAIL_LONG), "guildID": LEGACY_FIXTURE_GUILD, "userID": "360000000000000003", "status": "closed",
            "messages": long, "createdAt": t2020 + 20 * day, "closedAt": "",
        }).await?;
        Ok(())
    }

    async fn legacy_guild(&self, s: &mut Sample<'_>, guild: &LegacyGuild) -> anyhow::Result<()> {
        let Sample {
            g,
            w,
            scale,
            modmail_collection,
            ..
        } = s;
        for k in 0..g.count(80.0, guild.factor, *scale, 2) {
            let user = guild.user(g);
            let created = guild.date(g);
            let n = if k % fixtures::MODMAIL_HUGE_EVERY == fixtures::MODMAIL_HUGE_EVERY - 1 {
                fixtures::MODMAIL_HUGE_MESSAGES
            } else {
                g.rng.gen_range(5..60i64)
            };
            let messages: Vec<Bson> = (0..n)
                .map(|i| {
                    let staff = i % 2 == 1;
                    let author = if staff { guild.user(g) } else { user };
                    let author = g.legacy_id(author);
                    let at = g.legacy_date(created + i * 90_000);
                    Bson::Document(doc! { "authorID": author, "content": g.text(1, 40), "createdAt": at, "isStaff": staff })
                })
                .collect();
            let gid = g.legacy_id(guild.id);
            let uid = g.legacy_id(user);
            let created_b = g.legacy_date(created);
            let closed = g.chance(0.8);
            let modmail = modmail_collection.unwrap_or(crate::legacy::DEFAULT_COLLECTION);
            w.put(modmail, doc! {
                "_id": g.oid(), "guildID": gid, "userID": uid, "channelID": g.snowflake(),
                "status": if closed { "closed" } else { "open" }, "messages": messages, "createdAt": created_b,
                "closedAt": if closed { Bson::Int64(created + n * 90_000) } else { Bson::Null },
            }).await?;
        }
        Ok(())
    }
}
