//! Test harness: a real registry, real kit-based upstream services and a real gateway, all
//! on 127.0.0.1 with ephemeral ports, in this process.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use gateway::GatewayConfig;
use serde_json::json;
use service_kit::config::{JwtConfig, RegistryConfig};
use service_kit::jwt::JwtKeys;
use service_kit::{ServiceConfig, ServiceHost};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const SECRET: &str = "integration-test-secret-0123456789";
pub const ADMIN: &str = "test-admin-token";

/// Poll `check` every 20 ms until it holds or `deadline` passes.
pub async fn eventually<F, Fut>(deadline: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = tokio::time::Instant::now();
    loop {
        if check().await {
            return;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A server running in this process.
pub struct Running {
    pub addr: SocketAddr,
    cancel: CancellationToken,
    handle: Option<JoinHandle<()>>,
}

impl Running {
    fn start(service: service_kit::RunningService) -> Self {
        let addr = service.local_addr();
        let cancel = service.shutdown_token();
        let handle = tokio::spawn(async move {
            service.run_until_stopped().await.expect("server ran");
        });
        Self {
            addr,
            cancel,
            handle: Some(handle),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Graceful stop, waiting for it to finish.
    pub async fn stop(mut self) {
        self.cancel.cancel();
        if let Some(h) = self.handle.take() {
            let _ = h.await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

pub fn registry_settings() -> registry::RegistrySettings {
    registry::RegistrySettings {
        default_ttl: Duration::from_secs(2),
        health_interval: Duration::from_millis(200),
        health_timeout: Duration::from_millis(500),
        health_failures: 2,
        expiry_interval: Duration::from_millis(50),
    }
}

/// A registry on `port` (0 = any).
pub async fn spawn_registry(port: u16) -> Running {
    let mut cfg = ServiceConfig::for_tests("registry");
    cfg.port = port;
    Running::start(
        registry::build(cfg, registry_settings())
            .await
            .expect("registry binds"),
    )
}

/// How an upstream behaves, changeable while it runs.
#[derive(Default)]
pub struct Behaviour {
    /// Non-zero: answer every request with this status.
    pub fail_status: AtomicU16,
    /// Requests seen by the handler.
    pub hits: AtomicUsize,
    /// Delay before answering, in ms.
    pub delay_ms: AtomicUsize,
}

pub struct Upstream {
    /// Held so the server lives as long as the handle.
    pub _server: Running,
    pub behaviour: Arc<Behaviour>,
}

async fn echo(State((name, b)): State<(String, Arc<Behaviour>)>, req: Request) -> Response {
    b.hits.fetch_add(1, Ordering::SeqCst);
    let delay = b.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay as u64)).await;
    }
    let fail = b.fail_status.load(Ordering::SeqCst);
    if fail != 0 {
        let status = axum::http::StatusCode::from_u16(fail).expect("valid status");
        return (status, Json(json!({"code": "upstream_says_no"}))).into_response();
    }
    let headers: BTreeMap<String, String> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = axum::body::to_bytes(req.into_body(), 4 * 1024 * 1024)
        .await
        .map(|b| b.len())
        .unwrap_or(0);
    Json(json!({"instance": name, "headers": headers, "body_len": body})).into_response()
}

/// A kit service named `service` that registers with `registry` and echoes requests.
pub async fn spawn_upstream(service: &str, registry: &str, tag: &str) -> Upstream {
    let mut cfg = ServiceConfig::for_tests(service);
    cfg.registry = Some(RegistryConfig {
        url: registry.to_owned(),
        advertise_host: "127.0.0.1".into(),
        instance_id: Some(format!("{service}-{tag}")),
        heartbeat: Duration::from_millis(100),
        ttl: Duration::from_secs(1),
    });
    let behaviour = Arc::new(Behaviour::default());
    let mut host = ServiceHost::new(cfg);
    host.custom_fallback();
    let routes = Router::new()
        .fallback(echo)
        .with_state((format!("{service}-{tag}"), behaviour.clone()));
    let server = Running::start(host.bind(routes).await.expect("upstream binds"));
    Upstream {
        _server: server,
        behaviour,
    }
}

pub fn gateway_config() -> GatewayConfig {
    let mut c = GatewayConfig::with_jwt(JwtConfig {
        secret: SECRET.into(),
        issuer: "msctl".into(),
    });
    c.rate_limit = None;
    c.policy.backoff.jitter = false;
    c.policy.backoff.base = Duration::from_millis(5);
    c.policy.timeout = Duration::from_secs(2);
    c
}

pub async fn spawn_gateway(registry: &str, config: GatewayConfig) -> Running {
    let mut cfg = ServiceConfig::for_tests("gateway");
    cfg.registry = Some(RegistryConfig {
        url: registry.to_owned(),
        advertise_host: "127.0.0.1".into(),
        instance_id: None,
        heartbeat: Duration::from_millis(100),
        ttl: Duration::from_secs(1),
    });
    cfg.jwt = Some(config.jwt.clone());
    Running::start(gateway::build(cfg, config).await.expect("gateway binds"))
}

/// Wait until the registry lists `n` healthy instances of `service`.
pub async fn wait_registered(registry: &str, service: &str, n: usize) {
    let http = reqwest::Client::new();
    let url = format!("{registry}/v1/services/{service}");
    eventually(
        Duration::from_secs(10),
        &format!("{n} instances of {service}"),
        || {
            let (http, url) = (http.clone(), url.clone());
            async move {
                match http.get(&url).send().await {
                    Ok(r) => r
                        .json::<serde_json::Value>()
                        .await
                        .map(|v| v["instances"].as_array().map(Vec::len) == Some(n))
                        .unwrap_or(false),
                    Err(_) => false,
                }
            }
        },
    )
    .await;
}

pub fn token(sub: &str) -> String {
    JwtKeys::new(&JwtConfig {
        secret: SECRET.into(),
        issuer: "msctl".into(),
    })
    .issue(sub, Duration::from_secs(300))
    .expect("sign")
    .0
}

fn b64url(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// A token signed with our secret but expired two minutes ago.
pub fn expired_token(sub: &str) -> String {
    let claims =
        json!({"sub": sub, "iss": "msctl", "iat": now() - 600, "exp": now() - 120, "jti": "x"});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("sign")
}

/// A valid-looking token signed with another secret.
pub fn forged_token(sub: &str) -> String {
    let claims = json!({"sub": sub, "iss": "msctl", "iat": now(), "exp": now() + 600, "jti": "x"});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(b"not-the-gateway-secret-at-all"),
    )
    .expect("sign")
}

/// An unsigned `alg: none` token with otherwise valid claims.
pub fn none_token(sub: &str) -> String {
    let header = b64url(br#"{"alg":"none","typ":"JWT"}"#);
    let claims = b64url(
        json!({"sub": sub, "iss": "msctl", "iat": now(), "exp": now() + 600, "jti": "x"})
            .to_string()
            .as_bytes(),
    );
    format!("{header}.{claims}.")
}
