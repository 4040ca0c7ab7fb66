//! CONNECT: answer 200, then look at the first bytes the client sends. A TLS
//! ClientHello for an intercepted host is answered with a leaf for its SNI
//! name and the decrypted stream is served as HTTP/2 or HTTP/1.1, as ALPN
//! says; passthrough hosts and anything that is not TLS are tunnelled byte
//! for byte.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::uri::Authority;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::upgrade::Upgraded;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::LazyConfigAcceptor;

use super::Shared;
use super::body::Body;
use super::error::ProxyError;
use super::exchange::{self, Origin};
use super::io::{Prefixed, Watched};
use super::listener::drive;
use crate::record::Tap;

/// How long to wait for the client's first bytes before deciding the stream
/// is not TLS (a protocol where the server speaks first) and tunnelling it.
const FIRST_BYTES_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The first byte of a TLS handshake record (RFC 8446 §5.1, ContentType 22).
const TLS_HANDSHAKE: u8 = 0x16;

/// Where a CONNECT asked to go.
#[derive(Debug)]
pub(crate) struct Tunnel {
    /// The host, without brackets for IPv6 literals.
    pub host: Box<str>,
    pub port: u16,
    /// `host` or `host:port` as it goes into an `https://` URL.
    pub authority: Authority,
}

/// Answers one CONNECT request.
pub(crate) async fn handle(
    shared: &Arc<Shared>,
    mut req: Request<Incoming>,
    client: SocketAddr,
) -> Response<Tap<Body>> {
    if let Err(err) = exchange::check_plain(shared, &req) {
        return refuse(&req, client, err);
    }
    let tunnel = match parse_target(&req) {
        Ok(tunnel) => Arc::new(tunnel),
        Err(err) => return refuse(&req, client, err),
    };
    if shared.is_self(&tunnel.host, tunnel.port) {
        return refuse(&req, client, ProxyError::LoopDetected);
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    let is_passthrough = shared.config.passthrough.is_match(&tunnel.host)
        || !shared.config.intercept.is_match(&tunnel.host);

    if is_passthrough {
        // Connect first, so the client learns of a dead upstream from a 502
        // rather than from a tunnel that closes at once.
        let upstream = match shared.upstream.connect_tcp(&tunnel.host, tunnel.port).await {
            Ok(upstream) => upstream,
            Err(err) => return refuse(&req, client, err),
        };
        // The tunnel outlives the plain connection it came from.
        let open = super::Open::new(shared);
        shared.tasks.spawn(async move {
            let _open = open;
            match on_upgrade.await {
                Ok(upgraded) => splice(TokioIo::new(upgraded), upstream, &tunnel).await,
                Err(err) => tracing::debug!(%client, "CONNECT upgrade failed: {err}"),
            }
        });
    } else {
        let task_shared = shared.clone();
        let open = super::Open::new(shared);
        shared.tasks.spawn(async move {
            let _open = open;
            match on_upgrade.await {
                Ok(upgraded) => intercept(task_shared, upgraded, tunnel, client).await,
                Err(err) => tracing::debug!(%client, "CONNECT upgrade failed: {err}"),
            }
        });
    }
    Response::new(Tap::plain(Body::Empty))
}

fn refuse(req: &Request<Incoming>, client: SocketAddr, err: ProxyError) -> Response<Tap<Body>> {
    let (status, code) = err.status_and_code();
    tracing::warn!(%client, "CONNECT {} refused: {} {code}: {err}", req.uri(), status.as_u16());
    err.to_response().map(Tap::plain)
}

fn parse_target(req: &Request<Incoming>) -> Result<Tunnel, ProxyError> {
    let target = super::target::connect_target(req.uri())?;
    Ok(Tunnel {
        host: target.host,
        port: target.port,
        authority: target.authority,
    })
}

/// Peeks at the decrypted side of the tunnel and intercepts TLS.
async fn intercept(
    shared: Arc<Shared>,
    upgraded: Upgraded,
    tunnel: Arc<Tunnel>,
    client: SocketAddr,
) {
    let io = match upgraded.downcast::<TokioIo<Watched<TcpStream>>>() {
        Ok(parts) => Prefixed::new(parts.read_buf, parts.io.into_inner()),
        Err(upgraded) => {
            // Only reachable if the plain listener served another IO type.
            tracing::error!(%client, "CONNECT stream of an unexpected type; tunnelling it");
            return tunnel_after_connect(&shared, TokioIo::new(upgraded), &tunnel).await;
        }
    };
    // Taken and given back rather than borrowed: a borrowed local is kept
    // in this task for the connection's life.
    let (io, first) = first_byte(io).await;
    if first != Some(TLS_HANDSHAKE) {
        return tunnel_after_connect(&shared, io, &tunnel).await;
    }
    if let Err(err) = terminate_tls(&shared, io, &tunnel, client).await {
        tracing::debug!(%client, host = %tunnel.host, "intercepted connection ended: {err}");
    }
}

/// The first byte the client sends, without consuming it; `None` when it
/// sends nothing within `FIRST_BYTES_TIMEOUT` or closes.
async fn first_byte(
    io: Prefixed<Watched<TcpStream>>,
) -> (Prefixed<Watched<TcpStream>>, Option<u8>) {
    if let Some(&byte) = io.prefix().first() {
        return (io, Some(byte));
    }
    let mut buf = [0u8; 1];
    let peeked =
        tokio::time::timeout(FIRST_BYTES_TIMEOUT, io.get_ref().get_ref().peek(&mut buf)).await;
    let first = match peeked {
        Ok(Ok(1)) => Some(buf[0]),
        _ => None,
    };
    (io, first)
}

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The handshake with the client: a leaf for the name it asked for (its
/// SNI, else the CONNECT host).
async fn accept_tls(
    shared: &Shared,
    io: Prefixed<Watched<TcpStream>>,
    tunnel: &Tunnel,
) -> Result<tokio_rustls::server::TlsStream<Prefixed<Watched<TcpStream>>>, Error> {
    let acceptor = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), io);
    let start = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor).await??;
    let name = start
        .client_hello()
        .server_name()
        .map_or_else(|| tunnel.host.to_string(), str::to_owned);
    let config = shared.leaves.server_config(&name)?;
    Ok(tokio::time::timeout(HANDSHAKE_TIMEOUT, start.into_stream(config)).await??)
}

async fn terminate_tls(
    shared: &Arc<Shared>,
    io: Prefixed<Watched<TcpStream>>,
    tunnel: &Arc<Tunnel>,
    client: SocketAddr,
) -> Result<(), Error> {
    let activity = io.get_ref().activity();
    // This task lives as long as the connection, idle or not, so what is
    // only needed to set the connection up stays inside this block: a
    // local in scope at the `drive` below would be kept in the task for
    // the connection's life, even when moved out (the builders and the
    // TLS stream were 1.6 KiB of each idle connection).
    let conn = {
        // Boxed, so the handshake's state is freed once it is done.
        let tls = Box::pin(accept_tls(shared, io, tunnel)).await?;
        let is_h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        let origin = Origin::Tunnel(tunnel.clone());
        let service = {
            let shared = shared.clone();
            service_fn(move |req: Request<Incoming>| {
                let shared = shared.clone();
                let origin = origin.clone();
                async move { Ok::<_, Infallible>(exchange::handle(&shared, req, origin, client).await) }
            })
        };
        let io = TokioIo::new(tls);
        if is_h2 {
            let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
            builder
                .timer(TokioTimer::new())
                .max_header_list_size(header_list_limit(shared))
                .max_concurrent_streams(shared.config.limits.max_streams)
                .initial_stream_window_size(super::upstream::H2_STREAM_WINDOW)
                .initial_connection_window_size(super::upstream::H2_CONNECTION_WINDOW)
                .max_frame_size(super::upstream::H2_MAX_FRAME);
            Decrypted::H2(Box::pin(builder.serve_connection(io, service)))
        } else {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(shared.config.limits.header_timeout);
            Decrypted::H1(Box::pin(
                builder.serve_connection(io, service).with_upgrades(),
            ))
        }
    };
    match conn {
        Decrypted::H2(conn) => drive(conn, shared, activity, |c| c.graceful_shutdown()).await?,
        Decrypted::H1(conn) => drive(conn, shared, activity, |c| c.graceful_shutdown()).await?,
    }
    Ok(())
}

/// The decrypted stream's HTTP connection, as ALPN agreed.
enum Decrypted<H2, H1> {
    H2(H2),
    H1(H1),
}

/// HTTP/2's own header limit sits above ours, so our 431 answers first.
fn header_list_limit(shared: &Shared) -> u32 {
    u32::try_from(shared.config.max_header_bytes.saturating_mul(2)).unwrap_or(u32::MAX)
}

async fn tunnel_after_connect<T>(shared: &Shared, client_io: T, tunnel: &Tunnel)
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    match shared.upstream.connect_tcp(&tunnel.host, tunnel.port).await {
        Ok(upstream) => splice(client_io, upstream, tunnel).await,
        Err(err) => tracing::warn!(host = %tunnel.host, "tunnel not opened: {err}"),
    }
}

/// Copies bytes both ways until both sides are done.
async fn splice<T>(mut client_io: T, mut upstream: TcpStream, tunnel: &Tunnel)
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    match tokio::io::copy_bidirectional(&mut client_io, &mut upstream).await {
        Ok((up, down)) => tracing::debug!(
            host = %tunnel.host,
            "tunnel closed after {up} bytes up, {down} bytes down"
        ),
        Err(err) => tracing::debug!(host = %tunnel.host, "tunnel broken: {err}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future `f` returns, without calling it.
    fn future_size<A, B, C, D, F: Future>(_f: impl Fn(A, B, C, D) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Each idle intercepted connection keeps this future for its whole
    /// life (5,000 of them are a benchmark scenario). It was 2,952 bytes
    /// (debug build) while the set-up's builders, streams and a thrice-held
    /// idle timer stayed in it; 952 now.
    #[test]
    fn an_intercepted_connection_keeps_a_small_task() {
        let size = future_size(intercept);
        assert!(size <= 1_536, "the intercepting task is {size} bytes");
    }
}
