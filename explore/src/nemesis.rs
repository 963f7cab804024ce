//! The nemesis: a seeded generator of fault schedules over the whole chaos catalog and every
//! component of the stack (Jepsen's nemesis, TigerBeetle's VOPR seed). The same seed over
//! the same [`Universe`] gives the same [`Schedule`], byte for byte.
//!
//! Rules a schedule keeps, so that every run is one a real system must survive:
//! - faults start after a short calm, and every one is over (healed) before the workload
//!   ends, leaving time for the heal to be seen by clients;
//! - faults may overlap, but never two on the same component at once (the engine's faults
//!   on one container do not compose: a kill of a paused container is not a new fault);
//! - the first faults go to distinct components, so a schedule covers as many as it can,
//!   and most of those first faults are the one most telling for the component's role
//!   ([`signature`]): a lost response on a service others call and retry, a crash and
//!   return on a component others depend on, a cut from one of its dependencies (with its
//!   open connections reset) on a component that depends on others;
//! - kinds the engine cannot apply here ([`Universe::kinds`]) never appear.

use std::time::Duration;

use msctl_chaos::{FaultKind, HttpFault, PartitionReset, Selector, Target};
use serde::{Deserialize, Serialize};

/// A fault kind, by its command-line name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KindName {
    /// `kill` (SIGKILL or SIGTERM).
    Kill,
    /// `stop`.
    Stop,
    /// `restart`.
    Restart,
    /// `pause`.
    Pause,
    /// `partition` (alone, or from a group).
    Partition,
    /// `latency` (netem).
    Latency,
    /// `loss` (netem).
    Loss,
    /// `http-fault` (error rate, status, delay, first N, path; before or after the
    /// handler).
    HttpFault,
}

impl KindName {
    /// Every kind.
    pub const ALL: [KindName; 8] = [
        KindName::Kill,
        KindName::Stop,
        KindName::Restart,
        KindName::Pause,
        KindName::Partition,
        KindName::Latency,
        KindName::Loss,
        KindName::HttpFault,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            KindName::Kill => "kill",
            KindName::Stop => "stop",
            KindName::Restart => "restart",
            KindName::Pause => "pause",
            KindName::Partition => "partition",
            KindName::Latency => "latency",
            KindName::Loss => "loss",
            KindName::HttpFault => "http-fault",
        }
    }

    /// Parses a command-line name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == s.trim())
    }
}

/// A component faults can target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Component {
    /// Name in the stack.
    pub name: String,
    /// Replicas.
    pub replicas: u32,
    /// It serves the kit's `/admin/faults` (HTTP faults in process).
    pub http_faults: bool,
    /// Path prefixes its HTTP faults may be limited to (POST routes included).
    pub paths: Vec<String>,
    /// Path prefixes of the POST routes other services call and retry (reservations,
    /// charges, orders): where a lost response (an after-handler HTTP fault) makes a
    /// non-idempotent retry or a "timed out = not done" assumption observable.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_paths: Vec<String>,
    /// Other components depend on it (a database, a broker, the registry): its crash and
    /// return exercises their reconnect, redelivery and re-registration paths.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub depended_on: bool,
    /// It keeps data in named volumes (a database, a broker): the dependency whose loss
    /// decides whether a dependent's writes are lost or acknowledged wrongly.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keeps_data: bool,
    /// The components of the universe it depends on directly (its database, broker,
    /// registry, the services it calls): cutting it from one of them while everything else
    /// keeps working exercises its handling of one failed dependency.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
}

/// What a schedule may use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Universe {
    /// Targetable components.
    pub components: Vec<Component>,
    /// Kinds the engine can apply here and the user allowed.
    pub kinds: Vec<KindName>,
}

/// One fault of a schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultEvent {
    /// Start, from the workload's start.
    #[serde(with = "humantime_serde_ms")]
    pub at: Duration,
    /// How long it lasts (zero for `restart`, which happens once).
    #[serde(with = "humantime_serde_ms")]
    pub duration: Duration,
    /// What.
    pub kind: FaultKind,
    /// On whom.
    pub targets: Vec<Target>,
}

impl FaultEvent {
    /// When it is over.
    pub fn end(&self) -> Duration {
        self.at + self.duration
    }

    /// Every component it touches (targets and a partition's other group).
    pub fn components(&self) -> Vec<String> {
        let mut out: Vec<String> = self.targets.iter().map(|t| t.component.clone()).collect();
        if let FaultKind::Partition { from, .. } = &self.kind {
            out.extend(from.iter().map(|t| t.component.clone()));
        }
        out
    }

    /// One line: `12.0s +6.0s kill SIGKILL product-service#1`.
    pub fn describe(&self) -> String {
        format!(
            "{:.1}s +{:.1}s {} {}",
            self.at.as_secs_f64(),
            self.duration.as_secs_f64(),
            self.kind,
            self.targets
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        )
    }
}

/// Durations as integer milliseconds in JSON (exact, unlike floats).
mod humantime_serde_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// A seeded fault schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// The seed it came from.
    pub seed: u64,
    /// Faults by start time.
    pub events: Vec<FaultEvent>,
}

/// splitmix64, the generator of every choice (stable across versions, unlike a library
/// RNG whose algorithm is unspecified).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi]`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    /// One element.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            None
        } else {
            let i = usize::try_from(self.range(0, items.len() as u64 - 1)).unwrap_or(0);
            items.get(i)
        }
    }
}

/// Settings of the generator.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleSpec {
    /// The workload's length; every fault ends at least `tail` before it.
    pub window: Duration,
    /// Calm before the first fault.
    pub calm: Duration,
    /// Time left at the end for clients to see the heal.
    pub tail: Duration,
    /// Faults to place (fewer when the window is too short).
    pub faults: usize,
    /// Shortest and longest fault.
    pub min_duration: Duration,
    /// Longest fault.
    pub max_duration: Duration,
}

impl ScheduleSpec {
    /// About one fault per 10 s of workload, at least 3, each 3–12 s.
    pub fn for_window(window: Duration) -> Self {
        let secs = window.as_secs();
        Self {
            window,
            calm: Duration::from_secs(3.min(secs / 10)),
            tail: Duration::from_secs(8.min(secs / 5)),
            faults: usize::try_from((secs / 10).max(3)).unwrap_or(3),
            min_duration: Duration::from_secs(3),
            max_duration: Duration::from_secs(12.min((secs / 4).max(3))),
        }
    }
}

/// Generates the schedule of `seed`.
pub fn generate(seed: u64, universe: &Universe, spec: &ScheduleSpec) -> Schedule {
    let mut rng = Rng::new(seed);
    let mut events: Vec<FaultEvent> = Vec::new();
    if universe.components.is_empty() || universe.kinds.is_empty() {
        return Schedule { seed, events };
    }
    let latest_end = spec.window.saturating_sub(spec.tail);
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    // Coverage first: a shuffled order of components, then random picks.
    let mut order: Vec<usize> = (0..universe.components.len()).collect();
    for i in (1..order.len()).rev() {
        let j = usize::try_from(rng.range(0, i as u64)).unwrap_or(0);
        order.swap(i, j);
    }
    for n in 0..spec.faults {
        for attempt in 0..12 {
            let covering = n < order.len();
            let ci = if covering {
                order[n]
            } else {
                usize::try_from(rng.range(0, universe.components.len() as u64 - 1)).unwrap_or(0)
            };
            let component = &universe.components[ci];
            let telling = if covering && attempt == 0 && rng.chance(SIGNATURE_SHARE) {
                signature(&mut rng, universe, component)
            } else {
                None
            };
            let Some(kind) = telling
                .as_ref()
                .map(Signature::kind)
                .or_else(|| choose_kind(&mut rng, universe, component))
            else {
                continue;
            };
            let duration = if kind == KindName::Restart {
                Duration::ZERO
            } else {
                Duration::from_millis(
                    rng.range(ms(spec.min_duration), ms(spec.max_duration)) / 100 * 100,
                )
            };
            let latest_start = latest_end.saturating_sub(duration);
            if latest_start <= spec.calm {
                continue;
            }
            let at = Duration::from_millis(rng.range(ms(spec.calm), ms(latest_start)) / 100 * 100);
            let event = build(
                &mut rng,
                universe,
                component,
                kind,
                telling.as_ref(),
                at,
                duration,
            );
            // A restart takes a few seconds in effect: keep others off it meanwhile.
            let busy_until = |e: &FaultEvent| e.end().max(e.at + Duration::from_secs(5));
            let clash = events.iter().any(|e| {
                let overlap = e.at < busy_until(&event) && event.at < busy_until(e);
                overlap
                    && e.components()
                        .iter()
                        .any(|c| event.components().contains(c))
            });
            if !clash {
                events.push(event);
                break;
            }
        }
    }
    events.sort_by_key(|e| e.at);
    Schedule { seed, events }
}

/// Chance that a component's first fault in a schedule is its [`signature`].
const SIGNATURE_SHARE: f64 = 0.6;

/// The fault most telling for a component's role.
#[derive(Debug, Clone, PartialEq)]
enum Signature {
    /// A lost response (an after-handler HTTP fault) on a service other services call and
    /// retry ([`Component::post_paths`]): their retries must be idempotent and a timeout
    /// must not be taken for "not done".
    LostResponse,
    /// A crash and return (restart, or kill healed by a start) of a component others
    /// depend on ([`Component::depended_on`]): they must reconnect, redeliver, re-register.
    Crash(KindName),
    /// A cut from one of its dependencies ([`Component::depends_on`]; one that keeps data
    /// when it has such) with the open connections reset, while the rest of the stack keeps
    /// working: its writes must fail loudly and be retried, not be acknowledged or marked
    /// done and dropped.
    Cut(String),
}

impl Signature {
    fn kind(&self) -> KindName {
        match self {
            Signature::LostResponse => KindName::HttpFault,
            Signature::Crash(k) => *k,
            Signature::Cut(_) => KindName::Partition,
        }
    }
}

/// Chance that a called service's signature is its lost response rather than a cut from
/// a dependency (it has both).
const LOST_OVER_CUT: f64 = 0.65;

/// The [`Signature`] of a component, when it has one the universe allows; anything else
/// draws its kind at random ([`choose_kind`]).
fn signature(rng: &mut Rng, universe: &Universe, c: &Component) -> Option<Signature> {
    let allowed = |k: KindName| universe.kinds.contains(&k);
    let lost = !c.post_paths.is_empty() && c.http_faults && allowed(KindName::HttpFault);
    let deps: Vec<&String> = c
        .depends_on
        .iter()
        .filter(|d| universe.components.iter().any(|o| &o.name == *d))
        .collect();
    let cut = !deps.is_empty() && allowed(KindName::Partition);
    if lost && (!cut || rng.chance(LOST_OVER_CUT)) {
        return Some(Signature::LostResponse);
    }
    if cut {
        // Its database or broker, where its writes go, rather than the registry.
        let stores: Vec<&String> = deps
            .iter()
            .copied()
            .filter(|d| {
                universe
                    .components
                    .iter()
                    .any(|o| &o.name == *d && o.keeps_data)
            })
            .collect();
        let pool = if stores.is_empty() { &deps } else { &stores };
        return rng.pick(pool).map(|d| Signature::Cut((*d).clone()));
    }
    if c.depended_on {
        let crash: Vec<KindName> = [KindName::Restart, KindName::Kill]
            .into_iter()
            .filter(|k| allowed(*k))
            .collect();
        return rng.pick(&crash).copied().map(Signature::Crash);
    }
    None
}

fn choose_kind(rng: &mut Rng, universe: &Universe, c: &Component) -> Option<KindName> {
    let weight = |k: KindName| -> f64 {
        if !universe.kinds.contains(&k) {
            return 0.0;
        }
        match k {
            KindName::HttpFault if !c.http_faults => 0.0,
            KindName::HttpFault => 3.0,
            KindName::Kill | KindName::Pause => 2.0,
            KindName::Partition => 1.5,
            KindName::Stop | KindName::Restart | KindName::Latency | KindName::Loss => 1.0,
        }
    };
    let weights: Vec<(KindName, f64)> = KindName::ALL.iter().map(|k| (*k, weight(*k))).collect();
    let total: f64 = weights.iter().map(|(_, w)| w).sum();
    if total <= 0.0 {
        return None;
    }
    let mut x = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * total;
    for (k, w) in &weights {
        if x < *w {
            return Some(*k);
        }
        x -= w;
    }
    weights
        .iter()
        .rev()
        .find(|(_, w)| *w > 0.0)
        .map(|(k, _)| *k)
}

fn target_of(rng: &mut Rng, c: &Component) -> Target {
    if c.replicas > 1 && rng.chance(0.6) {
        Target {
            component: c.name.clone(),
            selector: Selector::Replica(
                u32::try_from(rng.range(1, u64::from(c.replicas))).unwrap_or(1),
            ),
        }
    } else {
        Target::all(c.name.clone())
    }
}

fn build(
    rng: &mut Rng,
    universe: &Universe,
    c: &Component,
    kind: KindName,
    telling: Option<&Signature>,
    at: Duration,
    duration: Duration,
) -> FaultEvent {
    let lost = telling == Some(&Signature::LostResponse);
    let target = target_of(rng, c);
    let kind = match kind {
        KindName::Kill => FaultKind::Kill {
            signal: if rng.chance(0.75) {
                "SIGKILL"
            } else {
                "SIGTERM"
            }
            .into(),
        },
        KindName::Stop => FaultKind::Stop,
        KindName::Restart => FaultKind::Restart,
        KindName::Pause => FaultKind::Pause,
        KindName::Partition => match telling {
            Some(Signature::Cut(dep)) => FaultKind::Partition {
                from: vec![Target::all(dep.clone())],
                reset: if rng.chance(0.5) {
                    PartitionReset::Start
                } else {
                    PartitionReset::Heal
                },
            },
            _ => random_partition(rng, universe, c),
        },
        KindName::Latency => {
            let delay_ms = rng.range(50, 800) / 10 * 10;
            FaultKind::Latency {
                delay_ms,
                jitter_ms: rng.range(0, delay_ms / 4),
            }
        }
        KindName::Loss => FaultKind::Loss {
            percent: rng.range(5, 40) as f64,
        },
        KindName::HttpFault if lost => FaultKind::HttpFault(lost_response(rng, c, duration)),
        KindName::HttpFault => FaultKind::HttpFault(http_fault(rng, c, duration)),
    };
    FaultEvent {
        at,
        duration,
        kind,
        targets: vec![target],
    }
}

/// A partition drawn at random: half cut the target from the whole network, half from
/// one or two named peers (mostly its neighbours: what it depends on or what depends on
/// it), with their open connections kept, reset at the start or reset at the heal.
fn random_partition(rng: &mut Rng, universe: &Universe, c: &Component) -> FaultKind {
    let others: Vec<&Component> = universe
        .components
        .iter()
        .filter(|o| o.name != c.name)
        .collect();
    let neighbours: Vec<&Component> = others
        .iter()
        .copied()
        .filter(|o| c.depends_on.contains(&o.name) || o.depends_on.contains(&c.name))
        .collect();
    let mut from = Vec::new();
    if !others.is_empty() && rng.chance(0.5) {
        let pool = if !neighbours.is_empty() && rng.chance(0.7) {
            &neighbours
        } else {
            &others
        };
        for _ in 0..rng.range(1, 2) {
            if let Some(o) = rng.pick(pool) {
                if !from.iter().any(|t: &Target| t.component == o.name) {
                    from.push(Target::all(o.name.clone()));
                }
            }
        }
    }
    let reset = if from.is_empty() {
        PartitionReset::Keep
    } else {
        *rng.pick(&[
            PartitionReset::Keep,
            PartitionReset::Start,
            PartitionReset::Heal,
        ])
        .unwrap_or(&PartitionReset::Keep)
    };
    FaultKind::Partition { from, reset }
}

/// The services' per-attempt client timeout (services/kit `ClientPolicy::default`, used by
/// the gateway and order-service's saga calls): a lost response held longer than this is a
/// timeout to the caller.
const CLIENT_TIMEOUT_MS: u64 = 5_000;

/// Chance that an HTTP fault on a component with [`Component::post_paths`] is a lost
/// response; elsewhere [`LOST_SHARE_ELSEWHERE`]. With the bundled stack (three such of
/// seven HTTP-fault services) about a third of the HTTP faults lose responses.
const LOST_SHARE_CALLED: f64 = 0.5;
/// See [`LOST_SHARE_CALLED`].
const LOST_SHARE_ELSEWHERE: f64 = 0.2;

fn http_fault(rng: &mut Rng, c: &Component, duration: Duration) -> HttpFault {
    let lost_share = if c.post_paths.is_empty() {
        LOST_SHARE_ELSEWHERE
    } else {
        LOST_SHARE_CALLED
    };
    if rng.chance(lost_share) {
        return lost_response(rng, c, duration);
    }
    let mut h = HttpFault {
        path_prefix: if rng.chance(0.6) {
            rng.pick(&c.paths).cloned()
        } else {
            None
        },
        duration: Some(humantime::format_duration(duration).to_string()),
        ..HttpFault::default()
    };
    match rng.range(0, 3) {
        0 => {
            h.status = Some(*rng.pick(&[500u16, 503, 502]).unwrap_or(&503));
            h.error_rate = Some(*rng.pick(&[1.0, 0.5, 0.25]).unwrap_or(&1.0));
        }
        1 => h.delay_ms = Some(rng.range(3, 60) * 100),
        2 => {
            h.status = Some(*rng.pick(&[500u16, 503]).unwrap_or(&503));
            h.first_n = Some(rng.range(1, 6));
        }
        _ => {
            h.status = Some(503);
            h.delay_ms = Some(rng.range(2, 20) * 100);
            h.error_rate = Some(0.5);
        }
    }
    h
}

/// An after-handler fault: the request is served (its effects committed), then its answer
/// is replaced by a 503 or held past the callers' timeout. On a called service it mostly
/// targets the POST routes callers retry, otherwise all paths.
fn lost_response(rng: &mut Rng, c: &Component, duration: Duration) -> HttpFault {
    let paths = if c.post_paths.is_empty() {
        &c.paths
    } else {
        &c.post_paths
    };
    let mut h = HttpFault {
        path_prefix: if rng.chance(0.7) {
            rng.pick(paths).cloned()
        } else {
            None
        },
        duration: Some(humantime::format_duration(duration).to_string()),
        after: true,
        ..HttpFault::default()
    };
    match rng.range(0, 2) {
        0 => {
            h.status = Some(503);
            h.error_rate = Some(*rng.pick(&[1.0, 0.5]).unwrap_or(&1.0));
        }
        1 => {
            h.status = Some(503);
            h.first_n = Some(rng.range(1, 5));
        }
        // 5.5–9 s: past the callers' per-attempt timeout.
        _ => h.delay_ms = Some(rng.range(CLIENT_TIMEOUT_MS / 100 + 5, 90) * 100),
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn universe() -> Universe {
        let c = |name: &str, replicas, http: bool, paths: &[&str]| Component {
            name: name.into(),
            replicas,
            http_faults: http,
            paths: paths.iter().map(|s| s.to_string()).collect(),
            post_paths: match name {
                "product-service" => vec!["/internal/reservations".into()],
                "order-service" => vec!["/api/v1/orders".into()],
                "payment-service" => vec!["/internal/payments".into()],
                _ => Vec::new(),
            },
            depended_on: matches!(name, "postgres" | "redis" | "rabbitmq" | "registry"),
            keeps_data: matches!(name, "postgres" | "rabbitmq"),
            // As in the bundled stack.toml.
            depends_on: match name {
                "gateway" => vec!["registry".into()],
                "product-service" => vec!["registry".into(), "postgres".into(), "redis".into()],
                "order-service" => vec!["registry".into(), "postgres".into(), "rabbitmq".into()],
                "payment-service" => vec!["registry".into(), "postgres".into()],
                _ => Vec::new(),
            },
        };
        Universe {
            components: vec![
                c("postgres", 1, false, &[]),
                c("redis", 1, false, &[]),
                c("rabbitmq", 1, false, &[]),
                c("registry", 1, true, &[]),
                c("gateway", 1, true, &[]),
                c(
                    "product-service",
                    2,
                    true,
                    &["/api/v1/products", "/internal/reservations"],
                ),
                c("order-service", 1, true, &["/api/v1/orders"]),
                c("payment-service", 1, true, &["/internal/payments/charge"]),
            ],
            kinds: KindName::ALL
                .into_iter()
                .filter(|k| !matches!(k, KindName::Latency | KindName::Loss))
                .collect(),
        }
    }

    /// The component of the universe `e` targets first.
    fn component_of<'a>(u: &'a Universe, e: &FaultEvent) -> &'a Component {
        u.components
            .iter()
            .find(|c| c.name == e.targets[0].component)
            .expect("a component of the universe")
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule_and_another_seed_another() {
        let spec = ScheduleSpec::for_window(Duration::from_secs(100));
        let a = generate(42, &universe(), &spec);
        let b = generate(42, &universe(), &spec);
        let c = generate(43, &universe(), &spec);
        assert_eq!(a, b);
        assert_ne!(a.events, c.events);
        assert_eq!(
            serde_json::to_string(&a).expect("json"),
            serde_json::to_string(&b).expect("json")
        );
    }

    #[test]
    fn schedules_cover_components_stay_in_the_window_and_never_stack_faults_on_one_component() {
        let spec = ScheduleSpec::for_window(Duration::from_secs(100));
        for seed in 0..200 {
            let s = generate(seed, &universe(), &spec);
            assert!(
                s.events.len() >= 8,
                "seed {seed}: {} events",
                s.events.len()
            );
            let mut touched: Vec<String> =
                s.events.iter().flat_map(FaultEvent::components).collect();
            touched.sort();
            touched.dedup();
            assert!(touched.len() >= 6, "seed {seed}: {touched:?}");
            for e in &s.events {
                assert!(
                    e.at >= spec.calm && e.end() <= spec.window - spec.tail,
                    "seed {seed}: {}",
                    e.describe()
                );
                assert!(!matches!(
                    e.kind,
                    FaultKind::Latency { .. } | FaultKind::Loss { .. }
                ));
                for o in &s.events {
                    if std::ptr::eq(e, o) {
                        continue;
                    }
                    let overlap = e.at < o.end().max(o.at + Duration::from_secs(5))
                        && o.at < e.end().max(e.at + Duration::from_secs(5));
                    let shared = e.components().iter().any(|c| o.components().contains(c));
                    assert!(
                        !(overlap && shared),
                        "seed {seed}: {} and {}",
                        e.describe(),
                        o.describe()
                    );
                }
            }
        }
    }

    #[test]
    fn kinds_left_out_never_appear_and_http_faults_only_hit_services_that_serve_them() {
        let mut u = universe();
        u.kinds = vec![KindName::HttpFault, KindName::Pause];
        let spec = ScheduleSpec::for_window(Duration::from_secs(60));
        for seed in 0..100 {
            for e in generate(seed, &u, &spec).events {
                match &e.kind {
                    FaultKind::HttpFault(h) => {
                        let c = u
                            .components
                            .iter()
                            .find(|c| c.name == e.targets[0].component);
                        assert!(c.is_some_and(|c| c.http_faults), "{}", e.describe());
                        assert!(
                            h.error_rate.is_some() || h.status.is_some() || h.delay_ms.is_some()
                        );
                    }
                    FaultKind::Pause => {}
                    other => panic!("seed {seed}: {other} was not allowed"),
                }
            }
        }
    }

    #[test]
    fn about_half_of_http_faults_lose_responses_mostly_on_called_services() {
        let mut u = universe();
        u.kinds = vec![KindName::HttpFault];
        let spec = ScheduleSpec::for_window(Duration::from_secs(100));
        let (mut http, mut lost, mut lost_on_called) = (0u32, 0u32, 0u32);
        for seed in 0..300 {
            for e in generate(seed, &u, &spec).events {
                let FaultKind::HttpFault(h) = &e.kind else {
                    panic!("seed {seed}: {}", e.describe())
                };
                http += 1;
                if !h.after {
                    continue;
                }
                lost += 1;
                let c = component_of(&u, &e);
                if !c.post_paths.is_empty() {
                    lost_on_called += 1;
                    assert!(
                        h.path_prefix
                            .as_ref()
                            .is_none_or(|p| c.post_paths.contains(p)),
                        "seed {seed}: {}",
                        e.describe()
                    );
                }
                // A 503 for work that was done, or an answer held past the callers'
                // timeout.
                assert!(
                    h.status == Some(503) || h.delay_ms.is_some_and(|d| d > CLIENT_TIMEOUT_MS),
                    "seed {seed}: {}",
                    e.describe()
                );
                assert!(e.describe().contains(" after"), "{}", e.describe());
                msctl_chaos::FaultSpec::new(e.kind.clone(), e.targets[0].clone())
                    .validate()
                    .expect("valid");
            }
        }
        let share = f64::from(lost) / f64::from(http);
        // A third by the draw alone; more with the called services' signature.
        assert!(
            (0.4..0.62).contains(&share),
            "{lost} of {http} lost responses"
        );
        assert!(
            f64::from(lost_on_called) > 0.6 * f64::from(lost),
            "{lost_on_called} of {lost} on called services"
        );
    }

    #[test]
    fn most_faults_on_called_services_lose_responses_and_most_on_dependencies_crash_them() {
        let u = universe();
        let spec = ScheduleSpec::for_window(Duration::from_secs(100));
        let (mut called, mut lost, mut deps, mut crashes) = (0u32, 0u32, 0u32, 0u32);
        for seed in 0..300 {
            for e in generate(seed, &u, &spec).events {
                let c = component_of(&u, &e);
                if !c.post_paths.is_empty() {
                    called += 1;
                    lost += u32::from(matches!(&e.kind, FaultKind::HttpFault(h) if h.after));
                }
                if c.depended_on {
                    deps += 1;
                    crashes += u32::from(matches!(
                        e.kind,
                        FaultKind::Restart | FaultKind::Kill { .. }
                    ));
                }
            }
        }
        // By the kind weights alone: about 0.14 and 0.4.
        assert!(
            f64::from(lost) > 0.35 * f64::from(called),
            "{lost} of {called} faults on called services lose responses"
        );
        assert!(
            f64::from(crashes) > 0.6 * f64::from(deps),
            "{crashes} of {deps} faults on dependencies crash them"
        );
    }

    #[test]
    fn components_with_dependencies_are_often_cut_from_one_of_them_with_their_connections_reset() {
        let u = universe();
        let spec = ScheduleSpec::for_window(Duration::from_secs(100));
        let (mut dependent, mut cuts, mut resets) = (0u32, 0u32, [0u32; 3]);
        let (mut with_store, mut store_cuts) = (0u32, 0u32);
        for seed in 0..300 {
            for e in generate(seed, &u, &spec).events {
                let c = component_of(&u, &e);
                if let FaultKind::Partition { from, reset } = &e.kind {
                    if !from.is_empty() {
                        resets[*reset as usize] += 1;
                    }
                    if from.len() == 1 && c.depends_on.contains(&from[0].component) {
                        cuts += 1;
                        let keeps = |n: &str| matches!(n, "postgres" | "rabbitmq");
                        if c.depends_on.iter().any(|d| keeps(d)) {
                            with_store += 1;
                            store_cuts += u32::from(keeps(&from[0].component));
                        }
                    }
                    msctl_chaos::FaultSpec::new(e.kind.clone(), e.targets[0].clone())
                        .validate()
                        .expect("valid");
                }
                dependent += u32::from(!c.depends_on.is_empty());
            }
        }
        assert!(
            f64::from(cuts) > 0.2 * f64::from(dependent),
            "{cuts} cuts from a dependency of {dependent} faults on dependent components"
        );
        // A signature cut is from a dependency that keeps data, where the component has
        // one (random partitions still cut the registry or a cache now and then).
        assert!(
            f64::from(store_cuts) > 0.75 * f64::from(with_store),
            "{store_cuts} of {with_store} cuts of components with a database or broker were from one"
        );
        // Cuts reset at the start or at the heal; random partitions may keep them too.
        let [keep, start, heal] = resets;
        assert!(start > 0 && heal > 0 && keep > 0, "{resets:?}");
        assert!(start + heal > 3 * keep, "{resets:?}");
    }

    #[test]
    fn a_signature_the_universe_forbids_is_never_drawn() {
        let mut u = universe();
        u.kinds = vec![KindName::Pause, KindName::Partition];
        let spec = ScheduleSpec::for_window(Duration::from_secs(100));
        for seed in 0..100 {
            for e in generate(seed, &u, &spec).events {
                assert!(
                    matches!(e.kind, FaultKind::Pause | FaultKind::Partition { .. }),
                    "seed {seed}: {}",
                    e.describe()
                );
            }
        }
    }
}
