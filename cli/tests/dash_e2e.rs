//! `msctl dash` end to end: the real binary in a tmux pane against a running stack. The
//! test reads the screen with `tmux capture-pane`, selects product-service#2 with the
//! arrow keys, kills it with `k` + `y`, and waits (polling with a deadline, no fixed
//! sleeps) until the components panel shows it exited and the gateway upstreams panel
//! shows its breaker change; then `h` heals and the replica comes back.
//!
//! It needs a stack that is already up with product-service (2 replicas) and the gateway:
//! by default the project `msctl` of the repository's stack.toml (`msctl up`); another
//! with `MSCTL_DASH_E2E_PROJECT`. It sends GET /api/v1/products through the gateway's
//! 127.0.0.1 port during the test so the gateway has traffic to trip a breaker on. When
//! tmux, the engine or the stack is missing it says why and returns; under CI it fails.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

fn stack_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../stack.toml")
}

fn project() -> String {
    std::env::var("MSCTL_DASH_E2E_PROJECT").unwrap_or_else(|_| "msctl".to_string())
}

fn msctl(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_msctl"))
        .arg("--file")
        .arg(stack_file())
        .arg("--project")
        .arg(project())
        .args(args)
        .output()
        .expect("run msctl")
}

/// `msctl ps --output json`, or why not.
fn ps() -> Result<Vec<Value>, String> {
    let out = msctl(&["ps", "--output", "json"]);
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    serde_json::from_slice::<Vec<Value>>(&out.stdout).map_err(|e| e.to_string())
}

fn host_port(rows: &[Value], component: &str) -> Option<u16> {
    rows.iter()
        .find(|r| r["component"] == component && r["state"] == "running")
        .and_then(|r| r["ports"][0]["host"].as_u64())
        .and_then(|p| u16::try_from(p).ok())
}

/// A tmux session running `msctl dash`; killed on drop, and the stack healed.
struct Dash {
    session: String,
    file: PathBuf,
    project: String,
}

impl Dash {
    fn start(file: PathBuf, project: String, width: u16, height: u16) -> Self {
        let session = format!("msctl-dash-e2e-{project}-{}", std::process::id());
        let cmd = format!(
            "{} --file {} --project {project} dash 2> /tmp/{session}.stderr",
            env!("CARGO_BIN_EXE_msctl"),
            file.display(),
        );
        let ok = Command::new("tmux")
            .args(["new-session", "-d", "-s", &session])
            .args(["-x", &width.to_string(), "-y", &height.to_string()])
            .arg(cmd)
            .status()
            .expect("tmux")
            .success();
        assert!(ok, "tmux new-session failed");
        Self {
            session,
            file,
            project,
        }
    }

    /// The screen as text (`escapes` keeps colours and reverse video).
    fn screen(&self, escapes: bool) -> String {
        let mut args = vec!["capture-pane", "-p", "-t", &self.session];
        if escapes {
            args.push("-e");
        }
        let out = Command::new("tmux").args(&args).output().expect("tmux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        for k in keys {
            let ok = Command::new("tmux")
                .args(["send-keys", "-t", &self.session, k])
                .status()
                .expect("tmux")
                .success();
            assert!(ok, "send-keys {k}");
        }
    }

    /// Polls the screen until `check` holds; panics with the last screen at the deadline.
    fn wait_for(&self, what: &str, timeout: Duration, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.screen(false);
            if check(&s) {
                return s;
            }
            if Instant::now() > deadline {
                panic!("timed out after {timeout:?} waiting for {what}; screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Moves the selection (it starts on the top row) down until `target`'s row is shown
    /// in reverse video.
    fn select(&self, target: &str) {
        for _ in 0..20 {
            let raw = self.screen(true);
            if raw
                .lines()
                .any(|l| l.contains(target) && l.contains("\u{1b}[7m"))
            {
                return;
            }
            self.keys(&["Down"]);
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("could not select {target}:\n{}", self.screen(false));
    }

    fn alive(&self) -> bool {
        Command::new("tmux")
            .args(["has-session", "-t", &self.session])
            .stderr(std::process::Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }
}

impl Drop for Dash {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.session])
            .stderr(std::process::Stdio::null())
            .status();
        let _ = Command::new(env!("CARGO_BIN_EXE_msctl"))
            .arg("--file")
            .arg(&self.file)
            .args(["--project", &self.project, "chaos", "heal"])
            .output();
    }
}

/// The line of the components panel for `target`.
fn row<'a>(screen: &'a str, target: &str) -> Option<&'a str> {
    screen
        .lines()
        .find(|l| l.contains(&format!("│{target} ")) || l.contains(&format!("{target} ")))
}

/// Instance lines of product-service in the upstreams panel (left half of the screen).
fn product_instances(screen: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in screen.lines() {
        let left: String = line.chars().take(line.chars().count() / 2).collect();
        if left.contains("product-service") && !left.contains('#') {
            inside = true;
            continue;
        }
        if inside {
            let t = left.trim_start_matches(['│', ' ']);
            if left.contains(" ej ") {
                out.push(t.to_string());
            } else {
                inside = false;
            }
        }
    }
    out
}

/// One HTTP/1.1 request to 127.0.0.1:`port`; the raw answer.
fn http(port: u16, method: &str, path: &str, body: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("send");
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// GETs the product list through the gateway until stopped, so breakers see traffic.
fn traffic(port: u16, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut sent = 0;
        while !stop.load(Ordering::Relaxed) {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = s.write_all(
                    b"GET /api/v1/products HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                );
                let mut buf = Vec::new();
                let _ = s.read_to_end(&mut buf);
                sent += 1;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        sent
    })
}

#[test]
fn dash_kill_shows_the_replica_down_and_the_breaker_change_then_heals() {
    const TEST: &str = "dash_kill_shows_the_replica_down_and_the_breaker_change_then_heals";
    if Command::new("tmux").arg("-V").output().is_err() {
        msctl_stack::testing::cannot_run(TEST, "tmux is not installed");
        return;
    }
    let rows = match ps() {
        Ok(r) => r,
        Err(e) => {
            msctl_stack::testing::cannot_run(TEST, &format!("msctl ps failed: {e}"));
            return;
        }
    };
    let product2 = rows.iter().any(|r| {
        r["component"] == "product-service" && r["replica"] == 2 && r["state"] == "running"
    });
    let Some(gateway) = host_port(&rows, "gateway").filter(|_| product2) else {
        // The real-stack test must see the stack it was promised; a missing one is not a pass.
        msctl_stack::testing::cannot_run(
            TEST,
            &format!(
                "project {} has no running gateway and product-service#2; `msctl up` first",
                project()
            ),
        );
        return;
    };

    let stop = Arc::new(AtomicBool::new(false));
    let load = traffic(gateway, stop.clone());
    let dash = Dash::start(stack_file(), project(), 120, 40);

    // The stack appears, and the gateway has used both product instances.
    dash.wait_for(
        "both product replicas running",
        Duration::from_secs(60),
        |s| {
            row(s, "product-service#2").is_some_and(|l| l.contains("running"))
                && row(s, "product-service#1").is_some_and(|l| l.contains("running"))
        },
    );
    dash.wait_for(
        "two closed product instances",
        Duration::from_secs(60),
        |s| {
            let i = product_instances(s);
            i.len() == 2 && i.iter().all(|l| l.contains("closed"))
        },
    );

    // Select product-service#2: it starts at the top row; step down until it is reversed.
    let mut selected = false;
    for _ in 0..20 {
        let raw = dash.screen(true);
        if raw
            .lines()
            .any(|l| l.contains("product-service#2") && l.contains("\u{1b}[7m"))
        {
            selected = true;
            break;
        }
        dash.keys(&["Down"]);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        selected,
        "could not select product-service#2:\n{}",
        dash.screen(false)
    );

    dash.keys(&["k"]);
    dash.wait_for("the kill confirmation", Duration::from_secs(10), |s| {
        s.contains("kill product-service#2 (SIGKILL)?")
    });
    dash.keys(&["y"]);
    let killed_at = Instant::now();
    let s = dash.wait_for("product-service#2 exited", Duration::from_secs(60), |s| {
        row(s, "product-service#2").is_some_and(|l| l.contains("exited"))
    });
    println!(
        "state change seen after {:.1}s:\n{}",
        killed_at.elapsed().as_secs_f64(),
        row(&s, "product-service#2").unwrap_or_default()
    );
    // The breaker of the dead instance opens (or, once the registry dropped it, the
    // gateway has one instance left): either way the upstreams panel changes.
    let s = dash.wait_for("the product breaker change", Duration::from_secs(60), |s| {
        let i = product_instances(s);
        i.iter().any(|l| l.contains("open")) || i.len() == 1
    });
    println!(
        "breaker change seen after {:.1}s: {:?}",
        killed_at.elapsed().as_secs_f64(),
        product_instances(&s)
    );
    assert!(
        s.contains("kill SIGKILL product-service#2"),
        "fault panel:\n{s}"
    );

    dash.keys(&["h"]);
    let s = dash.wait_for("product-service#2 back", Duration::from_secs(180), |s| {
        row(s, "product-service#2").is_some_and(|l| l.contains("running"))
            && s.contains("faults (0)")
    });
    println!("healed after {:.1}s", killed_at.elapsed().as_secs_f64());
    drop(s);

    dash.keys(&["q"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while dash.alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!dash.alive(), "q did not end msctl dash");
    stop.store(true, Ordering::Relaxed);
    let sent = load.join().unwrap_or(0);
    println!("{sent} requests sent through the gateway during the test");
}

/// A small project of its own (images only, nothing built): `up`, then `down --volumes`
/// on drop.
struct Isolated {
    dir: tempfile::TempDir,
}

const ISOLATED: &str = "msctl-dash-test";

impl Isolated {
    fn file(&self) -> PathBuf {
        self.dir.path().join("stack.toml")
    }
    fn msctl(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_msctl"))
            .arg("--file")
            .arg(self.file())
            .args(["--project", ISOLATED])
            .args(args)
            .output()
            .expect("run msctl")
    }
}

impl Drop for Isolated {
    fn drop(&mut self) {
        let _ = self.msctl(&["down", "--volumes"]);
    }
}

/// The same keys on a project this test owns, built from images the default stack builds
/// (redis, registry, gateway), so it runs where the business services are not up. Two
/// replicas of a `stand-in` component (the registry binary: it answers 404 to
/// /api/v1/products, which a breaker does not count as a failure) are registered by hand
/// as `product-service` instances (no health URL, long TTL, so the registry keeps the dead
/// one); with traffic through the gateway, killing stand-in#2 from the dashboard must show
/// it exited and its breaker open, and `h` must bring it back.
#[test]
fn dash_kill_and_heal_on_an_isolated_project() {
    if Command::new("tmux").arg("-V").output().is_err() {
        msctl_stack::testing::cannot_run(
            "dash_kill_and_heal_on_an_isolated_project",
            "tmux is not installed",
        );
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("stack.toml"),
        r#"name = "msctl-dash-test"

[components.redis]
image = "msctl/redis:dev"
ports = ["6379"]
health = { command = ["redis-cli", "ping"], interval = "1s", timeout = "3s", retries = 60 }

[components.registry]
image = "msctl/services:dev"
command = ["registry"]
environment = { PORT = "8500", RUST_LOG = "info", ADMIN_TOKEN = "msctl-admin" }
ports = ["8500"]
metrics = { port = 8500 }
health = { http = "/health", port = 8500, interval = "1s", timeout = "2s", retries = 30 }

[components.gateway]
image = "msctl/services:dev"
command = ["gateway"]
environment = { SERVICE_NAME = "gateway", PORT = "8080", REGISTRY_URL = "http://registry:8500", ADMIN_TOKEN = "msctl-admin", JWT_SECRET = "dash-test-secret", JWT_ISSUER = "msctl", RUST_LOG = "info" }
ports = ["8080"]
depends_on = { registry = "healthy" }
metrics = { port = 8080 }
health = { http = "/health", port = 8080, interval = "1s", timeout = "2s", retries = 30 }

[components.stand-in]
image = "msctl/services:dev"
command = ["registry"]
environment = { PORT = "8500", RUST_LOG = "info", ADMIN_TOKEN = "msctl-admin" }
replicas = 2
ports = ["8500"]
health = { http = "/health", port = 8500, interval = "1s", timeout = "2s", retries = 30 }
"#,
    )
    .expect("write stack");
    let env = Isolated { dir };
    let up = env.msctl(&["up", "--timeout", "5m"]);
    if !up.status.success() {
        let err = String::from_utf8_lossy(&up.stderr);
        if up.status.code() == Some(3) || err.contains("No such image") || err.contains("not found")
        {
            msctl_stack::testing::cannot_run(
                "dash_kill_and_heal_on_an_isolated_project",
                &format!("cannot boot the test project: {}", err.trim()),
            );
            return;
        }
        panic!("up failed: {err}");
    }
    let out = env.msctl(&["ps", "--output", "json"]);
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).expect("ps json");
    let registry = host_port(&rows, "registry").expect("registry port");
    let gateway = host_port(&rows, "gateway").expect("gateway port");
    for n in 1..=2 {
        let body = format!(
            r#"{{"service":"product-service","id":"stand-in-{n}","address":"{ISOLATED}-stand-in-{n}","port":8500,"ttl_ms":600000}}"#
        );
        let answer = http(registry, "PUT", "/v1/instances", &body);
        assert!(answer.starts_with("HTTP/1.1 200"), "register: {answer}");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let load = traffic(gateway, stop.clone());

    let dash = Dash::start(env.file(), ISOLATED.to_string(), 80, 24);
    dash.wait_for(
        "both stand-ins running and closed behind the gateway",
        Duration::from_secs(60),
        |s| {
            let i = product_instances(s);
            row(s, "stand-in#2").is_some_and(|l| l.contains("running"))
                && i.len() == 2
                && i.iter().all(|l| l.contains("closed"))
        },
    );
    dash.select("stand-in#2");
    dash.keys(&["k"]);
    dash.wait_for("the kill confirmation", Duration::from_secs(10), |s| {
        s.contains("kill stand-in#2 (SIGKILL)?")
    });
    dash.keys(&["y"]);
    let t0 = Instant::now();
    let s = dash.wait_for(
        "stand-in#2 exited and its fault listed",
        Duration::from_secs(60),
        |s| {
            row(s, "stand-in#2").is_some_and(|l| l.contains("exited"))
                && s.contains("kill SIGKILL stand-in#2")
        },
    );
    println!(
        "kill seen after {:.1}s: {}",
        t0.elapsed().as_secs_f64(),
        row(&s, "stand-in#2").unwrap_or_default()
    );
    let s = dash.wait_for(
        "the stand-in#2 breaker open",
        Duration::from_secs(60),
        |s| {
            product_instances(s)
                .iter()
                .any(|l| l.contains("stand-in-2") && l.contains("open"))
        },
    );
    println!(
        "breaker open seen after {:.1}s:\n{s}",
        t0.elapsed().as_secs_f64()
    );
    dash.keys(&["h"]);
    dash.wait_for(
        "stand-in#2 back and no faults",
        Duration::from_secs(120),
        |s| row(s, "stand-in#2").is_some_and(|l| l.contains("running")) && s.contains("faults (0)"),
    );
    println!("healed after {:.1}s", t0.elapsed().as_secs_f64());
    stop.store(true, Ordering::Relaxed);
    let sent = load.join().unwrap_or(0);
    println!("{sent} requests sent through the gateway");
    dash.keys(&["q"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while dash.alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!dash.alive(), "q did not end msctl dash");
}
