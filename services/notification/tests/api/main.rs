//! notification-service against real Postgres and RabbitMQ.

use std::time::Duration;

use lapin::options::{BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use msctl_stack::testing::TestInfra;
use notification_service::{NotificationConfig, Topology};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};
use service_kit::ServiceConfig;
use service_testkit::TestDatabase;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const ADMIN: &str = "test-admin-token";

static INFRA: OnceCell<TestInfra> = OnceCell::const_new();

async fn infra() -> &'static TestInfra {
    INFRA
        .get_or_init(|| async {
            TestInfra::boot(env!("CARGO_MANIFEST_DIR"), &["postgres", "rabbitmq"])
                .await
                .expect("boot postgres and rabbitmq (is the Docker engine reachable?)")
        })
        .await
}

struct App {
    base: String,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    topology: Topology,
    amqp_url: String,
    http: reqwest::Client,
    /// The `notifications_t…` database, dropped after the test.
    _database: TestDatabase,
}

impl App {
    async fn spawn() -> Self {
        let infra = infra().await;
        let id = Uuid::new_v4().simple().to_string();
        let topology = Topology::new(
            &format!("orders.test.{id}"),
            &format!("notifications.test.{id}"),
        );
        let amqp_url = infra.amqp_url().expect("rabbitmq port");
        let database = TestDatabase::named(infra, &format!("notifications_t{id}"));
        let config = NotificationConfig {
            service: ServiceConfig::for_tests("notification-service"),
            database_url: database.url.clone(),
            amqp_url: amqp_url.clone(),
            topology: topology.clone(),
            prefetch: 8,
        };
        let running = notification_service::build(config).await.expect("starts");
        let base = format!("http://{}", running.local_addr());
        let cancel = running.shutdown_token();
        let task = tokio::spawn(async move {
            running.run_until_stopped().await.expect("runs");
        });
        let app = Self {
            base,
            cancel,
            task,
            topology,
            amqp_url,
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client"),
            _database: database,
        };
        app.wait_for(|m| m.lines().any(|l| l == "notification_amqp_connected 1"))
            .await;
        app
    }

    async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    }

    async fn wait_for(&self, f: impl Fn(&str) -> bool) {
        for _ in 0..200 {
            if f(&self.metrics().await) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("metrics never matched:\n{}", self.metrics().await);
    }

    async fn get(&self, path: &str, user: Option<&str>) -> (u16, Value) {
        let mut req = self
            .http
            .get(format!("{}{path}", self.base))
            .header("x-admin-token", ADMIN);
        if let Some(u) = user {
            req = req.header("x-user-id", u);
        }
        let resp = req.send().await.expect("GET");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn publisher(&self) -> (Connection, Channel) {
        let conn = Connection::connect(&self.amqp_url, ConnectionProperties::default())
            .await
            .expect("amqp");
        let ch = conn.create_channel().await.expect("channel");
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirms");
        (conn, ch)
    }

    async fn stop(self) {
        self.cancel.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(20), self.task).await;
    }
}

async fn publish(ch: &Channel, exchange: &str, key: &str, body: &[u8]) {
    let confirm = ch
        .basic_publish(
            exchange,
            key,
            BasicPublishOptions::default(),
            body,
            BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    assert!(confirm.is_ack());
}

fn event(event_id: Uuid, kind: &str, order_id: Uuid, user: &str) -> Vec<u8> {
    json!({"event_id": event_id, "type": kind, "occurred_at": "2026-11-22T20:00:00Z",
           "order_id": order_id, "user_id": user, "status": "pending", "reason": null,
           "total_cents": 1999, "items": []})
    .to_string()
    .into_bytes()
}

#[tokio::test]
async fn a_redelivered_event_is_stored_once() {
    let app = App::spawn().await;
    let (_conn, ch) = app.publisher().await;
    let (order, ev) = (Uuid::new_v4(), Uuid::new_v4());
    let body = event(ev, "order.confirmed", order, "erin");
    publish(&ch, &app.topology.exchange, "order.confirmed", &body).await;
    publish(&ch, &app.topology.exchange, "order.confirmed", &body).await;
    app.wait_for(|m| {
        m.contains("notification_events_total{outcome=\"stored\"} 1")
            && m.contains("notification_events_total{outcome=\"duplicate\"} 1")
    })
    .await;
    let (status, v) = app
        .get(
            &format!("/api/v1/notifications?order_id={order}"),
            Some("erin"),
        )
        .await;
    assert_eq!(status, 200);
    let list = v["notifications"].as_array().expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["event_type"], "order.confirmed");
    assert!(
        list[0]["message"].as_str().unwrap_or("").contains("19.99"),
        "{v}"
    );
    app.stop().await;
}

#[tokio::test]
async fn poison_messages_are_dead_lettered_and_consumption_goes_on() {
    let app = App::spawn().await;
    let (_conn, ch) = app.publisher().await;
    publish(&ch, &app.topology.exchange, "order.created", b"{not json").await;
    publish(
        &ch,
        &app.topology.exchange,
        "order.created",
        br#"{"type":"order.created"}"#,
    )
    .await;
    let order = Uuid::new_v4();
    publish(
        &ch,
        &app.topology.exchange,
        "order.created",
        &event(Uuid::new_v4(), "order.created", order, "finn"),
    )
    .await;
    app.wait_for(|m| {
        m.contains("notification_events_total{outcome=\"dead_lettered\"} 2")
            && m.contains("notification_events_total{outcome=\"stored\"} 1")
    })
    .await;
    // Both poison messages wait in the dead-letter queue, untouched.
    let mut dead = Vec::new();
    for _ in 0..50 {
        match ch
            .basic_get(
                &app.topology.dead_letter_queue,
                BasicGetOptions { no_ack: true },
            )
            .await
            .expect("basic.get")
        {
            Some(m) => dead.push(m.delivery.data.clone()),
            None if dead.len() >= 2 => break,
            None => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert!(dead.contains(&b"{not json".to_vec()));
    let (_, v) = app
        .get(
            &format!("/api/v1/notifications?order_id={order}"),
            Some("finn"),
        )
        .await;
    assert_eq!(v["notifications"].as_array().map(Vec::len), Some(1));
    let _ = FieldTable::default();
    app.stop().await;
}

#[tokio::test]
async fn the_read_api_is_scoped_and_rejects_bad_input_with_codes() {
    let app = App::spawn().await;
    let (_conn, ch) = app.publisher().await;
    let (o1, o2) = (Uuid::new_v4(), Uuid::new_v4());
    for (o, kind, user) in [
        (o1, "order.created", "gus"),
        (o1, "order.cancelled", "gus"),
        (o2, "order.created", "hana"),
    ] {
        publish(
            &ch,
            &app.topology.exchange,
            kind,
            &event(Uuid::new_v4(), kind, o, user),
        )
        .await;
    }
    app.wait_for(|m| m.contains("notification_events_total{outcome=\"stored\"} 3"))
        .await;
    let (_, gus) = app.get("/api/v1/notifications", Some("gus")).await;
    assert_eq!(gus["notifications"].as_array().map(Vec::len), Some(2));
    let (_, gus_o2) = app
        .get(&format!("/api/v1/notifications?order_id={o2}"), Some("gus"))
        .await;
    assert_eq!(gus_o2["notifications"].as_array().map(Vec::len), Some(0));
    let (_, admin) = app
        .get(&format!("/admin/notifications?order_id={o1}"), None)
        .await;
    assert_eq!(admin["notifications"].as_array().map(Vec::len), Some(2));
    for (path, user, status, code) in [
        ("/api/v1/notifications", None, 401, "unauthorized"),
        (
            "/api/v1/notifications?order_id=nope",
            Some("gus"),
            400,
            "invalid_order_id",
        ),
        (
            "/api/v1/notifications?limit=0",
            Some("gus"),
            400,
            "invalid_limit",
        ),
        ("/admin/notifications?limit=x", None, 400, "invalid_limit"),
    ] {
        let (s, v) = app.get(path, user).await;
        assert_eq!((s, v["code"].as_str()), (status, Some(code)), "{path}");
    }
    let anon = app
        .http
        .get(format!("{}/admin/notifications", app.base))
        .send()
        .await
        .expect("GET");
    assert_eq!(anon.status(), 401);
    app.stop().await;
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Generated queries, headers and methods never get a 5xx.
#[test]
fn generated_malformed_requests_never_get_a_5xx() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let app = rt.block_on(App::spawn());
    let strategy = (
        prop_oneof![
            Just("/api/v1/notifications"),
            Just("/admin/notifications"),
            Just("/api/v1/notifications/x")
        ],
        ".{0,40}",
        ".{0,12}",
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..140)),
        prop_oneof![Just("GET"), Just("POST"), Just("DELETE")],
    );
    let mut runner = TestRunner::new(Config {
        cases: 200,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&strategy, |(path, order, limit, user, method)| {
        let status = rt.block_on(async {
            let url = format!(
                "{}{path}?order_id={}&limit={}",
                app.base,
                encode(&order),
                encode(&limit)
            );
            let mut req = app
                .http
                .request(
                    reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
                    url,
                )
                .header("x-admin-token", ADMIN);
            if let Some(v) = user
                .as_ref()
                .and_then(|u| reqwest::header::HeaderValue::from_bytes(u).ok())
            {
                req = req.header("x-user-id", v);
            }
            req.send().await.expect("request").status().as_u16()
        });
        prop_assert!(
            status < 500,
            "{path} {order:?} {limit:?} {user:?} {method}: {status}"
        );
        Ok(())
    });
    rt.block_on(app.stop());
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// `/ready` covers the consumer's RabbitMQ connection, not only Postgres.
// Regression: /ready answered 200 while the consumer had no broker connection.
#[tokio::test]
async fn ready_checks_the_rabbitmq_connection() {
    let app = App::spawn().await;
    let (status, v) = app.get("/ready", None).await;
    assert_eq!(
        (status, &v["checks"]["rabbitmq"]),
        (200, &json!("ok")),
        "{v}"
    );
    app.stop().await;

    // A broker nobody answers for: the service starts, but is not ready.
    let infra = infra().await;
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let id = Uuid::new_v4().simple().to_string();
    let database = TestDatabase::named(infra, &format!("notifications_t{id}"));
    let running = notification_service::build(NotificationConfig {
        service: ServiceConfig::for_tests("notification-service"),
        database_url: database.url.clone(),
        amqp_url: format!("amqp://msctl:msctl@127.0.0.1:{dead}/%2f"),
        topology: Topology::new(
            &format!("orders.test.{id}"),
            &format!("notifications.test.{id}"),
        ),
        prefetch: 8,
    })
    .await
    .expect("starts without rabbitmq");
    let base = format!("http://{}", running.local_addr());
    let cancel = running.shutdown_token();
    let task = tokio::spawn(running.run_until_stopped());
    let r = reqwest::get(format!("{base}/ready")).await.expect("answer");
    assert_eq!(r.status(), 503);
    let v: Value = r.json().await.expect("json");
    let check = v["checks"]["rabbitmq"].as_str().unwrap_or("");
    assert!(check.starts_with("rabbitmq: not connected"), "{v}");
    assert_eq!(v["checks"]["postgres"], "ok", "{v}");
    cancel.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(20), task).await;
}
