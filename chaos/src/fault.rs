//! What a fault is: its kind with parameters, the targets, an optional duration and seed.
//! A [`FaultSpec`] is validated once ([`FaultSpec::validate`]) before anything touches
//! the engine.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::ChaosError;
use crate::target::Target;

/// The fault primitives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum FaultKind {
    /// Send a signal to the main process (default SIGKILL); healed by starting it again.
    Kill {
        /// Signal name or number, e.g. `SIGKILL`, `SIGTERM`, `9`.
        signal: String,
    },
    /// Stop (SIGTERM, then SIGKILL after the component's grace period); healed by starting.
    Stop,
    /// Restart once; nothing to heal.
    Restart,
    /// Freeze every process (cgroup freezer); healed by unpausing.
    Pause,
    /// Cut off from peers: with `from` empty, disconnect from the project network; with
    /// `from`, only the two groups lose each other (`unreachable` routes in each netns).
    Partition {
        /// The other group; empty = everything.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        from: Vec<Target>,
        /// What happens to the TCP connections between the two groups (only with `from`).
        #[serde(default, skip_serializing_if = "PartitionReset::is_keep")]
        reset: PartitionReset,
    },
    /// Added egress delay with jitter (`tc netem`).
    Latency {
        /// Mean added delay, milliseconds.
        delay_ms: u64,
        /// Jitter, milliseconds.
        #[serde(default)]
        jitter_ms: u64,
    },
    /// Egress packet loss (`tc netem`).
    Loss {
        /// Percentage of packets dropped, 0–100.
        percent: f64,
    },
    /// A fault injected by the service itself through `POST /admin/faults`.
    HttpFault(HttpFault),
}

/// What a partition with `from` does to the TCP connections already open between the two
/// groups. New connections fail at once either way ("No route to host").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartitionReset {
    /// Left open: they hang, their unacknowledged data waits in the kernel, and after the
    /// heal TCP retransmits it as if nothing happened (a cut shorter than every timeout).
    #[default]
    Keep,
    /// Destroyed as the cut starts (`ss -K` on both sides): each peer gets a connection
    /// error on its next read or write, as with Toxiproxy's `reset_peer`.
    Start,
    /// Destroyed as the cut heals, before the routes go: what a cut longer than the peers'
    /// keepalive, heartbeat or user timeouts leaves — everything written during the cut
    /// and not acknowledged by the application is lost, and each side must reconnect.
    Heal,
}

impl PartitionReset {
    /// Serde's "skip the default".
    pub fn is_keep(&self) -> bool {
        *self == PartitionReset::Keep
    }

    /// The command-line and file name.
    pub fn name(self) -> &'static str {
        match self {
            PartitionReset::Keep => "keep",
            PartitionReset::Start => "start",
            PartitionReset::Heal => "heal",
        }
    }

    /// Parses a command-line or file name.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim() {
            "keep" => Ok(PartitionReset::Keep),
            "start" => Ok(PartitionReset::Start),
            "heal" => Ok(PartitionReset::Heal),
            other => Err(format!("reset \"{other}\" is not one of keep, start, heal")),
        }
    }
}

impl FaultKind {
    /// Short name, as on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            FaultKind::Kill { .. } => "kill",
            FaultKind::Stop => "stop",
            FaultKind::Restart => "restart",
            FaultKind::Pause => "pause",
            FaultKind::Partition { .. } => "partition",
            FaultKind::Latency { .. } => "latency",
            FaultKind::Loss { .. } => "loss",
            FaultKind::HttpFault(_) => "http-fault",
        }
    }

    /// Whether the fault lasts until it is reverted (everything but restart).
    pub fn is_lasting(&self) -> bool {
        !matches!(self, FaultKind::Restart)
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultKind::Kill { signal } => write!(f, "kill {signal}"),
            FaultKind::Partition { from, reset } if !from.is_empty() => {
                write!(
                    f,
                    "partition from {}",
                    from.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(",")
                )?;
                match reset {
                    PartitionReset::Keep => Ok(()),
                    r => write!(f, " (reset at {})", r.name()),
                }
            }
            FaultKind::Latency {
                delay_ms,
                jitter_ms,
            } => write!(f, "latency {delay_ms}ms ±{jitter_ms}ms"),
            FaultKind::Loss { percent } => write!(f, "loss {percent}%"),
            FaultKind::HttpFault(h) => write!(f, "http-fault {}", h.summary()),
            other => f.write_str(other.name()),
        }
    }
}

/// The body of `POST /admin/faults` (services/kit `FaultSpec`; msctl never links service
/// code, so the wire format is repeated here and pinned by a test).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpFault {
    /// Probability (0–1) of failing a matching request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    /// Status of injected failures (400–599; the service defaults to 503).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Delay added to every matching request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// Only requests under this path prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// Service-side expiry (`30s`); msctl sets it from `--duration` so that a fault still
    /// ends if msctl dies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Fail the first N matching requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_n: Option<u64>,
    /// Apply the fault after the handler: the request is served (its effects committed),
    /// then its answer is held for `delay_ms` and, when failed, replaced by the injected
    /// error — a lost response. On the wire only when true.
    #[serde(default, skip_serializing_if = "is_false")]
    pub after: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl HttpFault {
    fn summary(&self) -> String {
        let mut parts = Vec::new();
        if let Some(r) = self.error_rate {
            parts.push(format!("rate {r}"));
        }
        if let Some(s) = self.status {
            parts.push(format!("status {s}"));
        }
        if let Some(d) = self.delay_ms {
            parts.push(format!("delay {d}ms"));
        }
        if let Some(n) = self.first_n {
            parts.push(format!("first {n}"));
        }
        if let Some(p) = &self.path_prefix {
            parts.push(format!("path {p}"));
        }
        if self.after {
            parts.push("after".into());
        }
        parts.join(" ")
    }
}

/// A fault to apply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultSpec {
    /// What to do.
    pub kind: FaultKind,
    /// To whom (several only for partitions; other kinds take each in turn).
    pub targets: Vec<Target>,
    /// Revert on its own after this long (the caller waits; see [`crate::Chaos::apply_for`]).
    #[serde(default, with = "opt_duration")]
    pub duration: Option<Duration>,
    /// Seed for `#random` targets; a fresh one is drawn (and recorded) when unset.
    #[serde(default)]
    pub seed: Option<u64>,
}

impl FaultSpec {
    /// A fault on one target without duration.
    pub fn new(kind: FaultKind, target: Target) -> Self {
        Self {
            kind,
            targets: vec![target],
            duration: None,
            seed: None,
        }
    }

    /// Checks what needs no engine: parameter ranges and flag combinations.
    pub fn validate(&self) -> Result<(), ChaosError> {
        let usage = |m: String| Err(ChaosError::Usage(m));
        if self.targets.is_empty() {
            return usage("a fault needs at least one target".into());
        }
        if self.duration.is_some_and(|d| d.is_zero()) {
            return usage("--duration must be longer than 0s".into());
        }
        if !self.kind.is_lasting() && self.duration.is_some() {
            return usage(format!(
                "{} happens once and cannot take --duration",
                self.kind.name()
            ));
        }
        match &self.kind {
            FaultKind::Kill { signal } => {
                parse_signal(signal).map_err(ChaosError::Usage)?;
            }
            FaultKind::Partition { from, reset } => {
                if from.is_empty() && !reset.is_keep() {
                    return usage(format!(
                        "--reset {} needs --from: it acts on the connections between the two groups",
                        reset.name()
                    ));
                }
                for t in from {
                    if self.targets.contains(t) {
                        return usage(format!(
                            "{t} is on both sides of the partition; a group cannot be cut from itself"
                        ));
                    }
                }
            }
            FaultKind::Latency {
                delay_ms,
                jitter_ms,
            } => {
                if *delay_ms == 0 {
                    return usage("--delay must be longer than 0ms".into());
                }
                if jitter_ms > delay_ms {
                    return usage(format!(
                        "--jitter {jitter_ms}ms is larger than --delay {delay_ms}ms"
                    ));
                }
                if *delay_ms > 60_000 {
                    return usage("--delay must be at most 60s".into());
                }
            }
            FaultKind::Loss { percent } => {
                if !(*percent > 0.0 && *percent <= 100.0) {
                    return usage(format!(
                        "--percent {percent} must be more than 0 and at most 100"
                    ));
                }
            }
            FaultKind::HttpFault(h) => {
                if let Some(r) = h.error_rate {
                    if !(0.0..=1.0).contains(&r) {
                        return usage(format!("--error-rate {r} must be between 0 and 1"));
                    }
                }
                if let Some(s) = h.status {
                    if !(400..=599).contains(&s) {
                        return usage(format!("--status {s} must be between 400 and 599"));
                    }
                }
                if h.delay_ms.is_some_and(|d| d > 300_000) {
                    return usage("--delay must be at most 300s".into());
                }
                if let Some(p) = &h.path_prefix {
                    if !p.starts_with('/') {
                        return usage(format!("--path {p:?} must start with '/'"));
                    }
                }
                if h.after
                    && h.error_rate.is_none()
                    && h.status.is_none()
                    && h.delay_ms.is_none()
                    && h.first_n.is_none()
                {
                    return usage(
                        "http-fault --after needs at least one of --error-rate, --status, --delay, --first (a lost response is an answer replaced or held)"
                            .into(),
                    );
                }
                if h.error_rate.is_none()
                    && h.status.is_none()
                    && h.delay_ms.is_none()
                    && h.first_n.is_none()
                {
                    return usage(
                        "http-fault needs at least one of --error-rate, --status, --delay, --first"
                            .into(),
                    );
                }
            }
            FaultKind::Stop | FaultKind::Restart | FaultKind::Pause => {}
        }
        Ok(())
    }
}

/// Normalises a signal to the engine's spelling (`SIGKILL`, or a number).
pub fn parse_signal(text: &str) -> Result<String, String> {
    const KNOWN: [&str; 12] = [
        "SIGKILL", "SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGSTOP",
        "SIGCONT", "SIGABRT", "SIGSEGV", "SIGPIPE",
    ];
    if let Ok(n) = text.parse::<u8>() {
        if (1..=64).contains(&n) {
            return Ok(n.to_string());
        }
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    if KNOWN.contains(&name.as_str()) {
        Ok(name)
    } else {
        Err(format!(
            "unknown signal \"{text}\"; use a name such as SIGKILL or SIGTERM, or a number 1-64"
        ))
    }
}

/// `Option<Duration>` as a humantime string (`"30s"`), so the ledger stays readable.
mod opt_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| humantime::parse_duration(&t).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: FaultKind) -> FaultSpec {
        FaultSpec::new(kind, Target::all("redis"))
    }

    #[test]
    fn signals_normalise() {
        assert_eq!(parse_signal("kill").as_deref(), Ok("SIGKILL"));
        assert_eq!(parse_signal("SIGTERM").as_deref(), Ok("SIGTERM"));
        assert_eq!(parse_signal("9").as_deref(), Ok("9"));
        assert!(parse_signal("SIGFOO").is_err());
        assert!(parse_signal("0").is_err());
    }

    #[test]
    fn invalid_parameters_are_usage_errors() {
        let bad = [
            spec(FaultKind::Latency {
                delay_ms: 0,
                jitter_ms: 0,
            }),
            spec(FaultKind::Latency {
                delay_ms: 10,
                jitter_ms: 20,
            }),
            spec(FaultKind::Loss { percent: 0.0 }),
            spec(FaultKind::Loss { percent: 101.0 }),
            spec(FaultKind::HttpFault(HttpFault::default())),
            spec(FaultKind::HttpFault(HttpFault {
                after: true,
                path_prefix: Some("/api/v1/payments".into()),
                ..HttpFault::default()
            })),
            spec(FaultKind::HttpFault(HttpFault {
                status: Some(200),
                ..HttpFault::default()
            })),
            spec(FaultKind::HttpFault(HttpFault {
                path_prefix: Some("api".into()),
                status: Some(500),
                ..HttpFault::default()
            })),
            spec(FaultKind::Kill {
                signal: "SIGNOPE".into(),
            }),
            FaultSpec {
                duration: Some(Duration::from_secs(5)),
                ..spec(FaultKind::Restart)
            },
            FaultSpec {
                kind: FaultKind::Partition {
                    from: vec![Target::all("redis")],
                    reset: PartitionReset::Keep,
                },
                ..spec(FaultKind::Stop)
            },
        ];
        for s in bad {
            let e = s.validate().expect_err(&format!("{s:?}"));
            assert!(e.is_usage(), "{e}");
        }
        assert!(spec(FaultKind::Pause).validate().is_ok());
    }

    // The service kit's `FaultSpec` denies unknown fields: a renamed field here would make
    // every http-fault a 400.
    #[test]
    fn http_fault_body_matches_the_service_kit_wire_format() {
        let h = HttpFault {
            error_rate: Some(0.5),
            status: Some(503),
            delay_ms: Some(200),
            path_prefix: Some("/api/v1/products".into()),
            duration: Some("30s".into()),
            first_n: Some(3),
            after: true,
        };
        assert_eq!(
            serde_json::to_value(&h).expect("json"),
            serde_json::json!({
                "error_rate": 0.5, "status": 503, "delay_ms": 200,
                "path_prefix": "/api/v1/products", "duration": "30s", "first_n": 3,
                "after": true
            })
        );
        let only = HttpFault {
            status: Some(500),
            ..HttpFault::default()
        };
        assert_eq!(
            serde_json::to_string(&only).expect("json"),
            r#"{"status":500}"#
        );
    }

    #[test]
    fn after_handler_faults_validate_and_say_so() {
        let alone = spec(FaultKind::HttpFault(HttpFault {
            after: true,
            ..HttpFault::default()
        }));
        let e = alone.validate().expect_err("after alone");
        assert!(e.is_usage() && e.to_string().contains("--after"), "{e}");
        for h in [
            HttpFault {
                status: Some(503),
                after: true,
                ..HttpFault::default()
            },
            HttpFault {
                delay_ms: Some(8_000),
                after: true,
                ..HttpFault::default()
            },
        ] {
            spec(FaultKind::HttpFault(h))
                .validate()
                .expect("meaningful");
        }
        let k = FaultKind::HttpFault(HttpFault {
            status: Some(503),
            delay_ms: Some(800),
            path_prefix: Some("/x".into()),
            after: true,
            ..HttpFault::default()
        });
        assert_eq!(
            k.to_string(),
            "http-fault status 503 delay 800ms path /x after"
        );
        let k = FaultKind::HttpFault(HttpFault {
            status: Some(503),
            ..HttpFault::default()
        });
        assert_eq!(k.to_string(), "http-fault status 503");
        // A ledger written before the field existed still reads.
        let old: HttpFault = serde_json::from_str(r#"{"status":503}"#).expect("old");
        assert!(!old.after);
    }

    #[test]
    fn specs_round_trip_through_json() {
        let s = FaultSpec {
            duration: Some(Duration::from_secs(90)),
            seed: Some(7),
            ..spec(FaultKind::Partition {
                from: vec![Target::all("postgres")],
                reset: PartitionReset::Heal,
            })
        };
        let text = serde_json::to_string(&s).expect("json");
        assert!(text.contains("\"1m 30s\""), "{text}");
        assert_eq!(serde_json::from_str::<FaultSpec>(&text).expect("back"), s);
    }
}
