//! HAR 1.2 (http://www.softwareishard.com/blog/har-12-spec/): one entry per
//! recorded exchange, with the rule, verdict and credential fingerprints in
//! `_authfault`. Browser dev tools and HAR viewers open it.

use serde_json::{Value, json};

use crate::record::Record;
use crate::record::entry::Headers;

/// The HAR document of the records.
pub fn render(records: &[Record]) -> Value {
    let entries: Vec<Value> = records.iter().map(entry).collect();
    json!({
        "log": {
            "version": "1.2",
            "creator": {"name": "authfault", "version": env!("CARGO_PKG_VERSION")},
            "entries": entries,
        }
    })
}

fn entry(record: &Record) -> Value {
    let total = record.timing.total_ms.max(0.0);
    let wait = record.timing.upstream_ms.unwrap_or(0.0).clamp(0.0, total);
    let response = &record.response;
    let mime = header(&response.headers, "content-type").unwrap_or_default();
    let mut content = json!({"size": response.body_bytes, "mimeType": mime});
    if let Some(text) = &response.body {
        content["text"] = json!(text);
    } else if let Some(b64) = &response.body_base64 {
        content["text"] = json!(b64);
        content["encoding"] = json!("base64");
    }
    if let Some(why) = &response.body_omitted {
        content["comment"] = json!(why);
    }
    let status_text = http::StatusCode::from_u16(response.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let upstream_version = record
        .upstream_http_version
        .as_deref()
        .unwrap_or(&record.http_version);
    json!({
        "startedDateTime": record.ts,
        "time": total,
        "request": {
            "method": record.method,
            "url": record.url,
            "httpVersion": record.http_version,
            "cookies": [],
            "headers": headers(&record.request.headers),
            "queryString": query(&record.url),
            "headersSize": -1,
            "bodySize": record.request.body_bytes,
        },
        "response": {
            "status": response.status,
            "statusText": status_text,
            "httpVersion": upstream_version,
            "cookies": [],
            "headers": headers(&response.headers),
            "content": content,
            "redirectURL": header(&response.headers, "location").unwrap_or_default(),
            "headersSize": -1,
            "bodySize": response.body_bytes,
        },
        "cache": {},
        "timings": {"blocked": -1, "dns": -1, "connect": -1, "ssl": -1, "send": 0, "wait": wait, "receive": total - wait},
        "_authfault": {
            "id": record.id,
            "rule": record.rule,
            "action": record.action,
            "fired": record.fired,
            "scenario": record.scenario,
            "verdict": record.verdict,
            "reason": record.reason,
            "credential": record.credential,
            "error": record.error,
        },
    })
}

fn headers(headers: &Headers) -> Vec<Value> {
    headers
        .iter()
        .flat_map(|(name, values)| {
            values
                .iter()
                .map(move |v| json!({"name": name, "value": v}))
        })
        .collect()
}

fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|values| values.iter().next())
}

fn query(url: &str) -> Vec<Value> {
    let Some((_, query)) = url.split_once('?') else {
        return Vec::new();
    };
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            json!({"name": name, "value": value})
        })
        .collect()
}
