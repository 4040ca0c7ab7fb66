//! The one body type that flows through the proxy in both directions: a
//! streamed body from a peer, a small body the proxy made, or none. An enum
//! rather than a boxed trait object: no allocation or dynamic call per frame.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

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
    Broken(Option<Bytes>, Option<hyper::Error>),
    /// A streamed body whose bytes are counted as they pass (a request body
    /// when recording).
    Counted(Incoming, Arc<AtomicU64>),
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

impl From<Incoming> for Body {
    fn from(body: Incoming) -> Self {
        Self::Incoming(body)
    }
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            Self::Empty => Poll::Ready(None),
            Self::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Self::Incoming(body) => Pin::new(body).poll_frame(cx),
            Self::Resumed(head, rest) => match head.take() {
                Some(bytes) => Poll::Ready(Some(Ok(Frame::data(bytes)))),
                None => Pin::new(rest).poll_frame(cx),
            },
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
                polled
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
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Empty => SizeHint::with_exact(0),
            Self::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Self::Incoming(body) | Self::Counted(body, _) => body.size_hint(),
            Self::Broken(..) => SizeHint::new(),
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
