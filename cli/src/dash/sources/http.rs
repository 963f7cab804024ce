//! The admin APIs: the gateway's `GET /admin/upstreams` (instances, breakers, ejections)
//! and the order service's `GET /admin/sagas` (counts and recent orders), each polled on
//! its replica's 127.0.0.1 port.

use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::dash::state::{Replica, Sagas, Update, Upstreams};

/// Poll interval.
pub const EVERY: Duration = Duration::from_secs(1);
/// Admin token sent as `X-Admin-Token` (override with `MSCTL_ADMIN_TOKEN`).
pub const DEFAULT_ADMIN_TOKEN: &str = "msctl-admin";

/// Which admin endpoint a poller reads.
#[derive(Debug, Clone, Copy)]
pub enum Endpoint {
    /// Gateway upstreams.
    Upstreams,
    /// Order sagas.
    Sagas,
}

impl Endpoint {
    fn component(self) -> &'static str {
        match self {
            Endpoint::Upstreams => "gateway",
            Endpoint::Sagas => "order-service",
        }
    }
    fn path(self) -> &'static str {
        match self {
            Endpoint::Upstreams => "/admin/upstreams",
            Endpoint::Sagas => "/admin/sagas?limit=10",
        }
    }
}

async fn get<T: DeserializeOwned>(
    client: &reqwest::Client,
    token: &str,
    rows: &watch::Receiver<Vec<Replica>>,
    endpoint: Endpoint,
) -> Result<T, String> {
    // Any running replica answers for the whole service.
    let port = rows
        .borrow()
        .iter()
        .filter(|r| r.component == endpoint.component() && r.state == "running")
        .find_map(|r| r.metrics.as_ref().map(|m| m.0));
    let Some(port) = port else {
        return Err(format!("no running {}", endpoint.component()));
    };
    let url = format!("http://127.0.0.1:{port}{}", endpoint.path());
    let resp = client
        .get(&url)
        .header("X-Admin-Token", token)
        .send()
        .await
        .map_err(|e| format!("{}: {e}", endpoint.component()))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("{} answered {status}", endpoint.component()));
    }
    resp.json::<T>()
        .await
        .map_err(|e| format!("{}: {e}", endpoint.component()))
}

/// Polls one admin endpoint until cancelled.
pub async fn run(
    endpoint: Endpoint,
    client: reqwest::Client,
    token: String,
    rows: watch::Receiver<Vec<Replica>>,
    tx: mpsc::Sender<Update>,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(EVERY);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let update = match endpoint {
            Endpoint::Upstreams => {
                Update::Upstreams(get::<Upstreams>(&client, &token, &rows, endpoint).await)
            }
            Endpoint::Sagas => Update::Sagas(get::<Sagas>(&client, &token, &rows, endpoint).await),
        };
        if tx.send(update).await.is_err() {
            return;
        }
    }
}
