//! The `gateway` binary: configuration from the environment, then serve until stopped.

fn main() -> anyhow::Result<()> {
    service_kit::init_tracing();
    let (service, gateway) = gateway::config::from_env()?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let running = gateway::build(service, gateway).await?;
        running.run_until_stopped().await?;
        Ok(())
    })
}
