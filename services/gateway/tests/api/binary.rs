//! The real `gateway` binary: configuration from the environment, registration, SIGTERM.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::helpers::*;

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_reads_env_registers_and_deregisters_on_sigterm() {
    let reg = spawn_registry(0).await;
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .env_clear()
        .env("PORT", port.to_string())
        .env("BIND_HOST", "127.0.0.1")
        .env("REGISTRY_URL", reg.url())
        .env("ADVERTISE_HOST", "127.0.0.1")
        .env("REGISTRY_HEARTBEAT", "100ms")
        .env("REGISTRY_TTL", "30s")
        .env("JWT_SECRET", SECRET)
        .env("ADMIN_TOKEN", ADMIN)
        .env("GATEWAY_LB", "least_connections")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("gateway starts");
    let http = reqwest::Client::new();
    eventually(
        Duration::from_secs(20),
        "gateway healthy and registered",
        || async {
            let healthy = http
                .get(format!("http://127.0.0.1:{port}/health"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            let registered = match http
                .get(format!("{}/v1/services/gateway", reg.url()))
                .send()
                .await
            {
                Ok(r) => r
                    .json::<Value>()
                    .await
                    .map(|v| v["instances"][0]["port"] == port)
                    .unwrap_or(false),
                Err(_) => false,
            };
            healthy && registered
        },
    )
    .await;
    let v: Value = http
        .get(format!("http://127.0.0.1:{port}/admin/upstreams"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("json");
    assert_eq!(v["load_balancing"], "least_connections");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("joined")
        .expect("waited");
    assert!(exit.success(), "gateway exited with {exit:?}");
    // Deregistered on the way out, long before the 30 s TTL.
    let v: Value = http
        .get(format!("{}/v1/services/gateway", reg.url()))
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("json");
    assert_eq!(v["instances"], serde_json::json!([]));
}

#[test]
fn bad_configuration_exits_non_zero_naming_the_variable() {
    for (var, value) in [
        ("GATEWAY_LB", "fastest"),
        ("PORT", "eighty"),
        ("GATEWAY_TIMEOUT", "soon"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_gateway"))
            .env_clear()
            .env("JWT_SECRET", SECRET)
            .env("BIND_HOST", "127.0.0.1")
            .env("PORT", "0")
            .env(var, value)
            .output()
            .expect("gateway runs");
        assert!(!out.status.success(), "{var}={value} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(var), "{var}: {stderr}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .env_clear()
        .env("PORT", "0")
        .output()
        .expect("gateway runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("JWT_SECRET"));
}
