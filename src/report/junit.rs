//! JUnit XML: a test suite per rule, a test case per judged exchange (every
//! verdict but `untouched`), a failure per violation, `skipped` as skipped.
//! CI systems show it next to the suite's own results.

use std::time::Duration;

use indexmap::IndexMap;
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::RenderError;
use crate::record::Record;
use crate::verdict::Verdict;

/// Renders the judged records as a JUnit report.
pub fn render(records: &[Record]) -> Result<String, RenderError> {
    let mut suites: IndexMap<&str, TestSuite> = IndexMap::new();
    for record in records {
        if record.verdict == Verdict::Untouched {
            continue;
        }
        let rule = record.rule.as_deref().unwrap_or("(no rule)");
        let suite = suites
            .entry(rule)
            .or_insert_with(|| TestSuite::new(format!("authfault: {rule}")));
        let status = match record.verdict {
            v if v.is_violation() => {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                status
                    .set_message(format!("{}: {}", record.verdict, record.reason))
                    .set_type(record.verdict.as_str())
                    .set_description(format!(
                        "{} {} -> {}\nverdict: {}\nreason: {}",
                        record.method,
                        record.url,
                        record.response.status,
                        record.verdict,
                        record.reason
                    ));
                status
            }
            Verdict::Skipped => {
                let mut status = TestCaseStatus::skipped();
                status.set_message(record.reason.clone());
                status
            }
            _ => TestCaseStatus::success(),
        };
        let mut case = TestCase::new(
            format!("#{} {} {}", record.id, record.method, record.url),
            status,
        );
        case.set_classname(rule.to_string());
        case.set_time(Duration::from_secs_f64(
            record.timing.total_ms.max(0.0) / 1000.0,
        ));
        suite.add_test_case(case);
    }
    let mut report = Report::new("authfault");
    report.add_test_suites(suites.into_values());
    report.to_string().map_err(|e| RenderError(e.to_string()))
}
