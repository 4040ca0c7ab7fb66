//! `Prefixed`: a stream with bytes already read from it put back in front,
//! so the bytes peeked to tell TLS from plain traffic are not lost; and
//! `Watched`: a stream that notes when it last moved a byte, for the idle
//! timeout.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// `io` with `prefix` read first.
#[derive(Debug)]
pub struct Prefixed<T> {
    prefix: Bytes,
    io: T,
}

impl<T> Prefixed<T> {
    /// Puts `prefix` back in front of `io`.
    pub fn new(prefix: Bytes, io: T) -> Self {
        let mut this = Self { prefix, io };
        this.release_if_read();
        this
    }

    /// An empty `prefix` may still hold the buffer it was cut from (hyper
    /// hands over the rest of its 8 KiB read buffer on upgrade): let it go,
    /// or every idle intercepted connection keeps it for its whole life.
    fn release_if_read(&mut self) {
        if self.prefix.is_empty() {
            self.prefix = Bytes::new();
        }
    }

    /// The bytes not yet read again.
    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// The stream behind the prefix.
    pub fn get_ref(&self) -> &T {
        &self.io
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Prefixed<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
            this.release_if_read();
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Prefixed<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// When a connection last moved a byte, shared by the stream and the
/// watchdog that closes it when idle.
#[derive(Debug, Clone)]
pub struct Activity {
    start: tokio::time::Instant,
    /// Milliseconds after `start` of the last read or write.
    last: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Activity {
    pub fn new() -> Self {
        Self {
            start: tokio::time::Instant::now(),
            last: std::sync::Arc::default(),
        }
    }

    fn touch(&self) {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(now, std::sync::atomic::Ordering::Relaxed);
    }

    /// Resolves once no byte moved for `idle`.
    pub async fn idle_for(&self, idle: std::time::Duration) {
        loop {
            let last = self.last.load(std::sync::atomic::Ordering::Relaxed);
            let deadline = self.start + std::time::Duration::from_millis(last) + idle;
            if tokio::time::Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

impl Default for Activity {
    fn default() -> Self {
        Self::new()
    }
}

/// A client connection's stream: it records its reads and writes in an
/// `Activity`, and holds the connection's `--max-connections` permit for
/// as long as it lives (also after a CONNECT hands it on).
#[derive(Debug)]
pub struct Watched<T> {
    io: T,
    activity: Activity,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl<T> Watched<T> {
    pub fn new(io: T, permit: tokio::sync::OwnedSemaphorePermit) -> Self {
        Self {
            io,
            activity: Activity::new(),
            _permit: permit,
        }
    }

    /// Its activity, for the idle watchdog.
    pub fn activity(&self) -> Activity {
        self.activity.clone()
    }

    /// The stream inside.
    pub fn get_ref(&self) -> &T {
        &self.io
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
