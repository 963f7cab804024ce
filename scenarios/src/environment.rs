//! What the engine needs from the world: component endpoints on 127.0.0.1, database URLs,
//! and faults. [`StackEnvironment`] is the real one (a running msctl project and the chaos
//! crate); [`StaticEnvironment`] serves tests with fixed endpoints and no chaos.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use msctl_chaos::{Chaos, FaultSpec};
use msctl_stack::model::Stack;
use msctl_stack::orchestrator::Project;

/// Why the environment could not answer.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct EnvError(pub String);

/// The world a scenario runs against.
#[async_trait]
pub trait Environment: Send + Sync {
    /// `127.0.0.1:PORT` of a component's container port (`None` = its first published port).
    fn endpoint(&self, component: &str, port: Option<u16>) -> Result<SocketAddr, EnvError>;
    /// Re-reads endpoints (published ports change when a container is recreated).
    async fn refresh(&self) -> Result<(), EnvError> {
        Ok(())
    }
    /// A URL for a component's database that works from the host.
    fn database_url(&self, component: &str) -> Result<String, EnvError>;
    /// Applies a fault; returns its id.
    async fn apply_fault(&self, spec: &FaultSpec) -> Result<String, EnvError>;
    /// Reverts a fault (waiting until its containers are ready again).
    async fn revert_fault(&self, id: &str) -> Result<(), EnvError>;
    /// Every replica's metrics endpoint on 127.0.0.1 (components with `metrics` in the
    /// stack file), for the workload's samplers.
    fn metrics_targets(&self) -> Vec<MetricsTarget> {
        Vec::new()
    }
    /// The components `component` depends on (from the stack file).
    fn depends_on(&self, _component: &str) -> Vec<String> {
        Vec::new()
    }
    /// Runs the named components with these environment overrides (component → variable
    /// → value), recreating the ones whose settings differ, and waits until they are
    /// ready; returns the components that were recreated.
    async fn tune(&self, overrides: &Tuning) -> Result<Vec<String>, EnvError> {
        if overrides.is_empty() {
            Ok(Vec::new())
        } else {
            Err(EnvError(
                "this environment cannot change component settings ([tune])".into(),
            ))
        }
    }
    /// Starts every stateless long-running component (one without named volumes: the
    /// services, the registry, the gateway, a cache) afresh with these overrides: stops
    /// them, dependents first, and starts them again, dependencies first, waiting until
    /// they are ready. What a failed run left in a process (a connection never re-opened,
    /// a registration lost, a breaker stuck) is gone; what the databases hold stays —
    /// unless `data`: then the whole project is removed with its volumes, started again
    /// and seeded, so that not even a saga a failed run left unfinishable remains.
    /// Returns the components it restarted.
    async fn fresh_start(&self, _overrides: &Tuning, _data: bool) -> Result<Vec<String>, EnvError> {
        Err(EnvError(
            "this environment cannot restart its components".into(),
        ))
    }
}

/// Environment overrides: component → variable → value.
pub type Tuning = indexmap::IndexMap<String, indexmap::IndexMap<String, String>>;

/// One replica's metrics endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsTarget {
    /// `component#replica`.
    pub instance: String,
    /// Component name.
    pub component: String,
    /// `127.0.0.1:PORT`.
    pub addr: SocketAddr,
    /// Path, e.g. `/metrics`.
    pub path: String,
}

/// Fixed endpoints and database URLs, no chaos: for tests against servers started in-process.
#[derive(Debug, Default, Clone)]
pub struct StaticEnvironment {
    /// (component, container port or 0 for "first") → address.
    pub endpoints: HashMap<(String, u16), SocketAddr>,
    /// component → database URL.
    pub databases: HashMap<String, String>,
}

impl StaticEnvironment {
    /// Adds an endpoint reachable both as `{{component}}`-style first port and by `port`.
    pub fn with_endpoint(mut self, component: &str, port: u16, addr: SocketAddr) -> Self {
        self.endpoints
            .entry((component.to_string(), 0))
            .or_insert(addr);
        self.endpoints.insert((component.to_string(), port), addr);
        self
    }

    /// Adds a database URL for a component.
    pub fn with_database(mut self, component: &str, url: &str) -> Self {
        self.databases
            .insert(component.to_string(), url.to_string());
        self
    }
}

#[async_trait]
impl Environment for StaticEnvironment {
    fn endpoint(&self, component: &str, port: Option<u16>) -> Result<SocketAddr, EnvError> {
        self.endpoints
            .get(&(component.to_string(), port.unwrap_or(0)))
            .copied()
            .ok_or_else(|| EnvError(format!("no endpoint for {component}:{}", port.unwrap_or(0))))
    }

    fn database_url(&self, component: &str) -> Result<String, EnvError> {
        self.databases
            .get(component)
            .cloned()
            .ok_or_else(|| EnvError(format!("no database for component {component:?}")))
    }

    async fn apply_fault(&self, spec: &FaultSpec) -> Result<String, EnvError> {
        Err(EnvError(format!(
            "cannot apply {}: this environment has no chaos engine",
            spec.kind
        )))
    }

    async fn revert_fault(&self, _id: &str) -> Result<(), EnvError> {
        Ok(())
    }
}

/// A running msctl project: ports from `ps`, databases from the stack file, faults through
/// the chaos crate.
pub struct StackEnvironment {
    stack: Stack,
    project: Project,
    chaos: Arc<Chaos>,
    /// (component, container port) → host port, plus (component, 0) → first published port.
    ports: RwLock<HashMap<(String, u16), u16>>,
    /// Every running replica's metrics endpoint.
    metrics: RwLock<Vec<MetricsTarget>>,
}

impl StackEnvironment {
    /// Wraps a project and its chaos handle; call [`Environment::refresh`] before use.
    pub fn new(stack: Stack, project: Project, chaos: Chaos) -> Self {
        Self {
            stack,
            project,
            chaos: Arc::new(chaos),
            ports: RwLock::new(HashMap::new()),
            metrics: RwLock::new(Vec::new()),
        }
    }

    fn component_name(&self, name: &str) -> Result<String, EnvError> {
        self.stack
            .resolve_component(name)
            .map(|c| c.name.clone())
            .map_err(EnvError)
    }

    /// The stack with `overrides` applied, and the components they name.
    fn tuned(&self, overrides: &Tuning) -> Result<(Stack, Vec<String>), EnvError> {
        let mut stack = self.stack.clone();
        let mut names = Vec::new();
        for (component, vars) in overrides {
            let name = self.component_name(component)?;
            let c = stack
                .components
                .get_mut(&name)
                .ok_or_else(|| EnvError(format!("no component {name:?}")))?;
            for (k, v) in vars {
                c.environment.insert(k.clone(), v.clone());
            }
            names.push(name);
        }
        Ok((stack, names))
    }

    /// Brings `components` of `stack` up (images as they are), then re-reads endpoints.
    async fn up(
        &self,
        stack: Stack,
        components: Vec<String>,
    ) -> Result<msctl_stack::orchestrator::UpReport, EnvError> {
        let project = Project::new(stack, self.project.runtime().clone());
        let opts = msctl_stack::orchestrator::UpOptions {
            components,
            check_images: false,
            timeout: std::time::Duration::from_secs(240),
            ..Default::default()
        };
        let report = project
            .up(&opts, &msctl_stack::progress::silent())
            .await
            .map_err(|e| EnvError(e.to_string()))?;
        self.refresh().await?;
        Ok(report)
    }
}

#[async_trait]
impl Environment for StackEnvironment {
    fn endpoint(&self, component: &str, port: Option<u16>) -> Result<SocketAddr, EnvError> {
        let name = self.component_name(component)?;
        let ports = self
            .ports
            .read()
            .map_err(|_| EnvError("port table poisoned".into()))?;
        let host = ports.get(&(name.clone(), port.unwrap_or(0))).copied();
        match host {
            Some(p) => Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, p))),
            None => Err(EnvError(match port {
                Some(p) => format!(
                    "component \"{name}\" publishes no port {p} on 127.0.0.1 (is it running? `msctl ps`)"
                ),
                None => format!(
                    "component \"{name}\" publishes no port on 127.0.0.1 (is it running? `msctl ps`)"
                ),
            })),
        }
    }

    async fn refresh(&self) -> Result<(), EnvError> {
        let rows = self
            .project
            .ps()
            .await
            .map_err(|e| EnvError(e.to_string()))?;
        let mut map = HashMap::new();
        let mut metrics = Vec::new();
        for row in &rows {
            let Some(m) = self
                .stack
                .components
                .get(&row.component)
                .and_then(|c| c.metrics.as_ref())
            else {
                continue;
            };
            if let Some(p) = row
                .ports
                .iter()
                .find(|p| p.container == m.port && p.host != 0)
            {
                metrics.push(MetricsTarget {
                    instance: format!("{}#{}", row.component, row.replica),
                    component: row.component.clone(),
                    addr: SocketAddr::from((Ipv4Addr::LOCALHOST, p.host)),
                    path: m.path.clone(),
                });
            }
        }
        if let Ok(mut slot) = self.metrics.write() {
            *slot = metrics;
        }
        for row in rows {
            // Replica 1 first, so "first port" means the first replica's.
            for p in &row.ports {
                if p.host == 0 {
                    continue;
                }
                map.entry((row.component.clone(), p.container))
                    .or_insert(p.host);
            }
            if let Some(component) = self.stack.components.get(&row.component) {
                if let Some(first) = component.ports.first() {
                    if let Some(p) = row.ports.iter().find(|p| p.container == first.container) {
                        if p.host != 0 {
                            map.entry((row.component.clone(), 0)).or_insert(p.host);
                        }
                    }
                }
            }
        }
        *self
            .ports
            .write()
            .map_err(|_| EnvError("port table poisoned".into()))? = map;
        Ok(())
    }

    fn database_url(&self, component: &str) -> Result<String, EnvError> {
        let name = self.component_name(component)?;
        let c = &self.stack.components[&name];
        let raw = c.environment.get("DATABASE_URL").ok_or_else(|| {
            EnvError(format!(
                "component \"{name}\" has no DATABASE_URL in {}; sql steps need one",
                self.stack.file.display()
            ))
        })?;
        host_database_url(raw, |host, port| {
            self.endpoint(host, Some(port)).map(|a| a.port())
        })
    }

    async fn apply_fault(&self, spec: &FaultSpec) -> Result<String, EnvError> {
        let applied = self
            .chaos
            .apply(spec)
            .await
            .map_err(|e| EnvError(e.to_string()))?;
        Ok(applied.record.id.to_string())
    }

    async fn revert_fault(&self, id: &str) -> Result<(), EnvError> {
        self.chaos
            .revert(id)
            .await
            .map(|_| ())
            .map_err(|e| EnvError(e.to_string()))
    }

    fn metrics_targets(&self) -> Vec<MetricsTarget> {
        self.metrics.read().map(|m| m.clone()).unwrap_or_default()
    }

    fn depends_on(&self, component: &str) -> Vec<String> {
        self.stack
            .components
            .get(component)
            .map(|c| c.depends_on.iter().map(|d| d.component.clone()).collect())
            .unwrap_or_default()
    }

    async fn tune(&self, overrides: &Tuning) -> Result<Vec<String>, EnvError> {
        if overrides.is_empty() {
            return Ok(Vec::new());
        }
        let (stack, names) = self.tuned(overrides)?;
        let report = self
            .up(stack, names)
            .await
            .map_err(|e| EnvError(format!("cannot apply [tune]: {e}")))?;
        Ok(report
            .components
            .iter()
            .filter(|(_, actions)| {
                actions
                    .iter()
                    .any(|a| !matches!(a, msctl_stack::orchestrator::Action::Keep { .. }))
            })
            .map(|(c, _)| c.clone())
            .collect())
    }

    async fn fresh_start(&self, overrides: &Tuning, data: bool) -> Result<Vec<String>, EnvError> {
        let (stack, _) = self.tuned(overrides)?;
        if data {
            let quiet = msctl_stack::progress::silent();
            self.project
                .down(true, &quiet)
                .await
                .map_err(|e| EnvError(format!("cannot remove the project: {e}")))?;
            let names: Vec<String> = stack.graph.order().to_vec();
            self.up(stack, Vec::new())
                .await
                .map_err(|e| EnvError(format!("cannot start the project again: {e}")))?;
            self.project
                .seed(&[], &quiet)
                .await
                .map_err(|e| EnvError(format!("cannot seed the project again: {e}")))?;
            return Ok(names);
        }
        // Only what this project runs (a profile left out stays out).
        let running = self
            .project
            .ps()
            .await
            .map_err(|e| EnvError(e.to_string()))?;
        let names: Vec<String> = self
            .stack
            .components
            .values()
            .filter(|c| c.volumes.is_empty())
            .filter(|c| c.restart != msctl_stack::model::RestartPolicy::No)
            .filter(|c| running.iter().any(|r| r.component == c.name))
            .map(|c| c.name.clone())
            .collect();
        self.project
            .stop(&names, &msctl_stack::progress::silent())
            .await
            .map_err(|e| EnvError(format!("cannot stop the components: {e}")))?;
        self.up(stack, names.clone())
            .await
            .map_err(|e| EnvError(format!("cannot start the components again: {e}")))?;
        Ok(names)
    }
}

/// Rewrites a container-side database URL (`postgres://u:p@postgres:5432/orders`) to the
/// host side (`postgres://u:p@127.0.0.1:PORT/orders`), where `publish(host, port)` gives
/// the 127.0.0.1 port of that component's container port.
pub fn host_database_url(
    raw: &str,
    publish: impl Fn(&str, u16) -> Result<u16, EnvError>,
) -> Result<String, EnvError> {
    let mut url = url::Url::parse(raw)
        .map_err(|e| EnvError(format!("DATABASE_URL {raw:?} is not a URL: {e}")))?;
    let host = url
        .host_str()
        .ok_or_else(|| EnvError(format!("DATABASE_URL {raw:?} has no host")))?
        .to_string();
    let port = url.port().unwrap_or(5432);
    let published = publish(&host, port)?;
    url.set_host(Some("127.0.0.1"))
        .map_err(|e| EnvError(e.to_string()))?;
    url.set_port(Some(published))
        .map_err(|_| EnvError("cannot set the port".into()))?;
    Ok(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_are_rewritten_to_the_published_port() {
        let url = host_database_url("postgres://msctl:pw@postgres:5432/orders", |h, p| {
            assert_eq!((h, p), ("postgres", 5432));
            Ok(40001)
        })
        .expect("rewritten");
        assert_eq!(url, "postgres://msctl:pw@127.0.0.1:40001/orders");
        assert!(host_database_url("not a url", |_, _| Ok(1)).is_err());
    }
}
