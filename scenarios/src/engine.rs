//! The scenario engine: runs one [`Scenario`] against an [`Environment`] and reports every
//! step.
//!
//! Order of a run (Chaos Toolkit's experiment shape):
//! 1. variables: builtins, then `[vars]` in file order (templates over earlier ones), then
//!    `--var` overrides;
//! 2. steady-state probes ("before"); if one fails, the method is skipped;
//! 3. continuous probes start in the background;
//! 4. the method, step by step; after the first failure the remaining steps are skipped;
//! 5. continuous probes stop (their first failure fails the scenario);
//! 6. every fault the scenario applied that is still active is healed;
//! 7. steady-state probes ("after");
//! 8. rollbacks, always, whatever happened before.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use indexmap::IndexMap;
use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::environment::Environment;
use crate::load::{self, LoadProgress, LoadRun, PreparedRequest};
use crate::matcher::show;
use crate::model::{
    Action, Body, Expectation, LoadStep, Phase, RequestStep, RequestTemplate, Scenario, SqlStep,
    Step,
};
use crate::report::{phase_label, FaultTimeline, ScenarioReport, Status, StepReport};
use crate::sql::{redact, Databases};
use crate::template::{self, Reference};
use crate::workload::History;

/// Live notifications for the command line (lines, progress bars).
pub trait Observer: Send + Sync {
    /// A scenario starts.
    fn scenario_started(&self, _scenario: &Scenario, _run_id: &str) {}
    /// A step starts.
    fn step_started(&self, _phase: &str, _step: &Step) {}
    /// A step ended.
    fn step_finished(&self, _report: &StepReport) {}
    /// A load phase progresses (about every 200 ms).
    fn load_progress(&self, _step: &Step, _done: u64, _errors: u64, _elapsed: Duration) {}
    /// A scenario ended.
    fn scenario_finished(&self, _report: &ScenarioReport) {}
}

/// An observer that says nothing.
pub struct Silent;
impl Observer for Silent {}

/// Options of one run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// `--var k=v` overrides (and additions).
    pub vars: IndexMap<String, String>,
    /// The run id; a fresh one when unset.
    pub run_id: Option<String>,
}

/// Runs scenarios against one environment.
pub struct Engine {
    env: Arc<dyn Environment>,
    observer: Arc<dyn Observer>,
    http: reqwest::Client,
    databases: Arc<Databases>,
}

/// What one attempt at a check produced.
enum Attempt {
    Passed {
        captures: Vec<(String, Value)>,
        details: Option<Value>,
    },
    Failed(String),
    Error(String),
}

#[derive(Debug)]
struct FaultEntry {
    /// Ledger id once applied (empty while a delayed fault waits).
    id: String,
    spec: msctl_chaos::FaultSpec,
    applied_at: Option<Instant>,
    healed_at: Option<Instant>,
    heal_error: Option<String>,
    /// Why a delayed fault could not be applied.
    refused: Option<String>,
    timer: Option<JoinHandle<()>>,
}

/// The faults a run applied, by name.
#[derive(Debug, Default)]
struct FaultBook {
    entries: Mutex<IndexMap<String, FaultEntry>>,
    changed: Notify,
}

impl FaultBook {
    fn state(&self, name: &str) -> Option<(bool, Option<Instant>)> {
        let e = self.entries.lock().ok()?;
        e.get(name)
            .map(|f| (f.applied_at.is_some() && f.healed_at.is_none(), f.healed_at))
    }

    /// The applied faults as checkers see them, on a workload's clock (ms since `origin`).
    fn spans(&self, origin: Instant) -> Vec<crate::checks::FaultSpan> {
        let ms = |t: Instant| -> i64 {
            if t >= origin {
                i64::try_from((t - origin).as_millis()).unwrap_or(i64::MAX)
            } else {
                -i64::try_from((origin - t).as_millis()).unwrap_or(i64::MAX)
            }
        };
        self.entries
            .lock()
            .map(|e| {
                e.iter()
                    .filter_map(|(name, f)| {
                        let applied = f.applied_at?;
                        Some(crate::checks::FaultSpan::new(
                            name,
                            &f.spec,
                            ms(applied),
                            f.healed_at.map(ms),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every fault on the run's clock (seconds since `origin`).
    fn timeline(&self, origin: Instant) -> Vec<FaultTimeline> {
        let secs = |t: Instant| t.saturating_duration_since(origin).as_secs_f64();
        self.entries
            .lock()
            .map(|e| {
                e.iter()
                    .map(|(name, f)| FaultTimeline {
                        name: name.clone(),
                        kind: f.spec.kind.to_string(),
                        targets: f.spec.targets.iter().map(ToString::to_string).collect(),
                        from: match &f.spec.kind {
                            msctl_chaos::FaultKind::Partition { from, .. } => {
                                from.iter().map(|t| t.component.clone()).collect()
                            }
                            _ => Vec::new(),
                        },
                        applied_s: f.applied_at.map(secs),
                        healed_s: f.healed_at.map(secs),
                        error: f.refused.clone().or_else(|| f.heal_error.clone()),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn mark_healed(&self, name: &str, error: Option<String>) {
        if let Ok(mut e) = self.entries.lock() {
            if let Some(f) = e.get_mut(name) {
                if f.healed_at.is_none() {
                    f.healed_at = Some(Instant::now());
                    f.heal_error = error;
                }
            }
        }
        self.changed.notify_waiters();
    }
}

/// State of one scenario run, shared with background tasks.
struct RunState {
    vars: Mutex<IndexMap<String, Value>>,
    faults: Arc<FaultBook>,
    run_id: String,
    started: Instant,
    /// Workloads run so far, with their start, for `check` steps.
    workloads: Mutex<Vec<(Instant, Arc<History>)>>,
}

/// Reverts a lasting fault with a duration after that duration, in the background.
fn revert_timer(
    env: &Arc<dyn Environment>,
    st: &Arc<RunState>,
    c: &crate::model::ChaosStep,
    id: &str,
) -> Option<JoinHandle<()>> {
    let d = c.spec.duration.filter(|_| c.spec.kind.is_lasting())?;
    let env = env.clone();
    let faults = st.faults.clone();
    let (name, id) = (c.name.clone(), id.to_string());
    Some(tokio::spawn(async move {
        tokio::time::sleep(d).await;
        let res = env.revert_fault(&id).await;
        let _ = env.refresh().await;
        faults.mark_healed(&name, res.err().map(|e| e.0));
    }))
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .trim_end_matches('Z')
        .to_string()
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.chars().count() > 300 {
        format!("{}…", text.chars().take(300).collect::<String>())
    } else {
        text.to_string()
    }
}

impl Engine {
    /// An engine over `env`, telling `observer` as it goes.
    pub fn new(env: Arc<dyn Environment>, observer: Arc<dyn Observer>) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self {
            env,
            observer,
            http,
            databases: Arc::new(Databases::default()),
        })
    }

    fn resolve<'a>(&'a self, st: &'a RunState) -> impl Fn(&str) -> Result<Value, String> + 'a {
        move |name: &str| {
            if let Some(v) = st.vars.lock().ok().and_then(|v| v.get(name).cloned()) {
                return Ok(v);
            }
            match template::reference(name) {
                Reference::Uuid => Ok(Value::String(uuid::Uuid::new_v4().to_string())),
                Reference::Endpoint(c, p) => self
                    .env
                    .endpoint(c, p)
                    .map(|a| Value::String(format!("http://{a}")))
                    .map_err(|e| format!("{{{{{name}}}}}: {e}")),
                Reference::Var(v) => Err(format!(
                    "unknown variable \"{{{{{v}}}}}\"; declare it under [vars] or pass --var {v}=…"
                )),
            }
        }
    }

    /// Runs one scenario to the end and reports it.
    pub async fn run(&self, scenario: &Scenario, opts: &RunOptions) -> ScenarioReport {
        let started = Instant::now();
        let started_at = now_rfc3339();
        let run_id = opts.run_id.clone().unwrap_or_else(|| {
            uuid::Uuid::new_v4()
                .simple()
                .to_string()
                .chars()
                .take(12)
                .collect()
        });
        let st = Arc::new(RunState {
            vars: Mutex::new(IndexMap::new()),
            faults: Arc::new(FaultBook::default()),
            run_id: run_id.clone(),
            started,
            workloads: Mutex::new(Vec::new()),
        });
        self.observer.scenario_started(scenario, &run_id);
        let mut steps: Vec<StepReport> = Vec::new();
        let mut failed = false;

        // 1. Variables.
        let env_ok = match self.env.tune(&scenario.tune).await {
            Ok(_) => self.env.refresh().await,
            Err(e) => Err(e),
        };
        let vars_result = self.init_vars(&st, scenario, opts);
        if let Err(e) = env_ok.map_err(|e| e.0).and(vars_result) {
            let r = StepReport {
                phase: "setup".into(),
                name: "variables and endpoints".into(),
                kind: "setup".into(),
                line: 1,
                status: Status::Error,
                seconds: 0.0,
                attempts: 1,
                message: Some(e),
                details: None,
            };
            self.observer.step_finished(&r);
            steps.push(r);
            failed = true;
        }

        // 2. Steady state before.
        if !failed {
            for p in &scenario.steady_state {
                let r = self.step(&st, p, Phase::SteadyState, "before").await;
                failed |= matches!(r.status, Status::Failed | Status::Error);
                steps.push(r);
                if failed {
                    break;
                }
            }
        }

        // 3. Continuous probes.
        let continuous_failure: Arc<Mutex<Option<StepReport>>> = Arc::new(Mutex::new(None));
        let stop = Arc::new(Notify::new());
        let probes: Vec<Step> = scenario
            .steady_state
            .iter()
            .filter(|p| p.continuous.is_some())
            .cloned()
            .collect();
        let engine_ref = self;
        let continuous = async {
            if failed || probes.is_empty() {
                return;
            }
            let mut next: Vec<Instant> = probes.iter().map(|_| Instant::now()).collect();
            loop {
                let due = next.iter().min().copied().unwrap_or_else(Instant::now);
                tokio::select! {
                    _ = tokio::time::sleep_until(due) => {}
                    _ = stop.notified() => return,
                }
                for (i, p) in probes.iter().enumerate() {
                    if next[i] > Instant::now() {
                        continue;
                    }
                    next[i] = Instant::now() + p.continuous.unwrap_or(Duration::from_secs(1));
                    let (attempt, _) = engine_ref.attempt_once(&st, p).await;
                    let message = match attempt {
                        Attempt::Passed { .. } => continue,
                        Attempt::Failed(m) | Attempt::Error(m) => m,
                    };
                    if let Ok(mut slot) = continuous_failure.lock() {
                        if slot.is_none() {
                            *slot = Some(StepReport {
                                phase: "steady_state.during".into(),
                                name: p.name.clone(),
                                kind: p.action.kind().into(),
                                line: p.line,
                                status: Status::Failed,
                                seconds: 0.0,
                                attempts: 1,
                                message: Some(format!(
                                    "continuous probe failed during the method: {message}"
                                )),
                                details: None,
                            });
                        }
                    }
                    return;
                }
            }
        };

        // 4. The method, with the continuous probes alongside.
        let method = async {
            let mut out = Vec::new();
            let mut stopped = failed;
            for s in &scenario.steps {
                if stopped {
                    out.push(self.skipped(s, Phase::Method));
                    continue;
                }
                let r = self.step(&st, s, Phase::Method, "").await;
                stopped |= matches!(r.status, Status::Failed | Status::Error);
                out.push(r);
            }
            stop.notify_one();
            out
        };
        let (method_reports, ()) = tokio::join!(method, continuous);
        failed |= method_reports
            .iter()
            .any(|r| matches!(r.status, Status::Failed | Status::Error));
        steps.extend(method_reports);

        // 5. Continuous failure.
        if let Some(r) = continuous_failure.lock().ok().and_then(|mut s| s.take()) {
            self.observer.step_finished(&r);
            steps.push(r);
            failed = true;
        }

        // 6. Heal what is still active.
        if let Some(r) = self.heal_remaining(&st).await {
            failed |= r.status != Status::Passed;
            steps.push(r);
        }

        // 7. Steady state after (only when it held before).
        let before_ok = !steps
            .iter()
            .any(|r| r.phase == "steady_state.before" && r.status != Status::Passed)
            && !steps.iter().any(|r| r.phase == "setup");
        for p in &scenario.steady_state {
            if !before_ok {
                break;
            }
            let r = self.step(&st, p, Phase::SteadyState, "after").await;
            failed |= matches!(r.status, Status::Failed | Status::Error);
            steps.push(r);
        }

        // 8. Rollbacks, always.
        for s in &scenario.rollbacks {
            let r = self.step(&st, s, Phase::Rollback, "").await;
            failed |= matches!(r.status, Status::Failed | Status::Error);
            steps.push(r);
        }
        if let Some(r) = self.heal_remaining(&st).await {
            failed |= r.status != Status::Passed;
            steps.push(r);
        }

        let report = ScenarioReport {
            name: scenario.name.clone(),
            file: scenario.file.clone(),
            run_id,
            status: if failed {
                Status::Failed
            } else {
                Status::Passed
            },
            seconds: started.elapsed().as_secs_f64(),
            started_at,
            steps,
            faults: st.faults.timeline(started),
        };
        self.observer.scenario_finished(&report);
        report
    }

    /// Closes database pools.
    pub async fn close(&self) {
        self.databases.close().await;
    }

    fn init_vars(
        &self,
        st: &RunState,
        scenario: &Scenario,
        opts: &RunOptions,
    ) -> Result<(), String> {
        if let Ok(mut v) = st.vars.lock() {
            v.insert("run_id".into(), Value::String(st.run_id.clone()));
            v.insert("scenario".into(), Value::String(scenario.name.clone()));
            // --var values win over declarations, so declared defaults are not even
            // rendered when overridden (they may reference something unavailable).
            for (k, val) in &opts.vars {
                v.insert(k.clone(), Value::String(val.clone()));
            }
        }
        for (k, raw) in &scenario.vars {
            if opts.vars.contains_key(k) {
                continue;
            }
            let value = template::render_json(raw, &self.resolve(st))
                .map_err(|e| format!("variable {k}: {e}"))?;
            if let Ok(mut v) = st.vars.lock() {
                v.insert(k.clone(), value);
            }
        }
        Ok(())
    }

    fn skipped(&self, s: &Step, phase: Phase) -> StepReport {
        let r = StepReport {
            phase: phase_label(phase, ""),
            name: s.name.clone(),
            kind: s.action.kind().into(),
            line: s.line,
            status: Status::Skipped,
            seconds: 0.0,
            attempts: 0,
            message: Some("not run: an earlier step failed".into()),
            details: None,
        };
        self.observer.step_finished(&r);
        r
    }

    async fn heal_remaining(&self, st: &Arc<RunState>) -> Option<StepReport> {
        let active: Vec<(String, String)> = st
            .faults
            .entries
            .lock()
            .ok()?
            .iter_mut()
            .filter(|(_, f)| f.healed_at.is_none())
            .filter_map(|(n, f)| {
                if let Some(t) = f.timer.take() {
                    t.abort();
                }
                // A delayed fault that never came into effect has nothing to revert.
                f.applied_at.map(|_| (n.clone(), f.id.clone()))
            })
            .collect();
        let refused: Vec<String> = st
            .faults
            .entries
            .lock()
            .ok()?
            .iter()
            .filter_map(|(n, f)| f.refused.as_ref().map(|e| format!("{n}: {e}")))
            .collect();
        if active.is_empty() && refused.is_empty() {
            return None;
        }
        let started = Instant::now();
        let mut errors: Vec<String> = refused
            .into_iter()
            .map(|e| format!("not applied: {e}"))
            .collect();
        for (name, id) in &active {
            let res = self.env.revert_fault(id).await;
            if let Err(e) = &res {
                errors.push(format!("{name} ({id}): {e}"));
            }
            st.faults.mark_healed(name, res.err().map(|e| e.0));
        }
        let _ = self.env.refresh().await;
        let r = StepReport {
            phase: "teardown".into(),
            name: format!(
                "heal {}",
                active
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            kind: "heal".into(),
            line: 0,
            status: if errors.is_empty() {
                Status::Passed
            } else {
                Status::Error
            },
            seconds: started.elapsed().as_secs_f64(),
            attempts: 1,
            message: (!errors.is_empty())
                .then(|| format!("faults not applied or not healed: {}", errors.join("; "))),
            details: None,
        };
        self.observer.step_finished(&r);
        Some(r)
    }

    async fn step(&self, st: &Arc<RunState>, s: &Step, phase: Phase, when: &str) -> StepReport {
        let label = phase_label(phase, when);
        self.observer.step_started(&label, s);
        let started = Instant::now();
        let (status, message, details, attempts) = match &s.action {
            Action::Request(_) | Action::Sql(_) => {
                let (status, message, details, attempts) = self.check(st, s).await;
                (status, message, details, attempts)
            }
            Action::Sleep(d) => {
                tokio::time::sleep(*d).await;
                (Status::Passed, None, None, 1)
            }
            Action::Chaos(c) if c.after.is_some() => self.delayed_chaos(st, c),
            Action::Chaos(c) => match self.env.apply_fault(&c.spec).await {
                Ok(id) => {
                    let timer = revert_timer(&self.env, st, c, &id);
                    if let Ok(mut e) = st.faults.entries.lock() {
                        let lasting = c.spec.kind.is_lasting();
                        e.insert(
                            c.name.clone(),
                            FaultEntry {
                                id: id.clone(),
                                spec: c.spec.clone(),
                                applied_at: Some(Instant::now()),
                                healed_at: (!lasting).then(Instant::now),
                                heal_error: None,
                                refused: None,
                                timer,
                            },
                        );
                    }
                    let _ = self.env.refresh().await;
                    (
                        Status::Passed,
                        None,
                        Some(json!({"fault": c.name, "id": id, "kind": c.spec.kind.to_string()})),
                        1,
                    )
                }
                Err(e) => (
                    Status::Error,
                    Some(format!("cannot apply {}: {e}", c.spec.kind)),
                    None,
                    1,
                ),
            },
            Action::Heal(target) => {
                let chosen: Vec<(String, String)> = st
                    .faults
                    .entries
                    .lock()
                    .map(|mut e| {
                        e.iter_mut()
                            .filter(|(n, f)| {
                                f.healed_at.is_none() && target.as_ref().is_none_or(|t| t == *n)
                            })
                            .filter_map(|(n, f)| {
                                if let Some(t) = f.timer.take() {
                                    t.abort();
                                }
                                f.applied_at.map(|_| (n.clone(), f.id.clone()))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let mut errors = Vec::new();
                for (name, id) in &chosen {
                    let res = self.env.revert_fault(id).await;
                    if let Err(e) = &res {
                        errors.push(format!("{name}: {e}"));
                    }
                    st.faults.mark_healed(name, res.err().map(|e| e.0));
                }
                let _ = self.env.refresh().await;
                if errors.is_empty() {
                    (
                        Status::Passed,
                        None,
                        Some(json!({"healed": chosen.iter().map(|(n, _)| n).collect::<Vec<_>>()})),
                        1,
                    )
                } else {
                    (Status::Error, Some(errors.join("; ")), None, 1)
                }
            }
            Action::Load(l) => self.load(st, s, l).await,
            Action::Workload(w) => self.workload(st, w).await,
            Action::Check(c) => self.check_history(st, c).await,
        };
        let r = StepReport {
            phase: label,
            name: s.name.clone(),
            kind: s.action.kind().into(),
            line: s.line,
            status,
            seconds: started.elapsed().as_secs_f64(),
            attempts,
            message,
            details,
        };
        self.observer.step_finished(&r);
        r
    }

    /// Runs a request or sql step under its retry policy (once, eventually, during, within).
    async fn check(
        &self,
        st: &Arc<RunState>,
        s: &Step,
    ) -> (Status, Option<String>, Option<Value>, u32) {
        let mut attempts = 0u32;
        let finish = |a: Attempt, attempts: u32, prefix: &str| match a {
            Attempt::Passed { captures, details } => {
                if let Ok(mut v) = st.vars.lock() {
                    for (k, val) in &captures {
                        v.insert(k.clone(), val.clone());
                    }
                }
                let mut d = details.unwrap_or_else(|| json!({}));
                if !captures.is_empty() {
                    d["captured"] = Value::Object(captures.into_iter().collect());
                }
                (Status::Passed, None, Some(d), attempts)
            }
            Attempt::Failed(m) => (Status::Failed, Some(format!("{prefix}{m}")), None, attempts),
            Attempt::Error(m) => (Status::Error, Some(format!("{prefix}{m}")), None, attempts),
        };

        if let Some(w) = &s.within {
            // Wait for the heal (bounded), then retry until the deadline after it.
            let healed_at = loop {
                let waiter = st.faults.changed.notified();
                match st.faults.state(&w.fault) {
                    None => {
                        return (
                            Status::Error,
                            Some(format!("fault {:?} was never applied", w.fault)),
                            None,
                            0,
                        )
                    }
                    Some((false, Some(t))) => break t,
                    _ => {}
                }
                let has_timer = st
                    .faults
                    .entries
                    .lock()
                    .ok()
                    .and_then(|e| e.get(&w.fault).map(|f| f.timer.is_some()))
                    .unwrap_or(false);
                if !has_timer {
                    return (
                        Status::Error,
                        Some(format!(
                            "fault {:?} has no duration and is still active; give it a duration or add a `heal = {:?}` step before this one",
                            w.fault, w.fault
                        )),
                        None,
                        0,
                    );
                }
                if tokio::time::timeout(Duration::from_secs(600), waiter)
                    .await
                    .is_err()
                {
                    return (
                        Status::Error,
                        Some(format!("fault {:?} was not healed within 10m", w.fault)),
                        None,
                        0,
                    );
                }
            };
            let deadline = healed_at + w.deadline;
            loop {
                attempts += 1;
                let (a, _) = self.attempt_once(st, s).await;
                match a {
                    Attempt::Passed { .. } => return finish(a, attempts, ""),
                    Attempt::Failed(m) | Attempt::Error(m) => {
                        if Instant::now() + w.interval > deadline {
                            return (
                                Status::Failed,
                                Some(format!(
                                    "did not hold within {} of healing fault {:?} ({attempts} attempts); last: {m}",
                                    humantime::format_duration(w.deadline),
                                    w.fault
                                )),
                                None,
                                attempts,
                            );
                        }
                    }
                }
                tokio::time::sleep(w.interval).await;
            }
        }

        let eventually = s.eventually;
        let deadline = eventually.map(|e| Instant::now() + e.timeout);
        loop {
            if let Some(f) = &s.during {
                match st.faults.state(f) {
                    Some((true, _)) => {}
                    Some((false, _)) => {
                        return (
                            Status::Failed,
                            Some(format!(
                            "fault {f:?} was no longer active: this check must hold while it is{}",
                            if attempts > 0 {
                                format!(" ({attempts} attempts failed before it was healed)")
                            } else {
                                String::new()
                            }
                        )),
                            None,
                            attempts,
                        )
                    }
                    None => {
                        return (
                            Status::Error,
                            Some(format!("fault {f:?} was never applied")),
                            None,
                            attempts,
                        )
                    }
                }
            }
            attempts += 1;
            let (a, transport) = self.attempt_once(st, s).await;
            let a = match (a, &s.during) {
                (Attempt::Passed { .. }, Some(f)) if st.faults.state(f).is_some_and(|x| !x.0) => {
                    Attempt::Failed(format!(
                        "it held only after fault {f:?} was healed, not while it was active"
                    ))
                }
                (a, _) => a,
            };
            match (&a, deadline, eventually) {
                (Attempt::Passed { .. }, _, _) => return finish(a, attempts, ""),
                (_, Some(d), Some(e)) if Instant::now() + e.interval <= d => {
                    if transport {
                        let _ = self.env.refresh().await;
                    }
                    tokio::time::sleep(e.interval).await;
                }
                (_, _, Some(e)) => {
                    return finish(
                        a,
                        attempts,
                        &format!(
                            "still failing after {} ({attempts} attempts): ",
                            humantime::format_duration(e.timeout)
                        ),
                    )
                }
                _ => return finish(a, attempts, ""),
            }
        }
    }

    /// One attempt; the flag says whether it failed on the transport (worth a refresh).
    async fn attempt_once(&self, st: &RunState, s: &Step) -> (Attempt, bool) {
        match &s.action {
            Action::Request(r) => self.request(st, r).await,
            Action::Sql(q) => (self.sql(st, q).await, false),
            _ => (Attempt::Error("not a check".into()), false),
        }
    }

    fn build(
        &self,
        st: &RunState,
        r: &RequestTemplate,
    ) -> Result<(reqwest::Url, reqwest::header::HeaderMap, Option<Vec<u8>>), String> {
        self.build_with(r, &self.resolve(st))
    }

    /// Renders a request with `resolve` (a load phase renders `{{uuid}}` as a placeholder
    /// that each request replaces with a fresh UUID).
    fn build_with(
        &self,
        r: &RequestTemplate,
        resolve: &dyn Fn(&str) -> Result<Value, String>,
    ) -> Result<(reqwest::Url, reqwest::header::HeaderMap, Option<Vec<u8>>), String> {
        let url_text = r.url.render(&resolve)?;
        let url = reqwest::Url::parse(&url_text)
            .map_err(|e| format!("URL {url_text:?} is invalid: {e}"))?;
        load::loopback_only(&url)?;
        let mut headers = reqwest::header::HeaderMap::new();
        for (k, v) in &r.headers {
            let value = v.render(&resolve)?;
            let name = reqwest::header::HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| format!("invalid header name {k:?}"))?;
            let value = reqwest::header::HeaderValue::from_str(&value)
                .map_err(|_| format!("invalid value for header {k}: {value:?}"))?;
            headers.append(name, value);
        }
        let body = match &r.body {
            Body::Empty => None,
            Body::Json(v) => {
                let v = template::render_json(v, &resolve)?;
                if !headers.contains_key(reqwest::header::CONTENT_TYPE) {
                    headers.insert(
                        reqwest::header::CONTENT_TYPE,
                        reqwest::header::HeaderValue::from_static("application/json"),
                    );
                }
                Some(serde_json::to_vec(&v).map_err(|e| e.to_string())?)
            }
            Body::Text(t) => Some(t.render(&resolve)?.into_bytes()),
        };
        Ok((url, headers, body))
    }

    async fn request(&self, st: &RunState, r: &RequestStep) -> (Attempt, bool) {
        let (url, headers, body) = match self.build(st, &r.request) {
            Ok(x) => x,
            Err(e) => return (Attempt::Error(e), false),
        };
        let started = Instant::now();
        let mut req = self
            .http
            .request(r.request.method.clone(), url.clone())
            .headers(headers)
            .timeout(r.request.timeout);
        if let Some(b) = body {
            req = req.body(b);
        }
        let what = format!("{} {}", r.request.method, url);
        let resp = match req.send().await {
            Ok(resp) => resp,
            Err(e) => {
                let cause = std::error::Error::source(&e)
                    .map(|s| format!(": {s}"))
                    .unwrap_or_default();
                return (
                    Attempt::Failed(format!("{what}: no answer ({e}{cause})")),
                    true,
                );
            }
        };
        let status = resp.status().as_u16();
        let resp_headers = resp.headers().clone();
        let bytes = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => {
                return (
                    Attempt::Failed(format!("{what}: reading the body: {e}")),
                    true,
                )
            }
        };
        let latency = started.elapsed();
        let json_body: Option<Value> = serde_json::from_slice(&bytes).ok();
        let resolve = self.resolve(st);
        let context = || format!("{what} → {status}; body: {}", snippet(&bytes));
        for e in &r.expect {
            let result: Result<(), String> = match e {
                Expectation::Status(list) => {
                    if list.contains(&status) {
                        Ok(())
                    } else {
                        Err(format!(
                            "expected {}, saw {status}",
                            list.iter()
                                .map(u16::to_string)
                                .collect::<Vec<_>>()
                                .join(" or ")
                        ))
                    }
                }
                Expectation::Latency(max) => {
                    if latency <= *max {
                        Ok(())
                    } else {
                        Err(format!(
                            "expected at most {}ms, saw {}ms",
                            max.as_millis(),
                            latency.as_millis()
                        ))
                    }
                }
                Expectation::Json(path, m) => match &json_body {
                    None => Err("expected a JSON body, saw something else".to_string()),
                    Some(v) => m.check(path.get(v).as_ref(), &resolve),
                },
                Expectation::Header(name, m) => {
                    let v = resp_headers
                        .get(name)
                        .map(|v| Value::String(String::from_utf8_lossy(v.as_bytes()).into()));
                    m.check(v.as_ref(), &resolve)
                }
                Expectation::BodyContains(t) => match t.render(&resolve) {
                    Ok(needle) if String::from_utf8_lossy(&bytes).contains(&needle) => Ok(()),
                    Ok(needle) => Err(format!("expected the body to contain {needle:?}")),
                    Err(e) => Err(e),
                },
                Expectation::BodyLacks(ts) => {
                    let body = String::from_utf8_lossy(&bytes);
                    ts.iter()
                        .map(|t| t.render(&resolve))
                        .find_map(|r| match r {
                            Ok(needle) if body.contains(&needle) => {
                                Some(Err(format!("expected the body not to contain {needle:?}")))
                            }
                            Ok(_) => None,
                            Err(e) => Some(Err(e)),
                        })
                        .unwrap_or(Ok(()))
                }
            };
            if let Err(m) = result {
                return (
                    Attempt::Failed(format!(
                        "expectation `{}`: {m} ({})",
                        e.describe(),
                        context()
                    )),
                    false,
                );
            }
        }
        let mut captures = Vec::new();
        for (var, path) in &r.capture {
            match json_body.as_ref().and_then(|v| path.get(v)) {
                Some(v) => captures.push((var.clone(), v)),
                None => {
                    return (
                        Attempt::Failed(format!(
                            "capture `{var}`: {path} is {} ({})",
                            show(None),
                            context()
                        )),
                        false,
                    )
                }
            }
        }
        (
            Attempt::Passed {
                captures,
                details: Some(json!({"status": status, "latency_ms": latency.as_millis() as u64})),
            },
            false,
        )
    }

    async fn sql(&self, st: &RunState, q: &SqlStep) -> Attempt {
        let url = match self.env.database_url(&q.component) {
            Ok(u) => u,
            Err(e) => return Attempt::Error(e.0),
        };
        let resolve = self.resolve(st);
        let query = match q.query.render(&resolve) {
            Ok(t) => t,
            Err(e) => return Attempt::Error(e),
        };
        let value = match self.databases.scalar(&url, &query).await {
            Ok(v) => v,
            Err(e) => {
                return Attempt::Failed(format!(
                    "{} on {} ({}): {e}",
                    query.trim(),
                    q.component,
                    redact(&url)
                ))
            }
        };
        if let Some(m) = &q.expect {
            if let Err(e) = m.check(value.as_ref(), &resolve) {
                return Attempt::Failed(format!(
                    "expectation on `{}` ({}): {e}",
                    query.split_whitespace().collect::<Vec<_>>().join(" "),
                    q.component
                ));
            }
        }
        let captures = match (&q.capture, &value) {
            (Some(var), Some(v)) => vec![(var.clone(), v.clone())],
            (Some(var), None) => {
                return Attempt::Failed(format!("capture `{var}`: the query returned no row"))
            }
            _ => vec![],
        };
        Attempt::Passed {
            captures,
            details: Some(json!({"value": value})),
        }
    }

    /// A chaos step with `after`: recorded now, applied later in the background, reverted
    /// after its duration; the step itself returns at once.
    fn delayed_chaos(
        &self,
        st: &Arc<RunState>,
        c: &crate::model::ChaosStep,
    ) -> (Status, Option<String>, Option<Value>, u32) {
        let after = c.after.unwrap_or_default();
        let env = self.env.clone();
        let book = st.faults.clone();
        let step = c.clone();
        let st2 = st.clone();
        let task = tokio::spawn(async move {
            tokio::time::sleep(after).await;
            match env.apply_fault(&step.spec).await {
                Ok(id) => {
                    let timer = revert_timer(&env, &st2, &step, &id);
                    if let Ok(mut e) = book.entries.lock() {
                        if let Some(f) = e.get_mut(&step.name) {
                            f.id = id;
                            f.applied_at = Some(Instant::now());
                            if !step.spec.kind.is_lasting() {
                                f.healed_at = f.applied_at;
                            }
                            f.timer = timer;
                        }
                    }
                    let _ = env.refresh().await;
                }
                Err(e) => {
                    if let Ok(mut entries) = book.entries.lock() {
                        if let Some(f) = entries.get_mut(&step.name) {
                            f.refused = Some(format!("cannot apply {}: {e}", step.spec.kind));
                        }
                    }
                }
            }
            book.changed.notify_waiters();
        });
        if let Ok(mut e) = st.faults.entries.lock() {
            e.insert(
                c.name.clone(),
                FaultEntry {
                    id: String::new(),
                    spec: c.spec.clone(),
                    applied_at: None,
                    healed_at: None,
                    heal_error: None,
                    refused: None,
                    timer: Some(task),
                },
            );
        }
        (
            Status::Passed,
            None,
            Some(json!({"fault": c.name, "kind": c.spec.kind.to_string(),
                        "after_s": after.as_secs_f64()})),
            1,
        )
    }

    /// Runs a workload and keeps its history for later `check` steps.
    async fn workload(
        &self,
        st: &Arc<RunState>,
        spec: &crate::workload::WorkloadSpec,
    ) -> (Status, Option<String>, Option<Value>, u32) {
        let offset = st.started.elapsed().as_secs_f64();
        let start = Instant::now();
        match crate::workload::run(
            self.env.clone(),
            self.databases.clone(),
            spec,
            &st.run_id,
            offset,
        )
        .await
        {
            Ok(history) => {
                let history = Arc::new(history);
                let summary = crate::workload::summarize(&history);
                if let Ok(mut w) = st.workloads.lock() {
                    w.push((start, history.clone()));
                }
                let details = serde_json::to_value(history.as_ref()).ok();
                (
                    Status::Passed,
                    None,
                    details.map(|h| json!({"summary": summary, "history": h})),
                    1,
                )
            }
            Err(e) => (Status::Error, Some(e.to_string()), None, 1),
        }
    }

    /// Judges the last workload: gathers facts until every checker holds or the settle
    /// time is over.
    async fn check_history(
        &self,
        st: &Arc<RunState>,
        spec: &crate::checks::CheckSpec,
    ) -> (Status, Option<String>, Option<Value>, u32) {
        let Some((start, history)) = st.workloads.lock().ok().and_then(|w| w.last().cloned())
        else {
            return (
                Status::Error,
                Some("a check step needs an earlier workload step".into()),
                None,
                1,
            );
        };
        let faults = st.faults.spans(start);
        let (verdicts, attempts, settled) =
            crate::checks::judge(self.env.as_ref(), &self.databases, &history, &faults, spec).await;
        let failed: Vec<&crate::checks::Verdict> = verdicts.iter().filter(|v| !v.passed).collect();
        let details = json!({"verdicts": verdicts, "settle_s": settled.as_secs_f64()});
        if failed.is_empty() {
            (Status::Passed, None, Some(details), attempts)
        } else {
            let message = failed
                .iter()
                .map(|v| {
                    format!(
                        "checker {} failed ({}): {}",
                        v.checker,
                        v.invariant,
                        v.evidence
                            .iter()
                            .skip(1)
                            .take(3)
                            .cloned()
                            .collect::<Vec<_>>()
                            .join("; ")
                    )
                })
                .collect::<Vec<_>>()
                .join(" | ");
            (Status::Failed, Some(message), Some(details), attempts)
        }
    }

    async fn load(
        &self,
        st: &Arc<RunState>,
        s: &Step,
        l: &LoadStep,
    ) -> (Status, Option<String>, Option<Value>, u32) {
        let mut requests = Vec::new();
        // `{{uuid}}` is fresh per request in a load phase (an Idempotency-Key per order),
        // so it renders as a placeholder the generator replaces on every send.
        let fixed = self.resolve(st);
        let per_request = |name: &str| match template::reference(name) {
            Reference::Uuid if st.vars.lock().ok().is_some_and(|v| !v.contains_key(name)) => {
                Ok(Value::String(load::UUID_PLACEHOLDER.to_string()))
            }
            _ => fixed(name),
        };
        for q in &l.requests {
            match self.build_with(&q.request, &per_request) {
                Ok((url, headers, body)) => requests.push(PreparedRequest::new(
                    q.weight,
                    q.request.method.clone(),
                    url,
                    headers,
                    body,
                    q.ok_status.clone(),
                )),
                Err(e) => return (Status::Error, Some(e), None, 0),
            }
        }
        let run = LoadRun {
            model: l.model,
            duration: l.duration,
            max_requests: l.max_requests,
            max_in_flight: l.max_in_flight,
            requests,
        };
        let progress = Arc::new(LoadProgress::default());
        let ticker = {
            let progress = progress.clone();
            let started = Instant::now();
            async move {
                let mut tick = tokio::time::interval(Duration::from_millis(200));
                loop {
                    tick.tick().await;
                    self.observer.load_progress(
                        s,
                        progress.done.load(Ordering::Relaxed),
                        progress.errors.load(Ordering::Relaxed),
                        started.elapsed(),
                    );
                }
            }
        };
        let result = tokio::select! {
            r = load::run(&run, progress.clone()) => r,
            () = ticker => unreachable!("the ticker never ends"),
        };
        match result {
            Err(e) => (Status::Error, Some(e), None, 1),
            Ok(stats) => {
                let violations = load::check_thresholds(&l.thresholds, &stats);
                let details = serde_json::to_value(&stats).ok();
                if violations.is_empty() {
                    (Status::Passed, None, details, 1)
                } else {
                    (
                        Status::Failed,
                        Some(format!(
                            "thresholds not met: {} ({} requests, {:.1} req/s)",
                            violations.join("; "),
                            stats.requests,
                            stats.rps
                        )),
                        details,
                        1,
                    )
                }
            }
        }
    }
}

/// Per-status counts of a load phase, for summaries.
pub fn status_counts(details: &Value) -> BTreeMap<String, u64> {
    details
        .get("by_status")
        .and_then(Value::as_object)
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| v.as_u64().map(|n| (k.clone(), n)))
                .collect()
        })
        .unwrap_or_default()
}
