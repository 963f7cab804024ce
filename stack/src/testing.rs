//! A test helper that boots a subset of the default stack (e.g. postgres + redis) on the
//! real engine, so service and harness tests talk to real PostgreSQL, Redis and RabbitMQ.
//!
//! Every test binary shares one project, `msctl-test`: `up` is idempotent, so whoever comes
//! first creates the containers and the rest find them healthy. A file lock serialises
//! concurrent boots from parallel test processes. The containers are left running between
//! test runs (fast reruns); `msctl -p msctl-test down --volumes` removes them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::docker::DockerRuntime;
use crate::model::Stack;
use crate::orchestrator::{Project, UpOptions};
use crate::runtime::Runtime;

/// A test that needs what this machine lacks (an engine, an image, tmux): outside CI it
/// says so on stderr and the caller returns; under `CI=true` (any value but empty, `0` or
/// `false`) it fails the test instead, so a CI run can never pass by not running it.
pub fn cannot_run(test: &str, why: &str) {
    let ci = std::env::var("CI")
        .map(|v| !matches!(v.trim(), "" | "0" | "false"))
        .unwrap_or(false);
    decide(ci, test, why);
}

fn decide(ci: bool, test: &str, why: &str) {
    if ci {
        panic!("{test} cannot run under CI: {why}");
    }
    eprintln!("{test} not run (outside CI this is allowed): {why}");
}

/// The project every test shares.
pub const TEST_PROJECT: &str = "msctl-test";

/// Credentials the default stack gives PostgreSQL and RabbitMQ.
pub const USER: &str = "msctl";
/// Password for [`USER`].
pub const PASSWORD: &str = "msctl";

/// Running infrastructure and its 127.0.0.1 ports.
#[derive(Debug, Clone)]
pub struct TestInfra {
    ports: HashMap<(String, u16), u16>,
}

/// Why the infrastructure could not be booted.
#[derive(Debug, thiserror::Error)]
#[error("cannot boot test infrastructure: {0}")]
pub struct TestInfraError(pub String);

/// The repository root: the nearest ancestor of `start` holding `stack.toml`.
pub fn repo_root(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|d| d.join("stack.toml").is_file() && d.join("Cargo.toml").is_file())
        .map(Path::to_path_buf)
}

impl TestInfra {
    /// Boots `components` of the repository's stack.toml (and their dependencies) under
    /// [`TEST_PROJECT`], waits until healthy, and returns their ports. `manifest_dir` is the
    /// caller's `env!("CARGO_MANIFEST_DIR")`.
    pub async fn boot(manifest_dir: &str, components: &[&str]) -> Result<Self, TestInfraError> {
        let err = |e: String| TestInfraError(e);
        let root = repo_root(Path::new(manifest_dir))
            .ok_or_else(|| err(format!("no stack.toml above {manifest_dir}")))?;
        let stack = Stack::load(&root.join("stack.toml")).map_err(|e| err(e.to_string()))?;
        let docker = crate::engine::connect()
            .await
            .map_err(|e| err(e.to_string()))?;
        let runtime: Arc<dyn Runtime> = Arc::new(DockerRuntime::new(docker, TEST_PROJECT));
        let project = Project::new(stack, runtime);

        // Serialise boots across test processes.
        let lock_path = std::env::temp_dir().join("msctl-test-infra.lock");
        let lock = std::fs::File::create(&lock_path)
            .map_err(|e| err(format!("{}: {e}", lock_path.display())))?;
        let lock = tokio::task::spawn_blocking(move || lock.lock().map(|_| lock))
            .await
            .map_err(|e| err(e.to_string()))?
            .map_err(|e| err(format!("lock {}: {e}", lock_path.display())))?;

        let opts = UpOptions {
            components: components.iter().map(|c| c.to_string()).collect(),
            timeout: Duration::from_secs(600),
            ..Default::default()
        };
        let result = project
            .up(&opts, &crate::progress::silent())
            .await
            .map_err(|e| err(e.to_string()));
        drop(lock);
        result?;

        let mut ports = HashMap::new();
        for row in project.ps().await.map_err(|e| err(e.to_string()))? {
            for p in row.ports {
                ports.insert((row.component.clone(), p.container), p.host);
            }
        }
        Ok(Self { ports })
    }

    /// Host port on 127.0.0.1 for a component's container port.
    pub fn port(&self, component: &str, container_port: u16) -> Option<u16> {
        self.ports
            .get(&(component.to_string(), container_port))
            .copied()
    }

    /// `postgres://msctl:msctl@127.0.0.1:PORT/<database>`.
    pub fn postgres_url(&self, database: &str) -> Option<String> {
        self.port("postgres", 5432)
            .map(|p| format!("postgres://{USER}:{PASSWORD}@127.0.0.1:{p}/{database}"))
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn redis_url(&self) -> Option<String> {
        self.port("redis", 6379)
            .map(|p| format!("redis://127.0.0.1:{p}"))
    }

    /// `amqp://msctl:msctl@127.0.0.1:PORT/%2f`.
    pub fn amqp_url(&self) -> Option<String> {
        self.port("rabbitmq", 5672)
            .map(|p| format!("amqp://{USER}:{PASSWORD}@127.0.0.1:{p}/%2f"))
    }
}

#[cfg(test)]
mod cannot_run_tests {
    use super::decide;

    // Pins the CI rule: a missing engine fails a test under CI instead of passing it.
    #[test]
    #[should_panic(expected = "cannot run under CI: no Docker engine")]
    fn under_ci_a_test_that_cannot_run_fails() {
        decide(true, "some_e2e_test", "no Docker engine");
    }

    #[test]
    fn outside_ci_it_only_says_so() {
        decide(false, "some_e2e_test", "no Docker engine");
    }
}
