//! The web UI's listener, bounded so that no number of clients can take the job's file
//! descriptors: at most [`MAX_CONNECTIONS`] connections are open at once (a connection that
//! arrives while all are taken is accepted and closed at once, so none waits in the kernel's
//! queue ahead of later clients), a connection must send its first byte within
//! [`FIRST_BYTE`], and one that neither sends nor takes a byte for [`IDLE`] is closed (an idle
//! keep-alive, a client that opened a socket and went quiet).
//!
//! Invariant: every accepted connection holds a slot until it is dropped, so the open
//! connections never exceed the cap; the UI keeps answering within it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// At most this many connections to the UI are open at once.
pub const MAX_CONNECTIONS: usize = 64;

/// A connection without a byte either way for this long is closed.
pub const IDLE: Duration = Duration::from_secs(10);

/// A new connection that sends nothing for this long is closed.
pub const FIRST_BYTE: Duration = Duration::from_secs(2);

/// A listener that accepts while fewer than its cap of connections are open.
pub(crate) struct Bounded {
    inner: TcpListener,
    open: Arc<AtomicUsize>,
    cap: usize,
    idle: Duration,
}

impl Bounded {
    pub(crate) fn new(inner: TcpListener, cap: usize, idle: Duration) -> Self {
        Bounded {
            inner,
            open: Arc::new(AtomicUsize::new(0)),
            cap,
            idle,
        }
    }
}

/// An accepted connection: its slot is given back when it is dropped.
pub(crate) struct Conn {
    stream: TcpStream,
    open: Arc<AtomicUsize>,
    idle: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Conn {
    fn touched(&mut self) {
        let next = tokio::time::Instant::now() + self.idle;
        self.deadline.as_mut().reset(next);
    }

    /// `poll` made no progress: a timeout error once the connection has been idle too long.
    fn idle_out<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "web UI connection idle too long",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(r) => {
                this.touched();
                Poll::Ready(r)
            }
            Poll::Pending => this.idle_out(cx),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_write(cx, buf) {
            Poll::Ready(r) => {
                this.touched();
                Poll::Ready(r)
            }
            Poll::Pending => this.idle_out(cx),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_flush(cx) {
            Poll::Pending => this.idle_out(cx),
            ready => ready,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

impl axum::serve::Listener for Bounded {
    type Io = Conn;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Conn, std::net::SocketAddr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, _)) if self.open.load(Ordering::SeqCst) >= self.cap => {
                    // Full: closed at once (the client may try again), never queued.
                    drop(stream);
                }
                Ok((stream, addr)) => {
                    self.open.fetch_add(1, Ordering::SeqCst);
                    let conn = Conn {
                        stream,
                        open: Arc::clone(&self.open),
                        idle: self.idle,
                        deadline: Box::pin(tokio::time::sleep(self.idle.min(FIRST_BYTE))),
                    };
                    return (conn, addr);
                }
                Err(e) => {
                    // Out of descriptors or a connection reset before it was accepted: wait
                    // a little rather than spin (axum's own listener does the same).
                    tracing::debug!("web UI: cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.inner.local_addr()
    }
}
