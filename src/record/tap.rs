//! `Tap` wraps a response body on its way to the client: it counts what
//! passes, keeps a copy of the first bytes (never the whole body), and hands
//! the exchange to the recorder when the body ends, fails, or is dropped
//! because the client went away.
//!
//! When recording to a file, the response's end reaches the client only
//! after the recorder has written the exchange's line, so a client that has
//! the whole response can count on it being in the recording. A response
//! that is complete when its headers arrive (most small ones) is recorded
//! before it is handed on (`read_ahead`), so it still goes out in one
//! write; a streamed one has its last frame held back.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use tokio::sync::oneshot;

use super::{BodyEnd, Exchange, Finished, Recorder};

/// A response body that reports its end to the recorder.
#[derive(Debug)]
pub struct Tap<B: Body> {
    inner: B,
    open: Option<Box<Open>>,
    /// A frame read ahead (`read_ahead`), or the last frame held until
    /// `written` fires.
    held: Option<Frame<Bytes>>,
    /// An error read ahead, sent after `held`.
    failed: Option<B::Error>,
    written: Option<oneshot::Receiver<()>>,
}

#[derive(Debug)]
struct Open {
    exchange: Exchange,
    recorder: Arc<Recorder>,
    capture: BytesMut,
    limit: usize,
    bytes: u64,
}

/// The `error` of an exchange whose client left before the body's end.
pub const CLIENT_CLOSED: &str = "client_closed";

/// A body error's code for the recording's `error` field.
pub trait BodyFailure {
    fn code(&self) -> &'static str;
}

impl<B: Body> Tap<B> {
    /// Notes why the body ended early, unless a reason is already known.
    fn broke_off(&mut self, code: &'static str) {
        if let Some(open) = &mut self.open
            && open.exchange.body_error.is_none()
        {
            open.exchange.body_error = Some(code);
        }
    }

    /// Wraps `inner`; `exchange` goes to `recorder` exactly once, with the
    /// first `capture` bytes of the body.
    pub fn new(inner: B, exchange: Exchange, recorder: Arc<Recorder>, capture: usize) -> Self {
        Self {
            inner,
            open: Some(Box::new(Open {
                exchange,
                recorder,
                capture: BytesMut::new(),
                limit: capture,
                bytes: 0,
            })),
            held: None,
            failed: None,
            written: None,
        }
    }

    /// Wraps `inner` without an exchange to close (the answer to a CONNECT,
    /// which is not an exchange of its own).
    pub fn plain(inner: B) -> Self {
        Self {
            inner,
            open: None,
            held: None,
            failed: None,
            written: None,
        }
    }

    /// Hands the exchange over; returns the signal of its line being
    /// written when `wait` and the recorder writes a file.
    fn finish(&mut self, is_complete: bool, wait: bool) -> Option<oneshot::Receiver<()>> {
        let open = *self.open.take()?;
        let finished = Finished {
            elapsed: open.exchange.started.elapsed(),
            exchange: open.exchange,
            end: BodyEnd {
                bytes: open.bytes,
                is_complete,
            },
            body: open.capture.freeze(),
        };
        if wait && open.recorder.is_recording() {
            let (tx, rx) = oneshot::channel();
            open.recorder.submit(finished, Some(tx));
            Some(rx)
        } else {
            open.recorder.submit(finished, None);
            None
        }
    }
}

impl<B> Tap<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Unpin + BodyFailure,
{
    /// Takes what the body has ready now, without waiting for more. When
    /// that is the whole body (a small response arrives with its headers),
    /// the exchange is recorded before the response is handed on, so the
    /// client gets headers and body in one write rather than the body's
    /// end held back after the headers went out. Only when recording to a
    /// file, where that holding back happens.
    pub async fn read_ahead(&mut self) {
        let Some(open) = &self.open else { return };
        if !open.recorder.is_recording() {
            return;
        }
        let polled =
            std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut self.inner).poll_frame(cx))).await;
        let written = match polled {
            // Nothing yet: the body streams, and its end is held as usual.
            Poll::Pending => return,
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(open), Some(data)) = (&mut self.open, frame.data_ref()) {
                    open.see(data);
                }
                self.held = Some(frame);
                if !self.inner.is_end_stream() {
                    return;
                }
                self.finish(true, true)
            }
            Poll::Ready(Some(Err(err))) => {
                self.broke_off(err.code());
                self.failed = Some(err);
                self.finish(false, false);
                return;
            }
            Poll::Ready(None) => self.finish(true, true),
        };
        if let Some(written) = written {
            // An error means the recorder is gone: nothing more to wait for.
            let _ = written.await;
        }
    }
}

impl Open {
    fn see(&mut self, data: &Bytes) {
        self.bytes += data.len() as u64;
        let room = self.limit.saturating_sub(self.capture.len());
        if room > 0 {
            self.capture
                .extend_from_slice(&data[..room.min(data.len())]);
        }
    }
}

impl<B> Body for Tap<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Unpin + BodyFailure,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        if let Some(written) = &mut this.written {
            // An error means the recorder is gone: nothing more to wait for.
            let _ = ready!(Pin::new(written).poll(cx));
            this.written = None;
            return Poll::Ready(this.held.take().map(Ok));
        }
        // What `read_ahead` took: a frame, then an error.
        if let Some(frame) = this.held.take() {
            return Poll::Ready(Some(Ok(frame)));
        }
        if let Some(err) = this.failed.take() {
            return Poll::Ready(Some(Err(err)));
        }
        let polled = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        match polled {
            Some(Ok(frame)) => {
                if let (Some(open), Some(data)) = (&mut this.open, frame.data_ref()) {
                    open.see(data);
                }
                if this.inner.is_end_stream()
                    && let Some(written) = this.finish(true, true)
                {
                    this.held = Some(frame);
                    this.written = Some(written);
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(err)) => {
                this.broke_off(err.code());
                this.finish(false, false);
                Poll::Ready(Some(Err(err)))
            }
            None => {
                if let Some(written) = this.finish(true, true) {
                    this.written = Some(written);
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.held.is_none()
            && self.failed.is_none()
            && self.written.is_none()
            && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        match &self.held {
            Some(frame) => {
                let len = frame.data_ref().map_or(0, |d| d.len() as u64);
                let inner = self.inner.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(inner.lower() + len);
                if let Some(upper) = inner.upper() {
                    hint.set_upper(upper + len);
                }
                hint
            }
            None => self.inner.size_hint(),
        }
    }
}

impl<B: Body> Drop for Tap<B> {
    fn drop(&mut self) {
        // Bodies hyper never polls (HEAD, 204, 304, empty) end here too; they
        // are complete when nothing more was due.
        let is_complete = self.inner.is_end_stream();
        if !is_complete {
            self.broke_off(CLIENT_CLOSED);
        }
        self.finish(is_complete, false);
    }
}
