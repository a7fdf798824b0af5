//! Secrets never in output: connection strings with credentials (any character in the
//! password, credentials in the query, Redis URLs) sent through every surface — the API,
//! `/migrate`, the command line, start-up — never come back in what the bot printed,
//! answered or stored.

use std::process::Command;

use futures::TryStreamExt;
use mongodb::bson::Document;
use serde_json::json;

use crate::clone::cli;
use crate::helpers::{fresh_db, mongo_uri, spawn_app, OutputInTime, AUTH_SECRET, OWNER_ID};

/// The secrets the URIs below carry; none may appear anywhere.
const SECRETS: &[&str] = &[
    "Pa/ss@w0rd",
    "Pa%2Fss",
    "K3YFILEPASS",
    "AWSS3SS10N",
    "R3D1SPASS",
];

/// Connection strings as owners type them, each with a secret; every one fails somewhere
/// (unparsable, unreachable, no such database).
pub fn uris() -> Vec<String> {
    let here = mongo_uri();
    let host = here
        .trim_start_matches("mongodb://")
        .split(['/', '?'])
        .next()
        .unwrap()
        .to_string();
    vec![
        // A password with `/` and `@` in it, unreachable.
        "mongodb://owner:Pa/ss@w0rd@127.0.0.1:1/heimdall".to_string(),
        // The same, percent-encoded, to a server that answers, with a database it lacks.
        format!("mongodb://owner:Pa%2Fss@{host}/nosuchdb"),
        // Credentials in the query, an invalid option value.
        format!("mongodb://{host}/db?tls=maybe&tlsCertificateKeyFilePassword=K3YFILEPASS"),
        format!("mongodb://{host}/db?authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:AWSS3SS10N"),
        // Not a port at all.
        "mongodb://owner:Pa/ss@w0rd@host:notaport/db".to_string(),
    ]
}

pub fn assert_clean(surface: &str, text: &str) {
    for s in SECRETS {
        assert!(!text.contains(s), "{surface} shows {s:?}: {text}");
    }
}

#[tokio::test]
async fn connection_string_secrets_never_reach_answers_records_or_output() {
    let app = spawn_app().await;
    let token = heimdall_host::auth::mint(
        AUTH_SECRET,
        OWNER_ID.parse().unwrap(),
        std::time::Duration::from_secs(600),
    );
    // The API, both modes, dry run and real.
    for uri in uris() {
        for (path, body) in [
            (
                "/api/dev/migrations/clone",
                json!({ "source": uri, "dryRun": true }),
            ),
            ("/api/dev/migrations/clone", json!({ "source": uri })),
            ("/api/dev/migrations/legacy", json!({ "source": uri })),
        ] {
            let r = app
                .http
                .post(format!("{}{path}", app.address))
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status();
            let text = r.text().await.unwrap();
            assert!(
                !status.is_success() || text.contains("runId"),
                "{status} {text}"
            );
            assert_clean(&format!("POST {path}"), &text);
        }
    }

    // /migrate: see `discord::migrate_never_shows_a_connection_strings_secrets`.

    // Whatever was stored: every document of every collection of the bot's database.
    for name in app.db.list_collection_names().await.unwrap() {
        let docs: Vec<Document> = app
            .db
            .collection::<Document>(&name)
            .find(mongodb::bson::doc! {})
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        for d in docs {
            assert_clean(&format!("stored in {name}"), &d.to_string());
        }
    }

    // The command line: clone and legacy, plain and --json, stdout and stderr.
    let target = fresh_db("redact_cli").await;
    for uri in uris() {
        for args in [
            vec!["migrate", "clone", "--source", uri.as_str()],
            vec![
                "migrate",
                "clone",
                "--dry-run",
                "--json",
                "--source",
                uri.as_str(),
            ],
            vec!["migrate", "legacy", "--source", uri.as_str()],
        ] {
            let out = cli(&target).args(&args).output_in_time();
            assert!(!out.status.success(), "{args:?} failed as it should");
            assert_clean("CLI stdout", &String::from_utf8_lossy(&out.stdout));
            assert_clean("CLI stderr", &String::from_utf8_lossy(&out.stderr));
        }
    }
}

#[test]
fn a_bad_redis_url_stops_start_up_without_showing_its_password() {
    for url in [
        "redis://:R3D1SPASS@cache:notaport/0",
        "redis://user:R3D1SPASS@",
        "http://user:R3D1SPASS@cache:6379",
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_heimdall"))
            .arg("run")
            .env("MONGODB_URI", mongo_uri())
            .env("MONGODB_DB", crate::helpers::unique_db_name("redis_url"))
            .env("REDIS_URL", url)
            .env("API_PORT", "0")
            .env("WS_PORT", "0")
            .env("HEIMDALL_CONFIG", "/nonexistent/heimdall.toml")
            .env_remove("DISCORD_TOKEN")
            .output_in_time();
        assert!(!out.status.success(), "{url} is refused");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("REDIS_URL"), "{err}");
        assert_clean("start-up", &err);
        assert_clean("start-up", &String::from_utf8_lossy(&out.stdout));
    }
}
