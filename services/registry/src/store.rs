//! The registry's in-memory state: instances, their TTL deadlines and health, and a change
//! index that blocking queries wait on.
//!
//! The index grows by one on every visible change (an instance added, changed, removed,
//! expired or changing health); heartbeats alone do not change it, so watchers wake only
//! when there is something new to see.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use service_kit::registry::{
    Instance, RegisterRequest, ServiceInstances, ServiceList, ServiceSummary,
};
use tokio::sync::watch;
use tokio::time::Instant;

#[derive(Debug, Clone)]
struct Entry {
    request: RegisterRequest,
    ttl: Duration,
    expires_at: Instant,
    healthy: bool,
    health_failures: u32,
}

impl Entry {
    fn view(&self) -> Instance {
        Instance {
            id: self.request.id.clone(),
            service: self.request.service.clone(),
            address: self.request.address.clone(),
            port: self.request.port,
            metadata: self.request.metadata.clone(),
            healthy: self.healthy,
        }
    }
}

#[derive(Debug, Default)]
struct State {
    entries: BTreeMap<String, Entry>,
    index: u64,
}

/// All registered instances; shared behind an `Arc`.
#[derive(Debug)]
pub struct Store {
    state: Mutex<State>,
    changes: watch::Sender<u64>,
    started: Instant,
}

/// An instance due for an active health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthTarget {
    /// Instance id.
    pub id: String,
    /// URL to GET.
    pub url: String,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    /// An empty store; the index starts at 1 so that `index=0` never blocks.
    pub fn new() -> Self {
        let (changes, _) = watch::channel(1);
        Self {
            state: Mutex::new(State {
                entries: BTreeMap::new(),
                index: 1,
            }),
            changes,
            started: Instant::now(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self, state: &mut State) {
        state.index += 1;
        self.changes.send_replace(state.index);
    }

    /// The current change index.
    pub fn index(&self) -> u64 {
        self.lock().index
    }

    /// Time since the store was created.
    pub fn uptime(&self) -> Duration {
        Instant::now() - self.started
    }

    /// Add or refresh an instance; a re-registration keeps its health state.
    pub fn register(&self, request: RegisterRequest, ttl: Duration, now: Instant) -> u64 {
        let mut st = self.lock();
        let changed = match st.entries.get_mut(&request.id) {
            Some(e) => {
                let changed = e.request != request;
                e.request = request;
                e.ttl = ttl;
                e.expires_at = now + ttl;
                changed
            }
            None => {
                st.entries.insert(
                    request.id.clone(),
                    Entry {
                        request,
                        ttl,
                        expires_at: now + ttl,
                        healthy: true,
                        health_failures: 0,
                    },
                );
                true
            }
        };
        if changed {
            self.bump(&mut st);
        }
        st.index
    }

    /// Extend an instance's TTL; `false` when the instance is unknown.
    pub fn heartbeat(&self, id: &str, now: Instant) -> bool {
        let mut st = self.lock();
        match st.entries.get_mut(id) {
            Some(e) => {
                e.expires_at = now + e.ttl;
                true
            }
            None => false,
        }
    }

    /// Remove an instance; `false` when it was unknown.
    pub fn deregister(&self, id: &str) -> bool {
        let mut st = self.lock();
        let removed = st.entries.remove(id).is_some();
        if removed {
            self.bump(&mut st);
        }
        removed
    }

    /// Remove instances whose TTL passed; returns their ids.
    pub fn expire(&self, now: Instant) -> Vec<String> {
        let mut st = self.lock();
        let expired: Vec<String> = st
            .entries
            .iter()
            .filter(|(_, e)| e.expires_at <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            st.entries.remove(id);
        }
        if !expired.is_empty() {
            self.bump(&mut st);
        }
        expired
    }

    /// Instances with a health URL.
    pub fn health_targets(&self) -> Vec<HealthTarget> {
        self.lock()
            .entries
            .values()
            .filter_map(|e| {
                e.request.health_url.as_ref().map(|url| HealthTarget {
                    id: e.request.id.clone(),
                    url: url.clone(),
                })
            })
            .collect()
    }

    /// Record a health-check result: healthy on success, unhealthy after `threshold`
    /// consecutive failures.
    pub fn record_health(&self, id: &str, ok: bool, threshold: u32) {
        let mut st = self.lock();
        let Some(e) = st.entries.get_mut(id) else {
            return;
        };
        let was = e.healthy;
        if ok {
            e.health_failures = 0;
            e.healthy = true;
        } else {
            e.health_failures += 1;
            if e.health_failures >= threshold.max(1) {
                e.healthy = false;
            }
        }
        if was != e.healthy {
            tracing::info!(%id, healthy = e.healthy, "instance health changed");
            self.bump(&mut st);
        }
    }

    /// Instances of `service` (healthy ones unless `all`).
    pub fn service(&self, service: &str, all: bool) -> ServiceInstances {
        let st = self.lock();
        ServiceInstances {
            service: service.to_owned(),
            index: st.index,
            uptime_ms: self.uptime().as_millis() as u64,
            instances: st
                .entries
                .values()
                .filter(|e| e.request.service == service && (all || e.healthy))
                .map(Entry::view)
                .collect(),
        }
    }

    /// Every service with instance counts.
    pub fn services(&self) -> ServiceList {
        let st = self.lock();
        let mut by_name: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for e in st.entries.values() {
            let c = by_name.entry(e.request.service.as_str()).or_default();
            c.0 += 1;
            c.1 += usize::from(e.healthy);
        }
        ServiceList {
            index: st.index,
            services: by_name
                .into_iter()
                .map(|(name, (instances, healthy))| ServiceSummary {
                    name: name.to_owned(),
                    instances,
                    healthy,
                })
                .collect(),
        }
    }

    /// Wait until the index differs from `index`, or `wait` elapses.
    pub async fn wait_for_change(&self, index: u64, wait: Duration) {
        let mut rx = self.changes.subscribe();
        let _ = tokio::time::timeout(wait, rx.wait_for(|current| *current != index)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(id: &str, service: &str) -> RegisterRequest {
        RegisterRequest {
            service: service.into(),
            id: id.into(),
            address: "10.0.0.1".into(),
            port: 8080,
            metadata: Default::default(),
            health_url: None,
            ttl_ms: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn instances_expire_without_heartbeats_and_live_with_them() {
        let store = Store::new();
        store.register(req("a", "s"), Duration::from_secs(10), Instant::now());
        store.register(req("b", "s"), Duration::from_secs(10), Instant::now());
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(store.heartbeat("a", Instant::now()));
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(store.expire(Instant::now()), vec!["b".to_owned()]);
        assert_eq!(store.service("s", false).instances.len(), 1);
        assert!(!store.heartbeat("b", Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn heartbeats_do_not_change_the_index_but_registrations_do() {
        let store = Store::new();
        let i1 = store.register(req("a", "s"), Duration::from_secs(10), Instant::now());
        store.heartbeat("a", Instant::now());
        assert_eq!(store.index(), i1);
        let i2 = store.register(req("a", "s"), Duration::from_secs(10), Instant::now());
        assert_eq!(i2, i1, "identical re-registration is not a change");
        let mut changed = req("a", "s");
        changed.port = 9090;
        assert!(store.register(changed, Duration::from_secs(10), Instant::now()) > i1);
    }

    #[tokio::test(start_paused = true)]
    async fn unhealthy_instances_are_hidden_after_the_threshold() {
        let store = Store::new();
        store.register(req("a", "s"), Duration::from_secs(10), Instant::now());
        store.record_health("a", false, 2);
        assert_eq!(store.service("s", false).instances.len(), 1);
        store.record_health("a", false, 2);
        assert!(store.service("s", false).instances.is_empty());
        assert_eq!(store.service("s", true).instances.len(), 1);
        store.record_health("a", true, 2);
        assert_eq!(store.service("s", false).instances.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn blocking_wait_returns_on_change_or_after_the_wait() {
        let store = std::sync::Arc::new(Store::new());
        let index = store.index();
        let start = Instant::now();
        store.wait_for_change(index, Duration::from_secs(30)).await;
        assert_eq!(Instant::now() - start, Duration::from_secs(30));
        let s = store.clone();
        let waiter =
            tokio::spawn(async move { s.wait_for_change(index, Duration::from_secs(30)).await });
        tokio::time::advance(Duration::from_secs(1)).await;
        store.register(req("a", "s"), Duration::from_secs(10), Instant::now());
        waiter.await.expect("waiter finished");
        assert!(Instant::now() - start < Duration::from_secs(32));
    }
}
