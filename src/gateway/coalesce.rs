//! Frames written between two flushes leave in one `send`.
//!
//! tungstenite writes every frame to its socket as it is fed (the gateway keeps no write
//! buffer per connection: 10,000 idle sockets would hold 128 KiB each). A client resuming
//! after a few seconds away is sent its missed events one after another, and each became a
//! system call of its own: a reconnect storm of 10,000 clients, each a hundred events
//! behind, was a million sends, most of the server's time (`docs/benchmarks.md`).
//! [`Coalesce`] holds what is written until the next flush, which the gateway's writer
//! makes once its queue is empty, and frees the buffer then: an idle connection holds none.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Most bytes held before they are written without waiting for a flush; a write at least
/// this long goes straight to the socket. Small, because a client that stops reading keeps
/// this much until it is dropped as slow.
pub const HOLD: usize = 8 * 1024;

/// A stream whose writes wait for the next flush (or [`HOLD`] bytes), then leave together.
/// Reads pass through.
#[derive(Debug)]
pub struct Coalesce<S> {
    inner: S,
    held: Vec<u8>,
    /// How much of `held` the socket already took.
    sent: usize,
}

impl<S> Coalesce<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            held: Vec::new(),
            sent: 0,
        }
    }

    /// Bytes written and not yet passed to the socket.
    pub fn held(&self) -> usize {
        self.held.len() - self.sent
    }

    /// Bytes of memory held for them (0 once flushed).
    pub fn capacity(&self) -> usize {
        self.held.capacity()
    }
}

impl<S: AsyncWrite + Unpin> Coalesce<S> {
    /// Passes everything held to the socket, then frees the buffer.
    fn poll_release(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.held.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.held[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.held = Vec::new();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Coalesce<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Coalesce<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.held() + data.len() > HOLD {
            ready!(self.poll_release(cx))?;
        }
        if data.len() >= HOLD {
            return Pin::new(&mut self.inner).poll_write(cx, data);
        }
        self.held.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_release(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_release(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A socket that records each write it is given, taking at most `take` bytes of each,
    /// and refuses (`Pending`) while `full`.
    #[derive(Default)]
    struct Socket {
        writes: Vec<Vec<u8>>,
        take: Option<usize>,
        full: bool,
    }

    impl AsyncWrite for Socket {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<io::Result<usize>> {
            if self.full {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let n = self.take.unwrap_or(data.len()).min(data.len());
            self.writes.push(data[..n].to_vec());
            Poll::Ready(Ok(n))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn sent(s: &Socket) -> Vec<u8> {
        s.writes.concat()
    }

    #[tokio::test]
    async fn frames_written_before_a_flush_leave_in_one_send_and_nothing_is_kept() {
        let mut c = Coalesce::new(Socket::default());
        for i in 0..100u8 {
            c.write_all(&[i; 60]).await.unwrap();
        }
        assert!(c.inner.writes.is_empty(), "nothing sent before the flush");
        c.flush().await.unwrap();
        assert_eq!(c.inner.writes.len(), 1, "6,000 bytes in one send");
        let want: Vec<u8> = (0..100u8).flat_map(|i| [i; 60]).collect();
        assert_eq!(sent(&c.inner), want);
        assert_eq!((c.held(), c.capacity()), (0, 0), "the buffer is freed");
    }

    #[tokio::test]
    async fn more_than_it_holds_is_sent_in_order_without_waiting_for_the_flush() {
        let mut c = Coalesce::new(Socket::default());
        let mut want = Vec::new();
        for i in 0..50u8 {
            let frame = vec![i; 1000];
            c.write_all(&frame).await.unwrap();
            want.extend(frame);
            assert!(c.held() <= HOLD);
        }
        let big = vec![7u8; HOLD * 2];
        c.write_all(&big).await.unwrap();
        want.extend(&big);
        c.flush().await.unwrap();
        assert_eq!(sent(&c.inner), want);
        assert!(
            c.inner.writes.len() <= 50_000 / HOLD + 2,
            "{}",
            c.inner.writes.len()
        );
    }

    #[tokio::test]
    async fn a_socket_taking_a_few_bytes_at_a_time_gets_everything_in_order() {
        let mut c = Coalesce::new(Socket {
            take: Some(7),
            ..Default::default()
        });
        let want: Vec<u8> = (0..=255u8).cycle().take(20_000).collect();
        for chunk in want.chunks(333) {
            c.write_all(chunk).await.unwrap();
        }
        c.shutdown().await.unwrap();
        assert_eq!(sent(&c.inner), want);
        assert_eq!(c.capacity(), 0);
    }

    #[tokio::test]
    async fn a_full_socket_makes_the_flush_wait_and_keeps_what_was_written() {
        let mut c = Coalesce::new(Socket {
            full: true,
            ..Default::default()
        });
        c.write_all(b"hello").await.unwrap();
        let waited = tokio::time::timeout(std::time::Duration::from_millis(50), c.flush()).await;
        assert!(waited.is_err(), "the flush waits for the socket");
        assert_eq!(c.held(), 5);
        c.inner.full = false;
        c.flush().await.unwrap();
        assert_eq!(sent(&c.inner), b"hello");
    }
}
