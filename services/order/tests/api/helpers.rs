//! Shared test setup: real Postgres and RabbitMQ from the `msctl-test` project, a fresh
//! database and a fresh exchange per test, services started in-process on 127.0.0.1:0.

use std::net::SocketAddr;
use std::time::Duration;

use msctl_stack::testing::TestInfra;
use order_service::config::SagaSettings;
use order_service::{CrashHook, Options, OrderConfig};
use service_kit::registry::Directory;
use service_kit::ServiceConfig;
use service_testkit::TestDatabase;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub const ADMIN: &str = "test-admin-token";

static INFRA: OnceCell<TestInfra> = OnceCell::const_new();

/// Postgres and RabbitMQ, booted once per test binary.
pub async fn infra() -> &'static TestInfra {
    if std::env::var_os("MSCTL_TEST_LOG").is_some() {
        static LOG: std::sync::Once = std::sync::Once::new();
        LOG.call_once(service_kit::init_tracing);
    }
    INFRA
        .get_or_init(|| async {
            TestInfra::boot(
                env!("CARGO_MANIFEST_DIR"),
                &["postgres", "rabbitmq", "redis"],
            )
            .await
            .expect("boot postgres and rabbitmq (is the Docker engine reachable?)")
        })
        .await
}

/// The AMQP port after [`crate::broker::start_rabbitmq`] (the engine may give the
/// restarted container another host port); 0 until then.
pub static AMQP_PORT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);

/// The current AMQP URL of the test project's RabbitMQ.
pub fn amqp_url(infra: &TestInfra) -> String {
    match AMQP_PORT.load(std::sync::atomic::Ordering::SeqCst) {
        0 => infra.amqp_url().expect("rabbitmq port"),
        port => format!("amqp://msctl:msctl@127.0.0.1:{port}/%2f"),
    }
}

/// Names and URLs of one test's world; its databases are dropped with it.
#[derive(Debug)]
pub struct World {
    pub orders_db: String,
    pub notifications_db: String,
    pub amqp_url: String,
    pub exchange: String,
    pub queue: String,
    /// The `orders_t…` and `notifications_t…` databases, dropped after the test.
    _databases: [TestDatabase; 2],
}

impl World {
    pub async fn new() -> Self {
        let infra = infra().await;
        let id = Uuid::new_v4().simple().to_string();
        let orders = TestDatabase::named(infra, &format!("orders_t{id}"));
        let notifications = TestDatabase::named(infra, &format!("notifications_t{id}"));
        Self {
            orders_db: orders.url.clone(),
            notifications_db: notifications.url.clone(),
            amqp_url: amqp_url(infra),
            exchange: format!("orders.test.{id}"),
            queue: format!("notifications.test.{id}"),
            _databases: [orders, notifications],
        }
    }
}

/// A service running in-process.
pub struct Running {
    pub addr: SocketAddr,
    pub cancel: CancellationToken,
    pub task: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Graceful stop, waiting for background tasks.
    pub async fn stop(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(20), task).await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Saga settings that make tests quick: short retries and polls.
pub fn fast_saga(lease: Duration) -> SagaSettings {
    SagaSettings {
        lease,
        retry_base: Duration::from_millis(50),
        retry_max: Duration::from_millis(500),
        poll_interval: Duration::from_millis(100),
        ..SagaSettings::default()
    }
}

pub struct OrderSpec {
    pub registry: Option<String>,
    pub database_url: String,
    pub amqp_url: String,
    pub exchange: String,
    pub saga: SagaSettings,
    pub directory: Option<Directory>,
    pub hook: Option<CrashHook>,
}

impl OrderSpec {
    pub fn new(world: &World) -> Self {
        Self {
            registry: None,
            database_url: world.orders_db.clone(),
            amqp_url: world.amqp_url.clone(),
            exchange: world.exchange.clone(),
            saga: fast_saga(Duration::from_secs(30)),
            directory: None,
            hook: None,
        }
    }
}

pub async fn spawn_order(spec: OrderSpec) -> Running {
    let mut service = ServiceConfig::for_tests("order-service");
    service.registry = spec.registry.as_deref().map(registered);
    let config = OrderConfig {
        service,
        database_url: spec.database_url,
        amqp_url: spec.amqp_url,
        exchange: spec.exchange,
        saga: spec.saga,
    };
    let running = order_service::build(
        config,
        Options {
            directory: spec.directory,
            crash_hook: spec.hook,
            db_patience: Some(Duration::from_secs(30)),
        },
    )
    .await
    .expect("order-service starts");
    let addr = running.local_addr();
    let cancel = running.shutdown_token();
    let task = tokio::spawn(async move {
        running
            .run_until_stopped()
            .await
            .expect("order-service runs");
    });
    Running {
        addr,
        cancel,
        task: Some(task),
    }
}

pub async fn spawn_notification(world: &World) -> Running {
    let config = notification_service::NotificationConfig {
        service: ServiceConfig::for_tests("notification-service"),
        database_url: world.notifications_db.clone(),
        amqp_url: world.amqp_url.clone(),
        topology: notification_service::Topology::new(&world.exchange, &world.queue),
        prefetch: 32,
    };
    let running = notification_service::build(config)
        .await
        .expect("notification-service starts");
    let addr = running.local_addr();
    let cancel = running.shutdown_token();
    let task = tokio::spawn(async move {
        running
            .run_until_stopped()
            .await
            .expect("notification-service runs");
    });
    Running {
        addr,
        cancel,
        task: Some(task),
    }
}

/// Poll `check` every 100 ms until it returns `Some`, or panic after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// Place an order as `user`.
pub async fn place(
    http: &reqwest::Client,
    order: &Running,
    user: &str,
    items: serde_json::Value,
    card: &str,
    key: Option<&str>,
) -> reqwest::Response {
    let mut req = http
        .post(order.url("/api/v1/orders"))
        .header("x-user-id", user)
        .json(&serde_json::json!({"items": items, "card": card}));
    if let Some(k) = key {
        req = req.header("idempotency-key", k);
    }
    req.send().await.expect("POST /api/v1/orders")
}

pub async fn get_json(http: &reqwest::Client, url: &str, user: &str) -> serde_json::Value {
    http.get(url)
        .header("x-user-id", user)
        .header("x-admin-token", ADMIN)
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON")
}

/// Registration settings for an in-process service: quick heartbeats on 127.0.0.1.
pub fn registered(url: &str) -> service_kit::config::RegistryConfig {
    service_kit::config::RegistryConfig {
        url: url.to_owned(),
        advertise_host: "127.0.0.1".into(),
        instance_id: None,
        heartbeat: Duration::from_millis(200),
        ttl: Duration::from_secs(2),
    }
}

/// The saga's participants: the real product-service and payment-service, in-process.
pub struct Shop {
    pub product: Running,
    pub payment: Running,
    pub product_pool: sqlx::PgPool,
    pub directory: Directory,
    http: reqwest::Client,
    /// The `products_t…` and `payments_t…` databases, dropped after the test.
    _databases: [TestDatabase; 2],
}

/// The product admin (`X-User-Id` allowed to create products).
pub const CATALOG_ADMIN: Uuid = Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_00aa);

/// A card payment-service always captures, and the one it always declines.
pub const GOOD_CARD: &str = "4242424242424242";
pub const DECLINED_CARD: &str = "4000000000000002";

fn instance(service: &str, addr: SocketAddr) -> service_kit::registry::Instance {
    service_kit::registry::Instance {
        id: format!("{service}-{}", addr.port()),
        service: service.to_owned(),
        address: addr.ip().to_string(),
        port: addr.port(),
        metadata: Default::default(),
        healthy: true,
    }
}

impl Shop {
    pub async fn open() -> Self {
        Self::open_with(None).await
    }

    /// Participants that also register with the registry at `registry`.
    pub async fn open_with(registry: Option<&str>) -> Self {
        use std::str::FromStr;
        let config = |name: &str| {
            let mut c = ServiceConfig::for_tests(name);
            c.registry = registry.map(registered);
            c
        };
        let infra = infra().await;
        let id = Uuid::new_v4().simple().to_string();
        let products = TestDatabase::named(infra, &format!("products_t{id}"));
        let payments = TestDatabase::named(infra, &format!("payments_t{id}"));
        let product_db = products.url.clone();
        let product =
            product_service::startup::Application::build(product_service::config::Settings {
                service: config("product-service"),
                database: sqlx::postgres::PgConnectOptions::from_str(&product_db).expect("url"),
                redis_url: infra.redis_url().expect("redis port"),
                redis_prefix: format!("products_t{id}:"),
                cache_ttl: Duration::from_secs(30),
                admin_users: vec![CATALOG_ADMIN],
            })
            .await
            .expect("product-service starts");
        let (addr, cancel) = (product.local_addr(), product.shutdown_token());
        let task = tokio::spawn(async move {
            let _ = product.run_until_stopped().await;
        });
        let product = Running {
            addr,
            cancel,
            task: Some(task),
        };
        let payment =
            payment_service::startup::Application::build(payment_service::config::Settings {
                service: config("payment-service"),
                database: sqlx::postgres::PgConnectOptions::from_str(&payments.url).expect("url"),
            })
            .await
            .expect("payment-service starts");
        let (addr, cancel) = (payment.local_addr(), payment.shutdown_token());
        let task = tokio::spawn(async move {
            let _ = payment.run_until_stopped().await;
        });
        let payment = Running {
            addr,
            cancel,
            task: Some(task),
        };
        let directory = Directory::fixed(
            [
                (
                    "product-service".to_owned(),
                    vec![instance("product-service", product.addr)],
                ),
                (
                    "payment-service".to_owned(),
                    vec![instance("payment-service", payment.addr)],
                ),
            ]
            .into_iter()
            .collect(),
        );
        let product_pool = sqlx::PgPool::connect(&product_db)
            .await
            .expect("product db");
        Self {
            product,
            payment,
            product_pool,
            directory,
            http: http(),
            _databases: [products, payments],
        }
    }

    /// Create a product; returns its id.
    pub async fn add_product(&self, price_cents: i64, stock: i64) -> Uuid {
        let r = self
            .http
            .post(self.product.url("/api/v1/products"))
            .header("x-user-id", CATALOG_ADMIN.to_string())
            .json(&serde_json::json!({"name": format!("p-{}", Uuid::new_v4().simple()), "price_cents": price_cents, "stock": stock}))
            .send()
            .await
            .expect("create product");
        assert_eq!(r.status(), 201);
        let v: serde_json::Value = r.json().await.expect("json");
        Uuid::parse_str(v["id"].as_str().expect("id")).expect("uuid")
    }

    /// (available, reserved, sold).
    pub async fn stock(&self, id: Uuid) -> (i64, i64, i64) {
        sqlx::query_as("SELECT available, reserved, sold FROM products WHERE id = $1")
            .bind(id)
            .fetch_one(&self.product_pool)
            .await
            .expect("stock")
    }

    /// `{captured_cents, refunded_cents, net_cents, captures, refunds}`.
    pub async fn ledger(&self) -> serde_json::Value {
        self.http
            .get(self.payment.url("/internal/ledger/totals"))
            .send()
            .await
            .expect("ledger")
            .json()
            .await
            .expect("json")
    }

    /// The payment of `order` as payment-service reports it (status, body).
    pub async fn payment_of(&self, order: &str, user: &str) -> (u16, serde_json::Value) {
        let r = self
            .http
            .get(self.payment.url(&format!("/api/v1/payments/{order}")))
            .header("x-user-id", user)
            .header("x-admin-token", ADMIN)
            .send()
            .await
            .expect("payment");
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or_default())
    }

    pub async fn close(self) {
        self.product.stop().await;
        self.payment.stop().await;
    }
}

/// Wait until order `id` is confirmed or cancelled; returns it.
pub async fn settled(
    http: &reqwest::Client,
    order: &Running,
    user: &str,
    id: &str,
) -> serde_json::Value {
    eventually(
        &format!("order {id} settled"),
        Duration::from_secs(60),
        || async {
            let o = get_json(http, &order.url(&format!("/api/v1/orders/{id}")), user).await;
            (o["status"] == "confirmed" || o["status"] == "cancelled").then_some(o)
        },
    )
    .await
}
