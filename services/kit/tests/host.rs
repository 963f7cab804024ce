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
    let mut host = ServiceHost::new(ServiceConfig::for_tests(name));
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
    let cancel = running.shutdown_token();
    tokio::spawn(running.run_until_stopped());
    Server { addr, cancel, hits }
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
    let client = service_kit::client::ResilientClient::new(directory, policy, Default::default());

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
    let mut post_errors = 0;
    for _ in 0..4 {
        let req = OutboundRequest::new(Method::POST, "/api/v1/things/1")
            .json(&json!({}))
            .expect("encode");
        match client.send("thing-service", req).await {
            Err(ClientError::Transport { .. }) | Err(ClientError::Unavailable { .. }) => {
                post_errors += 1
            }
            Ok(r) => assert_eq!(r.attempts, 1),
            Err(e) => panic!("unexpected {e}"),
        }
    }
    // ...unless the caller declares it safe to retry.
    let req = OutboundRequest::new(Method::POST, "/api/v1/things/1").retry(RetryMode::Always);
    assert!(client.send("thing-service", req).await.is_ok());
    let snap = client.snapshot();
    assert_eq!(snap[0].instances.len(), 2);
    assert!(snap[0].instances[0].failures >= 1);
    let _ = post_errors;
    assert!(matches!(
        client
            .send("other-service", OutboundRequest::new(Method::GET, "/"))
            .await,
        Err(ClientError::NoInstances { .. })
    ));
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
