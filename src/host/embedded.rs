//! A local `secantusd-rs` (a MongoDB-compatible server) as a child process.
//!
//! `heimdall run` starts one when `MONGODB_URI` is not set, and the test suite starts one per
//! test process. The child dies with the thread that started it (`PR_SET_PDEATHSIG`), so
//! no server outlives its owner even after a crash.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, Context as _};

/// The server binary's name.
pub const BINARY: &str = "secantusd-rs";

/// A running `secantusd-rs`, owned by a dedicated thread; stopped on drop.
#[derive(Debug)]
pub struct EmbeddedServer {
    /// `mongodb://host:port/?directConnection=true`.
    pub uri: String,
    /// The server's process id (a benchmark reads its CPU time from `/proc`).
    pub pid: u32,
    stop: Option<mpsc::Sender<()>>,
    owner: Option<std::thread::JoinHandle<()>>,
}

impl Drop for EmbeddedServer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.owner.take() {
            let _ = t.join();
        }
    }
}

/// Finds the server binary: `SECANTUSD_BIN`, then `PATH`, then `~/.cargo/bin`.
pub fn find_binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("SECANTUSD_BIN") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(BINARY);
        if candidate.is_file() {
            return Some(candidate);
        }
    }
    let home = std::env::var_os("HOME")?;
    let candidate = Path::new(&home).join(".cargo/bin").join(BINARY);
    candidate.is_file().then_some(candidate)
}

/// Options of a local server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// WiredTiger home (created if missing).
    pub storage_path: PathBuf,
    /// Port (0: any free port).
    pub port: u16,
    /// WiredTiger cache, e.g. `512M`.
    pub cache_size: String,
}

impl ServerOptions {
    /// Defaults for a server keeping its data in `storage_path`.
    pub fn new(storage_path: impl Into<PathBuf>) -> Self {
        Self {
            storage_path: storage_path.into(),
            port: 0,
            cache_size: "512M".into(),
        }
    }
}

/// Starts `secantusd-rs` on a thread of its own and waits until it listens (at most 60 s).
///
/// The owning thread lives until the returned handle is dropped (then it kills the server);
/// if the whole process dies first, the kernel kills the server.
pub fn start(opts: &ServerOptions) -> anyhow::Result<EmbeddedServer> {
    let opts = opts.clone();
    let (ready_tx, ready_rx) = mpsc::channel::<anyhow::Result<(String, u32)>>();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let owner = std::thread::Builder::new()
        .name("secantusd-owner".into())
        .spawn(move || match spawn_child(&opts) {
            Ok((mut child, uri)) => {
                let _ = ready_tx.send(Ok((uri, child.id())));
                // Blocks until the handle is dropped.
                let _ = stop_rx.recv();
                let _ = child.kill();
                let _ = child.wait();
            }
            Err(e) => {
                let _ = ready_tx.send(Err(e));
            }
        })?;
    let (uri, pid) = ready_rx
        .recv()
        .context("the secantusd-rs owner thread ended early")??;
    Ok(EmbeddedServer {
        uri,
        pid,
        stop: Some(stop_tx),
        owner: Some(owner),
    })
}

fn spawn_child(opts: &ServerOptions) -> anyhow::Result<(Child, String)> {
    let binary = find_binary().with_context(|| {
        format!("{BINARY} is not installed; run ./scripts/install-deps.sh (or set MONGODB_URI to use another MongoDB server)")
    })?;
    std::fs::create_dir_all(&opts.storage_path)
        .with_context(|| format!("creating {}", opts.storage_path.display()))?;
    let mut cmd = Command::new(&binary);
    cmd.arg("--host")
        .arg("127.0.0.1")
        .arg("--port")
        .arg(opts.port.to_string())
        .arg("--storage-path")
        .arg(&opts.storage_path)
        .arg("--cache-size")
        .arg(&opts.cache_size)
        .arg("--log-file-max")
        .arg("32MB")
        .arg("--log-level")
        .arg("WARNING")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel::<String>();
    // Reads the announcement, then keeps draining so the pipe never fills.
    std::thread::Builder::new()
        .name("secantusd-stdout".into())
        .spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("secantusd-rs listening on ") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(addr.trim().to_string());
                    }
                }
            }
        })?;
    let addr = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(a) => a,
        Err(_) => {
            let _ = child.kill();
            let status = child.wait().ok();
            bail!(
                "{BINARY} did not start listening within 60 s (exit: {status:?}); storage {}",
                opts.storage_path.display()
            );
        }
    };
    let addr = addr
        .trim_start_matches("mongodb://")
        .trim_start_matches("tcp://");
    Ok((child, format!("mongodb://{addr}/?directConnection=true")))
}
