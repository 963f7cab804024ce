//! A minimal kit-based upstream for benchmarks: answers every path with a small JSON body.
//! Configured like any service (`SERVICE_NAME`, `PORT`, `BIND_HOST`, `REGISTRY_URL`,
//! `ADVERTISE_HOST`); used by `bench/gateway.sh`.

use axum::{Json, Router};
use serde_json::json;
use service_kit::{ServiceConfig, ServiceHost};

fn main() -> anyhow::Result<()> {
    service_kit::init_tracing();
    let config = ServiceConfig::from_env()?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let mut host = ServiceHost::new(config);
        host.custom_fallback();
        let routes =
            Router::new().fallback(|| async { Json(json!({"ok": true, "items": [1, 2, 3]})) });
        host.bind(routes).await?.run_until_stopped().await?;
        Ok(())
    })
}
