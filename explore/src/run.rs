//! Running one plan: write its scenario file, parse it back, run it with the scenario
//! engine, and turn the engine's report into a [`RunReport`] on the workload's clock.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use msctl_scenarios::checks::Verdict as CheckVerdict;
use msctl_scenarios::report::{ScenarioReport, Status};
use msctl_scenarios::workload::History;
use msctl_scenarios::{Engine, Environment, Observer, RunOptions};

use crate::plan::{scenario_toml, Plan};
use crate::report::model::{Bucket, FaultWindow, RunReport, Verdict, WorkloadSummary};
use crate::ExploreError;

/// Runs plans against one environment, writing their scenario files into a folder.
pub struct Runner {
    env: Arc<dyn Environment>,
    observer: Arc<dyn Observer>,
    dir: PathBuf,
}

/// What one run left: the report and the history it was judged on.
pub struct Outcome {
    /// The run on one time axis.
    pub report: RunReport,
    /// The operation history (`None` when the workload did not run).
    pub history: Option<History>,
}

impl Runner {
    /// A runner whose scenario files go to `dir`.
    pub fn new(env: Arc<dyn Environment>, observer: Arc<dyn Observer>, dir: PathBuf) -> Self {
        Self { env, observer, dir }
    }

    /// Where scenario files go.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `plan` as `<dir>/<label>.toml` and returns the path.
    pub fn write(&self, plan: &Plan, label: &str, note: &str) -> Result<PathBuf, ExploreError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| ExploreError::Io(self.dir.clone(), e))?;
        let path = self.dir.join(format!("{label}.toml"));
        let text = scenario_toml(label, plan, note);
        std::fs::write(&path, text).map_err(|e| ExploreError::Io(path.clone(), e))?;
        Ok(path)
    }

    /// Runs `plan` (written as `label`) and reports it as run `index`.
    pub async fn run(
        &self,
        plan: &Plan,
        index: usize,
        label: &str,
    ) -> Result<Outcome, ExploreError> {
        let path = self.write(plan, label, "")?;
        let scenario = msctl_scenarios::model::load(&path)
            .map_err(|e| ExploreError::Scenario(e.to_string()))?;
        let engine =
            Engine::new(self.env.clone(), self.observer.clone()).map_err(ExploreError::Engine)?;
        let report = engine.run(&scenario, &RunOptions::default()).await;
        engine.close().await;
        // The engine's own report (the whole history included) beside the scenario file:
        // the evidence behind every verdict, request by request.
        let full = path.with_extension("report.json");
        std::fs::write(
            &full,
            msctl_scenarios::report::json(std::slice::from_ref(&report)),
        )
        .map_err(|e| ExploreError::Io(full.clone(), e))?;
        Ok(convert(plan, index, &path, &report))
    }
}

/// The engine's report on the workload's clock.
pub fn convert(plan: &Plan, index: usize, path: &Path, r: &ScenarioReport) -> Outcome {
    let history: Option<History> = r
        .steps
        .iter()
        .find(|s| s.kind == "workload")
        .and_then(|s| s.details.as_ref())
        .and_then(|d| d.get("history"))
        .and_then(|h| serde_json::from_value(h.clone()).ok());
    let verdicts: Vec<CheckVerdict> = r
        .steps
        .iter()
        .find(|s| s.kind == "check")
        .and_then(|s| s.details.as_ref())
        .and_then(|d| d.get("verdicts"))
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    let offset = history.as_ref().map_or(0.0, |h| h.offset_s);
    let faults = plan
        .schedule
        .events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let name = Plan::fault_name(i, e);
            let seen = r.faults.iter().find(|f| f.name == name);
            FaultWindow {
                name,
                kind: e.kind.to_string(),
                targets: e.targets.iter().map(ToString::to_string).collect(),
                components: e.components(),
                at_s: e.at.as_secs_f64(),
                planned_s: e.duration.as_secs_f64(),
                applied_s: seen.and_then(|f| f.applied_s).map(|t| t - offset),
                healed_s: seen.and_then(|f| f.healed_s).map(|t| t - offset),
                error: seen.and_then(|f| f.error.clone()),
            }
        })
        .collect();
    // Steps that could not run make the run void (not a verdict on the stack).
    let error = r
        .steps
        .iter()
        .find(|s| {
            s.status == Status::Error && s.kind != "heal"
                || (s.phase == "steady_state.before" && s.status != Status::Passed)
        })
        .map(|s| {
            format!(
                "step \"{}\": {}",
                s.name,
                s.message.clone().unwrap_or_default()
            )
        });
    let passed = error.is_none() && !verdicts.is_empty() && verdicts.iter().all(|v| v.passed);
    let report = RunReport {
        index,
        seed: plan.seed,
        passed,
        started_at: r.started_at.clone(),
        seconds: r.seconds,
        scenario_file: Some(path.to_path_buf()),
        faults,
        workload: history.as_ref().map(summary).unwrap_or_default(),
        timeline: history.as_ref().map(timeline).unwrap_or_default(),
        verdicts: verdicts
            .into_iter()
            .map(|v| Verdict {
                checker: v.checker,
                invariant: v.invariant,
                passed: v.passed,
                evidence: v.evidence,
            })
            .collect(),
        error,
    };
    Outcome { report, history }
}

fn summary(h: &History) -> WorkloadSummary {
    use msctl_scenarios::workload::OpKind;
    let mut s = WorkloadSummary {
        clients: h.clients,
        duration_s: h.duration_s,
        operations: h.ops.len() as u64,
        orders_sent: h.of(OpKind::PlaceOrder).count() as u64,
        orders_acknowledged: h.acknowledged().count() as u64,
        ..WorkloadSummary::default()
    };
    for o in &h.ops {
        *s.by_outcome
            .entry(o.outcome.word().to_string())
            .or_default() += 1;
        *s.by_kind.entry(o.kind.name().to_string()).or_default() += 1;
    }
    s
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64
}

/// Operations per second by outcome, and latency percentiles, by completion second.
pub fn timeline(h: &History) -> Vec<Bucket> {
    use msctl_scenarios::workload::Outcome as O;
    let last = h
        .ops
        .iter()
        .map(|o| o.complete_ms / 1000)
        .max()
        .unwrap_or(0);
    let mut buckets: Vec<(Bucket, Vec<u64>)> = (0..=last)
        .map(|s| {
            (
                Bucket {
                    t_s: s as f64,
                    ..Bucket::default()
                },
                Vec::new(),
            )
        })
        .collect();
    for o in &h.ops {
        let Some((b, lat)) = usize::try_from(o.complete_ms / 1000)
            .ok()
            .and_then(|i| buckets.get_mut(i))
        else {
            continue;
        };
        match o.outcome {
            O::Ok => b.ok += 1,
            O::Fail => b.fail += 1,
            O::Info => b.info += 1,
        }
        lat.push(o.latency_ms());
    }
    buckets
        .into_iter()
        .map(|(mut b, mut lat)| {
            lat.sort_unstable();
            b.p50_ms = percentile(&lat, 0.5);
            b.p99_ms = percentile(&lat, 0.99);
            b
        })
        .collect()
}
