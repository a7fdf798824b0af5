//! `heimdall seed`: the instance and the legacy database have the promised shapes and quirks.

use std::collections::{HashMap, HashSet};

use futures::TryStreamExt;
use heimdall::seed::{legacy_fixtures as fx, seed_instance, seed_legacy, SeedOptions};
use heimdall_host::crypto::Crypto;
use heimdall_host::plugin::{GuildScope, Lifetime, Registry};
use mongodb::bson::{doc, oid::ObjectId, Bson, Document};
use mongodb::Database;

use crate::helpers::{fresh_db, test_key};

async fn all_docs(db: &Database, coll: &str) -> Vec<Document> {
    db.collection::<Document>(coll)
        .find(doc! {})
        .sort(doc! { "_id": 1 })
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

#[tokio::test]
async fn seeded_instance_has_every_collection_valid_references_and_readable_secrets() {
    let db = fresh_db("seed").await;
    let report = seed_instance(&db, &SeedOptions::new(test_key()))
        .await
        .unwrap();
    let reg = Registry::new(heimdall::plugins::all()).unwrap();
    let crypto = Crypto::new(&test_key());

    let mut ids: HashMap<&str, HashSet<ObjectId>> = HashMap::new();
    let mut docs: HashMap<&str, Vec<Document>> = HashMap::new();
    for c in reg
        .collections()
        .iter()
        .filter(|c| c.spec.lifetime != Lifetime::Internal)
    {
        let d = all_docs(&db, c.spec.name).await;
        assert!(!d.is_empty(), "{} is empty", c.spec.name);
        assert_eq!(report.counts[c.spec.name], d.len() as u64);
        ids.insert(
            c.spec.name,
            d.iter().map(|x| x.get_object_id("_id").unwrap()).collect(),
        );
        docs.insert(c.spec.name, d);
    }
    assert_eq!(docs.len(), 40);

    let mut encrypted_checked = 0;
    let mut extra_fields = 0;
    for c in reg
        .collections()
        .iter()
        .filter(|c| c.spec.lifetime != Lifetime::Internal)
    {
        for d in &docs[c.spec.name] {
            for r in &c.spec.references {
                match d.get(r.field) {
                    Some(Bson::ObjectId(id)) => assert!(
                        ids[r.collection].contains(id),
                        "{}.{} points to nothing",
                        c.spec.name,
                        r.field
                    ),
                    None | Some(Bson::Null) => {
                        assert!(r.optional, "{}.{} missing", c.spec.name, r.field)
                    }
                    Some(other) => panic!("{}.{} is {other:?}", c.spec.name, r.field),
                }
            }
            for path in &c.spec.encrypted {
                for v in heimdall_host::migration::clone::encrypted_values(d, path) {
                    crypto
                        .decrypt(&v)
                        .unwrap_or_else(|e| panic!("{}.{path}: {e}", c.spec.name));
                    encrypted_checked += 1;
                }
            }
            if let GuildScope::Field {
                nullable: false,
                field,
            } = c.spec.scope
            {
                assert!(d.get_str(field).is_ok(), "{} without {field}", c.spec.name);
            }
            if d.contains_key("legacySettings")
                || d.contains_key("roles")
                || d.contains_key("hours")
            {
                extra_fields += 1;
            }
        }
    }
    assert!(
        encrypted_checked >= 15,
        "only {encrypted_checked} encrypted values"
    );
    assert!(
        extra_fields > 0,
        "no document carries fields the structs do not name"
    );

    // Guilds of very different sizes.
    let mut per_guild: HashMap<String, usize> = HashMap::new();
    for d in &docs["infractions"] {
        *per_guild
            .entry(d.get_str("guildId").unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(per_guild.len(), 5);
    let max = per_guild.values().max().unwrap();
    let min = per_guild.values().min().unwrap();
    assert!(max / min >= 20, "guild sizes too similar: {per_guild:?}");

    // DM reminders (null guild), unicode and emoji content, ephemeral games.
    assert!(docs["reminders"]
        .iter()
        .any(|d| d.get("guildId") == Some(&Bson::Null)));
    assert!(docs["tags"]
        .iter()
        .any(|d| d.get_str("content").unwrap().contains('🎉')
            || d.get_str("content").unwrap().contains("日本語")));
    assert!(!docs["tictactoe_games"].is_empty() && !docs["connect4_games"].is_empty());
}

#[tokio::test]
async fn the_same_seed_writes_the_same_data() {
    let a = fresh_db("same_a").await;
    let b = fresh_db("same_b").await;
    let c = fresh_db("same_c").await;
    let opts = SeedOptions::new(test_key());
    seed_instance(&a, &opts).await.unwrap();
    seed_instance(&b, &opts).await.unwrap();
    seed_instance(
        &c,
        &SeedOptions {
            seed: 7,
            ..opts.clone()
        },
    )
    .await
    .unwrap();
    // Times that must stay relative to "now" (TTL and due dates) are left out of the comparison.
    let strip = |mut d: Document| {
        for f in ["createdAt", "expiresAt", "remindAt"] {
            d.remove(f);
        }
        d
    };
    let tags_a: Vec<_> = all_docs(&a, "tags").await.into_iter().map(strip).collect();
    let tags_b: Vec<_> = all_docs(&b, "tags").await.into_iter().map(strip).collect();
    let tags_c: Vec<_> = all_docs(&c, "tags").await.into_iter().map(strip).collect();
    assert_eq!(tags_a, tags_b);
    assert_ne!(tags_a, tags_c, "another seed gives other data");
    for coll in [
        "infractions",
        "modmail_messages",
        "guild_envs",
        "tictactoe_games",
        "minecraft_link_requests",
    ] {
        let x: Vec<_> = all_docs(&a, coll).await.into_iter().map(strip).collect();
        let y: Vec<_> = all_docs(&b, coll).await.into_iter().map(strip).collect();
        assert_eq!(x, y, "{coll} differs between two runs with one seed");
    }
}

/// The `ObjectId` `_id`s of `coll` in the order the server stores them.
async fn stored_object_ids(db: &Database, coll: &str) -> Vec<ObjectId> {
    let mut cursor = db
        .collection::<Document>(coll)
        .find(doc! {})
        .projection(doc! { "_id": 1 })
        .await
        .unwrap();
    let mut ids = Vec::new();
    while let Some(d) = cursor.try_next().await.unwrap() {
        ids.extend(d.get_object_id("_id").ok());
    }
    ids
}

#[tokio::test]
async fn a_seeded_instance_is_stored_in_id_order_as_a_bot_writes_it_unless_scattered() {
    let minted = fresh_db("minted").await;
    let scattered = fresh_db("scattered").await;
    let opts = SeedOptions::new(test_key());
    seed_instance(&minted, &opts).await.unwrap();
    seed_instance(
        &scattered,
        &SeedOptions {
            scattered_ids: true,
            ..opts.clone()
        },
    )
    .await
    .unwrap();
    let reg = Registry::new(heimdall::plugins::all()).unwrap();
    let (mut checked, mut out_of_order) = (0, 0);
    for c in reg.collections() {
        let ids = stored_object_ids(&minted, c.spec.name).await;
        if ids.len() < 10 {
            continue;
        }
        checked += 1;
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "{}: the ids a bot mints rise in the order it writes them",
            c.spec.name
        );
        let other = stored_object_ids(&scattered, c.spec.name).await;
        if other.windows(2).any(|w| w[0] > w[1]) {
            out_of_order += 1;
        }
    }
    assert!(
        checked >= 5,
        "only {checked} collections of ten ids or more"
    );
    assert_eq!(
        out_of_order, checked,
        "with scattered ids, every such collection is stored out of `_id` order"
    );
}

#[tokio::test]
async fn seeding_refuses_a_database_that_holds_data() {
    let db = fresh_db("nonempty").await;
    db.collection::<Document>("tags")
        .insert_one(doc! { "x": 1 })
        .await
        .unwrap();
    let err = seed_instance(&db, &SeedOptions::new(test_key()))
        .await
        .unwrap_err();
    let user = heimdall_host::error::user_error(&err).expect("user error");
    assert_eq!(user.code, "database_not_empty");
    assert!(user.message.contains("--drop"));
    assert_eq!(
        db.collection::<Document>("tags")
            .count_documents(doc! {})
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn legacy_database_has_every_quirk() {
    let db = fresh_db("legacy").await;
    let opts = SeedOptions {
        modmail_collection: Some("tickets_old".into()),
        ..SeedOptions::new(test_key())
    };
    let report = seed_legacy(&db, &opts).await.unwrap();
    for coll in [
        "guildsettings",
        "tags",
        "suggestions",
        "tickets_old",
        "warnings",
        "reminders",
        "reactionroles",
    ] {
        assert!(
            report.counts.get(coll).copied().unwrap_or(0) > 0,
            "{coll} empty"
        );
    }
    assert!(
        !report.counts.contains_key("modmail"),
        "the modmail collection takes the given name"
    );

    // IDs as string, Int64 and Double (exact and lost).
    let settings = all_docs(&db, "guildsettings").await;
    let kinds: HashSet<_> = settings
        .iter()
        .map(|d| d.get("guildID").unwrap().element_type() as u8)
        .collect();
    assert!(kinds.contains(&(mongodb::bson::spec::ElementType::String as u8)));
    assert!(kinds.contains(&(mongodb::bson::spec::ElementType::Int64 as u8)));
    assert!(kinds.contains(&(mongodb::bson::spec::ElementType::Double as u8)));
    let lost = settings
        .iter()
        .find(|d| d.get_object_id("_id").unwrap().to_hex() == fx::SETTINGS_LOST_ID)
        .unwrap();
    assert!(lost.get_f64("guildID").unwrap() > 9_007_199_254_740_992.0);

    // Dates in three encodings across the modmail messages.
    let threads = all_docs(&db, "tickets_old").await;
    let mut date_kinds = HashSet::new();
    for t in &threads {
        for m in t.get_array("messages").unwrap() {
            date_kinds.insert(
                m.as_document()
                    .unwrap()
                    .get("createdAt")
                    .unwrap()
                    .element_type() as u8,
            );
        }
    }
    for k in [
        mongodb::bson::spec::ElementType::DateTime,
        mongodb::bson::spec::ElementType::Int64,
        mongodb::bson::spec::ElementType::Double,
        mongodb::bson::spec::ElementType::String,
    ] {
        assert!(
            date_kinds.contains(&(k as u8)),
            "no message date of type {k:?}"
        );
    }
    let long = threads
        .iter()
        .find(|t| t.get_object_id("_id").unwrap().to_hex() == fx::MODMAIL_LONG)
        .unwrap();
    assert_eq!(
        long.get_array("messages").unwrap().len(),
        fx::MODMAIL_LONG_MESSAGES
    );

    // Colliding tag names, empty content, status as string and number, missing case ids,
    // past reminders.
    let tags = all_docs(&db, "tags").await;
    let rules: Vec<_> = tags
        .iter()
        .filter(|t| {
            t.get_str("guildID") == Ok(fx::GUILD)
                && t.get_str("name").unwrap().trim().to_lowercase() == "rules"
        })
        .collect();
    assert_eq!(rules.len(), 2);
    assert!(tags.iter().any(|t| t.get_str("content") == Ok("")));
    let statuses: HashSet<_> = all_docs(&db, "suggestions")
        .await
        .iter()
        .map(|s| s.get("status").unwrap().element_type() as u8)
        .collect();
    assert!(statuses.len() >= 2, "status only as {statuses:?}");
    let warnings = all_docs(&db, "warnings").await;
    assert!(warnings.iter().any(|w| !w.contains_key("caseID")));
    assert!(warnings.iter().any(|w| !w.contains_key("type")));
    let now = mongodb::bson::DateTime::now().timestamp_millis();
    let reminders = all_docs(&db, "reminders").await;
    let past = reminders
        .iter()
        .find(|r| r.get_object_id("_id").unwrap().to_hex() == fx::REMINDER_PAST)
        .unwrap();
    assert!(past.get_i64("remindAt").unwrap() < now);
    assert!(reminders.iter().any(|r| !r.contains_key("guildID")));
}
