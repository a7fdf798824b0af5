//! Typed plugin models keep the fields they do not name.

use heimdall::plugins::core::GuildConfig;
use heimdall::plugins::modmail::ModmailConfig;
use heimdall::seed::{seed_instance, SeedOptions};
use mongodb::bson::{doc, Document};

use crate::helpers::{fresh_db, test_key};

#[tokio::test]
async fn read_modify_write_keeps_unnamed_fields() {
    let db = fresh_db("rmw").await;
    seed_instance(&db, &SeedOptions::new(test_key()))
        .await
        .unwrap();

    let typed = db.collection::<GuildConfig>("guild_configs");
    let mut cfg = typed
        .find_one(doc! { "legacySettings": { "$exists": true } })
        .await
        .unwrap()
        .expect("the seed writes configs with fields no struct names");
    cfg.prefix = Some("¡".into());
    typed
        .replace_one(doc! { "_id": cfg.id.unwrap() }, &cfg)
        .await
        .unwrap();
    let raw = db
        .collection::<Document>("guild_configs")
        .find_one(doc! { "_id": cfg.id.unwrap() })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(raw.get_str("prefix").unwrap(), "¡");
    assert_eq!(
        raw.get_document("legacySettings")
            .unwrap()
            .get_str("embedColor")
            .unwrap(),
        "#5865F2"
    );
    assert_eq!(raw.get_i32("premiumTier").unwrap(), 2);
    assert!(
        raw.get_datetime("createdAt").is_ok(),
        "dates keep their BSON type"
    );

    // Nested: unnamed fields of array elements survive too.
    let typed = db.collection::<ModmailConfig>("modmail_configs");
    let mut mm = typed.find_one(doc! {}).await.unwrap().unwrap();
    mm.enabled = false;
    typed
        .replace_one(doc! { "_id": mm.id.unwrap() }, &mm)
        .await
        .unwrap();
    let raw = db
        .collection::<Document>("modmail_configs")
        .find_one(doc! { "_id": mm.id.unwrap() })
        .await
        .unwrap()
        .unwrap();
    let first = raw.get_array("categories").unwrap()[0]
        .as_document()
        .unwrap();
    assert_eq!(first.get_str("emoji").unwrap(), "📨");
    assert!(!raw.get_bool("enabled").unwrap());
}
