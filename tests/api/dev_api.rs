//! The migration API: owner-only, `{code, message}` errors, progress over the gateway.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use heimdall_host::auth;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::clone::seeded;
use crate::helpers::{mongo_uri, spawn_app, TestApp, AUTH_SECRET, OWNER_ID};

fn bearer(user: u64) -> String {
    format!(
        "Bearer {}",
        auth::mint(AUTH_SECRET, user, Duration::from_secs(600))
    )
}

fn owner() -> u64 {
    OWNER_ID.parse().unwrap()
}

async fn post(app: &TestApp, path: &str, auth: Option<String>, body: Value) -> (u16, Value) {
    let mut r = app.http.post(format!("{}{path}", app.address)).json(&body);
    if let Some(a) = auth {
        r = r.header("Authorization", a);
    }
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_api_is_owner_only_and_answers_code_and_message() {
    let app = spawn_app().await;
    let (s, b) = post(
        &app,
        "/api/dev/migrations/clone",
        None,
        json!({ "source": mongo_uri() }),
    )
    .await;
    assert_eq!((s, b["code"].as_str()), (401, Some("unauthenticated")));
    let (s, b) = post(
        &app,
        "/api/dev/migrations/clone",
        Some(bearer(42_000_000_000_000_000)),
        json!({ "source": mongo_uri() }),
    )
    .await;
    assert_eq!((s, b["code"].as_str()), (403, Some("owner_only")));
    let (s, b) = post(
        &app,
        "/api/dev/migrations/clone",
        Some("Bearer nonsense".into()),
        json!({}),
    )
    .await;
    assert_eq!((s, b["code"].as_str()), (401, Some("invalid_token")));
    let (s, b) = post(
        &app,
        "/api/dev/migrations/clone",
        Some(bearer(owner())),
        json!({ "sourceUri": "x" }),
    )
    .await;
    assert_eq!((s, b["code"].as_str()), (400, Some("invalid_body")), "{b}");
    let (s, b) = post(
        &app,
        "/api/dev/migrations/clone",
        Some(bearer(owner())),
        json!({ "source": mongo_uri(), "guildId": "abc" }),
    )
    .await;
    assert_eq!((s, b["code"].as_str()), (400, Some("invalid_guild_id")));
    assert!(b["message"].as_str().unwrap().contains("snowflake"));
    // An unsigned token (`alg: none`) is refused in plain words, not the JWT library's.
    use base64::Engine as _;
    let b64 = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    let unsigned = format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"JWT"}"#),
        b64(&format!(
            r#"{{"sub":"{OWNER_ID}","exp":9999999999,"iat":1}}"#
        ))
    );
    let (s, b) = post(
        &app,
        "/api/dev/migrations/clone",
        Some(format!("Bearer {unsigned}")),
        json!({}),
    )
    .await;
    let m = b["message"].as_str().unwrap_or_default();
    assert_eq!((s, b["code"].as_str()), (401, Some("invalid_token")), "{b}");
    assert!(
        m.contains("HS256") && !m.contains("Error(") && !m.contains("variant"),
        "{m}"
    );
    let r = app
        .http
        .get(format!("{}/api/dev/migrations/nope", app.address))
        .header("Authorization", bearer(owner()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "run_not_found");
}

#[tokio::test]
async fn a_clone_started_over_http_reports_progress_to_owners_and_leaves_a_record() {
    let app = spawn_app().await;
    let source = seeded("apisrc").await;
    let (mut ws, _) = tokio_tungstenite::connect_async(app.ws_address.as_str())
        .await
        .unwrap();
    ws.next().await.unwrap().unwrap(); // hello
    ws.send(Message::Text(json!({ "type": "auth", "token": auth::mint(AUTH_SECRET, owner(), Duration::from_secs(600)) }).to_string().into()))
        .await
        .unwrap();

    let (s, plan) = post(
        &app,
        "/api/dev/migrations/clone",
        Some(bearer(owner())),
        json!({ "source": mongo_uri(), "sourceDb": source.name(), "dryRun": true }),
    )
    .await;
    assert_eq!(s, 200, "{plan}");
    assert_eq!(plan["dryRun"], true);

    let (s, started) = post(
        &app,
        "/api/dev/migrations/clone",
        Some(bearer(owner())),
        json!({ "source": mongo_uri(), "sourceDb": source.name() }),
    )
    .await;
    assert_eq!(s, 202, "{started}");
    let run_id = started["runId"].as_str().unwrap().to_string();

    let mut kinds = Vec::new();
    let done = loop {
        let m = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("progress stalled")
            .unwrap()
            .unwrap();
        let Message::Text(t) = m else { continue };
        let v: Value = serde_json::from_str(&t).unwrap();
        let ev = v["event"].as_str().unwrap().to_string();
        // The dry run above streamed its own progress under another id.
        if ev.starts_with("migration:") && v["data"]["runId"] == run_id.as_str() {
            assert_eq!(v["data"]["mode"], "clone");
            kinds.push(ev.clone());
            if ev == "migration:complete" || ev == "migration:error" {
                break v;
            }
        }
    };
    assert_eq!(done["event"], "migration:complete");
    assert_eq!(done["data"]["result"]["status"], "completed");
    assert_eq!(
        kinds
            .iter()
            .filter(|k| *k == "migration:step_start")
            .count(),
        24
    );
    assert_eq!(
        kinds
            .iter()
            .filter(|k| *k == "migration:step_complete")
            .count(),
        24
    );

    let r: Value = app
        .http
        .get(format!("{}/api/dev/migrations/{run_id}", app.address))
        .header("Authorization", bearer(owner()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["status"], "completed");
    assert_eq!(r["active"], false);
    assert!(r["imported"].as_u64().unwrap() > 1000);
    assert!(r["startedBy"].as_str().unwrap().starts_with("api:"));

    // Undo over HTTP: owners only, the plan first, then the run with its own events.
    let undo = format!("/api/dev/migrations/{run_id}/undo");
    let (s, _) = post(&app, &undo, Some(bearer(owner() + 1)), json!({})).await;
    assert_eq!(s, 403);
    let (s, e) = post(
        &app,
        "/api/dev/migrations/nope/undo",
        Some(bearer(owner())),
        json!({}),
    )
    .await;
    assert_eq!((s, e["code"].as_str()), (404, Some("run_not_found")), "{e}");
    let (s, e) = post(
        &app,
        &undo,
        Some(bearer(owner())),
        json!({ "dryRun": true, "nope": 1 }),
    )
    .await;
    assert_eq!(s, 400, "{e}");
    let (s, plan) = post(
        &app,
        &undo,
        Some(bearer(owner())),
        json!({ "dryRun": true }),
    )
    .await;
    assert_eq!(s, 200, "{plan}");
    assert_eq!(plan["undoes"], run_id.as_str());
    let to_remove: u64 = plan["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["toRemove"].as_u64().unwrap())
        .sum();
    assert_eq!(to_remove, r["imported"].as_u64().unwrap());
    let (s, started) = post(&app, &undo, Some(bearer(owner())), json!({})).await;
    assert_eq!(s, 202, "{started}");
    let undo_id = started["runId"].as_str().unwrap().to_string();
    let done = loop {
        let m = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("undo progress stalled")
            .unwrap()
            .unwrap();
        let Message::Text(t) = m else { continue };
        let v: Value = serde_json::from_str(&t).unwrap();
        if v["data"]["runId"] == undo_id.as_str() {
            assert_eq!(v["data"]["mode"], "undo");
            if v["event"] == "migration:complete" || v["event"] == "migration:error" {
                break v;
            }
        }
    };
    assert_eq!(done["event"], "migration:complete", "{done}");
    assert_eq!(done["data"]["result"]["verification"]["ok"], true);
    let tags = app
        .db
        .collection::<mongodb::bson::Document>("tags")
        .count_documents(mongodb::bson::doc! {})
        .await
        .unwrap();
    assert_eq!(tags, 0, "the undo removed what the clone wrote");
}

async fn get_status(app: &TestApp, token: &str) -> (u16, Value) {
    let r = app
        .http
        .get(format!("{}/api/dev/migrations", app.address))
        .header("Authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// Opens the gateway with `token`; returns the close code, or None when authenticated.
async fn gateway_close(app: &TestApp, token: &str) -> Option<u16> {
    let (mut ws, _) = tokio_tungstenite::connect_async(app.ws_address.as_str())
        .await
        .unwrap();
    ws.next().await.unwrap().unwrap(); // hello
    ws.send(Message::Text(
        json!({ "type": "auth", "token": token }).to_string().into(),
    ))
    .await
    .unwrap();
    match ws.next().await {
        Some(Ok(Message::Close(Some(f)))) => Some(f.code.into()),
        Some(Ok(Message::Text(t))) if t.contains("authenticated") => None,
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn signing_out_revokes_the_session_for_the_api_and_the_gateway() {
    let app = spawn_app().await;
    let token = auth::mint(AUTH_SECRET, owner(), Duration::from_secs(600));
    assert_eq!(get_status(&app, &token).await.0, 200);
    assert_eq!(gateway_close(&app, &token).await, None);
    // A dashboard tab that stays connected with this token.
    let (mut live, _) = tokio_tungstenite::connect_async(app.ws_address.as_str())
        .await
        .unwrap();
    live.next().await.unwrap().unwrap(); // hello
    live.send(Message::Text(
        json!({ "type": "auth", "token": token }).to_string().into(),
    ))
    .await
    .unwrap();
    let authed = live.next().await.unwrap().unwrap();
    assert!(authed.to_string().contains("authenticated"), "{authed}");

    // Signing out: this token (and any other issued until now) stops working everywhere.
    let (s, _) = post(
        &app,
        "/api/auth/logout",
        Some(format!("Bearer {token}")),
        json!({}),
    )
    .await;
    assert_eq!(s, 204);
    let (s, b) = get_status(&app, &token).await;
    assert_eq!((s, b["code"].as_str()), (401, Some("token_revoked")), "{b}");
    assert!(b["message"].as_str().unwrap().contains("signed out"));
    assert_eq!(gateway_close(&app, &token).await, Some(4003));
    // The connected tab is closed too, with the same code.
    let code = loop {
        match tokio::time::timeout(Duration::from_secs(5), live.next()).await {
            Ok(Some(Ok(Message::Close(Some(f))))) => break u16::from(f.code),
            Ok(Some(Ok(_))) => continue,
            other => panic!("the live socket was not closed: {other:?}"),
        }
    };
    assert_eq!(code, 4003);

    // A token issued afterwards works (tokens carry whole seconds).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let fresh = auth::mint(AUTH_SECRET, owner(), Duration::from_secs(600));
    assert_eq!(get_status(&app, &fresh).await.0, 200);

    // Owners revoke someone else's sessions (a leaked token); others may not.
    let member = 42_000_000_000_000_000u64;
    let member_token = auth::mint(AUTH_SECRET, member, Duration::from_secs(600));
    let (s, b) = post(
        &app,
        &format!("/api/auth/revoke/{}", owner()),
        Some(format!("Bearer {member_token}")),
        json!({}),
    )
    .await;
    assert_eq!((s, b["code"].as_str()), (403, Some("owner_only")));
    let (s, _) = post(
        &app,
        &format!("/api/auth/revoke/{member}"),
        Some(format!("Bearer {fresh}")),
        json!({}),
    )
    .await;
    assert_eq!(s, 204);
    assert_eq!(gateway_close(&app, &member_token).await, Some(4003));
    let (s, b) = post(
        &app,
        "/api/auth/revoke/not-a-user",
        Some(format!("Bearer {fresh}")),
        json!({}),
    )
    .await;
    assert_eq!((s, b["code"].as_str()), (400, Some("invalid_user_id")));
}

#[tokio::test]
async fn a_huge_body_is_413_and_an_overlong_token_is_refused() {
    let app = spawn_app().await;
    let huge = json!({ "source": "x".repeat(3 * 1024 * 1024) });
    let (s, b) = post(
        &app,
        "/api/dev/migrations/clone",
        Some(bearer(owner())),
        huge,
    )
    .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (413, Some("body_too_large")),
        "{b}"
    );
    assert!(b["message"].as_str().unwrap().contains("2 MB"));
    // Not JSON at all: said plainly.
    let r = app
        .http
        .post(format!("{}/api/dev/migrations/clone", app.address))
        .header("Authorization", bearer(owner()))
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["message"].as_str().unwrap().contains("not valid JSON"),
        "{v}"
    );
    // A token minted (elsewhere) to live 60 days is not accepted: sessions end by 30.
    let long = format!(
        "Bearer {}",
        auth::mint(AUTH_SECRET, owner(), Duration::from_secs(60 * 86_400))
    );
    let (s, b) = post(&app, "/api/dev/migrations/clone", Some(long), json!({})).await;
    assert_eq!((s, b["code"].as_str()), (401, Some("invalid_token")), "{b}");
    assert!(b["message"].as_str().unwrap().contains("30d"), "{b}");
}
