//! What a run produced, and its writers: JSON (`--report`) and JUnit XML (`--junit`).
//!
//! The JUnit shape is the one Jenkins, GitLab and GitHub test reporters read (the Surefire
//! dialect): `<testsuites>` → one `<testsuite>` per scenario → one `<testcase>` per step,
//! with `<failure>` for a failed expectation, `<error>` for a step that could not run, and
//! `<skipped/>` for steps after a failure. fixtures/junit/junit.xsd pins it.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use crate::model::Phase;

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Every expectation held.
    Passed,
    /// An expectation did not hold.
    Failed,
    /// The step could not run (bad template, unreachable environment, fault not applied).
    Error,
    /// Not run because an earlier step failed.
    Skipped,
}

impl Status {
    /// Word for lines and summaries.
    pub fn word(self) -> &'static str {
        match self {
            Status::Passed => "ok",
            Status::Failed => "FAILED",
            Status::Error => "ERROR",
            Status::Skipped => "skipped",
        }
    }
}

/// One step's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// Steady state (before/after/continuous), method or rollback.
    pub phase: String,
    /// Step name.
    pub name: String,
    /// Step kind (`request`, `sql`, …).
    pub kind: String,
    /// Line in the scenario file.
    pub line: usize,
    /// Outcome.
    pub status: Status,
    /// Seconds taken.
    pub seconds: f64,
    /// Attempts made (eventually / within retry).
    pub attempts: u32,
    /// The failing expectation and what was seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Kind-specific details (load statistics, fault id, captured values).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

/// One scenario's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    /// Scenario name.
    pub name: String,
    /// File it came from.
    pub file: PathBuf,
    /// The run id (`{{run_id}}`).
    pub run_id: String,
    /// Passed unless any step failed or errored.
    pub status: Status,
    /// Seconds taken.
    pub seconds: f64,
    /// Start time, RFC 3339.
    pub started_at: String,
    /// Every step, in execution order.
    pub steps: Vec<StepReport>,
    /// Every fault the scenario applied (or tried to), on the run's clock.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<FaultTimeline>,
}

/// One fault of a run, seconds from the scenario's start.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct FaultTimeline {
    /// Step name.
    pub name: String,
    /// Kind with parameters.
    pub kind: String,
    /// Targets as written.
    pub targets: Vec<String>,
    /// A partition's other group (components).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<String>,
    /// When it came into effect (`None`: never).
    pub applied_s: Option<f64>,
    /// When it was reverted and ready again.
    pub healed_s: Option<f64>,
    /// Why it was refused, or could not be healed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ScenarioReport {
    /// The first failed or errored step.
    pub fn first_failure(&self) -> Option<&StepReport> {
        self.steps
            .iter()
            .find(|s| matches!(s.status, Status::Failed | Status::Error))
    }

    /// Counts by status: (passed, failed, errors, skipped).
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        let c = |st| self.steps.iter().filter(|s| s.status == st).count();
        (
            c(Status::Passed),
            c(Status::Failed),
            c(Status::Error),
            c(Status::Skipped),
        )
    }
}

/// Phase label used in reports.
pub fn phase_label(phase: Phase, when: &str) -> String {
    match phase {
        Phase::SteadyState => format!("steady_state.{when}"),
        Phase::Method => "method".to_string(),
        Phase::Rollback => "rollback".to_string(),
    }
}

/// The `--report` document.
#[derive(Debug, Serialize)]
pub struct RunReport<'a> {
    /// Passed when every scenario passed.
    pub status: Status,
    /// Scenario reports.
    pub scenarios: &'a [ScenarioReport],
}

/// The JSON report.
pub fn json(reports: &[ScenarioReport]) -> String {
    let status = if reports.iter().all(|r| r.status == Status::Passed) {
        Status::Passed
    } else {
        Status::Failed
    };
    serde_json::to_string_pretty(&RunReport {
        status,
        scenarios: reports,
    })
    .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// Escapes text for XML attributes and content; drops characters XML 1.0 cannot carry.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// The JUnit XML report.
pub fn junit(reports: &[ScenarioReport]) -> String {
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let total = |f: fn(&ScenarioReport) -> usize| reports.iter().map(f).sum::<usize>();
    let _ = writeln!(
        x,
        "<testsuites name=\"msctl scenarios\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{:.3}\">",
        total(|r| r.steps.len()),
        total(|r| r.counts().1),
        total(|r| r.counts().2),
        total(|r| r.counts().3),
        reports.iter().map(|r| r.seconds).sum::<f64>()
    );
    for (id, r) in reports.iter().enumerate() {
        let (_, failures, errors, skipped) = r.counts();
        let _ = writeln!(
            x,
            "  <testsuite name=\"{}\" id=\"{id}\" package=\"msctl.scenarios\" hostname=\"localhost\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{:.3}\" timestamp=\"{}\">",
            xml_escape(&r.name),
            r.steps.len(),
            r.seconds,
            xml_escape(&r.started_at)
        );
        let _ = writeln!(x, "    <properties>");
        let _ = writeln!(
            x,
            "      <property name=\"file\" value=\"{}\"/>",
            xml_escape(&r.file.display().to_string())
        );
        let _ = writeln!(
            x,
            "      <property name=\"run_id\" value=\"{}\"/>",
            xml_escape(&r.run_id)
        );
        let _ = writeln!(x, "    </properties>");
        for s in &r.steps {
            let _ = write!(
                x,
                "    <testcase name=\"{}\" classname=\"{}\" time=\"{:.3}\"",
                xml_escape(&format!("{} [{}:{}]", s.name, s.phase, s.line)),
                xml_escape(&format!("scenario.{}", r.name)),
                s.seconds
            );
            let message = s.message.clone().unwrap_or_default();
            match s.status {
                Status::Passed => {
                    let _ = writeln!(x, "/>");
                }
                Status::Skipped => {
                    let _ = writeln!(
                        x,
                        ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                        xml_escape(&message)
                    );
                }
                Status::Failed | Status::Error => {
                    let tag = if s.status == Status::Failed {
                        "failure"
                    } else {
                        "error"
                    };
                    let _ = writeln!(
                        x,
                        ">\n      <{tag} message=\"{}\" type=\"{}\">{}</{tag}>\n    </testcase>",
                        xml_escape(&message),
                        xml_escape(&s.kind),
                        xml_escape(&format!(
                            "{}:{}: step \"{}\" ({}): {message}",
                            r.file.display(),
                            s.line,
                            s.name,
                            s.kind
                        ))
                    );
                }
            }
        }
        let _ = writeln!(
            x,
            "    <system-out></system-out>\n    <system-err></system-err>"
        );
        let _ = writeln!(x, "  </testsuite>");
    }
    x.push_str("</testsuites>\n");
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn sample(name: &str, message: &str) -> ScenarioReport {
        let step = |n: &str, status, message: Option<String>| StepReport {
            phase: "method".into(),
            name: n.into(),
            kind: "request".into(),
            line: 3,
            status,
            seconds: 0.25,
            attempts: 1,
            message,
            details: None,
        };
        ScenarioReport {
            name: name.into(),
            file: PathBuf::from("scenarios/catalog/x.toml"),
            run_id: "r1".into(),
            status: Status::Failed,
            seconds: 1.5,
            started_at: "2026-11-22T21:00:00Z".into(),
            faults: Vec::new(),
            steps: vec![
                step("ok", Status::Passed, None),
                step("bad", Status::Failed, Some(message.into())),
                step("broken", Status::Error, Some("boom".into())),
                step(
                    "later",
                    Status::Skipped,
                    Some("an earlier step failed".into()),
                ),
            ],
        }
    }

    #[test]
    fn junit_counts_and_escapes() {
        let x = junit(&[sample("a<&>\"'", "expected 202, saw 503 <html>")]);
        assert!(
            x.contains("tests=\"4\" failures=\"1\" errors=\"1\" skipped=\"1\""),
            "{x}"
        );
        assert!(x.contains("name=\"a&lt;&amp;&gt;&quot;&apos;\""), "{x}");
        assert!(x.contains("saw 503 &lt;html&gt;"), "{x}");
        assert!(!x.contains("<html>"));
    }

    #[test]
    fn json_report_carries_status_and_steps() {
        let v: serde_json::Value = serde_json::from_str(&json(&[sample("a", "m")])).expect("json");
        assert_eq!(v["status"], "failed");
        assert_eq!(v["scenarios"][0]["steps"][1]["message"], "m");
        assert_eq!(v["scenarios"][0]["steps"][3]["status"], "skipped");
    }

    proptest! {
        #[test]
        fn escaped_text_has_no_markup(s in "\\PC{0,40}") {
            let e = xml_escape(&s);
            prop_assert!(!e.contains('<') && !e.contains('>') && !e.contains('"'));
        }

        #[test]
        fn json_report_round_trips_any_message(s in "\\PC{0,60}") {
            let v: serde_json::Value = serde_json::from_str(&json(&[sample("n", &s)])).expect("json");
            prop_assert_eq!(v["scenarios"][0]["steps"][1]["message"].as_str(), Some(s.as_str()));
        }
    }
}
