//! The registry's wire types and the client side of service discovery.
//!
//! - [`RegistryClient`]: plain calls to the registry's HTTP API.
//! - [`Registration`]: registers this instance, heartbeats, re-registers when the registry
//!   answers that it does not know the instance (e.g. it restarted and lost its state), and
//!   deregisters on shutdown.
//! - [`Directory`]: a per-service view of healthy instances kept fresh by a background
//!   watcher using blocking queries. When the registry is unreachable the last good view is
//!   kept (and marked stale); a freshly restarted registry's empty answer does not wipe a
//!   non-empty view during its warm-up, while instances are re-registering.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Body of `PUT /v1/instances` (register or refresh an instance).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterRequest {
    /// Service name, e.g. `product-service`.
    pub service: String,
    /// Instance id, unique across the registry.
    pub id: String,
    /// Host or IP other services use to reach the instance.
    pub address: String,
    /// Port of the instance.
    pub port: u16,
    /// Free-form labels.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// URL the registry polls to health-check the instance; none = TTL only.
    #[serde(default)]
    pub health_url: Option<String>,
    /// How long without a heartbeat before the instance expires.
    #[serde(default)]
    pub ttl_ms: Option<u64>,
}

/// One registered instance as the registry reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// Instance id.
    pub id: String,
    /// Service name.
    pub service: String,
    /// Host or IP.
    pub address: String,
    /// Port.
    pub port: u16,
    /// Labels.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Result of the latest active health check (true when not checked).
    pub healthy: bool,
}

impl Instance {
    /// `http://address:port`.
    pub fn base_url(&self) -> String {
        format!("http://{}:{}", self.address, self.port)
    }
}

/// Answer of `GET /v1/services/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInstances {
    /// Service name.
    pub service: String,
    /// Registry change index at the time of the answer (for blocking queries).
    pub index: u64,
    /// Milliseconds since the registry started.
    pub uptime_ms: u64,
    /// Healthy instances (all instances with `?all=true`).
    pub instances: Vec<Instance>,
}

/// One line of `GET /v1/services`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSummary {
    /// Service name.
    pub name: String,
    /// Registered instances.
    pub instances: usize,
    /// Of which healthy.
    pub healthy: usize,
}

/// Answer of `GET /v1/services`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceList {
    /// Registry change index.
    pub index: u64,
    /// Every service with at least one instance.
    pub services: Vec<ServiceSummary>,
}

/// A failed registry call.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry could not be reached or did not answer in time.
    #[error("registry at {url} is unreachable: {source}")]
    Unreachable {
        /// Registry base URL.
        url: String,
        /// Transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The registry answered with an unexpected status.
    #[error("registry answered {status} to {what}: {body}")]
    Status {
        /// What was attempted.
        what: &'static str,
        /// HTTP status.
        status: u16,
        /// Body (truncated).
        body: String,
    },
}

/// Outcome of a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heartbeat {
    /// The registry refreshed the instance.
    Refreshed,
    /// The registry does not know the instance: register again.
    Unknown,
}

/// Client of the registry HTTP API.
#[derive(Debug, Clone)]
pub struct RegistryClient {
    base: String,
    http: reqwest::Client,
}

impl RegistryClient {
    /// A client for the registry at `base` (e.g. `http://registry:8500`).
    pub fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(2))
                .pool_idle_timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
        }
    }

    /// The registry base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn unreachable(&self, source: reqwest::Error) -> RegistryError {
        RegistryError::Unreachable {
            url: self.base.clone(),
            source,
        }
    }

    async fn status_error(what: &'static str, resp: reqwest::Response) -> RegistryError {
        let status = resp.status().as_u16();
        let mut body = resp.text().await.unwrap_or_default();
        body.truncate(300);
        RegistryError::Status { what, status, body }
    }

    /// Register (or refresh) an instance.
    pub async fn register(&self, req: &RegisterRequest) -> Result<(), RegistryError> {
        let resp = self
            .http
            .put(format!("{}/v1/instances", self.base))
            .timeout(Duration::from_secs(3))
            .json(req)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(Self::status_error("register", resp).await)
        }
    }

    /// Heartbeat an instance.
    pub async fn heartbeat(&self, id: &str) -> Result<Heartbeat, RegistryError> {
        let resp = self
            .http
            .put(format!(
                "{}/v1/instances/{}/heartbeat",
                self.base,
                encode(id)
            ))
            .timeout(Duration::from_secs(3))
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        match resp.status().as_u16() {
            200..=299 => Ok(Heartbeat::Refreshed),
            404 => Ok(Heartbeat::Unknown),
            _ => Err(Self::status_error("heartbeat", resp).await),
        }
    }

    /// Remove an instance (unknown instances are not an error).
    pub async fn deregister(&self, id: &str) -> Result<(), RegistryError> {
        let resp = self
            .http
            .delete(format!("{}/v1/instances/{}", self.base, encode(id)))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        if resp.status().is_success() || resp.status().as_u16() == 404 {
            Ok(())
        } else {
            Err(Self::status_error("deregister", resp).await)
        }
    }

    /// Healthy instances of `service`. With `index`, blocks up to `wait` until the
    /// registry's index differs from it (a blocking query).
    pub async fn discover(
        &self,
        service: &str,
        index: Option<u64>,
        wait: Duration,
    ) -> Result<ServiceInstances, RegistryError> {
        let mut url = format!("{}/v1/services/{}", self.base, encode(service));
        if let Some(i) = index {
            url.push_str(&format!("?index={i}&wait={}ms", wait.as_millis()));
        }
        let resp = self
            .http
            .get(url)
            .timeout(wait + Duration::from_secs(3))
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        if !resp.status().is_success() {
            return Err(Self::status_error("discover", resp).await);
        }
        resp.json().await.map_err(|e| self.unreachable(e))
    }

    /// Every known service.
    pub async fn services(&self) -> Result<ServiceList, RegistryError> {
        let resp = self
            .http
            .get(format!("{}/v1/services", self.base))
            .timeout(Duration::from_secs(3))
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        if !resp.status().is_success() {
            return Err(Self::status_error("list services", resp).await);
        }
        resp.json().await.map_err(|e| self.unreachable(e))
    }
}

/// Percent-encode a path segment (ids and names are normally plain already).
fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Keeps an instance registered until shutdown; see the module docs.
#[derive(Debug)]
pub struct Registration {
    /// The registration request sent (and re-sent) to the registry.
    pub request: RegisterRequest,
}

impl Registration {
    /// Start registering `request` and heartbeating every `heartbeat` on `tracker`; on
    /// `cancel` the loop deregisters and ends.
    pub fn spawn(
        client: RegistryClient,
        request: RegisterRequest,
        heartbeat: Duration,
        tracker: &TaskTracker,
        cancel: CancellationToken,
    ) -> Self {
        let req = request.clone();
        tracker.spawn(async move {
            let mut registered = false;
            loop {
                if registered {
                    match client.heartbeat(&req.id).await {
                        Ok(Heartbeat::Refreshed) => {}
                        // seeded bug (fidelity suite): a 404 is handled like any failed
                        // heartbeat; the instance keeps heartbeating an id the registry has
                        // forgotten and never registers again.
                        Ok(Heartbeat::Unknown) if cfg!(feature = "bug-no-reregister") => {
                            tracing::warn!(id = %req.id, "heartbeat not accepted; will retry");
                        }
                        Ok(Heartbeat::Unknown) => {
                            tracing::warn!(id = %req.id, "registry forgot this instance; registering again");
                            registered = false;
                        }
                        Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
                    }
                }
                if !registered {
                    match client.register(&req).await {
                        Ok(()) => {
                            tracing::info!(id = %req.id, registry = %client.base_url(), "registered");
                            registered = true;
                        }
                        Err(e) => tracing::warn!(error = %e, "registration failed; will retry"),
                    }
                }
                tokio::select! {
                    () = cancel.cancelled() => break,
                    () = tokio::time::sleep(heartbeat) => {}
                }
            }
            match client.deregister(&req.id).await {
                Ok(()) => tracing::info!(id = %req.id, "deregistered"),
                Err(e) => tracing::warn!(error = %e, "deregistration failed"),
            }
        });
        Self { request }
    }
}

/// The discovered instances of one service.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceView {
    /// Healthy instances, sorted by id.
    pub instances: Vec<Instance>,
    /// Registry index of this view.
    pub index: u64,
    /// True while the registry is unreachable and this is the last good view.
    pub stale: bool,
    /// Bumped whenever `instances` changes, so users can cache derived state.
    pub version: u64,
}

/// Why no view could be produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    /// The registry has never answered for this service.
    #[error("no view of {service}: the registry has not answered yet ({reason})")]
    NoView {
        /// Service name.
        service: String,
        /// Last error.
        reason: String,
    },
}

type ViewRx = watch::Receiver<Result<Arc<ServiceView>, String>>;

struct DirectoryInner {
    client: Option<RegistryClient>,
    fixed: HashMap<String, Arc<ServiceView>>,
    views: Mutex<HashMap<String, ViewRx>>,
    tracker: TaskTracker,
    cancel: CancellationToken,
    /// How long a blocking query waits for a change.
    wait: Duration,
    /// How long an empty answer from a freshly started registry is distrusted.
    warmup: Duration,
}

/// Service discovery with last-good views; cheap to clone.
#[derive(Clone)]
pub struct Directory(Arc<DirectoryInner>);

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("registry", &self.0.client.as_ref().map(|c| c.base_url()))
            .finish_non_exhaustive()
    }
}

impl Directory {
    /// A directory watching `client`; watchers run on `tracker` until `cancel`.
    pub fn new(client: RegistryClient, tracker: TaskTracker, cancel: CancellationToken) -> Self {
        Self(Arc::new(DirectoryInner {
            client: Some(client),
            fixed: HashMap::new(),
            views: Mutex::new(HashMap::new()),
            tracker,
            cancel,
            wait: Duration::from_secs(30),
            warmup: Duration::from_secs(15),
        }))
    }

    /// A directory with a fixed set of instances and no registry (tests, local runs).
    pub fn fixed(services: HashMap<String, Vec<Instance>>) -> Self {
        let fixed = services
            .into_iter()
            .map(|(name, mut instances)| {
                instances.sort_by(|a, b| a.id.cmp(&b.id));
                (
                    name,
                    Arc::new(ServiceView {
                        instances,
                        index: 1,
                        stale: false,
                        version: 1,
                    }),
                )
            })
            .collect();
        Self(Arc::new(DirectoryInner {
            client: None,
            fixed,
            views: Mutex::new(HashMap::new()),
            tracker: TaskTracker::new(),
            cancel: CancellationToken::new(),
            wait: Duration::from_secs(30),
            warmup: Duration::ZERO,
        }))
    }

    /// The current view of `service`. The first call for a service starts its watcher and
    /// waits (up to 3 s) for the registry's first answer.
    pub async fn view(&self, service: &str) -> Result<Arc<ServiceView>, DiscoveryError> {
        let Some(client) = &self.0.client else {
            return Ok(self.0.fixed.get(service).cloned().unwrap_or_default());
        };
        let mut rx = {
            let mut views = self.0.views.lock().unwrap_or_else(|e| e.into_inner());
            match views.get(service) {
                Some(rx) => rx.clone(),
                None => {
                    let rx = self.spawn_watcher(client.clone(), service.to_owned());
                    views.insert(service.to_owned(), rx.clone());
                    rx
                }
            }
        };
        let first = rx.borrow_and_update().clone();
        let current = match first {
            Ok(v) => return Ok(v),
            Err(e) if e != PENDING => Err(e),
            Err(e) => {
                // First use: wait briefly for the watcher's first answer.
                let _ = tokio::time::timeout(Duration::from_secs(3), rx.changed()).await;
                let r = rx.borrow().clone();
                r.map_err(|_| e)
            }
        };
        current.map_err(|reason| DiscoveryError::NoView {
            service: service.to_owned(),
            reason,
        })
    }

    /// The current view of `service` without waiting or starting a watcher; `None` when
    /// the service has not been looked up yet or the registry never answered.
    pub fn cached(&self, service: &str) -> Option<Arc<ServiceView>> {
        if self.0.client.is_none() {
            return self.0.fixed.get(service).cloned();
        }
        let views = self.0.views.lock().unwrap_or_else(|e| e.into_inner());
        let rx = views.get(service)?;
        let view = rx.borrow().clone();
        view.ok()
    }

    fn spawn_watcher(&self, client: RegistryClient, service: String) -> ViewRx {
        let (tx, rx) = watch::channel(Err(PENDING.to_owned()));
        let cancel = self.0.cancel.clone();
        let (wait, warmup) = (self.0.wait, self.0.warmup);
        self.0.tracker.spawn(async move {
            let mut index: Option<u64> = None;
            let mut failures: u32 = 0;
            let mut version: u64 = 0;
            loop {
                let answer = tokio::select! {
                    () = cancel.cancelled() => break,
                    a = client.discover(&service, index, wait) => a,
                };
                match answer {
                    Ok(mut si) => {
                        failures = 0;
                        si.instances.sort_by(|a, b| a.id.cmp(&b.id));
                        let previous: Option<Arc<ServiceView>> = tx.borrow().clone().ok();
                        let warming = si.uptime_ms < warmup.as_millis() as u64;
                        let keep_old = si.instances.is_empty()
                            && warming
                            && previous.as_ref().is_some_and(|p| !p.instances.is_empty());
                        if keep_old {
                            tracing::info!(%service, "registry is warming up with no instances; keeping the last view");
                            if let Some(p) = previous.filter(|p| p.stale) {
                                let mut fresh = (*p).clone();
                                fresh.stale = false;
                                let _ = tx.send(Ok(Arc::new(fresh)));
                            }
                        } else {
                            let changed = previous.as_ref().is_none_or(|p| p.instances != si.instances);
                            if changed {
                                version += 1;
                            }
                            let _ = tx.send(Ok(Arc::new(ServiceView {
                                instances: si.instances,
                                index: si.index,
                                stale: false,
                                version,
                            })));
                        }
                        index = Some(si.index);
                        if keep_old {
                            // The registry will not change until instances re-register;
                            // poll gently rather than block on an index we distrust.
                            tokio::select! {
                                () = cancel.cancelled() => break,
                                () = tokio::time::sleep(Duration::from_millis(250)) => {}
                            }
                        }
                    }
                    Err(e) => {
                        failures += 1;
                        // A restarted registry counts its index from scratch and may reach
                        // our old value again; the next query must not block on it.
                        index = None;
                        let reason = e.to_string();
                        let last = tx.borrow().clone();
                        match last {
                            Ok(v) if !v.stale => {
                                tracing::warn!(%service, error = %reason, "registry unreachable; keeping the last view");
                                let mut stale = (*v).clone();
                                stale.stale = true;
                                let _ = tx.send(Ok(Arc::new(stale)));
                            }
                            Ok(_) => {}
                            Err(_) => {
                                let _ = tx.send(Err(reason));
                            }
                        }
                        let backoff = Duration::from_millis(100u64 << failures.min(5));
                        tokio::select! {
                            () = cancel.cancelled() => break,
                            () = tokio::time::sleep(backoff) => {}
                        }
                    }
                }
            }
        });
        rx
    }
}

const PENDING: &str = "waiting for the registry's first answer";
