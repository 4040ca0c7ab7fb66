//! The text report: totals, a table per rule (counts by verdict), then each
//! violation with method, URL, status and reason. Colour only when asked
//! (on a terminal, without `NO_COLOR`).

use std::fmt::Write;

use super::{Summary, VERDICTS};
use crate::verdict::Verdict;

/// Renders the summary as text.
pub fn render(summary: &Summary, color: bool) -> String {
    let paint = |verdict: Verdict, text: &str| -> String {
        if !color {
            return text.to_string();
        }
        let code = match verdict {
            Verdict::Enforced => "32",
            Verdict::Bypassed => "1;31",
            Verdict::Mismatch => "33",
            Verdict::Error => "35",
            Verdict::Skipped | Verdict::Synthetic | Verdict::Untouched => return text.to_string(),
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "authfault report: {} exchange(s), {} judged, {} violation(s)",
        summary.exchanges, summary.judged, summary.violations
    );
    let totals: Vec<String> = VERDICTS
        .iter()
        .map(|&v| format!("{v} {}", summary.verdicts.get(&v).copied().unwrap_or(0)))
        .collect();
    let _ = writeln!(out, "  {}", totals.join(", "));
    if summary.rules.is_empty() {
        let _ = writeln!(out, "\nno rule owned an exchange");
        return out;
    }

    let headings = ["rule", "action", "matched", "fired"];
    let mut rows: Vec<Vec<String>> = summary
        .rules
        .iter()
        .map(|rule| {
            let mut row = vec![
                rule.name.clone(),
                rule.action.clone(),
                rule.matched.to_string(),
                rule.fired.to_string(),
            ];
            row.extend(
                VERDICTS
                    .iter()
                    .map(|v| rule.verdicts.get(v).copied().unwrap_or(0).to_string()),
            );
            row
        })
        .collect();
    let mut header: Vec<String> = headings.iter().map(ToString::to_string).collect();
    header.extend(VERDICTS.iter().map(ToString::to_string));
    rows.insert(0, header);
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|col| {
            rows.iter()
                .map(|r| r[col].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let _ = writeln!(out);
    for (index, row) in rows.iter().enumerate() {
        let mut line = String::new();
        for (col, cell) in row.iter().enumerate() {
            let pad = widths[col].saturating_sub(cell.chars().count());
            let cell = match col.checked_sub(headings.len()) {
                // A non-zero verdict count is painted with its verdict.
                Some(v) if index > 0 && cell != "0" => paint(VERDICTS[v], cell),
                _ => cell.clone(),
            };
            if col < 2 {
                let _ = write!(line, "{cell}{}  ", " ".repeat(pad));
            } else {
                let _ = write!(line, "{}{cell}  ", " ".repeat(pad));
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }

    let mut violations: Vec<_> = summary
        .rules
        .iter()
        .flat_map(|rule| rule.violations.iter().map(move |v| (rule, v)))
        .collect();
    violations.sort_by_key(|(_, v)| v.id);
    if violations.is_empty() {
        let _ = writeln!(
            out,
            "\nno violations: every bad credential was rejected as expected"
        );
        return out;
    }
    let _ = writeln!(out, "\nviolations:");
    for (rule, v) in violations {
        let _ = writeln!(
            out,
            "  {} #{} {} {} {} -> {}: {}",
            paint(v.verdict, &format!("{:<8}", v.verdict.as_str())),
            v.id,
            rule.name,
            v.method,
            v.url,
            v.status,
            v.reason
        );
    }
    let not_listed: u64 = summary.rules.iter().map(|r| r.violations_not_listed).sum();
    if not_listed > 0 {
        let _ = writeln!(
            out,
            "  … and {not_listed} more (the recording has them all: authfault report RECORDING)"
        );
    }
    out
}
