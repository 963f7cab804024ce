//! Service configuration from environment variables, validated once at start.
//!
//! Every variable is read through a lookup function so tests can supply their own map
//! instead of mutating the process environment. See `services/README.md` for the list.

use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

/// A missing or malformed environment variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is unset or empty.
    #[error("environment variable {name} is not set; {hint}")]
    Missing {
        /// The variable.
        name: &'static str,
        /// How to fix it.
        hint: &'static str,
    },
    /// A variable has a value that does not parse.
    #[error("environment variable {name}={value:?} is invalid: {reason}")]
    Invalid {
        /// The variable.
        name: String,
        /// Its value.
        value: String,
        /// What is expected instead.
        reason: String,
    },
}

/// A variable lookup: name → value.
type Lookup<'a> = Box<dyn Fn(&str) -> Option<String> + 'a>;

/// Reads variables through a lookup function; empty values count as unset.
pub struct Env<'a> {
    lookup: Lookup<'a>,
}

impl<'a> Env<'a> {
    /// Variables from the process environment.
    pub fn process() -> Env<'static> {
        Env {
            lookup: Box::new(|k| std::env::var(k).ok()),
        }
    }

    /// Variables from a list of pairs (for tests).
    pub fn from_pairs(pairs: &'a [(&'a str, &'a str)]) -> Env<'a> {
        Env {
            lookup: Box::new(move |k| {
                pairs
                    .iter()
                    .find(|(name, _)| *name == k)
                    .map(|(_, v)| (*v).to_owned())
            }),
        }
    }

    /// The trimmed value of `name`, if set and non-empty.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// The value of `name`, which must be set; `hint` says how.
    pub fn required(&self, name: &'static str, hint: &'static str) -> Result<String, ConfigError> {
        self.get(name).ok_or(ConfigError::Missing { name, hint })
    }

    /// A required URL whose scheme is one of `schemes` (e.g. `["postgres", "postgresql"]`).
    /// A wrong value is reported redacted: such URLs carry passwords.
    pub fn required_url(
        &self,
        name: &'static str,
        schemes: &[&str],
        hint: &'static str,
    ) -> Result<String, ConfigError> {
        let url = self.required(name, hint)?;
        if schemes.iter().any(|s| url.starts_with(&format!("{s}://"))) {
            return Ok(url);
        }
        Err(ConfigError::Invalid {
            name: name.to_owned(),
            value: "<redacted>".into(),
            reason: format!("expected a {}:// URL", schemes.first().unwrap_or(&"")),
        })
    }

    /// Parse `name` with `FromStr`, or return `default` when unset.
    pub fn parse_or<T>(&self, name: &str, default: T, expected: &str) -> Result<T, ConfigError>
    where
        T: FromStr,
    {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| ConfigError::Invalid {
                name: name.to_owned(),
                value: v,
                reason: format!("expected {expected}"),
            }),
        }
    }

    /// Parse a humantime duration such as `250ms` or `2s`, or return `default`.
    pub fn duration_or(&self, name: &str, default: Duration) -> Result<Duration, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => humantime::parse_duration(&v).map_err(|e| ConfigError::Invalid {
                name: name.to_owned(),
                value: v,
                reason: format!("expected a duration such as 500ms or 2s ({e})"),
            }),
        }
    }

    /// Parse a boolean (`true/false/1/0/yes/no`), or return `default`.
    pub fn bool_or(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(name).map(|v| v.to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) => match v.as_str() {
                "true" | "1" | "yes" | "on" => Ok(true),
                "false" | "0" | "no" | "off" => Ok(false),
                _ => Err(ConfigError::Invalid {
                    name: name.to_owned(),
                    value: v,
                    reason: "expected true or false".into(),
                }),
            },
        }
    }
}

/// JWT settings shared by the issuer (user service) and the validator (gateway).
#[derive(Clone, PartialEq, Eq)]
pub struct JwtConfig {
    /// HS256 secret.
    pub secret: String,
    /// Expected `iss` claim.
    pub issuer: String,
}

impl std::fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtConfig")
            .field("secret", &"<redacted>")
            .field("issuer", &self.issuer)
            .finish()
    }
}

/// How this instance registers itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryConfig {
    /// Base URL of the registry, e.g. `http://registry:8500`.
    pub url: String,
    /// Host other containers use to reach this instance.
    pub advertise_host: String,
    /// Instance id; defaults to `<service>-<host>-<port>` so restarts reuse it.
    pub instance_id: Option<String>,
    /// How often to heartbeat.
    pub heartbeat: Duration,
    /// How long the registry keeps the instance without a heartbeat.
    pub ttl: Duration,
}

/// Everything the kit needs to run a service.
#[derive(Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    /// Name registered in the registry, e.g. `product-service`.
    pub service_name: String,
    /// Address to listen on (`BIND_HOST`, default `0.0.0.0`).
    pub bind_host: IpAddr,
    /// Port to listen on; 0 picks a free one.
    pub port: u16,
    /// Port of the separate admin listener (`ADMIN_PORT`): `/admin/**`, `/health`,
    /// `/ready` and `/metrics` are served there and the main port answers `/admin/**` with
    /// 404. `None` serves everything on `port`; 0 picks a free one.
    pub admin_port: Option<u16>,
    /// Registry settings; `None` when `REGISTRY_URL` is unset (the service runs standalone).
    pub registry: Option<RegistryConfig>,
    /// Token required on `/admin/**`; `None` disables the admin API.
    pub admin_token: Option<String>,
    /// JWT settings when `JWT_SECRET` is set.
    pub jwt: Option<JwtConfig>,
    /// How long to wait for in-flight requests on shutdown.
    pub shutdown_grace: Duration,
}

impl std::fmt::Debug for ServiceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceConfig")
            .field("service_name", &self.service_name)
            .field("bind_host", &self.bind_host)
            .field("port", &self.port)
            .field("admin_port", &self.admin_port)
            .field("registry", &self.registry)
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "<redacted>"),
            )
            .field("jwt", &self.jwt)
            .field("shutdown_grace", &self.shutdown_grace)
            .finish()
    }
}

impl ServiceConfig {
    /// Read the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&Env::process())
    }

    /// Read the configuration through `env`; `SERVICE_NAME` is required.
    pub fn from_lookup(env: &Env<'_>) -> Result<Self, ConfigError> {
        let service_name = env.get("SERVICE_NAME").ok_or(ConfigError::Missing {
            name: "SERVICE_NAME",
            hint: "set it to the name to register, e.g. SERVICE_NAME=product-service",
        })?;
        Self::from_lookup_named(env, &service_name, 8080)
    }

    /// Like [`ServiceConfig::from_lookup`] with a fallback name and port for services whose
    /// name is fixed (the registry and the gateway).
    pub fn from_lookup_named(
        env: &Env<'_>,
        default_name: &str,
        default_port: u16,
    ) -> Result<Self, ConfigError> {
        let service_name = env
            .get("SERVICE_NAME")
            .unwrap_or_else(|| default_name.to_owned());
        if !service_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(ConfigError::Invalid {
                name: "SERVICE_NAME".into(),
                value: service_name,
                reason: "use letters, digits, '-' and '_' only".into(),
            });
        }
        let port = env.parse_or("PORT", default_port, "a port number 0-65535")?;
        let admin_port = match env.get("ADMIN_PORT") {
            None => None,
            Some(v) => match v.parse::<u16>() {
                Ok(p) if p != 0 && p == port => {
                    return Err(ConfigError::Invalid {
                        name: "ADMIN_PORT".into(),
                        value: v,
                        reason: format!(
                        "must differ from PORT ({port}); unset it to serve the admin API on PORT"
                    ),
                    })
                }
                Ok(p) => Some(p),
                Err(_) => {
                    return Err(ConfigError::Invalid {
                        name: "ADMIN_PORT".into(),
                        value: v,
                        reason: "expected a port number 0-65535".into(),
                    })
                }
            },
        };
        let bind_host = env.parse_or(
            "BIND_HOST",
            IpAddr::from([0, 0, 0, 0]),
            "an IP address such as 0.0.0.0 or 127.0.0.1",
        )?;
        let registry = match env.get("REGISTRY_URL") {
            None => None,
            Some(url) => {
                let parsed = reqwest::Url::parse(&url).map_err(|e| ConfigError::Invalid {
                    name: "REGISTRY_URL".into(),
                    value: url.clone(),
                    reason: format!("expected a URL such as http://registry:8500 ({e})"),
                })?;
                if parsed.scheme() != "http" && parsed.scheme() != "https" {
                    return Err(ConfigError::Invalid {
                        name: "REGISTRY_URL".into(),
                        value: url,
                        reason: "expected an http:// or https:// URL".into(),
                    });
                }
                let advertise_host = env
                    .get("ADVERTISE_HOST")
                    .or_else(|| env.get("HOSTNAME"))
                    .ok_or(ConfigError::Missing {
                        name: "ADVERTISE_HOST",
                        hint: "set it (or HOSTNAME) to the host other services use to reach this instance",
                    })?;
                let heartbeat = env.duration_or("REGISTRY_HEARTBEAT", Duration::from_secs(2))?;
                let ttl = env.duration_or("REGISTRY_TTL", Duration::from_secs(10))?;
                if heartbeat.is_zero() || ttl <= heartbeat {
                    return Err(ConfigError::Invalid {
                        name: "REGISTRY_TTL".into(),
                        value: humantime::format_duration(ttl).to_string(),
                        reason: format!(
                            "must be longer than REGISTRY_HEARTBEAT ({}), which must be non-zero",
                            humantime::format_duration(heartbeat)
                        ),
                    });
                }
                Some(RegistryConfig {
                    url: url.trim_end_matches('/').to_owned(),
                    advertise_host,
                    instance_id: env.get("INSTANCE_ID"),
                    heartbeat,
                    ttl,
                })
            }
        };
        let jwt = env.get("JWT_SECRET").map(|secret| JwtConfig {
            secret,
            issuer: env.get("JWT_ISSUER").unwrap_or_else(|| "msctl".into()),
        });
        if let Some(j) = &jwt {
            if j.secret.len() < 16 {
                return Err(ConfigError::Invalid {
                    name: "JWT_SECRET".into(),
                    value: "<redacted>".into(),
                    reason: "must be at least 16 bytes long".into(),
                });
            }
        }
        Ok(Self {
            service_name,
            bind_host,
            port,
            admin_port,
            registry,
            admin_token: env.get("ADMIN_TOKEN"),
            jwt,
            shutdown_grace: env.duration_or("SHUTDOWN_GRACE", Duration::from_secs(10))?,
        })
    }

    /// A configuration for tests: loopback, ephemeral port, no registry.
    pub fn for_tests(service_name: &str) -> Self {
        Self {
            service_name: service_name.to_owned(),
            bind_host: IpAddr::from([127, 0, 0, 1]),
            port: 0,
            admin_port: None,
            registry: None,
            admin_token: Some("test-admin-token".into()),
            jwt: None,
            shutdown_grace: Duration::from_secs(2),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_when_only_the_name_is_set() {
        let cfg =
            ServiceConfig::from_lookup(&Env::from_pairs(&[("SERVICE_NAME", "product-service")]))
                .expect("valid");
        assert_eq!(cfg.port, 8080);
        assert_eq!(cfg.bind_host, IpAddr::from([0, 0, 0, 0]));
        assert!(cfg.registry.is_none());
        assert!(cfg.jwt.is_none());
        assert_eq!(
            cfg.admin_port, None,
            "one listener unless ADMIN_PORT is set"
        );
    }

    #[test]
    fn admin_port_is_read_and_must_differ_from_the_main_port() {
        let cfg = ServiceConfig::from_lookup(&Env::from_pairs(&[
            ("SERVICE_NAME", "product-service"),
            ("ADMIN_PORT", "9000"),
        ]))
        .expect("valid");
        assert_eq!((cfg.port, cfg.admin_port), (8080, Some(9000)));
        // Both ephemeral is fine: the two listeners get different free ports.
        let cfg = ServiceConfig::from_lookup(&Env::from_pairs(&[
            ("SERVICE_NAME", "x"),
            ("PORT", "0"),
            ("ADMIN_PORT", "0"),
        ]))
        .expect("valid");
        assert_eq!(cfg.admin_port, Some(0));
    }

    #[test]
    fn missing_name_is_reported_with_a_hint() {
        let err = ServiceConfig::from_lookup(&Env::from_pairs(&[])).expect_err("name required");
        assert!(err.to_string().contains("SERVICE_NAME"), "{err}");
    }

    #[test]
    fn registry_settings_are_parsed_and_hostname_is_the_fallback() {
        let cfg = ServiceConfig::from_lookup(&Env::from_pairs(&[
            ("SERVICE_NAME", "order-service"),
            ("REGISTRY_URL", "http://registry:8500/"),
            ("HOSTNAME", "abc123"),
            ("REGISTRY_HEARTBEAT", "500ms"),
            ("REGISTRY_TTL", "3s"),
            ("JWT_SECRET", "0123456789abcdef0123"),
        ]))
        .expect("valid");
        let reg = cfg.registry.expect("registry configured");
        assert_eq!(reg.url, "http://registry:8500");
        assert_eq!(reg.advertise_host, "abc123");
        assert_eq!(reg.heartbeat, Duration::from_millis(500));
        assert_eq!(cfg.jwt.map(|j| j.issuer), Some("msctl".into()));
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (pairs, var) in [
            (vec![("PORT", "http")], "PORT"),
            (
                vec![("REGISTRY_URL", "registry:8500"), ("HOSTNAME", "h")],
                "REGISTRY_URL",
            ),
            (vec![("REGISTRY_URL", "http://r:1")], "ADVERTISE_HOST"),
            (
                vec![
                    ("REGISTRY_URL", "http://r:1"),
                    ("HOSTNAME", "h"),
                    ("REGISTRY_HEARTBEAT", "soon"),
                ],
                "REGISTRY_HEARTBEAT",
            ),
            (
                vec![
                    ("REGISTRY_URL", "http://r:1"),
                    ("HOSTNAME", "h"),
                    ("REGISTRY_TTL", "1s"),
                ],
                "REGISTRY_TTL",
            ),
            (vec![("JWT_SECRET", "short")], "JWT_SECRET"),
            (vec![("BIND_HOST", "localhost")], "BIND_HOST"),
            (vec![("ADMIN_PORT", "admin")], "ADMIN_PORT"),
            (vec![("ADMIN_PORT", "8080")], "ADMIN_PORT"),
        ] {
            let mut all = vec![("SERVICE_NAME", "x")];
            all.extend(pairs);
            let err = ServiceConfig::from_lookup(&Env::from_pairs(&all)).expect_err(var);
            assert!(err.to_string().contains(var), "{var}: {err}");
        }
    }
}
