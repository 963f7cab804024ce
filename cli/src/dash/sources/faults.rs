//! Active faults from the chaos ledger (a file on disk, read again every second so faults
//! applied by another msctl show up too).

use std::sync::Arc;
use std::time::Duration;

use msctl_chaos::{Chaos, FaultRecord, FaultState};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::dash::state::{Fault, Update};

/// Poll interval.
pub const EVERY: Duration = Duration::from_secs(1);

/// A ledger record as the faults panel shows it.
pub fn fault(r: &FaultRecord) -> Fault {
    Fault {
        id: r.id.to_string(),
        kind: r.kind.to_string(),
        target: r.target.clone(),
        state: match r.state {
            FaultState::Active => "active",
            FaultState::Pending => "pending",
        }
        .to_string(),
        containers: r.containers.iter().map(|c| c.name.clone()).collect(),
        expires_at: r.expires_at.clone(),
    }
}

/// Reads the ledger every [`EVERY`] until cancelled.
pub async fn run(chaos: Arc<Chaos>, tx: mpsc::Sender<Update>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(EVERY);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let faults = chaos
            .list()
            .await
            .map(|l| l.iter().map(fault).collect())
            .map_err(|e| e.to_string());
        if tx.send(Update::Faults(faults)).await.is_err() {
            return;
        }
    }
}
