//! The dashboard's domain data: one [`Snapshot`] of everything the panels show, fed by the
//! background sources through [`Update`] messages. Drawing reads a snapshot only, so a slow
//! or dead source can never stall the screen; each source's data sits in a [`Feed`] that
//! remembers when it last answered and why it stopped.

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use serde::Deserialize;

/// How many sparkline samples are kept (one per metrics scrape, 2 s apart: 5 minutes).
pub const HISTORY: usize = 150;
/// How many log lines of the selected component are kept.
pub const LOG_LINES: usize = 500;

/// The last answer of one data source, or why it is lost.
#[derive(Debug, Clone)]
pub struct Feed<T> {
    /// The last good data, kept while the source is lost so the panel still has context.
    pub data: Option<T>,
    /// Why the last attempt failed; `None` while the source answers.
    pub error: Option<String>,
    /// When the source last answered.
    pub updated: Option<Instant>,
}

impl<T> Default for Feed<T> {
    fn default() -> Self {
        Self {
            data: None,
            error: None,
            updated: None,
        }
    }
}

impl<T> Feed<T> {
    /// A feed holding `data`.
    #[cfg(test)]
    pub fn ok(data: T) -> Self {
        Self {
            data: Some(data),
            error: None,
            updated: Some(Instant::now()),
        }
    }

    /// Records a new answer or failure.
    pub fn set(&mut self, result: Result<T, String>) {
        match result {
            Ok(d) => {
                self.data = Some(d);
                self.error = None;
                self.updated = Some(Instant::now());
            }
            Err(e) => self.error = Some(e),
        }
    }

    /// A short status for a panel title: `None` while fine, else `lost: …` or `waiting`.
    pub fn status(&self) -> Option<String> {
        match (&self.error, &self.data) {
            (Some(e), _) => Some(format!("lost: {e}")),
            (None, None) => Some("waiting for data".to_string()),
            (None, Some(_)) => None,
        }
    }
}

/// One replica of a component as the components panel shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Replica {
    /// Component name.
    pub component: String,
    /// 1-based replica number.
    pub replica: u32,
    /// Container name.
    pub name: String,
    /// Engine id.
    pub id: String,
    /// `running`, `exited`, `paused`…
    pub state: String,
    /// `healthy`, `starting`, `unhealthy` or `-`.
    pub health: String,
    /// Engine restarts.
    pub restarts: i64,
    /// Host port of the metrics endpoint and its path, when the component has one.
    pub metrics: Option<(u16, String)>,
}

impl Replica {
    /// `component#N`, the chaos target of this replica.
    pub fn target(&self) -> String {
        format!("{}#{}", self.component, self.replica)
    }
}

/// Docker stats of one container.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Usage {
    /// CPU, percent of one core.
    pub cpu_percent: f64,
    /// Memory in use, bytes.
    pub memory_bytes: u64,
}

/// Request figures of one replica, from two scrapes of its /metrics.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Traffic {
    /// Requests per second.
    pub rps: f64,
    /// 99th percentile latency, seconds (`None` without requests in the interval).
    pub p99: Option<f64>,
    /// Share of 5xx answers, percent.
    pub error_percent: f64,
}

/// One instance behind the gateway (`GET /admin/upstreams`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Instance {
    /// Registry instance id.
    pub id: String,
    /// Host (container DNS name).
    #[serde(default)]
    pub address: String,
    /// Port.
    #[serde(default)]
    pub port: u16,
    /// `closed`, `open` or `half_open`.
    pub breaker: String,
    /// Remaining ejection, milliseconds.
    #[serde(default)]
    pub ejected_for_ms: Option<u64>,
    /// Times the breaker opened.
    #[serde(default)]
    pub ejections: u64,
    /// Requests in flight.
    #[serde(default)]
    pub in_flight: u64,
    /// Attempts sent.
    #[serde(default)]
    pub requests: u64,
    /// Attempts failed.
    #[serde(default)]
    pub failures: u64,
}

/// One service behind the gateway.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Upstream {
    /// Service name.
    pub service: String,
    /// The gateway serves a stale view (registry unreachable).
    #[serde(default)]
    pub stale: bool,
    /// Its instances.
    #[serde(default)]
    pub instances: Vec<Instance>,
}

/// The gateway admin answer.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
pub struct Upstreams {
    /// Balancing policy.
    #[serde(default)]
    pub load_balancing: String,
    /// Per service.
    #[serde(default)]
    pub services: Vec<Upstream>,
}

/// One recent order (`GET /admin/sagas`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RecentOrder {
    /// Order id.
    pub order_id: String,
    /// `pending`, `confirmed`, `cancelled`.
    pub status: String,
    /// The saga's state.
    #[serde(default)]
    pub saga_state: String,
    /// Why it was cancelled.
    #[serde(default)]
    pub reason: Option<String>,
    /// Total, cents.
    #[serde(default)]
    pub total_cents: Option<i64>,
    /// Saga step attempts.
    #[serde(default)]
    pub attempts: i64,
}

/// Saga overview from the order service.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
pub struct Sagas {
    /// Saga counts by state.
    #[serde(default)]
    pub sagas: BTreeMap<String, i64>,
    /// Order counts by status.
    #[serde(default)]
    pub orders: BTreeMap<String, i64>,
    /// Most recently changed sagas first.
    #[serde(default)]
    pub recent: Vec<RecentOrder>,
}

/// One active fault from the ledger.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// Ledger id (`f3`).
    pub id: String,
    /// `kill SIGKILL`, `partition`…
    pub kind: String,
    /// Target as typed.
    pub target: String,
    /// `active` or `pending`.
    pub state: String,
    /// Containers it touched.
    pub containers: Vec<String>,
    /// When it reverts on its own.
    pub expires_at: Option<String>,
}

/// A message from a background source (or a finished action) to the UI loop.
#[derive(Debug)]
pub enum Update {
    /// The project's containers (from `ps`, refreshed on Docker events).
    Replicas(Result<Vec<Replica>, String>),
    /// Stats of one container, by id.
    Usage(String, Usage),
    /// The stats source failed.
    UsageLost(String),
    /// Request figures per container name; gateway totals for the sparklines.
    Traffic(BTreeMap<String, Result<Traffic, String>>),
    /// The gateway admin API.
    Upstreams(Result<Upstreams, String>),
    /// The order service admin API.
    Sagas(Result<Sagas, String>),
    /// The fault ledger.
    Faults(Result<Vec<Fault>, String>),
    /// One log line of the followed container (name, line).
    Log(String, String),
    /// The log stream ended or failed.
    LogEnd(String, String),
    /// A key action finished: a line for the status bar.
    Done(String),
}

/// A question waiting for `y`/`n`.
#[derive(Debug, Clone, PartialEq)]
pub struct Confirm {
    /// The question shown.
    pub question: String,
    /// What `y` does.
    pub action: crate::dash::input::Command,
}

/// Everything the panels draw.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Project name.
    pub project: String,
    /// Replicas in stack order.
    pub replicas: Feed<Vec<Replica>>,
    /// Docker stats by container id.
    pub usage: BTreeMap<String, Usage>,
    /// Why stats are missing, if they are.
    pub usage_error: Option<String>,
    /// /metrics figures by container name (an error per replica whose scrape failed).
    pub traffic: BTreeMap<String, Result<Traffic, String>>,
    /// Gateway req/s history, oldest first.
    pub gateway_rps: VecDeque<f64>,
    /// Gateway p99 history in milliseconds, oldest first.
    pub gateway_p99_ms: VecDeque<f64>,
    /// Gateway upstreams.
    pub upstreams: Feed<Upstreams>,
    /// Sagas and orders.
    pub sagas: Feed<Sagas>,
    /// Active faults.
    pub faults: Feed<Vec<Fault>>,
    /// Selected row of the components panel.
    pub selected: usize,
    /// Lower area shows logs instead of the overview.
    pub show_logs: bool,
    /// Container whose logs are followed.
    pub log_source: Option<String>,
    /// Followed log lines, oldest first.
    pub logs: VecDeque<String>,
    /// The help overlay is open.
    pub show_help: bool,
    /// A destructive action waiting for confirmation.
    pub confirm: Option<Confirm>,
    /// The status bar line (last action result).
    pub status: String,
    /// Actions running now.
    pub busy: usize,
}

/// Pushes a sample, keeping the last [`HISTORY`].
fn push(series: &mut VecDeque<f64>, v: f64) {
    if series.len() == HISTORY {
        series.pop_front();
    }
    series.push_back(v);
}

impl Snapshot {
    /// An empty snapshot of `project`.
    pub fn new(project: impl Into<String>) -> Self {
        Self {
            project: project.into(),
            status: "? help · q quit".to_string(),
            ..Self::default()
        }
    }

    /// The replica under the cursor.
    pub fn selected_replica(&self) -> Option<&Replica> {
        self.replicas.data.as_ref()?.get(self.selected)
    }

    /// Applies one message from a source.
    pub fn apply(&mut self, update: Update) {
        match update {
            Update::Replicas(r) => {
                self.replicas.set(r);
                let n = self.replicas.data.as_ref().map_or(0, Vec::len);
                self.selected = self.selected.min(n.saturating_sub(1));
            }
            Update::Usage(id, u) => {
                self.usage_error = None;
                self.usage.insert(id, u);
            }
            Update::UsageLost(e) => self.usage_error = Some(e),
            Update::Traffic(t) => {
                let gateway: Vec<Traffic> = self
                    .replicas
                    .data
                    .iter()
                    .flatten()
                    .filter(|r| r.component == "gateway")
                    .filter_map(|r| t.get(&r.name).and_then(|x| x.as_ref().ok()).copied())
                    .collect();
                if !gateway.is_empty() {
                    push(&mut self.gateway_rps, gateway.iter().map(|g| g.rps).sum());
                    let p99 = gateway.iter().filter_map(|g| g.p99).fold(0.0_f64, f64::max);
                    push(&mut self.gateway_p99_ms, p99 * 1000.0);
                }
                self.traffic = t;
            }
            Update::Upstreams(r) => self.upstreams.set(r),
            Update::Sagas(r) => self.sagas.set(r),
            Update::Faults(r) => self.faults.set(r),
            Update::Log(source, line) => {
                if self.log_source.as_deref() == Some(source.as_str()) {
                    if self.logs.len() == LOG_LINES {
                        self.logs.pop_front();
                    }
                    self.logs.push_back(line);
                }
            }
            Update::LogEnd(source, why) => {
                if self.log_source.as_deref() == Some(source.as_str()) {
                    self.logs
                        .push_back(format!("-- log stream ended: {why} --"));
                }
            }
            Update::Done(line) => {
                self.busy = self.busy.saturating_sub(1);
                self.status = line;
            }
        }
    }
}

/// Formats bytes as `12.3M`.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b}B")
    } else if v < 10.0 {
        format!("{v:.1}{}", UNITS[i])
    } else {
        format!("{v:.0}{}", UNITS[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_source_keeps_its_last_data_and_says_it_is_lost() {
        let mut f = Feed::ok(1);
        f.set(Err("connection refused".into()));
        assert_eq!(f.data, Some(1));
        assert_eq!(f.status().as_deref(), Some("lost: connection refused"));
        f.set(Ok(2));
        assert_eq!(f.status(), None);
    }

    #[test]
    fn bytes_are_human() {
        assert_eq!(human_bytes(512), "512B");
        assert_eq!(human_bytes(1536), "1.5K");
        assert_eq!(human_bytes(200 * 1024 * 1024), "200M");
    }

    #[test]
    fn sparkline_history_is_bounded() {
        let mut s = VecDeque::new();
        for i in 0..(HISTORY + 10) {
            push(&mut s, i as f64);
        }
        assert_eq!(s.len(), HISTORY);
        assert_eq!(s.front().copied(), Some(10.0));
    }
}
