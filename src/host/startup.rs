//! Building and running the bot: catalog check, database, indexes, API, Discord.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::config::{Config, ConfigError};
use crate::context::{Data, Inner};
use crate::crypto::Crypto;
use crate::embedded::{EmbeddedServer, ServerOptions};
use crate::gateway::GatewayContext;
use crate::gateway::WebSocketManager;
use crate::plugin::{Plugin, Registry};
use crate::{api, db, discord, embedded, gateway, locales};

/// A built bot, ready to run.
pub struct Application {
    data: Data,
    api_listener: TcpListener,
    api_addr: SocketAddr,
    ws_listener: TcpListener,
    ws_addr: SocketAddr,
    _embedded: Option<EmbeddedServer>,
}

/// Connections the kernel keeps waiting for the bot to accept them on each of its ports
/// (capped by `net.core.somaxconn`). Past that, a new connection's handshake is dropped and
/// its client waits for TCP to try again (1 s, then 3 s, then 7 s): a dashboard's clients
/// coming back all at once after a restart or a network blip did, with tokio's 128.
pub const LISTEN_BACKLOG: u32 = 4096;

/// Binds `addr:port` with a [`LISTEN_BACKLOG`]; a taken port is a [`ConfigError`] naming
/// `setting`.
pub async fn bind(setting: &'static str, addr: &str, port: u16) -> anyhow::Result<TcpListener> {
    let listen = |a: SocketAddr| -> std::io::Result<TcpListener> {
        let socket = if a.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        // As `TcpListener::bind`: a restarted bot takes its port back at once.
        socket.set_reuseaddr(true)?;
        socket.bind(a)?;
        socket.listen(LISTEN_BACKLOG)
    };
    let bound = async {
        let mut last = None;
        // The first of the name's addresses that can be listened on.
        for a in tokio::net::lookup_host((addr, port)).await? {
            match listen(a) {
                Ok(l) => return Ok(l),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address to listen on")
        }))
    };
    bound.await.map_err(|e| {
        let msg = if e.kind() == std::io::ErrorKind::AddrInUse {
            format!("port {port} on {addr} is already in use; stop the program using it or choose another port")
        } else {
            format!("cannot listen on {addr}:{port}: {e}")
        };
        ConfigError::new(setting, msg).into()
    })
}

/// The bot's database, opened.
pub struct OpenDatabase {
    /// The client.
    pub client: mongodb::Client,
    /// The bot's database.
    pub db: mongodb::Database,
    /// The connection string used.
    pub uri: String,
    /// The local server, when one was started.
    pub embedded: Option<EmbeddedServer>,
}

/// Connects to `MONGODB_URI`, or starts a local `secantusd-rs` under `HEIMDALL_DATA_DIR`.
pub async fn open_database(config: &Config) -> anyhow::Result<OpenDatabase> {
    let (uri, embedded) = match &config.mongodb_uri {
        Some(uri) => (uri.expose().to_string(), None),
        None => {
            let path = config.data_dir.join("mongo");
            tracing::info!(path = %path.display(), "MONGODB_URI is not set: starting a local secantusd-rs");
            let server =
                tokio::task::spawn_blocking(move || embedded::start(&ServerOptions::new(path)))
                    .await??;
            (server.uri.clone(), Some(server))
        }
    };
    let client = db::connect(&uri, Duration::from_secs(10)).await?;
    let db = client.database(&config.mongodb_db);
    Ok(OpenDatabase {
        client,
        db,
        uri,
        embedded,
    })
}

impl Application {
    /// Checks the catalog, connects to the database (starting a local one when
    /// `MONGODB_URI` is unset), creates every index, binds the API port and starts plugins.
    pub async fn build(config: Config, plugins: Vec<Arc<dyn Plugin>>) -> anyhow::Result<Self> {
        let registry = Registry::new(plugins).context("the plugin catalog is inconsistent")?;

        let OpenDatabase {
            client,
            db: database,
            uri,
            embedded,
        } = open_database(&config).await?;
        db::ensure_indexes(&database, &registry).await?;

        let api_listener = bind("API_PORT", &config.bind_address, config.api_port).await?;
        let api_addr = api_listener.local_addr()?;
        let ws_listener = bind("WS_PORT", &config.bind_address, config.ws_port).await?;
        let ws_addr = ws_listener.local_addr()?;

        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let gw = config.gateway.clone();
        let ws = match &config.redis_url {
            Some(url) => {
                WebSocketManager::with_redis(
                    &gw,
                    url.expose(),
                    &config.mongodb_db,
                    &tasks,
                    shutdown.clone(),
                )
                .await?
            }
            None => WebSocketManager::new(&gw),
        };

        let crypto = config.encryption_key.as_ref().map(Crypto::new);

        let discord = config.discord_token.as_ref().map(|t| {
            Arc::new(discord::http(
                t.expose(),
                config.discord_api_proxy.as_deref(),
            ))
        });
        let owners = Arc::new(crate::owners::Owners::new(config.owner_ids.clone()));
        let data = Data::new(Inner {
            owners,
            config,
            client,
            db: database,
            registry: Arc::new(registry),
            crypto,
            db_uri: uri,
            ws,
            gateway_port: ws_addr.port(),
            access: std::sync::OnceLock::new(),
            discord,
            lookups: Default::default(),
            shutdown,
            tasks,
        });
        let _ = data.access.set(data.registry.access_policy(&data)?);
        for p in data.registry.plugins() {
            p.start(&data)
                .await
                .with_context(|| format!("starting plugin {}", p.name()))?;
        }
        Ok(Self {
            data,
            api_listener,
            api_addr,
            ws_listener,
            ws_addr,
            _embedded: embedded,
        })
    }

    /// The shared context.
    pub fn data(&self) -> &Data {
        &self.data
    }

    /// The address the API listens on.
    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    /// The address the WebSocket gateway listens on.
    pub fn ws_addr(&self) -> SocketAddr {
        self.ws_addr
    }

    /// Serves until `data().shutdown` is cancelled (Ctrl-C in `heimdall run`), then stops
    /// plugins and waits for every task.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self {
            data,
            api_listener,
            api_addr,
            ws_listener,
            ws_addr,
            _embedded,
        } = self;
        let shutdown = data.shutdown.clone();
        tracing::info!(%api_addr, "API and dashboard listening");

        let mut origins = data.config.dashboard_origins.clone();
        for host in ["127.0.0.1", "localhost"] {
            origins.push(format!("http://{host}:{}", api_addr.port()));
        }
        if let Some(url) = &data.config.dashboard_url {
            origins.push(url.clone());
        }
        let gw_ctx = GatewayContext {
            gatekeeper: Arc::new(crate::auth::HostGatekeeper {
                secret: data
                    .config
                    .auth_secret
                    .as_ref()
                    .map(|s| s.expose().to_string()),
                owners: data.owners.clone(),
                max_ttl: data.config.auth_max_ttl,
                access: data.access().cloned(),
            }),
            origins,
            config: data.config.gateway.clone(),
        };
        let gateway = gateway::Gateway::new(
            data.ws.clone(),
            gw_ctx,
            shutdown.clone(),
            data.tasks.clone(),
        );
        tracing::info!(%ws_addr, redis = data.config.redis_url.is_some(), "WebSocket gateway listening (and on /ws of the API)");
        data.tasks.spawn(gateway.clone().serve(ws_listener));

        let app = api::router(data.clone(), Some(gateway));
        data.tasks.spawn(
            crate::http::serve(
                api_listener,
                app,
                data.config.http.clone(),
                shutdown.clone(),
                data.tasks.clone(),
            )
            .instrument(tracing::info_span!("api_server")),
        );

        if let Some(http) = data.discord.clone() {
            // The application's owners join OWNER_IDS as soon as Discord answers.
            let owners = data.owners.clone();
            data.tasks.spawn(async move {
                if let Err(e) = owners.refresh(&http).await {
                    tracing::warn!(error = %e, "could not ask Discord who owns the application; owners are OWNER_IDS only");
                }
            });
        }
        match data.config.discord_token.clone() {
            Some(token) => {
                let d = data.clone();
                data.tasks.spawn(async move {
                    if let Err(e) = discord::run(d.clone(), token.expose().to_string()).await {
                        tracing::error!(error = %e, "Discord connection failed; the API and dashboard keep running");
                    }
                });
            }
            None => tracing::warn!("{}", locales::t("discord-off", &[])),
        }

        shutdown.cancelled().await;
        tracing::info!("shutting down");
        for p in data.registry.plugins() {
            p.shutdown(&data).await;
        }
        data.tasks.close();
        if tokio::time::timeout(Duration::from_secs(15), data.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("some tasks did not stop within 15 s");
        }
        // Before the process exits (and the embedded server stops), not on a task of the
        // driver's own once the last handle drops.
        db::close(data.client.clone()).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    /// The most connections the kernel keeps waiting on `listener` (Linux's `TCP_INFO` of a
    /// listening socket gives it as `tcpi_sacked`).
    fn backlog_of(listener: &TcpListener) -> u32 {
        // SAFETY: `tcp_info` is plain data; zeroes are a valid value.
        let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        // SAFETY: an open socket, and a buffer of `len` bytes the kernel fills.
        let rc = unsafe {
            libc::getsockopt(
                listener.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                (&mut info as *mut libc::tcp_info).cast(),
                &mut len,
            )
        };
        assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
        info.tcpi_sacked
    }

    #[tokio::test]
    async fn the_ports_keep_a_storm_of_connections_waiting() {
        let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let ours = bind("WS_PORT", "127.0.0.1", 0).await.unwrap();
        assert_eq!(backlog_of(&ours), LISTEN_BACKLOG.min(somaxconn));
        // A taken port, named as the setting.
        let port = ours.local_addr().unwrap().port();
        let taken = bind("WS_PORT", "127.0.0.1", port).await.unwrap_err();
        assert!(taken.to_string().contains("WS_PORT"), "{taken}");
        assert!(format!("{taken:#}").contains("already in use"), "{taken:#}");
    }
}
