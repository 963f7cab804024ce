//! The project's containers (listed again on every Docker event of the project, and every
//! few seconds in case an event was missed) and a stats stream per running container.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bollard::query_parameters::{EventsOptionsBuilder, StatsOptionsBuilder};
use bollard::Docker;
use futures_util::{FutureExt, StreamExt};
use msctl_stack::model::Stack;
use msctl_stack::runtime::{ContainerInfo, ContainerState, Runtime, LABEL_PROJECT};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::dash::state::{Replica, Update, Usage};

/// How often the container list is refreshed without an event.
const LIST_EVERY: Duration = Duration::from_secs(5);
/// How long to wait after an event for the ones that come with it.
const DEBOUNCE: Duration = Duration::from_millis(150);

/// Turns the engine's containers into panel rows, in stack-file order.
pub fn replicas(stack: &Stack, containers: Vec<ContainerInfo>) -> Vec<Replica> {
    let mut rows: Vec<Replica> = containers
        .into_iter()
        .filter(|c| !c.is_helper())
        .map(|c| {
            let component = c.component().unwrap_or("?").to_string();
            let metrics = stack
                .components
                .get(&component)
                .and_then(|comp| comp.metrics.as_ref())
                .and_then(|m| {
                    c.ports
                        .iter()
                        .find(|p| p.container == m.port)
                        .map(|p| (p.host, m.path.clone()))
                });
            Replica {
                replica: c.replica().unwrap_or(0),
                name: c.name.clone(),
                id: c.id.clone(),
                state: c.state.to_string(),
                health: c.health.to_string(),
                restarts: c.restart_count,
                metrics,
                component,
            }
        })
        .collect();
    rows.sort_by_key(|r| {
        (
            stack
                .components
                .get_index_of(&r.component)
                .unwrap_or(usize::MAX),
            r.component.clone(),
            r.replica,
        )
    });
    rows
}

/// CPU (percent of one core) and memory (without page cache) from one stats sample.
pub fn usage(s: &bollard::models::ContainerStatsResponse) -> Option<Usage> {
    let cpu = s.cpu_stats.as_ref()?;
    let pre = s.precpu_stats.as_ref()?;
    let total = cpu.cpu_usage.as_ref()?.total_usage?;
    let pre_total = pre
        .cpu_usage
        .as_ref()
        .and_then(|u| u.total_usage)
        .unwrap_or(0);
    let system = cpu.system_cpu_usage?;
    let pre_system = pre.system_cpu_usage.unwrap_or(0);
    let cpus = f64::from(cpu.online_cpus.unwrap_or(1).max(1));
    let cpu_percent = if system > pre_system && total >= pre_total {
        (total - pre_total) as f64 / (system - pre_system) as f64 * cpus * 100.0
    } else {
        0.0
    };
    let mem = s.memory_stats.as_ref();
    let used = mem.and_then(|m| m.usage).unwrap_or(0);
    let cache = mem
        .and_then(|m| m.stats.as_ref())
        .and_then(|st| {
            st.get("inactive_file")
                .or_else(|| st.get("total_inactive_file"))
        })
        .copied()
        .unwrap_or(0);
    Some(Usage {
        cpu_percent,
        memory_bytes: used.saturating_sub(cache),
    })
}

/// Lists containers on events and on a timer, publishes them to `rows` (for the other
/// sources) and to the UI, and keeps one stats stream per running container.
pub async fn run(
    stack: Arc<Stack>,
    runtime: Arc<dyn Runtime>,
    docker: Docker,
    tx: mpsc::Sender<Update>,
    rows: watch::Sender<Vec<Replica>>,
    cancel: CancellationToken,
) {
    let project = runtime.project().to_string();
    let mut filters = HashMap::new();
    filters.insert("label", vec![format!("{LABEL_PROJECT}={project}")]);
    filters.insert("type", vec!["container".to_string()]);
    // Lifecycle and health changes only: exec events (every command health check makes
    // three a second per container) would re-list the containers for nothing.
    filters.insert(
        "event",
        [
            "create",
            "start",
            "restart",
            "die",
            "kill",
            "stop",
            "pause",
            "unpause",
            "destroy",
            "oom",
            "health_status",
        ]
        .iter()
        .map(ToString::to_string)
        .collect(),
    );
    let mut events = docker
        .events(Some(EventsOptionsBuilder::new().filters(&filters).build()))
        .boxed();
    let mut stats: BTreeMap<String, JoinHandle<()>> = BTreeMap::new();
    let mut tick = tokio::time::interval(LIST_EVERY);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => {}
            ev = events.next() => match ev {
                Some(Ok(_)) => {
                    // A kill comes with die and stop events: take them in one listing.
                    tokio::time::sleep(DEBOUNCE).await;
                    while let Some(Some(Ok(_))) = events.next().now_or_never() {}
                }
                Some(Err(e)) => {
                    // The event stream broke: fall back to the timer alone.
                    tracing::debug!("docker events: {e}");
                    events = futures_util::stream::pending().boxed();
                }
                None => events = futures_util::stream::pending().boxed(),
            },
        }
        match runtime.list_containers().await {
            Ok(list) => {
                let running: Vec<String> = list
                    .iter()
                    .filter(|c| c.state == ContainerState::Running && !c.is_helper())
                    .map(|c| c.id.clone())
                    .collect();
                stats.retain(|id, h| {
                    let keep = running.contains(id) && !h.is_finished();
                    if !keep {
                        h.abort();
                    }
                    keep
                });
                for id in running {
                    stats.entry(id.clone()).or_insert_with(|| {
                        tokio::spawn(stream_stats(docker.clone(), id, tx.clone(), cancel.clone()))
                    });
                }
                let r = replicas(&stack, list);
                rows.send_replace(r.clone());
                if tx.send(Update::Replicas(Ok(r))).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                if tx.send(Update::Replicas(Err(e.to_string()))).await.is_err() {
                    break;
                }
            }
        }
    }
    for h in stats.values() {
        h.abort();
    }
}

/// Streams one container's stats until it stops or the dashboard exits.
async fn stream_stats(
    docker: Docker,
    id: String,
    tx: mpsc::Sender<Update>,
    cancel: CancellationToken,
) {
    let mut s = docker
        .stats(&id, Some(StatsOptionsBuilder::new().stream(true).build()))
        .boxed();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            item = s.next() => match item {
                Some(Ok(sample)) => {
                    if let Some(u) = usage(&sample) {
                        if tx.send(Update::Usage(id.clone(), u)).await.is_err() {
                            return;
                        }
                    }
                }
                Some(Err(e)) => {
                    let _ = tx.send(Update::UsageLost(format!("stats: {e}"))).await;
                    return;
                }
                None => return,
            },
        }
    }
}
