//! Server bootstrap: the kit's own endpoints and middleware around a service's routes,
//! registration with the registry, and graceful shutdown.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use service_kit::{ServiceConfig, ServiceHost};
//! service_kit::init_tracing();
//! let host = ServiceHost::new(ServiceConfig::from_env()?);
//! let routes = axum::Router::new(); // the service's own routes, with their state
//! host.bind(routes).await?.run_until_stopped().await?;
//! # Ok(()) }
//! ```
//!
//! Middleware, outermost first: request context (request id, `traceparent`, span) →
//! metrics → which paths this listener serves → admin-token check for `/admin/**` →
//! fault injection → the routes (a wrong method on a known path gets a JSON 405
//! `method_not_allowed`, with `Allow`).
//!
//! Listeners: without `ADMIN_PORT` one listener serves everything. With it, the main
//! listener serves the API and the probes and answers `/admin/**` with 404 `not_found`; the
//! admin listener serves `/admin/**` (whatever the service mounts there) and `/health`,
//! `/ready`, `/metrics`, and 404 for the rest. Faults apply to the main listener's API
//! traffic only (the fault layer exempts admin and probe paths).
//!
//! Shutdown (SIGTERM, Ctrl-C or [`RunningService::shutdown_token`]): the registration loop
//! deregisters, both listeners stop accepting and drain in-flight requests for at most
//! `SHUTDOWN_GRACE`, background tasks are awaited, then the `on_shutdown` hooks run (close
//! pools).

use std::collections::HashMap;
use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::AdminToken;
use crate::client::{ClientPolicy, ResilientClient};
use crate::config::ServiceConfig;
use crate::error::ApiError;
use crate::faults::FaultInjector;
use crate::jwt::JwtKeys;
use crate::metrics::Metrics;
use crate::registry::{Directory, RegisterRequest, Registration, RegistryClient};
use crate::{context, openapi};

/// A boxed future, as returned by readiness checks and shutdown hooks.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

type ReadinessFn = Arc<dyn Fn() -> BoxFuture<Result<(), String>> + Send + Sync>;

/// Failure to start or run the server.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}; set PORT (or ADMIN_PORT) to a free port")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("server error: {0}")]
    Serve(#[source] std::io::Error),
}

/// Everything a service needs besides its own routes; build once at start.
pub struct ServiceHost {
    config: ServiceConfig,
    metrics: Metrics,
    faults: FaultInjector,
    cancel: CancellationToken,
    tracker: TaskTracker,
    directory: Directory,
    registry: Option<RegistryClient>,
    jwt: Option<JwtKeys>,
    readiness: Vec<(String, ReadinessFn)>,
    openapi: Value,
    on_shutdown: Vec<BoxFuture<()>>,
    metadata: std::collections::BTreeMap<String, String>,
    custom_fallback: bool,
}

impl std::fmt::Debug for ServiceHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceHost")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ServiceHost {
    /// A host for `config`. Discovery uses the registry when `REGISTRY_URL` is set, and an
    /// empty fixed directory otherwise.
    pub fn new(config: ServiceConfig) -> Self {
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let registry = config
            .registry
            .as_ref()
            .map(|r| RegistryClient::new(&r.url));
        let directory = match &registry {
            Some(c) => Directory::new(c.clone(), tracker.clone(), cancel.clone()),
            None => Directory::fixed(HashMap::new()),
        };
        let jwt = config.jwt.as_ref().map(JwtKeys::new);
        let openapi = openapi::document(&config.service_name, json!({}));
        Self {
            config,
            metrics: Metrics::new(),
            faults: FaultInjector::new(),
            cancel,
            tracker,
            directory,
            registry,
            jwt,
            readiness: Vec::new(),
            openapi,
            on_shutdown: Vec::new(),
            metadata: Default::default(),
            custom_fallback: false,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    /// The service's metrics; register custom counters here.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The fault injector behind `/admin/faults`.
    pub fn faults(&self) -> &FaultInjector {
        &self.faults
    }

    /// Discovery of other services.
    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// A resilient client using this host's directory and metrics.
    pub fn client(&self, policy: ClientPolicy) -> ResilientClient {
        ResilientClient::new(self.directory.clone(), policy, self.metrics.clone())
    }

    /// JWT keys when `JWT_SECRET` is set.
    pub fn jwt(&self) -> Option<&JwtKeys> {
        self.jwt.as_ref()
    }

    /// Cancelled when shutdown starts; background loops should `select!` on it.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Tracker for background tasks; shutdown waits for them.
    pub fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }

    /// Add a dependency check to `/ready`.
    pub fn readiness_check<F, Fut>(&mut self, name: &str, check: F) -> &mut Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.readiness
            .push((name.to_owned(), Arc::new(move || Box::pin(check()))));
        self
    }

    /// Serve `doc` at `/openapi.json` (see [`openapi::document`]).
    pub fn openapi(&mut self, doc: Value) -> &mut Self {
        self.openapi = doc;
        self
    }

    /// Run `hook` after the server has drained (e.g. close a database pool).
    pub fn on_shutdown(&mut self, hook: impl Future<Output = ()> + Send + 'static) -> &mut Self {
        self.on_shutdown.push(Box::pin(hook));
        self
    }

    /// Add a metadata label sent with the registration.
    pub fn metadata(&mut self, key: &str, value: &str) -> &mut Self {
        self.metadata.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Declare that the routes given to [`ServiceHost::bind`] carry their own fallback
    /// (e.g. the gateway's proxy), so the kit does not add its JSON 404 fallback.
    pub fn custom_fallback(&mut self) -> &mut Self {
        self.custom_fallback = true;
        self
    }

    /// The full router of a single-listener service: kit endpoints, `routes`, and the
    /// middleware stack.
    pub fn router(&self, routes: Router) -> Router {
        self.listener_router(routes, Listener::Combined)
    }

    /// The router for one listener: every route, with `listener`'s path filter.
    fn listener_router(&self, routes: Router, listener: Listener) -> Router {
        let ready = ReadyState {
            checks: self.readiness.clone(),
        };
        let openapi = Arc::new(self.openapi.clone());
        let name = self.config.service_name.clone();
        let metrics = self.metrics.clone();
        let router = Router::new()
            .route(
                "/health",
                get(move || {
                    let name = name.clone();
                    async move { Json(json!({"status": "ok", "service": name})) }
                }),
            )
            .route("/ready", get(ready_handler).with_state(ready))
            .route(
                "/metrics",
                get(move || {
                    let m = metrics.clone();
                    async move {
                        (
                            [(
                                axum::http::header::CONTENT_TYPE,
                                "text/plain; version=0.0.4; charset=utf-8",
                            )],
                            m.render(),
                        )
                    }
                }),
            )
            .route(
                "/openapi.json",
                get(move || {
                    let doc = openapi.clone();
                    async move { Json((*doc).clone()) }
                }),
            )
            .merge(self.faults.routes())
            .merge(routes)
            // Every route, the service's included, unless it brought its own.
            .method_not_allowed_fallback(method_not_allowed);
        let router = if self.custom_fallback {
            router
        } else {
            router.fallback(not_found)
        };
        let gate = Gate {
            listener,
            token: AdminToken(self.config.admin_token.as_deref().map(Arc::from)),
            faults: self.faults.clone(),
        };
        let pipeline = Pipeline {
            gate,
            metrics: self.metrics.clone(),
        };
        router.layer(from_fn_with_state(pipeline, serve_request))
    }

    /// Bind the listener(s) and assemble the routers; registration starts with
    /// [`RunningService::run_until_stopped`].
    pub async fn bind(self, routes: Router) -> Result<RunningService, AppError> {
        let ip = self.config.bind_host;
        let listen = |port: u16| async move {
            let addr = SocketAddr::new(ip, port);
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| AppError::Bind { addr, source })?;
            let local = listener.local_addr().map_err(AppError::Serve)?;
            Ok::<_, AppError>((listener, local))
        };
        let (listener, local_addr) = listen(self.config.port).await?;
        let (router, admin) = match self.config.admin_port {
            None => (self.router(routes), None),
            Some(port) => {
                let (admin_listener, admin_addr) = listen(port).await?;
                let admin_router = self.listener_router(routes.clone(), Listener::Admin);
                (
                    self.listener_router(routes, Listener::Api),
                    Some((admin_listener, admin_addr, admin_router)),
                )
            }
        };
        Ok(RunningService {
            host: self,
            listener,
            local_addr,
            router,
            admin,
        })
    }
}

/// A bound service, ready to run.
pub struct RunningService {
    host: ServiceHost,
    listener: tokio::net::TcpListener,
    local_addr: SocketAddr,
    router: Router,
    /// The admin listener, its address and router, when `ADMIN_PORT` is set.
    admin: Option<(tokio::net::TcpListener, SocketAddr, Router)>,
}

impl std::fmt::Debug for RunningService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningService")
            .field("local_addr", &self.local_addr)
            .field("admin_addr", &self.admin_addr())
            .finish_non_exhaustive()
    }
}

impl RunningService {
    /// The address actually bound (useful with `PORT=0`).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The admin listener's address when `ADMIN_PORT` is set; otherwise the admin API is
    /// on [`RunningService::local_addr`].
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|(_, addr, _)| *addr)
    }

    /// Cancel this token to stop the service gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.host.cancel.clone()
    }

    /// Register, serve until a shutdown signal, then shut down gracefully.
    pub async fn run_until_stopped(self) -> Result<(), AppError> {
        let RunningService {
            host,
            listener,
            local_addr,
            router,
            admin,
        } = self;
        let cancel = host.cancel.clone();
        let signals = cancel.clone();
        host.tracker.spawn(async move {
            tokio::select! {
                () = signals.cancelled() => {}
                () = shutdown_signal() => {
                    tracing::info!("shutdown signal received");
                    signals.cancel();
                }
            }
        });
        if let (Some(client), Some(reg)) = (&host.registry, &host.config.registry) {
            let id = reg.instance_id.clone().unwrap_or_else(|| {
                format!(
                    "{}-{}-{}",
                    host.config.service_name,
                    reg.advertise_host,
                    local_addr.port()
                )
            });
            let request = RegisterRequest {
                service: host.config.service_name.clone(),
                id,
                address: reg.advertise_host.clone(),
                port: local_addr.port(),
                metadata: host.metadata.clone(),
                health_url: Some(format!(
                    "http://{}:{}/health",
                    reg.advertise_host,
                    local_addr.port()
                )),
                ttl_ms: Some(reg.ttl.as_millis() as u64),
            };
            Registration::spawn(
                client.clone(),
                request,
                reg.heartbeat,
                &host.tracker,
                cancel.clone(),
            );
        }
        tracing::info!(service = %host.config.service_name, addr = %local_addr, "listening");
        let serve = |listener: tokio::net::TcpListener, router: Router| {
            let drain = cancel.clone();
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move { drain.cancelled().await })
            .into_future()
        };
        let api = serve(listener, router);
        let admin = admin.map(|(listener, addr, router)| {
            tracing::info!(addr = %addr, "admin API listening");
            serve(listener, router)
        });
        // Both listeners drain together; the first to fail stops the other.
        let server = async move {
            match admin {
                None => api.await,
                Some(admin) => tokio::try_join!(api, admin).map(|_| ()),
            }
        };
        let grace = host.config.shutdown_grace;
        let deadline = cancel.clone();
        let result = tokio::select! {
            r = server => r.map_err(AppError::Serve),
            () = async move { deadline.cancelled().await; tokio::time::sleep(grace).await } => {
                tracing::warn!(?grace, "in-flight requests did not finish within the grace period");
                Ok(())
            }
        };
        cancel.cancel();
        host.tracker.close();
        if tokio::time::timeout(Duration::from_secs(5), host.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("background tasks did not stop within 5s");
        }
        for hook in host.on_shutdown {
            hook.await;
        }
        tracing::info!("stopped");
        result
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

#[derive(Clone)]
struct ReadyState {
    checks: Vec<(String, ReadinessFn)>,
}

async fn ready_handler(State(state): State<ReadyState>) -> Response {
    let mut results = serde_json::Map::new();
    let mut ok = true;
    for (name, check) in &state.checks {
        let r = tokio::time::timeout(Duration::from_secs(2), check()).await;
        let v = match r {
            Ok(Ok(())) => "ok".to_owned(),
            Ok(Err(e)) => {
                ok = false;
                e
            }
            Err(_) => {
                ok = false;
                "timed out after 2s".to_owned()
            }
        };
        results.insert(name.clone(), Value::String(v));
    }
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({"status": if ok { "ready" } else { "not_ready" }, "checks": results})),
    )
        .into_response()
}

/// Everything the kit does around a request, as one middleware, outermost first: the
/// request context and span ([`context::propagate`]), metrics ([`crate::metrics::track`]), then
/// the [`Gate`]. Each `from_fn` layer boxes a future and clones the inner service on every
/// request, and five of them were a visible share of the gateway's CPU per request
/// (bench/notes/gateway-profile.md).
#[derive(Clone)]
struct Pipeline {
    gate: Gate,
    metrics: Metrics,
}

async fn serve_request(State(pipeline): State<Pipeline>, req: Request, next: Next) -> Response {
    let Pipeline { gate, metrics } = pipeline;
    context::traced(req, move |req| async move {
        metrics
            .timed(req, move |req| gate_request(gate, req, next))
            .await
    })
    .await
}

/// The listener's path filter, the admin-token check and fault injection, in that order.
#[derive(Clone)]
struct Gate {
    listener: Listener,
    token: AdminToken,
    faults: FaultInjector,
}

async fn gate_request(gate: Gate, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if let Some(message) = listener_refuses(gate.listener, path) {
        return ApiError::not_found(message).into_response();
    }
    if is_admin_path(path) {
        if let Err(e) = gate.token.check(req.headers()) {
            return e.into_response();
        }
    }
    gate.faults.apply(req, next).await
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

/// Which requests a listener answers (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listener {
    /// No `ADMIN_PORT`: everything on one port.
    Combined,
    /// The main port when `ADMIN_PORT` is set: everything but `/admin/**`.
    Api,
    /// The admin port: `/admin/**` and the probes.
    Admin,
}

fn is_admin_path(path: &str) -> bool {
    path == "/admin" || path.starts_with("/admin/")
}

/// Why `listener` does not serve `path`, if it does not.
fn listener_refuses(listener: Listener, path: &str) -> Option<&'static str> {
    match listener {
        Listener::Combined => None,
        Listener::Api if is_admin_path(path) => {
            Some("the admin API is served on the admin port (ADMIN_PORT), not on this one")
        }
        Listener::Admin
            if !(is_admin_path(path) || matches!(path, "/health" | "/ready" | "/metrics")) =>
        {
            Some("this is the admin port: it serves /admin/**, /health, /ready and /metrics")
        }
        Listener::Api | Listener::Admin => None,
    }
}

/// A known path with a method it does not take: axum's bare 405 with a JSON body and a
/// stable code like every other error (axum still adds `Allow`).
async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this method is not allowed on this path; see /openapi.json",
    )
}
