//! Findings: what `lint` and `doctor` report. One shape for both, so both print the same way
//! (grouped by subject, coloured on a terminal, or JSON) and exit with the same codes.

use std::fmt::Write as _;

use serde::Serialize;

/// How much a finding matters. Ordered: `Info < Warning < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; nothing is wrong yet.
    Info,
    /// Wrong or misleading, but something still works.
    Warning,
    /// Broken: an alert that can never fire, a panel that is always empty, a target down.
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    /// Parses `info`, `warning` or `critical`.
    pub fn parse(text: &str) -> Result<Severity, String> {
        match text {
            "info" => Ok(Severity::Info),
            "warning" => Ok(Severity::Warning),
            "critical" => Ok(Severity::Critical),
            other => Err(format!(
                "unknown severity {other:?}: use info, warning or critical"
            )),
        }
    }

    /// ANSI colour for a terminal.
    fn colour(self) -> &'static str {
        match self {
            Severity::Info => "\x1b[36m",
            Severity::Warning => "\x1b[33m",
            Severity::Critical => "\x1b[31m",
        }
    }
}

/// One thing found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// A stable identifier of the check, e.g. `missing-total`.
    pub check: &'static str,
    /// What it is about: a file, or a target.
    pub subject: String,
    /// Where in the subject: a panel, a rule, a model ("" when the whole subject).
    pub place: String,
    /// What is wrong, in one sentence.
    pub message: String,
    /// The facts behind it: an expression, series and values, a window.
    pub evidence: Vec<String>,
    /// What to do.
    pub fix: String,
    /// Where the longer explanation is ("" when none).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub runbook: String,
}

/// Exit code with no finding at or above the threshold.
pub const EXIT_HEALTHY: u8 = 0;
/// Exit code with a finding at or above the threshold.
pub const EXIT_FINDINGS: u8 = 1;
/// Exit code when the check itself could not run.
pub const EXIT_COULD_NOT_RUN: u8 = 2;

/// The exit code for `findings` with `--fail-on threshold`.
pub fn exit_code(findings: &[Finding], threshold: Severity) -> u8 {
    if findings.iter().any(|f| f.severity >= threshold) {
        EXIT_FINDINGS
    } else {
        EXIT_HEALTHY
    }
}

/// Findings sorted for reading: by subject, then the worst first, then by place.
pub fn sorted(mut findings: Vec<Finding>) -> Vec<Finding> {
    findings.sort_by(|a, b| {
        (
            a.subject.as_str(),
            std::cmp::Reverse(a.severity),
            a.place.as_str(),
        )
            .cmp(&(
                b.subject.as_str(),
                std::cmp::Reverse(b.severity),
                b.place.as_str(),
            ))
    });
    findings
}

/// Findings for people, grouped by subject; `colour` adds ANSI colours. `checked` says what
/// was looked at, for the closing line.
pub fn render_text(findings: &[Finding], checked: &str, colour: bool) -> String {
    let (bold, dim, reset) = if colour {
        ("\x1b[1m", "\x1b[2m", "\x1b[0m")
    } else {
        ("", "", "")
    };
    let mut out = String::new();
    let mut subject = None;
    for finding in findings {
        if subject != Some(finding.subject.as_str()) {
            subject = Some(finding.subject.as_str());
            let _ = writeln!(out, "{bold}{}{reset}", finding.subject);
        }
        let (tint, end) = if colour {
            (finding.severity.colour(), reset)
        } else {
            ("", "")
        };
        let place = if finding.place.is_empty() {
            String::new()
        } else {
            format!("{}: ", finding.place)
        };
        let _ = writeln!(
            out,
            "  {tint}{:<8}{end} {place}{} {dim}[{}]{reset}",
            finding.severity.as_str(),
            finding.message,
            finding.check
        );
        for line in &finding.evidence {
            let _ = writeln!(out, "           {dim}{line}{reset}");
        }
        let _ = writeln!(out, "           fix: {}", finding.fix);
        if !finding.runbook.is_empty() {
            let _ = writeln!(out, "           see: {}", finding.runbook);
        }
    }
    let _ = writeln!(out, "{}", summary(findings, checked));
    out
}

/// The closing line: counts by severity, or that nothing was found.
pub fn summary(findings: &[Finding], checked: &str) -> String {
    if findings.is_empty() {
        return format!("{checked}: no findings");
    }
    let count = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
    format!(
        "{checked}: {} critical, {} warning, {} info",
        count(Severity::Critical),
        count(Severity::Warning),
        count(Severity::Info)
    )
}

/// Findings as JSON: `{"findings": [...], "summary": {...}}`.
pub fn render_json(findings: &[Finding]) -> String {
    let count = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
    let doc = serde_json::json!({
        "findings": findings,
        "summary": {
            "critical": count(Severity::Critical),
            "warning": count(Severity::Warning),
            "info": count(Severity::Info),
        },
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(subject: &str, severity: Severity) -> Finding {
        Finding {
            severity,
            check: "test",
            subject: subject.into(),
            place: "rule X".into(),
            message: "it is wrong".into(),
            evidence: vec!["expr: up".into()],
            fix: "do better".into(),
            runbook: String::new(),
        }
    }

    #[test]
    fn the_exit_code_follows_the_worst_finding_and_the_threshold() {
        let found = vec![finding("a", Severity::Warning)];
        assert_eq!(exit_code(&found, Severity::Warning), EXIT_FINDINGS);
        assert_eq!(exit_code(&found, Severity::Critical), EXIT_HEALTHY);
        assert_eq!(exit_code(&[], Severity::Info), EXIT_HEALTHY);
    }

    #[test]
    fn text_groups_by_subject_worst_first() {
        let found = sorted(vec![
            finding("b.yml", Severity::Info),
            finding("a.json", Severity::Warning),
            finding("b.yml", Severity::Critical),
        ]);
        let text = render_text(&found, "3 files", false);
        let a = text.find("a.json").unwrap();
        let b = text.find("b.yml").unwrap();
        let critical = text.find("critical").unwrap();
        let info = text.find("info ").unwrap();
        assert!(a < b && b < critical && critical < info, "{text}");
        assert_eq!(text.matches("b.yml").count(), 1, "{text}");
        assert!(
            text.ends_with("3 files: 1 critical, 1 warning, 1 info\n"),
            "{text}"
        );
        let json: serde_json::Value = serde_json::from_str(&render_json(&found)).unwrap();
        assert_eq!(json["summary"]["critical"], 1);
        assert_eq!(json["findings"][0]["check"], "test");
    }
}
