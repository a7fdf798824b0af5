//! `/migrate` from Discord: the ephemeral reply and its live edits, against a local stand-in
//! for Discord's REST API reached through serenity's `HttpBuilder::proxy`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::Json;
use heimdall::plugins::dev::api::{CloneRequest, LegacyRequest, UndoRequest};
use heimdall::plugins::dev::discord::{
    cancel_text, clone_command, legacy_command, num, status_text, undo_command, Confirmation,
    InteractionReply, LiveOptions, Press,
};
use poise::serenity_prelude as serenity;
use serde_json::{json, Value};

use crate::clone::seeded;
use crate::helpers::{mongo_uri, spawn_app, spawn_app_with, TestApp, AUTH_SECRET, OWNER_ID};

const APP_ID: u64 = 900_000_000_000_000_001;
const INTERACTION: u64 = 900_000_000_000_000_002;
const TOKEN: &str = "interaction-token-abc";
const DM_CHANNEL: u64 = 900_000_000_000_000_003;

/// One request Discord's API received.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    body: Value,
    at: Instant,
}

#[derive(Clone, Default)]
struct StandIn {
    seen: Arc<Mutex<Vec<Seen>>>,
    addr: Arc<Mutex<String>>,
}

/// The application's owner, its team's owner, an admin and a developer of the team, as the
/// stand-in's `GET /oauth2/applications/@me` names them (none is in `OWNER_IDS`).
const APP_OWNER: u64 = 910_000_000_000_000_001;
const TEAM_OWNER: u64 = 910_000_000_000_000_002;
const TEAM_ADMIN: u64 = 910_000_000_000_000_003;
const TEAM_DEVELOPER: u64 = 910_000_000_000_000_004;

fn user(id: u64) -> Value {
    json!({ "id": id.to_string(), "username": format!("u{id}"), "discriminator": "0", "avatar": null, "global_name": null })
}

/// Discord's application object, as documented (team members carry no `permissions`).
fn application() -> Value {
    let member = |id: u64, role: &str| json!({ "membership_state": 2, "team_id": "920000000000000001", "user": user(id), "role": role });
    json!({
        "id": APP_ID.to_string(), "name": "Heimdall", "icon": null, "description": "", "bot_public": false,
        "bot_require_code_grant": false, "verify_key": "00", "flags": 0,
        "owner": user(APP_OWNER),
        "team": {
            "id": "920000000000000001", "name": "Realm", "icon": null, "owner_user_id": TEAM_OWNER.to_string(),
            "members": [member(TEAM_OWNER, "admin"), member(TEAM_ADMIN, "admin"), member(TEAM_DEVELOPER, "developer")],
        },
    })
}

impl StandIn {
    fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The contents the user saw, in order: the reply, then every edit.
    fn contents(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|r| {
                r.body["data"]["content"]
                    .as_str()
                    .or(r.body["content"].as_str())
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    }

    /// Waits until the last content contains `needle`.
    async fn wait_for(&self, needle: &str) -> Vec<String> {
        for _ in 0..600 {
            let c = self.contents();
            if c.last().is_some_and(|l| l.contains(needle)) {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no reply containing {needle:?}; saw {:#?}", self.contents());
    }
}

fn message(content: &str) -> Value {
    json!({
        "id": "1", "channel_id": "2", "content": content,
        "author": { "id": APP_ID.to_string(), "username": "heimdall", "discriminator": "0000",
                    "avatar": null, "bot": true },
        "timestamp": "2026-11-22T00:00:00.000000+00:00", "edited_timestamp": null,
        "tts": false, "mention_everyone": false, "mentions": [], "mention_roles": [],
        "attachments": [], "embeds": [], "pinned": false, "type": 0, "flags": 64
    })
}

async fn record(
    State(s): State<StandIn>,
    method: Method,
    uri: Uri,
    body: axum::body::Bytes,
) -> axum::response::Response {
    if uri.path() == "/api/v10/oauth2/applications/@me" {
        return Json(application()).into_response();
    }
    if uri.path().starts_with("/api/v10/gateway") {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"message": "Unknown", "code": 0})),
        )
            .into_response();
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let content = body["content"].as_str().unwrap_or_default().to_string();
    s.seen.lock().unwrap().push(Seen {
        method: method.clone(),
        path: uri.path().to_string(),
        body,
        at: Instant::now(),
    });
    if uri.path().ends_with("/callback") {
        StatusCode::NO_CONTENT.into_response()
    } else if method == Method::PATCH || uri.path().ends_with("/messages") {
        Json(message(&content)).into_response()
    } else if uri.path() == "/api/v10/users/@me/channels" {
        Json(json!({
            "id": DM_CHANNEL.to_string(), "type": 1, "last_message_id": null,
            "recipients": [{ "id": OWNER_ID, "username": "owner", "discriminator": "0000", "avatar": null }]
        }))
        .into_response()
    } else {
        (
            StatusCode::NOT_FOUND,
            Json(json!({"message": "Unknown", "code": 0})),
        )
            .into_response()
    }
}

/// A stand-in for Discord's API and an interaction reply that talks to it.
async fn stand_in() -> (StandIn, InteractionReply) {
    let state = StandIn::default();
    let router = axum::Router::new()
        .fallback(record)
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    *state.addr.lock().unwrap() = format!("http://{addr}");
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let http = serenity::HttpBuilder::new("Bot test-token")
        .proxy(format!("http://{addr}"))
        .ratelimiter_disabled(true)
        .application_id(serenity::ApplicationId::new(APP_ID))
        .build();
    let reply = InteractionReply {
        http: Arc::new(http),
        interaction_id: serenity::InteractionId::new(INTERACTION),
        token: TOKEN.into(),
        received: Instant::now(),
        locale: "en-US".into(),
    };
    (state, reply)
}

fn owner() -> u64 {
    OWNER_ID.parse().unwrap()
}

fn clone_args(source_db: &str) -> CloneRequest {
    CloneRequest {
        source: mongo_uri(),
        source_db: Some(source_db.into()),
        ..CloneRequest::default()
    }
}

async fn newest_run(app: &TestApp) -> Value {
    let runs = heimdall_host::migration::runs::RunStore::new(&app.db)
        .list(1)
        .await
        .unwrap();
    runs[0].to_json()
}

#[tokio::test]
async fn migrate_clone_replies_ephemerally_edits_live_and_ends_with_the_result() {
    let app = spawn_app().await;
    let source = seeded("discord_src").await;
    let (discord, reply) = stand_in().await;
    let live = LiveOptions {
        edit_interval: Duration::from_millis(200),
        ..LiveOptions::default()
    };
    clone_command(&app.data, reply, owner(), clone_args(source.name()), live)
        .await
        .unwrap();
    let contents = discord.wait_for("completed").await;
    let run = newest_run(&app).await;
    assert_eq!(run["status"], "completed");

    let requests = discord.requests();
    // The reply: an interaction callback (type 4), ephemeral (flag 64), to this interaction.
    let first = &requests[0];
    assert_eq!(first.method, Method::POST);
    assert_eq!(
        first.path,
        format!("/api/v10/interactions/{INTERACTION}/{TOKEN}/callback")
    );
    assert_eq!(first.body["type"], 4);
    assert_eq!(first.body["data"]["flags"].as_u64().unwrap() & 64, 64);
    assert!(contents[0].contains("Instance Clone"), "{}", contents[0]);
    // Then only edits of that reply, spaced by the edit interval (Discord's rate limits).
    for r in &requests[1..] {
        assert_eq!(r.method, Method::PATCH);
        assert_eq!(
            r.path,
            format!("/api/v10/webhooks/{APP_ID}/{TOKEN}/messages/@original")
        );
    }
    let progress: Vec<&Seen> = requests[1..requests.len() - 1].iter().collect();
    for pair in progress.windows(2) {
        assert!(
            pair[1].at.duration_since(pair[0].at) >= Duration::from_millis(190),
            "two progress edits {:?} apart",
            pair[1].at.duration_since(pair[0].at)
        );
    }
    // The live edits named the run and showed steps; the last one is the record's result.
    let id = run["runId"].as_str().unwrap();
    assert!(
        contents[1..contents.len() - 1]
            .iter()
            .any(|c| c.contains(id) && c.contains("step")),
        "{contents:#?}"
    );
    let last = contents.last().unwrap();
    let imported = run["imported"].as_u64().unwrap();
    assert!(imported > 1000);
    assert!(last.contains(id), "{last}");
    assert!(
        last.contains(&format!("Imported {}", num(imported))),
        "{last}"
    );
    assert!(last.contains("Verified"), "{last}");
    assert!(last.chars().count() <= 2000);

    // `/migrate status` shows the same record later.
    let status = status_text(&app.data, "en-US", None).await.unwrap();
    assert!(
        status.contains(id) && status.contains("completed"),
        "{status}"
    );
}

#[tokio::test]
async fn migrate_refuses_non_owners_and_bad_input_in_the_reply_without_starting_a_run() {
    let app = spawn_app().await;
    let (discord, reply) = stand_in().await;
    clone_command(
        &app.data,
        reply.clone(),
        42,
        clone_args("anything"),
        LiveOptions::default(),
    )
    .await
    .unwrap();
    let seen = discord.contents();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].contains("Only the bot's owners"), "{seen:?}");
    assert_eq!(discord.requests()[0].body["data"]["flags"], 64);

    // A guild id that is not a snowflake: the reply says what is wrong.
    let (discord, reply) = stand_in().await;
    let mut args = clone_args("anything");
    args.guild_id = Some("my-server".into());
    clone_command(&app.data, reply, owner(), args, LiveOptions::default())
        .await
        .unwrap();
    let seen = discord.contents();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(
        seen[1].contains("Not started") && seen[1].contains("snowflake"),
        "{seen:?}"
    );

    // The old bot's database does not exist.
    let (discord, reply) = stand_in().await;
    let args = LegacyRequest {
        source: mongo_uri(),
        source_db: Some("no_such_database_here".into()),
        ..LegacyRequest::default()
    };
    legacy_command(&app.data, reply, owner(), args, LiveOptions::default())
        .await
        .unwrap();
    let seen = discord.contents();
    assert!(seen[1].contains("Not started"), "{seen:?}");
    assert!(seen[1].contains("no_such_database_here"), "{seen:?}");

    let runs = heimdall_host::migration::runs::RunStore::new(&app.db)
        .list(10)
        .await
        .unwrap();
    assert!(runs.is_empty(), "a refused command started a run");
    assert!(status_text(&app.data, "en-US", None)
        .await
        .unwrap()
        .contains("No migration has run yet"));
    assert!(cancel_text(&app.data, "en-US", "nope")
        .await
        .unwrap()
        .contains("no migration run `nope`"));
}

#[tokio::test]
async fn a_dry_run_replies_with_the_plan_and_writes_nothing() {
    let app = spawn_app().await;
    let source = seeded("discord_plan").await;
    let (discord, reply) = stand_in().await;
    let mut args = clone_args(source.name());
    args.dry_run = true;
    clone_command(&app.data, reply, owner(), args, LiveOptions::default())
        .await
        .unwrap();
    let seen = discord.contents();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen[1].contains("dry run"), "{}", seen[1]);
    assert!(seen[1].contains("Would insert"), "{}", seen[1]);
    let names = app.db.list_collection_names().await.unwrap();
    let tags = app
        .db
        .collection::<mongodb::bson::Document>("tags")
        .count_documents(mongodb::bson::doc! {})
        .await
        .unwrap();
    assert_eq!(tags, 0, "{names:?}");
}

#[tokio::test]
async fn the_live_reply_hands_over_before_discords_token_expires() {
    let app = spawn_app().await;
    let source = seeded("discord_expiry").await;
    let (discord, reply) = stand_in().await;
    // A token that is almost spent when the run starts.
    let live = LiveOptions {
        edit_interval: Duration::from_millis(100),
        token_lifetime: Duration::from_millis(250),
        ..LiveOptions::default()
    };
    clone_command(&app.data, reply, owner(), clone_args(source.name()), live)
        .await
        .unwrap();
    // The run completes (it is a record, not tied to the message)...
    for _ in 0..600 {
        if newest_run(&app).await["status"] == "completed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(newest_run(&app).await["status"], "completed");
    for _ in 0..200 {
        if discord
            .requests()
            .iter()
            .any(|r| r.path.ends_with("/messages"))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // ...the message's last word says where to follow it; nothing is edited after...
    let edits: Vec<Seen> = discord
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("/webhooks/") || r.path.ends_with("/callback"))
        .collect();
    let last = edits.last().unwrap().body["content"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(last.contains("/migrate status"), "{edits:#?}");
    assert!(!edits
        .iter()
        .any(|r| r.body.to_string().contains("completed.")));
    // ...and the result comes to the owner by direct message.
    let requests = discord.requests();
    let open_dm = requests
        .iter()
        .find(|r| r.path == "/api/v10/users/@me/channels")
        .expect("a DM channel was opened");
    assert_eq!(
        open_dm.body["recipient_id"].to_string().trim_matches('"'),
        OWNER_ID
    );
    let dm = requests
        .iter()
        .find(|r| r.path == format!("/api/v10/channels/{DM_CHANNEL}/messages"))
        .expect("the result was sent by DM");
    let text = dm.body["content"].as_str().unwrap();
    let id = newest_run(&app).await["runId"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(text.contains(&id) && text.contains("completed."), "{text}");
}

/// One owner policy: the application's owner and its team's owner and admins, learnt from
/// Discord (the stand-in), are owners at every door — `/migrate`, the API and the gateway —
/// and a team developer is not, at any of them.
#[tokio::test]
async fn the_applications_owners_are_owners_at_every_door() {
    let (discord, reply) = stand_in().await;
    let proxy = discord.addr.lock().unwrap().clone();
    let app = spawn_app_with(move |env| {
        env.insert("DISCORD_TOKEN".into(), "test-token".into());
        env.insert("DISCORD_API_PROXY".into(), proxy);
    })
    .await;
    for _ in 0..100 {
        if app.data.owners.is_owner(APP_OWNER) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for owner in [APP_OWNER, TEAM_OWNER, TEAM_ADMIN, owner()] {
        assert!(app.data.owners.is_owner(owner), "{owner} is an owner");
    }
    assert!(!app.data.owners.is_owner(TEAM_DEVELOPER));

    // /migrate: a dry run for the team's admin, the owner-only answer for the developer.
    let dry = CloneRequest {
        dry_run: true,
        ..clone_args("owners_door")
    };
    clone_command(
        &app.data,
        reply.clone(),
        TEAM_ADMIN,
        dry.clone(),
        LiveOptions::default(),
    )
    .await
    .unwrap();
    // Past the owner check: it looks at the source (which does not exist here).
    let seen = discord.wait_for("Not started").await;
    assert!(seen[0].contains("checking the source"), "{seen:?}");
    let (discord2, reply2) = stand_in().await;
    clone_command(
        &app.data,
        reply2,
        TEAM_DEVELOPER,
        dry,
        LiveOptions::default(),
    )
    .await
    .unwrap();
    assert!(discord2.contents()[0].contains("Only the bot's owners"));

    // The API.
    let token = |u: u64| heimdall_host::auth::mint(AUTH_SECRET, u, Duration::from_secs(600));
    for (u, status) in [(APP_OWNER, 200), (TEAM_OWNER, 200), (TEAM_DEVELOPER, 403)] {
        let r = app
            .http
            .get(format!("{}/api/dev/migrations", app.address))
            .bearer_auth(token(u))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "user {u}");
    }

    // The gateway.
    for (u, owner) in [(TEAM_ADMIN, true), (TEAM_DEVELOPER, false)] {
        use futures::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;
        let (mut ws, _) = tokio_tungstenite::connect_async(app.ws_address.as_str())
            .await
            .unwrap();
        ws.send(Message::Text(
            json!({ "type": "auth", "token": token(u) })
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
        let authenticated = loop {
            let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            if let Message::Text(t) = m {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["event"] == "authenticated" {
                    break v;
                }
            }
        };
        assert_eq!(authenticated["data"]["owner"], owner, "user {u}");
    }
}

/// `/migrate clone|legacy` with connection strings that carry secrets: the replies name the
/// source without them (see `redaction.rs`).
#[tokio::test]
async fn migrate_never_shows_a_connection_strings_secrets() {
    let app = spawn_app().await;
    for uri in crate::redaction::uris() {
        let (discord, reply) = stand_in().await;
        let args = CloneRequest {
            source: uri.clone(),
            ..CloneRequest::default()
        };
        clone_command(&app.data, reply, owner(), args, LiveOptions::default())
            .await
            .unwrap();
        for text in discord.wait_for("Not started").await {
            crate::redaction::assert_clean("/migrate clone", &text);
        }
        let (discord, reply) = stand_in().await;
        let args = LegacyRequest {
            source: uri,
            ..LegacyRequest::default()
        };
        legacy_command(&app.data, reply, owner(), args, LiveOptions::default())
            .await
            .unwrap();
        for text in discord.wait_for("Not started").await {
            crate::redaction::assert_clean("/migrate legacy", &text);
        }
    }
}

#[tokio::test]
async fn a_german_owner_is_answered_in_german_from_check_to_result() {
    let app = spawn_app().await;
    let source = seeded("discord_de").await;
    let (discord, mut reply) = stand_in().await;
    reply.locale = "de".into();
    let live = LiveOptions {
        edit_interval: Duration::from_millis(200),
        ..LiveOptions::default()
    };
    clone_command(&app.data, reply, owner(), clone_args(source.name()), live)
        .await
        .unwrap();
    let contents = discord.wait_for("abgeschlossen").await;
    assert!(
        contents[0].contains("Instanz-Klon") && contents[0].contains("Quelle wird geprüft"),
        "{}",
        contents[0]
    );
    let last = contents.last().unwrap();
    assert!(
        last.contains("Geprüft") || last.contains("geprüft"),
        "{last}"
    );
    assert!(!last.contains("Imported"), "{last}");
    // Status and cancel in German too; English stays the default.
    let status = status_text(&app.data, "de", None).await.unwrap();
    assert!(status.contains("abgeschlossen"), "{status}");
    assert!(cancel_text(&app.data, "de-AT", "nope")
        .await
        .unwrap()
        .contains("Es gibt keinen"));
    assert!(status_text(&app.data, "fr", None)
        .await
        .unwrap()
        .contains("completed"));
}

#[test]
fn migrate_is_registered_with_german_names_and_descriptions() {
    let cmd = heimdall::plugins::dev::discord::migrate();
    let json = serde_json::to_value(cmd.create_as_slash_command().unwrap()).unwrap();
    assert_eq!(json["name_localizations"]["de"], "migration");
    let clone = json["options"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "clone")
        .unwrap();
    assert_eq!(clone["name_localizations"]["de"], "klonen");
    assert!(clone["description_localizations"]["de"]
        .as_str()
        .unwrap()
        .contains("Heimdall"));
    for option in clone["options"].as_array().unwrap() {
        let de = option["description_localizations"]["de"]
            .as_str()
            .unwrap_or("");
        assert!(
            !de.is_empty(),
            "option {} has no German description",
            option["name"]
        );
        assert!(option["name_localizations"]["de"].is_string(), "{option}");
    }
}

/// Every command, subcommand and option of every plugin, as Discord registers it.
fn walk<'a>(
    v: &'a serde_json::Value,
    path: String,
    out: &mut Vec<(String, &'a serde_json::Value)>,
) {
    out.push((path.clone(), v));
    for o in v["options"].as_array().into_iter().flatten() {
        walk(
            o,
            format!("{path} {}", o["name"].as_str().unwrap_or("?")),
            out,
        );
    }
}

#[test]
fn every_slash_command_speaks_german_too() {
    let registry = heimdall_host::plugin::Registry::new(heimdall::plugins::all()).unwrap();
    let mut all = Vec::new();
    let commands: Vec<serde_json::Value> = registry
        .commands()
        .iter()
        .filter_map(|c| c.create_as_slash_command())
        .map(|c| serde_json::to_value(c).unwrap())
        .collect();
    assert!(commands.len() >= 4, "{commands:?}");
    for c in &commands {
        walk(c, format!("/{}", c["name"].as_str().unwrap()), &mut all);
    }
    for (path, v) in all {
        let en = v["description"].as_str().unwrap_or_default();
        let de = v["description_localizations"]["de"]
            .as_str()
            .unwrap_or_default();
        assert!(
            !en.is_empty() && en.len() <= 100,
            "{path}: English description {en:?}"
        );
        assert!(
            !de.is_empty() && de.chars().count() <= 100,
            "{path}: German description {de:?}"
        );
        if let Some(name) = v["name_localizations"]["de"].as_str() {
            assert!(
                name.len() <= 32
                    && name
                        .chars()
                        .all(|c| c.is_lowercase() || c.is_ascii_digit() || c == '_' || c == '-'),
                "{path}: {name:?} is not a name Discord takes"
            );
        }
    }
}

/// Presses a test makes, as if on the plan's buttons.
struct TestPresses(tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<Press>>);

#[async_trait::async_trait]
impl Confirmation for TestPresses {
    async fn next_press(&self) -> Option<Press> {
        self.0.lock().await.recv().await
    }
}

fn press(user: u64, confirm: bool, n: u64) -> Press {
    Press {
        user,
        confirm,
        interaction: (
            serenity::InteractionId::new(INTERACTION + 100 + n),
            format!("press-token-{n}"),
        ),
    }
}

/// A live option whose presses the test sends.
fn confirming(timeout: Duration) -> (LiveOptions, tokio::sync::mpsc::UnboundedSender<Press>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let live = LiveOptions {
        confirm: Some(Arc::new(TestPresses(tokio::sync::Mutex::new(rx)))),
        confirm_timeout: timeout,
        edit_interval: Duration::from_millis(200),
        ..LiveOptions::default()
    };
    (live, tx)
}

async fn runs(app: &TestApp) -> usize {
    heimdall_host::migration::runs::RunStore::new(&app.db)
        .list(10)
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn migrate_shows_the_plan_and_starts_only_on_the_invokers_confirm() {
    let app = spawn_app().await;
    let source = seeded("confirm_src").await;
    let (discord, reply) = stand_in().await;
    let (live, presses) = confirming(Duration::from_secs(30));
    let data = app.data.clone();
    let args = clone_args(source.name());
    let command =
        tokio::spawn(async move { clone_command(&data, reply, owner(), args, live).await });
    let plan = discord.wait_for("Confirm").await.last().unwrap().clone();
    let with_buttons = discord.requests().last().unwrap().body.clone();
    let ids: Vec<&str> = with_buttons["components"][0]["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["custom_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{with_buttons}");
    assert_eq!(runs(&app).await, 0, "nothing is written before Confirm");

    // Someone else's press is answered privately and changes nothing.
    presses
        .send(press(42_000_000_000_000_000, true, 1))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = discord
        .requests()
        .into_iter()
        .find(|r| r.path.contains("press-token-1"))
        .expect("the other user's press was answered");
    assert_eq!(refused.body["type"], 4);
    assert_eq!(refused.body["data"]["flags"].as_u64().unwrap() & 64, 64);
    assert!(refused.body["data"]["content"]
        .as_str()
        .unwrap()
        .contains("Only the owner"));
    assert_eq!(runs(&app).await, 0);

    // The invoker confirms: acknowledged, the buttons go, the run starts and completes.
    presses.send(press(owner(), true, 2)).unwrap();
    command.await.unwrap().unwrap();
    discord.wait_for("completed").await;
    let ack = discord
        .requests()
        .into_iter()
        .find(|r| r.path.contains("press-token-2"))
        .unwrap();
    assert_eq!(ack.body["type"], 6);
    let record = newest_run(&app).await;
    assert_eq!(record["status"], "completed");
    // The plan's count is what the run did.
    let imported = record["imported"].as_u64().unwrap();
    assert!(
        plan.contains(&format!("Would insert {}", num(imported))),
        "{plan} vs {imported}"
    );
}

#[tokio::test]
async fn an_unconfirmed_or_cancelled_plan_writes_nothing() {
    let app = spawn_app().await;
    let source = seeded("expire_src").await;
    // Nobody presses: it expires.
    let (discord, reply) = stand_in().await;
    let (live, _presses) = confirming(Duration::from_millis(400));
    clone_command(&app.data, reply, owner(), clone_args(source.name()), live)
        .await
        .unwrap();
    let last = discord.contents().last().unwrap().clone();
    assert!(last.contains("Not confirmed in time"), "{last}");
    let removed = discord.requests().last().unwrap().body.clone();
    assert_eq!(
        removed["components"],
        serde_json::json!([]),
        "the buttons go"
    );
    // Cancel.
    let (discord, reply) = stand_in().await;
    let (live, presses) = confirming(Duration::from_secs(30));
    presses.send(press(owner(), false, 3)).unwrap();
    clone_command(&app.data, reply, owner(), clone_args(source.name()), live)
        .await
        .unwrap();
    assert!(discord
        .contents()
        .last()
        .unwrap()
        .contains("Cancelled: nothing was written"));
    assert_eq!(runs(&app).await, 0);
}

#[tokio::test]
async fn migrate_undo_shows_its_plan_and_undoes_only_on_the_invokers_confirm() {
    let app = spawn_app().await;
    let source = seeded("undo_discord").await;
    let e = crate::clone::env(&app.db);
    let cloned = crate::clone::run(&e, crate::clone::opts(&source)).await;
    assert!(cloned.success(), "{:?}", cloned.message);
    let tags = || async {
        app.db
            .collection::<mongodb::bson::Document>("tags")
            .count_documents(mongodb::bson::doc! {})
            .await
            .unwrap()
    };
    assert!(tags().await > 0);

    // A German owner's dry run: the plan in German, nothing written.
    let (discord, mut reply) = stand_in().await;
    reply.locale = "de".into();
    let dry = UndoRequest {
        dry_run: true,
        force: false,
    };
    undo_command(
        &app.data,
        reply,
        owner(),
        &cloned.id,
        dry,
        LiveOptions::default(),
    )
    .await
    .unwrap();
    let plan = discord.contents().last().unwrap().clone();
    assert!(
        plan.contains("Rückgängig")
            && plan.contains(&format!("Würde {} entfernen", num(cloned.imported()))),
        "{plan}"
    );

    // The plan with buttons; someone else's press changes nothing; the invoker confirms.
    let (discord, reply) = stand_in().await;
    let (live, presses) = confirming(Duration::from_secs(30));
    let data = app.data.clone();
    let id = cloned.id.clone();
    let command = tokio::spawn(async move {
        undo_command(&data, reply, owner(), &id, UndoRequest::default(), live).await
    });
    let plan = discord.wait_for("Confirm").await.last().unwrap().clone();
    assert!(
        plan.contains(&format!("Would remove {}", num(cloned.imported()))),
        "{plan}"
    );
    presses
        .send(press(42_000_000_000_000_000, true, 1))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        runs(&app).await,
        1,
        "nothing started before the invoker's Confirm"
    );
    assert!(tags().await > 0);
    presses.send(press(owner(), true, 2)).unwrap();
    command.await.unwrap().unwrap();
    let contents = discord.wait_for("completed").await;
    let last = contents.last().unwrap();
    assert!(
        last.contains("Undo") && last.contains(&format!("Removed {}", num(cloned.imported()))),
        "{last}"
    );
    assert!(last.contains("back as it was"), "{last}");
    assert_eq!(tags().await, 0);
}
