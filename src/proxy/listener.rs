//! The accept loop, the plain HTTP/1.1 connection every client opens first,
//! and the drain on shutdown: connections finish their in-flight exchange,
//! idle ones close.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::{Shared, connect, exchange};

/// A client must send its request headers within this time.
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Accepts until shutdown; each connection is served in its own task.
pub(crate) async fn accept(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let accepted = tokio::select! {
            biased;
            () = shared.shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, client) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // EMFILE and friends pass; back off so the loop does not spin.
                tracing::warn!("accepting a connection failed: {err}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        shared.tasks.spawn(serve(shared.clone(), stream, client));
    }
}

/// Serves the plain connection: absolute-form requests and CONNECT.
async fn serve(shared: Arc<Shared>, stream: TcpStream, client: SocketAddr) {
    let _open = super::Open::new(&shared);
    let service = {
        let shared = shared.clone();
        service_fn(move |req: Request<Incoming>| {
            let shared = shared.clone();
            async move {
                let res = if req.method() == Method::CONNECT {
                    connect::handle(&shared, req, client).await
                } else {
                    exchange::handle(&shared, req, exchange::Origin::Plain, client).await
                };
                Ok::<_, Infallible>(res)
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let conn = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    if let Err(err) = drive(conn, &shared.shutdown, |c| c.graceful_shutdown()).await {
        tracing::debug!(%client, "client connection ended: {err}");
    }
}

/// Runs a connection to its end; on shutdown, asks it to finish the
/// exchange in flight and close.
/// `drain` is the connection's own `graceful_shutdown`.
pub(crate) async fn drive<C: Future>(
    conn: C,
    shutdown: &CancellationToken,
    drain: impl FnOnce(Pin<&mut C>),
) -> C::Output {
    let mut conn = pin!(conn);
    tokio::select! {
        res = conn.as_mut() => res,
        () = shutdown.cancelled() => {
            drain(conn.as_mut());
            conn.await
        }
    }
}
