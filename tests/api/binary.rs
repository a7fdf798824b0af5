//! The `heimdall` binary as a user runs it.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{mongo_uri, unique_db_name, OutputInTime, TEST_KEY};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `heimdall run` without MONGODB_URI starts its own database under HEIMDALL_DATA_DIR and,
/// without DISCORD_TOKEN, still serves the API and says Discord is off.
#[tokio::test]
async fn run_starts_an_embedded_database_and_works_without_discord() {
    let data_dir = tempfile::tempdir().unwrap();
    let (api, ws) = (free_port(), free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_heimdall"))
        .arg("run")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::var("HOME").unwrap_or_default())
        .env("HEIMDALL_DATA_DIR", data_dir.path())
        .env("HEIMDALL_CONFIG", data_dir.path().join("none.toml"))
        .env("API_PORT", api.to_string())
        .env("WS_PORT", ws.to_string())
        .env("ENCRYPTION_KEY", TEST_KEY)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let start = Instant::now();
    let body = loop {
        if let Ok(r) = http
            .get(format!("http://127.0.0.1:{api}/api/health"))
            .send()
            .await
        {
            break r.json::<serde_json::Value>().await.unwrap();
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "the bot did not come up"
        );
        if let Some(status) = child.try_wait().unwrap() {
            panic!("heimdall run exited early: {status}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(body["status"], "ok");
    assert_eq!(body["discord"], false);
    assert!(
        data_dir.path().join("mongo").is_dir(),
        "the database lives under HEIMDALL_DATA_DIR"
    );
    // The dashboard is served by the bot.
    let page = http
        .get(format!("http://127.0.0.1:{api}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("<title>Heimdall</title>"));
    // Every file of the built dashboard is built into the binary, byte for byte.
    let dist = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboard/dist");
    let mut files = Vec::new();
    let mut dirs = vec![dist.clone()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).expect("dashboard/dist (npm run build)") {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    let mut n = 0;
    for path in files {
        let name = path
            .strip_prefix(&dist)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let embedded = heimdall_host::api::dashboard::file(&format!("/{name}"))
            .unwrap_or_else(|| panic!("{name} is not embedded"));
        assert_eq!(embedded, std::fs::read(&path).unwrap().as_slice(), "{name}");
        let r = http
            .get(format!("http://127.0.0.1:{api}/{name}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{name}");
        let kind = r.headers()["content-type"].to_str().unwrap().to_string();
        if name.ends_with(".js") {
            assert!(kind.starts_with("text/javascript"), "{name}: {kind}");
        }
        assert_eq!(r.bytes().await.unwrap().as_ref(), embedded, "{name}");
        n += 1;
    }
    let names: Vec<&str> = heimdall_host::api::dashboard::FILES
        .iter()
        .map(|(p, _)| *p)
        .collect();
    assert!(
        names.contains(&"/index.html")
            && names
                .iter()
                .any(|p| p.starts_with("/assets/") && p.ends_with(".js"))
            && names
                .iter()
                .any(|p| p.starts_with("/assets/") && p.ends_with(".css")),
        "the dashboard has its page, script and style: {names:?}"
    );
    // The app's page loads its script and style from files: no inline script for the CSP.
    assert!(
        page.contains("<script type=\"module\" crossorigin src=\"/assets/"),
        "{page}"
    );
    assert_eq!(heimdall_host::api::dashboard::FILES.len(), n);

    // SIGINT: a graceful stop, as Ctrl-C.
    // SAFETY: plain syscall on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("Discord is off"), "{log}");
    assert!(!log.contains(TEST_KEY), "the key leaked into the log");
}

#[test]
fn a_bad_setting_stops_the_binary_with_a_message_naming_it() {
    let out = Command::new(env!("CARGO_BIN_EXE_heimdall"))
        .arg("run")
        .env("ENCRYPTION_KEY", "0123456789")
        .env("MONGODB_URI", mongo_uri())
        .env("HEIMDALL_CONFIG", "/nonexistent/heimdall.toml")
        .output_in_time();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ENCRYPTION_KEY") && err.contains("64 hexadecimal"),
        "{err}"
    );
}

#[test]
fn seed_writes_a_database_from_the_command_line() {
    let db = unique_db_name("cli_seed");
    let out = Command::new(env!("CARGO_BIN_EXE_heimdall"))
        .args([
            "seed",
            "--uri",
            &mongo_uri(),
            "--db",
            &db,
            "--guilds",
            "2",
            "--encryption-key",
            TEST_KEY,
        ])
        .output_in_time();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary.contains("modmail_messages") && summary.contains("total"),
        "{summary}"
    );
    // Again into the same database: refused, with the way out.
    let out = Command::new(env!("CARGO_BIN_EXE_heimdall"))
        .args([
            "seed",
            "--uri",
            &mongo_uri(),
            "--db",
            &db,
            "--encryption-key",
            TEST_KEY,
        ])
        .output_in_time();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--drop"));
}

#[test]
fn seed_legacy_needs_no_encryption_key_but_an_instance_does() {
    let run = |legacy: bool| {
        let db = unique_db_name("cli_seed_nokey");
        let mut c = Command::new(env!("CARGO_BIN_EXE_heimdall"));
        c.args(["seed", "--uri", &mongo_uri(), "--db", &db, "--guilds", "1"])
            .env_remove("ENCRYPTION_KEY");
        if legacy {
            c.arg("--legacy");
        }
        c.output_in_time()
    };
    let out = run(true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(false);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--encryption-key"));
}

#[test]
fn token_lifetimes_are_bounded() {
    let token = |ttl: &str| {
        Command::new(env!("CARGO_BIN_EXE_heimdall"))
            .args(["token", "--user", "100000000000000001", "--ttl", ttl])
            .env("AUTH_SECRET", "test-secret-test-secret-test-secret-0123")
            .env("HEIMDALL_CONFIG", "/nonexistent/heimdall.toml")
            .env_remove("AUTH_MAX_TTL")
            .output_in_time()
    };
    assert!(token("7d").status.success());
    for (ttl, says) in [
        ("400d", "longer than a session may live (30d"),
        ("99999999999999999999d", "too long"),
        ("3000000000000000d", "too long"),
        ("forever", "not a duration"),
    ] {
        let out = token(ttl);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{ttl} was accepted");
        assert!(err.contains(says), "{ttl}: {err}");
        assert!(!err.contains("panicked"), "{ttl}: {err}");
    }
}
