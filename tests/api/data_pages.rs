//! The dashboard's data pages: tags and infractions over the API, and the same changes made
//! by the slash commands' logic reaching an open page's room.

use serde_json::{json, Value};

use heimdall::plugins::{moderation, modmail, suggestions, tags};
use mongodb::bson::{doc, oid::ObjectId, DateTime, Document};

use crate::helpers::TestApp;
use crate::login::{app_with_discord, event, room, send, ALPHA, BETA, MEMBER, STAFF};
use crate::stand_in::{log_in, Browser};

async fn call(
    app: &TestApp,
    b: &Browser,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let (status, v, _) = send(app, b, method, path, body.map(|b| b.to_string())).await;
    (status, v)
}

#[tokio::test]
async fn tags_are_listed_searched_and_changed_from_the_page_and_from_commands() {
    let (app, discord) = app_with_discord().await;
    let (staff, _) = log_in(&app.address, &discord, STAFF, "/").await;
    let mut page = room(&app, &staff, ALPHA).await;
    let base = format!("/api/guilds/{ALPHA}/tags/items");
    use reqwest::Method as M;

    let (s, t) = call(
        &app,
        &staff,
        M::POST,
        &base,
        Some(json!({ "name": " Rules ", "content": "Be kind." })),
    )
    .await;
    assert_eq!(s, 201, "{t}");
    assert_eq!(t["name"], "rules");
    let e = event(&mut page, "tags:tag_created").await;
    assert_eq!(
        (e["data"]["tag"]["name"].as_str(), e["data"]["by"].as_str()),
        (Some("rules"), Some("600000000000000001"))
    );
    let (s, b) = call(
        &app,
        &staff,
        M::POST,
        &base,
        Some(json!({ "name": "rules", "content": "again" })),
    )
    .await;
    assert_eq!((s, b["code"].as_str()), (409, Some("tag_exists")));
    let (s, b) = call(
        &app,
        &staff,
        M::POST,
        &base,
        Some(json!({ "name": "two words", "content": "x" })),
    )
    .await;
    assert_eq!((s, b["code"].as_str()), (400, Some("invalid_tag_name")));
    let (s, b) = call(
        &app,
        &staff,
        M::POST,
        &base,
        Some(json!({ "name": "long", "content": "x".repeat(2001) })),
    )
    .await;
    assert_eq!((s, b["code"].as_str()), (400, Some("invalid_tag_content")));
    let (s, b) = call(
        &app,
        &staff,
        M::POST,
        &base,
        Some(json!({ "name": "x", "content": "y", "color": 1 })),
    )
    .await;
    assert_eq!((s, b["code"].as_str()), (400, Some("invalid_body")), "{b}");
    assert!(b["message"].as_str().unwrap().contains("color"), "{b}");

    // A moderator's /tag commands, through the same logic: the open page hears of each.
    let moderator = 600_000_000_000_000_077;
    tags::ops::create(&app.data, ALPHA, "faq", "See #faq.", moderator)
        .await
        .unwrap();
    let e = event(&mut page, "tags:tag_created").await;
    assert_eq!(e["data"]["by"], moderator.to_string());
    tags::ops::edit(&app.data, ALPHA, "FAQ", "See #help.", moderator)
        .await
        .unwrap();
    let e = event(&mut page, "tags:tag_updated").await;
    assert_eq!(e["data"]["tag"]["content"], "See #help.");
    let shown = tags::ops::show(&app.data, ALPHA, "faq", moderator)
        .await
        .unwrap();
    assert_eq!((shown.content.as_str(), shown.uses), ("See #help.", 1));
    assert_eq!(
        event(&mut page, "tags:tag_updated").await["data"]["tag"]["uses"],
        1
    );

    // Many tags page through; a search narrows by name.
    for i in 0..120 {
        tags::ops::create(&app.data, ALPHA, &format!("t{i:03}"), "x", moderator)
            .await
            .unwrap();
    }
    let (_, p1) = call(&app, &staff, M::GET, &format!("{base}?limit=100"), None).await;
    assert_eq!(p1["items"].as_array().unwrap().len(), 100);
    let next = p1["next"].as_str().unwrap();
    let (_, p2) = call(
        &app,
        &staff,
        M::GET,
        &format!("{base}?limit=100&after={next}"),
        None,
    )
    .await;
    assert_eq!(p2["items"].as_array().unwrap().len(), 22);
    assert_eq!(p2["next"], Value::Null);
    let (_, found) = call(&app, &staff, M::GET, &format!("{base}?q=T11"), None).await;
    let names: Vec<&str> = found["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        (110..120)
            .map(|i| format!("t{i}"))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    );

    let (s, t) = call(
        &app,
        &staff,
        M::PUT,
        &format!("{base}/rules"),
        Some(json!({ "content": "Be very kind." })),
    )
    .await;
    assert_eq!((s, t["content"].as_str()), (200, Some("Be very kind.")));
    let (s, _) = call(&app, &staff, M::DELETE, &format!("{base}/rules"), None).await;
    assert_eq!(s, 204);
    assert_eq!(
        event(&mut page, "tags:tag_deleted").await["data"]["name"],
        "rules"
    );
    let (s, b) = call(&app, &staff, M::DELETE, &format!("{base}/rules"), None).await;
    assert_eq!((s, b["code"].as_str()), (404, Some("no_such_tag")));
    // Another server's tags: no access.
    let (s, _) = call(
        &app,
        &staff,
        M::GET,
        &format!("/api/guilds/{BETA}/tags/items"),
        None,
    )
    .await;
    assert_eq!(s, 403);
}

#[tokio::test]
async fn a_warn_appears_on_the_open_infractions_page_and_can_be_pardoned() {
    let (app, discord) = app_with_discord().await;
    let (staff, _) = log_in(&app.address, &discord, STAFF, "/").await;
    let mut page = room(&app, &staff, ALPHA).await;
    let base = format!("/api/guilds/{ALPHA}/moderation/infractions");
    use reqwest::Method as M;
    let moderator = 600_000_000_000_000_077;
    let (alice, bob) = (640_000_000_000_000_001u64, 640_000_000_000_000_002u64);

    // `/warn` through the command logic.
    let case = moderation::ops::warn(&app.data, ALPHA, alice, moderator, Some("spam"))
        .await
        .unwrap();
    // The member heard of it by DM, and the mod log channel got a line (pinging nobody).
    let (s, _) = call(
        &app,
        &staff,
        M::PUT,
        &format!("/api/guilds/{ALPHA}/moderation/config"),
        Some(json!({ "modLogChannelId": "630000000000000002" })),
    )
    .await;
    assert_eq!(s, 200);
    let dms = discord.with(|w| w.dms.clone());
    assert!(
        dms.iter()
            .any(|(u, t)| *u == alice && t.contains("case #1") && t.contains("spam")),
        "{dms:?}"
    );
    moderation::ops::warn(&app.data, ALPHA, alice, moderator, Some("again"))
        .await
        .unwrap();
    let logged = discord.with(|w| w.messages.clone());
    let (channel, line, mentions) = logged.last().expect("a mod log line");
    assert_eq!(channel, "630000000000000002");
    assert!(
        line.contains("Case #2") && line.contains(&format!("<@{alice}>")) && line.contains("again"),
        "{line}"
    );
    assert_eq!(mentions["parse"], json!([]), "the log line pings nobody");
    assert_eq!(case.case_number, 1);
    let e = event(&mut page, "moderation:infraction_created").await;
    assert_eq!(e["data"]["infraction"]["caseNumber"], 1);
    assert_eq!(e["data"]["infraction"]["userId"], alice.to_string());
    assert_eq!(e["data"]["by"], moderator.to_string());
    for i in 0..29 {
        let who = if i % 3 == 0 { alice } else { bob };
        moderation::ops::warn(&app.data, ALPHA, who, moderator, None)
            .await
            .unwrap();
    }
    // Two warns at once get two numbers.
    let (a, b) = tokio::join!(
        moderation::ops::warn(&app.data, ALPHA, bob, moderator, None),
        moderation::ops::warn(&app.data, ALPHA, bob, moderator, None)
    );
    assert_ne!(a.unwrap().case_number, b.unwrap().case_number);

    let (s, p) = call(&app, &staff, M::GET, &format!("{base}?limit=20"), None).await;
    assert_eq!(s, 200, "{p}");
    let items = p["items"].as_array().unwrap();
    assert_eq!(
        (items.len(), items[0]["caseNumber"].as_i64()),
        (20, Some(33))
    );
    let (_, p2) = call(
        &app,
        &staff,
        M::GET,
        &format!("{base}?limit=20&before={}", p["next"]),
        None,
    )
    .await;
    assert_eq!(p2["items"].as_array().unwrap().len(), 13);
    let (_, by_alice) = call(
        &app,
        &staff,
        M::GET,
        &format!("{base}?user={alice}&limit=100"),
        None,
    )
    .await;
    assert_eq!(by_alice["items"].as_array().unwrap().len(), 12);
    let (_, one) = call(&app, &staff, M::GET, &format!("{base}?case=1"), None).await;
    assert_eq!(one["items"][0]["reason"], "spam");
    let (_, kicks) = call(&app, &staff, M::GET, &format!("{base}?type=kick"), None).await;
    assert_eq!(kicks["items"], json!([]));
    let (s, b) = call(&app, &staff, M::GET, &format!("{base}?type=yeet"), None).await;
    assert_eq!((s, b["code"].as_str()), (400, Some("invalid_type")));

    let (s, c) = call(
        &app,
        &staff,
        M::POST,
        &format!("{base}/1/pardon"),
        Some(json!({ "reason": "appealed" })),
    )
    .await;
    assert_eq!(s, 200, "{c}");
    assert_eq!(
        (c["pardoned"].as_bool(), c["pardonReason"].as_str()),
        (Some(true), Some("appealed"))
    );
    let e = event(&mut page, "moderation:infraction_updated").await;
    assert_eq!(
        (
            e["data"]["infraction"]["caseNumber"].as_i64(),
            e["data"]["by"].as_str()
        ),
        (Some(1), Some("600000000000000001"))
    );
    let (s, b) = call(
        &app,
        &staff,
        M::POST,
        &format!("{base}/999/pardon"),
        Some(json!({})),
    )
    .await;
    assert_eq!((s, b["code"].as_str()), (404, Some("no_such_case")));
}

#[tokio::test]
async fn suggestions_are_listed_with_votes_and_decided_live() {
    let (app, discord) = app_with_discord().await;
    let (staff, _) = log_in(&app.address, &discord, STAFF, "/").await;
    let coll = app.db.collection::<suggestions::Suggestion>("suggestions");
    for n in 1..=60 {
        coll.insert_one(suggestions::Suggestion {
            id: None,
            guild_id: ALPHA.into(),
            number: n,
            author_id: "640000000000000001".into(),
            content: format!("idea {n}"),
            status: if n % 2 == 0 { "pending" } else { "approved" }.into(),
            message_id: None,
            upvotes: n,
            downvotes: 1,
            created_at: Some(DateTime::now()),
            extra: Document::new(),
        })
        .await
        .unwrap();
    }
    let mut page = room(&app, &staff, ALPHA).await;
    let base = format!("/api/guilds/{ALPHA}/suggestions/items");
    use reqwest::Method as M;
    let (s, p) = call(
        &app,
        &staff,
        M::GET,
        &format!("{base}?status=pending&limit=20"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{p}");
    let items = p["items"].as_array().unwrap();
    assert_eq!(
        (
            items.len(),
            items[0]["number"].as_i64(),
            items[0]["upvotes"].as_i64()
        ),
        (20, Some(60), Some(60))
    );
    let (_, rest) = call(
        &app,
        &staff,
        M::GET,
        &format!("{base}?status=pending&limit=20&before={}", p["next"]),
        None,
    )
    .await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 10);

    let (s, d) = call(
        &app,
        &staff,
        M::PUT,
        &format!("{base}/60/status"),
        Some(json!({ "status": "implemented", "note": "shipped" })),
    )
    .await;
    assert_eq!(
        (s, d["status"].as_str(), d["note"].as_str()),
        (200, Some("implemented"), Some("shipped"))
    );
    let e = event(&mut page, "suggestions:updated").await;
    assert_eq!(
        (
            e["data"]["suggestion"]["number"].as_i64(),
            e["data"]["by"].as_str()
        ),
        (Some(60), Some("600000000000000001"))
    );
    let (s, b) = call(
        &app,
        &staff,
        M::PUT,
        &format!("{base}/60/status"),
        Some(json!({ "status": "maybe" })),
    )
    .await;
    assert_eq!((s, b["code"].as_str()), (400, Some("invalid_status")));
    let (s, b) = call(
        &app,
        &staff,
        M::PUT,
        &format!("{base}/999/status"),
        Some(json!({ "status": "denied" })),
    )
    .await;
    assert_eq!((s, b["code"].as_str()), (404, Some("no_such_suggestion")));
    let (s, b) = call(
        &app,
        &staff,
        M::PUT,
        &format!("{base}/abc/status"),
        Some(json!({ "status": "denied" })),
    )
    .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (400, Some("invalid_request")),
        "{b}"
    );
    assert!(!b["message"].as_str().unwrap().contains("parse"), "{b}");
}

#[tokio::test]
async fn a_staff_reply_reaches_the_member_by_dm_and_the_open_conversation() {
    let (app, discord) = app_with_discord().await;
    let (staff, _) = log_in(&app.address, &discord, STAFF, "/").await;
    let member = 640_000_000_000_000_009u64;
    let convs = app
        .db
        .collection::<modmail::ModmailConversation>("modmail_conversations");
    let mut ids = Vec::new();
    for (n, status) in [(1, "closed"), (2, "open")] {
        let id = ObjectId::new();
        ids.push(id);
        convs
            .insert_one(modmail::ModmailConversation {
                id: Some(id),
                guild_id: ALPHA.into(),
                ticket_number: n,
                user_id: member.to_string(),
                status: status.into(),
                claimed_by: None,
                created_at: DateTime::now(),
                closed_at: None,
                extra: Document::new(),
            })
            .await
            .unwrap();
    }
    let msgs = app.db.collection::<Document>("modmail_messages");
    for i in 0..150 {
        msgs.insert_one(doc! { "_id": ObjectId::new(), "guildId": ALPHA, "conversationId": ids[1], "authorId": member.to_string(),
            "isStaff": false, "content": format!("message {i}"), "attachments": [], "createdAt": DateTime::now() })
            .await
            .unwrap();
    }
    let mut page = room(&app, &staff, ALPHA).await;
    use reqwest::Method as M;
    let (_, list) = call(
        &app,
        &staff,
        M::GET,
        &format!("/api/guilds/{ALPHA}/modmail/conversations?status=open"),
        None,
    )
    .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
    let base = format!("/api/guilds/{ALPHA}/modmail/conversations/2/messages");
    let (_, p1) = call(&app, &staff, M::GET, &base, None).await;
    assert_eq!(p1["items"].as_array().unwrap().len(), 100);
    let (_, p2) = call(
        &app,
        &staff,
        M::GET,
        &format!("{base}?after={}", p1["next"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(p2["items"].as_array().unwrap().len(), 50);
    assert_eq!(p2["items"][49]["content"], "message 149");

    let (s, m) = call(
        &app,
        &staff,
        M::POST,
        &base,
        Some(json!({ "content": "We are looking into it." })),
    )
    .await;
    assert_eq!(s, 201, "{m}");
    assert_eq!(m["isStaff"], true);
    assert_eq!(
        discord.with(|w| w.dms.clone()),
        vec![(member, "We are looking into it.".to_string())]
    );
    let e = event(&mut page, "modmail:message_created").await;
    assert_eq!(
        (
            e["data"]["ticketNumber"].as_i64(),
            e["data"]["message"]["content"].as_str()
        ),
        (Some(2), Some("We are looking into it."))
    );
    assert_eq!(
        msgs.count_documents(doc! { "conversationId": ids[1] })
            .await
            .unwrap(),
        151
    );

    // A closed conversation, or a member whose DMs are closed: refused, nothing kept.
    let (s, b) = call(
        &app,
        &staff,
        M::POST,
        &format!("/api/guilds/{ALPHA}/modmail/conversations/1/messages"),
        Some(json!({ "content": "hi" })),
    )
    .await;
    assert_eq!((s, b["code"].as_str()), (409, Some("conversation_closed")));
    discord.with(|w| w.closed_dms.push(member));
    let (s, b) = call(
        &app,
        &staff,
        M::POST,
        &base,
        Some(json!({ "content": "hello?" })),
    )
    .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (502, Some("discord_refused")),
        "{b}"
    );
    assert_eq!(
        msgs.count_documents(doc! { "conversationId": ids[1] })
            .await
            .unwrap(),
        151
    );
    let (s, b) = call(&app, &staff, M::POST, &base, Some(json!({ "content": "" }))).await;
    assert_eq!((s, b["code"].as_str()), (400, Some("invalid_reply")));
}

#[tokio::test]
async fn those_with_manage_server_decide_who_else_may_open_the_dashboard() {
    let (app, discord) = app_with_discord().await;
    let (staff, _) = log_in(&app.address, &discord, STAFF, "/").await;
    let (member, _) = log_in(&app.address, &discord, MEMBER, "/").await;
    let mut page = room(&app, &staff, ALPHA).await;
    use reqwest::Method as M;
    let base = format!("/api/guilds/{ALPHA}/dashboard/access");
    let member_id = MEMBER.to_string();

    // The member has no access yet.
    let (s, _) = call(&app, &member, M::GET, &format!("/api/guilds/{ALPHA}"), None).await;
    assert_eq!(s, 403);

    // Staff (Manage Server) give it, by user; a role that is not the server's is refused.
    let (s, b) = call(
        &app,
        &staff,
        M::POST,
        &base,
        Some(json!({ "targetType": "user", "targetId": member_id })),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let e = event(&mut page, "dashboard:access_updated").await;
    assert!(
        e["data"]["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["targetId"] == member_id.as_str()),
        "{e}"
    );
    let (s, b) = call(
        &app,
        &staff,
        M::POST,
        &base,
        Some(json!({ "targetType": "user", "targetId": member_id })),
    )
    .await;
    assert_eq!((s, b["code"].as_str()), (409, Some("already_granted")));
    let (s, b) = call(
        &app,
        &staff,
        M::POST,
        &base,
        Some(json!({ "targetType": "role", "targetId": "620000000000000099" })),
    )
    .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (400, Some("invalid_target_id")),
        "{b}"
    );
    let (s, b) = call(
        &app,
        &staff,
        M::POST,
        &base,
        Some(json!({ "targetType": "channel", "targetId": "620000000000000009" })),
    )
    .await;
    assert_eq!((s, b["code"].as_str()), (400, Some("invalid_target_type")));

    // Now the member opens the dashboard and sees the list, but cannot change it.
    let (s, list) = call(&app, &member, M::GET, &base, None).await;
    assert_eq!(
        (s, list["mayManage"].as_bool()),
        (200, Some(false)),
        "{list}"
    );
    let (_, picker) = call(&app, &member, M::GET, "/api/guilds", None).await;
    assert_eq!(picker[0]["id"], ALPHA);
    let (s, b) = call(
        &app,
        &member,
        M::POST,
        &base,
        Some(json!({ "targetType": "role", "targetId": "620000000000000009" })),
    )
    .await;
    assert_eq!((s, b["code"].as_str()), (403, Some("manage_server_needed")));
    let (s, _) = call(
        &app,
        &member,
        M::DELETE,
        &format!("{base}/user/{member_id}"),
        None,
    )
    .await;
    assert_eq!(s, 403);

    // The member has the server's page open.
    let mut member_page = room(&app, &member, ALPHA).await;

    // Staff take it back: the member is out again.
    let (s, _) = call(
        &app,
        &staff,
        M::DELETE,
        &format!("{base}/user/{member_id}"),
        None,
    )
    .await;
    assert_eq!(s, 204);
    // Their open page is taken out of the room at once and hears nothing more.
    let out = event(&mut member_page, "unsubscribed").await;
    assert_eq!(
        (out["guildId"].as_str(), out["data"]["reason"].as_str()),
        (Some(ALPHA), Some("access_revoked"))
    );
    app.data
        .ws
        .broadcast_to_guild(ALPHA, "tags:tag_created", json!({ "name": "secret" }));
    let heard = tokio::time::timeout(
        std::time::Duration::from_millis(500),
        event(&mut member_page, "tags:tag_created"),
    )
    .await;
    assert!(
        heard.is_err(),
        "a revoked member still hears the room: {heard:?}"
    );
    let (s, _) = call(&app, &member, M::GET, &format!("/api/guilds/{ALPHA}"), None).await;
    assert_eq!(s, 403);
    let (s, b) = call(
        &app,
        &staff,
        M::DELETE,
        &format!("{base}/user/{member_id}"),
        None,
    )
    .await;
    assert_eq!((s, b["code"].as_str()), (404, Some("no_such_entry")));
}
