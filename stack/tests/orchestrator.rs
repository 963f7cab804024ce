//! Orchestration logic against an in-memory runtime: dependency order, idempotency,
//! recreation on change, port conflicts, health failures and label safety. The real engine
//! is exercised by the end-to-end test in cli/tests.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::stream::{self, BoxStream, StreamExt};
use msctl_stack::model::{ImageRecipe, Stack};
use msctl_stack::orchestrator::{Action, OrchestratorError, Project, UpOptions};
use msctl_stack::progress::{silent, ProgressSink};
use msctl_stack::runtime::{
    ContainerInfo, ContainerSpec, ContainerState, Health, ImageBuild, LogLine, LogOptions, Runtime,
    RuntimeError, LABEL_PROJECT,
};

/// What a container does once started, by component.
#[derive(Clone, Copy)]
enum Behaviour {
    /// Healthy (or running) at once.
    Fine,
    /// Health check fails.
    Unhealthy,
    /// Never becomes healthy.
    Hangs,
    /// Exits with this code (one-shot jobs).
    Exits(i64),
}

#[derive(Default)]
struct World {
    containers: HashMap<String, (ContainerInfo, bool)>, // id -> (info, has health check)
    oneshot: HashSet<String>,
    networks: HashSet<String>,
    volumes: HashSet<String>,
    log: Vec<String>,
    /// Image builds started and finished, in order.
    builds: Vec<String>,
    next: u32,
}

struct FakeRuntime {
    project: String,
    world: Mutex<World>,
    behaviour: HashMap<String, Behaviour>,
}

impl FakeRuntime {
    fn new(project: &str) -> Arc<Self> {
        Self::with(project, &[])
    }
    fn with(project: &str, b: &[(&str, Behaviour)]) -> Arc<Self> {
        Arc::new(Self {
            project: project.into(),
            world: Mutex::new(World::default()),
            behaviour: b.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        })
    }
    fn log(&self) -> Vec<String> {
        self.world.lock().expect("lock").log.clone()
    }
    fn clear_log(&self) {
        self.world.lock().expect("lock").log.clear();
    }
    /// Adds a container that is not ours.
    fn add_foreign(&self, name: &str) {
        let mut w = self.world.lock().expect("lock");
        w.containers.insert(
            name.into(),
            (
                ContainerInfo {
                    id: name.into(),
                    name: name.into(),
                    labels: BTreeMap::new(),
                    state: ContainerState::Running,
                    health: Health::None,
                    exit_code: None,
                    started_at: None,
                    restart_count: 0,
                    ports: vec![],
                    image_id: "x".into(),
                },
                false,
            ),
        );
    }
    fn count(&self) -> usize {
        self.world.lock().expect("lock").containers.len()
    }
}

#[async_trait]
impl Runtime for FakeRuntime {
    fn project(&self) -> &str {
        &self.project
    }
    async fn list_containers(&self) -> Result<Vec<ContainerInfo>, RuntimeError> {
        let w = self.world.lock().expect("lock");
        Ok(w.containers
            .values()
            .filter(|(c, _)| c.labels.get(LABEL_PROJECT) == Some(&self.project))
            .map(|(c, _)| c.clone())
            .collect())
    }
    async fn inspect_container(&self, id: &str) -> Result<ContainerInfo, RuntimeError> {
        let w = self.world.lock().expect("lock");
        w.containers
            .get(id)
            .map(|(c, _)| c.clone())
            .ok_or_else(|| RuntimeError::NotFound(id.into()))
    }
    async fn create_container(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        let mut w = self.world.lock().expect("lock");
        if w.containers.values().any(|(c, _)| c.name == spec.name) {
            return Err(RuntimeError::Engine(format!("name {} in use", spec.name)));
        }
        w.next += 1;
        let id = format!("id{}", w.next);
        w.log.push(format!("create {}", spec.name));
        if spec.restart == msctl_stack::model::RestartPolicy::No {
            w.oneshot.insert(id.clone());
        }
        w.containers.insert(
            id.clone(),
            (
                ContainerInfo {
                    id: id.clone(),
                    name: spec.name.clone(),
                    labels: spec.labels.clone(),
                    state: ContainerState::Created,
                    health: Health::None,
                    exit_code: None,
                    started_at: None,
                    restart_count: 0,
                    ports: spec.ports.clone(),
                    image_id: spec.image_id.clone(),
                },
                spec.health.is_some(),
            ),
        );
        Ok(id)
    }
    async fn start_container(&self, id: &str) -> Result<(), RuntimeError> {
        let mut w = self.world.lock().expect("lock");
        let oneshot = w.oneshot.contains(id);
        let (c, has_health) = w
            .containers
            .get_mut(id)
            .ok_or_else(|| RuntimeError::NotFound(id.into()))?;
        let comp = c.component().unwrap_or_default().to_string();
        let name = c.name.clone();
        match self
            .behaviour
            .get(&comp)
            .copied()
            .unwrap_or(Behaviour::Fine)
        {
            Behaviour::Fine if oneshot => {
                c.state = ContainerState::Exited;
                c.exit_code = Some(0);
            }
            Behaviour::Fine => {
                c.state = ContainerState::Running;
                c.health = if *has_health {
                    Health::Healthy
                } else {
                    Health::None
                };
            }
            Behaviour::Unhealthy => {
                c.state = ContainerState::Running;
                c.health = Health::Unhealthy;
            }
            Behaviour::Hangs => {
                c.state = ContainerState::Running;
                c.health = Health::Starting;
            }
            Behaviour::Exits(code) => {
                c.state = ContainerState::Exited;
                c.exit_code = Some(code);
            }
        }
        w.log.push(format!("start {name}"));
        Ok(())
    }
    async fn stop_container(&self, id: &str, _t: Duration) -> Result<(), RuntimeError> {
        let mut w = self.world.lock().expect("lock");
        let project = self.project.clone();
        let (c, _) = w
            .containers
            .get_mut(id)
            .ok_or_else(|| RuntimeError::NotFound(id.into()))?;
        if c.labels.get(LABEL_PROJECT) != Some(&project) {
            return Err(RuntimeError::NotOurs {
                kind: "container",
                name: id.into(),
                project,
            });
        }
        c.state = ContainerState::Exited;
        let name = c.name.clone();
        w.log.push(format!("stop {name}"));
        Ok(())
    }
    async fn restart_container(&self, id: &str, t: Duration) -> Result<(), RuntimeError> {
        self.stop_container(id, t).await?;
        self.start_container(id).await
    }
    async fn remove_container(&self, id: &str) -> Result<(), RuntimeError> {
        let mut w = self.world.lock().expect("lock");
        if let Some((c, _)) = w.containers.get(id) {
            if c.labels.get(LABEL_PROJECT) != Some(&self.project) {
                return Err(RuntimeError::NotOurs {
                    kind: "container",
                    name: id.into(),
                    project: self.project.clone(),
                });
            }
            let name = c.name.clone();
            w.containers.remove(id);
            w.log.push(format!("remove {name}"));
        }
        Ok(())
    }
    async fn ensure_network(&self, name: &str) -> Result<(), RuntimeError> {
        self.world
            .lock()
            .expect("lock")
            .networks
            .insert(name.into());
        Ok(())
    }
    async fn list_networks(&self) -> Result<Vec<String>, RuntimeError> {
        Ok(self
            .world
            .lock()
            .expect("lock")
            .networks
            .iter()
            .cloned()
            .collect())
    }
    async fn remove_network(&self, name: &str) -> Result<(), RuntimeError> {
        self.world.lock().expect("lock").networks.remove(name);
        Ok(())
    }
    async fn ensure_volume(&self, name: &str, _c: &str) -> Result<(), RuntimeError> {
        self.world.lock().expect("lock").volumes.insert(name.into());
        Ok(())
    }
    async fn list_volumes(&self) -> Result<Vec<String>, RuntimeError> {
        Ok(self
            .world
            .lock()
            .expect("lock")
            .volumes
            .iter()
            .cloned()
            .collect())
    }
    async fn remove_volume(&self, name: &str) -> Result<(), RuntimeError> {
        self.world.lock().expect("lock").volumes.remove(name);
        Ok(())
    }
    async fn image_id(&self, image: &str) -> Result<Option<String>, RuntimeError> {
        let built = format!("built {image}");
        let w = self.world.lock().expect("lock");
        Ok(w.builds.contains(&built).then(|| format!("sha256:{image}")))
    }
    async fn ensure_image(
        &self,
        image: &str,
        _recipe: Option<(&ImageRecipe, &Path)>,
        _b: ImageBuild,
        _p: &ProgressSink,
    ) -> Result<String, RuntimeError> {
        self.world
            .lock()
            .expect("lock")
            .builds
            .push(format!("build {image}"));
        // A build takes a while (paused time), so concurrent builds overlap measurably.
        tokio::time::sleep(Duration::from_secs(10)).await;
        self.world
            .lock()
            .expect("lock")
            .builds
            .push(format!("built {image}"));
        Ok(format!("sha256:{image}"))
    }
    fn logs(&self, id: &str, _o: LogOptions) -> BoxStream<'static, Result<LogLine, RuntimeError>> {
        let line = LogLine {
            stderr: true,
            text: format!("{id}: FATAL: something broke"),
        };
        stream::iter(vec![Ok(line)]).boxed()
    }
}

const STACK: &str = r#"
name = "shop"
[components.db]
image = "db"
ports = ["15432:5432"]
volumes = { data = "/data" }
health = { command = ["check"] }
profiles = ["infra"]
[components.migrate]
image = "tools"
restart = "no"
depends_on = { db = "healthy" }
[components.api]
image = "api"
replicas = 2
depends_on = { migrate = "completed_successfully" }
health = { http = "/health", port = 80 }
[components.web]
image = "web"
depends_on = { api = "healthy" }
"#;

fn stack(text: &str) -> Stack {
    Stack::parse(&PathBuf::from("stack.toml"), text).expect("valid stack")
}

fn project(rt: &Arc<FakeRuntime>, text: &str) -> Project {
    Project::new(stack(text), rt.clone()).with_port_probe(|_| true)
}

fn opts() -> UpOptions {
    UpOptions {
        timeout: Duration::from_secs(30),
        ..Default::default()
    }
}

fn pos(log: &[String], entry: &str) -> usize {
    log.iter()
        .position(|l| l == entry)
        .unwrap_or_else(|| panic!("{entry} not in {log:?}"))
}

#[tokio::test(start_paused = true)]
async fn up_starts_dependencies_before_dependents() {
    let rt = FakeRuntime::new("shop");
    let p = project(&rt, STACK);
    p.up(&opts(), &silent()).await.expect("up");
    let log = rt.log();
    assert!(pos(&log, "start shop-db-1") < pos(&log, "create shop-migrate-1"));
    assert!(pos(&log, "start shop-migrate-1") < pos(&log, "create shop-api-1"));
    assert!(pos(&log, "start shop-api-2") < pos(&log, "create shop-web-1"));
    assert_eq!(rt.count(), 5);
}

// Regression: images were built one after another, so a cold `up` waited for the cargo
// build of the services and then for debootstrap and every recipe, instead of overlapping them.
#[tokio::test(start_paused = true)]
async fn images_are_built_concurrently_each_once() {
    let rt = FakeRuntime::new("shop");
    let p = project(&rt, STACK);
    let t0 = tokio::time::Instant::now();
    let ids = p
        .ensure_images(
            &["db".into(), "migrate".into(), "api".into(), "web".into()],
            ImageBuild::default(),
            &silent(),
        )
        .await
        .expect("images");
    assert_eq!(t0.elapsed(), Duration::from_secs(10), "builds overlapped");
    let log = rt.world.lock().expect("lock").builds.clone();
    let builds: Vec<&String> = log.iter().filter(|l| l.starts_with("build ")).collect();
    assert_eq!(builds.len(), ids.len(), "each image built once: {log:?}");
    let first_done = log
        .iter()
        .position(|l| l.starts_with("built "))
        .expect("built");
    assert!(
        log[..first_done].len() == ids.len(),
        "all started before any finished: {log:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn second_up_changes_nothing() {
    let rt = FakeRuntime::new("shop");
    let p = project(&rt, STACK);
    p.up(&opts(), &silent()).await.expect("up");
    rt.clear_log();
    let report = p.up(&opts(), &silent()).await.expect("second up");
    assert!(
        rt.log().is_empty(),
        "second up touched containers: {:?}",
        rt.log()
    );
    assert!(report
        .components
        .iter()
        .all(|(_, a)| a.iter().all(|a| matches!(a, Action::Keep { .. }))));
}

#[tokio::test(start_paused = true)]
async fn changed_component_is_recreated_and_others_kept() {
    let rt = FakeRuntime::new("shop");
    project(&rt, STACK)
        .up(&opts(), &silent())
        .await
        .expect("up");
    rt.clear_log();
    let changed = STACK.replace(
        "image = \"web\"",
        "image = \"web\"\nenvironment = { MODE = \"fast\" }",
    );
    project(&rt, &changed)
        .up(&opts(), &silent())
        .await
        .expect("up again");
    assert_eq!(
        rt.log(),
        vec!["remove shop-web-1", "create shop-web-1", "start shop-web-1"]
    );
}

#[tokio::test(start_paused = true)]
async fn scaling_down_removes_surplus_replicas() {
    let rt = FakeRuntime::new("shop");
    project(&rt, STACK)
        .up(&opts(), &silent())
        .await
        .expect("up");
    rt.clear_log();
    let one = STACK.replace("replicas = 2", "replicas = 1");
    project(&rt, &one)
        .up(&opts(), &silent())
        .await
        .expect("up again");
    assert!(
        rt.log().contains(&"remove shop-api-2".to_string()),
        "{:?}",
        rt.log()
    );
    assert!(
        !rt.log().iter().any(|l| l.contains("api-1")),
        "{:?}",
        rt.log()
    );
}

#[tokio::test(start_paused = true)]
async fn taken_port_is_reported_before_anything_starts() {
    let rt = FakeRuntime::new("shop");
    let p = Project::new(stack(STACK), rt.clone()).with_port_probe(|port| port != 15432);
    let err = p.up(&opts(), &silent()).await.expect_err("port taken");
    assert!(
        matches!(&err, OrchestratorError::PortInUse { component, port: 15432 } if component == "db"),
        "{err}"
    );
    assert!(err
        .to_string()
        .contains("port 15432 for component \"db\" is already in use on 127.0.0.1"));
    assert!(rt.log().is_empty());
}

#[tokio::test(start_paused = true)]
async fn own_container_holding_its_port_is_not_a_conflict() {
    let rt = FakeRuntime::new("shop");
    project(&rt, STACK)
        .up(&opts(), &silent())
        .await
        .expect("up");
    // The port is now "taken" — by our own db container, which a change recreates.
    let changed = STACK.replace(
        "image = \"db\"",
        "image = \"db\"\nenvironment = { X = \"1\" }",
    );
    let p = Project::new(stack(&changed), rt.clone()).with_port_probe(|port| port != 15432);
    p.up(&opts(), &silent())
        .await
        .expect("recreate with own port");
}

#[tokio::test(start_paused = true)]
async fn unhealthy_component_fails_with_its_logs_and_dependents_never_start() {
    let rt = FakeRuntime::with("shop", &[("db", Behaviour::Unhealthy)]);
    let err = project(&rt, STACK)
        .up(&opts(), &silent())
        .await
        .expect_err("unhealthy");
    let msg = err.to_string();
    assert!(
        msg.contains("component \"db\" (shop-db-1) is unhealthy"),
        "{msg}"
    );
    assert!(msg.contains("FATAL: something broke"), "{msg}");
    assert!(
        !rt.log().iter().any(|l| l.contains("migrate")),
        "{:?}",
        rt.log()
    );
}

#[tokio::test(start_paused = true)]
async fn health_wait_times_out_at_the_deadline() {
    let rt = FakeRuntime::with("shop", &[("web", Behaviour::Hangs)]);
    let web_hangs = STACK.replace("image = \"web\"", "image = \"web\"\nhealth = { tcp = 80 }");
    let err = project(&rt, &web_hangs)
        .up(&opts(), &silent())
        .await
        .expect_err("timeout");
    assert!(
        err.to_string()
            .contains("did not become ready before the deadline"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn failed_job_blocks_its_dependents() {
    let rt = FakeRuntime::with("shop", &[("migrate", Behaviour::Exits(3))]);
    let err = project(&rt, STACK)
        .up(&opts(), &silent())
        .await
        .expect_err("job failed");
    assert!(err.to_string().contains("exited with code 3"), "{err}");
    assert!(!rt.log().iter().any(|l| l.contains("api")));
}

#[tokio::test(start_paused = true)]
async fn no_wait_still_orders_but_skips_final_health() {
    // web never gets healthy, but nothing waits on it and --no-wait was given.
    let rt = FakeRuntime::with("shop", &[("web", Behaviour::Hangs)]);
    let web_hangs = STACK.replace("image = \"web\"", "image = \"web\"\nhealth = { tcp = 80 }");
    let o = UpOptions {
        wait: false,
        ..opts()
    };
    project(&rt, &web_hangs)
        .up(&o, &silent())
        .await
        .expect("no wait");
    let log = rt.log();
    assert!(pos(&log, "start shop-api-1") < pos(&log, "create shop-web-1"));
}

#[tokio::test(start_paused = true)]
async fn profile_up_starts_only_that_subset() {
    let rt = FakeRuntime::new("shop");
    let o = UpOptions {
        profiles: vec!["infra".into()],
        ..opts()
    };
    project(&rt, STACK)
        .up(&o, &silent())
        .await
        .expect("up infra");
    assert_eq!(rt.log(), vec!["create shop-db-1", "start shop-db-1"]);
}

#[tokio::test(start_paused = true)]
async fn down_removes_only_our_resources_dependents_first() {
    let rt = FakeRuntime::new("shop");
    rt.add_foreign("someone-elses-db");
    let p = project(&rt, STACK);
    p.up(&opts(), &silent()).await.expect("up");
    rt.clear_log();
    p.down(false, &silent()).await.expect("down");
    let log = rt.log();
    assert!(pos(&log, "remove shop-web-1") < pos(&log, "stop shop-db-1"));
    assert_eq!(rt.count(), 1, "only the foreign container remains");
    assert!(rt
        .list_volumes()
        .await
        .expect("volumes")
        .contains(&"shop-db-data".to_string()));
    p.down(true, &silent()).await.expect("down volumes");
    assert!(rt.list_volumes().await.expect("volumes").is_empty());
}

#[tokio::test(start_paused = true)]
async fn stop_stops_only_the_named_dependents_first_and_up_starts_them_again() {
    let rt = FakeRuntime::new("shop");
    rt.add_foreign("web");
    let p = project(&rt, STACK);
    p.up(&opts(), &silent()).await.expect("up");
    rt.clear_log();
    let stopped = p
        .stop(&["api".into(), "web".into()], &silent())
        .await
        .expect("stop");
    assert_eq!(stopped.len(), 3, "{stopped:?}");
    let log = rt.log();
    assert!(pos(&log, "stop shop-web-1") < pos(&log, "stop shop-api-1"));
    assert!(pos(&log, "stop shop-web-1") < pos(&log, "stop shop-api-2"));
    assert!(
        log.iter()
            .all(|l| l.starts_with("stop shop-api") || l == "stop shop-web-1"),
        "only the named components' containers: {log:?}"
    );
    // Stopped, not removed: up starts the same containers, dependencies first.
    assert_eq!(rt.count(), 6);
    rt.clear_log();
    let again = UpOptions {
        components: vec!["api".into(), "web".into()],
        ..opts()
    };
    let report = p.up(&again, &silent()).await.expect("up again");
    let log = rt.log();
    assert!(pos(&log, "start shop-api-1") < pos(&log, "start shop-web-1"));
    assert!(!log.iter().any(|l| l.starts_with("create")), "{log:?}");
    let web = report
        .components
        .iter()
        .find(|(c, _)| c == "web")
        .expect("web in the report");
    assert!(web.1.iter().all(|a| matches!(a, Action::Start { .. })));
    // A stopped container is not stopped twice.
    p.stop(&["db".into()], &silent()).await.expect("stop db");
    let stopped = p.stop(&["db".into()], &silent()).await.expect("stop db");
    assert!(stopped.is_empty(), "{stopped:?}");
}

#[tokio::test(start_paused = true)]
async fn ps_lists_replicas_in_stack_order() {
    let rt = FakeRuntime::new("shop");
    let p = project(&rt, STACK);
    p.up(&opts(), &silent()).await.expect("up");
    let rows = p.ps().await.expect("ps");
    let names: Vec<String> = rows
        .iter()
        .map(|r| format!("{}#{}", r.component, r.replica))
        .collect();
    assert_eq!(names, vec!["db#1", "migrate#1", "api#1", "api#2", "web#1"]);
    assert_eq!(rows[0].ports[0].host, 15432);
}

#[test]
fn prometheus_config_lists_every_replica() {
    let text = r#"
name = "shop"
[components.api]
image = "api"
replicas = 2
metrics = { port = 8080 }
[components.prometheus]
image = "prom"
prometheus_config = "PROM_CONFIG"
"#;
    let rt = FakeRuntime::new("shop");
    let p = project(&rt, text);
    let cfg = p.prometheus_config();
    assert!(
        cfg.contains("'shop-api-1:8080', 'shop-api-2:8080'"),
        "{cfg}"
    );
    let spec = p.spec(&p.stack.components["prometheus"], 1, "sha256:prom");
    assert!(spec
        .env
        .iter()
        .any(|e| e.starts_with("PROM_CONFIG=global:")));
}

#[test]
fn spec_follows_naming_and_labels() {
    let rt = FakeRuntime::new("shop");
    let p = project(&rt, STACK);
    let spec = p.spec(&p.stack.components["db"], 1, "sha256:db");
    assert_eq!(spec.name, "shop-db-1");
    assert_eq!(spec.network, "shop-net");
    assert_eq!(spec.aliases, vec!["db"]);
    assert_eq!(
        spec.volumes,
        vec![("shop-db-data".to_string(), "/data".to_string())]
    );
    assert_eq!(spec.labels["io.msctl.project"], "shop");
    assert_eq!(spec.labels["io.msctl.component"], "db");
    assert_eq!(spec.labels["io.msctl.replica"], "1");
    let other = p.spec(&p.stack.components["db"], 1, "sha256:rebuilt");
    assert_ne!(
        spec.labels["io.msctl.config-hash"], other.labels["io.msctl.config-hash"],
        "a rebuilt image must change the hash"
    );
}

// Regression: every `msctl up`, even one with nothing to do, ran `cargo build` and hashed
// every service binary (hundreds of MB) to re-check images the engine already had.
#[tokio::test(start_paused = true)]
async fn up_without_image_checks_builds_only_missing_images() {
    let rt = FakeRuntime::new("shop");
    let p = project(&rt, STACK);
    let builds = || {
        rt.world
            .lock()
            .expect("lock")
            .builds
            .iter()
            .filter(|l| l.starts_with("build "))
            .count()
    };
    let cli = UpOptions {
        check_images: false,
        ..opts()
    };
    p.up(&cli, &silent()).await.expect("first up");
    assert_eq!(builds(), 4, "the four missing images are built");
    let report = p.up(&cli, &silent()).await.expect("second up");
    assert_eq!(builds(), 4, "existing images are used as they are");
    assert!(report
        .components
        .iter()
        .all(|(_, actions)| actions.iter().all(|a| matches!(a, Action::Keep { .. }))));
    // The library default (`msctl test`) and a forced build still go through the builder.
    p.up(&opts(), &silent()).await.expect("checked up");
    assert_eq!(builds(), 8);
    let forced = UpOptions {
        build: ImageBuild {
            offline: false,
            force: true,
        },
        ..cli
    };
    p.up(&forced, &silent()).await.expect("forced up");
    assert_eq!(builds(), 12);
}
