//! Rule evaluation per request with 1, 100 and 1000 rules loaded (none
//! firing, and the last one firing), and JWT re-signing per algorithm.
//!
//!   cargo bench --bench rules
//!
//! Target (issue #3): under 2 µs per request at 100 rules.

use std::hint::black_box;
use std::path::Path;

use authfault::credential::jwt;
use authfault::perturb::Key;
use authfault::rules::{load, set::RuleSet};
use base64::Engine;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

/// `n` rules that each look at a host, a method and a path the request does
/// not have; with `last_fires`, the last one matches everything.
fn rule_file(n: usize, last_fires: bool) -> String {
    let mut yaml = String::from("rules:\n");
    for i in 0..n {
        if last_fires && i == n - 1 {
            yaml.push_str(&format!("  - name: r{i}\n    action: {{ pass: {{}} }}\n"));
        } else {
            yaml.push_str(&format!(
                "  - name: r{i}\n    match: {{ host: \"*.svc{i}.test\", method: [GET, POST], path: \"^/v{i}/orders\", headers: {{ x-tenant: \"^t{i}$\" }} }}\n    action: {{ expire: {{ by: 1h }} }}\n"
            ));
        }
    }
    yaml
}

fn set(n: usize, last_fires: bool) -> RuleSet {
    let env = |_: &str| None;
    let parsed =
        load::parse_text(Path::new("bench.yaml"), &rule_file(n, last_fires), &env).expect("parses");
    RuleSet::compile(&[parsed], &env, 1).expect("compiles")
}

fn token() -> String {
    format!(
        "{}.{}.{}",
        jwt::B64.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
        jwt::B64.encode(br#"{"sub":"ada","exp":4102444800,"scope":"orders:read orders:write"}"#),
        jwt::B64.encode([7u8; 32])
    )
}

fn evaluation(c: &mut Criterion) {
    let bearer = format!("Bearer {}", token());
    let parts = http::Request::get("https://api.example.com/v1/orders?page=2")
        .header("authorization", bearer.as_str())
        .header("x-tenant", "acme")
        .header("accept", "application/json")
        .body(())
        .expect("request")
        .into_parts()
        .0;
    let mut group = c.benchmark_group("select");
    for n in [1usize, 100, 1000] {
        for (label, last_fires) in [("none-firing", false), ("last-firing", true)] {
            let rules = set(n, last_fires);
            group.bench_with_input(BenchmarkId::new(label, n), &rules, |b, rules| {
                b.iter(|| {
                    black_box(
                        rules
                            .select(black_box(&parts), black_box("api.example.com"))
                            .is_some(),
                    )
                });
            });
        }
    }
    group.finish();
}

fn resigning(c: &mut Criterion) {
    let mut group = c.benchmark_group("resign");
    let mut keys = vec![(
        "HS256",
        Key::from_secret("HS256", b"bench-secret", None).expect("key"),
    )];
    for (alg, rcgen_alg) in [
        ("ES256", &rcgen::PKCS_ECDSA_P256_SHA256),
        ("ES384", &rcgen::PKCS_ECDSA_P384_SHA384),
        ("EdDSA", &rcgen::PKCS_ED25519),
    ] {
        let pair = rcgen::KeyPair::generate_for(rcgen_alg).expect("keygen");
        keys.push((
            alg,
            Key::from_pem(alg, pair.serialize_pem().as_bytes(), None).expect("key"),
        ));
    }
    let rsa = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| o.stdout);
    if let Some(pem) = rsa {
        keys.push(("RS256", Key::from_pem("RS256", &pem, None).expect("key")));
        keys.push(("PS256", Key::from_pem("PS256", &pem, None).expect("key")));
    }
    let decoded = jwt::decode(&token()).expect("jwt");
    for (alg, key) in &keys {
        group.bench_function(*alg, |b| {
            b.iter(|| {
                let mut jwt = decoded.clone();
                black_box(key.sign(&mut jwt).expect("signs"))
            });
        });
    }
    group.finish();
}

/// Decoding the bearer JWT: done for a rule that matches on it, for the
/// action that rewrites it, and for the record of it.
fn decoding(c: &mut Criterion) {
    let token = token();
    c.bench_function("jwt/decode", |b| {
        b.iter(|| black_box(jwt::decode(black_box(&token)).is_ok()));
    });
}

criterion_group!(benches, evaluation, resigning, decoding);
criterion_main!(benches);
