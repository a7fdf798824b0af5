//! A realistic Heimdall instance: all 40 collections, every reference valid.

use mongodb::bson::{doc, oid::ObjectId, Bson, DateTime, Document};
use mongodb::Database;
use rand::seq::SliceRandom;
use rand::Rng;

use super::{guild_factor, prepare_target, Gen, SeedOptions, SeedReport, Writer};
use crate::crypto::Crypto;
use crate::plugin::Registry;

/// Writes a Heimdall instance into `db` (which must be empty unless `opts.drop`), with
/// every unique and TTL index in place.
pub async fn seed_instance(db: &Database, opts: &SeedOptions) -> anyhow::Result<SeedReport> {
    prepare_target(db, opts.drop).await?;
    let registry = Registry::new(crate::plugins::all())?;
    crate::db::ensure_indexes(db, &registry).await?;

    let crypto = Crypto::new(&opts.key);
    let mut g = Gen::new(opts.seed);
    let mut w = Writer::new(db);
    let now = DateTime::now().timestamp_millis();
    let mut all_users: Vec<String> = Vec::new();

    for (i, key) in [
        "maintenance",
        "status",
        "activity",
        "featureFlags",
        "announcementChannel",
        "supportGuild",
        "motd",
        "premiumGuilds",
    ]
    .iter()
    .enumerate()
    {
        let value: Bson = match i {
            0 => false.into(),
            1 => "online".into(),
            2 => doc! { "type": "watching", "name": "over the realm 👁️" }.into(),
            3 => doc! { "clone": true, "legacyImport": true, "betaPlugins": ["vc-transcription"] }
                .into(),
            7 => Bson::Array(vec![g.snowflake().into(), g.snowflake().into()]),
            _ => g.text(1, 6).into(),
        };
        w.put(
            "bot_settings",
            doc! { "_id": g.oid(), "key": *key, "value": value, "__v": 0 },
        )
        .await?;
    }

    for gi in 0..opts.guilds {
        let factor = guild_factor(gi);
        seed_guild(
            &mut g,
            &mut w,
            &crypto,
            opts.scale,
            factor,
            gi,
            now,
            &mut all_users,
        )
        .await?;
    }

    // Global per-user settings and DM reminders (guildId null).
    all_users.sort();
    all_users.dedup();
    let settings_n = (all_users.len() / 4).max(1);
    for user in all_users.iter().take(settings_n) {
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
    let dm_n = g.count(20.0, 1.0, opts.scale, 2);
    for _ in 0..dm_n {
        let user = g.pick(&all_users).clone();
        let remind_at = DateTime::from_millis(now + g.rng.gen_range(3_600_000..30 * 86_400_000i64));
        w.put(
            "reminders",
            doc! {
                "_id": g.oid(), "userId": user, "guildId": Bson::Null, "channelId": Bson::Null,
                "content": g.text(2, 10), "remindAt": remind_at, "createdAt": g.past_date(), "__v": 0,
            },
        )
        .await?;
    }
    w.finish().await
}

#[allow(clippy::too_many_arguments)]
async fn seed_guild(
    g: &mut Gen,
    w: &mut Writer<'_>,
    crypto: &Crypto,
    scale: f64,
    factor: f64,
    index: u32,
    now: i64,
    all_users: &mut Vec<String>,
) -> anyhow::Result<()> {
    let guild = g.snowflake();
    let members: Vec<String> = (0..g.count(200.0, factor, scale, 12))
        .map(|_| g.snowflake())
        .collect();
    let staff: Vec<String> = members
        .iter()
        .take((members.len() / 20).clamp(3, 25))
        .cloned()
        .collect();
    all_users.extend(members.iter().cloned());
    let channel = |g: &mut Gen| g.snowflake();

    // 1 core
    let locale = *g.pick(&["en-US", "de", "fr", "ja", "pt-BR"]);
    let mut cfg = doc! {
        "_id": g.oid(), "guildId": &guild, "prefix": *g.pick(&["!", "?", "h!", "€"]),
        "locale": locale, "enabledPlugins": ["moderation", "modmail", "tags", "suggestions", "tickets"],
        "createdAt": g.past_date(), "__v": 0,
    };
    if index.is_multiple_of(2) {
        // Fields from an older bot version that no struct names.
        cfg.insert(
            "legacySettings",
            doc! { "embedColor": "#5865F2", "djRole": Bson::Null },
        );
        cfg.insert("premiumTier", 2);
    }
    w.put("guild_configs", cfg).await?;
    for key in ["OPENAI_API_KEY", "WEBHOOK_SECRET", "RCON_BACKUP"]
        .iter()
        .take(1 + (index as usize % 3))
    {
        let secret = format!("{key}-{}", g.rng.gen::<u64>());
        w.put(
            "guild_envs",
            doc! {
                "_id": g.oid(), "guildId": &guild, "key": *key,
                "encryptedValue": crypto.encrypt_with_nonce(&secret, g.nonce()),
                "updatedAt": g.past_date(), "__v": 0,
            },
        )
        .await?;
    }

    // 2 dashboard
    for (i, s) in staff.iter().take(4).enumerate() {
        w.put(
            "dashboard_permissions",
            doc! {
                "_id": g.oid(), "guildId": &guild, "targetType": if i == 3 { "role" } else { "user" },
                "targetId": s, "permissions": ["view", "moderation", "config"], "__v": 0,
            },
        )
        .await?;
    }
    w.put(
        "dashboard_settings",
        doc! { "_id": g.oid(), "guildId": &guild, "theme": *g.pick(&["dark", "light"]), "compact": g.chance(0.3), "__v": 0 },
    )
    .await?;

    // 3 attachment blocker
    if g.chance(0.8) {
        w.put(
            "attachment_blocker_configs",
            doc! { "_id": g.oid(), "guildId": &guild, "enabled": true, "__v": 0 },
        )
        .await?;
        for _ in 0..g.count(3.0, 1.0, 1.0, 1) {
            w.put(
                "attachment_blocker_channels",
                doc! { "_id": g.oid(), "guildId": &guild, "channelId": channel(g), "blockedTypes": ["video", "executable"], "__v": 0 },
            )
            .await?;
        }
    }

    // 4 logging
    w.put(
        "logging_configs",
        doc! {
            "_id": g.oid(), "guildId": &guild,
            "channels": { "messages": channel(g), "members": channel(g), "moderation": channel(g) }, "__v": 0,
        },
    )
    .await?;

    // 5-6 minecraft
    if index != 2 {
        let password = format!("rcon-{}", g.rng.gen::<u32>());
        w.put(
            "minecraft_configs",
            doc! {
                "_id": g.oid(), "guildId": &guild, "host": format!("mc{index}.example.net"),
                "rconPort": 25575, "encryptedRconPassword": crypto.encrypt_with_nonce(&password, g.nonce()),
                "enabled": true, "__v": 0,
            },
        )
        .await?;
        for m in members
            .iter()
            .take(g.count(40.0, factor, scale, 2) as usize)
        {
            w.put(
                "minecraft_players",
                doc! {
                    "_id": g.oid(), "guildId": &guild, "minecraftUuid": uuid(g), "discordId": m,
                    "username": format!("Steve_{}", g.rng.gen_range(100..99_999)), "__v": 0,
                },
            )
            .await?;
        }
        for i in 0..g.count(5.0, factor, 1.0, 1) {
            let expires =
                DateTime::from_millis(now + g.rng.gen_range(86_400_000..7 * 86_400_000i64));
            w.put(
                "minecraft_link_requests",
                doc! {
                    "_id": g.oid(), "guildId": &guild, "code": format!("LINK{index}{i:04}"),
                    "discordId": g.pick(&members).clone(), "minecraftUuid": uuid(g), "expiresAt": expires,
                },
            )
            .await?;
        }
    }

    // 7 minigames: ephemeral boards (recent, so the TTL keeps them for a day) and stats
    for coll in ["tictactoe_games", "connect4_games"] {
        for _ in 0..g.count(3.0, 1.0, 1.0, 1) {
            let a = g.pick(&members).clone();
            let b = g.pick(&members).clone();
            let created = DateTime::from_millis(now - g.rng.gen_range(0..3_600_000i64));
            w.put(
                coll,
                doc! {
                    "_id": g.oid(), "guildId": &guild, "channelId": channel(g), "players": [a, b],
                    "board": if coll == "tictactoe_games" { Bson::String("X O  X O ".into()) } else { Bson::Array(vec![Bson::Int32(0); 42]) },
                    "createdAt": created, "__v": 0,
                },
            )
            .await?;
        }
    }
    let stats_users = g.count(60.0, factor, scale, 2) as usize;
    for m in members.iter().take(stats_users) {
        for game in ["tictactoe", "connect4"] {
            if g.chance(0.6) {
                w.put(
                    "minigame_stats",
                    doc! {
                        "_id": g.oid(), "guildId": &guild, "userId": m, "game": game,
                        "wins": g.rng.gen_range(0..50), "losses": g.rng.gen_range(0..50), "draws": g.rng.gen_range(0..10), "__v": 0,
                    },
                )
                .await?;
            }
        }
    }

    // 8-10 moderation
    w.put(
        "moderation_configs",
        doc! {
            "_id": g.oid(), "guildId": &guild, "muteRoleId": g.snowflake(), "modLogChannelId": channel(g),
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
                "_id": id, "guildId": &guild, "name": name,
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
            "_id": id, "guildId": &guild, "name": *name, "enabled": i != 5,
            "trigger": { "kind": *name, "threshold": g.rng.gen_range(3..10) }, "__v": 0,
        };
        if i % 3 != 2 {
            rule.insert("presetId", presets[i % presets.len()]);
        }
        w.put("automod_rules", rule).await?;
    }
    let n_inf = g.count(400.0, factor, scale, 3);
    for case in 1..=n_inf {
        let automod = g.chance(0.4);
        let kind = *g.pick(&["warn", "warn", "mute", "kick", "ban", "timeout"]);
        let created = g.past_date();
        w.put(
            "infractions",
            doc! {
                "_id": g.oid(), "guildId": &guild, "caseNumber": case as i32, "userId": g.pick(&members).clone(),
                "moderatorId": g.pick(&staff).clone(), "type": kind, "reason": g.text(0, 8),
                "points": g.rng.gen_range(1..4), "ruleId": if automod { Bson::ObjectId(*g.pick(&rules)) } else { Bson::Null },
                "createdAt": created,
                "expiresAt": if kind == "mute" || kind == "timeout" { Bson::DateTime(DateTime::from_millis(created.timestamp_millis() + 3_600_000)) } else { Bson::Null },
                "source": if automod { "automod" } else { "manual" }, "__v": 0,
            },
        )
        .await?;
    }
    for _ in 0..g.count(80.0, factor, scale, 1) {
        w.put(
            "mod_notes",
            doc! {
                "_id": g.oid(), "guildId": &guild, "userId": g.pick(&members).clone(),
                "moderatorId": g.pick(&staff).clone(), "content": g.text(3, 20), "createdAt": g.past_date(), "__v": 0,
            },
        )
        .await?;
    }

    // 11-13 modmail
    let categories: Vec<Document> = ["General", "Appeals", "Reports 🚨"]
        .iter()
        .map(|name| {
            let token = format!("webhook-token-{}", g.rng.gen::<u64>());
            doc! { "name": *name, "channelId": g.snowflake(), "encryptedWebhookToken": crypto.encrypt_with_nonce(&token, g.nonce()), "emoji": "📨" }
        })
        .collect();
    w.put(
        "modmail_configs",
        doc! { "_id": g.oid(), "guildId": &guild, "enabled": true, "categories": categories, "__v": 0 },
    )
    .await?;
    for name in ["hello", "closing", "appeal-info", "règles"] {
        w.put(
            "modmail_snippets",
            doc! { "_id": g.oid(), "guildId": &guild, "name": name, "content": g.text(5, 25), "__v": 0 },
        )
        .await?;
    }
    let n_conv = g.count(60.0, factor, scale, 2);
    for number in 1..=n_conv {
        let conv = g.oid();
        let user = g.pick(&members).clone();
        let created = g.past_date().timestamp_millis();
        let closed = g.chance(0.8);
        w.put(
            "modmail_conversations",
            doc! {
                "_id": conv, "guildId": &guild, "ticketNumber": number as i32, "userId": &user,
                "status": if closed { "closed" } else { "open" },
                "claimedBy": if g.chance(0.7) { Bson::String(g.pick(&staff).clone()) } else { Bson::Null },
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
                    "_id": g.oid(), "guildId": &guild, "conversationId": conv,
                    "authorId": if is_staff { g.pick(&staff).clone() } else { user.clone() },
                    "isStaff": is_staff, "content": g.text(1, 40), "attachments": attachments,
                    "createdAt": DateTime::from_millis(created + m * 60_000), "__v": 0,
                },
            )
            .await?;
        }
    }

    // 14 reminders (guild)
    for _ in 0..g.count(50.0, factor, scale, 1) {
        let remind_at = DateTime::from_millis(now + g.rng.gen_range(3_600_000..60 * 86_400_000i64));
        w.put(
            "reminders",
            doc! {
                "_id": g.oid(), "userId": g.pick(&members).clone(), "guildId": &guild, "channelId": channel(g),
                "content": g.text(2, 12), "remindAt": remind_at, "createdAt": g.past_date(), "__v": 0,
            },
        )
        .await?;
    }

    // 15 role buttons
    for _ in 0..g.count(4.0, 1.0, 1.0, 1) {
        let buttons: Vec<Document> = (0..g.rng.gen_range(1..6))
            .map(|_| doc! { "roleId": g.snowflake(), "emoji": *g.pick(&["🎮", "🎨", "🎵", "📢", "🐉"]), "label": g.text(1, 2) })
            .collect();
        w.put(
            "role_button_panels",
            doc! { "_id": g.oid(), "guildId": &guild, "channelId": channel(g), "messageId": g.snowflake(), "buttons": buttons, "__v": 0 },
        )
        .await?;
    }

    // 16-17 suggestions
    w.put(
        "suggestion_configs",
        doc! { "_id": g.oid(), "guildId": &guild, "channelId": channel(g), "enabled": true, "__v": 0 },
    )
    .await?;
    for number in 1..=g.count(150.0, factor, scale, 2) {
        let id = g.oid();
        let mut voters: Vec<&String> = members.iter().collect();
        voters.shuffle(&mut g.rng);
        let n_votes = g.rng.gen_range(0..voters.len().min(12));
        let mut up = 0;
        let mut down = 0;
        let mut votes = Vec::new();
        for v in voters.into_iter().take(n_votes) {
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
                "_id": id, "guildId": &guild, "number": number as i32, "authorId": g.pick(&members).clone(),
                "content": g.text(4, 30), "status": *g.pick(&["pending", "approved", "denied", "implemented"]),
                "messageId": g.snowflake(), "upvotes": up, "downvotes": down, "createdAt": g.past_date(), "__v": 0,
            },
        )
        .await?;
        for v in votes {
            w.put("suggestion_votes", v).await?;
        }
    }

    // 18 support
    for s in &staff {
        w.put(
            "support_staff",
            doc! { "_id": g.oid(), "guildId": &guild, "userId": s, "roles": ["modmail", "tickets"], "__v": 0 },
        )
        .await?;
    }
    w.put(
        "support_schedules",
        doc! { "_id": g.oid(), "guildId": &guild, "timezone": "Europe/Berlin", "hours": { "mon": "09-17", "sat": Bson::Null }, "__v": 0 },
    )
    .await?;

    // 19 tags
    for i in 0..g.count(120.0, factor, scale, 2) {
        let name = format!("{}-{i}", g.pick(WORD_TAGS)).to_lowercase();
        w.put(
            "tags",
            doc! {
                "_id": g.oid(), "guildId": &guild, "name": name, "content": g.text(3, 60), "authorId": g.pick(&staff).clone(),
                "uses": g.rng.gen_range(0..500), "createdAt": g.past_date(), "__v": 0,
            },
        )
        .await?;
    }

    // 20 tempvc
    w.put(
        "tempvc_configs",
        doc! { "_id": g.oid(), "guildId": &guild, "hubChannelId": channel(g), "__v": 0 },
    )
    .await?;
    for _ in 0..g.count(6.0, factor, scale, 1) {
        w.put(
            "tempvc_channels",
            doc! { "_id": g.oid(), "guildId": &guild, "channelId": channel(g), "ownerId": g.pick(&members).clone(), "__v": 0 },
        )
        .await?;
    }

    // 21-22 tickets
    w.put(
        "ticket_configs",
        doc! { "_id": g.oid(), "guildId": &guild, "enabled": true, "__v": 0 },
    )
    .await?;
    let mut cats: Vec<ObjectId> = Vec::new();
    for name in ["Support", "Billing", "Bug report 🐛", "Partnership"] {
        let id = g.oid();
        cats.push(id);
        w.put(
            "ticket_categories",
            doc! { "_id": id, "guildId": &guild, "name": name, "__v": 0 },
        )
        .await?;
    }
    for number in 1..=g.count(120.0, factor, scale, 2) {
        let id = g.oid();
        let closed = g.chance(0.8);
        let created = g.past_date().timestamp_millis();
        w.put(
            "tickets",
            doc! {
                "_id": id, "guildId": &guild, "number": number as i32, "categoryId": *g.pick(&cats),
                "openerId": g.pick(&members).clone(), "status": if closed { "closed" } else { "open" },
                "createdAt": DateTime::from_millis(created),
                "closedAt": if closed { Bson::DateTime(DateTime::from_millis(created + 7_200_000)) } else { Bson::Null },
                "__v": 0,
            },
        )
        .await?;
        if closed {
            let messages: Vec<Document> = (0..g.rng.gen_range(2..15))
                .map(|i| doc! { "authorId": g.pick(&members).clone(), "content": g.text(1, 30), "at": DateTime::from_millis(created + i * 30_000) })
                .collect();
            w.put(
                "ticket_transcripts",
                doc! { "_id": g.oid(), "ticketId": id, "messages": messages, "createdAt": DateTime::from_millis(created + 7_200_000), "__v": 0 },
            )
            .await?;
        }
    }

    // 23-24
    w.put(
        "vc_transcription_configs",
        doc! { "_id": g.oid(), "guildId": &guild, "enabled": g.chance(0.5), "language": "auto", "__v": 0 },
    )
    .await?;
    w.put(
        "welcome_configs",
        doc! {
            "_id": g.oid(), "guildId": &guild, "enabled": true, "channelId": channel(g),
            "message": "Willkommen {user}! 🎉 Read the rules in #règles", "leaveMessage": "{user} left us 👋", "__v": 0,
        },
    )
    .await?;
    Ok(())
}

const WORD_TAGS: &[&str] = &[
    "Rules",
    "FAQ",
    "help",
    "Ünïcödé",
    "install",
    "日本語",
    "emoji-🎉",
    "links",
];

fn uuid(g: &mut Gen) -> String {
    let b: [u8; 16] = g.rng.gen();
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}
