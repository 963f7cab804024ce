//! Bringing a stack up and down: the plan (what to keep, start, create or recreate), the
//! dependency-ordered, parallel apply with health waits, and `down`, `ps` and `restart`.
//!
//! Everything here talks to the engine through [`Runtime`], so it is tested without one.
//!
//! `up` runs one future per selected component, all concurrently. A component first waits
//! until each dependency reaches its condition (started / healthy / completed), then
//! applies its replicas' actions, announces `Started`, and, when something waits on it (or
//! the caller asked to wait), polls until it is ready. The first failure cancels the rest.

use std::collections::{BTreeMap, HashMap};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::future::try_join_all;
use futures_util::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::model::{Component, Condition, MetricsEndpoint, PortMapping, RestartPolicy, Stack};
use crate::progress::{ProgressExt, ProgressSink};
use crate::runtime::{
    ContainerInfo, ContainerSpec, ContainerState, Health, ImageBuild, LogOptions, Runtime,
    RuntimeError, LABEL_COMPONENT, LABEL_CONFIG_HASH, LABEL_PROJECT, LABEL_REPLICA,
};

/// How often readiness is polled.
const POLL: Duration = Duration::from_millis(250);
/// Log lines shown when a component fails to come up.
const LOG_TAIL: u64 = 25;

/// Errors from orchestration.
#[derive(Debug, thiserror::Error)]
pub enum OrchestratorError {
    /// The engine or a resource check failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The component or profile selection is wrong.
    #[error("{0}")]
    Selection(String),
    /// A fixed host port is taken by something that is not this stack.
    #[error("port {port} for component \"{component}\" is already in use on 127.0.0.1; set components.{component}.ports or stop the process holding it")]
    PortInUse {
        /// Component wanting the port.
        component: String,
        /// The host port.
        port: u16,
    },
    /// A component failed to become ready.
    #[error("component \"{component}\" ({container}) {reason}{}", format_logs(.logs))]
    NotReady {
        /// Component.
        component: String,
        /// Container name.
        container: String,
        /// What was seen.
        reason: String,
        /// The tail of its logs.
        logs: Vec<String>,
    },
    /// Loading fixtures failed.
    #[error("seed: {0}")]
    Seed(String),
    /// A dependency failed, so the dependent was not started.
    #[error("component \"{component}\" was not started because \"{dependency}\" failed")]
    DependencyFailed {
        /// Dependent.
        component: String,
        /// Failed dependency.
        dependency: String,
    },
}

fn format_logs(logs: &[String]) -> String {
    if logs.is_empty() {
        return String::new();
    }
    let mut s = String::from("; last log lines:");
    for l in logs {
        s.push_str("\n    ");
        s.push_str(l);
    }
    s
}

/// What `up` does with one replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum Action {
    /// Up to date and running: leave it alone.
    Keep {
        /// Container id.
        id: String,
    },
    /// Up to date but stopped: start it.
    Start {
        /// Container id.
        id: String,
    },
    /// Missing: create and start.
    Create,
    /// Definition or image changed: remove, create and start.
    Recreate {
        /// Old container id.
        old: String,
    },
}

/// The plan for one replica.
#[derive(Debug, Clone, Serialize)]
pub struct ReplicaPlan {
    /// Component.
    pub component: String,
    /// 1-based replica number.
    pub replica: u32,
    /// The container it should be.
    pub spec: ContainerSpec,
    /// What to do.
    pub action: Action,
}

/// Everything `up` will do.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UpPlan {
    /// Replicas in start order.
    pub replicas: Vec<ReplicaPlan>,
    /// Surplus replicas (after scaling down) to remove.
    pub remove: Vec<String>,
}

impl UpPlan {
    /// True when nothing would change.
    pub fn is_noop(&self) -> bool {
        self.remove.is_empty()
            && self
                .replicas
                .iter()
                .all(|r| matches!(r.action, Action::Keep { .. }))
    }
}

/// Options for `up`.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// Named components (empty = all, or by profile).
    pub components: Vec<String>,
    /// Profiles to start.
    pub profiles: Vec<String>,
    /// Image build options.
    pub build: ImageBuild,
    /// Wait until every component is ready before returning.
    pub wait: bool,
    /// Overall deadline for the health waits.
    pub timeout: Duration,
    /// Check images that exist against their recipes (for a binaries image a `cargo build`
    /// and a hash of every binary, hundreds of MB) and rebuild what changed. Off, an image
    /// the engine has is used as it is and only missing ones are built, as `docker compose
    /// up` does: what `msctl up` does, with `--build` and `msctl images build` to rebuild.
    pub check_images: bool,
}

impl Default for UpOptions {
    fn default() -> Self {
        Self {
            components: Vec::new(),
            profiles: Vec::new(),
            build: ImageBuild::default(),
            wait: true,
            timeout: Duration::from_secs(300),
            check_images: true,
        }
    }
}

/// What `up` did, per component.
#[derive(Debug, Clone, Serialize)]
pub struct UpReport {
    /// Component → actions taken, in start order.
    pub components: Vec<(String, Vec<Action>)>,
    /// Removed surplus containers.
    pub removed: Vec<String>,
}

/// One row of `ps`.
#[derive(Debug, Clone, Serialize)]
pub struct ReplicaStatus {
    /// Component (or the label value for containers no longer in the stack file).
    pub component: String,
    /// Replica number.
    pub replica: u32,
    /// Container name.
    pub name: String,
    /// State.
    pub state: ContainerState,
    /// Health.
    pub health: Health,
    /// Exit code if exited.
    pub exit_code: Option<i64>,
    /// Published ports on 127.0.0.1.
    pub ports: Vec<PortMapping>,
    /// Seconds since the current run started.
    pub uptime_secs: Option<u64>,
    /// Engine restarts.
    pub restarts: i64,
    /// Whether the component is in the current stack file.
    pub in_stack: bool,
}

/// How far a component has come during `up`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    /// Not started yet (waiting for dependencies).
    Pending,
    /// Containers are running.
    Started,
    /// Healthy, or running when it has no health check.
    Ready,
    /// A one-shot job exited 0.
    Completed,
    /// It failed; dependents will not start.
    Failed,
}

impl Stage {
    fn satisfies(&self, c: Condition) -> bool {
        match c {
            Condition::Started => matches!(self, Stage::Started | Stage::Ready | Stage::Completed),
            Condition::Healthy => matches!(self, Stage::Ready | Stage::Completed),
            Condition::CompletedSuccessfully => *self == Stage::Completed,
        }
    }
}

/// A stack bound to a project on a runtime.
pub struct Project {
    /// The validated stack.
    pub stack: Stack,
    runtime: Arc<dyn Runtime>,
    /// Test seam: is a host port free on 127.0.0.1?
    port_free: Arc<dyn Fn(u16) -> bool + Send + Sync>,
}

impl Project {
    /// Binds `stack` to `runtime` (whose project name is used for every resource).
    pub fn new(stack: Stack, runtime: Arc<dyn Runtime>) -> Self {
        Self {
            stack,
            runtime,
            port_free: Arc::new(|port| TcpListener::bind(("127.0.0.1", port)).is_ok()),
        }
    }

    /// Replaces the host-port probe (tests).
    pub fn with_port_probe(mut self, probe: impl Fn(u16) -> bool + Send + Sync + 'static) -> Self {
        self.port_free = Arc::new(probe);
        self
    }

    /// The project name.
    pub fn name(&self) -> &str {
        self.runtime.project()
    }

    /// The runtime.
    pub fn runtime(&self) -> &Arc<dyn Runtime> {
        &self.runtime
    }

    /// `<project>-net`.
    pub fn network_name(&self) -> String {
        format!("{}-net", self.name())
    }

    /// `<project>-<component>-<n>`.
    pub fn container_name(&self, component: &str, replica: u32) -> String {
        format!("{}-{component}-{replica}", self.name())
    }

    /// `<project>-<component>-<volume>`.
    pub fn volume_name(&self, component: &str, volume: &str) -> String {
        format!("{}-{component}-{volume}", self.name())
    }

    /// Builds (or finds) the images of the named components, returning tag → id.
    pub async fn ensure_images(
        &self,
        components: &[String],
        build: ImageBuild,
        progress: &ProgressSink,
    ) -> Result<HashMap<String, String>, OrchestratorError> {
        let mut images: Vec<&str> = Vec::new();
        for name in components {
            let Some(c) = self.stack.components.get(name) else {
                continue;
            };
            if !images.contains(&c.image.as_str()) {
                images.push(&c.image);
            }
        }
        // Concurrently: the cargo build of a binaries image (CPU) overlaps the base image's
        // debootstrap and the recipe builds (mostly I/O); the base is built once
        // (`images::ensure_base` is single-flight) and the others wait for it.
        let built = try_join_all(images.iter().map(|image| async move {
            let recipe = self
                .stack
                .images
                .get(*image)
                .map(|r| (r, self.stack.root.as_path()));
            let id = self
                .runtime
                .ensure_image(image, recipe, build, progress)
                .await?;
            Ok::<_, OrchestratorError>((image.to_string(), id))
        }))
        .await?;
        Ok(built.into_iter().collect())
    }

    /// The images `up` runs, tag → id: with `check_images` off (and no forced build) the
    /// ones the engine has as they are, and only the missing ones built; else
    /// [`Project::ensure_images`].
    async fn images_for_up(
        &self,
        selection: &[String],
        opts: &UpOptions,
        progress: &ProgressSink,
    ) -> Result<HashMap<String, String>, OrchestratorError> {
        if opts.check_images || opts.build.force {
            return self.ensure_images(selection, opts.build, progress).await;
        }
        let mut ids = HashMap::new();
        let mut missing = Vec::new();
        for name in selection {
            let Some(c) = self.stack.components.get(name) else {
                continue;
            };
            if ids.contains_key(&c.image) || missing.iter().any(|m: &&Component| m.image == c.image)
            {
                continue;
            }
            match self.runtime.image_id(&c.image).await? {
                Some(id) => {
                    ids.insert(c.image.clone(), id);
                }
                None => missing.push(c),
            }
        }
        if !ids.is_empty() {
            let mut tags: Vec<&str> = ids.keys().map(String::as_str).collect();
            tags.sort_unstable();
            progress.note(format!(
                "using the existing images {} (`msctl images build` rebuilds what changed)",
                tags.join(", ")
            ));
        }
        let missing: Vec<String> = missing.iter().map(|c| c.name.clone()).collect();
        ids.extend(self.ensure_images(&missing, opts.build, progress).await?);
        Ok(ids)
    }

    /// Builds every image the stack file defines.
    pub async fn build_all_images(
        &self,
        build: ImageBuild,
        progress: &ProgressSink,
    ) -> Result<Vec<(String, String)>, OrchestratorError> {
        // Concurrently, as in `ensure_images`; the result keeps the file's order.
        try_join_all(self.stack.images.iter().map(|(tag, recipe)| async move {
            let id = self
                .runtime
                .ensure_image(tag, Some((recipe, &self.stack.root)), build, progress)
                .await?;
            Ok::<_, OrchestratorError>((tag.clone(), id))
        }))
        .await
    }

    /// The container a replica should be.
    pub fn spec(&self, c: &Component, replica: u32, image_id: &str) -> ContainerSpec {
        let name = self.container_name(&c.name, replica);
        let mut env: Vec<String> = c
            .environment
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        env.push(format!("MSCTL_PROJECT={}", self.name()));
        env.push(format!("MSCTL_COMPONENT={}", c.name));
        env.push(format!("MSCTL_REPLICA={replica}"));
        if let Some(var) = &c.prometheus_config {
            env.push(format!("{var}={}", self.prometheus_config()));
        }
        let labels = BTreeMap::from([
            (LABEL_PROJECT.to_string(), self.name().to_string()),
            (LABEL_COMPONENT.to_string(), c.name.clone()),
            (LABEL_REPLICA.to_string(), replica.to_string()),
        ]);
        let mut spec = ContainerSpec {
            hostname: name.clone(),
            name,
            image: c.image.clone(),
            image_id: image_id.to_string(),
            labels,
            env,
            cmd: c.command.clone(),
            entrypoint: c.entrypoint.clone(),
            network: self.network_name(),
            aliases: vec![c.name.clone()],
            ports: c.ports.clone(),
            volumes: c
                .volumes
                .iter()
                .map(|v| (self.volume_name(&c.name, &v.name), v.path.clone()))
                .collect(),
            health: c.health.clone(),
            restart: c.restart,
            stop_timeout: c.stop_timeout,
        };
        let hash = config_hash(&spec);
        spec.labels.insert(LABEL_CONFIG_HASH.to_string(), hash);
        spec
    }

    /// The Prometheus configuration: every replica of every component with `metrics`, by
    /// container name on the project network, plus Prometheus itself.
    pub fn prometheus_config(&self) -> String {
        render_prometheus_config(&self.stack, |c, m| {
            let targets: Vec<String> = (1..=c.replicas)
                .map(|r| format!("{}:{}", self.container_name(&c.name, r), m.port))
                .collect();
            static_scrape_targets(c, &targets)
        })
    }

    /// Works out what `up` would do, given the images' ids.
    pub async fn plan(
        &self,
        selection: &[String],
        image_ids: &HashMap<String, String>,
    ) -> Result<UpPlan, OrchestratorError> {
        let existing = self.runtime.list_containers().await?;
        let by_name: HashMap<&str, &ContainerInfo> =
            existing.iter().map(|c| (c.name.as_str(), c)).collect();
        let mut plan = UpPlan::default();
        for name in selection {
            let c = &self.stack.components[name];
            let image_id = image_ids.get(&c.image).cloned().unwrap_or_default();
            for replica in 1..=c.replicas {
                let spec = self.spec(c, replica, &image_id);
                let action = match by_name.get(spec.name.as_str()) {
                    None => Action::Create,
                    Some(old)
                        if old.config_hash()
                            != spec.labels.get(LABEL_CONFIG_HASH).map(String::as_str) =>
                    {
                        Action::Recreate {
                            old: old.id.clone(),
                        }
                    }
                    Some(old) => match old.state {
                        ContainerState::Running | ContainerState::Restarting => {
                            Action::Keep { id: old.id.clone() }
                        }
                        // A paused container (e.g. by chaos) is resumed by recreating it.
                        ContainerState::Paused => Action::Recreate {
                            old: old.id.clone(),
                        },
                        // A one-shot job that already succeeded stays done.
                        ContainerState::Exited
                            if c.restart == RestartPolicy::No && old.exit_code == Some(0) =>
                        {
                            Action::Keep { id: old.id.clone() }
                        }
                        ContainerState::Removing | ContainerState::Dead => Action::Recreate {
                            old: old.id.clone(),
                        },
                        _ => Action::Start { id: old.id.clone() },
                    },
                };
                plan.replicas.push(ReplicaPlan {
                    component: name.clone(),
                    replica,
                    spec,
                    action,
                });
            }
            for old in existing.iter().filter(|e| {
                e.component() == Some(name.as_str())
                    && !e.is_helper()
                    && e.replica().is_none_or(|r| r > c.replicas)
            }) {
                plan.remove.push(old.id.clone());
            }
        }
        Ok(plan)
    }

    /// Fails, naming component and port, when a fixed host port that `plan` needs is taken
    /// by something other than the container being replaced.
    fn check_ports(
        &self,
        plan: &UpPlan,
        existing: &[ContainerInfo],
    ) -> Result<(), OrchestratorError> {
        for r in &plan.replicas {
            let replaced = match &r.action {
                Action::Keep { .. } => continue,
                Action::Start { id } | Action::Recreate { old: id } => {
                    existing.iter().find(|e| &e.id == id)
                }
                Action::Create => None,
            };
            for p in r.spec.ports.iter().filter(|p| p.host != 0) {
                // Our own container holding it will release it when replaced.
                if replaced.is_some_and(|o| o.ports.iter().any(|q| q.host == p.host)) {
                    continue;
                }
                if !(self.port_free)(p.host) {
                    return Err(OrchestratorError::PortInUse {
                        component: r.component.clone(),
                        port: p.host,
                    });
                }
            }
        }
        Ok(())
    }

    /// Brings the selection up: images, network, volumes, containers in dependency order,
    /// then (unless `wait` is off) waits until every component is ready.
    pub async fn up(
        &self,
        opts: &UpOptions,
        progress: &ProgressSink,
    ) -> Result<UpReport, OrchestratorError> {
        let selection = self
            .stack
            .select(&opts.components, &opts.profiles)
            .map_err(OrchestratorError::Selection)?;
        let image_ids = self.images_for_up(&selection, opts, progress).await?;
        let existing = self.runtime.list_containers().await?;
        let plan = self.plan(&selection, &image_ids).await?;
        self.check_ports(&plan, &existing)?;

        self.runtime.ensure_network(&self.network_name()).await?;
        for name in &selection {
            for v in &self.stack.components[name].volumes {
                self.runtime
                    .ensure_volume(&self.volume_name(name, &v.name), name)
                    .await?;
            }
        }
        for id in &plan.remove {
            self.runtime.remove_container(id).await?;
        }

        let deadline = Instant::now() + opts.timeout;
        let mut senders: HashMap<String, watch::Sender<Stage>> = HashMap::new();
        let mut receivers: HashMap<String, watch::Receiver<Stage>> = HashMap::new();
        for name in &selection {
            let (tx, rx) = watch::channel(Stage::Pending);
            senders.insert(name.clone(), tx);
            receivers.insert(name.clone(), rx);
        }
        // Components that something in the selection waits on beyond "started".
        let awaited: Vec<&str> = selection
            .iter()
            .flat_map(|n| self.stack.components[n].depends_on.iter())
            .filter(|d| d.condition != Condition::Started)
            .map(|d| d.component.as_str())
            .collect();

        let tasks = selection.iter().map(|name| {
            let c = &self.stack.components[name];
            let replicas: Vec<&ReplicaPlan> = plan
                .replicas
                .iter()
                .filter(|r| &r.component == name)
                .collect();
            let deps: Vec<(String, Condition, watch::Receiver<Stage>)> = c
                .depends_on
                .iter()
                .filter_map(|d| {
                    receivers
                        .get(&d.component)
                        .map(|rx| (d.component.clone(), d.condition, rx.clone()))
                })
                .collect();
            let tx = senders
                .remove(name)
                .expect("one sender per selected component");
            let must_wait = opts.wait || awaited.contains(&name.as_str());
            async move {
                let result = self
                    .bring_up(c, replicas, deps, &tx, must_wait, deadline, progress)
                    .await;
                if result.is_err() {
                    let _ = tx.send(Stage::Failed);
                }
                result.map(|actions| (name.clone(), actions))
            }
        });
        let components = try_join_all(tasks).await?;

        // Fixtures go in the first time a seeded component comes up (or when it was
        // recreated); the endpoints are idempotent, so this never duplicates data.
        let fresh: Vec<String> = components
            .iter()
            .filter(|(name, actions)| {
                self.stack.components[name].seed.is_some()
                    && actions
                        .iter()
                        .any(|a| matches!(a, Action::Create | Action::Recreate { .. }))
            })
            .map(|(name, _)| name.clone())
            .collect();
        if opts.wait && !fresh.is_empty() {
            self.seed(&fresh, progress).await?;
        }
        Ok(UpReport {
            components,
            removed: plan.remove,
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn bring_up(
        &self,
        c: &Component,
        replicas: Vec<&ReplicaPlan>,
        deps: Vec<(String, Condition, watch::Receiver<Stage>)>,
        tx: &watch::Sender<Stage>,
        must_wait: bool,
        deadline: Instant,
        progress: &ProgressSink,
    ) -> Result<Vec<Action>, OrchestratorError> {
        let key = c.name.as_str();
        progress.start(key, key, None);
        for (dep, cond, mut rx) in deps {
            progress.message(key, format!("waiting for {dep} ({cond})"));
            let stage = rx
                .wait_for(|s| s.satisfies(cond) || *s == Stage::Failed)
                .await
                .map(|s| s.clone())
                .unwrap_or(Stage::Failed);
            if stage == Stage::Failed {
                progress.finish(key, false, format!("not started: {dep} failed"));
                return Err(OrchestratorError::DependencyFailed {
                    component: c.name.clone(),
                    dependency: dep,
                });
            }
        }

        let mut ids = Vec::new();
        let mut actions = Vec::new();
        let mut changed = false;
        for r in &replicas {
            let id = match &r.action {
                Action::Keep { id } => id.clone(),
                Action::Start { id } => {
                    progress.message(key, format!("starting {}", r.spec.name));
                    self.runtime.start_container(id).await?;
                    changed = true;
                    id.clone()
                }
                Action::Create | Action::Recreate { .. } => {
                    if let Action::Recreate { old } = &r.action {
                        progress.message(key, format!("recreating {}", r.spec.name));
                        self.runtime.remove_container(old).await?;
                    } else {
                        progress.message(key, format!("creating {}", r.spec.name));
                    }
                    let id = self.runtime.create_container(&r.spec).await?;
                    self.runtime.start_container(&id).await?;
                    changed = true;
                    id
                }
            };
            ids.push((r.spec.name.clone(), id));
            actions.push(r.action.clone());
        }
        let _ = tx.send(Stage::Started);
        if !must_wait {
            progress.finish(key, true, if changed { "started" } else { "running" });
            return Ok(actions);
        }

        progress.message(key, "waiting until ready");
        let started = Instant::now();
        let mut stage = Stage::Ready;
        for (name, id) in &ids {
            match self.wait_ready(c, name, id, deadline).await {
                Ok(s) => {
                    if s == Stage::Completed {
                        stage = Stage::Completed;
                    }
                }
                Err(e) => {
                    progress.finish(key, false, "failed");
                    return Err(e);
                }
            }
        }
        let _ = tx.send(stage.clone());
        let what = match (&stage, c.health.is_some(), changed) {
            (Stage::Completed, _, _) => "completed".to_string(),
            (_, true, true) => format!("healthy ({:.1}s)", started.elapsed().as_secs_f64()),
            (_, true, false) => "healthy (unchanged)".to_string(),
            (_, false, true) => "running".to_string(),
            (_, false, false) => "running (unchanged)".to_string(),
        };
        progress.finish(key, true, what);
        Ok(actions)
    }

    /// Polls one container until it is ready (healthy, or running when it has no health
    /// check, or exited 0 for a one-shot job), or fails with the tail of its logs.
    pub async fn wait_ready(
        &self,
        c: &Component,
        name: &str,
        id: &str,
        deadline: Instant,
    ) -> Result<Stage, OrchestratorError> {
        let oneshot = c.restart == RestartPolicy::No;
        loop {
            let info = self.runtime.inspect_container(id).await?;
            let verdict: Option<Result<Stage, String>> = match (info.state, info.health) {
                (ContainerState::Exited | ContainerState::Dead, _) if oneshot => {
                    Some(match info.exit_code {
                        Some(0) => Ok(Stage::Completed),
                        code => Err(format!(
                            "exited with code {}",
                            code.map_or("?".to_string(), |c| c.to_string())
                        )),
                    })
                }
                (ContainerState::Exited | ContainerState::Dead, _)
                    if c.restart == RestartPolicy::OnFailure && info.exit_code == Some(0) =>
                {
                    Some(Err(
                        "exited with code 0 and will not be restarted".to_string()
                    ))
                }
                (ContainerState::Running, Health::Healthy) => Some(Ok(Stage::Ready)),
                (ContainerState::Running, Health::None) if !oneshot => Some(Ok(Stage::Ready)),
                (_, Health::Unhealthy) => {
                    Some(Err("is unhealthy: its health check failed".to_string()))
                }
                (ContainerState::Paused, _) => Some(Err(
                    "is paused; run `msctl chaos unpause` or `msctl up` again".to_string(),
                )),
                _ => None,
            };
            match verdict {
                Some(Ok(stage)) => return Ok(stage),
                Some(Err(reason)) => return Err(self.not_ready(c, name, id, reason).await),
                None => {}
            }
            if Instant::now() >= deadline {
                let reason = format!(
                    "did not become ready before the deadline (state {}, health {}); raise --timeout or check the health check",
                    info.state, info.health
                );
                return Err(self.not_ready(c, name, id, reason).await);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn not_ready(
        &self,
        c: &Component,
        name: &str,
        id: &str,
        reason: String,
    ) -> OrchestratorError {
        let logs = self.tail_logs(id, LOG_TAIL).await;
        OrchestratorError::NotReady {
            component: c.name.clone(),
            container: name.to_string(),
            reason,
            logs,
        }
    }

    /// The last `n` log lines of a container (empty if they cannot be read).
    pub async fn tail_logs(&self, id: &str, n: u64) -> Vec<String> {
        let stream = self.runtime.logs(
            id,
            LogOptions {
                follow: false,
                tail: Some(n),
                since: None,
            },
        );
        let read = stream
            .filter_map(|l| async move { l.ok().map(|l| l.text) })
            .collect::<Vec<_>>();
        tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .unwrap_or_default()
    }

    /// `containers` in groups to stop one after another: reverse start order, one
    /// dependency level at a time; helpers and components unknown to this stack file go
    /// first.
    fn shutdown_order<'a>(
        &self,
        containers: impl Iterator<Item = &'a ContainerInfo>,
    ) -> Vec<Vec<&'a ContainerInfo>> {
        let order = self.stack.graph.order();
        let rank = |c: &ContainerInfo| -> usize {
            c.component()
                .filter(|_| !c.is_helper())
                .and_then(|n| order.iter().position(|o| o == n))
                .map_or(0, |p| order.len() - p)
        };
        let mut groups: BTreeMap<usize, Vec<&ContainerInfo>> = BTreeMap::new();
        for c in containers {
            groups.entry(rank(c)).or_default().push(c);
        }
        groups.into_values().collect()
    }

    /// How long a container's component may take to stop before it is killed.
    fn stop_timeout(&self, c: &ContainerInfo) -> Duration {
        c.component()
            .and_then(|n| self.stack.components.get(n))
            .map_or(Duration::from_secs(10), |comp| comp.stop_timeout)
    }

    /// Stops the running containers of `components` (dependents first, one dependency
    /// level at a time), leaving them in place for `up` to start again. Returns the names
    /// of the containers it stopped.
    pub async fn stop(
        &self,
        components: &[String],
        progress: &ProgressSink,
    ) -> Result<Vec<String>, OrchestratorError> {
        let containers = self.runtime.list_containers().await?;
        let named = containers.iter().filter(|c| {
            !c.is_helper()
                && c.state == ContainerState::Running
                && c.component()
                    .is_some_and(|n| components.iter().any(|w| w == n))
        });
        let mut stopped = Vec::new();
        for group in self.shutdown_order(named) {
            let futs = group.into_iter().map(|c| async move {
                progress.start(&c.name, &c.name, None);
                progress.message(&c.name, "stopping");
                self.runtime
                    .stop_container(&c.id, self.stop_timeout(c))
                    .await?;
                progress.finish(&c.name, true, "stopped");
                Ok::<String, OrchestratorError>(c.name.clone())
            });
            stopped.extend(try_join_all(futs).await?);
        }
        Ok(stopped)
    }

    /// Removes the project's containers (dependents first) and networks, and with
    /// `volumes` its volumes. Returns the names of what was removed.
    pub async fn down(
        &self,
        volumes: bool,
        progress: &ProgressSink,
    ) -> Result<Vec<String>, OrchestratorError> {
        let containers = self.runtime.list_containers().await?;
        let mut removed = Vec::new();
        for group in self.shutdown_order(containers.iter()) {
            let futs = group.into_iter().map(|c| async move {
                let timeout = self.stop_timeout(c);
                progress.start(&c.name, &c.name, None);
                if matches!(
                    c.state,
                    ContainerState::Running | ContainerState::Restarting | ContainerState::Paused
                ) {
                    progress.message(&c.name, "stopping");
                    // A paused container cannot take SIGTERM; removal kills it.
                    if c.state != ContainerState::Paused {
                        self.runtime.stop_container(&c.id, timeout).await?;
                    }
                }
                self.runtime.remove_container(&c.id).await?;
                progress.finish(&c.name, true, "removed");
                Ok::<String, OrchestratorError>(c.name.clone())
            });
            removed.extend(try_join_all(futs).await?);
        }
        for net in self.runtime.list_networks().await? {
            self.runtime.remove_network(&net).await?;
            progress.note(format!("network {net} removed"));
            removed.push(net);
        }
        if volumes {
            for v in self.runtime.list_volumes().await? {
                self.runtime.remove_volume(&v).await?;
                progress.note(format!("volume {v} removed"));
                removed.push(v);
            }
        }
        Ok(removed)
    }

    /// The project's containers, in stack order.
    pub async fn ps(&self) -> Result<Vec<ReplicaStatus>, OrchestratorError> {
        let now = SystemTime::now();
        let order = self.stack.graph.order();
        let mut rows: Vec<ReplicaStatus> = self
            .runtime
            .list_containers()
            .await?
            .into_iter()
            .filter(|c| !c.is_helper())
            .map(|c| {
                let component = c.component().unwrap_or("?").to_string();
                ReplicaStatus {
                    in_stack: self.stack.components.contains_key(&component),
                    component,
                    replica: c.replica().unwrap_or(0),
                    name: c.name.clone(),
                    state: c.state,
                    health: c.health,
                    exit_code: c.exit_code,
                    ports: c.ports.clone(),
                    uptime_secs: c
                        .started_at
                        .and_then(|t| now.duration_since(t).ok())
                        .map(|d| d.as_secs()),
                    restarts: c.restart_count,
                }
            })
            .collect();
        rows.sort_by_key(|r| {
            (
                order
                    .iter()
                    .position(|o| *o == r.component)
                    .unwrap_or(usize::MAX),
                r.component.clone(),
                r.replica,
            )
        });
        Ok(rows)
    }

    /// Containers of one component (resolved by unique prefix), by replica.
    pub async fn containers_of(
        &self,
        component: &str,
    ) -> Result<Vec<ContainerInfo>, OrchestratorError> {
        let c = self
            .stack
            .resolve_component(component)
            .map_err(OrchestratorError::Selection)?;
        let mut list: Vec<ContainerInfo> = self
            .runtime
            .list_containers()
            .await?
            .into_iter()
            .filter(|i| i.component() == Some(c.name.as_str()) && !i.is_helper())
            .collect();
        list.sort_by_key(|i| i.replica());
        Ok(list)
    }

    /// Restarts every replica of a component and waits until they are ready again.
    pub async fn restart(
        &self,
        component: &str,
        timeout: Duration,
        progress: &ProgressSink,
    ) -> Result<Vec<String>, OrchestratorError> {
        let c = self
            .stack
            .resolve_component(component)
            .map_err(OrchestratorError::Selection)?
            .clone();
        let containers = self.containers_of(&c.name).await?;
        if containers.is_empty() {
            return Err(OrchestratorError::Selection(format!(
                "component \"{}\" has no containers; run `msctl up {}` first",
                c.name, c.name
            )));
        }
        let deadline = Instant::now() + timeout;
        let futs = containers.iter().map(|i| {
            let c = &c;
            async move {
                progress.start(&i.name, &i.name, None);
                progress.message(&i.name, "restarting");
                self.runtime
                    .restart_container(&i.id, c.stop_timeout)
                    .await?;
                progress.message(&i.name, "waiting until ready");
                let r = self.wait_ready(c, &i.name, &i.id, deadline).await;
                progress.finish(
                    &i.name,
                    r.is_ok(),
                    if r.is_ok() { "ready" } else { "failed" },
                );
                r.map(|_| i.name.clone())
            }
        });
        try_join_all(futs).await
    }
}

/// What seeding one component did.
#[derive(Debug, Clone, Serialize)]
pub struct SeedResult {
    /// Component.
    pub component: String,
    /// The seed file.
    pub file: String,
    /// The component's answer (its JSON report, e.g. how many rows were created).
    pub answer: serde_json::Value,
}

impl Project {
    /// Loads every component's seed file (or only those named) through its seed endpoint.
    /// Endpoints are idempotent, so seeding twice changes nothing.
    pub async fn seed(
        &self,
        only: &[String],
        progress: &ProgressSink,
    ) -> Result<Vec<SeedResult>, OrchestratorError> {
        let rows = self.ps().await?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| OrchestratorError::Seed(e.to_string()))?;
        let mut out = Vec::new();
        for c in self.stack.components.values() {
            let Some(seed) = &c.seed else { continue };
            if !only.is_empty() && !only.contains(&c.name) {
                continue;
            }
            let fail =
                |m: String| OrchestratorError::Seed(format!("component \"{}\": {m}", c.name));
            let port = rows
                .iter()
                .filter(|r| r.component == c.name && r.state == ContainerState::Running)
                .find_map(|r| r.ports.iter().find(|p| p.container == seed.port))
                .map(|p| p.host)
                .ok_or_else(|| fail(format!("not running; run `msctl up {}` first", c.name)))?;
            let path = self.stack.root.join(&seed.file);
            let body = tokio::fs::read(&path)
                .await
                .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
            progress.start(
                &format!("seed:{}", c.name),
                &format!("seed {}", c.name),
                None,
            );
            let mut req = client
                .post(format!("http://127.0.0.1:{port}{}", seed.path))
                .header("content-type", "application/json")
                .body(body);
            if let Some(token) = c.environment.get("ADMIN_TOKEN") {
                req = req.header("x-admin-token", token);
            }
            let resp = req.send().await.map_err(|e| fail(e.to_string()))?;
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            if !status.is_success() {
                progress.finish(&format!("seed:{}", c.name), false, status.to_string());
                return Err(fail(format!("{} answered {status}: {text}", seed.path)));
            }
            let answer = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
            progress.finish(&format!("seed:{}", c.name), true, answer.to_string());
            out.push(SeedResult {
                component: c.name.clone(),
                file: seed.file.display().to_string(),
                answer,
            });
        }
        Ok(out)
    }
}

/// A Prometheus configuration scraping Prometheus itself and every component with
/// `metrics`; `discovery` writes each job's target block (see [`static_scrape_targets`]),
/// so that msctl (container names) and `msctl config compose` (names that compose
/// resolves) share everything else.
pub fn render_prometheus_config(
    stack: &Stack,
    discovery: impl Fn(&Component, &MetricsEndpoint) -> String,
) -> String {
    let mut out = String::from(
        "global:\n  scrape_interval: 5s\n  evaluation_interval: 5s\nscrape_configs:\n  - job_name: prometheus\n    static_configs:\n      - targets: ['localhost:9090']\n",
    );
    for c in stack.components.values() {
        let Some(m) = &c.metrics else { continue };
        out.push_str(&format!(
            "  - job_name: '{}'\n    metrics_path: '{}'\n{}",
            c.name,
            m.path,
            discovery(c, m)
        ));
    }
    out
}

/// A job's `static_configs` block: `targets` (host:port), labelled with the component.
pub fn static_scrape_targets(c: &Component, targets: &[String]) -> String {
    format!(
        "    static_configs:\n      - targets: [{}]\n        labels:\n          component: '{}'\n",
        targets
            .iter()
            .map(|t| format!("'{t}'"))
            .collect::<Vec<_>>()
            .join(", "),
        c.name
    )
}

/// A stable hash of everything that defines a container.
fn config_hash(spec: &ContainerSpec) -> String {
    let json = serde_json::to_vec(spec).unwrap_or_default();
    let digest = Sha256::digest(&json);
    hex::encode(&digest[..12])
}
