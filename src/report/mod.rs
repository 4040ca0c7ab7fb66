//! Reports on a run (SPEC section 7): `Summary` counts verdicts per rule,
//! fed one `Record` at a time, live by the recorder or from recording files
//! by `authfault report`. It renders as text (`text`) or JSON; the records
//! themselves render as JUnit XML (`junit`) or HAR 1.2 (`har`).

pub mod har;
pub mod junit;
pub mod text;

use std::io::BufRead;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::record::Record;
use crate::verdict::Verdict;

/// Every verdict, in the order reports list them.
pub const VERDICTS: [Verdict; 7] = [
    Verdict::Enforced,
    Verdict::Bypassed,
    Verdict::Mismatch,
    Verdict::Error,
    Verdict::Skipped,
    Verdict::Synthetic,
    Verdict::Untouched,
];

/// The verdict summary: `authfault report --format json`, the admin API's
/// `/report`, and what `run` and `exec` print at the end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub exchanges: u64,
    /// Exchanges with a verdict other than `untouched`.
    pub judged: u64,
    pub violations: u64,
    /// Every verdict, zeros included.
    pub verdicts: IndexMap<Verdict, u64>,
    /// One entry per rule that owned an exchange, in order of appearance.
    pub rules: Vec<RuleSummary>,
}

/// One rule's share of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleSummary {
    pub name: String,
    pub action: String,
    /// Exchanges the rule owned.
    pub matched: u64,
    /// Those whose `when` held.
    pub fired: u64,
    /// Counts of the verdicts that occurred.
    pub verdicts: IndexMap<Verdict, u64>,
    pub violations: Vec<Violation>,
    /// Violations counted but not listed: a long-running proxy's live
    /// summary lists the first `LIVE_VIOLATIONS` per rule (the recording
    /// keeps them all, and `authfault report` lists them all).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub violations_not_listed: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// How many violations per rule the live summary (`GET /report`, the
/// summary `run` prints) lists; more are only counted, so that memory stays
/// bounded however long the proxy runs.
pub const LIVE_VIOLATIONS: usize = 1000;

/// An exchange judged `bypassed`, `mismatch` or `error`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    pub id: u64,
    pub method: String,
    pub url: String,
    pub status: u16,
    pub verdict: Verdict,
    pub reason: String,
}

impl Default for Summary {
    fn default() -> Self {
        Self {
            exchanges: 0,
            judged: 0,
            violations: 0,
            verdicts: VERDICTS.iter().map(|&v| (v, 0)).collect(),
            rules: Vec::new(),
        }
    }
}

/// Rule name under which exchanges without one are listed (a judged
/// exchange always has one; this only guards hand-edited recordings).
const NO_RULE: &str = "(no rule)";

impl Summary {
    /// Sums up records, as `authfault report` does with its files.
    pub fn of<'a>(records: impl IntoIterator<Item = &'a Record>) -> Self {
        let mut summary = Self::default();
        for record in records {
            summary.add(record);
        }
        summary
    }

    /// Counts one more exchange, listing every violation.
    pub fn add(&mut self, record: &Record) {
        self.add_listing(record, usize::MAX);
    }

    /// Counts one more exchange, listing at most `limit` violations per
    /// rule.
    pub fn add_listing(&mut self, record: &Record, limit: usize) {
        let verdict = record.verdict;
        self.exchanges += 1;
        *self.verdicts.entry(verdict).or_insert(0) += 1;
        if verdict != Verdict::Untouched {
            self.judged += 1;
        }
        if verdict.is_violation() {
            self.violations += 1;
        }
        let Some(name) = record
            .rule
            .as_deref()
            .or(verdict.is_violation().then_some(NO_RULE))
        else {
            return;
        };
        let rule = match self.rules.iter().position(|r| r.name == name) {
            Some(index) => &mut self.rules[index],
            None => {
                self.rules.push(RuleSummary {
                    name: name.to_string(),
                    action: record.action.as_deref().unwrap_or_default().to_string(),
                    matched: 0,
                    fired: 0,
                    verdicts: IndexMap::new(),
                    violations: Vec::new(),
                    violations_not_listed: 0,
                });
                let last = self.rules.len() - 1;
                &mut self.rules[last]
            }
        };
        rule.matched += 1;
        if record.fired {
            rule.fired += 1;
        }
        match rule.verdicts.get_mut(&verdict) {
            Some(count) => *count += 1,
            // Kept in the order of VERDICTS: sorted when a verdict is new,
            // not on every exchange.
            None => {
                rule.verdicts.insert(verdict, 1);
                rule.verdicts
                    .sort_by_cached_key(|v, _| VERDICTS.iter().position(|x| x == v));
            }
        }
        if verdict.is_violation() && rule.violations.len() >= limit {
            rule.violations_not_listed += 1;
        } else if verdict.is_violation() {
            rule.violations.push(Violation {
                id: record.id,
                method: record.method.to_string(),
                url: record.url.clone(),
                status: record.response.status,
                verdict,
                reason: record.reason.to_string(),
            });
        }
    }

    /// Whether the run had violations (exit status 3).
    pub fn has_violations(&self) -> bool {
        self.violations > 0
    }
}

/// The formats of `authfault report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A table per rule and the violations, for people.
    Text,
    /// The summary of SPEC section 7.
    Json,
    /// JUnit XML: a suite per rule, a case per judged exchange.
    Junit,
    /// HAR 1.2, for browser dev tools and HAR viewers.
    Har,
}

/// Renders records in a format. `color` applies to text only.
pub fn render(records: &[Record], format: Format, color: bool) -> Result<String, RenderError> {
    Ok(match format {
        Format::Text => text::render(&Summary::of(records), color),
        Format::Json => pretty(&Summary::of(records))?,
        Format::Junit => junit::render(records)?,
        Format::Har => pretty(&har::render(records))?,
    })
}

/// Indented JSON ending with a newline.
fn pretty(value: &impl Serialize) -> Result<String, RenderError> {
    let mut json = serde_json::to_string_pretty(value).map_err(|e| RenderError(e.to_string()))?;
    json.push('\n');
    Ok(json)
}

/// A report that could not be rendered.
#[derive(Debug, thiserror::Error)]
#[error("cannot render the report: {0}")]
pub struct RenderError(pub String);

/// Why a recording could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the recording {path}: {source}")]
pub struct ReadError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// A line of a recording that is not a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    pub path: PathBuf,
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for BadLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: not a recorded exchange ({}); skipped",
            self.path.display(),
            self.line,
            self.message
        )
    }
}

/// Reads recordings, in order, one record per line. Lines that are not
/// records (a line cut by a full disk) are skipped and returned, so the
/// caller can say so; blank lines are ignored.
pub fn read(paths: &[impl AsRef<Path>]) -> Result<(Vec<Record>, Vec<BadLine>), ReadError> {
    let mut records = Vec::new();
    let mut bad = Vec::new();
    for path in paths {
        let path = path.as_ref();
        let error = |source| ReadError {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(error)?;
        for (index, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.map_err(error)?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Record>(&line) {
                Ok(record) => records.push(record),
                Err(err) => bad.push(BadLine {
                    path: path.to_path_buf(),
                    line: index + 1,
                    message: err.to_string(),
                }),
            }
        }
    }
    Ok((records, bad))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bypassed(id: u64) -> Record {
        let line = format!(
            r#"{{"id":{id},"ts":"2026-11-28T00:00:00Z","client":"127.0.0.1:1","method":"GET","url":"http://a/","http_version":"HTTP/1.1","rule":"r","action":"expire","fired":true,"request":{{}},"response":{{"status":200}},"timing":{{"total_ms":1.0}},"verdict":"bypassed","reason":"status 200"}}"#
        );
        serde_json::from_str(&line).expect("a record")
    }

    #[test]
    fn the_live_summary_lists_a_bounded_number_of_violations_and_counts_them_all() {
        let mut live = Summary::default();
        let mut full = Summary::default();
        for id in 1..=5 {
            live.add_listing(&bypassed(id), 2);
            full.add(&bypassed(id));
        }
        assert_eq!(live.violations, 5);
        assert_eq!(live.rules[0].violations.len(), 2);
        assert_eq!(live.rules[0].violations_not_listed, 3);
        assert_eq!(full.rules[0].violations.len(), 5);
        assert_eq!(full.rules[0].violations_not_listed, 0);
        assert!(text::render(&live, false).contains("and 3 more"));
        let json = serde_json::to_value(&full).expect("json");
        assert!(json["rules"][0].get("violations_not_listed").is_none());
    }
}
