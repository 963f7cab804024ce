//! [`Runtime`] on the real Docker engine, through bollard.
//!
//! Every mutating call first checks that the target carries this project's label, so a bug
//! elsewhere in msctl cannot stop or remove somebody else's container.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bollard::container::LogOutput;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerStateStatusEnum, EndpointSettings,
    HealthConfig, HealthStatusEnum, HostConfig, Mount, MountType, NetworkCreateRequest,
    NetworkingConfig, PortBinding, RestartPolicy as DockerRestart, RestartPolicyNameEnum,
    VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ListContainersOptionsBuilder,
    ListNetworksOptionsBuilder, ListVolumesOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, RestartContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::stream::{BoxStream, StreamExt};

use crate::images::{self, BuildOptions};
use crate::model::{HealthProbe, ImageRecipe, PortMapping, RestartPolicy};
use crate::progress::{ProgressExt, ProgressSink};
use crate::runtime::{
    ContainerInfo, ContainerSpec, ContainerState, Health, ImageBuild, LogLine, LogOptions, Runtime,
    RuntimeError, LABEL_COMPONENT, LABEL_PROJECT,
};

/// The Docker engine, bound to one project.
#[derive(Clone)]
pub struct DockerRuntime {
    docker: Docker,
    project: String,
}

impl DockerRuntime {
    /// Binds a connected client to `project`.
    pub fn new(docker: Docker, project: impl Into<String>) -> Self {
        Self {
            docker,
            project: project.into(),
        }
    }

    /// The underlying client, for callers that need engine features beyond the trait
    /// (chaos execs, stats). They must do their own label checks.
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    fn project_filter(&self) -> HashMap<String, Vec<String>> {
        HashMap::from([(
            "label".to_string(),
            vec![format!("{LABEL_PROJECT}={}", self.project)],
        )])
    }

    /// Inspects and refuses containers without our label.
    async fn ours(&self, id: &str) -> Result<ContainerInfo, RuntimeError> {
        let info = self.inspect_container(id).await?;
        if info.labels.get(LABEL_PROJECT) != Some(&self.project) {
            return Err(RuntimeError::NotOurs {
                kind: "container",
                name: id.to_string(),
                project: self.project.clone(),
            });
        }
        Ok(info)
    }
}

fn engine(e: bollard::errors::Error) -> RuntimeError {
    match e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => {
            RuntimeError::Engine(message)
        }
        other => RuntimeError::Engine(other.to_string()),
    }
}

fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// The engine-side test for a probe. HTTP checks prefer curl, then wget, and fall back to
/// bash's /dev/tcp so that they also work in images that have neither.
pub fn health_test(probe: &HealthProbe) -> Vec<String> {
    match probe {
        HealthProbe::Exec(cmd) => {
            let mut v = vec!["CMD".to_string()];
            v.extend(cmd.iter().cloned());
            v
        }
        HealthProbe::Shell(line) => vec!["CMD-SHELL".to_string(), line.clone()],
        HealthProbe::Http { port, path } => vec![
            "CMD-SHELL".to_string(),
            format!(
                "if command -v curl >/dev/null 2>&1; then curl -fsS -o /dev/null --max-time 5 http://127.0.0.1:{port}{path}; \
                 elif command -v wget >/dev/null 2>&1; then wget -q -O /dev/null -T 5 http://127.0.0.1:{port}{path}; \
                 else bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port} && printf \"GET {path} HTTP/1.0\\r\\n\\r\\n\" >&3 && head -n1 <&3 | grep -q \" 2[0-9][0-9] \"'; fi"
            ),
        ],
        HealthProbe::Tcp { port } => vec![
            "CMD-SHELL".to_string(),
            format!("bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}' || nc -z 127.0.0.1 {port}"),
        ],
    }
}

fn create_body(spec: &ContainerSpec) -> ContainerCreateBody {
    let port_key = |p: &PortMapping| format!("{}/tcp", p.container);
    let port_bindings: HashMap<String, Option<Vec<PortBinding>>> = spec
        .ports
        .iter()
        .map(|p| {
            (
                port_key(p),
                Some(vec![PortBinding {
                    // Never 0.0.0.0: msctl's ports are for this machine only.
                    host_ip: Some("127.0.0.1".to_string()),
                    host_port: Some(if p.host == 0 {
                        String::new()
                    } else {
                        p.host.to_string()
                    }),
                }]),
            )
        })
        .collect();
    let restart = match spec.restart {
        RestartPolicy::No => RestartPolicyNameEnum::NO,
        RestartPolicy::Always => RestartPolicyNameEnum::ALWAYS,
        RestartPolicy::OnFailure => RestartPolicyNameEnum::ON_FAILURE,
        RestartPolicy::UnlessStopped => RestartPolicyNameEnum::UNLESS_STOPPED,
    };
    let mounts = spec
        .volumes
        .iter()
        .map(|(name, path)| Mount {
            target: Some(path.clone()),
            source: Some(name.clone()),
            typ: Some(MountType::VOLUME),
            ..Default::default()
        })
        .collect();
    ContainerCreateBody {
        image: Some(spec.image_id.clone()),
        hostname: Some(spec.hostname.clone()),
        env: Some(spec.env.clone()),
        cmd: spec.cmd.clone(),
        entrypoint: spec.entrypoint.clone(),
        labels: Some(spec.labels.clone().into_iter().collect()),
        // Separate, line-buffered stdout/stderr for logs.
        tty: Some(false),
        exposed_ports: Some(spec.ports.iter().map(port_key).collect()),
        stop_timeout: Some(spec.stop_timeout.as_secs() as i64),
        healthcheck: spec.health.as_ref().map(|h| HealthConfig {
            test: Some(health_test(&h.probe)),
            interval: Some(nanos(h.interval)),
            timeout: Some(nanos(h.timeout)),
            retries: Some(i64::from(h.retries)),
            start_period: Some(nanos(h.start_period)),
            start_interval: None,
        }),
        host_config: Some(HostConfig {
            port_bindings: Some(port_bindings),
            restart_policy: Some(DockerRestart {
                name: Some(restart),
                maximum_retry_count: None,
            }),
            mounts: Some(mounts),
            network_mode: Some(spec.network.clone()),
            init: Some(false),
            ..Default::default()
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                spec.network.clone(),
                EndpointSettings {
                    aliases: Some(spec.aliases.clone()),
                    ..Default::default()
                },
            )])),
        }),
        ..Default::default()
    }
}

fn parse_time(s: &str) -> Option<SystemTime> {
    if s.starts_with("0001-") {
        return None;
    }
    humantime::parse_rfc3339_weak(s.trim_end_matches('Z').split('.').next().unwrap_or(s))
        .ok()
        .or_else(|| humantime::parse_rfc3339(s).ok())
}

fn info_from(r: ContainerInspectResponse) -> ContainerInfo {
    let state = r.state.unwrap_or_default();
    let status = match state.status {
        Some(ContainerStateStatusEnum::CREATED) => ContainerState::Created,
        Some(ContainerStateStatusEnum::RUNNING) => ContainerState::Running,
        Some(ContainerStateStatusEnum::PAUSED) => ContainerState::Paused,
        Some(ContainerStateStatusEnum::RESTARTING) => ContainerState::Restarting,
        Some(ContainerStateStatusEnum::REMOVING) => ContainerState::Removing,
        Some(ContainerStateStatusEnum::DEAD) => ContainerState::Dead,
        _ => ContainerState::Exited,
    };
    let health = match state.health.and_then(|h| h.status) {
        Some(HealthStatusEnum::STARTING) => Health::Starting,
        Some(HealthStatusEnum::HEALTHY) => Health::Healthy,
        Some(HealthStatusEnum::UNHEALTHY) => Health::Unhealthy,
        _ => Health::None,
    };
    let mut ports: Vec<PortMapping> = r
        .network_settings
        .and_then(|n| n.ports)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(key, bindings)| {
            let container: u16 = key.split('/').next()?.parse().ok()?;
            let host = bindings?
                .into_iter()
                .find_map(|b| b.host_port.and_then(|p| p.parse::<u16>().ok()))?;
            Some(PortMapping { host, container })
        })
        .collect();
    ports.sort_by_key(|p| p.container);
    let labels: BTreeMap<String, String> = r
        .config
        .and_then(|c| c.labels)
        .unwrap_or_default()
        .into_iter()
        .collect();
    ContainerInfo {
        id: r.id.unwrap_or_default(),
        name: r
            .name
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string(),
        labels,
        state: status,
        health,
        exit_code: if status == ContainerState::Exited || status == ContainerState::Dead {
            state.exit_code
        } else {
            None
        },
        started_at: if status == ContainerState::Running || status == ContainerState::Paused {
            state.started_at.as_deref().and_then(parse_time)
        } else {
            None
        },
        restart_count: r.restart_count.unwrap_or(0),
        ports,
        image_id: r.image.unwrap_or_default(),
    }
}

#[async_trait]
impl Runtime for DockerRuntime {
    fn project(&self) -> &str {
        &self.project
    }

    async fn list_containers(&self) -> Result<Vec<ContainerInfo>, RuntimeError> {
        let opts = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&self.project_filter())
            .build();
        let summaries = self
            .docker
            .list_containers(Some(opts))
            .await
            .map_err(engine)?;
        let mut out = Vec::with_capacity(summaries.len());
        for s in summaries {
            let Some(id) = s.id else { continue };
            match self.docker.inspect_container(&id, None).await {
                Ok(r) => out.push(info_from(r)),
                // Removed between list and inspect.
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(engine(e)),
            }
        }
        Ok(out)
    }

    async fn inspect_container(&self, id: &str) -> Result<ContainerInfo, RuntimeError> {
        match self.docker.inspect_container(id, None).await {
            Ok(r) => Ok(info_from(r)),
            Err(e) if is_not_found(&e) => Err(RuntimeError::NotFound(id.to_string())),
            Err(e) => Err(engine(e)),
        }
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        if spec.labels.get(LABEL_PROJECT) != Some(&self.project) {
            return Err(RuntimeError::NotOurs {
                kind: "container",
                name: spec.name.clone(),
                project: self.project.clone(),
            });
        }
        let opts = CreateContainerOptionsBuilder::new()
            .name(&spec.name)
            .build();
        let r = self
            .docker
            .create_container(Some(opts), create_body(spec))
            .await
            .map_err(engine)?;
        Ok(r.id)
    }

    async fn start_container(&self, id: &str) -> Result<(), RuntimeError> {
        self.ours(id).await?;
        self.docker.start_container(id, None).await.map_err(engine)
    }

    async fn stop_container(&self, id: &str, timeout: Duration) -> Result<(), RuntimeError> {
        self.ours(id).await?;
        let opts = StopContainerOptionsBuilder::new()
            .t(timeout.as_secs() as i32)
            .build();
        match self.docker.stop_container(id, Some(opts)).await {
            Ok(()) => Ok(()),
            // 304: already stopped.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(engine(e)),
        }
    }

    async fn restart_container(&self, id: &str, timeout: Duration) -> Result<(), RuntimeError> {
        self.ours(id).await?;
        let opts = RestartContainerOptionsBuilder::new()
            .t(timeout.as_secs() as i32)
            .build();
        self.docker
            .restart_container(id, Some(opts))
            .await
            .map_err(engine)
    }

    async fn remove_container(&self, id: &str) -> Result<(), RuntimeError> {
        match self.ours(id).await {
            Err(RuntimeError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        let opts = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        match self.docker.remove_container(id, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(engine(e)),
        }
    }

    async fn ensure_network(&self, name: &str) -> Result<(), RuntimeError> {
        if self.list_networks().await?.iter().any(|n| n == name) {
            return Ok(());
        }
        let req = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".to_string()),
            labels: Some(HashMap::from([(
                LABEL_PROJECT.to_string(),
                self.project.clone(),
            )])),
            ..Default::default()
        };
        match self.docker.create_network(req).await {
            Ok(_) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409,
                message,
            }) => Err(RuntimeError::Engine(format!(
                "network \"{name}\" exists but is not msctl's ({message}); remove it or choose another --project"
            ))),
            Err(e) => Err(engine(e)),
        }
    }

    async fn list_networks(&self) -> Result<Vec<String>, RuntimeError> {
        let opts = ListNetworksOptionsBuilder::new()
            .filters(&self.project_filter())
            .build();
        let nets = self
            .docker
            .list_networks(Some(opts))
            .await
            .map_err(engine)?;
        Ok(nets
            .into_iter()
            .filter(|n| n.labels.as_ref().and_then(|l| l.get(LABEL_PROJECT)) == Some(&self.project))
            .filter_map(|n| n.name)
            .collect())
    }

    async fn remove_network(&self, name: &str) -> Result<(), RuntimeError> {
        if !self.list_networks().await?.iter().any(|n| n == name) {
            return Err(RuntimeError::NotOurs {
                kind: "network",
                name: name.to_string(),
                project: self.project.clone(),
            });
        }
        match self.docker.remove_network(name).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(engine(e)),
        }
    }

    async fn ensure_volume(&self, name: &str, component: &str) -> Result<(), RuntimeError> {
        match self.docker.inspect_volume(name).await {
            Ok(v) => {
                if v.labels.get(LABEL_PROJECT) != Some(&self.project) {
                    return Err(RuntimeError::NotOurs {
                        kind: "volume",
                        name: name.to_string(),
                        project: self.project.clone(),
                    });
                }
                return Ok(());
            }
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(engine(e)),
        }
        let req = VolumeCreateRequest {
            name: Some(name.to_string()),
            labels: Some(HashMap::from([
                (LABEL_PROJECT.to_string(), self.project.clone()),
                (LABEL_COMPONENT.to_string(), component.to_string()),
            ])),
            ..Default::default()
        };
        self.docker.create_volume(req).await.map_err(engine)?;
        Ok(())
    }

    async fn list_volumes(&self) -> Result<Vec<String>, RuntimeError> {
        let opts = ListVolumesOptionsBuilder::new()
            .filters(&self.project_filter())
            .build();
        let r = self.docker.list_volumes(Some(opts)).await.map_err(engine)?;
        Ok(r.volumes
            .unwrap_or_default()
            .into_iter()
            .filter(|v| v.labels.get(LABEL_PROJECT) == Some(&self.project))
            .map(|v| v.name)
            .collect())
    }

    async fn remove_volume(&self, name: &str) -> Result<(), RuntimeError> {
        if !self.list_volumes().await?.iter().any(|n| n == name) {
            return Err(RuntimeError::NotOurs {
                kind: "volume",
                name: name.to_string(),
                project: self.project.clone(),
            });
        }
        match self
            .docker
            .remove_volume(name, None::<bollard::query_parameters::RemoveVolumeOptions>)
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(engine(e)),
        }
    }

    async fn image_id(&self, image: &str) -> Result<Option<String>, RuntimeError> {
        match self.docker.inspect_image(image).await {
            Ok(i) => Ok(i.id),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(engine(e)),
        }
    }

    async fn ensure_image(
        &self,
        image: &str,
        recipe: Option<(&ImageRecipe, &Path)>,
        build: ImageBuild,
        progress: &ProgressSink,
    ) -> Result<String, RuntimeError> {
        let opts = BuildOptions {
            offline: build.offline,
            force: build.force,
        };
        let boxed = |e: images::ImageError| RuntimeError::Image(Box::new(e));
        match recipe {
            Some((ImageRecipe::Recipe(dir), root)) => {
                images::build_recipe(&self.docker, image, &root.join(dir), &opts, progress)
                    .await
                    .map_err(boxed)
            }
            Some((ImageRecipe::Binaries(cargo), root)) => images::build_binaries(
                &self.docker,
                image,
                &root.join(&cargo.workspace),
                &cargo.binaries,
                &cargo.features,
                &opts,
                progress,
            )
            .await
            .map_err(boxed),
            None => {
                if let Ok(i) = self.docker.inspect_image(image).await {
                    return Ok(i.id.unwrap_or_default());
                }
                if build.offline {
                    return Err(RuntimeError::Engine(format!(
                        "image \"{image}\" is not present and --offline forbids pulling it"
                    )));
                }
                progress.start(image, &format!("pull {image}"), None);
                let opts = CreateImageOptionsBuilder::new().from_image(image).build();
                let mut stream = self.docker.create_image(Some(opts), None, None);
                while let Some(item) = stream.next().await {
                    match item {
                        Ok(info) => {
                            if let Some(s) = info.status {
                                progress.message(image, s);
                            }
                        }
                        Err(e) => {
                            progress.finish(image, false, "pull failed");
                            return Err(RuntimeError::Engine(format!(
                                "image \"{image}\" is not present and could not be pulled: {}; build it or load it into the engine",
                                engine(e)
                            )));
                        }
                    }
                }
                progress.finish(image, true, "pulled");
                let i = self.docker.inspect_image(image).await.map_err(engine)?;
                Ok(i.id.unwrap_or_default())
            }
        }
    }

    fn logs(
        &self,
        id: &str,
        options: LogOptions,
    ) -> BoxStream<'static, Result<LogLine, RuntimeError>> {
        let mut b = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .follow(options.follow);
        b = match options.tail {
            Some(n) => b.tail(&n.to_string()),
            None => b.tail("all"),
        };
        if let Some(since) = options.since {
            let secs = since
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs() as i32)
                .unwrap_or(0);
            b = b.since(secs);
        }
        let stream = self.docker.logs(id, Some(b.build()));
        // Frames may split a line; carry the partial tail over to the next frame.
        let mut pending: HashMap<bool, String> = HashMap::new();
        stream
            .map(Some)
            .chain(futures_util::stream::once(async { None }))
            .map(move |item| -> Vec<Result<LogLine, RuntimeError>> {
                match item {
                    // End of stream: a last line without a newline still counts.
                    None => pending
                        .drain()
                        .filter(|(_, rest)| !rest.is_empty())
                        .map(|(stderr, text)| Ok(LogLine { stderr, text }))
                        .collect(),
                    Some(Err(e)) => vec![Err(engine(e))],
                    Some(Ok(out)) => {
                        let (stderr, bytes) = match out {
                            LogOutput::StdErr { message } => (true, message),
                            LogOutput::StdOut { message }
                            | LogOutput::Console { message }
                            | LogOutput::StdIn { message } => (false, message),
                        };
                        let buf = pending.entry(stderr).or_default();
                        buf.push_str(&String::from_utf8_lossy(&bytes));
                        let mut lines = Vec::new();
                        while let Some(pos) = buf.find('\n') {
                            let line: String = buf.drain(..=pos).collect();
                            lines.push(Ok(LogLine {
                                stderr,
                                text: line.trim_end_matches(['\n', '\r']).to_string(),
                            }));
                        }
                        lines
                    }
                }
            })
            .flat_map(futures_util::stream::iter)
            .boxed()
    }
}
