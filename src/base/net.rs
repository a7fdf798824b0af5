//! Admission of TCP connections, shared by the HTTP API and the WebSocket gateway: at most
//! [`Limits::total`] open at once and [`Limits::per_address`] from one address, and of those
//! not yet authenticated at most [`Limits::pending_per_address`] per address — a new one
//! evicts the oldest, so connections that never finish their handshake cannot lock out the
//! clients that do, even from the same address.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

/// How many connections may be open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// All connections at once.
    pub total: usize,
    /// Connections from one client address.
    pub per_address: usize,
    /// Connections from one address that have not authenticated (or, for HTTP, sent a
    /// complete request) yet; a new one evicts the oldest.
    pub pending_per_address: usize,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// [`Limits::total`] connections are open.
    Full,
    /// [`Limits::per_address`] connections from this address are open.
    TooManyFromAddress,
}

/// The `code` of a refused connection's `{code, message}`.
pub const REFUSAL_CODE: &str = "too_many_connections";

impl Refusal {
    /// The HTTP status, its reason phrase, and what the client is told.
    pub fn answer(self) -> (u16, &'static str, &'static str) {
        match self {
            Refusal::Full => (
                503,
                "Service Unavailable",
                "the server is at its connection limit; retry later",
            ),
            Refusal::TooManyFromAddress => (
                429,
                "Too Many Requests",
                "too many connections from your address; close some and retry",
            ),
        }
    }
}

#[derive(Default)]
struct Address {
    open: usize,
    pending: VecDeque<(u64, CancellationToken)>,
}

#[derive(Default)]
struct State {
    total: usize,
    next: u64,
    addresses: HashMap<IpAddr, Address>,
}

/// Counts open connections against [`Limits`]. Cheap to clone.
#[derive(Clone)]
pub struct Admission {
    limits: Limits,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("limits", &self.limits)
            .field("open", &self.open())
            .finish()
    }
}

impl Admission {
    /// An admission with no connection open.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            state: Arc::default(),
        }
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.state.lock().expect("admission lock").total
    }

    /// Admits a connection from `address` as pending, evicting the address's oldest pending
    /// connection when it has too many; refuses it when a limit is reached. The connection
    /// counts until the ticket is dropped.
    pub fn admit(&self, address: IpAddr) -> Result<Ticket, Refusal> {
        let mut st = self.state.lock().expect("admission lock");
        if st.total >= self.limits.total {
            return Err(Refusal::Full);
        }
        let id = st.next;
        st.next += 1;
        let limits = self.limits;
        let a = st.addresses.entry(address).or_default();
        if a.open >= limits.per_address {
            // Only an eviction makes room: the evicted one still counts until it closes.
            return Err(Refusal::TooManyFromAddress);
        }
        while a.pending.len() >= limits.pending_per_address.max(1) {
            if let Some((_, oldest)) = a.pending.pop_front() {
                oldest.cancel();
            }
        }
        let evicted = CancellationToken::new();
        a.pending.push_back((id, evicted.clone()));
        a.open += 1;
        st.total += 1;
        Ok(Ticket {
            admission: self.clone(),
            address,
            id,
            evicted,
            established: std::sync::atomic::AtomicBool::new(false),
        })
    }
}

/// One admitted connection; dropping it frees its place.
pub struct Ticket {
    admission: Admission,
    address: IpAddr,
    id: u64,
    evicted: CancellationToken,
    established: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket")
            .field("address", &self.address)
            .field("id", &self.id)
            .finish()
    }
}

impl Ticket {
    /// Cancelled when a newer pending connection from the same address evicted this one.
    pub fn evicted(&self) -> CancellationToken {
        self.evicted.clone()
    }

    /// The connection authenticated: it is no longer pending and can no longer be evicted.
    pub fn established(&self) {
        // Called for every request of a kept-alive connection: only the first one locks.
        if self
            .established
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            return;
        }
        let mut st = self.admission.state.lock().expect("admission lock");
        if let Some(a) = st.addresses.get_mut(&self.address) {
            a.pending.retain(|(id, _)| *id != self.id);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut st = self.admission.state.lock().expect("admission lock");
        st.total -= 1;
        if let Some(a) = st.addresses.get_mut(&self.address) {
            a.open -= 1;
            a.pending.retain(|(id, _)| *id != self.id);
            if a.open == 0 {
                st.addresses.remove(&self.address);
            }
        }
    }
}

/// Answers a connection over the limits with an HTTP status (503 when full, 429 for too
/// many from one address, both with `Retry-After`) and closes it, giving the peer at most a
/// second.
pub async fn refuse(mut tcp: tokio::net::TcpStream, why: Refusal) {
    use tokio::io::AsyncWriteExt;
    let (status, reason, message) = why.answer();
    let body = format!(r#"{{"code":"{REFUSAL_CODE}","message":"{message}"}}"#);
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nRetry-After: 5\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(1),
        tcp.write_all(response.as_bytes()),
    )
    .await;
}

/// The next connection `admission` lets in, with its ticket; the others are answered with
/// their status (as tasks of `tasks`) and dropped. `None` once `shutdown` is cancelled. An
/// accept error (out of file descriptors, say) is logged and retried after 50 ms.
pub async fn accept(
    listener: &tokio::net::TcpListener,
    admission: &Admission,
    shutdown: &CancellationToken,
    tasks: &tokio_util::task::TaskTracker,
    what: &'static str,
) -> Option<(tokio::net::TcpStream, std::net::SocketAddr, Ticket)> {
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => return None,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, server = what, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        match admission.admit(peer.ip()) {
            Ok(ticket) => {
                let _ = tcp.set_nodelay(true);
                return Some((tcp, peer, ticket));
            }
            Err(why) => {
                tracing::debug!(%peer, ?why, server = what, "connection refused");
                tasks.spawn(refuse(tcp, why));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    fn admission(total: usize, per_address: usize, pending: usize) -> Admission {
        Admission::new(Limits {
            total,
            per_address,
            pending_per_address: pending,
        })
    }

    #[test]
    fn a_new_pending_connection_evicts_the_oldest_from_its_address_only() {
        let adm = admission(100, 100, 2);
        let first = adm.admit(A).unwrap();
        let second = adm.admit(A).unwrap();
        let other = adm.admit(B).unwrap();
        let third = adm.admit(A).unwrap();
        assert!(first.evicted().is_cancelled());
        assert!(!second.evicted().is_cancelled());
        assert!(!third.evicted().is_cancelled());
        assert!(!other.evicted().is_cancelled());
        // An established connection is never evicted.
        second.established();
        third.established();
        let _fourth = adm.admit(A).unwrap();
        let _fifth = adm.admit(A).unwrap();
        assert!(!second.evicted().is_cancelled() && !third.evicted().is_cancelled());
    }

    #[test]
    fn limits_refuse_and_dropping_a_ticket_frees_its_place() {
        let adm = admission(3, 2, 10);
        let a1 = adm.admit(A).unwrap();
        let _a2 = adm.admit(A).unwrap();
        assert_eq!(adm.admit(A).unwrap_err(), Refusal::TooManyFromAddress);
        let _b1 = adm.admit(B).unwrap();
        assert_eq!(adm.admit(B).unwrap_err(), Refusal::Full);
        drop(a1);
        assert_eq!(adm.open(), 2);
        assert!(adm.admit(A).is_ok());
    }
}
