//! The engine end to end against real HTTP servers on 127.0.0.1:0 (and TestInfra's real
//! Postgres for `sql` steps), the catalog's parse check, parse-error positions, and the
//! JUnit report validated by xmllint against fixtures/junit/junit.xsd.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use msctl_chaos::FaultSpec;
use msctl_scenarios::environment::{EnvError, Environment, StaticEnvironment};
use msctl_scenarios::model::{self, Scenario};
use msctl_scenarios::report::{self, Status};
use msctl_scenarios::{engine::Silent, Engine, RunOptions, ScenarioReport};
use serde_json::{json, Value};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// A toy shop: orders become `confirmed` after a few reads; `broken` makes every
/// endpoint but /health answer 503 (the "fault" the fake chaos engine flips).
#[derive(Clone, Default)]
struct Shop {
    reads: Arc<AtomicU64>,
    broken: Arc<AtomicBool>,
    rollbacks: Arc<AtomicU64>,
}

async fn start(shop: Shop) -> SocketAddr {
    async fn create(
        State(s): State<Shop>,
        headers: HeaderMap,
        Json(body): Json<Value>,
    ) -> (StatusCode, Json<Value>) {
        if s.broken.load(Ordering::SeqCst) {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"code": "down"})),
            );
        }
        let key = headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        (
            StatusCode::ACCEPTED,
            Json(json!({"id": format!("ord-{key}"), "status": "pending", "qty": body["qty"]})),
        )
    }
    async fn show(State(s): State<Shop>) -> (StatusCode, Json<Value>) {
        if s.broken.load(Ordering::SeqCst) {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"code": "down"})),
            );
        }
        let n = s.reads.fetch_add(1, Ordering::SeqCst);
        let status = if n >= 2 { "confirmed" } else { "pending" };
        (
            StatusCode::OK,
            Json(json!({"status": status, "items": [1, 2, 3]})),
        )
    }
    async fn rollback(State(s): State<Shop>) -> StatusCode {
        s.rollbacks.fetch_add(1, Ordering::SeqCst);
        StatusCode::NO_CONTENT
    }
    let app = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/orders", post(create))
        .route("/orders/{id}", get(show))
        .route("/reset", post(rollback))
        .with_state(shop);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// A static environment whose "faults" flip the shop's `broken` flag.
struct FakeChaos {
    inner: StaticEnvironment,
    shop: Shop,
}

#[async_trait]
impl Environment for FakeChaos {
    fn endpoint(&self, component: &str, port: Option<u16>) -> Result<SocketAddr, EnvError> {
        self.inner.endpoint(component, port)
    }
    fn database_url(&self, component: &str) -> Result<String, EnvError> {
        self.inner.database_url(component)
    }
    async fn apply_fault(&self, spec: &FaultSpec) -> Result<String, EnvError> {
        self.shop.broken.store(true, Ordering::SeqCst);
        Ok(format!("f-{}", spec.kind.name()))
    }
    async fn revert_fault(&self, _id: &str) -> Result<(), EnvError> {
        self.shop.broken.store(false, Ordering::SeqCst);
        Ok(())
    }
}

fn scenario(text: &str) -> Scenario {
    match model::parse(Path::new("test.toml"), text) {
        Ok(s) => s,
        Err(e) => panic!("does not parse: {e}"),
    }
}

async fn run(env: Arc<dyn Environment>, text: &str) -> ScenarioReport {
    let engine = Engine::new(env, Arc::new(Silent)).expect("engine");
    engine.run(&scenario(text), &RunOptions::default()).await
}

fn shop_env(addr: SocketAddr, shop: &Shop) -> Arc<dyn Environment> {
    Arc::new(FakeChaos {
        inner: StaticEnvironment::default().with_endpoint("gateway", 8080, addr),
        shop: shop.clone(),
    })
}

const FLOW: &str = r#"
name = "flow"
[vars]
qty = 3

[[steady_state]]
name = "health"
request = { url = "{{gateway}}/health" }
expect = { status = 200, body_contains = "ok" }
continuous = true
interval = "50ms"

[[steps]]
name = "create"
request = { method = "POST", url = "{{gateway}}/orders", headers = { Idempotency-Key = "{{run_id}}" }, json = { qty = "{{qty}}" } }
expect = { status = 202, latency = "5s", json = [{ path = "$.status", equals = "pending" }, { path = "$.qty", equals = 3 }, { path = "$.id", matches = "^ord-" }], headers = { content-type = { matches = "json" } } }
capture = { order = "$.id" }

[[steps]]
name = "confirmed eventually"
request = { url = "{{gateway}}/orders/{{order}}" }
expect = { status = 200, json = [{ path = "$.status", equals = "confirmed" }, { path = "$.items.length()", equals = 3 }] }
eventually = { timeout = "5s", interval = "20ms" }

[[rollbacks]]
name = "reset"
request = { method = "POST", url = "{{gateway}}/reset" }
expect = { status = 204 }
"#;

#[tokio::test]
async fn a_flow_passes_with_captures_eventually_and_rollbacks() {
    let shop = Shop::default();
    let addr = start(shop.clone()).await;
    let r = run(shop_env(addr, &shop), FLOW).await;
    assert_eq!(
        r.status,
        Status::Passed,
        "{}",
        report::json(std::slice::from_ref(&r))
    );
    let confirmed = r
        .steps
        .iter()
        .find(|s| s.name == "confirmed eventually")
        .expect("step");
    assert_eq!(confirmed.attempts, 3, "pending, pending, confirmed");
    let phases: Vec<&str> = r.steps.iter().map(|s| s.phase.as_str()).collect();
    assert_eq!(
        phases,
        [
            "steady_state.before",
            "method",
            "method",
            "steady_state.after",
            "rollback"
        ]
    );
    assert_eq!(shop.rollbacks.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_broken_expectation_names_the_step_the_expectation_and_what_it_saw() {
    let shop = Shop::default();
    let addr = start(shop.clone()).await;
    let broken = FLOW.replace("equals = \"pending\"", "equals = \"shipped\"");
    let r = run(shop_env(addr, &shop), &broken).await;
    assert_eq!(r.status, Status::Failed);
    let f = r.first_failure().expect("a failure");
    assert_eq!(f.name, "create");
    let m = f.message.as_deref().unwrap_or("");
    assert!(
        m.starts_with("expectation `json $.status`: expected \"shipped\", saw \"pending\""),
        "{m}"
    );
    assert!(m.contains("→ 202"), "{m}");
    // Later steps are skipped, rollbacks still run.
    assert!(r
        .steps
        .iter()
        .any(|s| s.name == "confirmed eventually" && s.status == Status::Skipped));
    assert_eq!(shop.rollbacks.load(Ordering::SeqCst), 1);
    assert_eq!(
        f.line, 13,
        "the step's line in the file (its [[steps]] header)"
    );
}

#[tokio::test]
async fn eventually_gives_up_with_the_last_thing_it_saw() {
    let shop = Shop::default();
    let addr = start(shop.clone()).await;
    let text = FLOW
        .replace("equals = \"confirmed\"", "equals = \"refunded\"")
        .replace("timeout = \"5s\"", "timeout = \"300ms\"");
    let r = run(shop_env(addr, &shop), &text).await;
    let f = r.first_failure().expect("a failure");
    assert_eq!(f.name, "confirmed eventually");
    let m = f.message.as_deref().unwrap_or("");
    assert!(m.starts_with("still failing after 300ms ("), "{m}");
    assert!(
        m.contains("expected \"refunded\", saw \"confirmed\""),
        "{m}"
    );
}

const FAULTY: &str = r#"
name = "faulty"

[[steps]]
name = "break the shop"
chaos = { name = "outage", fault = "stop", target = "shop", duration = "400ms" }

[[steps]]
name = "down while broken"
during = "outage"
request = { method = "POST", url = "{{gateway}}/orders", json = {} }
expect = { status = 503 }

[[steps]]
name = "back within 2s of the heal"
within = { fault = "outage", deadline = "2s", interval = "20ms" }
request = { url = "{{gateway}}/orders/x" }
expect = { status = 200 }
"#;

#[tokio::test]
async fn during_and_within_follow_the_fault() {
    let shop = Shop::default();
    let addr = start(shop.clone()).await;
    let r = run(shop_env(addr, &shop), FAULTY).await;
    assert_eq!(
        r.status,
        Status::Passed,
        "{}",
        report::json(std::slice::from_ref(&r))
    );
    assert!(!shop.broken.load(Ordering::SeqCst), "healed");

    // An expectation that holds only after the heal fails `during`.
    let wrong = FAULTY.replace("expect = { status = 503 }", "expect = { status = 202 }")
        .replace("request = { method = \"POST\", url = \"{{gateway}}/orders\", json = {} }",
                 "request = { method = \"POST\", url = \"{{gateway}}/orders\", json = {} }\neventually = { timeout = \"3s\", interval = \"50ms\" }");
    let r = run(shop_env(addr, &shop), &wrong).await;
    let f = r.first_failure().expect("a failure");
    assert_eq!(f.name, "down while broken");
    assert!(
        f.message.as_deref().unwrap_or("").contains("\"outage\""),
        "{:?}",
        f.message
    );
}

#[tokio::test]
async fn faults_left_active_are_healed_at_the_end() {
    let shop = Shop::default();
    let addr = start(shop.clone()).await;
    let text = r#"
name = "leaves a fault"
[[steps]]
chaos = { name = "forever", fault = "pause", target = "shop" }
[[steps]]
request = { method = "POST", url = "{{gateway}}/orders", json = {} }
expect = { status = 503 }
"#;
    let r = run(shop_env(addr, &shop), text).await;
    assert_eq!(
        r.status,
        Status::Passed,
        "{}",
        report::json(std::slice::from_ref(&r))
    );
    assert!(!shop.broken.load(Ordering::SeqCst), "healed at the end");
    assert!(r
        .steps
        .iter()
        .any(|s| s.phase == "teardown" && s.name == "heal forever"));
}

#[tokio::test]
async fn a_continuous_probe_failure_fails_the_scenario() {
    let shop = Shop::default();
    let addr = start(shop.clone()).await;
    let text = r#"
name = "probe"
[[steady_state]]
name = "orders answer"
request = { url = "{{gateway}}/orders/x" }
expect = { status = 200 }
continuous = true
interval = "20ms"
[[steps]]
chaos = { name = "outage", fault = "stop", target = "shop", duration = "200ms" }
[[steps]]
sleep = "400ms"
"#;
    let r = run(shop_env(addr, &shop), text).await;
    assert_eq!(r.status, Status::Failed);
    let f = r.first_failure().expect("failure");
    assert_eq!(f.phase, "steady_state.during");
    assert!(
        f.message.as_deref().unwrap_or("").contains("saw 503"),
        "{:?}",
        f.message
    );
}

// Regression: the open model's arrivals each carried their own 160 KiB histogram (memory
// grew with requests in flight); they now share pooled raw connections and send back samples.
#[tokio::test]
async fn an_arrival_rate_phase_sends_every_request_and_records_each() {
    let shop = Shop::default();
    let addr = start(shop.clone()).await;
    let text = r#"
name = "rate"
[[steps]]
name = "open model"
load.rate = 400
load.duration = "2s"
load.max_requests = 200
load.thresholds = { error_rate = 0.0 }
load.requests = [
  { weight = 1, url = "{{gateway}}/health" },
  { weight = 1, method = "POST", url = "{{gateway}}/orders", json = { qty = 1 }, headers = { Idempotency-Key = "{{uuid}}" }, status = [202] },
]
"#;
    let d = load_passes_then_fails_when_broken(&shop, addr, text).await;
    assert_eq!(d["requests"], 200, "{d}");
    assert_eq!(d["errors"], 0, "{d}");
    assert_eq!(d["dropped"], 0, "{d}");
}

/// Runs the load scenario `text` against the working shop, which must pass (its first
/// step's stats are returned), then against a broken one, where every request fails: the
/// `error_rate` threshold must fail the phase, with nothing left hanging.
async fn load_passes_then_fails_when_broken(
    shop: &Shop,
    addr: SocketAddr,
    text: &str,
) -> serde_json::Value {
    let r = run(shop_env(addr, shop), text).await;
    assert_eq!(
        r.status,
        Status::Passed,
        "{}",
        report::json(std::slice::from_ref(&r))
    );
    let d = r.steps[0].details.clone().expect("stats");
    shop.broken.store(true, Ordering::SeqCst);
    let r = run(shop_env(addr, shop), text).await;
    let m = r
        .first_failure()
        .and_then(|f| f.message.clone())
        .unwrap_or_default();
    assert!(m.starts_with("thresholds not met: error_rate ≤ 0"), "{m}");
    d
}

#[tokio::test]
async fn load_steps_measure_and_apply_thresholds() {
    let shop = Shop::default();
    let addr = start(shop.clone()).await;
    let text = r#"
name = "load"
[[steps]]
name = "load"
load.vus = 4
load.duration = "1s"
load.max_requests = 300
load.thresholds = { p99 = "2s", error_rate = 0.0 }
load.requests = [
  { weight = 3, url = "{{gateway}}/health" },
  { weight = 1, method = "POST", url = "{{gateway}}/orders", json = { qty = 1 }, headers = { Idempotency-Key = "{{uuid}}" }, status = [202] },
]
"#;
    let d = load_passes_then_fails_when_broken(&shop, addr, text).await;
    assert_eq!(d["requests"], 300);
}

#[tokio::test]
async fn only_loopback_is_a_valid_target() {
    let text = r#"
name = "remote"
[vars]
host = "http://192.0.2.1"
[[steps]]
request = { url = "{{host}}/x" }
expect = { status = 200 }
"#;
    let r = run(Arc::new(StaticEnvironment::default()), text).await;
    let f = r.first_failure().expect("failure");
    assert_eq!(f.status, Status::Error);
    assert!(
        f.message.as_deref().unwrap_or("").contains("127.0.0.1"),
        "{:?}",
        f.message
    );
}

#[test]
fn every_catalog_scenario_parses() {
    let dir = msctl_scenarios::catalog::dir(&root());
    let files = msctl_scenarios::catalog::files(&dir).expect("catalog");
    let names: Vec<String> = files
        .iter()
        .map(|f| match model::load(f) {
            Ok(s) => {
                assert_eq!(
                    Some(s.name.as_str()),
                    f.file_stem().and_then(|s| s.to_str()),
                    "a catalog scenario's name is its file name"
                );
                s.name
            }
            Err(e) => panic!("{e}"),
        })
        .collect();
    for want in [
        "smoke",
        "order-saga",
        "breaker-trip",
        "retry-storm",
        "registry-outage",
        "saga-crash-recovery",
        "broker-outage",
        "load",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
}

#[test]
fn parse_errors_name_file_line_and_column() {
    let cases: &[(&str, (usize, usize), &str)] = &[
        ("name = \"x\"\n[[steps]]\nsleep = \"soon\"\n", (3, 9), "not a duration"),
        ("name = \"x\"\n[[steps]]\nrequest = { url = \"{{oops\" }\n", (3, 19), "unclosed"),
        ("name = \"x\"\n[[steps]]\nrequest = { url = \"{{nope}}/\" }\n", (2, 1), "unknown variable"),
        ("name = \"x\"\n[[steps]]\nrequest = { url = \"http://127.0.0.1/\" }\nwithin = { fault = \"f\", deadline = \"1s\" }\n", (4, 20), "no earlier chaos step"),
        ("name = \"x\"\n[[steps]]\nchaos = { fault = \"melt\", target = \"a\" }\n", (3, 19), "unknown fault"),
        ("name = \"x\"\n[[steps]]\nrequest = { url = \"http://127.0.0.1/\" }\nexpect = { json = [{ path = \"status\", equals = 1 }] }\n", (4, 29), "must start with '$'"),
        ("name = \"x\"\n[[steps]]\nbogus = 1\n", (3, 1), "unknown field"),
        ("name = \"x\"\n[[steps]]\nsleep = \"1s\"\nsql = { component = \"a\", query = \"select 1\", expect = 1 }\n", (2, 1), "exactly one of"),
        ("name = \"x\"\n[[steps]]\nchaos = { fault = \"latency\", target = \"a\", delay = \"0ms\" }\n", (3, 9), "delay must be longer"),
    ];
    for (text, (line, col), what) in cases {
        let err = model::parse(Path::new("bad.toml"), text).expect_err(text);
        let first = &err.0[0];
        let shown = first.to_string();
        assert!(shown.starts_with("bad.toml:"), "{shown}");
        assert_eq!(
            (first.line, first.column),
            (*line, *col),
            "{text}\n→ {shown}"
        );
        assert!(shown.contains(what), "{text}\n→ {shown}");
    }
}

#[tokio::test]
async fn the_junit_report_validates_against_the_schema() {
    let shop = Shop::default();
    let addr = start(shop.clone()).await;
    let pass = run(shop_env(addr, &shop), FLOW).await;
    let fail = run(
        shop_env(addr, &shop),
        &FLOW
            .replace("status = 202", "status = 201")
            .replace("name = \"flow\"", "name = \"flow <&> 'quoted'\""),
    )
    .await;
    assert_eq!(fail.status, Status::Failed);
    let xml = report::junit(&[pass, fail]);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("junit.xml");
    std::fs::write(&file, &xml).expect("write");
    let xsd = root().join("fixtures/junit/junit.xsd");
    let out = match std::process::Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(&xsd)
        .arg(&file)
        .output()
    {
        Ok(o) => o,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!(
                "skipped: xmllint is not installed ({e}); scripts/install-deps.sh installs it"
            );
            return;
        }
        Err(e) => panic!("xmllint is required in CI: {e}"),
    };
    assert!(
        out.status.success(),
        "xmllint rejected the report:\n{}\n{xml}",
        String::from_utf8_lossy(&out.stderr)
    );
    // And the schema is not a rubber stamp: a report without required attributes fails.
    let bad = xml.replacen(" classname=", " klass=", 1);
    std::fs::write(&file, bad).expect("write");
    let out = std::process::Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(&xsd)
        .arg(&file)
        .output()
        .expect("xmllint");
    assert!(
        !out.status.success(),
        "a testcase without classname must not validate"
    );
}

#[tokio::test]
async fn sql_steps_check_and_capture_against_real_postgres() {
    let infra = match msctl_stack::testing::TestInfra::boot(
        env!("CARGO_MANIFEST_DIR"),
        &["postgres"],
    )
    .await
    {
        Ok(i) => i,
        Err(e) => {
            eprintln!("skipped: {e}");
            return;
        }
    };
    let url = infra.postgres_url("msctl").expect("postgres port");
    let env = Arc::new(StaticEnvironment::default().with_database("order-service", &url));
    let text = r#"
name = "sql"
[[steps]]
name = "numeric sum"
sql = { component = "order-service", query = "SELECT sum(x) AS total FROM generate_series(1, 10) AS x", capture = "total" }
[[steps]]
name = "compare with a capture"
sql = { component = "order-service", query = "SELECT 55::bigint", expect = "{{total}}" }
[[steps]]
name = "range"
sql = { component = "order-service", query = "SELECT count(*) FROM generate_series(1, 3)", expect = { gte = 1, lte = 3 } }
[[steps]]
name = "no row"
sql = { component = "order-service", query = "SELECT 1 WHERE false", expect = { exists = false } }
[[steps]]
name = "broken on purpose"
sql = { component = "order-service", query = "SELECT 'pending'::text AS status", expect = "confirmed" }
"#;
    let r = run(env, text).await;
    let f = r.first_failure().expect("the last step fails");
    assert_eq!(
        f.name,
        "broken on purpose",
        "{}",
        report::json(std::slice::from_ref(&r))
    );
    assert_eq!(
        f.message.as_deref(),
        Some("expectation on `SELECT 'pending'::text AS status` (order-service): expected \"confirmed\", saw \"pending\"")
    );
    assert_eq!(r.counts(), (4, 1, 0, 0));
}

#[test]
fn the_readme_example_parses() {
    let readme = std::fs::read_to_string(root().join("scenarios/README.md")).expect("README");
    let start = readme.find("```toml\n").expect("a toml block") + "```toml\n".len();
    let end = start + readme[start..].find("```").expect("closed");
    let s = scenario(&readme[start..end]);
    assert_eq!(s.steps.len(), 4);
    assert_eq!(s.rollbacks.len(), 1);
}
