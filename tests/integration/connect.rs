//! CONNECT: the leaf the client sees, passthrough, tunnels for non-TLS
//! streams, and strict X.509 verification of the CA and its leaves.

use std::process::Command;

use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::*;

use crate::support::*;

/// The certificate chain the proxy presented on a TLS session.
fn peer_chain(
    tls: &tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
) -> Vec<CertificateDer<'static>> {
    tls.get_ref()
        .1
        .peer_certificates()
        .expect("peer certificates")
        .iter()
        .map(|c| c.clone().into_owned())
        .collect()
}

fn sans(cert: &X509Certificate<'_>) -> Vec<String> {
    let san = cert
        .subject_alternative_name()
        .expect("well-formed SAN")
        .expect("a SAN extension");
    san.value
        .general_names
        .iter()
        .map(|name| match name {
            GeneralName::DNSName(dns) => format!("dns:{dns}"),
            GeneralName::IPAddress(ip) => format!("ip:{ip:?}"),
            other => format!("{other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn an_intercepted_client_sees_a_leaf_for_its_sni_name_signed_by_the_authfault_ca() {
    let upstream = Upstream::https(Alpn::Both).await;
    let proxy = TestProxy::start(&[upstream.ca.as_deref().expect("tls")]).await;
    let target = format!("localhost:{}", upstream.port());
    // The connector trusts only the authfault CA: the handshake itself
    // proves the chain verifies for the name "localhost".
    let tls = tls_tunnel(proxy.addr, &target, "localhost", &proxy.tls(Alpn::Both)).await;
    let chain = peer_chain(&tls);
    let (_, leaf) = X509Certificate::from_der(&chain[0]).expect("leaf parses");
    let (_, ca) = parse_x509_pem(proxy.ca_pem.as_bytes()).expect("CA pem");
    let ca = ca.parse_x509().expect("CA parses");

    assert_eq!(sans(&leaf), ["dns:localhost"]);
    assert_eq!(leaf.issuer(), ca.subject());
    assert!(
        ca.subject().to_string().contains("authfault"),
        "{}",
        ca.subject()
    );
    let days =
        (leaf.validity().not_after.timestamp() - leaf.validity().not_before.timestamp()) / 86_400;
    assert!(days < 398, "leaf valid for {days} days");

    let mut has = (false, false, false, false);
    for ext in leaf.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                has.0 = aki.key_identifier.is_some();
            }
            ParsedExtension::SubjectKeyIdentifier(_) => has.1 = true,
            ParsedExtension::ExtendedKeyUsage(eku) => has.2 = eku.server_auth,
            ParsedExtension::BasicConstraints(bc) => has.3 = !bc.ca,
            _ => {}
        }
    }
    assert_eq!(
        has,
        (true, true, true, true),
        "AKI, SKI, serverAuth, CA:FALSE"
    );
    assert_eq!(proxy.running.as_ref().expect("running").leaf_count(), 1);
}

#[tokio::test]
async fn an_ip_host_without_sni_gets_an_ip_san() {
    let upstream = Upstream::https(Alpn::H1).await;
    let proxy = TestProxy::start(&[upstream.ca.as_deref().expect("tls")]).await;
    let target = format!("127.0.0.1:{}", upstream.port());
    // rustls sends no SNI for an IP address (RFC 6066 §3), so the proxy
    // must fall back to the CONNECT host.
    let tls = tls_tunnel(proxy.addr, &target, "127.0.0.1", &proxy.tls(Alpn::H1)).await;
    let chain = peer_chain(&tls);
    let (_, leaf) = X509Certificate::from_der(&chain[0]).expect("leaf parses");
    assert_eq!(sans(&leaf), ["ip:[127, 0, 0, 1]"]);
}

#[tokio::test]
async fn leaves_are_minted_once_per_host() {
    let upstream = Upstream::https(Alpn::H1).await;
    let proxy = TestProxy::start(&[upstream.ca.as_deref().expect("tls")]).await;
    let target = format!("localhost:{}", upstream.port());
    let mut serials = Vec::new();
    for _ in 0..3 {
        let tls = tls_tunnel(proxy.addr, &target, "localhost", &proxy.tls(Alpn::H1)).await;
        serials.push(peer_chain(&tls)[0].to_vec());
    }
    assert!(
        serials.windows(2).all(|w| w[0] == w[1]),
        "the same leaf every time"
    );
    assert_eq!(proxy.running.as_ref().expect("running").leaf_count(), 1);
}

#[tokio::test]
async fn a_passthrough_host_shows_the_client_the_upstreams_own_certificate() {
    let upstream = Upstream::https(Alpn::H1).await;
    let upstream_ca = upstream.ca.clone().expect("tls");
    let proxy = TestProxy::start_with(&[], |config| {
        config.passthrough = authfault::host::HostGlobs::new(&["localhost"]).expect("glob");
    })
    .await;
    let target = format!("localhost:{}", upstream.port());
    // Trusting only the upstream's CA: this handshake fails if the proxy
    // intercepted.
    let tls = tls_tunnel(
        proxy.addr,
        &target,
        "localhost",
        &tls_trusting(&[&upstream_ca.pem], Alpn::H1),
    )
    .await;
    let chain = peer_chain(&tls);
    let (_, leaf) = X509Certificate::from_der(&chain[0]).expect("leaf parses");
    assert!(
        leaf.issuer().to_string().contains("upstream test CA"),
        "{}",
        leaf.issuer()
    );
    assert_eq!(proxy.running.as_ref().expect("running").leaf_count(), 0);
}

#[tokio::test]
async fn a_connect_stream_that_is_not_tls_is_tunnelled_byte_for_byte() {
    let upstream = Upstream::http().await;
    let proxy = TestProxy::start(&[]).await;
    let mut stream = connect_tunnel(proxy.addr, &format!("127.0.0.1:{}", upstream.port())).await;
    stream
        .write_all(b"GET /headers HTTP/1.1\r\nHost: x\r\nx-raw: 1\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut out = String::new();
    stream.read_to_string(&mut out).await.expect("read");
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("\"x-raw\":\"1\""), "{out}");
}

#[tokio::test]
async fn the_ca_and_a_leaf_pass_openssl_strict_verification() {
    let upstream = Upstream::https(Alpn::H1).await;
    let proxy = TestProxy::start(&[upstream.ca.as_deref().expect("tls")]).await;
    let target = format!("localhost:{}", upstream.port());
    let tls = tls_tunnel(proxy.addr, &target, "localhost", &proxy.tls(Alpn::H1)).await;
    let leaf = &peer_chain(&tls)[0];
    let leaf_pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        base64_lines(leaf)
    );
    let leaf_path = proxy.dir.path().join("leaf.pem");
    std::fs::write(&leaf_path, leaf_pem).expect("write leaf");

    let ca_path = proxy.ca_path();
    for args in [
        vec![
            "verify",
            "-x509_strict",
            "-CAfile",
            path(&ca_path),
            path(&ca_path),
        ],
        vec![
            "verify",
            "-x509_strict",
            "-purpose",
            "sslserver",
            "-verify_hostname",
            "localhost",
            "-CAfile",
            path(&ca_path),
            path(&leaf_path),
        ],
    ] {
        let out = Command::new("openssl")
            .args(&args)
            .output()
            .expect("openssl runs");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "openssl {args:?}: {text}");
        assert!(text.contains(": OK"), "{text}");
    }
}

fn path(p: &std::path::Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn base64_lines(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    b64.as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("ascii"))
        .collect::<Vec<_>>()
        .join("\n")
}
