//! The HTTP server of the API and dashboard: hyper over the axum router, with a timeout on
//! every phase and connection limits, so a client that never finishes a request holds
//! nothing for long.
//!
//! - **Headers**: a request's headers must arrive within [`HttpConfig::header_timeout`];
//!   the same timer bounds how long a kept-alive connection may sit idle between requests.
//! - **Body**: a body must arrive within [`HttpConfig::body_timeout`] (408 otherwise).
//! - **Connections**: [`HttpConfig::limits`], as the gateway's: a connection that has not
//!   sent a complete request yet is evicted by a newer one from the same address.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use heimdall_base::net::{accept, Admission, Limits};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tracing::Instrument;

/// Timeouts and limits of the HTTP server.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// `HTTP_HEADER_TIMEOUT`: time to send a request's headers, and the longest a kept-alive
    /// connection may idle (default 10 s).
    pub header_timeout: Duration,
    /// `HTTP_BODY_TIMEOUT`: time to send a request's body (default 30 s).
    pub body_timeout: Duration,
    /// `HTTP_MAX_CONNECTIONS`, `HTTP_MAX_CONNECTIONS_PER_ADDRESS`,
    /// `HTTP_MAX_PENDING_PER_ADDRESS` (defaults 4096, 256, 32).
    pub limits: Limits,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            limits: Limits {
                total: 4096,
                per_address: 256,
                pending_per_address: 32,
            },
        }
    }
}

/// Serves `router` on `listener` until `shutdown`, each connection a task of `tasks`; on
/// shutdown, connections finish the request in flight and close.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    config: HttpConfig,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    let admission = Admission::new(config.limits);
    let router = router.layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
        config.body_timeout,
    ));
    while let Some((tcp, peer, ticket)) =
        accept(&listener, &admission, &shutdown, &tasks, "api").await
    {
        let ticket = Arc::new(ticket);
        let evicted = ticket.evicted();
        let router = router.clone();
        let stop = shutdown.clone();
        let header_timeout = config.header_timeout;
        tasks.spawn(
            async move {
                let service = hyper::service::service_fn(
                    move |mut req: hyper::Request<hyper::body::Incoming>| {
                        // A complete request arrived: no longer evictable.
                        ticket.established();
                        req.extensions_mut()
                            .insert(axum::extract::ConnectInfo(peer));
                        let router = router.clone();
                        async move {
                            Ok::<_, Infallible>(
                                router
                                    .oneshot(req.map(axum::body::Body::new))
                                    .await
                                    .unwrap_or_else(|never| match never {}),
                            )
                        }
                    },
                );
                let mut http = hyper::server::conn::http1::Builder::new();
                http.timer(TokioTimer::new())
                    .header_read_timeout(header_timeout)
                    .keep_alive(true);
                let conn = http
                    .serve_connection(TokioIo::new(tcp), service)
                    .with_upgrades();
                tokio::pin!(conn);
                let r = tokio::select! {
                    r = conn.as_mut() => r,
                    _ = evicted.cancelled() => Ok(()),
                    _ = stop.cancelled() => {
                        conn.as_mut().graceful_shutdown();
                        match tokio::time::timeout(Duration::from_secs(10), conn.as_mut()).await {
                            Ok(r) => r,
                            Err(_) => Ok(()),
                        }
                    }
                };
                if let Err(e) = r {
                    tracing::debug!(error = %e, "API connection ended with an error");
                }
            }
            .instrument(tracing::debug_span!("http_client", %peer)),
        );
    }
}
