//! Shared by the benchmarks: arguments, medians, a test server, the plain-copy ceiling and
//! running the `heimdall` binary with its peak RSS and the anonymous and file-backed parts
//! of it.

#![allow(dead_code)]

use std::process::Command;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use heimdall_host::embedded::{self, EmbeddedServer, ServerOptions};
use mongodb::bson::{doc, Document};
use mongodb::options::InsertManyOptions;
use mongodb::Database;

/// The key every benchmark encrypts with.
pub const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// Seed options at `scale`, encrypting with [`KEY`]; `--scattered-ids 1` scatters the
/// ObjectIds' times (no collection stored in `_id` order).
pub fn seed_options(scale: f64) -> heimdall::seed::SeedOptions {
    heimdall::seed::SeedOptions {
        scale,
        scattered_ids: arg("--scattered-ids", 0.0) > 0.0,
        ..heimdall::seed::SeedOptions::new(KEY.parse().unwrap())
    }
}

#[path = "args.rs"]
mod args;
pub use args::{arg, arg_str, median};

/// `MONGODB_BENCH_URI`, or a secantusd-rs started for the benchmark with a cache of
/// `--cache` (default 2G; a smaller cache puts a small instance under the pressure a big
/// one meets: 200M at a million documents is about 2G at ten million).
pub fn server(dir: &std::path::Path) -> (String, Option<EmbeddedServer>) {
    match std::env::var("MONGODB_BENCH_URI") {
        Ok(u) => (u, None),
        Err(_) => {
            let mut o = ServerOptions::new(dir.join("db"));
            o.cache_size = arg_str("--cache", "2G");
            let s = embedded::start(&o).unwrap();
            (s.uri.clone(), Some(s))
        }
    }
}

/// The ceiling: cursor read + unordered `insert_many` of 1,000, no checks.
pub async fn plain_copy(
    source: &Database,
    target: &Database,
    collections: &[&str],
) -> (Duration, u64) {
    let start = Instant::now();
    let mut n = 0;
    for c in collections {
        let mut cursor = source
            .collection::<Document>(c)
            .find(doc! {})
            .batch_size(1000)
            .await
            .unwrap();
        let out = target.collection::<Document>(c);
        let mut buf = Vec::with_capacity(1000);
        loop {
            let next = cursor.try_next().await.unwrap();
            let end = next.is_none();
            if let Some(d) = next {
                buf.push(d);
            }
            if buf.len() == 1000 || (end && !buf.is_empty()) {
                n += buf.len() as u64;
                out.insert_many(std::mem::take(&mut buf))
                    .with_options(InsertManyOptions::builder().ordered(false).build())
                    .await
                    .unwrap();
            }
            if end {
                break;
            }
        }
    }
    (start.elapsed(), n)
}

/// One `heimdall migrate` run: its time, its memory and its `--json` answer.
pub struct Run {
    /// Wall-clock seconds, start to exit.
    pub secs: f64,
    /// Peak RSS in kB, as the process reports it at exit (`VmHWM`): anonymous memory and
    /// the pages of the binary and libraries it has touched.
    pub peak_kb: u64,
    /// The largest anonymous memory (`RssAnon`: heap, stacks) seen while it ran, in kB —
    /// the part that could grow with the data. Read from `/proc` every 50 ms, so a spike
    /// shorter than that can be missed; 0 where there is no `/proc`.
    pub anon_kb: u64,
    /// The largest file-backed memory (`RssFile`: mostly the binary's own code pages) seen
    /// while it ran, in kB.
    pub file_kb: u64,
    /// What it printed with `--json`.
    pub json: serde_json::Value,
}

impl Run {
    /// "peak RSS P kB (anonymous A, files F)" for a benchmark's log.
    pub fn memory(&self) -> String {
        format!(
            "peak RSS {} kB (anonymous {}, files {})",
            self.peak_kb, self.anon_kb, self.file_kb
        )
    }
}

/// The figure after `field` on a line of `text` (`/proc/<pid>/status`, or the `peak-rss`
/// line of `heimdall`'s output), without its ` kB`.
fn field_kb(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
}

/// Runs `heimdall migrate <args> --json` into `target`, sampling its memory while it runs.
pub fn migrate(uri: &str, target: &str, args: &[&str]) -> Run {
    use std::io::Read;
    use std::process::Stdio;
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_heimdall"))
        .arg("migrate")
        .args(args)
        .arg("--json")
        .env("MONGODB_URI", uri)
        .env("MONGODB_DB", target)
        .env("ENCRYPTION_KEY", KEY)
        .env("HEIMDALL_REPORT_PEAK_RSS", "1")
        .env("HEIMDALL_CONFIG", "/nonexistent")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Both pipes drained on threads of their own, so a full pipe never stalls the child.
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            r.read_to_end(&mut buf).unwrap();
            buf
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let status_path = format!("/proc/{}/status", child.id());
    let (mut anon_kb, mut file_kb) = (0, 0);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if let Ok(s) = std::fs::read_to_string(&status_path) {
            anon_kb = anon_kb.max(field_kb(&s, "RssAnon:").unwrap_or(0));
            file_kb = file_kb.max(field_kb(&s, "RssFile:").unwrap_or(0));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let secs = start.elapsed().as_secs_f64();
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    let stderr = String::from_utf8_lossy(&stderr);
    assert!(
        status.code().is_some_and(|c| c == 0 || c == 2),
        "migrate failed: {stderr}"
    );
    Run {
        secs,
        peak_kb: field_kb(&stderr, "peak-rss ").unwrap_or(0),
        anon_kb,
        file_kb,
        json: serde_json::from_slice(&stdout).unwrap(),
    }
}

/// Connects to the benchmark server.
pub async fn client(uri: &str) -> mongodb::Client {
    heimdall_host::db::connect(uri, Duration::from_secs(20))
        .await
        .unwrap()
}

/// CPU seconds (user and system) the process `pid` has used so far, from `/proc`; `None`
/// where there is no `/proc` or no such process.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (which may hold spaces) closed by ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| ticks / hz as f64)
}

/// Waits until the database server the benchmark started is idle: under a tenth of a core
/// over three seconds in a row, at most ten minutes. A drop, a seed or a copy leaves the
/// server work to finish after its commands have returned (a dropped 3M-document database
/// kept one core busy for 45 s), which would otherwise land on whatever is measured next.
/// Returns the seconds waited; 0 without a server of the benchmark's own.
pub async fn settle(pid: Option<u32>) -> f64 {
    let Some(pid) = pid else { return 0.0 };
    let start = Instant::now();
    let mut quiet = 0;
    let mut last = cpu_seconds(pid);
    while quiet < 3 && start.elapsed() < Duration::from_secs(600) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = cpu_seconds(pid);
        quiet = match (last, now) {
            (Some(a), Some(b)) if b - a < 0.1 => quiet + 1,
            (Some(_), Some(_)) => 0,
            _ => return start.elapsed().as_secs_f64(),
        };
        last = now;
    }
    start.elapsed().as_secs_f64()
}

/// CPU seconds (user and system) of this process's children that have ended (each
/// `heimdall` run once it has exited; not a server still running).
pub fn children_cpu_seconds() -> f64 {
    // SAFETY: getrusage writes the struct it is given and nothing else.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(u.ru_utime) + secs(u.ru_stime)
}

/// CPU seconds counted from [`CpuClock::start`]: the database server's (when the
/// benchmark started it) and this process's ended children's (each `heimdall` run).
pub struct CpuClock {
    pid: Option<u32>,
    server: Option<f64>,
    children: f64,
}

impl CpuClock {
    /// Starts counting; `pid`: the server's, if the benchmark started it.
    pub fn start(pid: Option<u32>) -> Self {
        Self {
            pid,
            server: pid.and_then(cpu_seconds),
            children: children_cpu_seconds(),
        }
    }

    /// (server CPU seconds, if known; children's CPU seconds) since the start.
    pub fn elapsed(&self) -> (Option<f64>, f64) {
        let server = self.pid.and_then(cpu_seconds).zip(self.server);
        (
            server.map(|(now, then)| now - then),
            children_cpu_seconds() - self.children,
        )
    }
}
