//! `authfault token inspect`: a JWT decoded for a human: header, claims,
//! and what its times mean now ("expired 3 h ago"). Nothing is verified.

use std::fmt::Write as _;

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::credential::{Fingerprint, jwt};

/// The report for `token` at `now` (seconds since the epoch). A `Bearer `
/// prefix is dropped. `Err` says why the token is not a JWT.
pub fn report(token: &str, now: i64) -> Result<String, String> {
    let token = token.trim();
    let token = token
        .strip_prefix("Bearer ")
        .or_else(|| token.strip_prefix("bearer "))
        .unwrap_or(token)
        .trim();
    let decoded = jwt::decode(token)
        .map_err(|e| format!("not a JWT: {e} (fingerprint {})", Fingerprint::of(token)))?;
    let mut out = String::new();
    let pretty =
        |v: &serde_json::Map<String, Value>| serde_json::to_string_pretty(v).unwrap_or_default();
    let _ = writeln!(out, "fingerprint  {}", Fingerprint::of(token));
    let _ = writeln!(out, "header\n{}", indent(&pretty(&decoded.header)));
    let _ = writeln!(out, "claims\n{}", indent(&pretty(&decoded.claims)));
    for claim in ["iat", "nbf", "exp"] {
        if let Some(at) = decoded.numeric(claim) {
            let _ = writeln!(
                out,
                "{claim:<12} {} ({})",
                timestamp(at),
                relative(claim, at, now)
            );
        }
    }
    let verdict = match decoded.numeric("exp") {
        Some(exp) if exp <= now => "expired",
        Some(_) if decoded.numeric("nbf").is_some_and(|nbf| nbf > now) => "not yet valid",
        Some(_) => "within its lifetime",
        None => "no exp claim: never expires",
    };
    let _ = writeln!(out, "status       {verdict}");
    let signature = if decoded.signature.is_empty() {
        "none"
    } else {
        "present, not verified"
    };
    let _ = writeln!(
        out,
        "signature    {signature} (alg {})",
        decoded.alg().unwrap_or("?")
    );
    Ok(out)
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn timestamp(secs: i64) -> String {
    OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("{secs} (out of range)"))
}

/// "expired 3 h ago", "expires in 12 min", "issued 2 d ago".
pub fn relative(claim: &str, at: i64, now: i64) -> String {
    let delta = at.saturating_sub(now);
    let span = words(delta.unsigned_abs());
    match (claim, delta <= 0) {
        ("exp", true) => format!("expired {span} ago"),
        ("exp", false) => format!("expires in {span}"),
        ("iat", true) => format!("issued {span} ago"),
        ("iat", false) => format!("issued {span} in the future"),
        ("nbf", true) => format!("valid since {span} ago"),
        (_, _) => format!("valid in {span}"),
    }
}

fn words(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min", secs / 60),
        3600..86_400 => format!("{} h", secs / 3600),
        _ => format!("{} d", secs / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    #[test]
    fn expiry_is_said_in_words() {
        assert_eq!(
            relative("exp", 1000, 1000 + 3 * 3600 + 5),
            "expired 3 h ago"
        );
        assert_eq!(relative("exp", 1000 + 720, 1000), "expires in 12 min");
        assert_eq!(relative("iat", 0, 2 * 86_400), "issued 2 d ago");
    }

    #[test]
    fn a_report_shows_claims_times_and_status() {
        let token = format!(
            "Bearer {}.{}.sig",
            jwt::B64.encode(br#"{"alg":"RS256","kid":"k1"}"#),
            jwt::B64.encode(br#"{"sub":"ada","exp":1000}"#)
        );
        let report = report(&token, 1000 + 7200).expect("a JWT");
        assert!(report.contains("\"kid\": \"k1\""), "{report}");
        assert!(
            report.contains("exp          1970-01-01T00:16:40Z (expired 2 h ago)"),
            "{report}"
        );
        assert!(report.contains("status       expired"), "{report}");
    }

    #[test]
    fn an_opaque_token_is_not_a_jwt_and_is_not_echoed() {
        let err = report("opaque-secret-value", 0).expect_err("not a JWT");
        assert!(err.starts_with("not a JWT"), "{err}");
        assert!(!err.contains("opaque-secret-value"), "{err}");
    }
}
