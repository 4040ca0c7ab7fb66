//! The admin API (SPEC section 8): JSON over HTTP on `--admin`, to switch
//! scenarios and rules while the proxy serves, read the verdicts, page
//! through recent exchanges, scrape metrics and fetch the CA. `routes` maps
//! each call to the proxy's state; this module listens and checks the
//! admin token.

mod events;
mod routes;
mod ui;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::proxy::Handle;

/// `--admin-token`: the bearer token every call but `/healthz` needs.
#[derive(Clone)]
pub struct AdminToken(Vec<u8>);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

impl AdminToken {
    /// A token; `None` when empty.
    pub fn new(token: &str) -> Option<Self> {
        (!token.is_empty()).then(|| Self(token.as_bytes().to_vec()))
    }

    /// Whether `req` carries `Authorization: Bearer <token>`, compared in
    /// constant time.
    fn admits<B>(&self, req: &Request<B>) -> bool {
        use subtle::ConstantTimeEq;
        let Some(value) = req.headers().get(header::AUTHORIZATION) else {
            return false;
        };
        let Some((scheme, token)) = value.to_str().ok().and_then(|v| v.trim().split_once(' '))
        else {
            return false;
        };
        scheme.eq_ignore_ascii_case("bearer") && bool::from(token.trim().as_bytes().ct_eq(&self.0))
    }
}

/// Why the admin API could not start.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot listen for the admin API on {addr}: {source}; pick another with --admin ADDR, or --admin off"
)]
pub struct StartError {
    addr: SocketAddr,
    #[source]
    source: std::io::Error,
}

/// A serving admin API; `stop` ends it.
pub struct Admin {
    local_addr: SocketAddr,
    stop: CancellationToken,
    tasks: TaskTracker,
}

struct State {
    proxy: Handle,
    token: Option<AdminToken>,
    seed: u64,
}

impl Admin {
    /// Binds `addr` and serves the admin API for `proxy`.
    pub async fn start(
        addr: SocketAddr,
        proxy: Handle,
        token: Option<AdminToken>,
        seed: u64,
    ) -> Result<Self, StartError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| StartError { addr, source })?;
        let state = Arc::new(State { proxy, token, seed });
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        tasks.spawn(accept(listener, state, stop.clone(), tasks.clone()));
        Ok(Self {
            local_addr,
            stop,
            tasks,
        })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting and closes its connections.
    pub async fn stop(self) {
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

async fn accept(
    listener: TcpListener,
    state: Arc<State>,
    stop: CancellationToken,
    tasks: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let state = state.clone();
        let stop = stop.clone();
        tasks.spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(&state, req).await) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                () = stop.cancelled() => {}
            }
        });
    }
}

/// The admin API's answers: JSON, or text where the format is fixed.
pub(crate) type Answer = Response<http_body_util::combinators::BoxBody<Bytes, Infallible>>;

async fn handle(state: &Arc<State>, req: Request<Incoming>) -> Answer {
    if req.method() == http::Method::GET && ui::is_asset(req.uri().path()) {
        return ui::asset(req.uri().path());
    }
    if req.uri().path() != "/healthz"
        && let Some(token) = &state.token
        && !token.admits(&req)
    {
        let mut res = routes::error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this admin API needs `Authorization: Bearer <token>` (the --admin-token value)",
        );
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer realm=\"authfault admin\""),
        );
        return res;
    }
    routes::route(state, req).await
}
