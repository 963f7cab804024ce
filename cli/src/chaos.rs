//! `msctl chaos …`: turns arguments into [`FaultSpec`]s for msctl-chaos and prints what
//! happened. A fault with `--duration` is reverted by this process when the time is up (or
//! on Ctrl-C); if the process dies first, `msctl chaos heal` reverts it from the ledger.

use std::time::Duration;

use anyhow::Result;
use clap::{Args, Subcommand};
use msctl_chaos::{
    Applied, Chaos, ChaosError, FaultKind, FaultRecord, FaultSpec, Healed, HttpFault,
    PartitionReset, Target,
};
use msctl_stack::docker::DockerRuntime;
use msctl_stack::engine;
use msctl_stack::progress::{ProgressExt, ProgressSink};
use serde_json::json;

use super::output::{self, Format};
use super::Cli;

/// The chaos subcommands (DESIGN §2).
#[derive(Debug, Subcommand)]
pub enum ChaosCommand {
    /// Send a signal (default SIGKILL) to TARGET; heal starts it again.
    Kill(KillArgs),
    /// Stop TARGET (SIGTERM, then SIGKILL after its grace period); heal starts it again.
    Stop(LifecycleArgs),
    /// Restart TARGET once.
    Restart(LifecycleArgs),
    /// Freeze TARGET's processes; heal (or unpause) resumes them.
    Pause(LifecycleArgs),
    /// Resume a paused TARGET (and drop its pause faults from the ledger).
    Unpause(LifecycleArgs),
    /// Cut TARGETs off the project network, or only from the --from group.
    Partition(PartitionArgs),
    /// Delay everything TARGET sends (tc netem in a helper container).
    Latency(LatencyArgs),
    /// Drop a share of the packets TARGET sends (tc netem).
    Loss(LossArgs),
    /// Make a service fail or slow down its own requests (POST /admin/faults).
    HttpFault(HttpFaultArgs),
    /// Show the active faults.
    List,
    /// Revert every active fault (or those on TARGET) and wait until healthy again.
    Heal(HealArgs),
}

/// Flags every fault takes.
#[derive(Debug, Args)]
pub struct Common {
    /// Revert on its own after this long (e.g. 30s); without it, the fault lasts until
    /// `msctl chaos heal`.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Seed for COMPONENT#random targets, to replay a run.
    #[arg(long)]
    seed: Option<u64>,
}

/// `chaos kill`.
#[derive(Debug, Args)]
pub struct KillArgs {
    /// COMPONENT, COMPONENT#N or COMPONENT#random.
    #[arg(value_parser = parse_target)]
    target: Target,
    /// Signal name or number.
    #[arg(long, short = 's', default_value = "SIGKILL", value_parser = parse_signal)]
    signal: String,
    #[command(flatten)]
    common: Common,
}

/// `chaos stop|restart|pause|unpause`.
#[derive(Debug, Args)]
pub struct LifecycleArgs {
    /// COMPONENT, COMPONENT#N or COMPONENT#random.
    #[arg(value_parser = parse_target)]
    target: Target,
    #[command(flatten)]
    common: Common,
}

/// A comma-separated list of targets.
#[derive(Debug, Clone)]
pub struct TargetList(Vec<Target>);

/// `chaos partition`.
#[derive(Debug, Args)]
pub struct PartitionArgs {
    /// TARGET[,TARGET...]: the group to cut off.
    #[arg(value_parser = parse_target_list)]
    targets: TargetList,
    /// TARGET[,TARGET...]: cut the group off from these only (each side still reaches
    /// everything else).
    #[arg(long, value_parser = parse_target_list)]
    from: Option<TargetList>,
    /// With --from: what happens to the TCP connections open between the groups — keep
    /// (they hang until the heal), start (destroyed as the cut starts) or heal (destroyed
    /// as it heals: what a cut longer than the peers' timeouts leaves).
    #[arg(long, default_value = "keep", value_parser = PartitionReset::parse)]
    reset: PartitionReset,
    #[command(flatten)]
    common: Common,
}

/// `chaos latency`.
#[derive(Debug, Args)]
pub struct LatencyArgs {
    /// COMPONENT, COMPONENT#N or COMPONENT#random.
    #[arg(value_parser = parse_target)]
    target: Target,
    /// Added delay (e.g. 200ms).
    #[arg(long, value_parser = humantime::parse_duration)]
    delay: Duration,
    /// Random variation around the delay (e.g. 20ms).
    #[arg(long, value_parser = humantime::parse_duration)]
    jitter: Option<Duration>,
    #[command(flatten)]
    common: Common,
}

/// `chaos loss`.
#[derive(Debug, Args)]
pub struct LossArgs {
    /// COMPONENT, COMPONENT#N or COMPONENT#random.
    #[arg(value_parser = parse_target)]
    target: Target,
    /// Share of packets dropped, in percent (0-100].
    #[arg(long)]
    percent: f64,
    #[command(flatten)]
    common: Common,
}

/// `chaos http-fault`.
#[derive(Debug, Args)]
pub struct HttpFaultArgs {
    /// COMPONENT, COMPONENT#N or COMPONENT#random.
    #[arg(value_parser = parse_target)]
    target: Target,
    /// Probability (0-1) that a matching request fails.
    #[arg(long)]
    error_rate: Option<f64>,
    /// Status of the injected failures (400-599; the service defaults to 503).
    #[arg(long)]
    status: Option<u16>,
    /// Delay added to every matching request (e.g. 500ms).
    #[arg(long, value_parser = humantime::parse_duration)]
    delay: Option<Duration>,
    /// Fail the first N matching requests.
    #[arg(long)]
    first: Option<u64>,
    /// Only requests whose path starts with this.
    #[arg(long)]
    path: Option<String>,
    /// Apply after the handler: the request is served, then its answer is delayed or
    /// replaced — a lost response.
    #[arg(long)]
    after: bool,
    #[command(flatten)]
    common: Common,
}

/// `chaos heal`.
#[derive(Debug, Args)]
pub struct HealArgs {
    /// Only faults on this COMPONENT or COMPONENT#N.
    #[arg(value_parser = parse_target)]
    target: Option<Target>,
    /// How long to wait for healed components to be ready again.
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

fn parse_target(text: &str) -> Result<Target, String> {
    text.parse()
}

fn parse_target_list(text: &str) -> Result<TargetList, String> {
    Target::parse_list(text).map(TargetList)
}

fn parse_signal(text: &str) -> Result<String, String> {
    msctl_chaos::fault::parse_signal(text)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl ChaosCommand {
    /// The fault this command applies, if it applies one.
    fn spec(&self) -> Option<FaultSpec> {
        let one = |kind: FaultKind, target: &Target, common: &Common| FaultSpec {
            kind,
            targets: vec![target.clone()],
            duration: common.duration,
            seed: common.seed,
        };
        Some(match self {
            ChaosCommand::Kill(a) => one(
                FaultKind::Kill {
                    signal: a.signal.clone(),
                },
                &a.target,
                &a.common,
            ),
            ChaosCommand::Stop(a) => one(FaultKind::Stop, &a.target, &a.common),
            ChaosCommand::Restart(a) => one(FaultKind::Restart, &a.target, &a.common),
            ChaosCommand::Pause(a) => one(FaultKind::Pause, &a.target, &a.common),
            ChaosCommand::Partition(a) => FaultSpec {
                kind: FaultKind::Partition {
                    from: a.from.clone().map(|l| l.0).unwrap_or_default(),
                    reset: a.reset,
                },
                targets: a.targets.0.clone(),
                duration: a.common.duration,
                seed: a.common.seed,
            },
            ChaosCommand::Latency(a) => one(
                FaultKind::Latency {
                    delay_ms: millis(a.delay),
                    jitter_ms: a.jitter.map_or(0, millis),
                },
                &a.target,
                &a.common,
            ),
            ChaosCommand::Loss(a) => {
                one(FaultKind::Loss { percent: a.percent }, &a.target, &a.common)
            }
            ChaosCommand::HttpFault(a) => one(
                FaultKind::HttpFault(HttpFault {
                    error_rate: a.error_rate,
                    status: a.status,
                    delay_ms: a.delay.map(millis),
                    path_prefix: a.path.clone(),
                    duration: None,
                    first_n: a.first,
                    after: a.after,
                }),
                &a.target,
                &a.common,
            ),
            ChaosCommand::Unpause(_) | ChaosCommand::List | ChaosCommand::Heal(_) => return None,
        })
    }
}

/// Runs a chaos command; usage errors (bad target, a container that is not ours) exit 2.
pub async fn run(cli: &Cli, cmd: &ChaosCommand, progress: &ProgressSink) -> Result<u8> {
    match dispatch(cli, cmd, progress).await {
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<ChaosError>()
                    .is_some_and(ChaosError::is_usage)
            }) =>
        {
            eprintln!("msctl: {e:#}");
            Ok(super::exit::USAGE)
        }
        other => other,
    }
}

async fn connect(cli: &Cli) -> Result<Chaos> {
    let stack = super::load(cli)?;
    let docker = engine::connect().await?;
    let name = cli.project.clone().unwrap_or_else(|| stack.name.clone());
    Ok(Chaos::docker(stack, DockerRuntime::new(docker, name))?)
}

fn containers(r: &FaultRecord) -> String {
    r.containers
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn applied_json(a: &Applied) -> serde_json::Value {
    json!({ "event": "applied", "fault": a.record, "apply_secs": a.took.as_secs_f64() })
}

fn healed_json(h: &Healed) -> serde_json::Value {
    json!({ "event": "healed", "fault": h.record, "heal_secs": h.took.as_secs_f64() })
}

async fn dispatch(cli: &Cli, cmd: &ChaosCommand, progress: &ProgressSink) -> Result<u8> {
    let json = cli.output == Format::Json;
    let say = |line: String| {
        if !cli.quiet {
            println!("{line}");
        }
    };
    if let Some(spec) = cmd.spec() {
        // Flag mistakes are reported before connecting to anything.
        spec.validate()?;
        let chaos = connect(cli).await?;
        let applied = chaos.apply(&spec).await?;
        let r = &applied.record;
        if json {
            println!("{}", applied_json(&applied));
        } else {
            let seed = r
                .seed
                .map(|s| format!(" (seed {s}; replay with --seed {s})"))
                .unwrap_or_default();
            let what = if r.kind.is_lasting() {
                format!("{} {}", r.id, r.kind)
            } else {
                r.kind.to_string()
            };
            say(format!(
                "msctl: {what} on {} ({}): applied in {:.2}s{seed}",
                r.target,
                containers(r),
                applied.took.as_secs_f64()
            ));
        }
        let Some(duration) = spec.duration else {
            if r.kind.is_lasting() && !json {
                say(format!(
                    "msctl: {} stays until `msctl chaos heal`{}",
                    r.id,
                    if cli.project.is_some() {
                        " (with the same --project)"
                    } else {
                        ""
                    }
                ));
            }
            return Ok(0);
        };
        let label = format!("{} {} on {}", r.id, r.kind, r.target);
        progress.start(&r.id, &label, Some(duration.as_secs()));
        progress.message(
            &r.id,
            format!("reverts in {}", humantime::format_duration(duration)),
        );
        let until = tokio::time::Instant::now() + duration;
        let interrupted = loop {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break false;
            }
            tokio::select! {
                _ = tokio::time::sleep(left.min(Duration::from_secs(1))) => {
                    progress.position(&r.id, (duration - left).as_secs() + 1);
                }
                _ = tokio::signal::ctrl_c() => break true,
            }
        };
        progress.finish(
            &r.id,
            true,
            if interrupted {
                "interrupted; reverting"
            } else {
                "time is up; reverting"
            },
        );
        match chaos.revert(&r.id).await? {
            Some(h) if json => println!("{}", healed_json(&h)),
            Some(h) => say(format!(
                "msctl: {} reverted, healthy again in {:.2}s",
                h.record.id,
                h.took.as_secs_f64()
            )),
            None => say(format!("msctl: {} was already healed", r.id)),
        }
        return Ok(0);
    }
    match cmd {
        ChaosCommand::Unpause(a) => {
            if a.common.duration.is_some() {
                return Err(ChaosError::Usage("unpause cannot take --duration".into()).into());
            }
            let chaos = connect(cli).await?;
            let names = chaos.unpause(&a.target).await?;
            say(format!("msctl: unpaused {}", names.join(", ")));
            Ok(0)
        }
        ChaosCommand::List => {
            let ledger = ledger_only(cli)?;
            let now = std::time::SystemTime::now();
            let faults = ledger.read()?.faults;
            if json {
                let rows: Vec<serde_json::Value> = faults
                    .iter()
                    .map(|f| {
                        let mut v = serde_json::to_value(f).unwrap_or_default();
                        v["overdue"] = json!(f.is_overdue(now));
                        v
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(0);
            }
            if faults.is_empty() {
                say("msctl: no active faults".to_string());
                return Ok(0);
            }
            let rows: Vec<Vec<String>> = faults
                .iter()
                .map(|f| {
                    let state = if f.is_overdue(now) {
                        "overdue: run `msctl chaos heal`".to_string()
                    } else {
                        format!("{:?}", f.state).to_lowercase()
                    };
                    vec![
                        f.id.clone(),
                        f.kind.to_string(),
                        f.target.clone(),
                        containers(f),
                        f.created_at.clone(),
                        f.expires_at.clone().unwrap_or_else(|| "-".into()),
                        state,
                    ]
                })
                .collect();
            print!(
                "{}",
                output::table(
                    &[
                        "ID",
                        "FAULT",
                        "TARGET",
                        "CONTAINERS",
                        "SINCE",
                        "UNTIL",
                        "STATE"
                    ],
                    &rows
                )
            );
            Ok(0)
        }
        ChaosCommand::Heal(a) => {
            let chaos = connect(cli).await?.with_ready_timeout(a.timeout);
            let report = chaos.heal(a.target.as_ref()).await?;
            if json {
                let failed: Vec<serde_json::Value> = report
                    .failed
                    .iter()
                    .map(|(id, e)| json!({ "id": id, "error": e.to_string() }))
                    .collect();
                let healed: Vec<serde_json::Value> =
                    report.healed.iter().map(healed_json).collect();
                println!(
                    "{}",
                    json!({ "healed": healed, "failed": failed, "helpers_removed": report.helpers_removed })
                );
            } else {
                for h in &report.healed {
                    say(format!(
                        "msctl: healed {} {} on {} ({}) in {:.2}s",
                        h.record.id,
                        h.record.kind,
                        h.record.target,
                        containers(&h.record),
                        h.took.as_secs_f64()
                    ));
                }
                if report.helpers_removed > 0 {
                    say(format!(
                        "msctl: removed {} leftover chaos helper container(s)",
                        report.helpers_removed
                    ));
                }
                if report.healed.is_empty() && report.failed.is_empty() {
                    say("msctl: nothing to heal".to_string());
                }
            }
            if report.failed.is_empty() {
                return Ok(0);
            }
            for (id, e) in &report.failed {
                eprintln!("msctl: could not heal {id}: {e}");
            }
            Ok(super::exit::FAILED)
        }
        _ => Ok(0),
    }
}

/// `chaos list` reads the ledger only: it works without an engine.
fn ledger_only(cli: &Cli) -> Result<msctl_chaos::FaultLedger> {
    let stack = super::load(cli)?;
    let name = cli.project.clone().unwrap_or_else(|| stack.name.clone());
    Ok(msctl_chaos::FaultLedger::for_project(&stack.root, &name))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::{Cli, Command};

    fn chaos(args: &[&str]) -> Result<ChaosCommand, clap::Error> {
        let cli = Cli::try_parse_from(["msctl", "chaos"].iter().chain(args.iter()).copied())?;
        match cli.command {
            Command::Chaos(c) => Ok(c),
            other => panic!("not chaos: {other:?}"),
        }
    }

    fn spec(args: &[&str]) -> FaultSpec {
        chaos(args).expect("parses").spec().expect("a fault")
    }

    #[test]
    fn lifecycle_faults_parse() {
        let s = spec(&["kill", "redis#2", "--signal", "term", "--duration", "30s"]);
        assert_eq!(
            s.kind,
            FaultKind::Kill {
                signal: "SIGTERM".into()
            }
        );
        assert_eq!(s.targets[0].to_string(), "redis#2");
        assert_eq!(s.duration, Some(Duration::from_secs(30)));
        assert_eq!(
            spec(&["kill", "redis"]).kind,
            FaultKind::Kill {
                signal: "SIGKILL".into()
            }
        );
        let s = spec(&["pause", "product#random", "--seed", "42"]);
        assert_eq!(s.kind, FaultKind::Pause);
        assert_eq!(s.seed, Some(42));
        assert_eq!(spec(&["stop", "postgres"]).kind, FaultKind::Stop);
        assert_eq!(spec(&["restart", "postgres"]).kind, FaultKind::Restart);
        assert!(chaos(&["unpause", "redis"])
            .expect("parses")
            .spec()
            .is_none());
    }

    #[test]
    fn network_faults_parse() {
        let s = spec(&["partition", "order,gateway", "--from", "payment,postgres"]);
        assert_eq!(s.targets.len(), 2);
        let FaultKind::Partition { from, reset } = &s.kind else {
            panic!("not a partition")
        };
        assert_eq!(from.len(), 2);
        assert_eq!(*reset, PartitionReset::Keep);
        assert_eq!(
            spec(&["partition", "redis"]).kind,
            FaultKind::Partition {
                from: vec![],
                reset: PartitionReset::Keep
            }
        );
        let s = spec(&[
            "partition",
            "notification",
            "--from",
            "postgres",
            "--reset",
            "start",
        ]);
        assert!(matches!(
            s.kind,
            FaultKind::Partition {
                reset: PartitionReset::Start,
                ..
            }
        ));
        assert_eq!(
            spec(&["latency", "redis", "--delay", "200ms", "--jitter", "20ms"]).kind,
            FaultKind::Latency {
                delay_ms: 200,
                jitter_ms: 20
            }
        );
        assert_eq!(
            spec(&["loss", "redis", "--percent", "12.5"]).kind,
            FaultKind::Loss { percent: 12.5 }
        );
    }

    #[test]
    fn http_fault_parses() {
        let s = spec(&[
            "http-fault",
            "product",
            "--error-rate",
            "0.5",
            "--status",
            "502",
            "--delay",
            "1s",
            "--first",
            "3",
            "--path",
            "/api/v1/products",
            "--duration",
            "1m",
        ]);
        assert_eq!(
            s.kind,
            FaultKind::HttpFault(HttpFault {
                error_rate: Some(0.5),
                status: Some(502),
                delay_ms: Some(1000),
                path_prefix: Some("/api/v1/products".into()),
                duration: None,
                first_n: Some(3),
                after: false,
            })
        );
        assert_eq!(s.duration, Some(Duration::from_secs(60)));
        let s = spec(&[
            "http-fault",
            "payment-service",
            "--status",
            "503",
            "--path",
            "/api/v1/payments",
            "--after",
        ]);
        assert_eq!(
            s.kind,
            FaultKind::HttpFault(HttpFault {
                status: Some(503),
                path_prefix: Some("/api/v1/payments".into()),
                after: true,
                ..HttpFault::default()
            })
        );
        assert!(s.validate().is_ok());
        assert_eq!(
            s.kind.to_string(),
            "http-fault status 503 path /api/v1/payments after"
        );
    }

    #[test]
    fn list_and_heal_parse() {
        assert!(matches!(
            chaos(&["list"]).expect("list"),
            ChaosCommand::List
        ));
        let ChaosCommand::Heal(h) = chaos(&["heal", "redis#1", "--timeout", "30s"]).expect("heal")
        else {
            panic!("not heal")
        };
        assert_eq!(h.target.map(|t| t.to_string()).as_deref(), Some("redis#1"));
        assert_eq!(h.timeout, Duration::from_secs(30));
        assert!(matches!(
            chaos(&["heal"]).expect("heal"),
            ChaosCommand::Heal(HealArgs { target: None, .. })
        ));
    }

    #[test]
    fn bad_chaos_arguments_are_usage_errors() {
        for args in [
            &["kill", "redis#0"][..],
            &["kill", "redis#x"],
            &["kill", "redis", "--signal", "SIGNOPE"],
            &["latency", "redis"],
            &["latency", "redis", "--delay", "soon"],
            &["loss", "redis", "--percent", "many"],
            &["partition", "a,,b"],
            &["pause", "redis", "--seed", "-1"],
        ] {
            let e = chaos(args).expect_err(&args.join(" "));
            assert_eq!(e.exit_code(), 2, "{args:?}");
        }
        // Parse fine, refused by validation (also exit 2).
        assert!(spec(&["loss", "redis", "--percent", "0"])
            .validate()
            .is_err());
        assert!(spec(&["restart", "redis", "--duration", "5s"])
            .validate()
            .is_err());
        assert!(spec(&["http-fault", "product"]).validate().is_err());
        assert!(spec(&["http-fault", "product", "--after"])
            .validate()
            .is_err());
        assert!(chaos(&["http-fault", "product", "--status", "503", "--after", "yes"]).is_err());
    }
}
