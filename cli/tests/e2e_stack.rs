//! End to end against the real Docker engine: `msctl up` of the infrastructure profile,
//! the real clients (psql, redis, Prometheus' and RabbitMQ's HTTP APIs) on the 127.0.0.1
//! ports that `msctl ps` reports, idempotent second `up`, data surviving `down` + `up`,
//! and `down` leaving an unlabeled container alone.
//!
//! When no engine is reachable the test prints that it skipped, and why, and passes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

const PROJECT: &str = "msctl-e2e";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn msctl(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_msctl"))
        .current_dir(repo())
        .args(["--project", PROJECT])
        .args(args)
        .output()
        .expect("run msctl");
    eprintln!(
        "$ msctl {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("docker cli");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The engine is reachable when `msctl ps` does not exit 3.
fn engine_unreachable() -> Option<String> {
    let out = msctl(&["ps"]);
    (out.status.code() == Some(3)).then(|| String::from_utf8_lossy(&out.stderr).to_string())
}

fn host_port(component: &str, container: u16) -> u16 {
    let out = msctl(&["ps", "--output", "json"]);
    assert!(out.status.success());
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ps json");
    rows.as_array()
        .expect("array")
        .iter()
        .filter(|r| r["component"] == component)
        .flat_map(|r| r["ports"].as_array().cloned().unwrap_or_default())
        .find(|p| p["container"] == container)
        .and_then(|p| p["host"].as_u64())
        .map(|p| p as u16)
        .unwrap_or_else(|| panic!("no host port for {component}:{container}"))
}

/// A minimal HTTP/1.0 GET on 127.0.0.1; returns (status line, body).
fn http_get(port: u16, path: &str, auth: Option<&str>) -> (String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let auth = auth.map_or(String::new(), |a| format!("Authorization: Basic {a}\r\n"));
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{auth}\r\n").expect("write");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read");
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

fn psql(port: u16, sql: &str) -> String {
    let out = Command::new("psql")
        .env("PGPASSWORD", "msctl")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "msctl",
            "-d",
            "msctl",
        ])
        .args(["-tA", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("psql is installed (scripts/install-deps.sh)");
    assert!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn redis_ping(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect redis");
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    s.write_all(b"PING\r\n").expect("write");
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).expect("read");
    String::from_utf8_lossy(&buf[..n]).trim().to_string()
}

fn labelled(kind: &str) -> String {
    docker(&[
        kind,
        "ls",
        "-q",
        "--filter",
        &format!("label=io.msctl.project={PROJECT}"),
    ])
}

#[test]
fn up_ps_clients_idempotent_down_keeps_data_and_strangers() {
    if let Some(why) = engine_unreachable() {
        msctl_stack::testing::cannot_run(
            "up_ps_clients_idempotent_down_keeps_data_and_strangers",
            &format!("no Docker engine is reachable: {why}"),
        );
        return;
    }
    // Start from nothing of ours.
    assert!(msctl(&["down", "--volumes"]).status.success());

    let up = msctl(&["up", "--profile", "infra", "--timeout", "10m"]);
    assert!(up.status.success(), "first up failed");

    let pg = host_port("postgres", 5432);
    psql(
        pg,
        "CREATE TABLE IF NOT EXISTS e2e (v text); INSERT INTO e2e VALUES ('kept');",
    );
    assert_eq!(redis_ping(host_port("redis", 6379)), "+PONG");
    let (status, body) = http_get(host_port("prometheus", 9090), "/api/v1/targets", None);
    assert!(status.contains(" 200"), "{status}");
    assert!(body.contains("\"activeTargets\""), "{body}");
    // msctl:msctl
    let (status, body) = http_get(
        host_port("rabbitmq", 15672),
        "/api/overview",
        Some("bXNjdGw6bXNjdGw="),
    );
    assert!(status.contains(" 200"), "{status} {body}");
    assert!(body.contains("rabbitmq_version"), "{body}");

    // A second up changes nothing.
    let again = msctl(&["up", "--profile", "infra"]);
    assert!(again.status.success());
    let text = String::from_utf8_lossy(&again.stdout);
    assert!(
        text.contains("0 created, 0 recreated, 0 started, 4 unchanged"),
        "{text}"
    );

    // Somebody else's container, on the same engine, with a similar name.
    let bystander = format!("{PROJECT}-bystander");
    docker(&["rm", "-f", &bystander]);
    let id = docker(&[
        "create",
        "--name",
        &bystander,
        "msctl/base:bookworm",
        "sleep",
        "600",
    ]);
    assert!(!id.is_empty(), "could not create the bystander container");

    assert!(msctl(&["down"]).status.success());
    assert_eq!(
        labelled("container"),
        "",
        "labelled containers left after down"
    );
    assert_eq!(labelled("network"), "", "labelled networks left after down");
    assert_ne!(
        labelled("volume"),
        "",
        "down without --volumes must keep volumes"
    );
    assert!(
        !docker(&["ps", "-aq", "--filter", &format!("name=^{bystander}$")]).is_empty(),
        "down removed an unlabeled container"
    );
    docker(&["rm", "-f", &bystander]);

    // Data written before down is there after up.
    assert!(msctl(&["up", "postgres"]).status.success());
    assert_eq!(
        psql(host_port("postgres", 5432), "SELECT v FROM e2e"),
        "kept"
    );

    assert!(msctl(&["down", "--volumes"]).status.success());
    assert_eq!(labelled("volume"), "", "down --volumes must remove volumes");
}

#[test]
fn unreachable_engine_exits_3() {
    let out = Command::new(env!("CARGO_BIN_EXE_msctl"))
        .current_dir(repo())
        .env("DOCKER_HOST", "tcp://127.0.0.1:1")
        .args(["ps"])
        .output()
        .expect("run msctl");
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach the Docker engine at tcp://127.0.0.1:1"),
        "{err}"
    );
}

#[test]
fn broken_stack_file_exits_2_with_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("stack.toml");
    std::fs::write(
        &file,
        "name = \"x\"\n[components.a]\nimage = \"i\"\ndepends_on = { b = \"healthy\" }\n",
    )
    .expect("write");
    for cmd in [&["config", "check"][..], &["up"][..]] {
        let out = Command::new(env!("CARGO_BIN_EXE_msctl"))
            .arg("--file")
            .arg(&file)
            .args(cmd)
            .output()
            .expect("run msctl");
        assert_eq!(out.status.code(), Some(2), "{cmd:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!(
                "{}:4:16: component \"a\" depends on \"b\"",
                file.display()
            )),
            "{err}"
        );
    }
}

/// Under CI an end-to-end test whose engine is missing fails instead of passing: this test
/// runs the one above in a child process whose `DOCKER_HOST` points nowhere, with `CI=true`,
/// and expects it to fail, naming why.
#[test]
fn under_ci_the_end_to_end_test_fails_when_no_engine_is_reachable() {
    let me = std::env::current_exe().expect("the test binary");
    let out = Command::new(me)
        .args([
            "--exact",
            "up_ps_clients_idempotent_down_keeps_data_and_strangers",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("CI", "true")
        .env("DOCKER_HOST", "unix:///nonexistent/msctl-no-engine.sock")
        .output()
        .expect("run the test binary");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "it passed without an engine:\n{text}"
    );
    assert!(
        text.contains("cannot run under CI: no Docker engine is reachable"),
        "{text}"
    );
    assert!(text.contains("1 failed"), "{text}");
}
