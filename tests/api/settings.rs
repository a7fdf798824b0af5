//! Plugin settings on the dashboard: `GET`/`PUT /api/guilds/{guildId}/{plugin}/config`
//! checked against each plugin's schema and typed struct, secrets write-only, changes
//! announced to the server's room.

use mongodb::bson::{doc, Document};
use serde_json::{json, Value};

use crate::helpers::{test_key, TestApp};
use crate::login::{app_with_discord, event, room, send, ALPHA, BETA, STAFF};
use crate::stand_in::{log_in, Browser};

async fn put(app: &TestApp, b: &Browser, path: &str, body: &str) -> (u16, Value, String) {
    send(app, b, reqwest::Method::PUT, path, Some(body.to_string())).await
}

async fn get(app: &TestApp, b: &Browser, path: &str) -> (u16, Value, String) {
    send(app, b, reqwest::Method::GET, path, None).await
}

#[tokio::test]
async fn settings_are_checked_field_by_field_and_changes_reach_open_pages() {
    let (app, discord) = app_with_discord().await;
    let (staff, _) = log_in(&app.address, &discord, STAFF, "/").await;
    let path = format!("/api/guilds/{ALPHA}/moderation/config");
    // A setting the schema does not name, from an older version: it must survive.
    app.db
        .collection::<Document>("moderation_configs")
        .insert_one(
            doc! { "guildId": ALPHA, "automodEnabled": false, "legacyEscalation": { "after": 3 } },
        )
        .await
        .unwrap();

    let (s, page, _) = get(&app, &staff, &path).await;
    assert_eq!(s, 200, "{page}");
    let kinds: Vec<(&str, &str)> = page["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["name"].as_str().unwrap(), f["type"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("muteRoleId", "role"),
            ("modLogChannelId", "channel"),
            ("automodEnabled", "bool")
        ]
    );
    assert_eq!(page["values"]["automodEnabled"], false);
    // Labels come from the plugin's strings, in the caller's language.
    assert_eq!(page["fields"][0]["label"], "Mute role");
    let german: Value = app
        .http
        .get(format!("{}{path}", app.address))
        .header("cookie", &staff.cookie)
        .header("accept-language", "de-DE,de;q=0.9")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(german["fields"][0]["label"], "Stummschalt-Rolle");

    let mut other_tab = room(&app, &staff, ALPHA).await;
    let (s, page, _) = put(
        &app,
        &staff,
        &path,
        r#"{"automodEnabled": true, "muteRoleId": "620000000000000009"}"#,
    )
    .await;
    assert_eq!(s, 200, "{page}");
    assert_eq!(page["values"]["automodEnabled"], true);
    assert_eq!(page["values"]["muteRoleId"], "620000000000000009");
    let e = event(&mut other_tab, "moderation:config_updated").await;
    assert_eq!(e["guildId"], ALPHA);
    assert_eq!(e["data"]["by"], STAFF.to_string());
    assert_eq!(e["data"]["values"]["automodEnabled"], true);

    let stored = app
        .db
        .collection::<Document>("moderation_configs")
        .find_one(doc! { "guildId": ALPHA })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.get_document("legacyEscalation").unwrap(),
        &doc! { "after": 3 }
    );

    // Each mistake is a 400 naming the field; nothing is written.
    for (body, code, names) in [
        (
            r#"{"automodEnabled": "yes"}"#,
            "invalid_field",
            "`automodEnabled` must be true or false",
        ),
        (
            r#"{"muteRoleId": "everyone"}"#,
            "invalid_field",
            "`muteRoleId` must be a role id",
        ),
        (
            r#"{"modLogChannelId": 5}"#,
            "invalid_field",
            "`modLogChannelId` must be a channel id",
        ),
        (
            r#"{"muteRole": "620000000000000009"}"#,
            "unknown_field",
            "no setting `muteRole`",
        ),
        (r#"["automodEnabled"]"#, "invalid_body", "JSON object"),
    ] {
        let (s, b, _) = put(&app, &staff, &path, body).await;
        assert_eq!((s, b["code"].as_str()), (400, Some(code)), "{body}: {b}");
        assert!(
            b["message"].as_str().unwrap().contains(names),
            "{body}: {b}"
        );
    }
    // Broken JSON: said in plain words, not the parser's.
    let (s, b, _) = put(&app, &staff, &path, r#"{"automodEnabled": tru"#).await;
    assert_eq!((s, b["code"].as_str()), (400, Some("invalid_body")));
    assert!(!b["message"].as_str().unwrap().contains("line"), "{b}");
    let (_, page, _) = get(&app, &staff, &path).await;
    assert_eq!(page["values"]["automodEnabled"], true);

    // With Discord on, a channel or role must be one of the server's, of the right kind.
    for (body, names) in [
        (
            r#"{"modLogChannelId": "630000000000000099"}"#,
            "`modLogChannelId` is not a text",
        ),
        (
            r#"{"modLogChannelId": "630000000000000003"}"#,
            "`modLogChannelId` is not a text",
        ),
        (
            r#"{"muteRoleId": "620000000000000099"}"#,
            "`muteRoleId` is not a role of this server",
        ),
    ] {
        let (s, b, _) = put(&app, &staff, &path, body).await;
        assert_eq!(
            (s, b["code"].as_str()),
            (400, Some("invalid_field")),
            "{body}: {b}"
        );
        assert!(
            b["message"].as_str().unwrap().contains(names),
            "{body}: {b}"
        );
    }
    // The pickers list them.
    let (s, server, _) = get(&app, &staff, &format!("/api/guilds/{ALPHA}/discord")).await;
    assert_eq!(s, 200, "{server}");
    assert_eq!(
        server["channels"][2],
        json!({ "id": "630000000000000003", "name": "Lounge", "kind": "voice" })
    );
    assert_eq!(
        server["roles"][0]["name"], "Muted",
        "highest first, no @everyone: {server}"
    );
    assert_eq!(server["roles"].as_array().unwrap().len(), 2);

    // null clears a setting.
    let (_, page, _) = put(&app, &staff, &path, r#"{"muteRoleId": null}"#).await;
    assert_eq!(page["values"]["muteRoleId"], Value::Null);

    // Another server's settings: 403; a plugin without settings: 404.
    let (s, b, _) = get(
        &app,
        &staff,
        &format!("/api/guilds/{BETA}/moderation/config"),
    )
    .await;
    assert_eq!((s, b["code"].as_str()), (403, Some("no_access")));
    let (s, b, _) = put(
        &app,
        &staff,
        &format!("/api/guilds/{BETA}/moderation/config"),
        "{}",
    )
    .await;
    assert_eq!(s, 403, "{b}");
    let (s, b, _) = get(&app, &staff, &format!("/api/guilds/{ALPHA}/tags/config")).await;
    assert_eq!((s, b["code"].as_str()), (404, Some("no_settings")));
}

#[tokio::test]
async fn secret_settings_are_write_only_and_stored_encrypted() {
    let (app, discord) = app_with_discord().await;
    let (staff, _) = log_in(&app.address, &discord, STAFF, "/").await;
    let path = format!("/api/guilds/{ALPHA}/minecraft/config");
    let mut tab = room(&app, &staff, ALPHA).await;
    let (s, page, text) = put(
        &app,
        &staff,
        &path,
        r#"{"host": "mc.example.org", "rconPort": 25575, "rconPassword": "hunter2-rcon"}"#,
    )
    .await;
    assert_eq!(s, 200, "{page}");
    assert_eq!(page["values"]["rconPassword"], json!({ "set": true }));
    assert!(!text.contains("hunter2"), "{text}");
    let e = event(&mut tab, "minecraft:config_updated").await;
    assert!(!e.to_string().contains("hunter2"), "{e}");

    let stored = app
        .db
        .collection::<Document>("minecraft_configs")
        .find_one(doc! { "guildId": ALPHA })
        .await
        .unwrap()
        .unwrap();
    let sealed = stored.get_str("encryptedRconPassword").unwrap();
    assert!(sealed.starts_with("v1:"), "{sealed}");
    let crypto = heimdall_host::crypto::Crypto::new(&test_key());
    assert_eq!(crypto.decrypt(sealed).unwrap(), "hunter2-rcon");
    assert_eq!(stored.get_i32("rconPort").unwrap(), 25575);
    assert!(!stored.contains_key("rconPassword"));

    let (_, _, text) = get(&app, &staff, &path).await;
    assert!(
        !text.contains(sealed) && !text.contains("hunter2"),
        "{text}"
    );
    // A port out of range names the field and its limits.
    let (s, b, _) = put(&app, &staff, &path, r#"{"rconPort": 70000}"#).await;
    assert_eq!(s, 400);
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .contains("between 1 and 65535"),
        "{b}"
    );
    // Clearing the secret.
    let (_, page, _) = put(&app, &staff, &path, r#"{"rconPassword": null}"#).await;
    assert_eq!(page["values"]["rconPassword"], json!({ "set": false }));
}
