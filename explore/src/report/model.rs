//! The explore report's data: what was planned, what happened on one time axis, and what
//! each checker concluded. `--report` writes it as JSON; the HTML page and the PNG are
//! drawn from it alone, so a saved JSON report can be drawn again later.

use std::path::PathBuf;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

/// Version of the JSON layout.
pub const REPORT_VERSION: u32 = 1;

/// Everything one `msctl explore` invocation did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExploreReport {
    /// Layout version ([`REPORT_VERSION`]).
    pub version: u32,
    /// The stack's project name.
    pub project: String,
    /// The first run's seed; run `i` uses `seed + i`.
    pub seed: u64,
    /// The command that replays the first failing run (or the first run).
    pub replay: String,
    /// Environment overrides explore ran the stack with: component → variable → value.
    pub tuned: IndexMap<String, IndexMap<String, String>>,
    /// Fault kinds left out of every schedule, and why (e.g. no netem in the kernel).
    pub unsupported: Vec<Unsupported>,
    /// One entry per run, in order.
    pub runs: Vec<RunReport>,
    /// The minimisation of the first failing run, with `--shrink`.
    pub shrink: Option<ShrinkReport>,
}

/// A fault kind the engine cannot apply here.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Unsupported {
    /// `latency`, `loss`, …
    pub kind: String,
    /// What the engine said.
    pub reason: String,
}

/// One run: a schedule under a workload, then the checkers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    /// 0-based position in the invocation.
    pub index: usize,
    /// This run's seed (it alone decides the schedule and the workload plan).
    pub seed: u64,
    /// Every checker passed and every fault step ran.
    pub passed: bool,
    /// Start, RFC 3339.
    pub started_at: String,
    /// Wall time of the whole run, workload, heal and settle included.
    pub seconds: f64,
    /// The scenario file this run executed (the schedule as steps).
    pub scenario_file: Option<PathBuf>,
    /// The faults: planned and what happened, on the run's clock.
    pub faults: Vec<FaultWindow>,
    /// The workload's totals.
    pub workload: WorkloadSummary,
    /// Client outcomes and latency per second of the workload.
    pub timeline: Vec<Bucket>,
    /// Each checker's verdict.
    pub verdicts: Vec<Verdict>,
    /// Why the run could not complete (a step that errored), when it did not.
    pub error: Option<String>,
}

impl RunReport {
    /// Whether `checker` judged this run and failed it.
    pub fn failed(&self, checker: &str) -> bool {
        self.verdicts
            .iter()
            .any(|v| v.checker == checker && !v.passed)
    }
}

/// One fault of a schedule.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaultWindow {
    /// Step name in the scenario (`f3-kill-product-service`).
    pub name: String,
    /// Kind with parameters, as `msctl chaos list` shows it (`kill SIGKILL`).
    pub kind: String,
    /// Targets as written (`product-service#1`).
    pub targets: Vec<String>,
    /// Components it touches (targets and `from` groups).
    pub components: Vec<String>,
    /// Planned start, seconds from the workload's start.
    pub at_s: f64,
    /// Planned length (0 for one-shot faults such as restart).
    pub planned_s: f64,
    /// When it was in effect, seconds from the workload's start (`None`: never applied).
    pub applied_s: Option<f64>,
    /// When it was reverted and its containers were ready again.
    pub healed_s: Option<f64>,
    /// Why it was refused or could not be healed.
    pub error: Option<String>,
}

/// What the workload did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WorkloadSummary {
    /// Concurrent clients.
    pub clients: u32,
    /// Planned length, seconds.
    pub duration_s: f64,
    /// Operations in the history.
    pub operations: u64,
    /// Operations by outcome: `ok`, `fail`, `info`.
    pub by_outcome: IndexMap<String, u64>,
    /// Operations by kind (`place_order`, `browse`, …).
    pub by_kind: IndexMap<String, u64>,
    /// Order POSTs sent (retries with the same key included).
    pub orders_sent: u64,
    /// Orders the gateway acknowledged with 202.
    pub orders_acknowledged: u64,
}

/// One second of client traffic.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Bucket {
    /// Start of the second, seconds from the workload's start.
    pub t_s: f64,
    /// Operations that completed ok in this second.
    pub ok: u64,
    /// Definite failures.
    pub fail: u64,
    /// Indeterminate outcomes (timeouts, resets, 502/504).
    pub info: u64,
    /// Median latency of the operations completed in this second, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
}

/// A checker's conclusion.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verdict {
    /// Checker id (`money-balance`).
    pub checker: String,
    /// The invariant in words.
    pub invariant: String,
    /// Whether it held.
    pub passed: bool,
    /// What was looked at and, on failure, the offending orders, products, events or
    /// requests.
    pub evidence: Vec<String>,
}

/// The minimisation of a failing run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShrinkReport {
    /// The run that was shrunk.
    pub run_seed: u64,
    /// The checker that had to keep failing.
    pub checker: String,
    /// Fault events before and after.
    pub events_before: usize,
    /// Fault events after.
    pub events_after: usize,
    /// Workload parameters before (`clients=8 duration=100s`).
    pub params_before: String,
    /// Workload parameters after.
    pub params_after: String,
    /// Candidate runs executed.
    pub candidates: u32,
    /// Wall time of the whole shrink.
    pub seconds: f64,
    /// The minimal scenario, for `msctl scenario run`.
    pub scenario_file: PathBuf,
    /// How often the minimal scenario failed the same checker when re-run.
    pub reproduced: u32,
    /// Out of this many re-runs.
    pub reproduction_runs: u32,
    /// When the shrunk workload reproduced less than 4 in 5 and the faults alone at the
    /// failing run's workload did better: both rates (the file is the latter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stepped_back: Option<String>,
    /// The schedule that remained, one line per fault.
    pub remaining: Vec<String>,
}
