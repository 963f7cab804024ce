//! The container runtime seen by msctl: a small trait over the Docker engine, so that the
//! orchestration logic (what to create, in which order, when it is ready) can be tested
//! without an engine, and one real implementation on bollard ([`crate::docker::DockerRuntime`]).
//!
//! Every method that changes something takes resources that carry the project's label;
//! implementations must refuse anything else (see [`RuntimeError::NotOurs`]).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use serde::Serialize;

use crate::model::{HealthCheck, ImageRecipe, PortMapping, RestartPolicy};
use crate::progress::ProgressSink;

/// Label carrying the project name; msctl touches nothing without it.
pub const LABEL_PROJECT: &str = "io.msctl.project";
/// Label carrying the component name.
pub const LABEL_COMPONENT: &str = "io.msctl.component";
/// Label carrying the replica number (1-based) on containers.
pub const LABEL_REPLICA: &str = "io.msctl.replica";
/// Hash of everything that defines a container; a change means recreate.
pub const LABEL_CONFIG_HASH: &str = "io.msctl.config-hash";
/// Marks helper containers (e.g. netem sidecars) that are not stack components.
pub const LABEL_ROLE: &str = "io.msctl.role";

/// Errors from the runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The engine answered with an error.
    #[error("docker engine: {0}")]
    Engine(String),
    /// A resource without this project's label was about to be touched.
    #[error("refusing to touch {kind} \"{name}\": it does not carry the label {LABEL_PROJECT}={project}; msctl only manages its own resources")]
    NotOurs {
        /// container, network or volume
        kind: &'static str,
        /// Its name or id.
        name: String,
        /// The project msctl is working on.
        project: String,
    },
    /// No such container.
    #[error("no container \"{0}\"")]
    NotFound(String),
    /// Building or finding an image failed.
    #[error(transparent)]
    Image(#[from] Box<dyn std::error::Error + Send + Sync>),
}

/// Everything needed to create one container.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerSpec {
    /// `<project>-<component>-<n>`.
    pub name: String,
    /// Image reference.
    pub image: String,
    /// Resolved image id; part of the config hash so a rebuilt image recreates.
    pub image_id: String,
    /// Labels (project, component, replica, config hash).
    pub labels: BTreeMap<String, String>,
    /// `KEY=value` pairs.
    pub env: Vec<String>,
    /// Command override.
    pub cmd: Option<Vec<String>>,
    /// Entrypoint override.
    pub entrypoint: Option<Vec<String>>,
    /// Hostname inside the container (the container name).
    pub hostname: String,
    /// The project network.
    pub network: String,
    /// DNS aliases on the project network (the component name).
    pub aliases: Vec<String>,
    /// Ports published on 127.0.0.1.
    pub ports: Vec<PortMapping>,
    /// `(volume name, mount path)`.
    pub volumes: Vec<(String, String)>,
    /// Engine-side health check.
    pub health: Option<HealthCheck>,
    /// Restart policy.
    pub restart: RestartPolicy,
    /// Grace period on stop.
    pub stop_timeout: Duration,
}

/// Container lifecycle state as the engine reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerState {
    /// Created, never started.
    Created,
    /// Running.
    Running,
    /// Frozen by `pause`.
    Paused,
    /// Being restarted by its restart policy.
    Restarting,
    /// Being removed.
    Removing,
    /// Stopped; see the exit code.
    Exited,
    /// Dead.
    Dead,
}

impl std::fmt::Display for ContainerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = serde_json::to_value(self).ok();
        f.write_str(s.as_ref().and_then(|v| v.as_str()).unwrap_or("?"))
    }
}

/// Engine-side health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// The container has no health check.
    None,
    /// Checks have not passed yet.
    Starting,
    /// The last checks passed.
    Healthy,
    /// `retries` consecutive checks failed.
    Unhealthy,
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Health::None => "-",
            Health::Starting => "starting",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        })
    }
}

/// What msctl knows about one of its containers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerInfo {
    /// Engine id.
    pub id: String,
    /// Name without the leading slash.
    pub name: String,
    /// All labels.
    pub labels: BTreeMap<String, String>,
    /// Lifecycle state.
    pub state: ContainerState,
    /// Health.
    pub health: Health,
    /// Exit code once exited.
    pub exit_code: Option<i64>,
    /// When the current run started.
    #[serde(skip)]
    pub started_at: Option<SystemTime>,
    /// Times the engine restarted it.
    pub restart_count: i64,
    /// Published ports with the host port the engine really chose.
    pub ports: Vec<PortMapping>,
    /// Image id the container runs.
    pub image_id: String,
}

impl ContainerInfo {
    /// The component label, if any.
    pub fn component(&self) -> Option<&str> {
        self.labels.get(LABEL_COMPONENT).map(String::as_str)
    }
    /// The replica label as a number, if any.
    pub fn replica(&self) -> Option<u32> {
        self.labels.get(LABEL_REPLICA).and_then(|r| r.parse().ok())
    }
    /// The config hash label, if any.
    pub fn config_hash(&self) -> Option<&str> {
        self.labels.get(LABEL_CONFIG_HASH).map(String::as_str)
    }
    /// Is this a helper (sidecar) rather than a stack component?
    pub fn is_helper(&self) -> bool {
        self.labels.contains_key(LABEL_ROLE)
    }
}

/// Options for reading logs.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    /// Keep streaming new lines.
    pub follow: bool,
    /// Only the last N lines.
    pub tail: Option<u64>,
    /// Only lines since this time.
    pub since: Option<SystemTime>,
}

/// One log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// From stderr rather than stdout.
    pub stderr: bool,
    /// The text, without its trailing newline.
    pub text: String,
}

/// Options for building images.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImageBuild {
    /// Never try to pull; build the base with debootstrap.
    pub offline: bool,
    /// Rebuild even when an up-to-date image exists.
    pub force: bool,
}

/// The engine operations msctl needs.
#[async_trait]
pub trait Runtime: Send + Sync {
    /// The project this runtime is bound to.
    fn project(&self) -> &str;
    /// Every container carrying the project label, running or not.
    async fn list_containers(&self) -> Result<Vec<ContainerInfo>, RuntimeError>;
    /// One container by id or name.
    async fn inspect_container(&self, id: &str) -> Result<ContainerInfo, RuntimeError>;
    /// Creates (does not start) a container; returns its id.
    async fn create_container(&self, spec: &ContainerSpec) -> Result<String, RuntimeError>;
    /// Starts a created or stopped container.
    async fn start_container(&self, id: &str) -> Result<(), RuntimeError>;
    /// Stops with SIGTERM, then SIGKILL after `timeout`.
    async fn stop_container(&self, id: &str, timeout: Duration) -> Result<(), RuntimeError>;
    /// Restarts.
    async fn restart_container(&self, id: &str, timeout: Duration) -> Result<(), RuntimeError>;
    /// Removes (forcefully, with anonymous volumes).
    async fn remove_container(&self, id: &str) -> Result<(), RuntimeError>;
    /// Creates the project network when missing.
    async fn ensure_network(&self, name: &str) -> Result<(), RuntimeError>;
    /// Names of the networks carrying the project label.
    async fn list_networks(&self) -> Result<Vec<String>, RuntimeError>;
    /// Removes a project network.
    async fn remove_network(&self, name: &str) -> Result<(), RuntimeError>;
    /// Creates a named volume when missing.
    async fn ensure_volume(&self, name: &str, component: &str) -> Result<(), RuntimeError>;
    /// Names of the volumes carrying the project label.
    async fn list_volumes(&self) -> Result<Vec<String>, RuntimeError>;
    /// Removes a project volume.
    async fn remove_volume(&self, name: &str) -> Result<(), RuntimeError>;
    /// The id of `image` when the engine has it; never builds, pulls or compares it with
    /// its recipe.
    async fn image_id(&self, image: &str) -> Result<Option<String>, RuntimeError>;
    /// Makes sure `image` exists (building it from `recipe` when given, else pulling) and
    /// returns its id.
    async fn ensure_image(
        &self,
        image: &str,
        recipe: Option<(&ImageRecipe, &std::path::Path)>,
        build: ImageBuild,
        progress: &ProgressSink,
    ) -> Result<String, RuntimeError>;
    /// Log lines of a container.
    fn logs(
        &self,
        id: &str,
        options: LogOptions,
    ) -> BoxStream<'static, Result<LogLine, RuntimeError>>;
}
