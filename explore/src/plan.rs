//! A run's plan — schedule, workload and checker settings, component tuning — and the
//! scenario file that executes it. Every explore run *is* an ordinary scenario: the plan
//! is written as TOML, parsed back by the scenario parser and run by the scenario engine,
//! so the file a shrink hands over reproduces the run by construction
//! (`msctl scenario run FILE`).

use std::fmt::Write as _;
use std::time::Duration;

use indexmap::IndexMap;
use msctl_chaos::FaultKind;

use crate::nemesis::{FaultEvent, Schedule};

/// Everything one run does.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The run's seed (schedule and workload both derive from it).
    pub seed: u64,
    /// The faults.
    pub schedule: Schedule,
    /// Concurrent clients.
    pub clients: u32,
    /// Workload length.
    pub duration: Duration,
    /// Mean pause between one client's operations.
    pub think: Duration,
    /// Share of operations that place orders.
    pub order_share: f64,
    /// Scarce products and their stock.
    pub scarce: (u32, u32),
    /// How long the stack may settle after the heal.
    pub settle: Duration,
    /// Checkers to run (empty = all).
    pub checkers: Vec<String>,
    /// Component settings (`[tune]`).
    pub tune: IndexMap<String, IndexMap<String, String>>,
    /// Admin token of the services.
    pub admin_token: String,
    /// JWT secret and issuer, for expired-token probes.
    pub jwt: Option<(String, String)>,
    /// Retry budgets by component (`*` default): ratio, reserve per second.
    pub budgets: Vec<(String, f64, f64)>,
}

impl Plan {
    /// The workload parameters in one line (for shrink reports).
    pub fn params(&self) -> String {
        format!(
            "clients={} duration={} think={} order_share={} scarce={}x{}",
            self.clients,
            humantime::format_duration(self.duration),
            humantime::format_duration(self.think),
            self.order_share,
            self.scarce.0,
            self.scarce.1
        )
    }

    /// The step name of event `i` (`f3-kill-product-service`).
    pub fn fault_name(i: usize, e: &FaultEvent) -> String {
        format!(
            "f{}-{}-{}",
            i + 1,
            e.kind.name(),
            e.targets
                .first()
                .map(|t| t.to_string().replace('#', "-"))
                .unwrap_or_default()
        )
    }
}

fn q(s: &str) -> String {
    // TOML basic strings: escape backslash and quote; our values have no control chars.
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn dur(d: Duration) -> String {
    q(&humantime::format_duration(Duration::from_millis(
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
    ))
    .to_string())
}

/// The chaos step's table for one event.
fn chaos_table(name: &str, e: &FaultEvent) -> String {
    let mut t = format!(
        "name = {}, fault = {}, target = {}",
        q(name),
        q(e.kind.name()),
        q(&e.targets
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","))
    );
    match &e.kind {
        FaultKind::Kill { signal } => {
            let _ = write!(t, ", signal = {}", q(signal));
        }
        FaultKind::Partition { from, reset } if !from.is_empty() => {
            let _ = write!(
                t,
                ", from = {}",
                q(&from
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(","))
            );
            if !reset.is_keep() {
                let _ = write!(t, ", reset = {}", q(reset.name()));
            }
        }
        FaultKind::Latency {
            delay_ms,
            jitter_ms,
        } => {
            let _ = write!(
                t,
                ", delay = {}, jitter = {}",
                dur(Duration::from_millis(*delay_ms)),
                dur(Duration::from_millis(*jitter_ms))
            );
        }
        FaultKind::Loss { percent } => {
            let _ = write!(t, ", percent = {percent:?}");
        }
        FaultKind::HttpFault(h) => {
            if let Some(r) = h.error_rate {
                let _ = write!(t, ", error_rate = {r:?}");
            }
            if let Some(s) = h.status {
                let _ = write!(t, ", status = {s}");
            }
            if let Some(d) = h.delay_ms {
                let _ = write!(t, ", delay = {}", dur(Duration::from_millis(d)));
            }
            if let Some(n) = h.first_n {
                let _ = write!(t, ", first = {n}");
            }
            if let Some(p) = &h.path_prefix {
                let _ = write!(t, ", path = {}", q(p));
            }
            if h.after {
                // `after` is the step's start delay, written below.
                t.push_str(", after_handler = true");
            }
        }
        FaultKind::Stop | FaultKind::Restart | FaultKind::Pause | FaultKind::Partition { .. } => {}
    }
    let _ = write!(t, ", after = {}", dur(e.at));
    if !e.duration.is_zero() && e.kind.is_lasting() {
        let _ = write!(t, ", duration = {}", dur(e.duration));
    }
    t
}

/// The scenario file of `plan`, named `name`.
pub fn scenario_toml(name: &str, plan: &Plan, note: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Written by `msctl explore` (seed {}). {note}",
        plan.seed
    );
    let _ = writeln!(out, "# Run it again with: msctl scenario run THIS_FILE");
    let _ = writeln!(out, "name = {}", q(name));
    let _ = writeln!(
        out,
        "description = {}",
        q(&format!(
            "seed {}: {} faults under {} clients for {}; then heal, settle and check",
            plan.seed,
            plan.schedule.events.len(),
            plan.clients,
            humantime::format_duration(plan.duration)
        ))
    );
    for (component, vars) in &plan.tune {
        let _ = writeln!(out, "\n[tune.{}]", q(component));
        for (k, v) in vars {
            let _ = writeln!(out, "{k} = {}", q(v));
        }
    }
    out.push_str(
        "\n[[steady_state]]\nname = \"the gateway is up\"\nrequest = { url = \"{{gateway}}/health\" }\nexpect = { status = 200 }\neventually = { timeout = \"90s\", interval = \"500ms\" }\n",
    );
    out.push_str(
        "\n[[steady_state]]\nname = \"the catalog answers through the gateway\"\nrequest = { url = \"{{gateway}}/api/v1/products?limit=1\" }\nexpect = { status = 200 }\neventually = { timeout = \"90s\", interval = \"500ms\" }\n",
    );
    for (i, e) in plan.schedule.events.iter().enumerate() {
        let name = Plan::fault_name(i, e);
        let _ = writeln!(out, "\n[[steps]]\nname = {}", q(&e.describe()));
        let _ = writeln!(out, "chaos = {{ {} }}", chaos_table(&name, e));
    }
    let mut w = format!(
        "clients = {}, duration = {}, seed = {}, think = {}, order_share = {:?}, scarce = {}, scarce_stock = {}, admin_token = {}",
        plan.clients,
        dur(plan.duration),
        plan.seed,
        dur(plan.think),
        plan.order_share,
        plan.scarce.0,
        plan.scarce.1,
        q(&plan.admin_token)
    );
    if let Some((secret, issuer)) = &plan.jwt {
        let _ = write!(
            w,
            ", jwt_secret = {}, jwt_issuer = {}",
            q(secret),
            q(issuer)
        );
    }
    let _ = writeln!(
        out,
        "\n[[steps]]\nname = \"workload\"\nworkload = {{ {w} }}"
    );
    out.push_str("\n[[steps]]\nname = \"heal every fault\"\nheal = \"all\"\n");
    let mut c = format!(
        "settle = {}, admin_token = {}",
        dur(plan.settle),
        q(&plan.admin_token)
    );
    if !plan.checkers.is_empty() {
        let _ = write!(
            c,
            ", only = [{}]",
            plan.checkers
                .iter()
                .map(|s| q(s))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if !plan.budgets.is_empty() {
        let _ = write!(
            c,
            ", budgets = {{ {} }}",
            plan.budgets
                .iter()
                .map(|(k, r, p)| format!("{} = {{ ratio = {r:?}, per_sec = {p:?} }}", q(k)))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let _ = writeln!(out, "\n[[steps]]\nname = \"checkers\"\ncheck = {{ {c} }}");
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use msctl_chaos::HttpFault;
    use msctl_scenarios::model::{Action, ChaosStep};

    use super::*;
    use crate::nemesis::{self, Component, KindName, ScheduleSpec, Universe};

    fn plan(schedule: Schedule) -> Plan {
        Plan {
            seed: schedule.seed,
            schedule,
            clients: 4,
            duration: Duration::from_secs(60),
            think: Duration::from_millis(50),
            order_share: 0.4,
            scarce: (2, 8),
            settle: Duration::from_secs(30),
            checkers: Vec::new(),
            tune: IndexMap::new(),
            admin_token: "msctl-admin".into(),
            jwt: None,
            budgets: vec![("*".into(), 0.2, 10.0)],
        }
    }

    /// The chaos steps of the plan's scenario file, as the scenario parser reads them.
    fn parsed_chaos(p: &Plan) -> Vec<ChaosStep> {
        let text = scenario_toml("t", p, "");
        let s = msctl_scenarios::model::parse(Path::new("t.toml"), &text)
            .unwrap_or_else(|e| panic!("{text}\n→ {e}"));
        s.steps
            .into_iter()
            .filter_map(|st| match st.action {
                Action::Chaos(c) => Some(c),
                _ => None,
            })
            .collect()
    }

    fn assert_round_trip(p: &Plan) {
        let steps = parsed_chaos(p);
        assert_eq!(steps.len(), p.schedule.events.len());
        for (i, (e, st)) in p.schedule.events.iter().zip(&steps).enumerate() {
            let what = e.describe();
            assert_eq!(st.name, Plan::fault_name(i, e), "{what}");
            assert_eq!(st.after, Some(e.at), "{what}");
            assert_eq!(st.spec.kind, e.kind, "{what}");
            assert_eq!(st.spec.targets, e.targets, "{what}");
            let lasting = !e.duration.is_zero() && e.kind.is_lasting();
            assert_eq!(st.spec.duration, lasting.then_some(e.duration), "{what}");
        }
    }

    #[test]
    fn a_lost_response_fault_round_trips_with_its_start_delay() {
        let lost = HttpFault {
            status: Some(503),
            first_n: Some(2),
            path_prefix: Some("/internal/payments".into()),
            duration: Some("6s".into()),
            after: true,
            ..HttpFault::default()
        };
        let held = HttpFault {
            delay_ms: Some(7_000),
            duration: Some("4s".into()),
            after: true,
            ..HttpFault::default()
        };
        let before = HttpFault {
            status: Some(502),
            duration: Some("5s".into()),
            ..HttpFault::default()
        };
        let event = |at: u64, secs: u64, h: HttpFault, target: &str| nemesis::FaultEvent {
            at: Duration::from_secs(at),
            duration: Duration::from_secs(secs),
            kind: FaultKind::HttpFault(h),
            targets: vec![target.parse().expect("target")],
        };
        let p = plan(Schedule {
            seed: 1,
            events: vec![
                event(5, 6, lost, "payment-service"),
                event(9, 4, held, "product-service#2"),
                event(20, 5, before, "order-service"),
            ],
        });
        let text = scenario_toml("t", &p, "");
        assert!(
            text.contains(", path = \"/internal/payments\", after_handler = true, after = \"5s\""),
            "{text}"
        );
        assert_eq!(text.matches("after_handler = true").count(), 2, "{text}");
        assert_round_trip(&p);
    }

    #[test]
    fn generated_plans_round_trip_through_the_scenario_file() {
        let c = |name: &str, replicas, http: bool, paths: &[&str], post: &[&str]| Component {
            name: name.into(),
            replicas,
            http_faults: http,
            paths: paths.iter().map(|s| s.to_string()).collect(),
            post_paths: post.iter().map(|s| s.to_string()).collect(),
            depended_on: name == "postgres",
            keeps_data: name == "postgres",
            depends_on: if name == "postgres" {
                Vec::new()
            } else {
                vec!["postgres".into()]
            },
        };
        let universe = Universe {
            components: vec![
                c("postgres", 1, false, &[], &[]),
                c("gateway", 1, true, &["/api/v1/orders"], &[]),
                c(
                    "product-service",
                    2,
                    true,
                    &["/api/v1/products", "/internal/reservations"],
                    &["/internal/reservations"],
                ),
                c(
                    "payment-service",
                    1,
                    true,
                    &["/internal/payments/charge"],
                    &["/internal/payments/charge", "/internal/payments"],
                ),
            ],
            kinds: vec![
                KindName::Kill,
                KindName::Pause,
                KindName::Partition,
                KindName::HttpFault,
            ],
        };
        let spec = ScheduleSpec::for_window(Duration::from_secs(60));
        let mut lost = 0;
        for seed in 0..60 {
            let p = plan(nemesis::generate(seed, &universe, &spec));
            lost += p
                .schedule
                .events
                .iter()
                .filter(|e| matches!(&e.kind, FaultKind::HttpFault(h) if h.after))
                .count();
            assert_round_trip(&p);
        }
        assert!(lost > 0, "no lost-response fault in 60 seeds");
    }
}
