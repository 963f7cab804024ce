//! The explore report as one self-contained HTML page, drawn from the report alone.
//!
//! The page opens with the invocation (project, seed, each run's result, the replay command,
//! the tuned environment, the fault kinds left out and the shrink's outcome), then gives
//! every run a Jepsen-style timeline — operations per second stacked by outcome, p50/p99
//! latency on its own log axis, every fault window shaded across the chart and drawn in a
//! labelled lane below it — followed by its faults and the checkers' verdicts.
//!
//! Everything is inline (CSS and SVG; no script, no external URL), so the file can be
//! attached to a CI run and opened offline. Every piece of report text is escaped, because
//! evidence quotes request bodies and other strings the system under test produced. The
//! same report always gives the same bytes, so two pages can be diffed.
//!
//! `timeline_svg` is shared with the PNG renderer, which rasterises the same chart.

use std::fmt::{self, Write as _};

use super::model::{Bucket, ExploreReport, FaultWindow, RunReport, ShrinkReport, Verdict};

/// Appends formatted text to a `String`. Writing into a `String` cannot fail, so the
/// `fmt::Result` carries nothing; it is dropped here once rather than at every call.
macro_rules! put {
    ($out:expr, $($arg:tt)*) => {{
        let _ = write!($out, $($arg)*);
    }};
}

/// Width, in SVG user units, of the timeline drawn in the page (it scales down to fit).
const PAGE_CHART_WIDTH: u32 = 1120;

/// Evidence lists longer than this are collapsed behind a `<details>`.
const EVIDENCE_SHOWN: usize = 6;

/// When a list is collapsed, this many lines stay visible above the `<details>`.
const EVIDENCE_PREVIEW: usize = 4;

// Colours of the chart, shared with the page's CSS so the two read as one.
const OK_COLOUR: &str = "#4e9f50";
const FAIL_COLOUR: &str = "#d9453d";
const INFO_COLOUR: &str = "#eea236";
const P50_COLOUR: &str = "#1f4e79";
const P99_COLOUR: &str = "#7b2f9e";
const INK: &str = "#1d2125";
const MUTED: &str = "#66717c";
const GRID: &str = "#e3e7eb";
const ERROR_INK: &str = "#b3261e";

/// One colour per fault, in schedule order, cycling: a fault's shading, edges and lane bar
/// share it so the eye can follow a window from the chart down to its label.
const FAULT_COLOURS: [&str; 8] = [
    "#1b9aaa", "#c2549d", "#8c6d46", "#5b7fd6", "#6b8e23", "#d0743c", "#7f7f7f", "#9b59b6",
];

// Chart geometry, in SVG user units.
/// Room left of the plot for the operations axis.
const LEFT: f64 = 60.0;
/// Room right of the plot for the latency axis.
const RIGHT: f64 = 66.0;
/// Title row, legend row and marker labels above the plot.
const TOP: f64 = 62.0;
/// Plot height the page and the PNG ask for.
const PLOT_HEIGHT: f64 = 250.0;
/// The plot is never squeezed below this when the caller's height is small.
const MIN_PLOT_HEIGHT: f64 = 60.0;
/// Time tick labels and the time axis title under the plot.
const AXIS: f64 = 34.0;
/// Space between the time axis title and the first fault lane.
const LANE_GAP: f64 = 6.0;
/// One fault lane.
const LANE: f64 = 20.0;
/// Padding under the last lane.
const BOTTOM: f64 = 8.0;
/// Rough advance of one character at the chart's 11px font, used to fit labels.
const CHAR_WIDTH: f64 = 6.1;

/// The whole report as one HTML page.
pub fn html(report: &ExploreReport) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let verdict = overall(report);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    put!(
        out,
        "<title>msctl explore · {} · {}</title>\n",
        escape(&report.project),
        verdict.label()
    );
    out.push_str("<style>\n");
    out.push_str(CSS);
    out.push_str("</style>\n</head>\n<body>\n<main>\n");
    header(&mut out, report, verdict);
    runs_table(&mut out, report);
    replay(&mut out, report);
    tuned(&mut out, report);
    unsupported(&mut out, report);
    if let Some(shrink) = &report.shrink {
        shrink_section(&mut out, shrink);
    }
    for run in &report.runs {
        run_section(&mut out, run);
    }
    put!(
        out,
        "<footer>msctl explore report, layout version {}. Drawn from the JSON report alone; \
         times are seconds from the workload's start.</footer>\n",
        report.version
    );
    out.push_str("</main>\n</body>\n</html>\n");
    out
}

/// The height [`timeline_svg`] needs for `run` at its natural plot height: the plot, the
/// axes and one lane per fault.
pub(crate) fn timeline_height(run: &RunReport) -> u32 {
    let lanes = run.faults.len().max(1) as f64;
    let h = TOP + PLOT_HEIGHT + AXIS + LANE_GAP + lanes * LANE + BOTTOM;
    // Bounded by the lane count, far below u32::MAX for any real schedule.
    h.ceil().min(f64::from(u32::MAX)) as u32
}

/// Escapes text for HTML and SVG, in element content and in quoted attributes alike.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters other than tab and newline are not allowed in XML, and
            // the same SVG is parsed as XML by the PNG renderer.
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// The result of the whole invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Overall {
    Pass,
    Fail,
    NoRuns,
}

impl Overall {
    fn label(self) -> &'static str {
        match self {
            Overall::Pass => "PASS",
            Overall::Fail => "FAIL",
            Overall::NoRuns => "NO RUNS",
        }
    }

    fn class(self) -> &'static str {
        match self {
            Overall::Pass => "pass",
            Overall::Fail => "fail",
            Overall::NoRuns => "none",
        }
    }
}

fn overall(report: &ExploreReport) -> Overall {
    if report.runs.is_empty() {
        Overall::NoRuns
    } else if report.runs.iter().all(|r| r.passed) {
        Overall::Pass
    } else {
        Overall::Fail
    }
}

fn badge(passed: bool) -> &'static str {
    if passed {
        "<span class=\"badge pass\">PASS</span>"
    } else {
        "<span class=\"badge fail\">FAIL</span>"
    }
}

fn header(out: &mut String, report: &ExploreReport, verdict: Overall) {
    let passed = report.runs.iter().filter(|r| r.passed).count();
    let failed = report.runs.len() - passed;
    put!(
        out,
        "<header>\n<h1>msctl explore <span class=\"project\">{}</span> \
         <span class=\"badge {}\">{}</span></h1>\n",
        escape(&report.project),
        verdict.class(),
        verdict.label()
    );
    put!(
        out,
        "<p class=\"sub\">seed <b>{}</b> · {} · {} passed · {} failed",
        report.seed,
        plural(report.runs.len(), "run", "runs"),
        passed,
        failed
    );
    if report.runs.len() > 1 {
        put!(out, " · run <i>i</i> uses seed {} + <i>i</i>", report.seed);
    }
    out.push_str("</p>\n");
    if !report.runs.is_empty() {
        out.push_str("<nav class=\"runs-nav\">");
        for run in &report.runs {
            put!(
                out,
                "<a class=\"chip {}\" href=\"#run-{}\">run {} · seed {} · {}</a>",
                if run.passed { "pass" } else { "fail" },
                run.index,
                run.index,
                run.seed,
                if run.passed { "PASS" } else { "FAIL" }
            );
        }
        out.push_str("</nav>\n");
    }
    out.push_str("</header>\n");
}

fn runs_table(out: &mut String, report: &ExploreReport) {
    out.push_str("<section>\n<h2>Runs</h2>\n");
    if report.runs.is_empty() {
        out.push_str("<p class=\"muted\">No run was recorded.</p>\n</section>\n");
        return;
    }
    out.push_str(
        "<table class=\"runs\">\n<thead><tr><th>run</th><th>seed</th><th>result</th>\
         <th>started</th><th class=\"num\">wall time</th><th class=\"num\">operations</th>\
         <th class=\"num\">ok / fail / info</th><th class=\"num\">faults applied</th>\
         <th>failed checkers</th></tr></thead>\n<tbody>\n",
    );
    for run in &report.runs {
        let applied = run.faults.iter().filter(|f| f.applied_s.is_some()).count();
        let failed: Vec<String> = run
            .verdicts
            .iter()
            .filter(|v| !v.passed)
            .map(|v| format!("<code>{}</code>", escape(&v.checker)))
            .collect();
        let mut failed_cell = failed.join(", ");
        if let Some(error) = &run.error {
            if !failed_cell.is_empty() {
                failed_cell.push_str("; ");
            }
            put!(
                failed_cell,
                "<span class=\"err\">did not complete: {}</span>",
                escape(error)
            );
        }
        if failed_cell.is_empty() {
            failed_cell.push_str("<span class=\"muted\">none</span>");
        }
        put!(
            out,
            "<tr class=\"{}\"><td><a href=\"#run-{}\">run {}</a></td><td>{}</td><td>{}</td>\
             <td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{} / {}</td><td>{}</td></tr>\n",
            if run.passed { "pass" } else { "fail" },
            run.index,
            run.index,
            run.seed,
            badge(run.passed),
            escape(&run.started_at),
            duration(run.seconds),
            group(run.workload.operations),
            outcome_triple(run),
            applied,
            run.faults.len(),
            failed_cell
        );
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
}

fn replay(out: &mut String, report: &ExploreReport) {
    out.push_str("<section>\n<h2>Replay</h2>\n");
    let which = if report.runs.iter().any(|r| !r.passed) {
        "the first failing run"
    } else {
        "the first run"
    };
    put!(
        out,
        "<p class=\"muted\">Replays {which}: the seed alone decides the schedule and the \
         workload plan.</p>\n<pre class=\"cmd\"><code>{}</code></pre>\n</section>\n",
        escape(&report.replay)
    );
}

fn tuned(out: &mut String, report: &ExploreReport) {
    out.push_str("<section>\n<h2>Tuned environment</h2>\n");
    let rows: usize = report.tuned.values().map(|vars| vars.len()).sum();
    if rows == 0 {
        out.push_str(
            "<p class=\"muted\">None: every component ran with its own defaults.</p>\n\
             </section>\n",
        );
        return;
    }
    out.push_str(
        "<table class=\"kv\">\n<thead><tr><th>component</th><th>variable</th><th>value</th>\
         </tr></thead>\n<tbody>\n",
    );
    for (component, vars) in &report.tuned {
        for (name, value) in vars {
            put!(
                out,
                "<tr><td>{}</td><td><code>{}</code></td><td><code>{}</code></td></tr>\n",
                escape(component),
                escape(name),
                escape(value)
            );
        }
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
}

fn unsupported(out: &mut String, report: &ExploreReport) {
    out.push_str("<section>\n<h2>Unsupported fault kinds</h2>\n");
    if report.unsupported.is_empty() {
        out.push_str(
            "<p class=\"muted\">None: every fault kind of the catalog could be scheduled.</p>\n\
             </section>\n",
        );
        return;
    }
    out.push_str(
        "<p class=\"muted\">Left out of every schedule, because the engine cannot apply \
         them here.</p>\n<table class=\"kv\">\n<thead><tr><th>kind</th><th>reason</th></tr>\
         </thead>\n<tbody>\n",
    );
    for u in &report.unsupported {
        put!(
            out,
            "<tr><td><code>{}</code></td><td>{}</td></tr>\n",
            escape(&u.kind),
            escape(&u.reason)
        );
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
}

fn shrink_section(out: &mut String, shrink: &ShrinkReport) {
    out.push_str("<section>\n<h2>Shrink</h2>\n<dl class=\"kv\">\n");
    put!(
        out,
        "<dt>run</dt><dd>seed {}, keeping <code>{}</code> failing</dd>\n",
        shrink.run_seed,
        escape(&shrink.checker)
    );
    put!(
        out,
        "<dt>fault events</dt><dd><b>{}</b> → <b>{}</b></dd>\n",
        shrink.events_before,
        shrink.events_after
    );
    put!(
        out,
        "<dt>workload</dt><dd><code>{}</code> → <code>{}</code></dd>\n",
        escape(&shrink.params_before),
        escape(&shrink.params_after)
    );
    let flaky = shrink.reproduced < shrink.reproduction_runs;
    put!(
        out,
        "<dt>reproduced</dt><dd><span class=\"{}\"><b>{}/{}</b> re-runs</span> failed <code>{}</code> \
         again{}</dd>\n",
        if flaky || shrink.reproduced == 0 {
            "warn"
        } else {
            "good"
        },
        shrink.reproduced,
        shrink.reproduction_runs,
        escape(&shrink.checker),
        if flaky {
            " — flaky: the minimal scenario does not fail every time"
        } else {
            ""
        }
    );
    if let Some(back) = &shrink.stepped_back {
        put!(out, "<dt>stepped back</dt><dd>{}</dd>\n", escape(back));
    }
    put!(
        out,
        "<dt>search</dt><dd>{} in {}</dd>\n",
        plural(
            shrink.candidates as usize,
            "candidate run",
            "candidate runs"
        ),
        duration(shrink.seconds)
    );
    put!(
        out,
        "<dt>scenario</dt><dd><code>{}</code></dd>\n</dl>\n",
        escape(&shrink.scenario_file.display().to_string())
    );
    out.push_str("<h3>Remaining schedule</h3>\n");
    if shrink.remaining.is_empty() {
        out.push_str(
            "<p class=\"muted\">No fault remained: the workload alone fails the checker.</p>\n",
        );
    } else {
        out.push_str("<ol class=\"schedule\">\n");
        for line in &shrink.remaining {
            put!(out, "<li><code>{}</code></li>\n", escape(line));
        }
        out.push_str("</ol>\n");
    }
    out.push_str("</section>\n");
}

fn run_section(out: &mut String, run: &RunReport) {
    put!(
        out,
        "<section class=\"run\" id=\"run-{}\">\n<h2>Run {} {}</h2>\n",
        run.index,
        run.index,
        badge(run.passed)
    );
    let w = &run.workload;
    put!(
        out,
        "<p class=\"meta\">seed <b>{}</b> · started {} · {} wall time (workload, heal and \
         settle) · {} · {} workload",
        run.seed,
        escape(&run.started_at),
        duration(run.seconds),
        plural(w.clients as usize, "client", "clients"),
        duration(w.duration_s)
    );
    if let Some(file) = &run.scenario_file {
        put!(
            out,
            " · scenario <code>{}</code>",
            escape(&file.display().to_string())
        );
    }
    out.push_str("</p>\n");
    if let Some(error) = &run.error {
        put!(
            out,
            "<div class=\"error\"><b>The run did not complete:</b> {}</div>\n",
            escape(error)
        );
    }
    put!(
        out,
        "<figure>\n{}</figure>\n",
        timeline_svg(run, PAGE_CHART_WIDTH, timeline_height(run))
    );
    workload(out, run);
    faults_table(out, run);
    verdicts_table(out, &run.verdicts);
    out.push_str("</section>\n");
}

fn workload(out: &mut String, run: &RunReport) {
    let w = &run.workload;
    out.push_str("<h3>Workload</h3>\n<dl class=\"kv\">\n");
    put!(out, "<dt>operations</dt><dd>{}</dd>\n", group(w.operations));
    if !w.by_outcome.is_empty() {
        let parts: Vec<String> = w
            .by_outcome
            .iter()
            .map(|(k, v)| {
                let class = match k.as_str() {
                    "ok" => "o-ok",
                    "fail" => "o-fail",
                    "info" => "o-info",
                    _ => "",
                };
                format!("<span class=\"{class}\">{} {}</span>", escape(k), group(*v))
            })
            .collect();
        put!(out, "<dt>by outcome</dt><dd>{}</dd>\n", parts.join(" · "));
    }
    if !w.by_kind.is_empty() {
        let parts: Vec<String> = w
            .by_kind
            .iter()
            .map(|(k, v)| format!("<code>{}</code> {}", escape(k), group(*v)))
            .collect();
        put!(out, "<dt>by kind</dt><dd>{}</dd>\n", parts.join(" · "));
    }
    put!(
        out,
        "<dt>orders</dt><dd>{} sent (retries included), {} acknowledged with 202</dd>\n</dl>\n",
        group(w.orders_sent),
        group(w.orders_acknowledged)
    );
}

fn faults_table(out: &mut String, run: &RunReport) {
    out.push_str("<h3>Faults</h3>\n");
    if run.faults.is_empty() {
        out.push_str("<p class=\"muted\">The schedule had no fault.</p>\n");
        return;
    }
    out.push_str(
        "<table class=\"faults\">\n<thead><tr><th></th><th>fault</th><th>kind</th>\
         <th>targets</th><th>planned</th><th class=\"num\">applied</th>\
         <th class=\"num\">healed</th><th>status</th></tr></thead>\n<tbody>\n",
    );
    for (i, f) in run.faults.iter().enumerate() {
        let status = fault_status(f);
        let planned = if f.planned_s > 0.0 {
            format!("at {} for {}", seconds(f.at_s), duration(f.planned_s))
        } else {
            format!("at {} (one-shot)", seconds(f.at_s))
        };
        let mut targets = f
            .targets
            .iter()
            .map(|t| format!("<code>{}</code>", escape(t)))
            .collect::<Vec<_>>()
            .join(", ");
        let extra: Vec<&String> = f
            .components
            .iter()
            .filter(|c| {
                !f.targets
                    .iter()
                    .any(|t| t == *c || t.starts_with(&format!("{c}#")))
            })
            .collect();
        if !extra.is_empty() {
            let list: Vec<String> = extra.iter().map(|c| escape(c)).collect();
            put!(
                targets,
                "<br><span class=\"muted\">touches {}</span>",
                list.join(", ")
            );
        }
        put!(
            out,
            "<tr{}><td><span class=\"swatch\" style=\"background:{}\"></span></td>\
             <td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td>{}</td></tr>\n",
            if status.is_problem() {
                " class=\"fail\""
            } else {
                ""
            },
            fault_colour(i),
            escape(&f.name),
            escape(&f.kind),
            targets,
            planned,
            f.applied_s.map_or_else(|| "—".to_owned(), seconds),
            f.healed_s.map_or_else(|| "—".to_owned(), seconds),
            status.html(f)
        );
    }
    out.push_str("</tbody>\n</table>\n");
}

fn verdicts_table(out: &mut String, verdicts: &[Verdict]) {
    out.push_str("<h3>Verdicts</h3>\n");
    if verdicts.is_empty() {
        out.push_str("<p class=\"muted\">No checker ran.</p>\n");
        return;
    }
    let failed = verdicts.iter().filter(|v| !v.passed).count();
    put!(
        out,
        "<p class=\"muted\">{} of {} held.</p>\n",
        verdicts.len() - failed,
        plural(verdicts.len(), "invariant", "invariants")
    );
    out.push_str(
        "<table class=\"verdicts\">\n<thead><tr><th>checker</th><th>invariant</th>\
         <th>result</th><th>evidence</th></tr></thead>\n<tbody>\n",
    );
    for v in verdicts {
        put!(
            out,
            "<tr class=\"{}\"><td><code>{}</code></td><td>{}</td><td>{}</td><td>",
            if v.passed { "pass" } else { "fail" },
            escape(&v.checker),
            escape(&v.invariant),
            badge(v.passed)
        );
        evidence(out, &v.evidence);
        out.push_str("</td></tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
}

fn evidence(out: &mut String, lines: &[String]) {
    if lines.is_empty() {
        out.push_str("<span class=\"muted\">none</span>");
        return;
    }
    let list = |out: &mut String, lines: &[String]| {
        out.push_str("<ul class=\"ev\">");
        for line in lines {
            put!(out, "<li>{}</li>", escape(line));
        }
        out.push_str("</ul>");
    };
    if lines.len() <= EVIDENCE_SHOWN {
        list(out, lines);
        return;
    }
    let (shown, rest) = lines.split_at(EVIDENCE_PREVIEW);
    list(out, shown);
    put!(
        out,
        "<details><summary>{} more lines ({} in all)</summary>",
        rest.len(),
        lines.len()
    );
    list(out, rest);
    out.push_str("</details>");
}

/// What became of a fault, for its lane and its table row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FaultStatus {
    /// Applied, then healed.
    Healed,
    /// Applied and healed, but the engine reported an error on the way.
    HealedWithError,
    /// Applied and never healed.
    NotHealed,
    /// Never applied, with the engine's refusal.
    Refused,
    /// Never applied, no reason recorded (the run stopped before its time).
    NotApplied,
}

impl FaultStatus {
    fn is_problem(self) -> bool {
        !matches!(self, FaultStatus::Healed)
    }

    /// The lane's suffix after the fault's label.
    fn lane_note(self, f: &FaultWindow) -> Option<String> {
        let error = f.error.as_deref();
        match self {
            FaultStatus::Healed => None,
            FaultStatus::HealedWithError => Some(format!("error: {}", error.unwrap_or(""))),
            FaultStatus::NotHealed => Some(format!(
                "never healed: {}",
                error.unwrap_or("no heal recorded")
            )),
            FaultStatus::Refused => Some(format!("refused: {}", error.unwrap_or(""))),
            FaultStatus::NotApplied => Some("never applied".to_owned()),
        }
    }

    fn html(self, f: &FaultWindow) -> String {
        let error = f.error.as_deref().map(escape).unwrap_or_default();
        match self {
            FaultStatus::Healed => "<span class=\"good\">healed</span>".to_owned(),
            FaultStatus::HealedWithError => {
                format!("<span class=\"warn\">healed</span>; <span class=\"err\">{error}</span>")
            }
            FaultStatus::NotHealed if error.is_empty() => {
                "<span class=\"err\">never healed</span>".to_owned()
            }
            FaultStatus::NotHealed => {
                format!("<span class=\"err\">never healed: {error}</span>")
            }
            FaultStatus::Refused => format!("<span class=\"err\">refused: {error}</span>"),
            FaultStatus::NotApplied => {
                "<span class=\"muted\">never applied (the run stopped first)</span>".to_owned()
            }
        }
    }
}

fn fault_status(f: &FaultWindow) -> FaultStatus {
    match (f.applied_s, f.healed_s, &f.error) {
        (None, _, Some(_)) => FaultStatus::Refused,
        (None, _, None) => FaultStatus::NotApplied,
        (Some(_), None, _) => FaultStatus::NotHealed,
        (Some(_), Some(_), Some(_)) => FaultStatus::HealedWithError,
        (Some(_), Some(_), None) => FaultStatus::Healed,
    }
}

fn fault_colour(i: usize) -> &'static str {
    FAULT_COLOURS[i % FAULT_COLOURS.len()]
}

/// One run's timeline as a standalone SVG document of `width` × `height` user units: the
/// title and legend, operations per second stacked by outcome (left axis), p50 and p99
/// latency (right axis, log scale), fault windows shaded across the plot, the heal and
/// workload-end markers, the time axis and one labelled lane per fault.
///
/// Hover titles (`<title>`) give each second's counts and each fault's times in a browser;
/// rasterisers ignore them. The output only uses what `usvg` renders (no CSS, no
/// `dominant-baseline`), so the PNG shows exactly what the page shows.
pub(crate) fn timeline_svg(run: &RunReport, width: u32, height: u32) -> String {
    let chart = Chart::layout(run, f64::from(width), f64::from(height));
    let mut s = String::with_capacity(16 * 1024 + run.timeline.len() * 400);
    put!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"timeline\" width=\"{width}\" \
         height=\"{height}\" viewBox=\"0 0 {width} {height}\" \
         font-family=\"DejaVu Sans, Verdana, Arial, sans-serif\" font-size=\"11\" \
         role=\"img\" aria-label=\"timeline of run {}\">\n",
        run.index
    );
    put!(
        s,
        "<rect x=\"0\" y=\"0\" width=\"{width}\" height=\"{height}\" fill=\"#ffffff\"/>\n"
    );
    chart.title(&mut s, run);
    chart.legend(&mut s);
    chart.grid(&mut s);
    chart.fault_shading(&mut s, &run.faults);
    chart.bars(&mut s, &run.timeline);
    chart.latency(&mut s, &run.timeline);
    chart.markers(&mut s, run);
    chart.axes(&mut s);
    chart.lanes(&mut s, &run.faults);
    s.push_str("</svg>\n");
    s
}

/// A number formatted as an SVG coordinate: one decimal, and 0 for anything non-finite so a
/// damaged report cannot produce an unparsable document.
#[derive(Clone, Copy)]
struct P(f64);

impl fmt::Display for P {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = if self.0.is_finite() { self.0 } else { 0.0 };
        // Avoids "-0.0", which would make equal charts differ byte-wise.
        let v = if v.abs() < 0.05 { 0.0 } else { v };
        write!(f, "{v:.1}")
    }
}

/// Scales and frame of one timeline.
struct Chart {
    width: f64,
    /// Left edge of the plot.
    x0: f64,
    /// Right edge of the plot.
    x1: f64,
    /// Top of the plot.
    y0: f64,
    /// Bottom of the plot (the zero line of the operations axis).
    y1: f64,
    /// Top of the first fault lane.
    lanes_y: f64,
    lane_h: f64,
    lanes: usize,
    /// End of the time axis, seconds.
    t_end: f64,
    time_step: f64,
    /// Top of the operations axis, operations per second.
    ops_max: f64,
    ops_step: f64,
    /// Decades of the latency axis, as powers of ten (ms).
    lat_lo: i32,
    lat_hi: i32,
}

impl Chart {
    fn layout(run: &RunReport, width: f64, height: f64) -> Chart {
        let lanes = run.faults.len().max(1);
        let n = lanes as f64;
        let fixed = TOP + AXIS + LANE_GAP + BOTTOM;
        let mut lane_h = LANE;
        if height - fixed - n * lane_h < MIN_PLOT_HEIGHT {
            lane_h = ((height - fixed - MIN_PLOT_HEIGHT) / n).clamp(4.0, LANE);
        }
        let plot_h = (height - fixed - n * lane_h).max(20.0);
        let x0 = LEFT;
        let x1 = (width - RIGHT).max(x0 + 20.0);
        let y0 = TOP;
        let y1 = TOP + plot_h;

        let t_end = time_span(run);
        let time_step = nice_step(t_end, ((x1 - x0) / 70.0).max(2.0)).max(1.0);

        let peak = run
            .timeline
            .iter()
            .map(|b| (b.ok + b.fail + b.info) as f64)
            .fold(0.0, f64::max)
            .max(1.0);
        let ops_step = nice_step(peak, 5.0).max(1.0);
        let ops_max = (peak / ops_step).ceil() * ops_step;

        let (mut lo, mut hi) = (f64::INFINITY, 0.0_f64);
        for b in &run.timeline {
            for v in [b.p50_ms, b.p99_ms] {
                if v.is_finite() && v > 0.0 {
                    lo = lo.min(v);
                    hi = hi.max(v);
                }
            }
        }
        let (lat_lo, lat_hi) = if hi > 0.0 {
            // Decade exponents of real latencies stay within a few dozen.
            let lo = lo.log10().floor().clamp(-3.0, 6.0) as i32;
            let hi = hi.log10().ceil().clamp(-3.0, 7.0) as i32;
            (lo, hi.max(lo + 1))
        } else {
            (0, 3)
        };

        Chart {
            width,
            x0,
            x1,
            y0,
            y1,
            lanes_y: y1 + AXIS + LANE_GAP,
            lane_h,
            lanes,
            t_end,
            time_step,
            ops_max,
            ops_step,
            lat_lo,
            lat_hi,
        }
    }

    /// Bottom of the last lane.
    fn lanes_bottom(&self) -> f64 {
        self.lanes_y + self.lanes as f64 * self.lane_h
    }

    fn x(&self, t: f64) -> f64 {
        let t = if t.is_finite() { t } else { 0.0 };
        self.x0 + (t / self.t_end).clamp(0.0, 1.0) * (self.x1 - self.x0)
    }

    fn y_ops(&self, ops: f64) -> f64 {
        self.y1 - (ops / self.ops_max).clamp(0.0, 1.0) * (self.y1 - self.y0)
    }

    fn y_latency(&self, ms: f64) -> f64 {
        let lo = f64::from(self.lat_lo);
        let hi = f64::from(self.lat_hi);
        let f = ((ms.log10() - lo) / (hi - lo)).clamp(0.0, 1.0);
        self.y1 - f * (self.y1 - self.y0)
    }

    fn title(&self, s: &mut String, run: &RunReport) {
        let (label, colour) = if run.passed {
            ("PASS", OK_COLOUR)
        } else {
            ("FAIL", FAIL_COLOUR)
        };
        put!(
            s,
            "<text x=\"{}\" y=\"17\" font-size=\"13\" font-weight=\"bold\" fill=\"{INK}\">run {} \
             · seed {} <tspan fill=\"{colour}\">{label}</tspan></text>\n",
            P(self.x0),
            run.index,
            run.seed
        );
        let (ok, fail, info) = totals(run);
        let left_w = (format!("run {} · seed {} FAIL", run.index, run.seed)
            .chars()
            .count() as f64)
            * CHAR_WIDTH
            * 13.0
            / 11.0;
        let detail = format!(
            " · <tspan fill=\"{OK_COLOUR}\">ok {}</tspan> · <tspan fill=\"{FAIL_COLOUR}\">fail {}\
             </tspan> · <tspan fill=\"#b87410\">info {}</tspan> · {} · {} workload",
            group(ok),
            group(fail),
            group(info),
            plural(run.workload.clients as usize, "client", "clients"),
            duration(run.workload.duration_s)
        );
        let detail_chars = format!(
            " · ok {} · fail {} · info {} · {} · {} workload",
            group(ok),
            group(fail),
            group(info),
            plural(run.workload.clients as usize, "client", "clients"),
            duration(run.workload.duration_s)
        )
        .chars()
        .count();
        let ops = format!("{} ops", group(ok + fail + info));
        let right_w = (ops.chars().count() + detail_chars) as f64 * CHAR_WIDTH;
        let detail = if left_w + right_w + 24.0 <= self.x1 - self.x0 {
            detail
        } else {
            String::new()
        };
        put!(
            s,
            "<text x=\"{}\" y=\"17\" text-anchor=\"end\" fill=\"{MUTED}\">{ops}{detail}</text>\n",
            P(self.x1)
        );
    }

    fn legend(&self, s: &mut String) {
        let square = |fill: &str| {
            format!("<rect x=\"0\" y=\"-5\" width=\"12\" height=\"10\" fill=\"{fill}\"/>")
        };
        let items: [(String, &str, &str); 8] = [
            (square(OK_COLOUR), "ok", "ok"),
            (square(FAIL_COLOUR), "fail", "fail"),
            (square(INFO_COLOUR), "info (indeterminate)", "info"),
            (
                format!(
                    "<line x1=\"0\" y1=\"0\" x2=\"13\" y2=\"0\" stroke=\"{P50_COLOUR}\" \
                     stroke-width=\"2\"/>"
                ),
                "p50 latency",
                "p50",
            ),
            (
                format!(
                    "<line x1=\"0\" y1=\"0\" x2=\"13\" y2=\"0\" stroke=\"{P99_COLOUR}\" \
                     stroke-width=\"1.5\" stroke-dasharray=\"4 2\"/>"
                ),
                "p99 latency",
                "p99",
            ),
            (
                format!(
                    "<rect x=\"0\" y=\"-5\" width=\"12\" height=\"10\" fill=\"{}\" \
                     fill-opacity=\"0.3\" stroke=\"{}\"/>",
                    fault_colour(0),
                    fault_colour(0)
                ),
                "fault in effect",
                "fault",
            ),
            (
                format!(
                    "<rect x=\"0.5\" y=\"-4.5\" width=\"11\" height=\"9\" fill=\"none\" \
                     stroke=\"{MUTED}\" stroke-dasharray=\"3 2\"/>"
                ),
                "planned, never applied",
                "not applied",
            ),
            (
                format!(
                    "<line x1=\"6\" y1=\"-6\" x2=\"6\" y2=\"6\" stroke=\"{INK}\" \
                     stroke-width=\"1.5\" stroke-dasharray=\"3 2\"/>"
                ),
                "all healed",
                "healed",
            ),
        ];
        let advance = |label: &str| 18.0 + label.chars().count() as f64 * CHAR_WIDTH + 14.0;
        let room = self.width - 8.0 - self.x0;
        let long: f64 = items.iter().map(|(_, l, _)| advance(l)).sum();
        let use_long = long <= room;
        let mut x = self.x0;
        for (swatch, long, short) in &items {
            let label = if use_long { *long } else { *short };
            // On a very narrow chart the last items are left out rather than cut off.
            if x + advance(label) - 14.0 > self.width - 8.0 {
                break;
            }
            put!(
                s,
                "<g transform=\"translate({},36)\">{swatch}<text x=\"18\" y=\"4\" \
                 fill=\"{INK}\">{}</text></g>\n",
                P(x),
                escape(label)
            );
            x += advance(label);
        }
    }

    fn grid(&self, s: &mut String) {
        s.push_str("<g stroke-width=\"1\">\n");
        // Horizontal lines at the operations ticks.
        let mut v = self.ops_step;
        while v <= self.ops_max + 1e-9 {
            let y = self.y_ops(v);
            put!(
                s,
                "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{GRID}\"/>\n",
                P(self.x0),
                P(y),
                P(self.x1),
                P(y)
            );
            v += self.ops_step;
        }
        // Vertical lines at the time ticks, through the plot and the lanes, so a lane's
        // bar can be read against the same seconds as the bars above it.
        let mut t = self.time_step;
        while t < self.t_end - 1e-9 {
            let x = self.x(t);
            put!(
                s,
                "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{GRID}\"/>\n",
                P(x),
                P(self.y0),
                P(x),
                P(self.y1)
            );
            put!(
                s,
                "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{GRID}\" \
                 stroke-dasharray=\"2 3\"/>\n",
                P(x),
                P(self.lanes_y),
                P(x),
                P(self.lanes_bottom())
            );
            t += self.time_step;
        }
        s.push_str("</g>\n");
    }

    /// The span a fault is drawn over: when it was in effect, or its plan when it never was.
    fn fault_span(&self, f: &FaultWindow) -> (f64, f64, bool) {
        match f.applied_s {
            Some(applied) => (applied, f.healed_s.unwrap_or(self.t_end), true),
            None => (f.at_s, f.at_s + f.planned_s, false),
        }
    }

    /// Pixel extent of a span, at least 3 wide so one-shot faults stay visible.
    fn span_px(&self, from: f64, to: f64) -> (f64, f64) {
        let a = self.x(from);
        let b = self.x(to).max(a);
        if b - a < 3.0 {
            let mid = (a + b) / 2.0;
            (mid - 1.5, mid + 1.5)
        } else {
            (a, b)
        }
    }

    fn fault_shading(&self, s: &mut String, faults: &[FaultWindow]) {
        for (i, f) in faults.iter().enumerate() {
            let colour = fault_colour(i);
            let (from, to, applied) = self.fault_span(f);
            let (a, b) = self.span_px(from, to);
            let h = self.y1 - self.y0;
            put!(s, "<g><title>{}</title>", escape(&fault_tooltip(f)));
            if applied {
                put!(
                    s,
                    "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{colour}\" \
                     fill-opacity=\"0.13\"/>",
                    P(a),
                    P(self.y0),
                    P(b - a),
                    P(h)
                );
                // Edges from the top of the plot down to the fault's own lane.
                let lane_mid = self.lanes_y + i as f64 * self.lane_h + self.lane_h / 2.0;
                let mut edges = vec![a];
                if f.healed_s.is_some() && b - a >= 3.0 {
                    edges.push(b);
                }
                for x in edges {
                    put!(
                        s,
                        "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{colour}\" \
                         stroke-opacity=\"0.55\" stroke-width=\"1\"/>",
                        P(x),
                        P(self.y0),
                        P(x),
                        P(self.y1)
                    );
                    put!(
                        s,
                        "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{colour}\" \
                         stroke-opacity=\"0.35\" stroke-width=\"1\" stroke-dasharray=\"1 2\"/>",
                        P(x),
                        P(self.y1),
                        P(x),
                        P(lane_mid)
                    );
                }
            } else {
                put!(
                    s,
                    "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{colour}\" \
                     fill-opacity=\"0.04\" stroke=\"{colour}\" stroke-opacity=\"0.8\" \
                     stroke-dasharray=\"5 4\"/>",
                    P(a),
                    P(self.y0 + 0.5),
                    P(b - a),
                    P(h - 1.0)
                );
            }
            s.push_str("</g>\n");
        }
    }

    fn bars(&self, s: &mut String, timeline: &[Bucket]) {
        if timeline.is_empty() {
            put!(
                s,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"{MUTED}\" \
                 font-size=\"13\">no operation was recorded</text>\n",
                P((self.x0 + self.x1) / 2.0),
                P((self.y0 + self.y1) / 2.0)
            );
            return;
        }
        s.push_str("<g>\n");
        for b in timeline {
            let a = self.x(b.t_s);
            let e = self.x(b.t_s + 1.0);
            let inset = ((e - a) * 0.1).min(1.0);
            let (x, w) = (a + inset, (e - a - 2.0 * inset).max(0.5));
            put!(s, "<g><title>{}</title>", escape(&bucket_tooltip(b)));
            // An invisible full-height column, so the title shows over the whole second.
            put!(
                s,
                "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"#000000\" \
                 fill-opacity=\"0\"/>",
                P(a),
                P(self.y0),
                P(e - a),
                P(self.y1 - self.y0)
            );
            let mut base = 0.0;
            for (count, colour) in [
                (b.ok, OK_COLOUR),
                (b.fail, FAIL_COLOUR),
                (b.info, INFO_COLOUR),
            ] {
                if count == 0 {
                    continue;
                }
                let top = base + count as f64;
                let (ya, yb) = (self.y_ops(top), self.y_ops(base));
                put!(
                    s,
                    "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{colour}\"/>",
                    P(x),
                    P(ya),
                    P(w),
                    P((yb - ya).max(0.5))
                );
                base = top;
            }
            s.push_str("</g>\n");
        }
        s.push_str("</g>\n");
    }

    fn latency(&self, s: &mut String, timeline: &[Bucket]) {
        // p99 first, so the median is drawn on top where the two meet.
        let series = [
            (
                true,
                P99_COLOUR,
                " stroke-width=\"1.5\" stroke-dasharray=\"4 2\"",
            ),
            (false, P50_COLOUR, " stroke-width=\"2\""),
        ];
        for (p99, colour, style) in series {
            // A second without operations has no latency: the line breaks there instead of
            // pretending a value.
            let points: Vec<Option<(f64, f64)>> = timeline
                .iter()
                .map(|b| {
                    let v = if p99 { b.p99_ms } else { b.p50_ms };
                    let any = b.ok + b.fail + b.info > 0;
                    (any && v.is_finite() && v > 0.0)
                        .then(|| (self.x(b.t_s + 0.5), self.y_latency(v)))
                })
                .collect();
            let mut d = String::new();
            let mut dots = String::new();
            for (i, p) in points.iter().enumerate() {
                let Some((x, y)) = p else { continue };
                let prev = i > 0 && points[i - 1].is_some();
                let next = points.get(i + 1).is_some_and(Option::is_some);
                if prev {
                    put!(d, " L{} {}", P(*x), P(*y));
                } else {
                    put!(d, " M{} {}", P(*x), P(*y));
                }
                if !prev && !next {
                    put!(
                        dots,
                        "<circle cx=\"{}\" cy=\"{}\" r=\"2\" fill=\"{colour}\"/>",
                        P(*x),
                        P(*y)
                    );
                }
            }
            if !d.is_empty() {
                put!(
                    s,
                    // A white casing under the line keeps it legible over the bars.
                    "<path d=\"{d}\" fill=\"none\" stroke=\"#ffffff\" stroke-opacity=\"0.75\" \
                     stroke-width=\"4\" stroke-linejoin=\"round\"/>\n<path d=\"{d}\" \
                     fill=\"none\" stroke=\"{colour}\"{style} stroke-linejoin=\"round\"/>\n",
                    d = d.trim_start()
                );
            }
            s.push_str(&dots);
        }
    }

    fn markers(&self, s: &mut String, run: &RunReport) {
        let end = run.workload.duration_s;
        let mut end_x = None;
        if end.is_finite() && end > 0.0 && end < self.t_end - 1e-6 {
            let x = self.x(end);
            end_x = Some(x);
            put!(
                s,
                "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{MUTED}\" \
                 stroke-width=\"1.5\"/>\n<text x=\"{}\" y=\"{}\" text-anchor=\"end\" \
                 fill=\"{MUTED}\">workload end</text>\n",
                P(x),
                P(self.y0 - 2.0),
                P(x),
                P(self.y1),
                P(x - 3.0),
                P(self.y0 - 5.0)
            );
        }
        let applied: Vec<&FaultWindow> = run
            .faults
            .iter()
            .filter(|f| f.applied_s.is_some())
            .collect();
        if applied.is_empty() {
            return;
        }
        if applied.iter().all(|f| f.healed_s.is_some()) {
            let t = applied
                .iter()
                .filter_map(|f| f.healed_s)
                .fold(0.0, f64::max);
            let x = self.x(t);
            let px = P(x);
            // Both labels sit just above the plot; the heal label goes to the right of its
            // line, the workload-end label to the left of its own, so they only meet when
            // the heal lands right before the workload's end.
            let near_end = end_x.is_some_and(|ex| (ex - x) > 0.0 && (ex - x) < 110.0);
            let (anchor, lx) = if near_end || x > self.x1 - 110.0 {
                ("end", x - 3.0)
            } else {
                ("start", x + 3.0)
            };
            let ly = if near_end && end_x.is_some_and(|ex| (ex - x) < 80.0) {
                self.y0 + 12.0
            } else {
                self.y0 - 5.0
            };
            put!(
                s,
                "<g><title>every applied fault was reverted and its containers ready again \
                 at {}</title><path d=\"M{px} {} V{} M{px} {} V{}\" stroke=\"{INK}\" \
                 stroke-width=\"1.5\" stroke-dasharray=\"4 3\"/><text x=\"{}\" y=\"{}\" \
                 text-anchor=\"{anchor}\" fill=\"{INK}\" font-weight=\"bold\">all healed {}</text>\
                 </g>\n",
                seconds(t),
                // Over the plot and the lanes, not through the time axis' labels.
                P(self.y0 - 2.0),
                P(self.y1),
                P(self.lanes_y),
                P(self.lanes_bottom()),
                P(lx),
                P(ly),
                seconds(t)
            );
        } else {
            put!(
                s,
                // Top left, where no marker label goes: the heal marker is missing and the
                // workload-end label sits at the right.
                "<text x=\"{}\" y=\"{}\" fill=\"{ERROR_INK}\" font-weight=\"bold\">no heal: \
                 a fault was never reverted</text>\n",
                P(self.x0 + 2.0),
                P(self.y0 - 5.0)
            );
        }
    }

    fn axes(&self, s: &mut String) {
        let (x0, x1, y0, y1) = (self.x0, self.x1, self.y0, self.y1);
        put!(
            s,
            "<g stroke=\"{INK}\" stroke-width=\"1\" fill=\"none\"><line x1=\"{}\" y1=\"{}\" \
             x2=\"{}\" y2=\"{}\"/><line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/><line x1=\"{}\" \
             y1=\"{}\" x2=\"{}\" y2=\"{}\"/></g>\n",
            P(x0),
            P(y1),
            P(x1),
            P(y1),
            P(x0),
            P(y0),
            P(x0),
            P(y1),
            P(x1),
            P(y0),
            P(x1),
            P(y1)
        );
        // Operations axis, left.
        s.push_str("<g fill=\"#3b4248\" text-anchor=\"end\">\n");
        let mut v = 0.0;
        while v <= self.ops_max + 1e-9 {
            let y = self.y_ops(v);
            put!(
                s,
                "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{INK}\"/>\
                 <text x=\"{}\" y=\"{}\">{}</text>\n",
                P(x0 - 4.0),
                P(y),
                P(x0),
                P(y),
                P(x0 - 6.0),
                P(y + 4.0),
                group(v.round() as u64)
            );
            v += self.ops_step;
        }
        s.push_str("</g>\n");
        put!(
            s,
            "<text transform=\"translate({},{}) rotate(-90)\" text-anchor=\"middle\" \
             fill=\"{INK}\">operations / s</text>\n",
            P(15.0),
            P((y0 + y1) / 2.0)
        );
        // Latency axis, right, one tick per decade.
        s.push_str("<g fill=\"#3b4248\" text-anchor=\"start\">\n");
        for e in self.lat_lo..=self.lat_hi {
            let ms = 10f64.powi(e);
            let y = self.y_latency(ms);
            put!(
                s,
                "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{INK}\"/>\
                 <text x=\"{}\" y=\"{}\">{}</text>\n",
                P(x1),
                P(y),
                P(x1 + 4.0),
                P(y),
                P(x1 + 6.0),
                P(y + 4.0),
                latency_label(e)
            );
            // Minor ticks at 2× and 5× the decade.
            if e < self.lat_hi {
                for m in [2.0, 5.0] {
                    let y = self.y_latency(ms * m);
                    put!(
                        s,
                        "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{MUTED}\"/>\n",
                        P(x1),
                        P(y),
                        P(x1 + 2.5),
                        P(y)
                    );
                }
            }
        }
        s.push_str("</g>\n");
        put!(
            s,
            "<text transform=\"translate({},{}) rotate(90)\" text-anchor=\"middle\" \
             fill=\"{INK}\">latency (log)</text>\n",
            P(self.width - 12.0),
            P((y0 + y1) / 2.0)
        );
        // Time axis, bottom.
        s.push_str("<g fill=\"#3b4248\" text-anchor=\"middle\">\n");
        let mut t = 0.0;
        while t <= self.t_end + 1e-9 {
            let x = self.x(t);
            put!(
                s,
                "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{INK}\"/>\
                 <text x=\"{}\" y=\"{}\">{}</text>\n",
                P(x),
                P(y1),
                P(x),
                P(y1 + 4.0),
                P(x),
                P(y1 + 15.0),
                number(t)
            );
            t += self.time_step;
        }
        s.push_str("</g>\n");
        put!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"{INK}\">seconds since the \
             workload's start</text>\n",
            P((x0 + x1) / 2.0),
            P(y1 + 29.0)
        );
    }

    fn lanes(&self, s: &mut String, faults: &[FaultWindow]) {
        let font = (self.lane_h * 0.58).clamp(5.0, 11.0);
        if faults.is_empty() {
            put!(
                s,
                "<text x=\"{}\" y=\"{}\" fill=\"{MUTED}\" font-size=\"{}\">no fault was \
                 scheduled in this run</text>\n",
                P(self.x0 + 4.0),
                P(self.lanes_y + self.lane_h / 2.0 + font * 0.36),
                P(font)
            );
            return;
        }
        for (i, f) in faults.iter().enumerate() {
            let colour = fault_colour(i);
            let top = self.lanes_y + i as f64 * self.lane_h;
            let status = fault_status(f);
            if i % 2 == 0 {
                put!(
                    s,
                    "<rect x=\"0\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"#f5f7f9\"/>\n",
                    P(top),
                    P(self.width),
                    P(self.lane_h)
                );
            }
            let (from, to, applied) = self.fault_span(f);
            let (a, b) = self.span_px(from, to);
            let pad = (self.lane_h * 0.17).min(3.5);
            put!(s, "<g><title>{}</title>", escape(&fault_tooltip(f)));
            if applied {
                put!(
                    s,
                    "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"2\" \
                     fill=\"{colour}\" fill-opacity=\"0.4\" stroke=\"{colour}\"/>",
                    P(a),
                    P(top + pad),
                    P(b - a),
                    P(self.lane_h - 2.0 * pad)
                );
                if status == FaultStatus::NotHealed {
                    // An arrow head at the axis' end: the fault outlived the chart.
                    let ym = top + self.lane_h / 2.0;
                    put!(
                        s,
                        "<path d=\"M{} {} L{} {} L{} {} Z\" fill=\"{ERROR_INK}\"/>",
                        P(b),
                        P(ym - 5.0),
                        P(b + 7.0),
                        P(ym),
                        P(b),
                        P(ym + 5.0)
                    );
                }
            } else {
                put!(
                    s,
                    "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"2\" fill=\"none\" \
                     stroke=\"{colour}\" stroke-width=\"1.2\" stroke-dasharray=\"4 3\"/>",
                    P(a),
                    P(top + pad),
                    P(b - a),
                    P(self.lane_h - 2.0 * pad)
                );
                if status == FaultStatus::Refused {
                    // A cross over the planned window's start: it never happened.
                    let (cx, cy) = (a + 6.0_f64.min((b - a) / 2.0), top + self.lane_h / 2.0);
                    let r = (self.lane_h * 0.2).min(4.0);
                    put!(
                        s,
                        "<path d=\"M{} {} L{} {} M{} {} L{} {}\" stroke=\"{ERROR_INK}\" \
                         stroke-width=\"1.8\"/>",
                        P(cx - r),
                        P(cy - r),
                        P(cx + r),
                        P(cy + r),
                        P(cx - r),
                        P(cy + r),
                        P(cx + r),
                        P(cy - r)
                    );
                }
            }
            self.lane_label(s, f, status, (a, b), top, font);
            s.push_str("</g>\n");
        }
    }

    /// The lane's text: next to the bar where there is room, inside it when the bar
    /// spans most of the axis.
    fn lane_label(
        &self,
        s: &mut String,
        f: &FaultWindow,
        status: FaultStatus,
        (a, b): (f64, f64),
        top: f64,
        font: f64,
    ) {
        let label = fault_label(f);
        let note = status.lane_note(f);
        let char_w = CHAR_WIDTH * font / 11.0;
        let full = label.chars().count() + note.as_ref().map_or(0, |n| n.chars().count() + 3);
        let needed = full as f64 * char_w;
        let right_room = self.width - 6.0 - (b + 6.0);
        let left_room = a - 6.0 - 6.0;
        // Beside the bar, on the side where the whole label fits; else on the roomier side,
        // cut; inside the bar only when neither side has room for a useful label.
        let (x, anchor, room) = if needed <= right_room {
            (b + 6.0, "start", right_room)
        } else if needed <= left_room {
            (a - 6.0, "end", left_room)
        } else if right_room.max(left_room) >= 160.0 {
            if right_room >= left_room {
                (b + 6.0, "start", right_room)
            } else {
                (a - 6.0, "end", left_room)
            }
        } else {
            let x = a.max(0.0) + 6.0;
            (x, "start", self.width - 6.0 - x)
        };
        let budget = (room / char_w).floor().max(4.0) as usize;
        let label_len = label.chars().count();
        let (label, note) = match note {
            Some(note) if label_len + 3 + 8 <= budget => {
                (label, Some(truncate(&note, budget - label_len - 3)))
            }
            // A cut label keeps the status, which matters more than the targets.
            Some(note) if budget > 8 + 3 + 12 => {
                let note = truncate(&note, (budget / 2).max(8));
                let rest = budget - note.chars().count() - 3;
                (truncate(&label, rest), Some(note))
            }
            _ => (truncate(&label, budget), None),
        };
        let baseline = top + self.lane_h / 2.0 + font * 0.36;
        put!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"{anchor}\" font-size=\"{}\" \
             fill=\"{INK}\" stroke=\"#ffffff\" stroke-width=\"3\" stroke-opacity=\"0.85\" \
             stroke-linejoin=\"round\" paint-order=\"stroke\">{}",
            P(x),
            P(baseline),
            P(font),
            escape(&label)
        );
        if let Some(note) = note {
            let colour = if status == FaultStatus::NotApplied {
                MUTED
            } else {
                ERROR_INK
            };
            // A no-break space: usvg drops an ordinary one at the start of a tspan.
            put!(
                s,
                "<tspan fill=\"{colour}\">\u{a0}— {}</tspan>",
                escape(&note)
            );
        }
        s.push_str("</text>");
    }
}

/// The end of the time axis: the workload's planned length, its last second, or the last
/// fault event, whichever is latest.
fn time_span(run: &RunReport) -> f64 {
    // A non-finite time (a damaged report) is skipped rather than stretching the axis.
    let finite = |t: f64| if t.is_finite() { t } else { 0.0 };
    let mut end = finite(run.workload.duration_s);
    for b in &run.timeline {
        end = end.max(finite(b.t_s + 1.0));
    }
    for f in &run.faults {
        end = end.max(finite(f.at_s + f.planned_s));
        for t in [f.applied_s, f.healed_s].into_iter().flatten() {
            end = end.max(finite(t));
        }
    }
    if end > 0.0 {
        end
    } else {
        1.0
    }
}

/// A round step (1, 2 or 5 × 10ⁿ) that cuts `span` into about `ticks` pieces.
fn nice_step(span: f64, ticks: f64) -> f64 {
    let raw = span / ticks;
    if !raw.is_finite() || raw <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    let norm = raw / magnitude;
    let nice = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

fn latency_label(decade: i32) -> String {
    match decade {
        d if d < 0 => format!("{} ms", 10f64.powi(d)),
        0..=2 => format!("{} ms", 10i64.pow(decade.unsigned_abs())),
        d => format!("{} s", 10i64.pow((d - 3).unsigned_abs())),
    }
}

fn fault_label(f: &FaultWindow) -> String {
    let mut label = format!("{} · {}", f.name, f.kind);
    if !f.targets.is_empty() {
        label.push_str(" → ");
        label.push_str(&f.targets.join(", "));
    }
    label
}

fn fault_tooltip(f: &FaultWindow) -> String {
    let mut t = fault_label(f);
    if f.planned_s > 0.0 {
        put!(
            t,
            "\nplanned at {} for {}",
            seconds(f.at_s),
            duration(f.planned_s)
        );
    } else {
        put!(t, "\nplanned at {} (one-shot)", seconds(f.at_s));
    }
    match f.applied_s {
        Some(a) => put!(t, "\napplied at {}", seconds(a)),
        None => t.push_str("\nnever applied"),
    }
    match (f.applied_s, f.healed_s) {
        (Some(a), Some(h)) => put!(
            t,
            ", healed at {} ({} in effect)",
            seconds(h),
            duration(h - a)
        ),
        (Some(_), None) => t.push_str(", never healed"),
        _ => {}
    }
    if !f.components.is_empty() {
        put!(t, "\ncomponents: {}", f.components.join(", "));
    }
    if let Some(error) = &f.error {
        put!(t, "\nerror: {error}");
    }
    t
}

fn bucket_tooltip(b: &Bucket) -> String {
    let mut t = format!(
        "{}–{}: ok {}, fail {}, info {}",
        seconds(b.t_s),
        seconds(b.t_s + 1.0),
        b.ok,
        b.fail,
        b.info
    );
    if b.ok + b.fail + b.info > 0 {
        put!(
            t,
            "\np50 {} ms, p99 {} ms",
            number(b.p50_ms),
            number(b.p99_ms)
        );
    }
    t
}

fn totals(run: &RunReport) -> (u64, u64, u64) {
    run.timeline
        .iter()
        .fold((0, 0, 0), |(o, f, i), b| (o + b.ok, f + b.fail, i + b.info))
}

fn outcome_triple(run: &RunReport) -> String {
    let get = |k: &str| run.workload.by_outcome.get(k).copied().unwrap_or(0);
    let (ok, fail, info) = if run.workload.by_outcome.is_empty() {
        totals(run)
    } else {
        (get("ok"), get("fail"), get("info"))
    };
    format!(
        "<span class=\"o-ok\">{}</span> / <span class=\"o-fail\">{}</span> / \
         <span class=\"o-info\">{}</span>",
        group(ok),
        group(fail),
        group(info)
    )
}

/// Cuts `text` to at most `max` characters, marking the cut with an ellipsis.
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A count with thin thousands separators (`12 345`).
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{202f}');
        }
        out.push(c);
    }
    out
}

/// A number of seconds or milliseconds: whole when it is, one decimal otherwise.
fn number(v: f64) -> String {
    if !v.is_finite() {
        return "?".to_owned();
    }
    let s = if (v - v.round()).abs() < 0.05 {
        format!("{:.0}", v.round())
    } else {
        format!("{v:.1}")
    };
    if s == "-0" || s == "-0.0" {
        "0".to_owned()
    } else {
        s
    }
}

/// A point on the run's clock (`12.5 s`).
fn seconds(v: f64) -> String {
    format!("{} s", number(v))
}

/// A length of time (`12.5 s`, `3 min 20 s`).
fn duration(v: f64) -> String {
    if !v.is_finite() || v < 60.0 {
        return seconds(v);
    }
    let whole = v.round() as u64;
    let (h, m, s) = (whole / 3600, (whole / 60) % 60, whole % 60);
    match (h, s) {
        (0, 0) => format!("{m} min"),
        (0, _) => format!("{m} min {s} s"),
        _ => format!("{h} h {m} min"),
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// The page's stylesheet. Colours of outcomes match the chart's.
const CSS: &str = "\
:root{--ok:#4e9f50;--fail:#d9453d;--info:#eea236;--ink:#1d2125;--muted:#66717c;\
--line:#dfe3e8;--panel:#f5f7f9;--err:#b3261e}
*{box-sizing:border-box}
body{margin:0;background:#fff;color:var(--ink);\
font:14px/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,\"DejaVu Sans\",sans-serif}
main{max-width:1180px;margin:0 auto;padding:28px 24px 64px}
header{margin-bottom:8px}
h1{font-size:26px;margin:0 0 4px;font-weight:650}
h1 .project{color:var(--muted);font-weight:500}
h2{font-size:19px;margin:36px 0 10px;padding-bottom:5px;border-bottom:2px solid var(--line)}
h3{font-size:15px;margin:22px 0 6px}
p{margin:6px 0}
.sub{color:var(--muted);margin:0 0 12px}
.sub b{color:var(--ink)}
a{color:#1f5fa8;text-decoration:none}
a:hover{text-decoration:underline}
nav.runs-nav{display:flex;flex-wrap:wrap;gap:6px}
.chip{border:1px solid var(--line);border-radius:14px;padding:2px 10px;font-size:13px;\
color:var(--ink);border-left-width:5px}
.chip.pass{border-left-color:var(--ok)}
.chip.fail{border-left-color:var(--fail)}
table{border-collapse:collapse;width:100%;margin:4px 0 10px;font-size:13.5px}
th,td{text-align:left;vertical-align:top;padding:5px 9px;border-bottom:1px solid var(--line)}
th{background:var(--panel);font-weight:600;font-size:12.5px;color:#3b4248;white-space:nowrap}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
table.kv{width:auto;min-width:50%}
tr.fail td{background:#fdf1f0}
code,pre{font-family:ui-monospace,\"DejaVu Sans Mono\",Menlo,Consolas,monospace;\
font-size:12.5px}
td code{word-break:break-word}
pre.cmd{background:#1d2125;color:#eef0f2;padding:11px 14px;border-radius:6px;\
white-space:pre-wrap;word-break:break-all;margin:6px 0}
.badge{display:inline-block;padding:1px 9px;border-radius:11px;font-size:12px;font-weight:700;\
letter-spacing:.05em;color:#fff;vertical-align:middle}
.badge.pass{background:var(--ok)}
.badge.fail{background:var(--fail)}
.badge.none{background:var(--muted)}
.muted{color:var(--muted)}
.err{color:var(--err)}
.warn{color:#a15c00;font-weight:600}
.good{color:#2f7d32}
.o-ok{color:#2f7d32}
.o-fail{color:var(--err)}
.o-info{color:#a15c00}
.error{border-left:4px solid var(--fail);background:#fdf1f0;padding:9px 13px;margin:10px 0;\
border-radius:0 4px 4px 0}
.meta{color:var(--muted)}
.meta b{color:var(--ink)}
figure{margin:14px 0 6px;border:1px solid var(--line);border-radius:6px;padding:6px;\
overflow-x:auto}
svg.timeline{display:block;width:100%;height:auto}
.swatch{display:inline-block;width:12px;height:12px;border-radius:2px;vertical-align:middle}
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:3px 18px;margin:4px 0 8px}
dl.kv dt{color:var(--muted)}
dl.kv dd{margin:0}
ul.ev{margin:0;padding-left:16px;font-family:ui-monospace,\"DejaVu Sans Mono\",Menlo,\
Consolas,monospace;font-size:12px}
ul.ev li{margin:1px 0;word-break:break-word}
details summary{cursor:pointer;color:var(--muted);font-size:12.5px;margin:3px 0}
ol.schedule{margin:4px 0;padding-left:24px}
section.run{margin-top:44px}
section.run h2{border-bottom-color:#c9d0d7}
footer{margin-top:48px;color:var(--muted);font-size:12px;border-top:1px solid var(--line);\
padding-top:10px}
";

#[cfg(test)]
pub(crate) mod tests {
    use std::path::PathBuf;

    use indexmap::IndexMap;

    use super::*;
    use crate::report::model::{
        ShrinkReport, Unsupported, Verdict, WorkloadSummary, REPORT_VERSION,
    };

    /// A hostile evidence line: the page must show it as text, never run it.
    pub(crate) const XSS: &str = "<script>alert('x')</script>";

    fn timeline(seconds: usize, trouble: impl Fn(usize) -> (u64, u64, f64)) -> Vec<Bucket> {
        (0..seconds)
            .map(|i| {
                let (fail, info, slow) = trouble(i);
                let ok = 40 + (i as u64 * 7) % 9 - fail.min(30);
                Bucket {
                    t_s: i as f64,
                    ok,
                    fail,
                    info,
                    p50_ms: 8.0 * slow + (i % 3) as f64,
                    p99_ms: 45.0 * slow + (i % 5) as f64 * 3.0,
                }
            })
            .collect()
    }

    fn workload(timeline: &[Bucket]) -> WorkloadSummary {
        let (ok, fail, info) = timeline
            .iter()
            .fold((0, 0, 0), |(o, f, i), b| (o + b.ok, f + b.fail, i + b.info));
        let mut by_outcome = IndexMap::new();
        by_outcome.insert("ok".to_owned(), ok);
        by_outcome.insert("fail".to_owned(), fail);
        by_outcome.insert("info".to_owned(), info);
        let mut by_kind = IndexMap::new();
        by_kind.insert("browse".to_owned(), (ok + fail + info) * 3 / 4);
        by_kind.insert("place_order".to_owned(), (ok + fail + info) / 4);
        WorkloadSummary {
            clients: 8,
            duration_s: 30.0,
            operations: ok + fail + info,
            by_outcome,
            by_kind,
            orders_sent: (ok + fail + info) / 4 + 9,
            orders_acknowledged: (ok + fail + info) / 4 - 3,
        }
    }

    /// Two runs of 30 s: run 0 passes with one fault; run 1 fails with three faults, one of
    /// them refused, and a failing checker whose evidence holds markup.
    pub(crate) fn sample_report() -> ExploreReport {
        let calm = timeline(30, |i| {
            if (8..12).contains(&i) {
                (2, 1, 3.0)
            } else {
                (0, 0, 1.0)
            }
        });
        let rough = timeline(30, |i| match i {
            5..=14 => (1, 0, 12.0),
            20..=22 => (25, 6, 30.0),
            _ => (0, 0, 1.0),
        });
        let passing = RunReport {
            index: 0,
            seed: 42,
            passed: true,
            started_at: "2026-05-01T10:00:00Z".to_owned(),
            seconds: 41.5,
            scenario_file: Some(PathBuf::from("target/explore/run-0.toml")),
            faults: vec![FaultWindow {
                name: "f1-pause-redis".to_owned(),
                kind: "pause".to_owned(),
                targets: vec!["redis".to_owned()],
                components: vec!["redis".to_owned()],
                at_s: 8.0,
                planned_s: 4.0,
                applied_s: Some(8.1),
                healed_s: Some(12.3),
                error: None,
            }],
            workload: workload(&calm),
            timeline: calm,
            verdicts: vec![Verdict {
                checker: "money-balance".to_owned(),
                invariant: "every charge is matched by one confirmed order".to_owned(),
                passed: true,
                evidence: vec!["212 orders, 212 charges".to_owned()],
            }],
            error: None,
        };
        let mut evidence: Vec<String> = (0..12)
            .map(|i| {
                format!(
                    "order o-{i:03}: charged twice (payment p-{i:03}, p-{:03})",
                    i + 100
                )
            })
            .collect();
        evidence.insert(2, format!("request body {XSS}"));
        let failing = RunReport {
            index: 1,
            seed: 43,
            passed: false,
            started_at: "2026-05-01T10:01:00Z".to_owned(),
            seconds: 44.2,
            scenario_file: Some(PathBuf::from("target/explore/run-1.toml")),
            faults: vec![
                FaultWindow {
                    name: "f1-latency-postgres".to_owned(),
                    kind: "latency 200ms±50ms".to_owned(),
                    targets: vec!["postgres".to_owned()],
                    components: vec!["postgres".to_owned(), "order-service".to_owned()],
                    at_s: 5.0,
                    planned_s: 10.0,
                    applied_s: Some(5.2),
                    healed_s: Some(15.4),
                    error: None,
                },
                FaultWindow {
                    name: "f2-loss-rabbitmq".to_owned(),
                    kind: "loss 30%".to_owned(),
                    targets: vec!["rabbitmq".to_owned()],
                    components: vec!["rabbitmq".to_owned()],
                    at_s: 12.0,
                    planned_s: 6.0,
                    applied_s: None,
                    healed_s: None,
                    error: Some("tc: netem qdisc not available in this kernel".to_owned()),
                },
                FaultWindow {
                    name: "f3-kill-product-service".to_owned(),
                    kind: "kill SIGKILL".to_owned(),
                    targets: vec!["product-service#1".to_owned()],
                    components: vec!["product-service".to_owned()],
                    at_s: 20.0,
                    planned_s: 0.0,
                    applied_s: Some(20.1),
                    healed_s: Some(23.6),
                    error: None,
                },
            ],
            workload: workload(&rough),
            timeline: rough,
            verdicts: vec![
                Verdict {
                    checker: "money-balance".to_owned(),
                    invariant: "every charge is matched by one confirmed order".to_owned(),
                    passed: false,
                    evidence,
                },
                Verdict {
                    checker: "acked-orders-survive".to_owned(),
                    invariant: "every order acknowledged with 202 reaches a final state".to_owned(),
                    passed: true,
                    evidence: vec!["198 acknowledged, 198 final".to_owned()],
                },
            ],
            error: None,
        };
        let mut order_env = IndexMap::new();
        order_env.insert("ORDER_SAGA_TIMEOUT_MS".to_owned(), "1500".to_owned());
        order_env.insert("ORDER_RETRY_BUDGET".to_owned(), "0.2".to_owned());
        let mut tuned = IndexMap::new();
        tuned.insert("order-service".to_owned(), order_env);
        ExploreReport {
            version: REPORT_VERSION,
            project: "shop & co".to_owned(),
            seed: 42,
            replay: "msctl explore --seed 43 --runs 1 --duration 30s".to_owned(),
            tuned,
            unsupported: vec![Unsupported {
                kind: "loss".to_owned(),
                reason: "sch_netem is not loaded in the engine's kernel".to_owned(),
            }],
            runs: vec![passing, failing],
            shrink: Some(ShrinkReport {
                run_seed: 43,
                checker: "money-balance".to_owned(),
                events_before: 3,
                events_after: 1,
                params_before: "clients=8 duration=30s".to_owned(),
                params_after: "clients=2 duration=12s".to_owned(),
                candidates: 17,
                seconds: 734.0,
                scenario_file: PathBuf::from("target/explore/shrunk-43.toml"),
                reproduced: 4,
                reproduction_runs: 5,
                stepped_back: None,
                remaining: vec!["at 2s kill SIGKILL product-service#1".to_owned()],
            }),
        }
    }

    #[test]
    fn the_page_names_every_fault_and_every_verdict() {
        let report = sample_report();
        let page = html(&report);
        for run in &report.runs {
            for f in &run.faults {
                assert!(page.contains(&f.name), "{} missing", f.name);
            }
            for v in &run.verdicts {
                assert!(page.contains(&v.checker));
                assert!(page.contains(&v.invariant));
            }
        }
        assert!(page.contains("FAIL") && page.contains("PASS"));
        assert!(page.contains("id=\"run-0\"") && page.contains("id=\"run-1\""));
    }

    #[test]
    fn evidence_markup_is_escaped() {
        // Evidence quotes bodies the system under test produced; unescaped, a report could
        // run a script in whoever opens it.
        let page = html(&sample_report());
        assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
        assert!(!page.contains("<script"));
        assert!(page.contains("shop &amp; co"));
    }

    #[test]
    fn the_page_links_to_nothing_outside_itself() {
        // The page must open offline and leak nothing: the SVG namespace is the only URL.
        let page = html(&sample_report());
        let rest = page.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
        assert!(!rest.contains("http://"), "an http URL in the page");
        assert!(!rest.contains("https://"), "an https URL in the page");
        assert!(!rest.contains("src="), "an external resource in the page");
    }

    #[test]
    fn the_same_report_gives_the_same_bytes() {
        let report = sample_report();
        assert_eq!(html(&report), html(&report));
        let json = serde_json::to_string(&report).expect("the report serialises");
        let again: ExploreReport = serde_json::from_str(&json).expect("and reads back");
        assert_eq!(html(&report), html(&again));
    }

    #[test]
    fn long_evidence_is_collapsed_and_short_evidence_is_not() {
        let page = html(&sample_report());
        assert_eq!(page.matches("<details>").count(), 1);
        assert!(page.contains("9 more lines (13 in all)"));
    }

    #[test]
    fn a_refused_fault_is_dashed_and_shows_its_error() {
        let report = sample_report();
        let svg = timeline_svg(&report.runs[1], 1000, timeline_height(&report.runs[1]));
        assert!(svg.contains("refused: tc: netem"));
        assert!(svg.contains("stroke-dasharray=\"5 4\""));
        assert!(svg.contains("all healed 23.6 s"));
        let page = html(&report);
        assert!(page.contains("refused: tc: netem qdisc not available in this kernel"));
    }

    #[test]
    fn the_header_has_replay_tuned_unsupported_and_shrink() {
        let page = html(&sample_report());
        assert!(page.contains("msctl explore --seed 43 --runs 1 --duration 30s"));
        assert!(page.contains("ORDER_SAGA_TIMEOUT_MS") && page.contains("1500"));
        assert!(page.contains("sch_netem is not loaded"));
        assert!(page.contains("<b>3</b> → <b>1</b>"));
        assert!(page.contains("<b>4/5</b>"));
        assert!(page.contains("target/explore/shrunk-43.toml"));
        assert!(page.contains("at 2s kill SIGKILL product-service#1"));
    }

    #[test]
    fn an_empty_or_damaged_report_still_renders() {
        let mut report = sample_report();
        report.runs[0].timeline.clear();
        report.runs[0].faults.clear();
        report.runs[0].verdicts.clear();
        report.runs[1].timeline[3].p99_ms = f64::NAN;
        report.runs[1].faults[0].healed_s = Some(f64::INFINITY);
        report.runs[1].workload.duration_s = 0.0;
        let page = html(&report);
        assert!(page.contains("no operation was recorded"));
        assert!(!page.contains("NaN") && !page.contains("=\"inf"));
        report.runs.clear();
        report.shrink = None;
        assert!(html(&report).contains("NO RUNS"));
    }

    #[test]
    fn escape_covers_markup_quotes_and_control_characters() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>\u{1}"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;\u{fffd}"
        );
    }

    #[test]
    fn axis_steps_are_round() {
        assert_eq!(nice_step(30.0, 10.0), 5.0);
        assert_eq!(nice_step(47.0, 5.0), 10.0);
        assert_eq!(nice_step(0.0, 5.0), 1.0);
        assert_eq!(group(1_234_567), "1\u{202f}234\u{202f}567");
        assert_eq!(duration(734.0), "12 min 14 s");
        assert_eq!(number(-0.01), "0");
    }
}
