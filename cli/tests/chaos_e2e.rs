//! `msctl chaos` end to end against the real Docker engine: every fault kind takes effect
//! (seen from the host through 127.0.0.1 ports and from peer containers with `docker exec`)
//! and heal brings the stack back to healthy; a SIGKILLed msctl leaves its timed fault for
//! `chaos heal`; unlabeled containers cannot be targeted.
//!
//! The tests use their own stack file (in a temporary folder, so the fault ledger lands
//! there too) naming the images the default stack builds, and their own project names;
//! each brings its project down with `--volumes` at the end. When no engine is reachable,
//! or the images are not built, they say why and return — except under CI, where they fail.
//!
//! Apply and heal times are printed as a table (run with `--nocapture` to see it).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

/// One engine test at a time: they share two cores, and timings are part of the output.
static ENGINE: Mutex<()> = Mutex::new(());

const SERVICES_IMAGE: &str = "msctl/services:dev";

/// The default stack's definitions of the components these tests need, by image tag only
/// (no recipes), so nothing is built here.
fn stack_text(name: &str, with_registry: bool) -> String {
    let mut s = format!(
        r#"name = "{name}"

[components.postgres]
image = "msctl/postgres:dev"
environment = {{ POSTGRES_USER = "msctl", POSTGRES_PASSWORD = "msctl", POSTGRES_DB = "msctl" }}
ports = ["5432"]
volumes = {{ data = "/var/lib/postgresql/data" }}
health = {{ command = ["pg_isready", "-h", "127.0.0.1", "-U", "msctl"], interval = "1s", timeout = "3s", retries = 60 }}

[components.redis]
image = "msctl/redis:dev"
ports = ["6379"]
health = {{ command = ["redis-cli", "ping"], interval = "1s", timeout = "3s", retries = 60 }}

[components.prometheus]
image = "msctl/prometheus:dev"
ports = ["9090"]
prometheus_config = "MSCTL_PROMETHEUS_CONFIG"
health = {{ http = "/-/ready", port = 9090, interval = "1s", timeout = "3s", retries = 60 }}
"#
    );
    if with_registry {
        s.push_str(
            r#"
[components.registry]
image = "msctl/services:dev"
command = ["registry"]
environment = { PORT = "8500", RUST_LOG = "info", ADMIN_TOKEN = "msctl-admin" }
ports = ["8500"]
health = { http = "/health", port = 8500, interval = "1s", timeout = "2s", retries = 30 }
"#,
        );
    }
    s
}

/// A project on the engine for one test; `down --volumes` on drop, even after a failure.
struct Env {
    dir: tempfile::TempDir,
    project: &'static str,
}

impl Env {
    fn file(&self) -> PathBuf {
        self.dir.path().join("stack.toml")
    }

    fn msctl(&self, args: &[&str]) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_msctl"))
            .arg("--file")
            .arg(self.file())
            .args(["--project", self.project])
            .args(args)
            .output()
            .expect("run msctl");
        // Listings are polled; only their failures are worth a line.
        let listing = args.first() == Some(&"ps") || args.get(1) == Some(&"list");
        if listing && out.status.success() {
            return out;
        }
        eprintln!(
            "$ msctl {} -> {:?}\n{}{}",
            args.join(" "),
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn msctl_ok(&self, args: &[&str]) -> String {
        let out = self.msctl(args);
        assert!(out.status.success(), "msctl {} failed", args.join(" "));
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    fn container(&self, component: &str) -> String {
        format!("{}-{component}-1", self.project)
    }

    fn ps(&self) -> Vec<Value> {
        let v: Value =
            serde_json::from_str(&self.msctl_ok(&["ps", "--output", "json"])).expect("ps json");
        v.as_array().cloned().unwrap_or_default()
    }

    fn row(&self, component: &str) -> Value {
        self.ps()
            .into_iter()
            .find(|r| r["component"] == component)
            .unwrap_or_else(|| panic!("no row for {component}"))
    }

    /// The 127.0.0.1 port of a component's container port, read fresh: a container that
    /// was started again (kill, stop) or reconnected (partition) gets a new ephemeral port.
    fn port(&self, component: &str, container: u16) -> u16 {
        self.row(component)["ports"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["container"] == container))
            .and_then(|p| p["host"].as_u64())
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or_else(|| panic!("no host port for {component}:{container}"))
    }

    fn all_healthy(&self) -> bool {
        self.ps()
            .iter()
            .all(|r| r["state"] == "running" && r["health"] == "healthy")
    }

    fn active_faults(&self) -> Vec<Value> {
        serde_json::from_str::<Value>(&self.msctl_ok(&["chaos", "list", "--output", "json"]))
            .expect("list json")
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    fn helpers(&self) -> String {
        docker(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=io.msctl.project={}", self.project),
            "--filter",
            "label=io.msctl.role=chaos",
        ])
    }

    /// `docker exec` in `from`'s container: can it open a TCP connection to `host:port`?
    fn reaches(&self, from: &str, host: &str, port: u16) -> bool {
        Command::new("docker")
            .args(["exec", &self.container(from), "timeout", "3", "bash", "-c"])
            .arg(format!("exec 3<>/dev/tcp/{host}/{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = self.msctl(&["chaos", "heal", "--timeout", "30s"]);
        let _ = self.msctl(&["down", "--volumes"]);
    }
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("docker cli");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn image_exists(tag: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", tag])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Sets up a project, or says why the test is skipped.
fn setup(project: &'static str, with_registry: bool) -> Result<Env, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    std::fs::write(
        dir.path().join("stack.toml"),
        stack_text(project, with_registry),
    )
    .map_err(|e| e.to_string())?;
    let env = Env { dir, project };
    let out = env.msctl(&["ps"]);
    if out.status.code() == Some(3) {
        // Nothing to clean up on an unreachable engine.
        std::mem::forget(env);
        return Err(format!(
            "no Docker engine is reachable: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    for image in [
        "msctl/base:bookworm",
        "msctl/postgres:dev",
        "msctl/redis:dev",
        "msctl/prometheus:dev",
    ] {
        if !image_exists(image) {
            return Err(format!(
                "image {image} is not built; run `msctl images build` first"
            ));
        }
    }
    Ok(env)
}

/// A Redis PING through the published port; the round trip, or why it failed.
fn ping(port: u16, timeout: Duration) -> Result<Duration, String> {
    let started = Instant::now();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(timeout)).ok();
    s.set_nodelay(true).ok();
    s.write_all(b"PING\r\n").map_err(|e| e.to_string())?;
    let mut buf = [0u8; 16];
    let n = s.read(&mut buf).map_err(|e| e.to_string())?;
    let answer = String::from_utf8_lossy(&buf[..n]).trim().to_string();
    if answer == "+PONG" {
        Ok(started.elapsed())
    } else {
        Err(format!("answered {answer:?}"))
    }
}

/// Median PING round trip on one connection (setup excluded).
fn ping_median(port: u16, n: usize) -> Result<Duration, String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    s.set_nodelay(true).ok();
    let mut rtts = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        s.write_all(b"PING\r\n").map_err(|e| e.to_string())?;
        let mut buf = [0u8; 16];
        let k = s.read(&mut buf).map_err(|e| e.to_string())?;
        if &buf[..k] != b"+PONG\r\n" {
            return Err(format!("answered {:?}", String::from_utf8_lossy(&buf[..k])));
        }
        rtts.push(t.elapsed());
    }
    rtts.sort();
    Ok(rtts[rtts.len() / 2])
}

/// Polls `check` until it holds or `within` passes.
fn eventually(within: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    loop {
        if check() {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A minimal HTTP/1.0 GET on 127.0.0.1: (status line, head, elapsed).
fn http_get(port: u16, path: &str) -> (String, String, Duration) {
    let started = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").expect("write");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read");
    let head = resp.split("\r\n\r\n").next().unwrap_or("").to_string();
    (
        head.lines().next().unwrap_or("").to_string(),
        head.to_ascii_lowercase(),
        started.elapsed(),
    )
}

/// Apply and heal times, printed at the end.
#[derive(Default)]
struct Timings(Vec<(String, String, String)>);

impl Timings {
    fn add(&mut self, fault: &str, apply: String, heal: String) {
        self.0.push((fault.to_string(), apply, heal));
    }
    fn print(&self) {
        println!("\n{:<40} {:<10} heal (until ready)", "fault", "apply");
        for (f, a, h) in &self.0 {
            println!("{f:<40} {a:<10} {h}");
        }
    }
}

fn secs(v: &Value, key: &str) -> String {
    v[key]
        .as_f64()
        .map_or("-".to_string(), |s| format!("{s:.2}s"))
}

/// Applies a fault through the CLI with `--output json`; the `applied` event.
fn apply(env: &Env, args: &[&str]) -> Value {
    let mut all = vec!["chaos"];
    all.extend_from_slice(args);
    all.extend(["--output", "json"]);
    let text = env.msctl_ok(&all);
    serde_json::from_str(text.lines().next().unwrap_or("")).expect("applied json")
}

/// Heals through the CLI; the single healed event.
fn heal(env: &Env) -> Value {
    let v: Value = serde_json::from_str(&env.msctl_ok(&["chaos", "heal", "--output", "json"]))
        .expect("heal json");
    assert_eq!(v["failed"], serde_json::json!([]), "{v}");
    let healed = v["healed"].as_array().cloned().unwrap_or_default();
    assert_eq!(healed.len(), 1, "{v}");
    healed[0].clone()
}

fn after_heal(env: &Env) {
    assert!(env.all_healthy(), "the stack is not healthy after heal");
    assert!(env.active_faults().is_empty(), "faults left in the ledger");
    assert_eq!(env.helpers(), "", "chaos helper containers left behind");
}

#[test]
fn every_fault_kind_takes_effect_and_heal_restores_the_stack() {
    let _one = ENGINE.lock().unwrap_or_else(|e| e.into_inner());
    let with_registry = image_exists(SERVICES_IMAGE);
    let env = match setup("msctl-chaos-test", with_registry) {
        Ok(env) => env,
        Err(why) => {
            msctl_stack::testing::cannot_run(module_path!(), &why);
            return;
        }
    };
    env.msctl_ok(&["down", "--volumes"]);
    env.msctl_ok(&["up", "--timeout", "5m"]);
    assert!(env.all_healthy());
    let mut t = Timings::default();

    // kill: the container exits with the signal; heal starts it.
    let a = apply(&env, &["kill", "redis"]);
    let row = env.row("redis");
    assert_eq!(row["state"], "exited", "{row}");
    assert_eq!(row["exit_code"], 137, "{row}");
    let h = heal(&env);
    after_heal(&env);
    ping(env.port("redis", 6379), Duration::from_secs(5)).expect("redis answers after heal");
    t.add(
        "kill redis (SIGKILL)",
        secs(&a, "apply_secs"),
        secs(&h, "heal_secs"),
    );

    // kill with another signal.
    let a = apply(&env, &["kill", "redis", "--signal", "SIGTERM"]);
    eventually(Duration::from_secs(15), "redis exits on SIGTERM", || {
        env.row("redis")["state"] == "exited"
    });
    let h = heal(&env);
    after_heal(&env);
    t.add(
        "kill redis (SIGTERM)",
        secs(&a, "apply_secs"),
        secs(&h, "heal_secs"),
    );

    // stop: exited; heal starts it; postgres answers again.
    let a = apply(&env, &["stop", "postgres"]);
    assert_eq!(env.row("postgres")["state"], "exited");
    let h = heal(&env);
    after_heal(&env);
    let pg = env.port("postgres", 5432);
    TcpStream::connect(("127.0.0.1", pg)).expect("postgres accepts after heal");
    t.add(
        "stop postgres",
        secs(&a, "apply_secs"),
        secs(&h, "heal_secs"),
    );

    // restart: one shot, nothing left in the ledger; redis answers again.
    let started = Instant::now();
    let a = apply(&env, &["restart", "redis"]);
    assert!(env.active_faults().is_empty());
    eventually(
        Duration::from_secs(60),
        "redis healthy after restart",
        || env.all_healthy(),
    );
    let ready = started.elapsed();
    let uptime = env.row("redis")["uptime_secs"].as_u64().unwrap_or(u64::MAX);
    assert!(uptime <= ready.as_secs() + 1, "not restarted: up {uptime}s");
    ping(env.port("redis", 6379), Duration::from_secs(5)).expect("redis answers after restart");
    t.add(
        "restart redis",
        secs(&a, "apply_secs"),
        format!("(healthy {:.2}s after the call)", ready.as_secs_f64()),
    );

    // pause: frozen, a PING through the published port gets no answer; heal unpauses.
    let a = apply(&env, &["pause", "redis"]);
    assert_eq!(env.row("redis")["state"], "paused");
    assert!(ping(env.port("redis", 6379), Duration::from_secs(1)).is_err());
    let h = heal(&env);
    after_heal(&env);
    ping(env.port("redis", 6379), Duration::from_secs(5)).expect("redis answers after heal");
    t.add("pause redis", secs(&a, "apply_secs"), secs(&h, "heal_secs"));

    // partition: off the network; peers can neither resolve nor reach it. Heal reconnects
    // with the alias, so `redis` resolves again.
    assert!(env.reaches("postgres", "redis", 6379));
    let a = apply(&env, &["partition", "redis"]);
    assert!(!env.reaches("postgres", "redis", 6379));
    assert!(!env.reaches("prometheus", "redis", 6379));
    assert!(env.reaches("prometheus", "postgres", 5432));
    let h = heal(&env);
    after_heal(&env);
    assert!(env.reaches("postgres", "redis", 6379));
    t.add(
        "partition redis",
        secs(&a, "apply_secs"),
        secs(&h, "heal_secs"),
    );

    // Named partition: redis and postgres lose each other, both still reach prometheus
    // and are reached by it.
    let a = apply(&env, &["partition", "redis", "--from", "postgres"]);
    assert!(!env.reaches("postgres", "redis", 6379));
    assert!(!env.reaches("redis", "postgres", 5432));
    assert!(env.reaches("prometheus", "redis", 6379));
    assert!(env.reaches("prometheus", "postgres", 5432));
    assert!(env.reaches("redis", "prometheus", 9090));
    assert!(env.reaches("postgres", "prometheus", 9090));
    let h = heal(&env);
    after_heal(&env);
    assert!(env.reaches("postgres", "redis", 6379));
    assert!(env.reaches("redis", "postgres", 5432));
    t.add(
        "partition redis --from postgres",
        secs(&a, "apply_secs"),
        secs(&h, "heal_secs"),
    );

    // latency: the PING round trip through the published port grows by the delay, or
    // the engine's kernel has no netem and the fault is refused cleanly.
    let port = env.port("redis", 6379);
    let base = ping_median(port, 7).expect("baseline ping");
    let out = env.msctl(&[
        "chaos", "latency", "redis", "--delay", "200ms", "--jitter", "10ms", "--output", "json",
    ]);
    if out.status.success() {
        let a: Value = serde_json::from_slice(&out.stdout).expect("json");
        let slow = ping_median(port, 7).expect("ping under latency");
        assert!(
            slow >= base + Duration::from_millis(150),
            "latency not in effect: {base:?} -> {slow:?}"
        );
        let h = heal(&env);
        after_heal(&env);
        let healed = ping_median(port, 7).expect("ping after heal");
        assert!(healed < base + Duration::from_millis(100), "{healed:?}");
        t.add(
            &format!("latency 200ms ({base:?} -> {slow:?})"),
            secs(&a, "apply_secs"),
            secs(&h, "heal_secs"),
        );
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("sch_netem"), "unclear refusal: {err}");
        after_heal(&env);
        ping(port, Duration::from_secs(5)).expect("redis untouched");
        t.add(
            "latency 200ms",
            "REFUSED".into(),
            "(kernel has no sch_netem)".into(),
        );
    }

    // loss: 100% so the effect is certain: no answer; heal restores it.
    let out = env.msctl(&[
        "chaos",
        "loss",
        "redis",
        "--percent",
        "100",
        "--output",
        "json",
    ]);
    if out.status.success() {
        let a: Value = serde_json::from_slice(&out.stdout).expect("json");
        assert!(ping(port, Duration::from_secs(2)).is_err());
        let h = heal(&env);
        after_heal(&env);
        ping(port, Duration::from_secs(5)).expect("redis answers after heal");
        t.add("loss 100%", secs(&a, "apply_secs"), secs(&h, "heal_secs"));
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("sch_netem"), "unclear refusal: {err}");
        after_heal(&env);
        t.add(
            "loss 100%",
            "REFUSED".into(),
            "(kernel has no sch_netem)".into(),
        );
    }

    // http-fault through the registry's admin API on its published port.
    if with_registry {
        let port = env.port("registry", 8500);
        let (status, _, _) = http_get(port, "/v1/services");
        assert!(status.contains(" 200"), "{status}");
        let a = apply(
            &env,
            &["http-fault", "registry", "--status", "503", "--path", "/v1"],
        );
        let (status, head, _) = http_get(port, "/v1/services");
        assert!(status.contains(" 503"), "{status}");
        assert!(head.contains("x-fault-injected: true"), "{head}");
        let (status, _, _) = http_get(port, "/health");
        assert!(status.contains(" 200"), "health is exempt: {status}");
        let h = heal(&env);
        after_heal(&env);
        let (status, _, _) = http_get(port, "/v1/services");
        assert!(status.contains(" 200"), "{status}");
        t.add(
            "http-fault status 503",
            secs(&a, "apply_secs"),
            secs(&h, "heal_secs"),
        );

        let (_, _, base) = http_get(port, "/v1/services");
        let a = apply(&env, &["http-fault", "registry", "--delay", "300ms"]);
        let (status, _, slow) = http_get(port, "/v1/services");
        assert!(status.contains(" 200"), "{status}");
        assert!(
            slow >= base + Duration::from_millis(250),
            "{base:?} -> {slow:?}"
        );
        let h = heal(&env);
        t.add(
            &format!(
                "http-fault delay 300ms ({:.0}ms)",
                slow.as_secs_f64() * 1000.0
            ),
            secs(&a, "apply_secs"),
            secs(&h, "heal_secs"),
        );

        let a = apply(
            &env,
            &["http-fault", "registry", "--first", "2", "--status", "500"],
        );
        let codes: Vec<String> = (0..3).map(|_| http_get(port, "/v1/services").0).collect();
        assert!(
            codes[0].contains(" 500") && codes[1].contains(" 500"),
            "{codes:?}"
        );
        assert!(codes[2].contains(" 200"), "{codes:?}");
        let h = heal(&env);
        after_heal(&env);
        t.add(
            "http-fault first 2",
            secs(&a, "apply_secs"),
            secs(&h, "heal_secs"),
        );
    } else {
        msctl_stack::testing::cannot_run(
            "chaos_e2e http-fault part",
            &format!("image {SERVICES_IMAGE} is not built"),
        );
    }

    // A timed fault reverts on its own: the command returns once it is healed.
    let started = Instant::now();
    let out = env.msctl_ok(&[
        "chaos",
        "pause",
        "redis",
        "--duration",
        "3s",
        "--output",
        "json",
    ]);
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(3), "{took:?}");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(lines[1]["event"], "healed");
    after_heal(&env);
    ping(env.port("redis", 6379), Duration::from_secs(5)).expect("redis answers");
    t.add(
        "pause redis --duration 3s",
        secs(&lines[0], "apply_secs"),
        secs(&lines[1], "heal_secs"),
    );

    t.print();
}

#[test]
fn a_killed_msctl_leaves_its_timed_fault_for_heal() {
    let _one = ENGINE.lock().unwrap_or_else(|e| e.into_inner());
    let env = match setup("msctl-chaos-crash", false) {
        Ok(env) => env,
        Err(why) => {
            msctl_stack::testing::cannot_run(module_path!(), &why);
            return;
        }
    };
    env.msctl_ok(&["down", "--volumes"]);
    env.msctl_ok(&["up", "redis", "postgres", "--timeout", "5m"]);

    for (fault, in_effect) in [
        (
            &["partition", "redis", "--from", "postgres"][..],
            Box::new(|env: &Env| !env.reaches("postgres", "redis", 6379))
                as Box<dyn Fn(&Env) -> bool>,
        ),
        (
            &["pause", "redis"][..],
            Box::new(|env: &Env| env.row("redis")["state"] == "paused"),
        ),
    ] {
        // A timed fault, in a process we kill in the middle of it.
        let mut child = Command::new(env!("CARGO_BIN_EXE_msctl"))
            .arg("--file")
            .arg(env.file())
            .args(["--project", env.project, "chaos"])
            .args(fault)
            .args(["--duration", "10m"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn msctl");
        eventually(Duration::from_secs(30), "the fault is active", || {
            env.active_faults()
                .first()
                .is_some_and(|f| f["state"] == "active")
        });
        assert!(in_effect(&env), "{fault:?} not in effect");
        // SIGKILL: no chance to revert.
        child.kill().expect("kill msctl");
        child.wait().expect("reap msctl");

        assert!(in_effect(&env), "{fault:?} must outlive its msctl");
        let faults = env.active_faults();
        assert_eq!(faults.len(), 1, "{faults:?}");
        let pid = faults[0]["pid"].as_u64().expect("pid");
        assert_eq!(pid, u64::from(child.id()));

        let h = heal(&env);
        assert_eq!(h["fault"]["id"], faults[0]["id"]);
        assert!(!in_effect(&env), "{fault:?} still in effect after heal");
        after_heal(&env);
        println!(
            "crash then heal of {}: heal {}",
            fault.join(" "),
            secs(&h, "heal_secs")
        );
    }
    assert!(env.reaches("postgres", "redis", 6379));
    ping(env.port("redis", 6379), Duration::from_secs(5)).expect("redis answers");

    // Ctrl-C (SIGINT) during a timed fault reverts it at once, before exiting.
    let child = Command::new(env!("CARGO_BIN_EXE_msctl"))
        .arg("--file")
        .arg(env.file())
        .args(["--project", env.project, "chaos", "pause", "redis"])
        .args(["--duration", "10m"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn msctl");
    eventually(Duration::from_secs(30), "the pause is active", || {
        env.active_faults()
            .first()
            .is_some_and(|f| f["state"] == "active")
    });
    let interrupted = Instant::now();
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(status.success());
    let out = child.wait_with_output().expect("wait msctl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("reverted"), "{text}");
    assert!(
        interrupted.elapsed() < Duration::from_secs(60),
        "not reverted at once"
    );
    assert!(env.active_faults().is_empty());
    assert_eq!(env.row("redis")["state"], "running");
    after_heal(&env);

    // Ctrl-C during `scenario run` reverts the faults that run applied (and only those).
    // Regression: they used to stay in the ledger until someone ran `msctl chaos heal`.
    let scenario = env.dir.path().join("pause-and-wait.toml");
    std::fs::write(
        &scenario,
        "name = \"pause-and-wait\"\n\
         [[steps]]\nname = \"pause redis\"\nchaos = { name = \"p\", fault = \"pause\", target = \"redis\" }\n\
         [[steps]]\nname = \"wait\"\nsleep = \"5m\"\n",
    )
    .expect("write scenario");
    let child = Command::new(env!("CARGO_BIN_EXE_msctl"))
        .arg("--file")
        .arg(env.file())
        .args(["--project", env.project, "scenario", "run"])
        .arg(&scenario)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn msctl");
    eventually(
        Duration::from_secs(60),
        "the scenario's pause is active",
        || {
            env.active_faults()
                .first()
                .is_some_and(|f| f["state"] == "active")
        },
    );
    assert_eq!(env.row("redis")["state"], "paused");
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(status.success());
    let out = child.wait_with_output().expect("wait msctl");
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("reverting the 1 fault(s) this run applied"),
        "{text}"
    );
    assert!(env.active_faults().is_empty(), "{text}");
    assert_eq!(env.row("redis")["state"], "running");
    ping(env.port("redis", 6379), Duration::from_secs(5)).expect("redis answers");
}

#[test]
fn an_unlabeled_container_cannot_be_targeted() {
    let _one = ENGINE.lock().unwrap_or_else(|e| e.into_inner());
    let env = match setup("msctl-chaos-guard", false) {
        Ok(env) => env,
        Err(why) => {
            msctl_stack::testing::cannot_run(module_path!(), &why);
            return;
        }
    };
    // A bystander with no msctl label, and one that belongs to another project; both
    // created and removed by this test.
    let plain = "msctl-chaos-guard-bystander";
    let other = "msctl-chaos-guard-other-project";
    struct Remove(&'static [&'static str]);
    impl Drop for Remove {
        fn drop(&mut self) {
            for name in self.0 {
                docker(&["rm", "-f", name]);
            }
        }
    }
    let _cleanup = Remove(&[
        "msctl-chaos-guard-bystander",
        "msctl-chaos-guard-other-project",
    ]);
    for (name, labels) in [
        (plain, &[][..]),
        (other, &["--label", "io.msctl.project=someone-else"][..]),
    ] {
        docker(&["rm", "-f", name]);
        let mut args = vec!["run", "-d", "--name", name, "--network", "none"];
        args.extend_from_slice(labels);
        args.extend(["msctl/base:bookworm", "sleep", "600"]);
        assert!(!docker(&args).is_empty(), "could not start {name}");
    }
    let id = docker(&["inspect", "--format", "{{.Id}}", plain]);

    for target in [plain, id.as_str(), other] {
        for fault in [
            &["kill"][..],
            &["pause"],
            &["stop"],
            &["partition"],
            &["latency", "--delay", "100ms"],
        ] {
            let mut args = vec!["chaos", fault[0], target];
            args.extend_from_slice(&fault[1..]);
            let out = env.msctl(&args);
            assert_eq!(out.status.code(), Some(2), "{args:?}");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains("does not carry the label io.msctl.project=msctl-chaos-guard"),
                "{err}"
            );
        }
    }
    for name in [plain, other] {
        assert_eq!(
            docker(&["inspect", "--format", "{{.State.Status}}", name]),
            "running",
            "{name} was touched"
        );
    }
    assert!(env.active_faults().is_empty());
    // A component that does not exist is a usage error too.
    let out = env.msctl(&["chaos", "kill", "nosuch"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no component named \"nosuch\""));
}

#[test]
fn chaos_against_an_unreachable_engine_exits_3() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("stack.toml"), stack_text("x", false)).expect("write");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_msctl"))
            .arg("--file")
            .arg(dir.path().join("stack.toml"))
            .env("DOCKER_HOST", "tcp://127.0.0.1:1")
            .args(args)
            .output()
            .expect("run msctl")
    };
    assert_eq!(run(&["chaos", "kill", "redis"]).status.code(), Some(3));
    assert_eq!(run(&["chaos", "heal"]).status.code(), Some(3));
    // Bad flags are reported before any connection.
    assert_eq!(
        run(&["chaos", "loss", "redis", "--percent", "0"])
            .status
            .code(),
        Some(2)
    );
    // The ledger is readable without an engine.
    let out = run(&["chaos", "list", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");
}
