//! One request from the client to the upstream and back. Every failure
//! becomes a response here; none reaches hyper.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use http::uri::{PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use super::body::Body;
use super::connect::Tunnel;
use super::error::ProxyError;
use super::{Shared, headers};
use crate::perturb::{self, Action, Applied, Synthetic};
use crate::record::{Credential, Exchange, Tap};
use crate::rules::set::{Choice, UnknownChoice};
use crate::verdict::Verdict;

/// How the request reached the proxy.
#[derive(Debug, Clone)]
pub(crate) enum Origin {
    /// On the plain listener, in absolute form (`GET http://host/path`).
    Plain,
    /// Decrypted from an intercepted CONNECT tunnel, in origin form.
    Tunnel(Arc<Tunnel>),
}

/// Carries one request through the stages: target, checks, rules, upstream,
/// response streamed back through the tap that hands it to the recorder.
pub(crate) async fn handle(
    shared: &Arc<Shared>,
    mut req: Request<Incoming>,
    origin: Origin,
    client: SocketAddr,
) -> Response<Tap<Body>> {
    let target = target_uri(shared, &req, &origin);
    let logged_uri = target.as_ref().unwrap_or(req.uri()).clone();
    let client_version = req.version();
    let mut exchange = Exchange::begin(req.method().clone(), logged_uri, client, client_version);
    let checked = match origin {
        Origin::Plain => check_plain(shared, &req),
        Origin::Tunnel(_) => check_header_size(shared, &req),
    };
    let uri = match checked.and(target) {
        Ok(uri) => uri,
        Err(err) => return answer(shared, exchange, err).await,
    };

    let is_upgrade = req.version() == Version::HTTP_11 && headers::is_upgrade(req.headers());
    let client_upgrade = is_upgrade.then(|| hyper::upgrade::on(&mut req));
    let req = forwardable(req, uri, is_upgrade);
    let (mut req, token_ttl) = match perturb(shared, req, &mut exchange) {
        Staged::Forward(req, token_ttl) => (req, token_ttl),
        Staged::Respond(synthetic) => {
            return respond(shared, exchange, synthetic, client_version).await;
        }
        Staged::Refuse(err) => return answer(shared, exchange, err).await,
    };
    if shared.recorder.is_recording() {
        exchange.request_headers = Some(req.headers().clone());
        let count = Arc::new(AtomicU64::new(0));
        if let Body::Incoming(body) = std::mem::replace(req.body_mut(), Body::Empty) {
            *req.body_mut() = Body::Counted(body, count.clone());
        }
        exchange.request_bytes = Some(count);
    }
    // A client that stalls mid-upload does not hold the upstream forever.
    let body = std::mem::replace(req.body_mut(), Body::Empty);
    *req.body_mut() = body.guarded(shared.config.limits.idle_timeout, "the client");

    let authority = req.uri().authority().cloned();
    let authority_str = authority.as_ref().map_or("", |a| a.as_str());
    let sent = Instant::now();
    let mut res = match shared.upstream.send(req, authority_str, is_upgrade).await {
        Ok(res) => res,
        Err(err) => return answer(shared, exchange, err).await,
    };
    exchange.upstream_elapsed = Some(sent.elapsed());
    exchange.upstream_version = Some(res.version());
    if let Some(client_upgrade) = client_upgrade
        && res.status() == StatusCode::SWITCHING_PROTOCOLS
    {
        let upstream_upgrade = hyper::upgrade::on(&mut res);
        shared.tasks.spawn(splice_upgrade(
            client_upgrade,
            upstream_upgrade,
            authority_str.to_string(),
        ));
    }

    let (mut parts, body) = res.into_parts();
    headers::remove_hop_by_hop(
        &mut parts.headers,
        parts.status == StatusCode::SWITCHING_PROTOCOLS,
    );
    parts.version = client_version;
    let body = match token_ttl {
        Some(expires_in) => rewrite_token_ttl(&mut parts, body, expires_in).await,
        None => Body::Incoming(body),
    }
    // An upstream that stalls mid-body is cut off, and the client told.
    .guarded(shared.config.upstream.timeout, "the upstream");
    exchange.status = Some(parts.status);
    tap(shared, Response::from_parts(parts, body), exchange).await
}

/// Sends the response through a tap that records `exchange`, keeping what
/// the recorder and the verdict need: headers, and the body's first bytes.
async fn tap(shared: &Shared, res: Response<Body>, mut exchange: Exchange) -> Response<Tap<Body>> {
    let recorder = &shared.recorder;
    let needs_body = exchange
        .expectation
        .as_ref()
        .is_some_and(|e| e.needs_body());
    let capture = if recorder.is_recording() {
        recorder.body_limit()
    } else {
        0
    };
    // A body regex needs the body even when bodies are not recorded.
    let capture = if needs_body {
        capture.max(crate::record::DEFAULT_BODY_LIMIT)
    } else {
        capture
    };
    if recorder.is_recording() || exchange.expectation.is_some() {
        exchange.response_headers = Some(res.headers().clone());
    }
    let (parts, body) = res.into_parts();
    let mut tap = Tap::new(body, exchange, recorder.clone(), capture);
    tap.read_ahead().await;
    Response::from_parts(parts, tap)
}

/// What the rules made of a request.
enum Staged {
    /// Forward it; with `Some`, rewrite `expires_in` in the answer.
    Forward(Request<Body>, Option<i64>),
    /// Answer at once (`respond`).
    Respond(Synthetic),
    /// Answer with an error (an unknown per-request scenario or rule).
    Refuse(ProxyError),
}

/// Applies a scenario to one request (SPEC section 8).
pub const SCENARIO_HEADER: &str = "x-authfault-scenario";
/// Applies one rule to one request.
pub const RULE_HEADER: &str = "x-authfault-rule";

/// Finds the rule that owns the request and applies its action when its
/// `when` fires; notes on the exchange what happened and how the answer is
/// to be judged. The rule set is read once: a reload mid-exchange does not
/// change the owner.
fn perturb(shared: &Shared, req: Request<Body>, exchange: &mut Exchange) -> Staged {
    let rules = shared.config.rules.load();
    let (mut parts, body) = req.into_parts();
    // SPEC section 8: a per-request scenario or rule, never forwarded.
    let scenario_header = parts.headers.remove(SCENARIO_HEADER);
    let rule_header = parts.headers.remove(RULE_HEADER);
    let choice = match (&scenario_header, &rule_header) {
        (_, Some(rule)) => Choice::Rule(rule.to_str().unwrap_or("")),
        (Some(scenario), None) => Choice::Scenario(scenario.to_str().unwrap_or("")),
        (None, None) => Choice::Active,
    };
    let host = parts
        .uri
        .host()
        .unwrap_or("")
        .trim_start_matches('[')
        .trim_end_matches(']');
    let selected = match rules.select_with(&parts, host, choice) {
        Ok(selected) => selected,
        Err(UnknownChoice::Scenario(detail)) => {
            return Staged::Refuse(ProxyError::UnknownScenario(detail));
        }
        Err(UnknownChoice::Rule(detail)) => return Staged::Refuse(ProxyError::UnknownRule(detail)),
    };
    let Some(selected) = selected else {
        if let Choice::Scenario(name) = choice {
            exchange.scenario = Some(name.to_string());
        }
        exchange.settle(Verdict::Untouched, "no rule matched");
        return Staged::Forward(Request::from_parts(parts, body), None);
    };
    let rule = selected.rule;
    exchange.rule = Some((rule.name.clone(), rule.action_name));
    exchange.scenario = selected.scenario;
    if !selected.fired {
        let before = selected.found.map(|f| f.token);
        exchange.credential = Some(Credential::unchanged(rule.place.clone(), before));
        exchange.settle(Verdict::Untouched, "the rule's `when` did not hold");
        return Staged::Forward(Request::from_parts(parts, body), None);
    }
    exchange.fired = true;
    let mut random = |buf: &mut [u8]| {
        // The system RNG does not fail on Linux; a zeroed buffer would still
        // be a (predictable) garbage token, never a panic.
        let _ = crate::tls::fill_random(buf);
    };
    let mut cx = perturb::action::Context {
        now_secs: crate::credential::jwt::now_secs(),
        random: &mut random,
    };
    let applied = perturb::apply(
        &rule.action,
        &rule.place,
        &mut parts,
        selected.found.as_ref(),
        &mut cx,
    );
    // What the client sent, its JWT decoded if matching or the action did.
    let before = selected.found.map(|f| f.token);
    let place = rule.place.clone();
    match applied {
        Applied::Respond(synthetic) => {
            exchange.credential = Some(Credential::unchanged(place, before));
            exchange.settle(Verdict::Synthetic, "answered by authfault (respond)");
            Staged::Respond(synthetic)
        }
        Applied::Skipped(reason) => {
            exchange.credential = Some(Credential::unchanged(place, before));
            exchange.settle(Verdict::Skipped, reason);
            Staged::Forward(Request::from_parts(parts, body), None)
        }
        Applied::Forward {
            after,
            was_resigned,
        } => {
            exchange.credential = Some(Credential {
                place,
                before,
                after,
                resigned: was_resigned,
            });
            // SPEC section 6: an action with no expectation is not judged.
            match rule.expectation(was_resigned) {
                Some(expectation) => exchange.expectation = Some(expectation.clone()),
                None => exchange.settle(
                    Verdict::Untouched,
                    format!("`{}` has no expectation", rule.action_name),
                ),
            }
            let token_ttl = match rule.action {
                Action::TokenTtl { expires_in } => Some(expires_in),
                _ => None,
            };
            Staged::Forward(Request::from_parts(parts, body), token_ttl)
        }
    }
}

/// The answer of a `respond` rule.
async fn respond(
    shared: &Shared,
    mut exchange: Exchange,
    synthetic: Synthetic,
    version: Version,
) -> Response<Tap<Body>> {
    let mut res = Response::new(Body::full(synthetic.body));
    *res.status_mut() = synthetic.status;
    *res.headers_mut() = synthetic.headers;
    *res.version_mut() = version;
    exchange.status = Some(synthetic.status);
    tap(shared, res, exchange).await
}

/// Largest token endpoint answer `token_ttl` reads whole to rewrite.
const TOKEN_TTL_LIMIT: usize = 1024 * 1024;

/// Reads the answer up to `TOKEN_TTL_LIMIT` and rewrites `expires_in`; a
/// larger body, or one that is not a JSON object with `expires_in`, passes
/// unchanged (what was read is sent first, the rest streams).
async fn rewrite_token_ttl(
    parts: &mut http::response::Parts,
    mut body: Incoming,
    expires_in: i64,
) -> Body {
    use http_body_util::BodyExt;
    let mut read = bytes::BytesMut::new();
    loop {
        if read.len() > TOKEN_TTL_LIMIT {
            return Body::Resumed(Some(read.freeze()), body);
        }
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    read.extend_from_slice(data);
                }
            }
            Some(Err(err)) => {
                tracing::debug!("token_ttl: the upstream body broke off: {err}");
                return Body::Broken((!read.is_empty()).then(|| read.freeze()), Some(err.into()));
            }
            None => break,
        }
    }
    match perturb::action::rewrite_expires_in(&read, expires_in) {
        Some(rewritten) => {
            parts.headers.remove(http::header::CONTENT_LENGTH);
            Body::full(rewritten)
        }
        None => Body::full(read.freeze()),
    }
}

/// Checks every request on the plain listener passes, CONNECT included:
/// proxy credentials, then the header size.
pub(crate) fn check_plain<B>(shared: &Shared, req: &Request<B>) -> Result<(), ProxyError> {
    if let Some(auth) = &shared.config.proxy_auth
        && !auth.is_satisfied_by(req.headers())
    {
        return Err(ProxyError::ProxyAuthRequired);
    }
    check_header_size(shared, req)
}

fn check_header_size<B>(shared: &Shared, req: &Request<B>) -> Result<(), ProxyError> {
    let limit = shared.config.max_header_bytes;
    // Counted as on the wire in HTTP/1.1: "name: value\r\n" per field.
    let uri = req.uri();
    let uri_len = uri.scheme_str().map_or(0, |s| s.len() + 3)
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.path_and_query().map_or(0, |p| p.as_str().len());
    let size = uri_len
        + req
            .headers()
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum::<usize>();
    if size > limit {
        return Err(ProxyError::HeadersTooLarge { size, limit });
    }
    Ok(())
}

/// The absolute URI the request goes to.
fn target_uri<B>(shared: &Shared, req: &Request<B>, origin: &Origin) -> Result<Uri, ProxyError> {
    match origin {
        Origin::Tunnel(tunnel) => {
            let path = req
                .uri()
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/"));
            Uri::builder()
                .scheme(Scheme::HTTPS)
                .authority(tunnel.authority.clone())
                .path_and_query(path)
                .build()
                .map_err(|e| ProxyError::BadRequest(format!("cannot form the upstream URL: {e}")))
        }
        Origin::Plain => {
            let uri = req.uri();
            let Some(target) = super::target::absolute_target(uri)? else {
                return Err(origin_form_error(shared, req));
            };
            if shared.is_self(target.host, target.port) {
                return Err(ProxyError::LoopDetected);
            }
            Ok(uri.clone())
        }
    }
}

/// A request in origin form on the plain listener was sent to the proxy as
/// if it were a server.
fn origin_form_error<B>(shared: &Shared, req: &Request<B>) -> ProxyError {
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<http::uri::Authority>().ok());
    if let Some(host) = host
        && shared.is_self(host.host(), host.port_u16().unwrap_or(80))
    {
        return ProxyError::LoopDetected;
    }
    ProxyError::BadRequest(
        "authfault is a forward proxy: send absolute-form requests (set HTTP_PROXY/HTTPS_PROXY to its address) or CONNECT".to_string(),
    )
}

/// The request as the upstream gets it: absolute URI, HTTP/1.1 semantics
/// (the pooled client speaks HTTP/2 itself when the upstream offers it),
/// hop-by-hop headers gone.
fn forwardable(req: Request<Incoming>, uri: Uri, is_upgrade: bool) -> Request<Body> {
    let (mut parts, body) = req.into_parts();
    parts.uri = uri;
    parts.version = Version::HTTP_11;
    headers::remove_hop_by_hop(&mut parts.headers, is_upgrade);
    // The URI's authority is the target (RFC 9112 §3.2.2). The client sets
    // `Host` from it over HTTP/1.1 and `:authority` over HTTP/2, where a
    // `Host` beside it is a duplicate that nginx answers with 400.
    parts.headers.remove(http::header::HOST);
    Request::from_parts(parts, Body::Incoming(body))
}

/// Answers with an error the proxy made itself, and records the exchange.
async fn answer(shared: &Shared, mut exchange: Exchange, err: ProxyError) -> Response<Tap<Body>> {
    let res = err.to_response();
    exchange.status = Some(res.status());
    exchange.error = Some(err.status_and_code().1);
    tracing::debug!("answering {}: {err}", res.status());
    tap(shared, res, exchange).await
}

/// After a 101, joins the client's and the upstream's connections (a
/// WebSocket) and copies bytes both ways until both close.
async fn splice_upgrade(client: OnUpgrade, upstream: OnUpgrade, authority: String) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(pair) => pair,
        Err(err) => {
            tracing::debug!(%authority, "protocol switch failed: {err}");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut upstream = TokioIo::new(upstream);
    if let Err(err) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        tracing::debug!(%authority, "upgraded connection broken: {err}");
    }
}
