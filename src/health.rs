//! `authfault health [URL]`: asks the admin API's `/healthz` and exits 0 when
//! it answers 200, 1 otherwise. Minimal container images have no curl; the
//! binary checks itself (`HEALTHCHECK CMD ["authfault", "health"]`).

use std::time::Duration;

use anyhow::{Context, bail};
use http::{Request, Uri};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;

use crate::cli::Outcome;

/// How long the whole check may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The URL checked: `url`, else `AUTHFAULT_ADMIN`'s address, else the
/// default admin address; `/healthz` when the URL has no path.
pub fn target(url: Option<&str>, admin_env: Option<&str>) -> anyhow::Result<Uri> {
    let text = match (url, admin_env) {
        (Some(url), _) => url.to_string(),
        (None, Some(addr)) if addr != "off" => {
            // A wildcard bind is reached on loopback.
            let addr = addr
                .replace("0.0.0.0", "127.0.0.1")
                .replace("[::]", "[::1]");
            format!("http://{addr}")
        }
        _ => "http://127.0.0.1:8081".to_string(),
    };
    let text = if text.contains("://") {
        text
    } else {
        format!("http://{text}")
    };
    let uri: Uri = text
        .parse()
        .with_context(|| format!("`{text}` is not a URL like http://127.0.0.1:8081/healthz"))?;
    if uri.scheme_str() != Some("http") {
        bail!("`{text}`: the admin API speaks plain http://");
    }
    if uri.authority().is_none() {
        bail!("`{text}` has no host");
    }
    if uri.path() == "/" || uri.path().is_empty() {
        let mut parts = uri.into_parts();
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/healthz"));
        return Uri::from_parts(parts).context("building the /healthz URL");
    }
    Ok(uri)
}

/// Runs the check and prints one line on the outcome.
pub fn run(url: Option<&str>) -> anyhow::Result<Outcome> {
    let admin_env = std::env::var("AUTHFAULT_ADMIN").ok();
    let uri = target(url, admin_env.as_deref())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(async { tokio::time::timeout(TIMEOUT, check(&uri)).await });
    match result {
        Ok(Ok(200)) => {
            println!("healthy: {uri} answered 200");
            Ok(Outcome::Success)
        }
        Ok(Ok(status)) => {
            eprintln!("authfault: unhealthy: {uri} answered {status}");
            Ok(Outcome::Unhealthy)
        }
        Ok(Err(err)) => {
            eprintln!("authfault: unhealthy: {uri}: {err:#}");
            Ok(Outcome::Unhealthy)
        }
        Err(_) => {
            eprintln!(
                "authfault: unhealthy: {uri} did not answer within {}s",
                TIMEOUT.as_secs()
            );
            Ok(Outcome::Unhealthy)
        }
    }
}

async fn check(uri: &Uri) -> anyhow::Result<u16> {
    let authority = uri.authority().context("no host")?;
    let port = authority.port_u16().unwrap_or(80);
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let stream = tokio::net::TcpStream::connect((host, port))
        .await
        .context("cannot connect")?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP handshake")?;
    tokio::spawn(conn);
    let req = Request::get(uri.path())
        .header(http::header::HOST, authority.as_str())
        .body(Empty::<bytes::Bytes>::new())
        .context("building the request")?;
    let res = sender.send_request(req).await.context("no answer")?;
    Ok(res.status().as_u16())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_defaults_to_the_admin_address_and_gets_healthz() {
        let t = |url, env| target(url, env).expect("url").to_string();
        assert_eq!(t(None, None), "http://127.0.0.1:8081/healthz");
        assert_eq!(
            t(None, Some("0.0.0.0:9091")),
            "http://127.0.0.1:9091/healthz"
        );
        assert_eq!(t(None, Some("off")), "http://127.0.0.1:8081/healthz");
        assert_eq!(t(Some("127.0.0.1:1"), None), "http://127.0.0.1:1/healthz");
        assert_eq!(t(Some("http://h:2/other"), None), "http://h:2/other");
        assert!(target(Some("https://h:2/"), None).is_err());
    }
}
