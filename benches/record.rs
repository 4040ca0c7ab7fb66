//! What the recorder thread does per exchange (criterion, `cargo bench
//! --bench record`): judge, mask and build the record of an `expire`
//! exchange whose bearer JWT was rewritten, and the JSON line of it.
//! The exchange is the one `cargo bench --bench proxy -- rules` sends.

use std::hint::black_box;

use base64::Engine;
use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Version, header};

use authfault::credential::{Place, Token, jwt};
use authfault::record::{BodyEnd, Exchange, Finished, Record};

fn token(exp: u64) -> String {
    format!(
        "{}.{}.{}",
        jwt::B64.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
        jwt::B64.encode(format!(
            r#"{{"sub":"ada","exp":{exp},"scope":"orders:read"}}"#
        )),
        jwt::B64.encode([7u8; 32])
    )
}

fn finished() -> Finished {
    let before = token(4_102_444_800);
    let after = token(1_700_000_000);
    let url = "https://localhost:8443/small".parse().expect("uri");
    let client = "127.0.0.1:50123".parse().expect("addr");
    let mut exchange = Exchange::begin(Method::GET, url, client, Version::HTTP_11);
    exchange.upstream_version = Some(Version::HTTP_2);
    exchange.upstream_elapsed = Some(std::time::Duration::from_micros(420));
    exchange.status = Some(StatusCode::UNAUTHORIZED);
    exchange.rule = Some(("expire-small".to_string(), "expire"));
    exchange.fired = true;
    exchange.expectation = Some(std::sync::Arc::new(
        authfault::verdict::Expectation::default_rejection(),
    ));
    // Matching (`credential: jwt`) decoded the client's token; the action
    // built the new one from its JWT. Both reach the recorder decoded.
    let (before, after_token) = (Token::new(before), Token::new(after.as_str()));
    let _ = (before.jwt(), after_token.jwt());
    exchange.credential = Some(authfault::record::Credential {
        place: Place::default(),
        before: Some(before),
        after: Some(after_token),
        resigned: false,
    });
    let mut request = HeaderMap::new();
    request.insert(header::HOST, HeaderValue::from_static("localhost:8443"));
    request.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {after}")).expect("value"),
    );
    request.insert(header::USER_AGENT, HeaderValue::from_static("bench/1"));
    request.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    exchange.request_headers = Some(request);
    let body = Bytes::from(format!(
        r#"{{"error":"invalid_token","detail":"{}"}}"#,
        "x".repeat(300)
    ));
    let mut response = HeaderMap::new();
    response.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    response.insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(r#"Bearer error="invalid_token""#),
    );
    response.insert(header::SERVER, HeaderValue::from_static("bench"));
    exchange.response_headers = Some(response);
    Finished {
        exchange,
        end: BodyEnd {
            bytes: body.len() as u64,
            is_complete: true,
        },
        elapsed: std::time::Duration::from_micros(900),
        body,
    }
}

fn building(c: &mut Criterion) {
    // `build` takes the tokens' JWTs out of the exchange: each iteration
    // gets a fresh one, made outside the timing.
    c.bench_function("record/build", |b| {
        b.iter_batched_ref(
            finished,
            |finished| black_box(Record::build(black_box(finished), 1, true)),
            BatchSize::SmallInput,
        );
    });
    c.bench_function("record/build+json", |b| {
        b.iter_batched_ref(
            finished,
            |finished| {
                let record = Record::build(black_box(finished), 1, true);
                black_box(serde_json::to_vec(&record).expect("serializes"))
            },
            BatchSize::SmallInput,
        );
    });
}

criterion_group!(benches, building);
criterion_main!(benches);
