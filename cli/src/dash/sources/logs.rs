//! Follows the logs of one container (the last lines, then new ones) until the stream
//! ends, the user picks another component, or the dashboard exits.

use std::sync::Arc;

use futures_util::StreamExt;
use msctl_stack::runtime::{LogOptions, Runtime};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::dash::state::Update;

/// Lines of history fetched before following.
pub const TAIL: u64 = 200;

/// Streams `id`'s log lines as [`Update::Log`] tagged with `name`.
pub async fn run(
    runtime: Arc<dyn Runtime>,
    id: String,
    name: String,
    tx: mpsc::Sender<Update>,
    cancel: CancellationToken,
) {
    let mut lines = runtime.logs(
        &id,
        LogOptions {
            follow: true,
            tail: Some(TAIL),
            since: None,
        },
    );
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            item = lines.next() => {
                let update = match item {
                    Some(Ok(l)) => Update::Log(name.clone(), l.text),
                    Some(Err(e)) => Update::LogEnd(name.clone(), e.to_string()),
                    None => Update::LogEnd(name.clone(), "container stopped".to_string()),
                };
                let end = matches!(update, Update::LogEnd(..));
                if tx.send(update).await.is_err() || end {
                    return;
                }
            }
        }
    }
}
