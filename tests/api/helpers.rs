//! `spawn_app()` and friends: one secantusd-rs per test process (or `MONGODB_TEST_URI`),
//! a unique database per test, the bot on free ports.
#![allow(dead_code)] // shared by every test module; not each uses every helper

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use heimdall_host::config::Config;
use heimdall_host::context::Data;
use heimdall_host::crypto::EncryptionKey;
use heimdall_host::embedded::{self, ServerOptions};
use heimdall_host::startup::Application;
use mongodb::{Client, Database};

/// The key tests encrypt with.
pub const TEST_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
/// Another key, for mismatch tests.
pub const OTHER_KEY: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";
/// The `AUTH_SECRET` of test apps.
pub const AUTH_SECRET: &str = "test-secret-test-secret-test-secret-0123";
/// The owner id configured in test apps.
pub const OWNER_ID: &str = "100000000000000001";

/// The test key parsed.
pub fn test_key() -> EncryptionKey {
    TEST_KEY.parse().unwrap()
}

/// The connection string of the test server: `MONGODB_TEST_URI`, or a `secantusd-rs` started
/// once for this test process (killed when the process exits).
pub fn mongo_uri() -> String {
    static URI: OnceLock<String> = OnceLock::new();
    URI.get_or_init(|| {
        if let Ok(uri) = std::env::var("MONGODB_TEST_URI") {
            return uri;
        }
        let root = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("test-db");
        remove_dead_processes_data(&root);
        let dir = root.join(std::process::id().to_string());
        let _ = std::fs::remove_dir_all(&dir);
        let mut opts = ServerOptions::new(dir);
        opts.cache_size = "1G".into();
        let server = embedded::start(&opts).expect(
            "starting secantusd-rs for the tests (install it with ./scripts/install-deps.sh)",
        );
        let uri = server.uri.clone();
        // Lives as long as the test process; the kernel kills the server when it exits.
        std::mem::forget(server);
        uri
    })
    .clone()
}

/// Removes the server data of earlier test processes that have ended (each process has a
/// directory named by its pid; without this they pile up run after run).
fn remove_dead_processes_data(root: &std::path::Path) {
    // Whether a process lives is read from /proc; without it nothing is removed.
    if !std::path::Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let alive = std::path::Path::new("/proc").join(pid.to_string()).exists();
        if !alive && pid != std::process::id() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// A database name no other test uses.
pub fn unique_db_name(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "t{}_{}_{}",
        std::process::id(),
        prefix,
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// A client of the test server.
pub async fn client() -> Client {
    heimdall_host::db::connect(&mongo_uri(), Duration::from_secs(20))
        .await
        .expect("test server reachable")
}

/// A fresh, empty database on the test server.
pub async fn fresh_db(prefix: &str) -> Database {
    client().await.database(&unique_db_name(prefix))
}

/// The environment of a test app.
pub fn test_env(db_name: &str) -> HashMap<String, String> {
    HashMap::from([
        ("MONGODB_URI".to_string(), mongo_uri()),
        ("MONGODB_DB".to_string(), db_name.to_string()),
        ("API_PORT".to_string(), "0".to_string()),
        ("WS_PORT".to_string(), "0".to_string()),
        ("ENCRYPTION_KEY".to_string(), TEST_KEY.to_string()),
        ("OWNER_IDS".to_string(), OWNER_ID.to_string()),
        ("AUTH_SECRET".to_string(), AUTH_SECRET.to_string()),
    ])
}

/// A running bot.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    /// `ws://127.0.0.1:PORT` of the gateway.
    pub ws_address: String,
    /// The bot's shared context.
    pub data: Data,
    /// The bot's database.
    pub db: Database,
    /// An HTTP client.
    pub http: reqwest::Client,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.data.shutdown.cancel();
    }
}

impl TestApp {
    /// GET `path` and the JSON answer.
    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }
}

/// Starts the bot against a fresh database.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the bot with these settings set (after the test defaults).
pub async fn spawn_app_with_vars(vars: &[(&str, &str)]) -> TestApp {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    spawn_app_with(move |env| env.extend(vars)).await
}

/// Starts the bot with a changed environment.
pub async fn spawn_app_with(change: impl FnOnce(&mut HashMap<String, String>)) -> TestApp {
    let db_name = unique_db_name("app");
    let mut env = test_env(&db_name);
    change(&mut env);
    let config = Config::from_sources(&env, None).expect("valid test config");
    let app = Application::build(config, heimdall::plugins::all())
        .await
        .expect("the bot starts");
    let address = format!("http://{}", app.api_addr());
    let ws_address = format!("ws://{}", app.ws_addr());
    let data = app.data().clone();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        ws_address,
        db: data.db.clone(),
        data,
        http: reqwest::Client::new(),
    }
}

/// How long a test waits for a command-line run of the bot before it fails.
pub const CLI_LIMIT: Duration = Duration::from_secs(300);

/// `Command::output` with a deadline, for the bot's command line: a run still going after
/// [`CLI_LIMIT`] is killed and the test fails with the command and what it printed so far,
/// where a hung child would otherwise hang the whole suite (and CI until its own timeout).
pub trait OutputInTime {
    /// Runs the command to its end (at most [`CLI_LIMIT`]) and returns its output.
    fn output_in_time(&mut self) -> std::process::Output;
}

impl OutputInTime for std::process::Command {
    fn output_in_time(&mut self) -> std::process::Output {
        use std::io::Read;
        use std::process::Stdio;
        use std::sync::{Arc, Mutex};
        type Pipe = (Arc<Mutex<Vec<u8>>>, std::thread::JoinHandle<()>);
        let mut child = self
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {self:?}: {e}"));
        // Both pipes read as they fill (a child blocked on a full pipe never ends), into
        // buffers readable before the pipe ends: a killed child's own children may hold it.
        fn drain(mut from: impl Read + Send + 'static) -> Pipe {
            let buf = Arc::new(Mutex::new(Vec::new()));
            let to = buf.clone();
            let reader = std::thread::spawn(move || {
                let mut chunk = [0u8; 8192];
                while let Ok(n @ 1..) = from.read(&mut chunk) {
                    to.lock().unwrap().extend_from_slice(&chunk[..n]);
                }
            });
            (buf, reader)
        }
        let read = |(buf, _): &Pipe| String::from_utf8_lossy(&buf.lock().unwrap()).into_owned();
        let take = |(buf, reader): Pipe| {
            reader.join().expect("reading the child's output");
            std::mem::take(&mut *buf.lock().unwrap())
        };
        let stdout = drain(child.stdout.take().expect("piped"));
        let stderr = drain(child.stderr.take().expect("piped"));
        let start = std::time::Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("waiting for the child") {
                // Ended by itself: its output to the end, as `Command::output` gives it.
                return std::process::Output {
                    status,
                    stdout: take(stdout),
                    stderr: take(stderr),
                };
            }
            if start.elapsed() > CLI_LIMIT {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(200));
                panic!(
                    "{self:?} was still running after {} s and was killed; it printed:\n{}\n{}",
                    CLI_LIMIT.as_secs(),
                    read(&stdout),
                    read(&stderr),
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
