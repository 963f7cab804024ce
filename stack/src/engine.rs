//! Connecting to the Docker engine.
//!
//! `connect_with_defaults` honours `DOCKER_HOST` with any scheme, so a bogus value fails
//! cleanly here instead of silently falling back to the local socket. The engine on a
//! developer machine may be older than bollard's default API version, so the version is
//! negotiated before any other call.

use std::time::Duration;

use bollard::Docker;

/// The engine could not be reached; the command line maps this to exit code 3.
#[derive(Debug, thiserror::Error)]
#[error("cannot reach the Docker engine at {endpoint}: {reason}; is the daemon running and is DOCKER_HOST right?")]
pub struct EngineUnreachable {
    /// What we tried to reach (DOCKER_HOST or the default socket).
    pub endpoint: String,
    /// What went wrong, in the engine client's words.
    pub reason: String,
}

/// Long requests (image imports, builds, stops) must not hit bollard's 120 s default.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1800);

/// Connects, negotiates the API version and pings the engine.
pub async fn connect() -> Result<Docker, EngineUnreachable> {
    let endpoint =
        std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".to_string());
    let unreachable = |reason: String| EngineUnreachable {
        endpoint: endpoint.clone(),
        reason,
    };
    let docker = Docker::connect_with_defaults()
        .map_err(|e| unreachable(e.to_string()))?
        .with_timeout(REQUEST_TIMEOUT);
    // Negotiation itself talks to the engine; bound it so a black-holed TCP host fails fast.
    let docker = tokio::time::timeout(Duration::from_secs(10), docker.negotiate_version())
        .await
        .map_err(|_| unreachable("no answer within 10s".to_string()))?
        .map_err(|e| unreachable(e.to_string()))?;
    tokio::time::timeout(Duration::from_secs(10), docker.ping())
        .await
        .map_err(|_| unreachable("no answer to ping within 10s".to_string()))?
        .map_err(|e| unreachable(e.to_string()))?;
    Ok(docker)
}
