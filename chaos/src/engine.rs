//! The engine operations faults need, as a trait: [`crate::Chaos`] decides what to do and
//! records it; a [`FaultEngine`] does it. The real one is [`crate::docker::DockerFaultEngine`];
//! tests use an in-memory one.
//!
//! Implementations must refuse, with [`RuntimeError::NotOurs`], any container that does not
//! carry the project label, and treat "already so" answers (start a running container,
//! unpause a running one, connect a connected one) as success, so reverts are idempotent.

use std::time::Duration;

use async_trait::async_trait;
use msctl_stack::runtime::ContainerInfo;
use tokio::time::Instant;

use crate::error::ChaosError;

/// Output of one command run in a helper container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit code (`-1` when the engine did not say).
    pub code: i64,
    /// stdout and stderr, interleaved.
    pub output: String,
}

/// What a container looks like on the project network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// IPv4 address on the network.
    pub address: String,
    /// DNS aliases on the network.
    pub aliases: Vec<String>,
}

/// The engine operations behind the fault primitives.
#[async_trait]
pub trait FaultEngine: Send + Sync {
    /// The project whose label every touched container must carry.
    fn project(&self) -> &str;
    /// The project's containers (helpers included; callers filter).
    async fn containers(&self) -> Result<Vec<ContainerInfo>, ChaosError>;
    /// Any container by exact name or id, labelled or not, so a refusal can name it;
    /// `None` when there is no such container.
    async fn find_any(&self, name: &str) -> Result<Option<ContainerInfo>, ChaosError>;
    /// One project container; `RuntimeError::NotFound` when gone.
    async fn inspect(&self, id: &str) -> Result<ContainerInfo, ChaosError>;
    /// The container's endpoint on `network`, if attached.
    async fn endpoint(&self, id: &str, network: &str) -> Result<Option<Endpoint>, ChaosError>;
    /// Sends a signal.
    async fn kill(&self, id: &str, signal: &str) -> Result<(), ChaosError>;
    /// Stops (SIGTERM, SIGKILL after `grace`).
    async fn stop(&self, id: &str, grace: Duration) -> Result<(), ChaosError>;
    /// Starts; a running container is fine.
    async fn start(&self, id: &str) -> Result<(), ChaosError>;
    /// Restarts.
    async fn restart(&self, id: &str, grace: Duration) -> Result<(), ChaosError>;
    /// Pauses.
    async fn pause(&self, id: &str) -> Result<(), ChaosError>;
    /// Unpauses; a running container is fine.
    async fn unpause(&self, id: &str) -> Result<(), ChaosError>;
    /// Disconnects from `network`.
    async fn disconnect(&self, id: &str, network: &str) -> Result<(), ChaosError>;
    /// Connects to `network` with `aliases`; already connected is fine.
    async fn connect(&self, id: &str, network: &str, aliases: &[String]) -> Result<(), ChaosError>;
    /// Runs `commands` in order in a NET_ADMIN helper container that shares `id`'s network
    /// namespace, then removes the helper; returns every command's output (the caller
    /// judges exit codes, since "already so" answers differ per command).
    async fn netns_exec(
        &self,
        id: &str,
        commands: &[Vec<String>],
    ) -> Result<Vec<ExecOutput>, ChaosError>;
    /// Removes helper containers left behind by a crashed msctl; returns how many.
    async fn remove_helpers(&self) -> Result<usize, ChaosError>;
    /// Waits until the container is ready again (healthy, or running without a health
    /// check), or fails at `deadline`.
    async fn wait_ready(&self, id: &str, deadline: Instant) -> Result<(), ChaosError>;
}
