//! The `registry` binary: configuration from the environment, then serve until stopped.

fn main() -> anyhow::Result<()> {
    service_kit::init_tracing();
    let (config, settings) = registry::config_from_env()?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let service = registry::build(config, settings).await?;
        service.run_until_stopped().await?;
        Ok(())
    })
}
