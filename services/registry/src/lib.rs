//! The service registry of the msctl reference stack.
//!
//! Instances register with a TTL and heartbeat; they expire when heartbeats stop and are
//! also actively health-checked over HTTP (unhealthy instances stay registered but are not
//! returned by discovery). Discovery supports blocking queries: `?index=N&wait=DUR` answers
//! as soon as the registry's change index differs from `N`, or after `DUR`.
//!
//! HTTP API (JSON; errors use the kit's `{"code","message"}` body):
//!
//! | method | path | |
//! |---|---|---|
//! | PUT | `/v1/instances` | register or refresh ([`RegisterRequest`]) |
//! | PUT | `/v1/instances/{id}/heartbeat` | 200, or 404 `unknown_instance` (register again) |
//! | DELETE | `/v1/instances/{id}` | 204, or 404 |
//! | GET | `/v1/services` | every service with instance counts |
//! | GET | `/v1/services/{name}` | healthy instances; `?all=true`, `?index=N&wait=30s` |

pub mod store;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, put};
use axum::{Json, Router};
use serde_json::json;
use service_kit::config::{ConfigError, Env};
use service_kit::error::ApiJson;
use service_kit::registry::RegisterRequest;
use service_kit::{ApiError, RunningService, ServiceConfig, ServiceHost};
use tokio::time::Instant;

pub use store::Store;

/// Registry-specific settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrySettings {
    /// TTL for registrations that do not say (`REGISTRY_DEFAULT_TTL`, 10s).
    pub default_ttl: Duration,
    /// Period of active health checks (`REGISTRY_HEALTH_INTERVAL`, 5s).
    pub health_interval: Duration,
    /// Timeout of one health check (`REGISTRY_HEALTH_TIMEOUT`, 2s).
    pub health_timeout: Duration,
    /// Consecutive failed checks that mark an instance unhealthy
    /// (`REGISTRY_HEALTH_FAILURES`, 2).
    pub health_failures: u32,
    /// How often expired instances are removed.
    pub expiry_interval: Duration,
}

impl Default for RegistrySettings {
    fn default() -> Self {
        Self {
            default_ttl: Duration::from_secs(10),
            health_interval: Duration::from_secs(5),
            health_timeout: Duration::from_secs(2),
            health_failures: 2,
            expiry_interval: Duration::from_millis(250),
        }
    }
}

impl RegistrySettings {
    /// Read the settings from `env`.
    pub fn from_lookup(env: &Env<'_>) -> Result<Self, ConfigError> {
        let d = Self::default();
        Ok(Self {
            default_ttl: env.duration_or("REGISTRY_DEFAULT_TTL", d.default_ttl)?,
            health_interval: env.duration_or("REGISTRY_HEALTH_INTERVAL", d.health_interval)?,
            health_timeout: env.duration_or("REGISTRY_HEALTH_TIMEOUT", d.health_timeout)?,
            health_failures: env.parse_or(
                "REGISTRY_HEALTH_FAILURES",
                d.health_failures,
                "a positive integer",
            )?,
            expiry_interval: d.expiry_interval,
        })
    }
}

/// Configuration of the registry process: the kit's plus [`RegistrySettings`].
pub fn config_from_env() -> Result<(ServiceConfig, RegistrySettings), ConfigError> {
    let env = Env::process();
    let mut cfg = ServiceConfig::from_lookup_named(&env, "registry", 8500)?;
    // The registry does not register with itself.
    cfg.registry = None;
    Ok((cfg, RegistrySettings::from_lookup(&env)?))
}

#[derive(Clone)]
struct AppState {
    store: Arc<Store>,
    settings: RegistrySettings,
    /// Releases blocking queries at shutdown so draining does not wait for them.
    shutdown: tokio_util::sync::CancellationToken,
}

/// Bind the registry; background expiry and health checking run until shutdown.
pub async fn build(
    config: ServiceConfig,
    settings: RegistrySettings,
) -> Result<RunningService, service_kit::app::AppError> {
    build_with_store(config, settings, Arc::new(Store::new())).await
}

/// [`build`] with a given store (tests inspect it).
pub async fn build_with_store(
    config: ServiceConfig,
    settings: RegistrySettings,
    store: Arc<Store>,
) -> Result<RunningService, service_kit::app::AppError> {
    let mut host = ServiceHost::new(config);
    host.openapi(openapi());
    spawn_expiry(&host, store.clone(), settings.expiry_interval);
    spawn_health_checks(&host, store.clone(), &settings);
    let state = AppState {
        store,
        settings,
        shutdown: host.shutdown_token(),
    };
    let routes = Router::new()
        .route("/v1/instances", put(register))
        .route("/v1/instances/{id}/heartbeat", put(heartbeat))
        .route("/v1/instances/{id}", delete(deregister))
        .route("/v1/services", get(list_services))
        .route("/v1/services/{name}", get(discover))
        .with_state(state);
    host.bind(routes).await
}

fn spawn_expiry(host: &ServiceHost, store: Arc<Store>, every: Duration) {
    let cancel = host.shutdown_token();
    host.tracker().spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = tick.tick() => {
                    for id in store.expire(Instant::now()) {
                        tracing::info!(%id, "instance expired (no heartbeat)");
                    }
                }
            }
        }
    });
}

fn spawn_health_checks(host: &ServiceHost, store: Arc<Store>, settings: &RegistrySettings) {
    let cancel = host.shutdown_token();
    let (every, timeout, threshold) = (
        settings.health_interval,
        settings.health_timeout,
        settings.health_failures,
    );
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default();
    host.tracker().spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = tick.tick() => {}
            }
            let mut checks = tokio::task::JoinSet::new();
            for target in store.health_targets() {
                let http = http.clone();
                checks.spawn(async move {
                    let ok = matches!(
                        http.get(&target.url).send().await,
                        Ok(r) if r.status().is_success()
                    );
                    (target.id, ok)
                });
            }
            while let Some(r) = checks.join_next().await {
                if let Ok((id, ok)) = r {
                    store.record_health(&id, ok, threshold);
                }
            }
        }
    });
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn validate(req: &RegisterRequest) -> Result<(), ApiError> {
    let bad = |m: String| Err(ApiError::bad_request("invalid_registration", m));
    if !valid_name(&req.service) {
        return bad(format!(
            "service {:?} must be 1-64 letters, digits, '-' or '_'",
            req.service
        ));
    }
    if req.id.is_empty() || req.id.len() > 128 || req.id.chars().any(char::is_control) {
        return bad("id must be 1-128 printable characters".into());
    }
    if req.address.is_empty()
        || req.address.len() > 253
        || req.address.chars().any(|c| c.is_whitespace() || c == '/')
    {
        return bad(format!(
            "address {:?} is not a host name or IP",
            req.address
        ));
    }
    if req.port == 0 {
        return bad("port must not be 0".into());
    }
    if req.metadata.len() > 32 {
        return bad("at most 32 metadata entries".into());
    }
    if let Some(url) = &req.health_url {
        match reqwest::Url::parse(url) {
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
            _ => return bad(format!("health_url {url:?} must be an http(s) URL")),
        }
    }
    if let Some(ttl) = req.ttl_ms {
        if !(100..=600_000).contains(&ttl) {
            return bad(format!("ttl_ms {ttl} must be between 100 and 600000"));
        }
    }
    Ok(())
}

async fn register(
    State(st): State<AppState>,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    validate(&req)?;
    let ttl = req
        .ttl_ms
        .map(Duration::from_millis)
        .unwrap_or(st.settings.default_ttl);
    let id = req.id.clone();
    let index = st.store.register(req, ttl, Instant::now());
    Ok(Json(json!({"id": id, "index": index})))
}

async fn heartbeat(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if st.store.heartbeat(&id, Instant::now()) {
        Ok(StatusCode::OK)
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_instance",
            format!("instance {id:?} is not registered; register it again"),
        ))
    }
}

async fn deregister(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if st.store.deregister(&id) {
        tracing::info!(%id, "deregistered");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_instance",
            format!("instance {id:?} is not registered"),
        ))
    }
}

async fn list_services(State(st): State<AppState>) -> Response {
    Json(st.store.services()).into_response()
}

/// Longest a blocking query may wait.
const MAX_WAIT: Duration = Duration::from_secs(60);

async fn discover(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let bad = |m: String| ApiError::bad_request("invalid_query", m);
    let all = match q.get("all").map(String::as_str) {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(v) => return Err(bad(format!("all={v:?} must be true or false"))),
    };
    if let Some(index) = q.get("index") {
        let index: u64 = index
            .parse()
            .map_err(|_| bad(format!("index={index:?} must be a non-negative integer")))?;
        let wait = match q.get("wait") {
            None => Duration::from_secs(30),
            Some(w) => humantime::parse_duration(w)
                .map_err(|_| bad(format!("wait={w:?} must be a duration such as 30s")))?,
        }
        .min(MAX_WAIT);
        if st.store.index() == index {
            tokio::select! {
                () = st.store.wait_for_change(index, wait) => {}
                () = st.shutdown.cancelled() => {}
            }
        }
    }
    let answer = st.store.service(&name, all);
    let index = answer.index.to_string();
    Ok(([("x-registry-index", index)], Json(answer)).into_response())
}

fn openapi() -> serde_json::Value {
    service_kit::openapi::document(
        "registry",
        json!({
            "/v1/instances": {"put": {"summary": "Register or refresh an instance",
                "responses": {"200": {"description": "registered"}, "400": {"description": "invalid registration"}}}},
            "/v1/instances/{id}/heartbeat": {"put": {"summary": "Heartbeat",
                "responses": {"200": {"description": "refreshed"}, "404": {"description": "unknown instance: register again"}}}},
            "/v1/instances/{id}": {"delete": {"summary": "Deregister",
                "responses": {"204": {"description": "removed"}, "404": {"description": "unknown instance"}}}},
            "/v1/services": {"get": {"summary": "List services", "responses": {"200": {"description": "services"}}}},
            "/v1/services/{name}": {"get": {"summary": "Discover healthy instances (blocking with index and wait)",
                "parameters": [
                    {"name": "index", "in": "query", "schema": {"type": "integer"}},
                    {"name": "wait", "in": "query", "schema": {"type": "string"}},
                    {"name": "all", "in": "query", "schema": {"type": "boolean"}}],
                "responses": {"200": {"description": "instances"}}}}
        }),
    )
}
