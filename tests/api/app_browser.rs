//! The dashboard app in a real browser (Debian's headless Chromium, playwright-core:
//! `dashboard/tests/app.mjs`) against the bot, its database and the Discord stand-in: login
//! end to end, the picker, live settings across two browsers, a `/warn` reaching an open
//! infractions page, a dropped socket recovering without a lost event.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};

use heimdall::plugins::{moderation, tags};

use crate::dashboard::browser;
use crate::helpers::TestApp;
use crate::login::{app_with_discord, free_port, ALPHA, BETA, MEMBER, STAFF};
use crate::stand_in::Discord;

/// What the browser script may ask of the test while it runs: who is "logged in on
/// Discord", and moderators' slash commands (through the commands' logic).
pub async fn control(app: &TestApp, discord: &Discord) -> String {
    #[derive(Clone)]
    struct Ctl {
        data: heimdall_host::context::Data,
        discord: Discord,
    }
    async fn as_user(State(c): State<Arc<Ctl>>, Path(user): Path<u64>) -> Json<Value> {
        c.discord.with(|w| w.browser_user = Some(user));
        Json(json!({}))
    }
    async fn warn(State(c): State<Arc<Ctl>>, Path(member): Path<u64>) -> Json<Value> {
        let case = moderation::ops::warn(
            &c.data,
            ALPHA,
            member,
            600_000_000_000_000_077,
            Some("from /warn"),
        )
        .await
        .unwrap();
        Json(json!({ "case": case.case_number }))
    }
    async fn tag(State(c): State<Arc<Ctl>>, Path(name): Path<String>) -> Json<Value> {
        tags::ops::create(
            &c.data,
            ALPHA,
            &name,
            "made with /tag create",
            600_000_000_000_000_077,
        )
        .await
        .unwrap();
        Json(json!({}))
    }
    let ctl = Arc::new(Ctl {
        data: app.data.clone(),
        discord: discord.clone(),
    });
    let router = axum::Router::new()
        .route("/as/{user}", axum::routing::post(as_user))
        .route("/warn/{member}", axum::routing::post(warn))
        .route("/tag/{name}", axum::routing::post(tag))
        .with_state(ctl);
    let port = free_port();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://127.0.0.1:{port}")
}

/// A modmail conversation (#1, open, with two messages) and three suggestions in ALPHA.
async fn seed_modmail_and_suggestions(app: &TestApp) {
    use mongodb::bson::{doc, oid::ObjectId, DateTime};
    let conv = ObjectId::new();
    app.db
        .collection::<mongodb::bson::Document>("modmail_conversations")
        .insert_one(doc! { "_id": conv, "guildId": ALPHA, "ticketNumber": 1, "userId": MODMAIL_MEMBER.to_string(),
            "status": "open", "claimedBy": null, "createdAt": DateTime::now() })
        .await
        .unwrap();
    for (i, text) in ["Hello, I was banned by mistake?", "It was in #general."]
        .iter()
        .enumerate()
    {
        app.db
            .collection::<mongodb::bson::Document>("modmail_messages")
            .insert_one(doc! { "guildId": ALPHA, "conversationId": conv, "authorId": MODMAIL_MEMBER.to_string(),
                "isStaff": false, "content": *text, "attachments": [], "createdAt": DateTime::now(), "n": i as i32 })
            .await
            .unwrap();
    }
    for (n, text, up) in [
        (1, "A music channel", 12),
        (2, "Weekly game nights", 30),
        (3, "Fewer pings", 4),
    ] {
        app.db
            .collection::<mongodb::bson::Document>("suggestions")
            .insert_one(doc! { "guildId": ALPHA, "number": n, "authorId": "640000000000000001", "content": text,
                "status": "pending", "messageId": null, "upvotes": up, "downvotes": 2, "createdAt": DateTime::now() })
            .await
            .unwrap();
    }
}

const MODMAIL_MEMBER: u64 = 640_000_000_000_000_042;

#[tokio::test]
async fn staff_log_in_pick_a_server_and_see_changes_live_in_chromium() {
    let (app, discord) = app_with_discord().await;
    tags::ops::create(&app.data, ALPHA, "rules", "Be kind.", STAFF)
        .await
        .unwrap();
    seed_modmail_and_suggestions(&app).await;
    let ctl = control(&app, &discord).await;
    let shots = tempfile::tempdir().unwrap();
    let report = browser(
        "app.mjs",
        &[
            ("BASE_URL", app.address.clone()),
            ("CONTROL_URL", ctl),
            ("STAFF", STAFF.to_string()),
            ("MEMBER", MEMBER.to_string()),
            ("ALPHA", ALPHA.into()),
            ("BETA", BETA.into()),
            ("SHOTS", shots.path().display().to_string()),
        ],
    )
    .await;

    // Logged in through Discord's pages and back on the picker, with exactly the allowed
    // servers; a member without rights sees none.
    assert_eq!(report["landedOn"], "/", "{report}");
    assert_eq!(
        report["picker"],
        json!([ALPHA, "610000000000000004", "610000000000000005"]),
        "{report}"
    );
    assert_eq!(report["memberPicker"], json!([]), "{report}");
    // ... said in German, the language of their Discord.
    assert_eq!(
        report["memberEmptyText"]
            .as_str()
            .map(|s| s.contains("Server verwalten")),
        Some(true),
        "{report}"
    );
    // Another server by URL: the no-access page.
    assert_eq!(report["noAccess"], true, "{report}");
    // A setting saved in one browser shows in the other without a reload.
    assert_eq!(report["settingSeenLive"], true, "{report}");
    assert_eq!(report["tagSeenLive"], true, "{report}");
    assert_eq!(report["commandTagSeen"], true, "{report}");
    // `/warn` reaches the open infractions page; after a dropped socket, nothing is lost.
    assert_eq!(report["warnSeen"], true, "{report}");
    assert_eq!(report["reconnected"], true, "{report}");
    assert_eq!(report["casesAfterDrop"], json!([true, true]), "{report}");
    // A reply typed on the modmail page reached the member by DM and the other browser.
    assert_eq!(report["replySeenLive"], true, "{report}");
    let to_member: Vec<String> = discord.with(|w| {
        w.dms
            .iter()
            .filter(|(u, _)| *u == MODMAIL_MEMBER)
            .map(|(_, t)| t.clone())
            .collect()
    });
    assert_eq!(to_member, vec!["Thanks, we are checking.".to_string()]);
    // Each /warn told its member by DM.
    assert_eq!(
        discord.with(|w| w
            .dms
            .iter()
            .filter(|(_, t)| t.contains("warning (case #"))
            .count()),
        3
    );
    assert_eq!(report["suggestionSeenLive"], true, "{report}");
    // Logging out ends the session.
    assert_eq!(report["afterLogout"], 401, "{report}");
    assert_eq!(report["otherShowsLogin"], true, "{report}");
    assert_eq!(report["accessGranted"], true, "{report}");
    // No script error and no Content-Security-Policy violation on any page.
    assert_eq!(report["pageErrors"], json!([]), "{report}");
    for shot in [
        "login",
        "picker",
        "settings",
        "tags",
        "infractions",
        "no-access",
        "secret",
        "modmail",
        "suggestions",
        "access",
    ] {
        let p = shots.path().join(format!("{shot}.png"));
        assert!(
            std::fs::metadata(&p)
                .map(|m| m.len() > 5_000)
                .unwrap_or(false),
            "{shot}.png"
        );
        if let Ok(dir) = std::env::var("HEIMDALL_KEEP_SCREENSHOTS") {
            std::fs::copy(
                &p,
                std::path::Path::new(&dir).join(format!("app-{shot}.png")),
            )
            .unwrap();
        }
    }
}
