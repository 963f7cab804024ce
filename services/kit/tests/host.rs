//! The kit's HTTP surface and client against real servers on 127.0.0.1.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::routing::get;
use axum::{Json, Router};
use http::Method;
use serde_json::{json, Value};
use service_kit::client::{ClientError, ClientPolicy, OutboundRequest, RetryMode};
use service_kit::context::{self, RequestContext};
use service_kit::registry::{Directory, Instance};
use service_kit::{ServiceConfig, ServiceHost};
use tokio_util::sync::CancellationToken;

struct Server {
    addr: std::net::SocketAddr,
    cancel: CancellationToken,
    hits: Arc<AtomicUsize>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn echo(State(hits): State<Arc<AtomicUsize>>, req: Request) -> Json<Value> {
    hits.fetch_add(1, Ordering::SeqCst);
    let h = |k: &str| {
        req.headers()
            .get(k)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    Json(json!({"traceparent": h("traceparent"), "request_id": h("x-request-id")}))
}

async fn spawn(name: &str, ready: bool) -> Server {
    spawn_with(ServiceConfig::for_tests(name), ready).await.0
}

/// A service started with `config`; also returns its admin address and the task running it.
async fn spawn_with(
    config: ServiceConfig,
    ready: bool,
) -> (
    Server,
    Option<std::net::SocketAddr>,
    tokio::task::JoinHandle<Result<(), service_kit::app::AppError>>,
) {
    let mut host = ServiceHost::new(config);
    host.readiness_check("database", move || async move {
        if ready {
            Ok(())
        } else {
            Err("connection refused".to_owned())
        }
    });
    let hits = Arc::new(AtomicUsize::new(0));
    let routes = Router::new()
        .route("/api/v1/things/{id}", get(echo).post(echo))
        .route(
            "/whoami",
            get(
                |service_kit::jwt::UserId(u): service_kit::jwt::UserId| async move {
                    Json(json!({ "user": u }))
                },
            ),
        )
        .with_state(hits.clone());
    let running = host.bind(routes).await.expect("binds");
    let addr = running.local_addr();
    let admin = running.admin_addr();
    let cancel = running.shutdown_token();
    let task = tokio::spawn(running.run_until_stopped());
    (Server { addr, cancel, hits }, admin, task)
}

#[tokio::test]
async fn kit_endpoints_errors_and_request_ids() {
    let s = spawn("thing-service", false).await;
    let base = format!("http://{}", s.addr);
    let http = reqwest::Client::new();

    let r = http
        .get(format!("{base}/health"))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.expect("json")["service"],
        "thing-service"
    );

    let r = http
        .get(format!("{base}/ready"))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 503);
    assert_eq!(
        r.json::<Value>().await.expect("json")["checks"]["database"],
        "connection refused"
    );

    let r = http
        .get(format!("{base}/nope"))
        .header("x-request-id", "rid-1")
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.headers().get("x-request-id").map(|v| v.as_bytes()),
        Some(&b"rid-1"[..])
    );
    let v: Value = r.json().await.expect("json");
    assert_eq!(
        (v["code"].as_str(), v["request_id"].as_str()),
        (Some("not_found"), Some("rid-1"))
    );

    http.get(format!("{base}/api/v1/things/1"))
        .send()
        .await
        .expect("answer");
    let m = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("answer")
        .text()
        .await
        .expect("text");
    assert!(
        m.contains(
            "http_requests_total{method=\"GET\",route=\"/api/v1/things/{id}\",status=\"200\"} 1"
        ),
        "{m}"
    );
    assert!(m.contains("http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v1/things/{id}\",le=\"+Inf\"} 1"), "{m}");

    let doc: Value = http
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("json");
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/admin/faults"].is_object());
}

#[tokio::test]
async fn fault_injection_needs_the_admin_token_and_heals() {
    let s = spawn("thing-service", true).await;
    let base = format!("http://{}", s.addr);
    let http = reqwest::Client::new();
    let fault = json!({"status": 503, "path_prefix": "/api/v1/things"});

    let r = http
        .post(format!("{base}/admin/faults"))
        .json(&fault)
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 401);
    let r = http
        .post(format!("{base}/admin/faults"))
        .header("x-admin-token", "wrong")
        .json(&fault)
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 403);
    let r = http
        .post(format!("{base}/admin/faults"))
        .bearer_auth("test-admin-token")
        .json(&json!({"error_rate": 7}))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 400);
    let r = http
        .post(format!("{base}/admin/faults"))
        .bearer_auth("test-admin-token")
        .body("{not json")
        .header("content-type", "application/json")
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 400);
    let r = http
        .post(format!("{base}/admin/faults"))
        .bearer_auth("test-admin-token")
        .json(&fault)
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 200);

    let r = http
        .get(format!("{base}/api/v1/things/1"))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 503);
    assert_eq!(
        r.json::<Value>().await.expect("json")["code"],
        "injected_fault"
    );
    assert_eq!(s.hits.load(Ordering::SeqCst), 0);
    assert_eq!(
        http.get(format!("{base}/health"))
            .send()
            .await
            .expect("answer")
            .status(),
        200
    );

    let r = http
        .delete(format!("{base}/admin/faults"))
        .bearer_auth("test-admin-token")
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 204);
    assert_eq!(
        http.get(format!("{base}/api/v1/things/1"))
            .send()
            .await
            .expect("answer")
            .status(),
        200
    );
}

fn instance(id: &str, addr: std::net::SocketAddr) -> Instance {
    Instance {
        id: id.into(),
        service: "thing-service".into(),
        address: addr.ip().to_string(),
        port: addr.port(),
        metadata: Default::default(),
        healthy: true,
    }
}

#[tokio::test]
async fn client_retries_idempotent_calls_elsewhere_and_propagates_the_trace() {
    let good = spawn("thing-service", true).await;
    // An address where nothing listens: connection refused.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let directory = Directory::fixed(HashMap::from([(
        "thing-service".to_owned(),
        vec![instance("a-dead", dead), instance("b-good", good.addr)],
    )]));
    let mut policy = ClientPolicy::default();
    policy.backoff.jitter = false;
    policy.backoff.base = Duration::from_millis(1);
    let metrics = service_kit::metrics::Metrics::new();
    let client = service_kit::client::ResilientClient::new(directory, policy, metrics.clone());

    let ctx = RequestContext::new_root();
    let trace = ctx.trace_id.clone();
    let rid = ctx.request_id.clone();
    for _ in 0..4 {
        let resp = context::scope(
            ctx.clone(),
            client.send(
                "thing-service",
                OutboundRequest::new(Method::GET, "/api/v1/things/1"),
            ),
        )
        .await
        .expect("a good instance answers");
        assert_eq!(resp.status, 200);
        let v: Value = resp.json().expect("json");
        assert_eq!(v["request_id"], rid.as_str());
        assert!(
            v["traceparent"]
                .as_str()
                .is_some_and(|t| t.contains(&trace)),
            "{v}"
        );
    }
    // A POST that lands on the dead instance is not retried.
    let mut post_answers = 0;
    for _ in 0..4 {
        let req = OutboundRequest::new(Method::POST, "/api/v1/things/1")
            .json(&json!({}))
            .expect("encode");
        match client.send("thing-service", req).await {
            Err(ClientError::Transport { .. }) | Err(ClientError::Unavailable { .. }) => {}
            Ok(r) => {
                assert_eq!(r.attempts, 1);
                post_answers += 1;
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    // ...unless the caller declares it safe to retry.
    let req = OutboundRequest::new(Method::POST, "/api/v1/things/1").retry(RetryMode::Always);
    assert!(client.send("thing-service", req).await.is_ok());
    let snap = client.snapshot();
    assert_eq!(snap[0].instances.len(), 2);
    let dead_failures = snap[0].instances[0].failures;
    assert!(dead_failures >= 1);
    // Every attempt is counted by outcome: each answer as 2xx, each refused connection as
    // an error.
    let text = metrics.render();
    let series = |outcome: &str| -> u64 {
        let name =
            format!("upstream_requests_total{{service=\"thing-service\",outcome=\"{outcome}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(name.as_str()))
            .map_or(0, |n| n.parse().expect("a count"))
    };
    assert_eq!(series("2xx"), 4 + post_answers + 1, "{text}");
    assert_eq!(series("error"), dead_failures, "{text}");
    assert!(matches!(
        client
            .send("other-service", OutboundRequest::new(Method::GET, "/"))
            .await,
        Err(ClientError::NoInstances { .. })
    ));
    // Every call is counted once, whatever its attempts: 4 GETs, 4 POSTs, 1 retried POST;
    // a call that found no instance too.
    let text = metrics.render();
    let calls = |service: &str| -> u64 {
        let name = format!("upstream_calls_total{{service=\"{service}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(name.as_str()))
            .map_or(0, |n| n.parse().expect("a count"))
    };
    assert_eq!(calls("thing-service"), 9, "{text}");
    assert_eq!(calls("other-service"), 1, "{text}");
}

#[tokio::test]
async fn json_helpers_classify_failures_and_user_id_is_required() {
    let s = spawn("thing-service", true).await;
    let directory = Directory::fixed(HashMap::from([(
        "thing-service".to_owned(),
        vec![instance("a", s.addr)],
    )]));
    let client = service_kit::client::ResilientClient::new(
        directory,
        ClientPolicy::default(),
        Default::default(),
    );

    let v: Value = client
        .get_json("thing-service", "/api/v1/things/1")
        .await
        .expect("2xx json");
    assert!(v.get("traceparent").is_some());
    let v: Value = client
        .send_json(
            "thing-service",
            Method::POST,
            "/api/v1/things/1",
            &json!({"a": 1}),
            RetryMode::Never,
        )
        .await
        .expect("2xx json");
    assert!(v.is_object());
    let err = client
        .get_json::<Value>("thing-service", "/whoami")
        .await
        .expect_err("no user");
    assert!(
        matches!(&err, ClientError::Status { status, .. } if status.as_u16() == 401),
        "{err}"
    );
    assert!(!err.is_transient());
    let err = client
        .get_json::<Value>("nowhere", "/")
        .await
        .expect_err("no instances");
    assert!(err.is_transient());

    let http = reqwest::Client::new();
    let v: Value = http
        .get(format!("http://{}/whoami", s.addr))
        .header("x-user-id", "u-42")
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("json");
    assert_eq!(v["user"], "u-42");
}

async fn code_of(r: reqwest::Response) -> (u16, Option<String>) {
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    (status, v["code"].as_str().map(str::to_owned))
}

/// With ADMIN_PORT the admin API moves to its own listener: the main port answers
/// `/admin/**` with a JSON 404, the admin port serves nothing but admin and probes, faults
/// set on the admin port hit the API on the main port, and shutdown closes both.
#[tokio::test]
async fn admin_port_splits_the_admin_api_from_the_api() {
    let mut config = ServiceConfig::for_tests("thing-service");
    config.admin_port = Some(0);
    let (s, admin, task) = spawn_with(config, true).await;
    let admin = admin.expect("an admin listener");
    assert_ne!(admin.port(), s.addr.port());
    let (api, admin) = (format!("http://{}", s.addr), format!("http://{admin}"));
    let http = reqwest::Client::new();
    let send = |req: reqwest::RequestBuilder| async move { req.send().await.expect("answer") };

    // The main port: API and probes; /admin is not here, whatever the token.
    assert_eq!(
        send(http.get(format!("{api}/api/v1/things/1")))
            .await
            .status(),
        200
    );
    for path in ["/health", "/ready", "/metrics"] {
        assert_eq!(
            send(http.get(format!("{api}{path}"))).await.status(),
            200,
            "{path}"
        );
    }
    for req in [
        http.get(format!("{api}/admin/faults"))
            .bearer_auth("test-admin-token"),
        http.post(format!("{api}/admin/faults"))
            .bearer_auth("test-admin-token")
            .json(&json!({"status": 503})),
        http.delete(format!("{api}/admin/faults")),
        http.get(format!("{api}/admin")),
    ] {
        assert_eq!(
            code_of(send(req).await).await,
            (404, Some("not_found".into()))
        );
    }

    // The admin port: admin (token required) and probes; no API.
    for path in ["/health", "/ready", "/metrics"] {
        assert_eq!(
            send(http.get(format!("{admin}{path}"))).await.status(),
            200,
            "{path}"
        );
    }
    for path in ["/api/v1/things/1", "/openapi.json", "/nope"] {
        assert_eq!(
            code_of(send(http.get(format!("{admin}{path}"))).await).await,
            (404, Some("not_found".into())),
            "{path}"
        );
    }
    assert_eq!(s.hits.load(Ordering::SeqCst), 1, "the API was reached once");
    let fault = json!({"status": 503});
    assert_eq!(
        code_of(send(http.post(format!("{admin}/admin/faults")).json(&fault)).await).await,
        (401, Some("unauthorized".into()))
    );
    let r = send(
        http.post(format!("{admin}/admin/faults"))
            .bearer_auth("test-admin-token")
            .json(&fault),
    )
    .await;
    assert_eq!(r.status(), 200);

    // The fault hits API traffic on the main port, not the admin port or the probes.
    assert_eq!(
        code_of(send(http.get(format!("{api}/api/v1/things/1"))).await).await,
        (503, Some("injected_fault".into()))
    );
    assert_eq!(send(http.get(format!("{api}/health"))).await.status(), 200);
    let r = send(
        http.get(format!("{admin}/admin/faults"))
            .bearer_auth("test-admin-token"),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.expect("json")["status"], 503);
    let r = send(
        http.delete(format!("{admin}/admin/faults"))
            .bearer_auth("test-admin-token"),
    )
    .await;
    assert_eq!(r.status(), 204);
    assert_eq!(
        send(http.get(format!("{api}/api/v1/things/1")))
            .await
            .status(),
        200
    );

    // Graceful shutdown stops both listeners.
    s.cancel.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("stops in time")
        .expect("task")
        .expect("clean stop");
    let fresh = reqwest::Client::new();
    for base in [&api, &admin] {
        assert!(
            fresh.get(format!("{base}/health")).send().await.is_err(),
            "{base} still answers after shutdown"
        );
    }
}

/// A known path with a method it does not take gets a JSON 405 with a stable code and the
/// `Allow` header, on the kit's routes and the service's alike.
// Regression: `/admin/faults` answered a wrong method with an empty 405.
#[tokio::test]
async fn wrong_methods_get_a_json_405() {
    let s = spawn("thing-service", true).await;
    let base = format!("http://{}", s.addr);
    let http = reqwest::Client::new();
    for (method, path) in [
        (Method::PUT, "/admin/faults"),
        (Method::PATCH, "/admin/faults"),
        (Method::POST, "/health"),
        (Method::DELETE, "/ready"),
        (Method::POST, "/metrics"),
        (Method::PUT, "/openapi.json"),
        (Method::DELETE, "/api/v1/things/1"),
    ] {
        let r = http
            .request(method.clone(), format!("{base}{path}"))
            .header("x-admin-token", "test-admin-token")
            .send()
            .await
            .expect("answer");
        let allow = r.headers().get("allow").cloned();
        assert_eq!(
            code_of(r).await,
            (405, Some("method_not_allowed".into())),
            "{method} {path}"
        );
        assert!(allow.is_some(), "{method} {path}: Allow header kept");
    }
    // The admin token is still checked before the method.
    let r = http
        .put(format!("{base}/admin/faults"))
        .send()
        .await
        .expect("answer");
    assert_eq!(code_of(r).await, (401, Some("unauthorized".into())));
}
