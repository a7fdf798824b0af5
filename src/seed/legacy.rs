//! An old-bot database with every quirk of `docs/legacy-format.md`.
//!
//! Known records (the [`fixtures`]) live in one guild and cover each quirk once; the bulk
//! (modmail-heavy, scaled by `--scale`) spreads over the other guilds with the quirks mixed in
//! at random.

use mongodb::bson::{doc, oid::ObjectId, Bson, DateTime};
use mongodb::Database;
use rand::Rng;

use super::{guild_factor, prepare_target, Gen, SeedOptions, SeedReport, Writer};

/// Known legacy records, one per quirk, all in guild [`fixtures::GUILD`].
pub mod fixtures {
    /// The fixture guild (stored as a string).
    pub const GUILD: &str = "300000000000000001";
    /// A guild whose settings store `guildID` as Int64.
    pub const GUILD_INT64: i64 = 300_000_000_000_000_002;
    /// A guild whose settings store `guildID` as a Double that is still exact (≤ 2^53).
    pub const GUILD_DOUBLE_EXACT: f64 = 4_503_599_627_370_497.0;
    /// A guild whose settings store `guildID` as a Double above 2^53: lost precision.
    pub const GUILD_DOUBLE_LOST: f64 = 300_000_000_000_000_003.0;
    /// `_id` of the settings document with the lost-precision guild id.
    pub const SETTINGS_LOST_ID: &str = "5f00000000000000000000a4";
    /// Older of two tags that collide as `rules` (wins).
    pub const TAG_RULES_OLD: &str = "5f00000000000000000001a1";
    /// Newer of the two (skipped as a conflict).
    pub const TAG_RULES_NEW: &str = "5f00000000000000000001a2";
    /// A tag with empty content (an error).
    pub const TAG_EMPTY: &str = "5f00000000000000000001a3";
    /// A suggestion with string status "Approved", 2 up and 1 down votes; `sID` 1.
    pub const SUGGESTION_APPROVED: &str = "5f00000000000000000002a1";
    /// A suggestion with numeric status 2 (denied) and no vote arrays; `sID` 2.
    pub const SUGGESTION_DENIED_NUMERIC: &str = "5f00000000000000000002a2";
    /// A suggestion with status "IMPLEMENTED" and `upvotes: null`; `sID` 3.
    pub const SUGGESTION_IMPLEMENTED: &str = "5f00000000000000000002a3";
    /// The long modmail thread.
    pub const MODMAIL_LONG: &str = "5f00000000000000000003a1";
    /// Messages in the long thread.
    pub const MODMAIL_LONG_MESSAGES: usize = 5000;
    /// Two conversations with the same `createdAt` (ties go by `_id`).
    pub const MODMAIL_TIE_A: &str = "5f00000000000000000003a2";
    /// The second of the tie.
    pub const MODMAIL_TIE_B: &str = "5f00000000000000000003a3";
    /// The oldest conversation (date as Int64 ms): ticket number 1.
    pub const MODMAIL_OLDEST: &str = "5f00000000000000000003a4";
    /// Warnings with caseID 1, 2 and 5.
    pub const WARNING_CASE_IDS: [i32; 3] = [1, 2, 5];
    /// A warning without caseID (older; becomes case 6).
    pub const WARNING_NO_CASE_OLD: &str = "5f00000000000000000004a1";
    /// A warning without caseID (newer; becomes case 7), no `type`, date as ISO string.
    pub const WARNING_NO_CASE_NEW: &str = "5f00000000000000000004a2";
    /// A reminder already due (skipped as expired).
    pub const REMINDER_PAST: &str = "5f00000000000000000005a1";
    /// A future reminder without `guildID` (a DM reminder).
    pub const REMINDER_DM: &str = "5f00000000000000000005a2";
    /// A future reminder with `guildID: ""` (also a DM reminder).
    pub const REMINDER_EMPTY_GUILD: &str = "5f00000000000000000005a3";
    /// A future guild reminder, `remindAt` as Double ms.
    pub const REMINDER_GUILD: &str = "5f00000000000000000005a4";
    /// A reaction-role panel with three roles.
    pub const REACTION_PANEL: &str = "5f00000000000000000006a1";
    /// A user id stored as a Double above 2^53 in a warning (an error naming `userID`).
    pub const WARNING_LOST_USER: &str = "5f00000000000000000004a3";
}

fn oid(hex: &str) -> ObjectId {
    ObjectId::parse_str(hex).expect("fixture ids are valid hex")
}

/// A timestamp in one of the three legacy encodings.
fn encode_date(g: &mut Gen, ms: i64) -> Bson {
    match g.rng.gen_range(0..4) {
        0 => Bson::Int64(ms),
        1 => Bson::Double(ms as f64),
        2 => Bson::String(
            DateTime::from_millis(ms)
                .try_to_rfc3339_string()
                .expect("dates in range"),
        ),
        _ => Bson::DateTime(DateTime::from_millis(ms)),
    }
}

/// A snowflake as a string (mostly) or Int64 (older documents).
fn encode_id(g: &mut Gen, id: u64) -> Bson {
    if g.chance(0.15) {
        Bson::Int64(id as i64)
    } else {
        Bson::String(id.to_string())
    }
}

/// Writes an old-bot database into `db`.
pub async fn seed_legacy(db: &Database, opts: &SeedOptions) -> anyhow::Result<SeedReport> {
    prepare_target(db, opts.drop).await?;
    let mut g = Gen::new(opts.seed);
    let mut w = Writer::new(db);
    let now = DateTime::now().timestamp_millis();
    write_fixtures(&mut g, &mut w, &opts.modmail_collection, now).await?;
    for gi in 0..opts.guilds {
        write_bulk(&mut g, &mut w, opts, guild_factor(gi), now).await?;
    }
    w.finish().await
}

async fn write_fixtures(
    g: &mut Gen,
    w: &mut Writer<'_>,
    modmail: &str,
    now: i64,
) -> anyhow::Result<()> {
    use fixtures::*;
    let day = 86_400_000i64;
    let t2020 = 1_577_836_800_000i64;

    // 1 settings: every encoding of guildID
    w.put("guildsettings", doc! {
        "_id": oid("5f00000000000000000000a1"), "guildID": GUILD, "prefix": "?", "locale": "de",
        "welcomeChannel": "310000000000000001", "welcomeMessage": "Hallo {user} 👋", "leaveMessage": "",
        "logChannel": "310000000000000002", "modLogChannel": "310000000000000003",
        "muteRole": "320000000000000001", "suggestionChannel": "310000000000000004", "__v": 0,
    }).await?;
    w.put("guildsettings", doc! {
        "_id": oid("5f00000000000000000000a2"), "guildID": GUILD_INT64, "prefix": "", "locale": Bson::Null,
        "welcomeChannel": "",
    }).await?;
    w.put(
        "guildsettings",
        doc! {
            "_id": oid("5f00000000000000000000a3"), "guildID": GUILD_DOUBLE_EXACT,
            "welcomeChannel": 310_000_000_000_000_005i64, "modLogChannel": "310000000000000006",
        },
    )
    .await?;
    w.put(
        "guildsettings",
        doc! {
            "_id": oid(SETTINGS_LOST_ID), "guildID": GUILD_DOUBLE_LOST, "prefix": "!",
        },
    )
    .await?;

    // 2 tags: a collision, an empty one, numeric quirks
    w.put("tags", doc! { "_id": oid(TAG_RULES_OLD), "guildID": GUILD, "name": "Rules", "content": "Be nice. 🙂", "owner": "330000000000000001", "uses": 12.0, "createdAt": t2020 }).await?;
    w.put("tags", doc! { "_id": oid(TAG_RULES_NEW), "guildID": GUILD, "name": "  rules ", "content": "Newer rules", "owner": 330_000_000_000_000_002i64, "createdAt": "2021-03-04T05:06:07Z" }).await?;
    w.put("tags", doc! { "_id": oid(TAG_EMPTY), "guildID": GUILD, "name": "empty", "content": "", "owner": "330000000000000001" }).await?;
    w.put("tags", doc! { "_id": oid("5f00000000000000000001a4"), "guildID": GUILD, "name": "Ünïcödé 日本", "content": "ユニコード ✨", "owner": "330000000000000003", "uses": Bson::Null, "createdAt": DateTime::from_millis(t2020 + day) }).await?;

    // 3 suggestions: status encodings, votes
    w.put("suggestions", doc! {
        "_id": oid(SUGGESTION_APPROVED), "guildID": GUILD, "sID": 1, "userID": "340000000000000001", "suggestion": "Add a music channel 🎵",
        "status": "Approved", "upvotes": ["340000000000000002", "340000000000000003"], "downvotes": ["340000000000000004"],
        "messageID": "350000000000000001", "createdAt": t2020,
    }).await?;
    w.put("suggestions", doc! {
        "_id": oid(SUGGESTION_DENIED_NUMERIC), "guildID": GUILD, "sID": 2i64, "userID": 340_000_000_000_000_001i64, "suggestion": "Remove all rules", "status": 2,
    }).await?;
    w.put("suggestions", doc! {
        "_id": oid(SUGGESTION_IMPLEMENTED), "guildID": GUILD, "sID": 3.0, "userID": "340000000000000005", "suggestion": "Dark mode", "status": "IMPLEMENTED",
        "upvotes": Bson::Null, "downvotes": ["340000000000000002"], "createdAt": "2020-06-01T00:00:00.000Z",
    }).await?;

    // 4 modmail: ordering by createdAt then _id, a long thread
    w.put(modmail, doc! {
        "_id": oid(MODMAIL_OLDEST), "guildID": GUILD, "userID": "360000000000000001", "status": "closed",
        "messages": [ { "authorID": "360000000000000001", "content": "hi", "createdAt": t2020 } ],
        "createdAt": t2020, "closedAt": t2020 + day,
    }).await?;
    for id in [MODMAIL_TIE_B, MODMAIL_TIE_A] {
        w.put(modmail, doc! {
            "_id": oid(id), "guildID": GUILD, "userID": "360000000000000002", "channelID": "", "status": "open",
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
                "content": format!("message {i} {}", g.text(1, 12)), "createdAt": encode_date(g, t2020 + 20 * day + i * 1000),
                "isStaff": staff,
            })
        })
        .collect();
    w.put(modmail, doc! {
        "_id": oid(MODMAIL_LONG), "guildID": GUILD, "userID": "360000000000000003", "status": "closed",
        "messages": long, "createdAt": t2020 + 20 * day, "closedAt": "",
    }).await?;

    // 5 warnings: case numbers present and missing, type missing, date encodings
    for (i, case) in WARNING_CASE_IDS.iter().enumerate() {
        w.put("warnings", doc! {
            "_id": oid(&format!("5f00000000000000000004b{i}")), "guildID": GUILD, "userID": "380000000000000001", "moderatorID": "370000000000000001",
            "reason": format!("case {case}"), "type": "mute", "date": t2020 + (*case as i64) * day, "caseID": *case,
        }).await?;
    }
    w.put("warnings", doc! {
        "_id": oid(WARNING_NO_CASE_NEW), "guildID": GUILD, "userID": "380000000000000002", "moderatorID": "370000000000000001",
        "reason": "", "date": "2020-03-01T00:00:00Z",
    }).await?;
    w.put("warnings", doc! {
        "_id": oid(WARNING_NO_CASE_OLD), "guildID": GUILD, "userID": "380000000000000003", "moderatorID": "370000000000000001",
        "reason": "spam", "type": "kick", "date": DateTime::from_millis(t2020 + 40 * day),
    }).await?;
    w.put("warnings", doc! {
        "_id": oid(WARNING_LOST_USER), "guildID": GUILD, "userID": 380_000_000_000_000_009.0, "moderatorID": "370000000000000001",
        "type": "ban", "date": t2020,
    }).await?;

    // 6 reminders: past, DM (missing / empty guild), guild
    w.put("reminders", doc! { "_id": oid(REMINDER_PAST), "userID": "390000000000000001", "channelID": "310000000000000001", "guildID": GUILD, "message": "too late", "remindAt": now - day }).await?;
    w.put("reminders", doc! { "_id": oid(REMINDER_DM), "userID": "390000000000000001", "channelID": "311000000000000001", "message": "dm me ⏰", "remindAt": DateTime::from_millis(now + 30 * day) }).await?;
    w.put("reminders", doc! { "_id": oid(REMINDER_EMPTY_GUILD), "userID": 390_000_000_000_000_002i64, "channelID": "311000000000000002", "guildID": "", "message": "also dm", "remindAt": ((now + 31 * day) as f64) }).await?;
    w.put("reminders", doc! { "_id": oid(REMINDER_GUILD), "userID": "390000000000000003", "channelID": "310000000000000001", "guildID": GUILD, "message": "standup", "remindAt": ((now + 32 * day) as f64), "createdAt": t2020 }).await?;

    // 7 reaction roles
    w.put("reactionroles", doc! {
        "_id": oid(REACTION_PANEL), "guildID": GUILD, "channelID": "310000000000000007", "messageID": "350000000000000009",
        "roles": [ { "emoji": "🎮", "roleID": "320000000000000002" }, { "emoji": "🎨", "roleID": 320_000_000_000_000_003i64 }, { "emoji": "<:custom:123>", "roleID": "320000000000000004" } ],
    }).await?;
    Ok(())
}

async fn write_bulk(
    g: &mut Gen,
    w: &mut Writer<'_>,
    opts: &SeedOptions,
    factor: f64,
    now: i64,
) -> anyhow::Result<()> {
    let scale = opts.scale;
    let guild = g.snowflake_u64();
    let users: Vec<u64> = (0..g.count(150.0, factor, scale, 10))
        .map(|_| g.snowflake_u64())
        .collect();
    let pick_user = |g: &mut Gen| users[g.rng.gen_range(0..users.len())];
    let t0 = g.epoch_ms - 3 * 365 * 86_400_000;
    let date = |g: &mut Gen| t0 + g.rng.gen_range(0..3 * 365 * 86_400_000i64);

    let gid = encode_id(g, guild);
    w.put("guildsettings", doc! {
        "_id": g.oid(), "guildID": gid, "prefix": *g.pick(&["!", "?", "", "-"]),
        "welcomeChannel": if g.chance(0.6) { Bson::String(g.snowflake()) } else { Bson::Null },
        "welcomeMessage": "Welcome {user}!", "logChannel": if g.chance(0.5) { Bson::String(g.snowflake()) } else { Bson::String(String::new()) },
        "muteRole": g.snowflake(), "suggestionChannel": g.snowflake(),
    }).await?;

    for i in 0..g.count(100.0, factor, scale, 2) {
        let gid = encode_id(g, guild);
        let owner = pick_user(g);
        let owner = encode_id(g, owner);
        let created = date(g);
        let created = encode_date(g, created);
        w.put("tags", doc! {
            "_id": g.oid(), "guildID": gid, "name": format!("{} {i}", g.pick(&["Rules", "faq", "Help", "links"])),
            "content": g.text(2, 40), "owner": owner, "uses": g.rng.gen_range(0..300), "createdAt": created,
        }).await?;
    }

    for sid in 1..=g.count(120.0, factor, scale, 2) {
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
        let gid = encode_id(g, guild);
        let author = pick_user(g);
        let author = encode_id(g, author);
        let created = date(g);
        let created = encode_date(g, created);
        w.put("suggestions", doc! {
            "_id": g.oid(), "guildID": gid, "sID": sid as i32, "userID": author, "suggestion": g.text(3, 30),
            "status": status, "upvotes": up, "downvotes": down, "messageID": g.snowflake(), "createdAt": created,
        }).await?;
    }

    for _ in 0..g.count(80.0, factor, scale, 2) {
        let user = pick_user(g);
        let created = date(g);
        let n = g.rng.gen_range(5..60i64);
        let messages: Vec<Bson> = (0..n)
            .map(|i| {
                let staff = i % 2 == 1;
                let author = if staff { pick_user(g) } else { user };
                let author = encode_id(g, author);
                let at = encode_date(g, created + i * 90_000);
                Bson::Document(doc! { "authorID": author, "content": g.text(1, 40), "createdAt": at, "isStaff": staff })
            })
            .collect();
        let gid = encode_id(g, guild);
        let uid = encode_id(g, user);
        let created_b = encode_date(g, created);
        let closed = g.chance(0.8);
        w.put(&opts.modmail_collection, doc! {
            "_id": g.oid(), "guildID": gid, "userID": uid, "channelID": g.snowflake(),
            "status": if closed { "closed" } else { "open" }, "messages": messages, "createdAt": created_b,
            "closedAt": if closed { Bson::Int64(created + n * 90_000) } else { Bson::Null },
        }).await?;
    }

    for case in 1..=g.count(200.0, factor, scale, 2) {
        let gid = encode_id(g, guild);
        let uid = pick_user(g);
        let uid = encode_id(g, uid);
        let d = date(g);
        let d = encode_date(g, d);
        let mut warning = doc! {
            "_id": g.oid(), "guildID": gid, "userID": uid, "moderatorID": users[0].to_string(),
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

    for _ in 0..g.count(40.0, factor, scale, 2) {
        let due = if g.chance(0.3) {
            now - g.rng.gen_range(1..400) * 86_400_000
        } else {
            now + g.rng.gen_range(1..400) * 86_400_000
        };
        let uid = pick_user(g);
        let uid = encode_id(g, uid);
        let due = encode_date(g, due);
        let mut r = doc! { "_id": g.oid(), "userID": uid, "channelID": g.snowflake(), "message": g.text(1, 12), "remindAt": due };
        if g.chance(0.8) {
            r.insert("guildID", encode_id(g, guild));
        }
        w.put("reminders", r).await?;
    }

    for _ in 0..g.count(3.0, 1.0, 1.0, 1) {
        let roles: Vec<Bson> = (0..g.rng.gen_range(1..6))
            .map(|_| {
                Bson::Document(
                    doc! { "emoji": *g.pick(&["🎮", "🎨", "🎵", "📢"]), "roleID": g.snowflake() },
                )
            })
            .collect();
        let gid = encode_id(g, guild);
        w.put("reactionroles", doc! { "_id": g.oid(), "guildID": gid, "channelID": g.snowflake(), "messageID": g.snowflake(), "roles": roles }).await?;
    }
    Ok(())
}
