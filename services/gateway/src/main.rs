//! The `gateway` binary: configuration from the environment, then serve until stopped.

/// mimalloc instead of glibc's malloc: the proxy allocates and frees many small buffers per
/// request, and malloc/free were 11 % of its CPU samples under wrk; alternating runs
/// measured 24 % less CPU per request with it (bench/notes/gateway-profile.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
