//! "Log in with Discord", the session cookie, CSRF, the server picker and who may open which
//! server's dashboard, against the local stand-in for Discord.

use futures::{SinkExt, StreamExt};
use mongodb::bson::{doc, Document};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{spawn_app_with_vars, TestApp, OWNER_ID};
use crate::stand_in::{log_in, no_redirects, set_cookies, Browser, Discord, UserGuild};

/// Staff of ALPHA (Manage Server), member of BETA (no rights), admin of GAMMA (where the bot
/// is not); given a user entry on DELTA and holding a granted role on EPSILON.
pub const STAFF: u64 = 600_000_000_000_000_001;
/// A member with no rights anywhere.
pub const MEMBER: u64 = 600_000_000_000_000_002;
pub const ALPHA: &str = "610000000000000001";
pub const BETA: &str = "610000000000000002";
const GAMMA: &str = "610000000000000003";
const DELTA: &str = "610000000000000004";
const EPSILON: &str = "610000000000000005";
const MOD_ROLE: &str = "620000000000000001";

/// A free port on the loopback (the bot's `DASHBOARD_URL` must name it before it starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A bot whose Discord is the stand-in, with login configured, and the world above.
pub async fn app_with_discord() -> (TestApp, Discord) {
    let discord = Discord::start().await;
    discord.with(|w| {
        let g = |id: &str, name: &str, permissions: u64| UserGuild {
            id: id.into(),
            name: name.into(),
            permissions,
        };
        w.user_guilds.insert(
            STAFF,
            vec![
                g(ALPHA, "Alpha", 1 << 5),
                g(BETA, "Beta", 1 << 10),
                g(GAMMA, "Gamma", 1 << 3),
                g(EPSILON, "Epsilon", 0),
            ],
        );
        w.user_guilds
            .insert(MEMBER, vec![g(ALPHA, "Alpha", 1 << 10)]);
        w.bot_guilds = [ALPHA, BETA, DELTA, EPSILON]
            .iter()
            .map(|id| (id.to_string(), format!("Server {}", &id[16..])))
            .collect();
        w.members
            .insert((EPSILON.into(), STAFF), vec![MOD_ROLE.into()]);
        w.channels.insert(
            ALPHA.into(),
            vec![
                ("630000000000000001".into(), "general".into(), 0),
                ("630000000000000002".into(), "mod-log".into(), 0),
                ("630000000000000003".into(), "Lounge".into(), 2),
            ],
        );
        w.roles.insert(
            ALPHA.into(),
            vec![
                ("620000000000000009".into(), "Moderator".into()),
                ("620000000000000010".into(), "Muted".into()),
            ],
        );
        // The member's Discord is in German.
        w.locales.insert(MEMBER, "de".into());
    });
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut vars = discord.settings(&url);
    vars.push(("API_PORT".into(), port.to_string()));
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let app = spawn_app_with_vars(&vars).await;
    let perms = app.db.collection::<Document>("dashboard_permissions");
    perms
        .insert_one(doc! { "guildId": DELTA, "targetType": "user", "targetId": STAFF.to_string(), "permissions": ["view"] })
        .await
        .unwrap();
    perms
        .insert_one(doc! { "guildId": EPSILON, "targetType": "role", "targetId": MOD_ROLE, "permissions": ["view"] })
        .await
        .unwrap();
    (app, discord)
}

async fn get(app: &TestApp, b: &Browser, path: &str) -> (u16, Value) {
    let r = app
        .http
        .get(format!("{}{path}", app.address))
        .header("cookie", &b.cookie)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

fn ids(list: &Value) -> Vec<&str> {
    let mut v: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_str().unwrap())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn logging_in_with_discord_sets_an_http_only_session_cookie_and_returns_to_the_page() {
    let (app, discord) = app_with_discord().await;
    let http = no_redirects();
    // Before logging in: nobody.
    let (s, b) = app.get_json("/api/auth/me").await;
    assert_eq!(
        (s, b["code"].as_str()),
        (401, Some("unauthenticated")),
        "{b}"
    );

    let r = http
        .get(format!(
            "{}/api/auth/login?next=/guilds/{ALPHA}",
            app.address
        ))
        .send()
        .await
        .unwrap();
    let to = r.headers()["location"].to_str().unwrap();
    for part in [
        "response_type=code",
        "client_id=930000000000000001",
        "scope=identify%20guilds",
        "state=",
    ] {
        assert!(to.contains(part), "{to} lacks {part}");
    }

    let (browser, landing) =
        log_in(&app.address, &discord, STAFF, &format!("/guilds/{ALPHA}")).await;
    assert_eq!(landing, format!("/guilds/{ALPHA}"));
    let (s, me) = get(&app, &browser, "/api/auth/me").await;
    assert_eq!(s, 200, "{me}");
    assert_eq!(me["userId"], STAFF.to_string());
    assert_eq!(me["name"], "User 1");
    assert_eq!(me["owner"], false);

    // The cookie: HttpOnly, SameSite, the whole site, no Secure over plain http.
    discord.with(|w| w.browser_user = Some(STAFF));
    let r = http
        .get(format!("{}/api/auth/login", app.address))
        .send()
        .await
        .unwrap();
    let state = set_cookies(&r)[0].clone();
    assert!(
        state.contains("HttpOnly") && state.contains("SameSite=Lax"),
        "{state}"
    );
    let back = http
        .get(r.headers()["location"].to_str().unwrap())
        .send()
        .await
        .unwrap();
    let r = http
        .get(back.headers()["location"].to_str().unwrap())
        .header("cookie", state.split(';').next().unwrap())
        .send()
        .await
        .unwrap();
    let session = set_cookies(&r)
        .into_iter()
        .find(|c| c.starts_with("heimdall_session="))
        .unwrap();
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(session.contains(attr), "{session} lacks {attr}");
    }
    assert!(!session.contains("Secure"), "{session}");
    // The access token Discord gave is nowhere in what the browser got.
    assert!(!session.contains("access-"), "{session}");
}

#[tokio::test]
async fn a_callback_without_the_browsers_state_is_refused() {
    let (app, discord) = app_with_discord().await;
    discord.with(|w| w.browser_user = Some(STAFF));
    let http = no_redirects();
    let r = http
        .get(format!("{}/api/auth/login", app.address))
        .send()
        .await
        .unwrap();
    let back = http
        .get(r.headers()["location"].to_str().unwrap())
        .send()
        .await
        .unwrap();
    let callback = back.headers()["location"].to_str().unwrap().to_string();
    // Another browser (no state cookie), or a forged state: no session.
    for cookie in ["", "heimdall_oauth=forged.2f"] {
        let r = http
            .get(&callback)
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["location"], "/login?error=state");
        assert!(set_cookies(&r)
            .iter()
            .all(|c| !c.starts_with("heimdall_session=") || c.starts_with("heimdall_session=;")));
    }
    // Pressing Cancel on Discord's page lands on the login page with a reason.
    let r = http
        .get(format!(
            "{}/api/auth/callback?error=access_denied&state=x",
            app.address
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/login?error=cancelled");
}

#[tokio::test]
async fn login_is_refused_with_what_to_set_when_it_is_not_configured() {
    let app = spawn_app_with_vars(&[]).await;
    let (s, b) = app.get_json("/api/auth/login").await;
    assert_eq!((s, b["code"].as_str()), (502, Some("login_not_configured")));
    assert!(b["message"].as_str().unwrap().contains("DISCORD_CLIENT_ID"));
    let (_, b) = app.get_json("/api/auth/config").await;
    assert_eq!(b["login"], false);
}

#[tokio::test]
async fn the_picker_lists_exactly_the_servers_one_may_manage_where_the_bot_is() {
    let (app, discord) = app_with_discord().await;
    let (staff, _) = log_in(&app.address, &discord, STAFF, "/").await;
    let (s, list) = get(&app, &staff, "/api/guilds").await;
    assert_eq!(s, 200, "{list}");
    // ALPHA by Manage Server, DELTA by a user entry, EPSILON by a role entry; not BETA (no
    // rights) nor GAMMA (the bot is not there).
    assert_eq!(ids(&list), vec![ALPHA, DELTA, EPSILON]);
    let alpha = list
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == ALPHA)
        .unwrap();
    assert_eq!(alpha["name"], "Server 01");

    let (member, _) = log_in(&app.address, &discord, MEMBER, "/").await;
    let (_, list) = get(&app, &member, "/api/guilds").await;
    assert_eq!(ids(&list), Vec::<&str>::new());

    // Owners see every server the bot is in.
    let owner: u64 = OWNER_ID.parse().unwrap();
    let (owner, _) = log_in(&app.address, &discord, owner, "/").await;
    let (_, list) = get(&app, &owner, "/api/guilds").await;
    assert_eq!(ids(&list), vec![ALPHA, BETA, DELTA, EPSILON]);

    // Opening another server by URL: 403 with a reason; a bad id: 400.
    let (s, b) = get(&app, &staff, &format!("/api/guilds/{BETA}")).await;
    assert_eq!((s, b["code"].as_str()), (403, Some("no_access")), "{b}");
    assert!(b["message"].as_str().unwrap().contains("Manage Server"));
    let (s, _) = get(&app, &member, &format!("/api/guilds/{ALPHA}")).await;
    assert_eq!(s, 403);
    let (s, b) = get(&app, &staff, "/api/guilds/not-a-guild").await;
    assert_eq!((s, b["code"].as_str()), (400, Some("invalid_guild")));
    let (s, b) = get(&app, &staff, &format!("/api/guilds/{ALPHA}")).await;
    assert_eq!(s, 200, "{b}");
    assert!(b["plugins"].as_array().unwrap().len() >= 17);
}

#[tokio::test]
async fn cookie_requests_that_change_something_need_the_csrf_token() {
    let (app, discord) = app_with_discord().await;
    let (staff, _) = log_in(&app.address, &discord, STAFF, "/").await;
    let logout = |csrf: Option<&str>| {
        let mut r = app
            .http
            .post(format!("{}/api/auth/logout", app.address))
            .header("cookie", &staff.cookie);
        if let Some(c) = csrf {
            r = r.header("x-csrf-token", c);
        }
        r.send()
    };
    // Another site's form carries the cookie but cannot know the token.
    for csrf in [None, Some("0000")] {
        let r = logout(csrf).await.unwrap();
        assert_eq!(r.status(), 403);
        let b: Value = r.json().await.unwrap();
        assert_eq!(b["code"], "csrf_failed");
    }
    let (s, _) = get(&app, &staff, "/api/auth/me").await;
    assert_eq!(s, 200, "a refused logout signed out anyway");

    // A second browser of the same user, and its live connection.
    let (other, _) = log_in(&app.address, &discord, STAFF, "/").await;
    let mut ws = ws_with_cookie(&app, &other.cookie).await;
    let authed = auth_frame(&mut ws, json!({ "type": "auth" })).await;
    assert_eq!(authed["event"], "authenticated", "{authed}");

    let r = logout(Some(&staff.csrf)).await.unwrap();
    assert_eq!(r.status(), 204);
    assert!(set_cookies(&r)
        .iter()
        .any(|c| c.starts_with("heimdall_session=;") && c.contains("Max-Age=0")));
    // Logged out everywhere: both browsers, and the open socket closes.
    for b in [&staff, &other] {
        let (s, body) = get(&app, b, "/api/auth/me").await;
        assert_eq!((s, body["code"].as_str()), (401, Some("token_revoked")));
    }
    let closed = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Close(Some(f)) = m {
                return Some(u16::from(f.code));
            }
        }
        None
    })
    .await
    .unwrap();
    assert_eq!(closed, Some(4003));
}

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens `/ws` on the API's port with a session cookie.
pub async fn ws_with_cookie(app: &TestApp, cookie: &str) -> Ws {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = format!("{}/ws", app.address.replacen("http", "ws", 1));
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    req.headers_mut()
        .insert("origin", app.address.parse().unwrap());
    tokio_tungstenite::connect_async(req).await.unwrap().0
}

/// The next text frame, as JSON.
pub async fn next_text(ws: &mut Ws) -> Value {
    match tokio::time::timeout(std::time::Duration::from_secs(5), ws.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => serde_json::from_str(&t).unwrap(),
        other => panic!("no frame: {other:?}"),
    }
}

/// Reads `hello`, sends `auth`, returns the answer.
pub async fn auth_frame(ws: &mut Ws, auth: Value) -> Value {
    let hello = next_text(ws).await;
    assert_eq!(hello["event"], "hello");
    ws.send(Message::Text(auth.to_string().into()))
        .await
        .unwrap();
    next_text(ws).await
}

#[tokio::test]
async fn the_api_port_answers_websocket_upgrades_at_ws_with_the_session_cookie() {
    let (app, discord) = app_with_discord().await;
    let (staff, _) = log_in(&app.address, &discord, STAFF, "/").await;
    let mut ws = ws_with_cookie(&app, &staff.cookie).await;
    let authed = auth_frame(&mut ws, json!({ "type": "auth" })).await;
    assert_eq!(authed["event"], "authenticated", "{authed}");
    assert_eq!(authed["data"]["userId"], STAFF.to_string());
    let guilds = authed["data"]["guilds"].as_array().unwrap();
    assert!(guilds.iter().any(|g| g == ALPHA), "{authed}");
    ws.send(Message::Text(
        json!({ "type": "subscribe", "guildId": ALPHA })
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    loop {
        let Some(Ok(Message::Text(t))) = ws.next().await else {
            panic!("closed")
        };
        let v: Value = serde_json::from_str(&t).unwrap();
        if v["event"] == "subscribed" {
            break;
        }
    }
    app.data
        .ws
        .broadcast_to_guild(ALPHA, "tags:tag_created", json!({ "name": "rules" }));
    loop {
        let Some(Ok(Message::Text(t))) = ws.next().await else {
            panic!("closed")
        };
        let v: Value = serde_json::from_str(&t).unwrap();
        if v["event"] == "tags:tag_created" {
            assert_eq!(v["data"]["name"], "rules");
            break;
        }
    }

    // No cookie and no token: refused with a reason.
    let url = format!("{}/ws", app.address.replacen("http", "ws", 1));
    let (mut bare, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    bare.next().await; // hello
    bare.send(Message::Text(json!({ "type": "auth" }).to_string().into()))
        .await
        .unwrap();
    let close = loop {
        match bare.next().await {
            Some(Ok(Message::Close(Some(f)))) => break f,
            Some(Ok(_)) => continue,
            other => panic!("no close frame: {other:?}"),
        }
    };
    assert_eq!(u16::from(close.code), 4003);
    assert!(close.reason.contains("log in"), "{}", close.reason);
    // A plain GET is told what /ws is; another site's page is refused.
    let r = app
        .http
        .get(format!("{}/ws", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 426);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["code"], "websocket_expected");
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    let err = tokio_tungstenite::connect_async(req).await.unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");
}

/// A request from a logged-in browser: its cookie, its CSRF token, `body` as JSON. The
/// status, the JSON answer and the answer as text.
pub async fn send(
    app: &TestApp,
    b: &Browser,
    method: reqwest::Method,
    path: &str,
    body: Option<String>,
) -> (u16, Value, String) {
    let mut r = app
        .http
        .request(method, format!("{}{path}", app.address))
        .header("cookie", &b.cookie)
        .header("x-csrf-token", &b.csrf);
    if let Some(body) = body {
        r = r.header("content-type", "application/json").body(body);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    )
}

/// A socket of `b`'s, subscribed to `guild`'s room: a dashboard page left open.
pub async fn room(app: &TestApp, b: &Browser, guild: &str) -> Ws {
    let mut ws = ws_with_cookie(app, &b.cookie).await;
    assert_eq!(
        auth_frame(&mut ws, json!({ "type": "auth" })).await["event"],
        "authenticated"
    );
    ws.send(Message::Text(
        json!({ "type": "subscribe", "guildId": guild })
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    while next_text(&mut ws).await["event"] != "subscribed" {}
    ws
}

/// The next event named `name` on `ws` (others are passed over).
pub async fn event(ws: &mut Ws, name: &str) -> Value {
    loop {
        let v = next_text(ws).await;
        if v["event"] == name {
            return v;
        }
    }
}
