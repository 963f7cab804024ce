//! The `notification-service` binary: configuration from the environment, then serve.

fn main() -> anyhow::Result<()> {
    service_kit::init_tracing();
    let config = notification_service::NotificationConfig::from_env()?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let running = notification_service::build(config).await?;
        running.run_until_stopped().await?;
        Ok(())
    })
}
