//! `Tap` wraps a response body on its way to the client: it counts what
//! passes, never holds it, and closes the exchange when the body ends, fails,
//! or is dropped because the client went away.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::{BodyEnd, Exchange};

/// A response body that reports its end to its exchange.
#[derive(Debug)]
pub struct Tap<B: Body> {
    inner: B,
    exchange: Option<Exchange>,
    bytes: u64,
}

impl<B: Body> Tap<B> {
    /// Wraps `inner`; `exchange` is finished exactly once.
    pub fn new(inner: B, exchange: Exchange) -> Self {
        Self {
            inner,
            exchange: Some(exchange),
            bytes: 0,
        }
    }

    /// Wraps `inner` without an exchange to close (the answer to a CONNECT,
    /// which is not an exchange of its own).
    pub fn plain(inner: B) -> Self {
        Self {
            inner,
            exchange: None,
            bytes: 0,
        }
    }

    fn finish(&mut self, is_complete: bool) {
        if let Some(exchange) = self.exchange.take() {
            exchange.finish(BodyEnd {
                bytes: self.bytes,
                is_complete,
            });
        }
    }
}

impl<B> Body for Tap<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes += data.len() as u64;
                }
                if this.inner.is_end_stream() {
                    this.finish(true);
                }
            }
            Poll::Ready(Some(Err(_))) => this.finish(false),
            Poll::Ready(None) => this.finish(true),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B: Body> Drop for Tap<B> {
    fn drop(&mut self) {
        // Bodies hyper never polls (HEAD, 204, 304, empty) end here too; they
        // are complete when nothing more was due.
        let is_complete = self.inner.is_end_stream();
        self.finish(is_complete);
    }
}
