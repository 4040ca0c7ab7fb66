//! `GET /events`: server-sent events (SPEC section 8). One `exchange`
//! event per recorded exchange, its `id` the exchange's and its data the
//! recording's JSON line; one `rules` event (the `GET /rules` answer, no
//! `id`) at the start and after each change of the rules, a flag or the
//! scenario. A client that reconnects with `Last-Event-ID: N` gets every
//! exchange after N that is still in memory (the last 10,000, at most 64
//! MiB of them), then the new ones: none lost, none twice. Without it the
//! stream starts with the new exchanges, or after `?since=N` (`since=0`:
//! all those in memory).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use super::routes::{error, rules};
use super::{Answer, State};
use crate::record::Record;

/// A comment line this often keeps proxies and browsers from closing an
/// idle stream.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// Events buffered for a slow reader before the producer waits.
const BUFFER: usize = 256;

pub(super) fn events(state: &Arc<State>, req: &Request<Incoming>) -> Answer {
    let since = match start(req) {
        Ok(since) => since,
        Err(detail) => return error(StatusCode::BAD_REQUEST, "bad_request", &detail),
    };
    let (tx, rx) = mpsc::channel(BUFFER);
    tokio::spawn(produce(state.clone(), since, tx));
    let mut res = Response::new(Stream(rx).boxed());
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

/// Where the stream starts: after `Last-Event-ID`, else after `?since=`,
/// else with the next exchange (`None`).
fn start(req: &Request<Incoming>) -> Result<Option<u64>, String> {
    if let Some(value) = req.headers().get("last-event-id") {
        let text = value.to_str().unwrap_or("").trim();
        if text.is_empty() {
            return Ok(Some(0));
        }
        return text
            .parse()
            .map(Some)
            .map_err(|_| format!("Last-Event-ID `{text}`: an exchange id is expected"));
    }
    for pair in req.uri().query().unwrap_or("").split('&') {
        if let Some(value) = pair.strip_prefix("since=") {
            return value
                .parse()
                .map(Some)
                .map_err(|_| format!("`since={value}`: an exchange id is expected"));
        }
    }
    Ok(None)
}

/// Writes events into `tx` until the client goes away.
async fn produce(state: Arc<State>, since: Option<u64>, tx: mpsc::Sender<Bytes>) {
    let mut rule_changes = state.proxy.follow_rules();
    let recorder = state.proxy.recorder().clone();
    let (kept, mut feed) = recorder.follow(since.unwrap_or(u64::MAX));
    let mut last = since.unwrap_or(0);
    if tx
        .send(Bytes::from_static(b"retry: 1000\n\n"))
        .await
        .is_err()
        || tx.send(rules_event(&state)).await.is_err()
    {
        return;
    }
    if send_kept(&tx, kept, &mut last).await.is_err() {
        return;
    }
    let mut keepalive = tokio::time::interval(KEEPALIVE);
    keepalive.tick().await;
    loop {
        let event = tokio::select! {
            () = tx.closed() => return,
            received = feed.recv() => match received {
                Ok(record) if record.id > last => {
                    last = record.id;
                    exchange_event(&record)
                }
                Ok(_) => continue,
                Err(RecvError::Lagged(_)) => {
                    // Fell behind the feed: catch up from the ring.
                    let (kept, fresh) = recorder.follow(last);
                    feed = fresh;
                    if send_kept(&tx, kept, &mut last).await.is_err() {
                        return;
                    }
                    continue;
                }
                Err(RecvError::Closed) => return,
            },
            changed = rule_changes.recv() => match changed {
                Ok(()) | Err(RecvError::Lagged(_)) => rules_event(&state),
                Err(RecvError::Closed) => return,
            },
            _ = keepalive.tick() => Bytes::from_static(b": keep-alive\n\n"),
        };
        if tx.send(event).await.is_err() {
            return;
        }
    }
}

/// Sends exchanges read from the ring, noting the last id sent; an error
/// means the client went away.
async fn send_kept(
    tx: &mpsc::Sender<Bytes>,
    kept: Vec<Arc<Record>>,
    last: &mut u64,
) -> Result<(), mpsc::error::SendError<Bytes>> {
    for record in kept {
        *last = record.id;
        tx.send(exchange_event(&record)).await?;
    }
    Ok(())
}

fn exchange_event(record: &Record) -> Bytes {
    let json = serde_json::to_string(record).unwrap_or_else(|_| "{}".to_string());
    Bytes::from(format!(
        "id: {}\nevent: exchange\ndata: {json}\n\n",
        record.id
    ))
}

fn rules_event(state: &State) -> Bytes {
    Bytes::from(format!("event: rules\ndata: {}\n\n", rules(state)))
}

/// The response body: the events as they come.
struct Stream(mpsc::Receiver<Bytes>);

impl Body for Stream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|event| event.map(|e| Ok(Frame::data(e))))
    }
}
