//! [`FaultEngine`] on the real Docker engine: the trait's label-guarded lifecycle calls go
//! through [`DockerRuntime`]; kill, pause, network connect/disconnect and execs go through
//! its bollard client, each after our own project-label check.
//!
//! Network namespace commands run in a short-lived helper container
//! (`network_mode: container:<target>`, `cap_add: NET_ADMIN`, the msctl base image, which
//! has iproute2), labelled with the project, the target's component and
//! `io.msctl.role=chaos`, so that `down` removes it and `ps` hides it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, NetworkConnectRequest,
    NetworkDisconnectRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, KillContainerOptionsBuilder, ListContainersOptionsBuilder,
    RemoveContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::StreamExt;
use msctl_stack::docker::DockerRuntime;
use msctl_stack::orchestrator::Project;
use msctl_stack::runtime::{
    ContainerInfo, ContainerState, Health, Runtime, RuntimeError, LABEL_COMPONENT, LABEL_PROJECT,
    LABEL_ROLE,
};
use tokio::time::Instant;

use crate::engine::{Endpoint, ExecOutput, FaultEngine};
use crate::error::ChaosError;

/// Image of the netns helper; the msctl base has iproute2 (`tc`, `ip`).
pub const HELPER_IMAGE: &str = "msctl/base:bookworm";
/// `io.msctl.role` of chaos helpers.
pub const HELPER_ROLE: &str = "chaos";
/// How long one helper exec may take before it counts as hung.
const EXEC_TIMEOUT: Duration = Duration::from_secs(30);
/// Readiness poll interval.
const POLL: Duration = Duration::from_millis(250);

/// The Docker engine, bound to one project.
pub struct DockerFaultEngine {
    runtime: DockerRuntime,
    project: Arc<Project>,
}

impl DockerFaultEngine {
    /// `project` must be bound to the same project name as `runtime`; it supplies log
    /// tails for readiness failures.
    pub fn new(runtime: DockerRuntime, project: Arc<Project>) -> Self {
        Self { runtime, project }
    }

    fn docker(&self) -> &Docker {
        self.runtime.client()
    }

    fn name(&self) -> &str {
        self.runtime.project()
    }

    /// Inspects and refuses containers without our label.
    async fn ours(&self, id: &str) -> Result<ContainerInfo, ChaosError> {
        let info = self.runtime.inspect_container(id).await?;
        if info.labels.get(LABEL_PROJECT).map(String::as_str) != Some(self.name()) {
            return Err(RuntimeError::NotOurs {
                kind: "container",
                name: id.to_string(),
                project: self.name().to_string(),
            }
            .into());
        }
        Ok(info)
    }

    async fn create_helper(&self, target: &ContainerInfo) -> Result<String, ChaosError> {
        let labels = HashMap::from([
            (LABEL_PROJECT.to_string(), self.name().to_string()),
            (
                LABEL_COMPONENT.to_string(),
                target.component().unwrap_or("?").to_string(),
            ),
            (LABEL_ROLE.to_string(), HELPER_ROLE.to_string()),
        ]);
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "{}-chaos-{:x}{:x}",
            target.name,
            std::process::id() & 0xffff,
            nonce & 0xfffff
        );
        let body = ContainerCreateBody {
            image: Some(HELPER_IMAGE.to_string()),
            entrypoint: Some(vec!["tail".into(), "-f".into(), "/dev/null".into()]),
            labels: Some(labels),
            tty: Some(false),
            host_config: Some(HostConfig {
                network_mode: Some(format!("container:{}", target.id)),
                cap_add: Some(vec!["NET_ADMIN".into()]),
                init: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        };
        let opts = CreateContainerOptionsBuilder::new().name(&name).build();
        let created = self
            .docker()
            .create_container(Some(opts), body)
            .await
            .map_err(|e| {
                ChaosError::Network(format!(
                    "cannot create the network helper for {} from {HELPER_IMAGE}: {}; build the base image with `msctl images build`",
                    target.name,
                    engine_message(e)
                ))
            })?;
        if let Err(e) = self.docker().start_container(&created.id, None).await {
            self.remove_container(&created.id).await;
            return Err(ChaosError::Network(format!(
                "cannot start the network helper for {}: {}",
                target.name,
                engine_message(e)
            )));
        }
        Ok(created.id)
    }

    async fn remove_container(&self, id: &str) {
        let opts = RemoveContainerOptionsBuilder::new().force(true).build();
        if let Err(e) = self.docker().remove_container(id, Some(opts)).await {
            tracing::warn!(container = id, error = %e, "could not remove a chaos helper");
        }
    }

    async fn exec(&self, helper: &str, cmd: &[String]) -> Result<ExecOutput, ChaosError> {
        let create = CreateExecOptions {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(cmd.to_vec()),
            ..Default::default()
        };
        let exec = self
            .docker()
            .create_exec(helper, create)
            .await
            .map_err(|e| RuntimeError::Engine(engine_message(e)))?;
        let mut output = String::new();
        if let StartExecResults::Attached {
            output: mut out, ..
        } = self
            .docker()
            .start_exec(&exec.id, None)
            .await
            .map_err(|e| RuntimeError::Engine(engine_message(e)))?
        {
            while let Some(item) = out.next().await {
                match item.map_err(|e| RuntimeError::Engine(engine_message(e)))? {
                    LogOutput::StdOut { message }
                    | LogOutput::StdErr { message }
                    | LogOutput::Console { message }
                    | LogOutput::StdIn { message } => {
                        output.push_str(&String::from_utf8_lossy(&message))
                    }
                }
            }
        }
        let inspect = self
            .docker()
            .inspect_exec(&exec.id)
            .await
            .map_err(|e| RuntimeError::Engine(engine_message(e)))?;
        Ok(ExecOutput {
            code: inspect.exit_code.unwrap_or(-1),
            output,
        })
    }
}

fn engine_message(e: bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message,
        other => other.to_string(),
    }
}

fn status(e: &bollard::errors::Error) -> Option<u16> {
    match e {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

#[async_trait]
impl FaultEngine for DockerFaultEngine {
    fn project(&self) -> &str {
        self.name()
    }

    async fn containers(&self) -> Result<Vec<ContainerInfo>, ChaosError> {
        Ok(self.runtime.list_containers().await?)
    }

    async fn find_any(&self, name: &str) -> Result<Option<ContainerInfo>, ChaosError> {
        match self.runtime.inspect_container(name).await {
            Ok(i) => Ok(Some(i)),
            Err(RuntimeError::NotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn inspect(&self, id: &str) -> Result<ContainerInfo, ChaosError> {
        self.ours(id).await
    }

    async fn endpoint(&self, id: &str, network: &str) -> Result<Option<Endpoint>, ChaosError> {
        self.ours(id).await?;
        let r = self
            .docker()
            .inspect_container(id, None)
            .await
            .map_err(|e| RuntimeError::Engine(engine_message(e)))?;
        let full_id = r.id.clone().unwrap_or_default();
        Ok(r.network_settings
            .and_then(|n| n.networks)
            .and_then(|mut n| n.remove(network))
            .map(|e| Endpoint {
                address: e.ip_address.unwrap_or_default(),
                // The engine adds the short container id itself; only ours are restored.
                aliases: e
                    .aliases
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|a| !full_id.starts_with(a.as_str()))
                    .collect(),
            }))
    }

    async fn kill(&self, id: &str, signal: &str) -> Result<(), ChaosError> {
        self.ours(id).await?;
        let opts = KillContainerOptionsBuilder::new().signal(signal).build();
        self.docker()
            .kill_container(id, Some(opts))
            .await
            .map_err(|e| RuntimeError::Engine(engine_message(e)).into())
    }

    async fn stop(&self, id: &str, grace: Duration) -> Result<(), ChaosError> {
        Ok(self.runtime.stop_container(id, grace).await?)
    }

    async fn start(&self, id: &str) -> Result<(), ChaosError> {
        self.ours(id).await?;
        match self.docker().start_container(id, None).await {
            Ok(()) => Ok(()),
            // 304: already running.
            Err(e) if status(&e) == Some(304) => Ok(()),
            Err(e) => Err(RuntimeError::Engine(engine_message(e)).into()),
        }
    }

    async fn restart(&self, id: &str, grace: Duration) -> Result<(), ChaosError> {
        Ok(self.runtime.restart_container(id, grace).await?)
    }

    async fn pause(&self, id: &str) -> Result<(), ChaosError> {
        self.ours(id).await?;
        self.docker()
            .pause_container(id)
            .await
            .map_err(|e| RuntimeError::Engine(engine_message(e)).into())
    }

    async fn unpause(&self, id: &str) -> Result<(), ChaosError> {
        let info = self.ours(id).await?;
        if info.state != ContainerState::Paused {
            return Ok(());
        }
        self.docker()
            .unpause_container(id)
            .await
            .map_err(|e| RuntimeError::Engine(engine_message(e)).into())
    }

    async fn disconnect(&self, id: &str, network: &str) -> Result<(), ChaosError> {
        self.ours(id).await?;
        let req = NetworkDisconnectRequest {
            container: id.to_string(),
            force: Some(false),
        };
        self.docker()
            .disconnect_network(network, req)
            .await
            .map_err(|e| RuntimeError::Engine(engine_message(e)).into())
    }

    async fn connect(&self, id: &str, network: &str, aliases: &[String]) -> Result<(), ChaosError> {
        self.ours(id).await?;
        if self.endpoint(id, network).await?.is_some() {
            return Ok(());
        }
        let req = NetworkConnectRequest {
            container: id.to_string(),
            endpoint_config: Some(EndpointSettings {
                aliases: Some(aliases.to_vec()),
                ..Default::default()
            }),
        };
        self.docker()
            .connect_network(network, req)
            .await
            .map_err(|e| RuntimeError::Engine(engine_message(e)).into())
    }

    async fn netns_exec(
        &self,
        id: &str,
        commands: &[Vec<String>],
    ) -> Result<Vec<ExecOutput>, ChaosError> {
        let target = self.ours(id).await?;
        if target.state != ContainerState::Running {
            return Err(ChaosError::Network(format!(
                "container {} is {}, so its network namespace cannot be changed; heal it or start it first",
                target.name, target.state
            )));
        }
        let helper = self.create_helper(&target).await?;
        let run = async {
            let mut outs = Vec::with_capacity(commands.len());
            for cmd in commands {
                outs.push(self.exec(&helper, cmd).await?);
            }
            Ok::<_, ChaosError>(outs)
        };
        let result = tokio::time::timeout(EXEC_TIMEOUT, run).await;
        self.remove_container(&helper).await;
        result.map_err(|_| {
            ChaosError::Network(format!(
                "commands in the network namespace of {} did not finish within {}s",
                target.name,
                EXEC_TIMEOUT.as_secs()
            ))
        })?
    }

    async fn remove_helpers(&self) -> Result<usize, ChaosError> {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![
                format!("{LABEL_PROJECT}={}", self.name()),
                format!("{LABEL_ROLE}={HELPER_ROLE}"),
            ],
        )]);
        let opts = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let list = self
            .docker()
            .list_containers(Some(opts))
            .await
            .map_err(|e| RuntimeError::Engine(engine_message(e)))?;
        let mut n = 0;
        for c in list {
            let labels: BTreeMap<String, String> =
                c.labels.unwrap_or_default().into_iter().collect();
            // The filter already says so; checked again because removal is irreversible.
            if labels.get(LABEL_PROJECT).map(String::as_str) != Some(self.name())
                || labels.get(LABEL_ROLE).map(String::as_str) != Some(HELPER_ROLE)
            {
                continue;
            }
            if let Some(id) = c.id {
                self.remove_container(&id).await;
                n += 1;
            }
        }
        Ok(n)
    }

    async fn wait_ready(&self, id: &str, deadline: Instant) -> Result<(), ChaosError> {
        // Not `Project::wait_ready`: that fails at the first "unhealthy", which is normal
        // for a moment after a heal (checks that failed while paused or cut off still
        // count until the next one passes).
        loop {
            let i = self.ours(id).await?;
            if i.state == ContainerState::Running
                && matches!(i.health, Health::Healthy | Health::None)
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let logs = self.project.tail_logs(id, 10).await;
                return Err(ChaosError::NotReady(format!(
                    "container {} is not ready again after the heal (state {}, health {}); last log lines:\n    {}",
                    i.name,
                    i.state,
                    i.health,
                    logs.join("\n    ")
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }
}
