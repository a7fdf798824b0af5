//! Configuration errors name their setting; secrets never show.

use std::collections::HashMap;

use heimdall_host::config::Config;

use crate::helpers::{test_env, unique_db_name, TEST_KEY};

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn a_short_encryption_key_names_the_setting() {
    let err = Config::from_sources(&env(&[("ENCRYPTION_KEY", "0123456789")]), None).unwrap_err();
    assert_eq!(err.setting, "ENCRYPTION_KEY");
    assert!(err.to_string().contains("64 hexadecimal"), "{err}");
    assert!(err.to_string().contains("got 10"), "{err}");
}

#[test]
fn a_non_numeric_owner_id_names_the_setting() {
    let err = Config::from_sources(&env(&[("OWNER_IDS", "123456789012345678, alice")]), None)
        .unwrap_err();
    assert_eq!(err.setting, "OWNER_IDS");
    assert!(err.to_string().contains("\"alice\""), "{err}");
}

#[test]
fn bad_ports_uris_and_origins_name_their_setting() {
    for (name, value) in [
        ("API_PORT", "http"),
        ("WS_PORT", "70000"),
        ("MONGODB_URI", "localhost:27017"),
        ("DASHBOARD_ORIGINS", "dash.example.com"),
        ("MONGODB_DB", "my.db"),
        ("AUTH_SECRET", "short"),
        ("DEV_GUILD_ID", "-5"),
        ("DISCORD_API_PROXY", "127.0.0.1:3000"),
    ] {
        let err = Config::from_sources(&env(&[(name, value)]), None).unwrap_err();
        assert_eq!(err.setting, name, "{err}");
    }
}

#[test]
fn defaults_file_and_environment_precedence() {
    let c = Config::from_sources(&HashMap::new(), None).unwrap();
    assert_eq!(
        (c.api_port, c.ws_port, c.mongodb_db.as_str()),
        (3001, 3002, "heimdall")
    );
    assert!(c.discord_token.is_none() && c.mongodb_uri.is_none());

    let toml = "mongodb_db = \"fromfile\"\napi_port = 4000\nowner_ids = [\"1\", \"2\"]\n";
    let c = Config::from_sources(&env(&[("API_PORT", "5000")]), Some(toml)).unwrap();
    assert_eq!(c.mongodb_db, "fromfile");
    assert_eq!(c.api_port, 5000, "the environment wins over the file");
    assert_eq!(c.owner_ids, vec![1, 2]);

    // The gateway's and the API's limits come from the file too.
    let toml =
        "ws_max_connections = 70\nhttp_max_connections = 80\nws_max_pending_per_address = 9\n";
    let c = Config::from_sources(&env(&[("WS_MAX_PENDING_PER_ADDRESS", "3")]), Some(toml)).unwrap();
    assert_eq!(c.gateway.limits.total, 70);
    assert_eq!(c.http.limits.total, 80);
    assert_eq!(
        c.gateway.limits.pending_per_address, 3,
        "the environment wins"
    );

    let err = Config::from_sources(&HashMap::new(), Some("api_port = ")).unwrap_err();
    assert_eq!(err.setting, "HEIMDALL_CONFIG");
}

#[test]
fn secrets_never_appear_in_debug_output() {
    let c = Config::from_sources(
        &env(&[
            ("DISCORD_TOKEN", "MTIz.discord-token-value"),
            ("ENCRYPTION_KEY", TEST_KEY),
            ("AUTH_SECRET", "auth-secret-auth-secret-auth-secret-xyz"),
            ("MONGODB_URI", "mongodb://admin:hunter2@db.example:27017"),
        ]),
        None,
    )
    .unwrap();
    let shown = format!("{c:?}");
    for secret in [
        "discord-token-value",
        TEST_KEY,
        "auth-secret-auth",
        "hunter2",
    ] {
        assert!(!shown.contains(secret), "{secret} leaked: {shown}");
    }
    assert_eq!(
        heimdall_host::config::redact_uri("mongodb://admin:hunter2@db.example:27017/x"),
        "mongodb://***@db.example:27017/x"
    );
}

#[tokio::test]
async fn a_taken_api_port_stops_start_up_naming_the_setting() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut e = test_env(&unique_db_name("port"));
    e.insert("API_PORT".into(), port.to_string());
    let config = Config::from_sources(&e, None).unwrap();
    let err =
        match heimdall_host::startup::Application::build(config, heimdall::plugins::all()).await {
            Ok(_) => panic!("start-up accepted a taken port"),
            Err(e) => e,
        };
    let cfg = err
        .chain()
        .find_map(|c| c.downcast_ref::<heimdall_host::config::ConfigError>())
        .unwrap_or_else(|| panic!("not a config error: {err:#}"));
    assert_eq!(cfg.setting, "API_PORT");
    assert!(cfg.message.contains(&port.to_string()), "{cfg}");
}

#[tokio::test]
async fn an_unreachable_database_is_a_clear_error() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let e = test_env(&unique_db_name("dead"));
    let mut e2 = e.clone();
    e2.insert(
        "MONGODB_URI".into(),
        format!("mongodb://user:pw@127.0.0.1:{port}/?serverSelectionTimeoutMS=1000"),
    );
    let config = Config::from_sources(&e2, None).unwrap();
    let err =
        match heimdall_host::startup::Application::build(config, heimdall::plugins::all()).await {
            Ok(_) => panic!("start-up without a database"),
            Err(e) => e,
        };
    let user = heimdall_host::error::user_error(&err).expect("a user-facing error");
    assert_eq!(user.code, "database_unreachable");
    assert!(user.message.contains(&port.to_string()));
    assert!(
        !user.message.contains("pw@"),
        "credentials leaked: {}",
        user.message
    );
}

#[test]
fn a_migration_setting_that_is_not_a_number_stops_the_start() {
    for (name, value) in [
        ("HEIMDALL_MIGRATION_PARALLELISM", "lots"),
        ("HEIMDALL_MIGRATION_PARALLELISM", "0"),
        ("HEIMDALL_MIGRATION_LEASE_SECS", "30s"),
        ("HEIMDALL_MIGRATION_STALL_SECS", "-1"),
        ("HEIMDALL_MIGRATION_READ_WAIT_SECS", "5m"),
    ] {
        let err = Config::from_sources(&env(&[(name, value)]), None).unwrap_err();
        assert_eq!(err.setting, name);
        assert!(
            err.to_string().contains(&format!("{value:?}"))
                && err.to_string().contains("positive whole number"),
            "{err}"
        );
    }
    for (name, value) in [
        ("HEIMDALL_MIGRATION_PARALLELISM", "1"),
        ("HEIMDALL_MIGRATION_LEASE_SECS", " 45 "),
    ] {
        Config::from_sources(&env(&[(name, value)]), None)
            .unwrap_or_else(|e| panic!("{name}={value:?} is valid: {e}"));
    }
}
