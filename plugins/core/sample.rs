//! Sample data: bot-wide settings, each guild's configuration and secrets; the old bot's
//! `guildsettings` with every encoding of `guildID`.

use mongodb::bson::{doc, Bson};
use rand::Rng;

use heimdall_host::seed::{
    fixed_oid, LegacyGuild, Sample, SampleGuild, Samples, LEGACY_FIXTURE_GUILD,
};

/// Known legacy settings records.
pub mod fixtures {
    /// A guild whose settings store `guildID` as Int64.
    pub const GUILD_INT64: i64 = 300_000_000_000_000_002;
    /// A guild whose settings store `guildID` as a Double that is still exact (≤ 2^53).
    pub const GUILD_DOUBLE_EXACT: f64 = 4_503_599_627_370_497.0;
    /// A guild whose settings store `guildID` as a Double above 2^53: lost precision.
    pub const GUILD_DOUBLE_LOST: f64 = 300_000_000_000_000_003.0;
    /// `_id` of the settings document with the lost-precision guild id.
    pub const SETTINGS_LOST_ID: &str = "5f00000000000000000000a4";
}

#[async_trait::async_trait]
impl Samples for super::CorePlugin {
    async fn instance(&self, s: &mut Sample<'_>) -> anyhow::Result<()> {
        let Sample { g, w, .. } = s;
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
        Ok(())
    }

    async fn guild(&self, s: &mut Sample<'_>, guild: &SampleGuild) -> anyhow::Result<()> {
        let Sample { g, w, crypto, .. } = s;
        let locale = *g.pick(&["en-US", "de", "fr", "ja", "pt-BR"]);
        let mut cfg = doc! {
            "_id": g.oid(), "guildId": &guild.id, "prefix": *g.pick(&["!", "?", "h!", "€"]),
            "locale": locale, "enabledPlugins": ["moderation", "modmail", "tags", "suggestions", "tickets"],
            "createdAt": g.past_date(), "__v": 0,
        };
        if guild.index.is_multiple_of(2) {
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
            .take(1 + (guild.index as usize % 3))
        {
            let secret = format!("{key}-{}", g.rng.gen::<u64>());
            w.put(
                "guild_envs",
                doc! {
                    "_id": g.oid(), "guildId": &guild.id, "key": *key,
                    "encryptedValue": crypto.encrypt_with_nonce(&secret, g.nonce()),
                    "updatedAt": g.past_date(), "__v": 0,
                },
            )
            .await?;
        }
        Ok(())
    }

    async fn legacy_fixtures(&self, s: &mut Sample<'_>) -> anyhow::Result<()> {
        use fixtures::*;
        let w = &mut s.w;
        w.put("guildsettings", doc! {
            "_id": fixed_oid("5f00000000000000000000a1"), "guildID": LEGACY_FIXTURE_GUILD, "prefix": "?", "locale": "de",
            "welcomeChannel": "310000000000000001", "welcomeMessage": "Hallo {user} 👋", "leaveMessage": "",
            "logChannel": "310000000000000002", "modLogChannel": "310000000000000003",
            "muteRole": "320000000000000001", "suggestionChannel": "310000000000000004", "__v": 0,
        }).await?;
        w.put("guildsettings", doc! {
            "_id": fixed_oid("5f00000000000000000000a2"), "guildID": GUILD_INT64, "prefix": "", "locale": Bson::Null,
            "welcomeChannel": "",
        }).await?;
        w.put(
            "guildsettings",
            doc! {
                "_id": fixed_oid("5f00000000000000000000a3"), "guildID": GUILD_DOUBLE_EXACT,
                "welcomeChannel": 310_000_000_000_000_005i64, "modLogChannel": "310000000000000006",
            },
        )
        .await?;
        w.put(
            "guildsettings",
            doc! {
                "_id": fixed_oid(SETTINGS_LOST_ID), "guildID": GUILD_DOUBLE_LOST, "prefix": "!",
            },
        )
        .await?;
        Ok(())
    }

    async fn legacy_guild(&self, s: &mut Sample<'_>, guild: &LegacyGuild) -> anyhow::Result<()> {
        let Sample { g, w, .. } = s;
        let gid = g.legacy_id(guild.id);
        w.put("guildsettings", doc! {
            "_id": g.oid(), "guildID": gid, "prefix": *g.pick(&["!", "?", "", "-"]),
            "welcomeChannel": if g.chance(0.6) { Bson::String(g.snowflake()) } else { Bson::Null },
            "welcomeMessage": "Welcome {user}!", "logChannel": if g.chance(0.5) { Bson::String(g.snowflake()) } else { Bson::String(String::new()) },
            "muteRole": g.snowflake(), "suggestionChannel": g.snowflake(),
        }).await?;
        Ok(())
    }
}
