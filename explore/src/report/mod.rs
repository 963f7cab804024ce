//! The explore report: its data ([`model`]), JSON, JUnit XML (one test suite per run, one
//! test case per checker), the self-contained HTML page ([`html`]) and the PNG of a run's
//! timeline ([`png`]).

pub mod html;
pub mod model;
pub mod png;

use std::fmt::Write as _;

use msctl_scenarios::report::xml_escape;

pub use model::ExploreReport;

/// The report as pretty JSON.
pub fn json(report: &ExploreReport) -> String {
    serde_json::to_string_pretty(report).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// The report as JUnit XML: a suite per run (named by its seed), a case per checker, a
/// failure with the evidence for each checker that did not hold, an error when the run
/// could not complete, and a suite for the shrink's reproduction.
pub fn junit(report: &ExploreReport) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let tests: usize = report.runs.iter().map(|r| r.verdicts.len().max(1)).sum();
    let failures: usize = report
        .runs
        .iter()
        .map(|r| r.verdicts.iter().filter(|v| !v.passed).count())
        .sum();
    let errors = report.runs.iter().filter(|r| r.error.is_some()).count();
    let _ = writeln!(
        out,
        "<testsuites name=\"msctl explore\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\">"
    );
    for r in &report.runs {
        let name = format!("explore seed {}", r.seed);
        let cases = r.verdicts.len().max(1);
        let f = r.verdicts.iter().filter(|v| !v.passed).count();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{cases}\" failures=\"{f}\" errors=\"{}\" time=\"{:.3}\" timestamp=\"{}\">",
            xml_escape(&name),
            usize::from(r.error.is_some()),
            r.seconds,
            xml_escape(&r.started_at)
        );
        if let Some(e) = &r.error {
            let _ = writeln!(
                out,
                "    <testcase name=\"run\" classname=\"{}\">\n      <error message=\"{}\"/>\n    </testcase>",
                xml_escape(&name),
                xml_escape(e)
            );
        }
        for v in &r.verdicts {
            let _ = write!(
                out,
                "    <testcase name=\"{}\" classname=\"{}\">",
                xml_escape(&v.checker),
                xml_escape(&name)
            );
            if v.passed {
                out.push_str("</testcase>\n");
            } else {
                let _ = writeln!(
                    out,
                    "\n      <failure message=\"{}\">{}</failure>\n    </testcase>",
                    xml_escape(&v.invariant),
                    xml_escape(&v.evidence.join("\n"))
                );
            }
        }
        if r.verdicts.is_empty() && r.error.is_none() {
            let _ = writeln!(
                out,
                "    <testcase name=\"run\" classname=\"{}\">\n      <error message=\"no checker ran\"/>\n    </testcase>",
                xml_escape(&name)
            );
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}
