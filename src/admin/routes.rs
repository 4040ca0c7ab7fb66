//! Each call of the admin API (SPEC section 8), from request to answer.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::{Value, json};

use super::{Answer, State};

/// Largest body `PUT /rules` and `PUT /scenario` read.
const BODY_LIMIT: usize = 1024 * 1024;

/// Default and largest page of `/exchanges`.
const PAGE: usize = 100;
const PAGE_MAX: usize = 1000;

pub(super) async fn route(state: &Arc<State>, req: Request<Incoming>) -> Answer {
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = req.method().clone();
    match (&method, segments.as_slice()) {
        (&Method::GET, ["healthz"]) => healthz(state),
        (&Method::GET, ["rules"]) => json_answer(StatusCode::OK, &rules(state)),
        (&Method::PUT, ["rules"]) => put_rules(state, req).await,
        (&Method::POST, ["rules", name, switch @ ("enable" | "disable")]) => {
            toggle(state, name, *switch == "enable")
        }
        (&Method::PUT, ["scenario"]) => put_scenario(state, req).await,
        (&Method::DELETE, ["scenario"]) => {
            let rules = state.proxy.rules().load();
            // Switching off cannot fail.
            let _ = rules.set_scenario(None);
            state.proxy.rules_changed();
            tracing::info!("scenario switched off through the admin API");
            json_answer(StatusCode::OK, &json!({"scenario": null}))
        }
        (&Method::POST, ["reset"]) => {
            for rule in state.proxy.rules().load().rules() {
                rule.state.reset();
            }
            state.proxy.recorder().reset();
            state.proxy.rules_changed();
            json_answer(StatusCode::OK, &json!({"reset": true}))
        }
        (&Method::GET, ["exchanges"]) => exchanges(state, req.uri().query()),
        (&Method::GET, ["report"]) => report(state, req.uri().query()),
        (&Method::GET, ["metrics"]) => metrics(state),
        (&Method::GET, ["events"]) => super::events::events(state, &req),
        (&Method::GET, ["ca.pem"]) => text(
            StatusCode::OK,
            "application/x-pem-file",
            state.proxy.ca_pem().to_string(),
        ),
        (
            _,
            [
                "healthz" | "rules" | "scenario" | "reset" | "exchanges" | "report" | "metrics"
                | "ca.pem" | "events",
            ],
        )
        | (_, ["rules", _, "enable" | "disable"]) => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            &format!("{method} is not allowed on {path}"),
        ),
        _ => error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!(
                "no admin call {path}; see SPEC section 8 (GET /rules, PUT /scenario, GET /report, GET /metrics, …)"
            ),
        ),
    }
}

fn healthz(state: &State) -> Answer {
    if state.proxy.is_serving() {
        text(StatusCode::OK, "text/plain", "ok\n".to_string())
    } else {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "shutting down\n".to_string(),
        )
    }
}

pub(super) fn rules(state: &State) -> Value {
    let set = state.proxy.rules().load();
    let summary = state.proxy.recorder().summary();
    let rules: Vec<Value> = set
        .rules()
        .iter()
        .enumerate()
        .map(|(index, rule)| {
            let verdicts = summary
                .rules
                .iter()
                .find(|r| r.name == rule.name)
                .map(|r| r.verdicts.clone())
                .unwrap_or_default();
            json!({
                "name": rule.name,
                "enabled": rule.enabled.load(Ordering::Relaxed),
                "active": set.is_active(index),
                "action": rule.action_name,
                "matched": rule.state.matched.load(Ordering::Relaxed),
                "fired": rule.state.fired.load(Ordering::Relaxed),
                "verdicts": verdicts,
            })
        })
        .collect();
    json!({"scenario": set.scenario(), "scenarios": set.scenario_names().collect::<Vec<_>>(), "rules": rules})
}

async fn put_rules(state: &State, req: Request<Incoming>) -> Answer {
    let text = match body_text(req).await {
        Ok(text) => text,
        Err(answer) => return answer,
    };
    match crate::rules::watch::replace_from_text(state.proxy.rules(), &text, state.seed) {
        Ok(count) => {
            state.proxy.rules_changed();
            json_answer(StatusCode::OK, &json!({"rules": count}))
        }
        Err(errors) => {
            let list: Vec<Value> = errors
                .iter()
                .map(|e| json!({"line": e.line, "column": e.column, "message": e.kind.to_string()}))
                .collect();
            json_answer(
                StatusCode::BAD_REQUEST,
                &json!({
                    "error": "invalid_rules",
                    "detail": format!("{} problem(s); the previous rules stay", errors.len()),
                    "errors": list,
                }),
            )
        }
    }
}

fn toggle(state: &State, name: &str, enabled: bool) -> Answer {
    let set = state.proxy.rules().load();
    let Some(rule) = set.rules().iter().find(|r| r.name == name) else {
        return unknown_rule(&set, name);
    };
    rule.enabled.store(enabled, Ordering::SeqCst);
    state.proxy.rules_changed();
    tracing::info!(
        "rule `{name}` {} through the admin API",
        if enabled { "enabled" } else { "disabled" }
    );
    json_answer(
        StatusCode::OK,
        &json!({"name": name, "enabled": enabled, "active": set.is_active_name(name)}),
    )
}

fn unknown_rule(set: &crate::rules::set::RuleSet, name: &str) -> Answer {
    let known: Vec<&str> = set.rules().iter().map(|r| r.name.as_str()).collect();
    error(
        StatusCode::NOT_FOUND,
        "unknown_rule",
        &format!("no rule `{name}`; defined: {}", known.join(", ")),
    )
}

async fn put_scenario(state: &State, req: Request<Incoming>) -> Answer {
    let text = match body_text(req).await {
        Ok(text) => text,
        Err(answer) => return answer,
    };
    let name = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v.get("name").and_then(Value::as_str).map(str::to_string));
    let Some(name) = name else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "send a JSON object with the scenario's name: {\"name\": \"expired\"}",
        );
    };
    let set = state.proxy.rules().load();
    match set.set_scenario(Some(&name)) {
        Ok(()) => {
            state.proxy.rules_changed();
            tracing::info!("scenario `{name}` switched on through the admin API");
            json_answer(StatusCode::OK, &json!({"scenario": name}))
        }
        Err(err) => error(StatusCode::NOT_FOUND, "unknown_scenario", &err.to_string()),
    }
}

fn exchanges(state: &State, query: Option<&str>) -> Answer {
    let mut since = 0u64;
    let mut limit = PAGE;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let bad = |what: &str| {
            error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                &format!("`{key}={value}`: {what}"),
            )
        };
        match key {
            "since" => match value.parse() {
                Ok(n) => since = n,
                Err(_) => return bad("an exchange id (a whole number) is expected"),
            },
            "limit" => match value.parse::<usize>() {
                Ok(n) if n > 0 => limit = n.min(PAGE_MAX),
                _ => return bad("a whole number from 1 is expected"),
            },
            _ => return bad("unknown parameter; use since and limit"),
        }
    }
    let page = state.proxy.recorder().exchanges(since, limit);
    let records: Vec<&crate::record::Record> = page.iter().map(AsRef::as_ref).collect();
    json_answer(StatusCode::OK, &records)
}

/// `GET /report?format=json|text|junit|har`. json and text come from the
/// live summary; junit and har need the exchanges themselves, and so cover
/// those since the last reset that are still in memory (the last 10,000,
/// at most 64 MiB of them).
fn report(state: &State, query: Option<&str>) -> Answer {
    use crate::report::{Format, render, text};
    let mut format = Format::Json;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        // The same names as `authfault report --format`.
        match (key, <Format as clap::ValueEnum>::from_str(value, false)) {
            ("format", Ok(parsed)) => format = parsed,
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    &format!("`{key}={value}`: use format=json, text, junit or har"),
                );
            }
        }
    }
    let recorder = state.proxy.recorder();
    let rendered = match format {
        Format::Json => return json_answer(StatusCode::OK, &recorder.summary()),
        Format::Text => Ok(text::render(&recorder.summary(), false)),
        Format::Junit | Format::Har => {
            let records: Vec<crate::record::Record> = recorder
                .since_reset()
                .iter()
                .map(|r| r.as_ref().clone())
                .collect();
            render(&records, format, false)
        }
    };
    let content_type = match format {
        Format::Json | Format::Har => "application/json",
        Format::Text => "text/plain; charset=utf-8",
        Format::Junit => "application/xml",
    };
    match rendered {
        Ok(body) => text(StatusCode::OK, content_type, body),
        Err(err) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "report_failed",
            &err.to_string(),
        ),
    }
}

fn metrics(state: &State) -> Answer {
    let recorder = state.proxy.recorder();
    let metrics = recorder.metrics();
    metrics
        .leaves
        .set(i64::try_from(state.proxy.leaf_count()).unwrap_or(i64::MAX));
    metrics
        .recording_lag
        .set(i64::try_from(recorder.lag()).unwrap_or(i64::MAX));
    text(
        StatusCode::OK,
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
        metrics.encode(),
    )
}

/// Reads a request body of at most `BODY_LIMIT` bytes as UTF-8.
async fn body_text(req: Request<Incoming>) -> Result<String, Answer> {
    let body = Limited::new(req.into_body(), BODY_LIMIT)
        .collect()
        .await
        .map_err(|e| {
            error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                &format!("cannot read the body (at most {BODY_LIMIT} bytes): {e}"),
            )
        })?
        .to_bytes();
    String::from_utf8(body.to_vec()).map_err(|_| {
        error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the body is not UTF-8",
        )
    })
}

/// `{"error": CODE, "detail": …}`, as the proxy's own errors.
pub(crate) fn error(status: StatusCode, code: &str, detail: &str) -> Answer {
    json_answer(status, &json!({"error": code, "detail": detail}))
}

fn json_answer(status: StatusCode, value: &impl serde::Serialize) -> Answer {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut res = Response::new(Full::new(Bytes::from(body)).boxed());
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    res
}

pub(super) fn text(status: StatusCode, content_type: &'static str, body: String) -> Answer {
    let mut res = Response::new(Full::new(Bytes::from(body)).boxed());
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    res
}
