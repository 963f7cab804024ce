//! Print an access token for `$1` (default `bench-user`) signed with `JWT_SECRET` /
//! `JWT_ISSUER`, valid for an hour: to try or load the gateway's authenticated routes by hand
//! (`wrk -H "Authorization: Bearer $(target/release/examples/mint_token)" ...`).

use std::time::Duration;

use service_kit::config::JwtConfig;
use service_kit::jwt::JwtKeys;

fn main() -> anyhow::Result<()> {
    let secret = std::env::var("JWT_SECRET").map_err(|_| anyhow::anyhow!("set JWT_SECRET"))?;
    let issuer = std::env::var("JWT_ISSUER").unwrap_or_else(|_| "msctl".into());
    let user = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "bench-user".into());
    let (token, _) =
        JwtKeys::new(&JwtConfig { secret, issuer }).issue(&user, Duration::from_secs(3600))?;
    println!("{token}");
    Ok(())
}
