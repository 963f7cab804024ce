//! The `order-service` binary: configuration from the environment, then serve until stopped.

fn main() -> anyhow::Result<()> {
    service_kit::init_tracing();
    let config = order_service::OrderConfig::from_env()?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let running = order_service::build(config, order_service::Options::default()).await?;
        running.run_until_stopped().await?;
        Ok(())
    })
}
