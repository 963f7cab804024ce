//! Gateway settings from `GATEWAY_*` environment variables (see `services/README.md`).

use std::collections::HashMap;
use std::time::Duration;

use service_kit::client::ClientPolicy;
use service_kit::config::{ConfigError, Env, JwtConfig, ServiceConfig};
use service_kit::resilience::backoff::{Backoff, BudgetConfig};
use service_kit::resilience::balancer::LoadBalancing;
use service_kit::resilience::breaker::BreakerConfig;
use service_kit::resilience::rate_limit::RateLimit;

/// Everything the gateway needs beyond the kit's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayConfig {
    /// JWT validation settings (`JWT_SECRET`, `JWT_ISSUER`); required.
    pub jwt: JwtConfig,
    /// Per-client rate limit; `None` disables limiting (`GATEWAY_RATE_LIMIT_RPS=0`).
    pub rate_limit: Option<RateLimit>,
    /// Use the first `X-Forwarded-For` address as the client key (only behind a trusted
    /// proxy; otherwise clients could pick their own bucket).
    pub trust_forwarded_for: bool,
    /// Upstream policy: timeout, retries, backoff, budget, breaker, balancing.
    pub policy: ClientPolicy,
    /// Per-route timeouts overriding `policy.timeout`, keyed by route (`orders`, ...).
    pub route_timeouts: HashMap<String, Duration>,
    /// Largest request body forwarded.
    pub max_body_bytes: usize,
}

impl GatewayConfig {
    /// Defaults with the given JWT settings (tests start from here).
    pub fn with_jwt(jwt: JwtConfig) -> Self {
        Self {
            jwt,
            rate_limit: Some(RateLimit {
                rate_per_sec: 100.0,
                burst: 200,
            }),
            trust_forwarded_for: false,
            policy: ClientPolicy::default(),
            route_timeouts: HashMap::new(),
            max_body_bytes: 1024 * 1024,
        }
    }

    /// Read the gateway settings; `service` supplies the already-parsed JWT settings.
    pub fn from_lookup(env: &Env<'_>, service: &ServiceConfig) -> Result<Self, ConfigError> {
        let jwt = service.jwt.clone().ok_or(ConfigError::Missing {
            name: "JWT_SECRET",
            hint: "the gateway validates access tokens; set the same JWT_SECRET as user-service",
        })?;
        let d = Self::with_jwt(jwt);
        let rps: f64 = env.parse_or(
            "GATEWAY_RATE_LIMIT_RPS",
            100.0,
            "requests per second, e.g. 100 (0 disables)",
        )?;
        let burst: u32 = env.parse_or("GATEWAY_RATE_LIMIT_BURST", 200, "a positive integer")?;
        if !rps.is_finite() || rps < 0.0 {
            return Err(invalid(
                "GATEWAY_RATE_LIMIT_RPS",
                &rps.to_string(),
                "must be 0 or more",
            ));
        }
        let rate_limit = (rps > 0.0).then_some(RateLimit {
            rate_per_sec: rps,
            burst: burst.max(1),
        });
        let dp = ClientPolicy::default();
        let ratio: f64 = env.parse_or(
            "GATEWAY_RETRY_BUDGET",
            dp.budget.ratio,
            "a ratio such as 0.2",
        )?;
        if !(0.0..=10.0).contains(&ratio) {
            return Err(invalid(
                "GATEWAY_RETRY_BUDGET",
                &ratio.to_string(),
                "must be between 0 and 10",
            ));
        }
        let policy = ClientPolicy {
            timeout: env.duration_or("GATEWAY_TIMEOUT", dp.timeout)?,
            max_attempts: env
                .parse_or(
                    "GATEWAY_RETRY_ATTEMPTS",
                    dp.max_attempts,
                    "a positive integer",
                )?
                .max(1),
            backoff: Backoff {
                base: env.duration_or("GATEWAY_RETRY_BACKOFF", dp.backoff.base)?,
                max: env.duration_or("GATEWAY_RETRY_BACKOFF_MAX", dp.backoff.max)?,
                jitter: true,
            },
            budget: BudgetConfig {
                ratio,
                min_per_sec: env.parse_or(
                    "GATEWAY_RETRY_MIN_PER_SEC",
                    dp.budget.min_per_sec,
                    "a non-negative integer",
                )?,
            },
            breaker: BreakerConfig {
                failure_threshold: env.parse_or(
                    "GATEWAY_BREAKER_FAILURES",
                    dp.breaker.failure_threshold,
                    "a positive integer",
                )?,
                open_for: env.duration_or("GATEWAY_BREAKER_OPEN", dp.breaker.open_for)?,
                half_open_probes: env.parse_or(
                    "GATEWAY_BREAKER_HALF_OPEN_PROBES",
                    dp.breaker.half_open_probes,
                    "a positive integer",
                )?,
                success_threshold: env.parse_or(
                    "GATEWAY_BREAKER_SUCCESSES",
                    dp.breaker.success_threshold,
                    "a positive integer",
                )?,
            },
            balancing: match env.get("GATEWAY_LB") {
                None => LoadBalancing::RoundRobin,
                Some(v) => {
                    v.parse()
                        .map_err(|e: service_kit::resilience::balancer::UnknownStrategy| {
                            invalid("GATEWAY_LB", &v, &e.to_string())
                        })?
                }
            },
        };
        let route_timeouts = match env.get("GATEWAY_ROUTE_TIMEOUTS") {
            None => HashMap::new(),
            Some(v) => parse_route_timeouts(&v)?,
        };
        Ok(Self {
            rate_limit,
            trust_forwarded_for: env.bool_or("GATEWAY_TRUST_FORWARDED_FOR", false)?,
            policy,
            route_timeouts,
            max_body_bytes: env.parse_or(
                "GATEWAY_MAX_BODY_BYTES",
                d.max_body_bytes,
                "a size in bytes",
            )?,
            ..d
        })
    }
}

fn invalid(name: &str, value: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        name: name.to_owned(),
        value: value.to_owned(),
        reason: reason.to_owned(),
    }
}

/// Parse `orders=10s,payments=8s`.
fn parse_route_timeouts(v: &str) -> Result<HashMap<String, Duration>, ConfigError> {
    let mut out = HashMap::new();
    for pair in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (route, d) = pair.split_once('=').ok_or_else(|| {
            invalid(
                "GATEWAY_ROUTE_TIMEOUTS",
                v,
                "expected route=duration pairs, e.g. orders=10s,payments=8s",
            )
        })?;
        let route = route.trim();
        if crate::routes::service_for(route).is_none() {
            return Err(invalid(
                "GATEWAY_ROUTE_TIMEOUTS",
                v,
                &format!("unknown route {route:?}; use users, products, orders, payments or notifications"),
            ));
        }
        let d = humantime::parse_duration(d.trim()).map_err(|e| {
            invalid(
                "GATEWAY_ROUTE_TIMEOUTS",
                v,
                &format!("bad duration for {route}: {e}"),
            )
        })?;
        out.insert(route.to_owned(), d);
    }
    Ok(out)
}

/// The kit's and the gateway's configuration from the process environment.
pub fn from_env() -> Result<(ServiceConfig, GatewayConfig), ConfigError> {
    let env = Env::process();
    let service = ServiceConfig::from_lookup_named(&env, "gateway", 8080)?;
    let gateway = GatewayConfig::from_lookup(&env, &service)?;
    Ok((service, gateway))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<GatewayConfig, ConfigError> {
        let mut all = vec![("JWT_SECRET", "0123456789abcdef0123")];
        all.extend_from_slice(pairs);
        let env = Env::from_pairs(&all);
        let svc = ServiceConfig::from_lookup_named(&env, "gateway", 8080)?;
        GatewayConfig::from_lookup(&env, &svc)
    }

    #[test]
    fn every_knob_parses() {
        let c = parse(&[
            ("GATEWAY_LB", "p2c"),
            ("GATEWAY_RATE_LIMIT_RPS", "5"),
            ("GATEWAY_RATE_LIMIT_BURST", "7"),
            ("GATEWAY_TIMEOUT", "2s"),
            ("GATEWAY_ROUTE_TIMEOUTS", "orders=10s, payments=8s"),
            ("GATEWAY_RETRY_ATTEMPTS", "4"),
            ("GATEWAY_RETRY_BUDGET", "0.5"),
            ("GATEWAY_RETRY_MIN_PER_SEC", "3"),
            ("GATEWAY_RETRY_BACKOFF", "10ms"),
            ("GATEWAY_RETRY_BACKOFF_MAX", "200ms"),
            ("GATEWAY_BREAKER_FAILURES", "2"),
            ("GATEWAY_BREAKER_OPEN", "3s"),
            ("GATEWAY_BREAKER_HALF_OPEN_PROBES", "2"),
            ("GATEWAY_BREAKER_SUCCESSES", "3"),
            ("GATEWAY_TRUST_FORWARDED_FOR", "true"),
            ("GATEWAY_MAX_BODY_BYTES", "1000"),
        ])
        .expect("valid");
        assert_eq!(c.policy.balancing, LoadBalancing::PowerOfTwoChoices);
        assert_eq!(
            c.rate_limit,
            Some(RateLimit {
                rate_per_sec: 5.0,
                burst: 7
            })
        );
        assert_eq!(
            c.route_timeouts.get("orders"),
            Some(&Duration::from_secs(10))
        );
        assert_eq!(c.policy.breaker.open_for, Duration::from_secs(3));
        assert_eq!(c.policy.max_attempts, 4);
        assert!(c.trust_forwarded_for);
        assert_eq!(c.max_body_bytes, 1000);
        assert_eq!(
            parse(&[("GATEWAY_RATE_LIMIT_RPS", "0")])
                .expect("valid")
                .rate_limit,
            None
        );
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (k, v) in [
            ("GATEWAY_LB", "random"),
            ("GATEWAY_RATE_LIMIT_RPS", "-1"),
            ("GATEWAY_TIMEOUT", "fast"),
            ("GATEWAY_ROUTE_TIMEOUTS", "admin=1s"),
            ("GATEWAY_ROUTE_TIMEOUTS", "orders"),
            ("GATEWAY_RETRY_BUDGET", "x"),
            ("GATEWAY_TRUST_FORWARDED_FOR", "maybe"),
        ] {
            let err = parse(&[(k, v)]).expect_err(k);
            assert!(err.to_string().contains(k), "{k}: {err}");
        }
    }

    #[test]
    fn jwt_secret_is_required() {
        let env = Env::from_pairs(&[]);
        let svc = ServiceConfig::from_lookup_named(&env, "gateway", 8080).expect("valid");
        let err = GatewayConfig::from_lookup(&env, &svc).expect_err("no secret");
        assert!(err.to_string().contains("JWT_SECRET"));
    }
}
