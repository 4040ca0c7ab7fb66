//! The accept loop, the plain HTTP/1.1 connection every client opens first,
//! and the drain on shutdown: connections finish their in-flight exchange,
//! idle ones close.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};

use super::io::{Activity, Watched};
use super::{Shared, connect, exchange};

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
        match shared.connections.clone().try_acquire_owned() {
            Ok(permit) => {
                let stream = Watched::new(stream, permit);
                shared.tasks.spawn(serve(shared.clone(), stream, client));
            }
            Err(_) => {
                shared
                    .tasks
                    .spawn(turn_away(shared.clone(), stream, client));
            }
        }
    }
}

/// Answers a connection over `--max-connections` with the proxy's JSON
/// `503 too_many_connections` (its request read first, so the close does
/// not reset it) and closes it.
async fn turn_away(shared: Arc<Shared>, stream: TcpStream, client: SocketAddr) {
    let limit = shared.config.limits.max_connections;
    tracing::warn!(%client, "over --max-connections ({limit}): answered 503");
    let service = service_fn(move |_req: Request<Incoming>| async move {
        Ok::<_, Infallible>(super::error::ProxyError::TooManyConnections { limit }.to_response())
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(TURN_AWAY_TIME)
        .keep_alive(false);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    if let Err(err) = tokio::time::timeout(TURN_AWAY_TIME, conn).await {
        tracing::debug!(%client, "503 not delivered: {err}");
    }
}

/// How long a turned-away connection is served.
const TURN_AWAY_TIME: Duration = Duration::from_secs(1);

/// Serves the plain connection: absolute-form requests and CONNECT.
async fn serve(shared: Arc<Shared>, stream: Watched<TcpStream>, client: SocketAddr) {
    let _open = super::Open::new(&shared);
    let activity = stream.activity();
    // Set-up stays in this block, so that nothing but the connection is
    // kept in the task while it is served (see `terminate_tls`).
    let conn = {
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
            .header_read_timeout(shared.config.limits.header_timeout);
        Box::pin(
            builder
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades(),
        )
    };
    if let Err(err) = drive(conn, &shared, activity, |c| c.graceful_shutdown()).await {
        tracing::debug!(%client, "client connection ended: {err}");
    }
}

/// Runs a connection to its end; on shutdown, or once it has been `idle`,
/// asks it to finish the exchange in flight and close.
/// `drain` is the connection's own `graceful_shutdown`.
///
/// The connection comes boxed: held inline, hyper's connection state sits
/// in every future that awaits this one, once as an argument and once as a
/// local, and the intercepting task grew to 30 KiB per connection.
///
/// The watchdogs are made here rather than passed in, so that each is held
/// once, in the `select!` (passed in, an idle timer was kept three times).
pub(crate) async fn drive<C: Future>(
    mut conn: Pin<Box<C>>,
    shared: &Shared,
    activity: Activity,
    drain: impl FnOnce(Pin<&mut C>),
) -> C::Output {
    tokio::select! {
        res = conn.as_mut() => return res,
        () = shared.shutdown.cancelled() => {}
        () = activity.idle_for(shared.config.limits.idle_timeout) => {}
    }
    drain(conn.as_mut());
    conn.await
}
