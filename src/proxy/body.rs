//! The one body type that flows through the proxy in both directions: a
//! streamed body from a peer, a small body the proxy made, or none. An enum
//! rather than a boxed trait object: no allocation or dynamic call per frame.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;

/// A request or response body.
#[derive(Debug)]
pub enum Body {
    /// No body at all.
    Empty,
    /// A body the proxy made itself; `None` once sent.
    Full(Option<Bytes>),
    /// A body streamed from the client or the upstream, frame by frame.
    Incoming(Incoming),
    /// A streamed body whose first bytes were already read (and are sent
    /// first): a `token_ttl` answer too large to rewrite.
    Resumed(Option<Bytes>, Incoming),
    /// The first bytes of a body whose stream then failed: they are sent,
    /// then the error, so the client learns the body is incomplete.
    Broken(Option<Bytes>, Option<BodyError>),
    /// A streamed body whose bytes are counted as they pass (a request body
    /// when recording).
    Counted(Incoming, Arc<AtomicU64>),
    /// A streamed body that fails when its sender stalls too long.
    Guarded(Box<Guarded>),
}

/// Why a body ended before its end.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error(transparent)]
    Hyper(#[from] hyper::Error),
    #[error("{sender} sent no body bytes for {}s; the body is cut off", .after.as_secs_f64())]
    Stalled {
        sender: &'static str,
        after: Duration,
    },
}

impl crate::record::tap::BodyFailure for BodyError {
    /// The recording's `error`: the upstream broke the body off, or went
    /// silent past `--upstream-timeout`.
    fn code(&self) -> &'static str {
        match self {
            Self::Hyper(_) => "upstream_protocol",
            Self::Stalled { .. } => "upstream_timeout",
        }
    }
}

/// A body whose sender must send something at least every `limit`.
#[derive(Debug)]
pub struct Guarded {
    inner: Body,
    limit: Duration,
    sender: &'static str,
    /// Armed while the inner body is pending.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    is_waiting: bool,
}

impl Body {
    /// A complete body made by the proxy.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        if bytes.is_empty() {
            Self::Empty
        } else {
            Self::Full(Some(bytes))
        }
    }
}

impl Body {
    /// The same body, failing when `sender` (named in the error) stalls for
    /// `limit` mid-body. Bodies the proxy made, and streams already at their
    /// end (a GET's), pass as they are: no timer, no allocation.
    #[must_use]
    pub fn guarded(self, limit: Duration, sender: &'static str) -> Self {
        if self.is_end_stream() {
            return self;
        }
        match self {
            Self::Incoming(_) | Self::Counted(..) | Self::Resumed(..) => {
                Self::Guarded(Box::new(Guarded {
                    inner: self,
                    limit,
                    sender,
                    timer: None,
                    is_waiting: false,
                }))
            }
            other => other,
        }
    }
}

impl Guarded {
    fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                self.is_waiting = false;
                Poll::Ready(frame)
            }
            Poll::Pending => {
                if !self.is_waiting {
                    self.is_waiting = true;
                    let deadline = tokio::time::Instant::now() + self.limit;
                    match &mut self.timer {
                        Some(timer) => timer.as_mut().reset(deadline),
                        None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
                    }
                }
                let is_due = self
                    .timer
                    .as_mut()
                    .is_some_and(|timer| timer.as_mut().poll(cx).is_ready());
                if is_due {
                    Poll::Ready(Some(Err(BodyError::Stalled {
                        sender: self.sender,
                        after: self.limit,
                    })))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

impl From<Incoming> for Body {
    fn from(body: Incoming) -> Self {
        Self::Incoming(body)
    }
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let hyper_frame = |polled: Poll<Option<Result<Frame<Bytes>, hyper::Error>>>| {
            polled.map(|f| f.map(|r| r.map_err(BodyError::from)))
        };
        match self.get_mut() {
            Self::Empty => Poll::Ready(None),
            Self::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Self::Incoming(body) => hyper_frame(Pin::new(body).poll_frame(cx)),
            Self::Resumed(head, rest) => match head.take() {
                Some(bytes) => Poll::Ready(Some(Ok(Frame::data(bytes)))),
                None => hyper_frame(Pin::new(rest).poll_frame(cx)),
            },
            Self::Guarded(guarded) => guarded.poll_frame(cx),
            Self::Broken(head, error) => match head.take() {
                Some(bytes) => Poll::Ready(Some(Ok(Frame::data(bytes)))),
                None => Poll::Ready(error.take().map(Err)),
            },
            Self::Counted(body, count) => {
                let polled = Pin::new(body).poll_frame(cx);
                if let Poll::Ready(Some(Ok(frame))) = &polled
                    && let Some(data) = frame.data_ref()
                {
                    count.fetch_add(data.len() as u64, Ordering::Relaxed);
                }
                hyper_frame(polled)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Empty => true,
            Self::Full(bytes) => bytes.is_none(),
            Self::Incoming(body) | Self::Counted(body, _) => body.is_end_stream(),
            Self::Resumed(head, rest) => head.is_none() && rest.is_end_stream(),
            Self::Broken(head, error) => head.is_none() && error.is_none(),
            Self::Guarded(guarded) => guarded.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Empty => SizeHint::with_exact(0),
            Self::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Self::Incoming(body) | Self::Counted(body, _) => body.size_hint(),
            Self::Broken(..) => SizeHint::new(),
            Self::Guarded(guarded) => guarded.inner.size_hint(),
            Self::Resumed(head, rest) => {
                let extra = head.as_ref().map_or(0, |b| b.len() as u64);
                let inner = rest.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(inner.lower() + extra);
                if let Some(upper) = inner.upper() {
                    hint.set_upper(upper + extra);
                }
                hint
            }
        }
    }
}
