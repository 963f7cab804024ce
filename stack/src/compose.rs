//! `msctl config compose`: the stack as a docker-compose file, for people who want to run
//! it without msctl and for the start-up benchmark against `docker-compose up`.
//!
//! The translation mirrors what msctl's Docker runtime creates (see
//! [`crate::orchestrator::Project::spec`] and [`crate::docker`]): the same image tags,
//! command and entrypoint, environment (with what msctl injects: `MSCTL_PROJECT`,
//! `MSCTL_COMPONENT`, `MSCTL_REPLICA` and the rendered Prometheus configuration), ports
//! on 127.0.0.1, named volumes, the engine-side health check built by
//! [`crate::docker::health_test`] with the same timings, restart policy, stop timeout,
//! `depends_on` conditions and replicas (`scale`).
//!
//! What cannot be the same: compose names containers `<project>_<service>_<n>` and volumes
//! `<project>_<name>`, sets no msctl labels (so msctl never mistakes them for its own), and
//! cannot give each replica its own `MSCTL_REPLICA`, so that variable is only set for
//! single-replica components. Prometheus scrapes components by their service names,
//! which compose resolves: a single replica by `static_configs`, several by DNS A records.
//!
//! The output is JSON, which is YAML too: docker-compose 1.29 reads it (checked with
//! `docker-compose -f - config`; Compose v2 should too, unchecked), and msctl needs no
//! YAML writer. The format is compose file
//! version 2.4, the last one whose `depends_on` conditions and `scale` are native; 1.29
//! validates it against the Compose Specification, which adds
//! `service_completed_successfully`.

use std::collections::BTreeMap;
use std::time::Duration;

use indexmap::IndexMap;
use serde::Serialize;

use crate::docker::health_test;
use crate::model::{Component, Condition, PortMapping, Stack};
use crate::orchestrator::{render_prometheus_config, static_scrape_targets};

/// The compose file format written.
pub const COMPOSE_VERSION: &str = "2.4";

/// A docker-compose file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComposeFile {
    /// File format version.
    pub version: &'static str,
    /// One service per selected component, in start order.
    pub services: IndexMap<String, ComposeService>,
    /// Named volumes, `<component>-<volume>` (compose prefixes the project).
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub volumes: IndexMap<String, ComposeVolume>,
}

/// A named volume with the engine's defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct ComposeVolume {}

/// One compose service.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComposeService {
    /// Image tag, as in stack.toml.
    pub image: String,
    /// Entrypoint override.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Command override.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Environment, including what msctl injects.
    pub environment: BTreeMap<String, String>,
    /// `127.0.0.1:HOST:CONTAINER`, or `127.0.0.1::CONTAINER` for an ephemeral host port.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
    /// `VOLUME:PATH`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<String>,
    /// The engine-side health check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<ComposeHealthcheck>,
    /// Restart policy (`no`, `always`, `on-failure`, `unless-stopped`).
    pub restart: &'static str,
    /// Grace period between SIGTERM and SIGKILL.
    pub stop_grace_period: String,
    /// Dependencies with their conditions.
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub depends_on: IndexMap<String, ComposeDependency>,
    /// Replicas.
    pub scale: u32,
}

/// A compose health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComposeHealthcheck {
    /// `["CMD", ...]` or `["CMD-SHELL", "..."]`.
    pub test: Vec<String>,
    /// Time between checks.
    pub interval: String,
    /// How long one check may take.
    pub timeout: String,
    /// Consecutive failures before unhealthy.
    pub retries: u32,
    /// Grace period during which failures do not count.
    pub start_period: String,
}

/// A `depends_on` entry in long form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComposeDependency {
    /// `service_started`, `service_healthy` or `service_completed_successfully`.
    pub condition: &'static str,
}

/// The compose file for `selection` (component names, e.g. from [`Stack::select`]) of
/// `stack`, run as `project`.
pub fn compose_file(stack: &Stack, project: &str, selection: &[String]) -> ComposeFile {
    let prometheus = compose_prometheus_config(stack);
    let mut services = IndexMap::new();
    let mut volumes = IndexMap::new();
    for name in selection {
        let Some(c) = stack.components.get(name) else {
            continue;
        };
        let mut environment: BTreeMap<String, String> = c
            .environment
            .iter()
            .map(|(k, v)| (k.clone(), escape(v)))
            .collect();
        environment.insert("MSCTL_PROJECT".into(), escape(project));
        environment.insert("MSCTL_COMPONENT".into(), c.name.clone());
        if c.replicas == 1 {
            environment.insert("MSCTL_REPLICA".into(), "1".into());
        }
        if let Some(var) = &c.prometheus_config {
            environment.insert(var.clone(), escape(&prometheus));
        }
        let mut service_volumes = Vec::new();
        for v in &c.volumes {
            let vname = format!("{}-{}", c.name, v.name);
            service_volumes.push(format!("{vname}:{}", v.path));
            volumes.insert(vname, ComposeVolume::default());
        }
        services.insert(
            c.name.clone(),
            ComposeService {
                image: c.image.clone(),
                entrypoint: c.entrypoint.as_ref().map(|v| escape_all(v)),
                command: c.command.as_ref().map(|v| escape_all(v)),
                environment,
                ports: c.ports.iter().map(compose_port).collect(),
                volumes: service_volumes,
                healthcheck: c.health.as_ref().map(|h| ComposeHealthcheck {
                    test: escape_all(&health_test(&h.probe)),
                    interval: duration(h.interval),
                    timeout: duration(h.timeout),
                    retries: h.retries,
                    start_period: duration(h.start_period),
                }),
                restart: c.restart.as_docker(),
                stop_grace_period: duration(c.stop_timeout),
                depends_on: c
                    .depends_on
                    .iter()
                    .map(|d| {
                        (
                            d.component.clone(),
                            ComposeDependency {
                                condition: condition(d.condition),
                            },
                        )
                    })
                    .collect(),
                scale: c.replicas,
            },
        );
    }
    ComposeFile {
        version: COMPOSE_VERSION,
        services,
        volumes,
    }
}

/// [`compose_file`] as pretty JSON (valid YAML), with a trailing newline.
pub fn render(stack: &Stack, project: &str, selection: &[String]) -> String {
    let file = compose_file(stack, project, selection);
    // Serialising plain strings, maps and numbers cannot fail.
    let mut out = serde_json::to_string_pretty(&file).unwrap_or_default();
    out.push('\n');
    out
}

/// The Prometheus configuration msctl renders, with targets that compose resolves: the
/// service name (one replica), or its DNS A records (every replica of a scaled service).
pub fn compose_prometheus_config(stack: &Stack) -> String {
    render_prometheus_config(stack, |c: &Component, m| {
        if c.replicas == 1 {
            static_scrape_targets(c, &[format!("{}:{}", c.name, m.port)])
        } else {
            format!(
                "    dns_sd_configs:\n      - names: ['{name}']\n        type: 'A'\n        port: {port}\n    relabel_configs:\n      - target_label: component\n        replacement: '{name}'\n",
                name = c.name,
                port = m.port
            )
        }
    })
}

fn compose_port(p: &PortMapping) -> String {
    if p.host == 0 {
        format!("127.0.0.1::{}", p.container)
    } else {
        format!("127.0.0.1:{}:{}", p.host, p.container)
    }
}

fn condition(c: Condition) -> &'static str {
    match c {
        Condition::Started => "service_started",
        Condition::Healthy => "service_healthy",
        Condition::CompletedSuccessfully => "service_completed_successfully",
    }
}

/// A duration as compose (and Go's `time.ParseDuration`) reads it, without rounding.
fn duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d.as_nanos().is_multiple_of(1_000_000) {
        format!("{}ms", d.as_millis())
    } else if d.as_nanos().is_multiple_of(1_000) {
        format!("{}us", d.as_micros())
    } else {
        format!("{}ns", d.as_nanos())
    }
}

/// Compose interpolates `$VAR` and `${VAR}` in every value; `$$` is a literal `$`, so that
/// the container sees exactly what msctl would pass.
fn escape(s: &str) -> String {
    s.replace('$', "$$")
}

fn escape_all(v: &[String]) -> Vec<String> {
    v.iter().map(|s| escape(s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::HealthProbe;
    use serde_json::Value;
    use std::path::Path;

    const STACK: &str = r#"
name = "demo"

[components.db]
image = "msctl/postgres:dev"
environment = { POSTGRES_PASSWORD = "pa$$word", PORT = 5432 }
ports = ["5432", "15433:5433"]
volumes = { data = "/var/lib/postgresql/data" }
profiles = ["infra"]
health = { command = ["pg_isready", "-h", "127.0.0.1"], interval = "1s", timeout = "1500ms", retries = 60, start_period = "2s" }

[components.migrate]
image = "msctl/services:dev"
command = ["migrate", "--all"]
restart = "no"
depends_on = { db = "healthy" }

[components.api]
image = "msctl/services:dev"
entrypoint = ["/bin/sh", "-c"]
command = ["exec api"]
replicas = 2
ports = ["9000"]
stop_timeout = "30s"
depends_on = { db = "healthy", migrate = "completed_successfully", cache = "started" }
metrics = { port = 9000 }
health = { http = "/health", port = 8080 }

[components.cache]
image = "redis:7"
metrics = { port = 6379, path = "/m" }

[components.prometheus]
image = "msctl/prometheus:dev"
prometheus_config = "PROM_CFG"
health = { tcp = 9090 }

[components.lonely]
image = "busybox"
restart = "always"
"#;

    fn stack() -> Stack {
        Stack::parse(Path::new("/nonexistent/stack.toml"), STACK).expect("valid stack")
    }

    fn all(stack: &Stack) -> Value {
        let sel = stack.select(&[], &[]).expect("selection");
        serde_json::from_str(&render(stack, "bench", &sel)).expect("compose output is JSON")
    }

    #[test]
    fn services_keep_images_commands_and_start_order() {
        let stack = stack();
        let v = all(&stack);
        assert_eq!(v["version"], "2.4");
        let names: Vec<&String> = v["services"]
            .as_object()
            .expect("services")
            .keys()
            .collect();
        assert_eq!(names.len(), 6);
        let api = &v["services"]["api"];
        assert_eq!(api["image"], "msctl/services:dev");
        assert_eq!(api["entrypoint"], serde_json::json!(["/bin/sh", "-c"]));
        assert_eq!(api["command"], serde_json::json!(["exec api"]));
        assert_eq!(
            v["services"]["migrate"]["command"],
            serde_json::json!(["migrate", "--all"])
        );
        assert!(v["services"]["db"].get("command").is_none());
        assert!(v["services"]["db"].get("entrypoint").is_none());
    }

    #[test]
    fn environment_includes_what_msctl_injects() {
        let stack = stack();
        let v = all(&stack);
        let db = &v["services"]["db"]["environment"];
        // Every `$` is doubled, so that after compose's interpolation the container sees
        // `pa$$word`, as under msctl.
        assert_eq!(db["POSTGRES_PASSWORD"], "pa$$$$word");
        assert_eq!(db["PORT"], "5432");
        assert_eq!(db["MSCTL_PROJECT"], "bench");
        assert_eq!(db["MSCTL_COMPONENT"], "db");
        assert_eq!(db["MSCTL_REPLICA"], "1");
        // No single value is right for every replica of a scaled service.
        assert!(v["services"]["api"]["environment"]
            .get("MSCTL_REPLICA")
            .is_none());
        let prom = v["services"]["prometheus"]["environment"]["PROM_CFG"]
            .as_str()
            .expect("prometheus config injected");
        assert_eq!(prom, compose_prometheus_config(&stack));
    }

    #[test]
    fn prometheus_scrapes_names_that_compose_resolves() {
        let cfg = compose_prometheus_config(&stack());
        assert!(cfg.contains("- targets: ['cache:6379']"), "{cfg}");
        assert!(cfg.contains("metrics_path: '/m'"), "{cfg}");
        // Both replicas of api, through the service's DNS A records.
        assert!(cfg.contains("names: ['api']"), "{cfg}");
        assert!(cfg.contains("port: 9000"), "{cfg}");
        assert!(cfg.contains("replacement: 'api'"), "{cfg}");
        assert!(!cfg.contains("demo-"), "no msctl container names: {cfg}");
    }

    #[test]
    fn ports_bind_to_localhost_and_ephemeral_stays_ephemeral() {
        let v = all(&stack());
        assert_eq!(
            v["services"]["db"]["ports"],
            serde_json::json!(["127.0.0.1::5432", "127.0.0.1:15433:5433"])
        );
        assert_eq!(
            v["services"]["api"]["ports"],
            serde_json::json!(["127.0.0.1::9000"])
        );
        assert!(v["services"]["migrate"].get("ports").is_none());
    }

    #[test]
    fn named_volumes_are_declared_and_mounted() {
        let v = all(&stack());
        assert_eq!(
            v["services"]["db"]["volumes"],
            serde_json::json!(["db-data:/var/lib/postgresql/data"])
        );
        assert_eq!(v["volumes"], serde_json::json!({ "db-data": {} }));
    }

    #[test]
    fn health_checks_match_the_docker_runtime() {
        let stack = stack();
        let v = all(&stack);
        let db = &v["services"]["db"]["healthcheck"];
        assert_eq!(
            db["test"],
            serde_json::json!(["CMD", "pg_isready", "-h", "127.0.0.1"])
        );
        assert_eq!(db["interval"], "1s");
        assert_eq!(db["timeout"], "1500ms");
        assert_eq!(db["retries"], 60);
        assert_eq!(db["start_period"], "2s");
        let api = &v["services"]["api"]["healthcheck"];
        let expected = health_test(&HealthProbe::Http {
            port: 8080,
            path: "/health".into(),
        });
        assert_eq!(api["test"], serde_json::json!(expected));
        // The defaults of stack.toml, not compose's.
        assert_eq!(api["interval"], "2s");
        assert_eq!(api["timeout"], "5s");
        assert_eq!(api["retries"], 30);
        assert_eq!(api["start_period"], "0s");
        let prom = &v["services"]["prometheus"]["healthcheck"];
        assert_eq!(
            prom["test"],
            serde_json::json!(health_test(&HealthProbe::Tcp { port: 9090 }))
        );
        assert!(v["services"]["cache"].get("healthcheck").is_none());
    }

    #[test]
    fn restart_stop_timeout_and_scale() {
        let v = all(&stack());
        assert_eq!(v["services"]["db"]["restart"], "unless-stopped");
        assert_eq!(v["services"]["migrate"]["restart"], "no");
        assert_eq!(v["services"]["lonely"]["restart"], "always");
        assert_eq!(v["services"]["db"]["stop_grace_period"], "10s");
        assert_eq!(v["services"]["api"]["stop_grace_period"], "30s");
        assert_eq!(v["services"]["api"]["scale"], 2);
        assert_eq!(v["services"]["db"]["scale"], 1);
    }

    #[test]
    fn depends_on_keeps_every_condition() {
        let v = all(&stack());
        assert_eq!(
            v["services"]["api"]["depends_on"],
            serde_json::json!({
                "db": { "condition": "service_healthy" },
                "migrate": { "condition": "service_completed_successfully" },
                "cache": { "condition": "service_started" },
            })
        );
        assert!(v["services"]["db"].get("depends_on").is_none());
    }

    #[test]
    fn a_selection_brings_its_dependencies_and_nothing_else() {
        let stack = stack();
        let sel = stack.select(&["migrate".into()], &[]).expect("selection");
        let v: Value =
            serde_json::from_str(&render(&stack, "bench", &sel)).expect("compose output is JSON");
        let names: Vec<&String> = v["services"]
            .as_object()
            .expect("services")
            .keys()
            .collect();
        assert_eq!(names, vec!["db", "migrate"]);
        // Profiles are not carried over: compose would skip profiled services on a plain
        // `up`, msctl starts them.
        assert!(v["services"]["db"].get("profiles").is_none());
    }

    #[test]
    fn durations_are_exact() {
        assert_eq!(duration(Duration::from_secs(90)), "90s");
        assert_eq!(duration(Duration::from_millis(250)), "250ms");
        assert_eq!(duration(Duration::from_micros(1500)), "1500us");
        assert_eq!(duration(Duration::from_nanos(7)), "7ns");
        assert_eq!(duration(Duration::ZERO), "0s");
    }
}
