//! `msctl explore`: seeded random fault schedules under a real workload against the running
//! project, checked against invariants; `--shrink` minimises the first failing run into a
//! scenario file. Wiring only: options → [`msctl_explore::Explorer`] → reports.
//!
//! Exit 0 when every run passed, 1 when a checker failed (or a run could not complete).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use indexmap::IndexMap;
use indicatif::{ProgressBar, ProgressStyle};
use msctl_chaos::Chaos;
use msctl_explore::nemesis::KindName;
use msctl_explore::plan::Plan;
use msctl_explore::report::model::{ExploreReport, RunReport};
use msctl_explore::{ExploreOptions, Explorer, Fresh, Progress};
use msctl_scenarios::StackEnvironment;
use msctl_stack::docker::DockerRuntime;
use msctl_stack::engine;
use msctl_stack::model::Stack;
use msctl_stack::orchestrator::{Project, UpOptions};

use crate::scenario::{usage, Lines};
use crate::Cli;

/// `msctl explore` arguments.
#[derive(Debug, Args)]
pub struct ExploreArgs {
    /// Seed of the first run (run i uses SEED+i); a fresh one is drawn and printed when unset.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Runs, each with its own seed.
    #[arg(long, default_value_t = 1)]
    pub runs: u32,
    /// Workload length of each run.
    #[arg(long, default_value = "100s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    pub clients: u32,
    /// Mean pause between one client's operations.
    #[arg(long, default_value = "250ms", value_parser = humantime::parse_duration)]
    pub think: Duration,
    /// Fault kinds to draw from (comma list: kill,stop,restart,pause,partition,latency,loss,http-fault); default all.
    #[arg(long, value_name = "KINDS", value_parser = parse_kinds)]
    pub faults: Option<KindList>,
    /// Components to target (comma list); default every component.
    #[arg(long, value_name = "COMPONENTS", value_delimiter = ',')]
    pub targets: Vec<String>,
    /// Faults per run (default: about one per 10 s of workload).
    #[arg(long)]
    pub fault_count: Option<usize>,
    /// How long the stack may settle after the heal before the checkers judge.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub settle: Duration,
    /// Shrink the first failing run to a minimal scenario (ddmin over faults, then durations and clients).
    #[arg(long)]
    pub shrink: bool,
    /// Print each run's seed and fault schedule, and run nothing (the engine is still
    /// asked which fault kinds it can apply).
    #[arg(long)]
    pub dry_run: bool,
    /// Tries per shrink candidate (it counts as failing when any try fails).
    #[arg(long, default_value_t = 2)]
    pub shrink_tries: u32,
    /// Re-runs of the minimal scenario to measure how often it reproduces.
    #[arg(long, default_value_t = 5)]
    pub reproduce: u32,
    /// Most candidate runs one shrink may make.
    #[arg(long, default_value_t = 40)]
    pub max_candidates: u32,
    /// Run a component with a setting (repeatable): --tune order-service.SAGA_DEADLINE=20s.
    #[arg(long = "tune", value_name = "COMPONENT.VAR=VALUE", value_parser = parse_tune)]
    pub tune: Vec<(String, String, String)>,
    /// Run without explore's default settings (shortened saga deadline, lease, breaker cool-down).
    #[arg(long)]
    pub no_tune: bool,
    /// Leave the tuned components as they ran (default: put them back afterwards).
    #[arg(long)]
    pub keep_tuned: bool,
    /// What starts afresh before the first run and after each failed one: the stateless
    /// components (processes: services, registry, gateway, Redis; data kept), the whole
    /// project with its volumes, seeded again (data), or nothing (none).
    #[arg(long, value_enum, default_value = "processes")]
    pub fresh: FreshArg,
    /// Write the JSON report here.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Write a JUnit XML report here.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write the self-contained HTML timeline here.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Write a PNG of the first failing run's timeline (or the first run's) here.
    #[arg(long, value_name = "FILE")]
    pub png: Option<PathBuf>,
    /// Where each run's scenario file goes (default .msctl/<project>/explore next to the stack file).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// `--fresh`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FreshArg {
    /// Nothing.
    None,
    /// The stateless components.
    Processes,
    /// The whole project, volumes included, seeded again.
    Data,
}

/// A comma list of fault kinds, as `--faults` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindList(pub Vec<KindName>);

fn parse_kinds(s: &str) -> Result<KindList, String> {
    s.split(',')
        .map(|k| {
            KindName::parse(k).ok_or_else(|| {
                format!(
                    "unknown fault kind {k:?}; use {}",
                    KindName::ALL.map(|k| k.name()).join(", ")
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(KindList)
}

/// `component.VAR=value`.
pub(crate) fn parse_tune(s: &str) -> Result<(String, String, String), String> {
    let (lhs, value) = s
        .split_once('=')
        .ok_or_else(|| format!("--tune {s:?} must be COMPONENT.VAR=VALUE"))?;
    let (component, var) = lhs
        .rsplit_once('.')
        .ok_or_else(|| format!("--tune {s:?} must be COMPONENT.VAR=VALUE"))?;
    if component.is_empty() || var.is_empty() {
        return Err(format!("--tune {s:?} must be COMPONENT.VAR=VALUE"));
    }
    Ok((component.to_string(), var.to_string(), value.to_string()))
}

impl ExploreArgs {
    /// The library's options.
    pub fn options(&self, stack: &Stack, project: &str) -> Result<ExploreOptions> {
        let mut tune: IndexMap<String, IndexMap<String, String>> = IndexMap::new();
        for (c, k, v) in &self.tune {
            let name = stack
                .resolve_component(c)
                .map_err(|e| usage(format!("--tune: {e}")))?
                .name
                .clone();
            tune.entry(name).or_default().insert(k.clone(), v.clone());
        }
        if self.clients == 0 || self.clients > msctl_scenarios::workload::MAX_CLIENTS {
            return Err(usage(format!(
                "--clients must be 1–{}",
                msctl_scenarios::workload::MAX_CLIENTS
            )));
        }
        if self.duration < Duration::from_secs(10) {
            return Err(usage("--duration must be at least 10s".into()));
        }
        Ok(ExploreOptions {
            seed: self.seed.unwrap_or_else(msctl_chaos::target::fresh_seed),
            runs: self.runs,
            duration: self.duration,
            clients: self.clients,
            think: self.think,
            kinds: self.faults.clone().map(|k| k.0).unwrap_or_default(),
            targets: self.targets.clone(),
            faults: self.fault_count,
            settle: self.settle,
            shrink: self.shrink,
            shrink_tries: self.shrink_tries,
            reproduction_runs: self.reproduce,
            max_candidates: self.max_candidates,
            fresh: match self.fresh {
                FreshArg::None => Fresh::None,
                FreshArg::Processes => Fresh::Processes,
                FreshArg::Data => Fresh::Data,
            },
            tune,
            out_dir: self
                .out
                .clone()
                .unwrap_or_else(|| stack.root.join(".msctl").join(project).join("explore")),
        })
    }
}

/// A run's header and its faults, one per line.
fn schedule_text(index: usize, total: usize, plan: &Plan) -> String {
    let mut components: Vec<String> = plan
        .schedule
        .events
        .iter()
        .flat_map(|e| e.components())
        .collect();
    components.sort();
    components.dedup();
    let mut out = format!(
        "explore run {}/{total}: seed {} — {} faults over {} components, {} clients for {}\n",
        index + 1,
        plan.seed,
        plan.schedule.events.len(),
        components.len(),
        plan.clients,
        humantime::format_duration(plan.duration)
    );
    for e in &plan.schedule.events {
        out.push_str(&format!("  fault {}\n", e.describe()));
    }
    out
}

/// Lines per run on stderr and a progress bar while a run's workload goes.
pub(crate) struct RunLines {
    quiet: bool,
    bar: Mutex<Option<ProgressBar>>,
}

impl RunLines {
    pub(crate) fn new(quiet: bool) -> Self {
        Self {
            quiet,
            bar: Mutex::new(None),
        }
    }
}

impl Progress for RunLines {
    fn run_started(&self, index: usize, total: usize, plan: &Plan) {
        if self.quiet {
            return;
        }
        eprint!("{}", schedule_text(index, total, plan));
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(plan.duration.as_secs());
            bar.set_style(
                ProgressStyle::with_template(
                    "  run [{bar:30}] {elapsed} (workload {len}s, then heal, settle, check)",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.enable_steady_tick(Duration::from_millis(500));
            let b = bar.clone();
            tokio::spawn(async move {
                while !b.is_finished() {
                    b.set_position(b.elapsed().as_secs());
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            });
            if let Ok(mut slot) = self.bar.lock() {
                *slot = Some(bar);
            }
        }
    }

    fn run_finished(&self, r: &RunReport) {
        if let Ok(mut slot) = self.bar.lock() {
            if let Some(b) = slot.take() {
                b.finish_and_clear();
            }
        }
        if self.quiet && r.passed {
            return;
        }
        eprintln!("{}", run_summary(r));
    }

    fn candidate(&self, n: u32, events: usize, params: &str, failed: bool) {
        if !self.quiet {
            eprintln!(
                "  shrink candidate {n}: {events} faults, {params} → {}",
                if failed { "still fails" } else { "passes" }
            );
        }
    }

    fn note(&self, line: &str) {
        if !self.quiet {
            eprintln!("explore: {line}");
        }
    }
}

/// A run's verdict lines.
pub(crate) fn run_summary(r: &RunReport) -> String {
    let mut out = format!(
        "{} explore seed {} in {:.0}s: {} operations ({} ok, {} fail, {} info), {} orders acknowledged, {} of {} faults applied",
        if r.passed { "PASSED" } else { "FAILED" },
        r.seed,
        r.seconds,
        r.workload.operations,
        r.workload.by_outcome.get("ok").copied().unwrap_or(0),
        r.workload.by_outcome.get("fail").copied().unwrap_or(0),
        r.workload.by_outcome.get("info").copied().unwrap_or(0),
        r.workload.orders_acknowledged,
        r.faults.iter().filter(|f| f.applied_s.is_some()).count(),
        r.faults.len(),
    );
    if let Some(e) = &r.error {
        out.push_str(&format!("\n        could not complete: {e}"));
    }
    for v in &r.verdicts {
        if !v.passed {
            out.push_str(&format!(
                "\n        checker {} FAILED: {}",
                v.checker, v.invariant
            ));
            for e in v.evidence.iter().skip(1).take(6) {
                out.push_str(&format!("\n          {e}"));
            }
        }
    }
    for f in r.faults.iter().filter(|f| f.error.is_some()) {
        out.push_str(&format!(
            "\n        fault {} not counted: {}",
            f.name,
            f.error.as_deref().unwrap_or("")
        ));
    }
    out
}

/// An explorer over the running project of `runtime`.
fn explorer_for(stack: &Stack, runtime: &DockerRuntime, quiet: bool) -> Result<Explorer> {
    let project = Project::new(stack.clone(), Arc::new(runtime.clone()));
    let chaos = Chaos::docker(stack.clone(), runtime.clone())?;
    let env = Arc::new(StackEnvironment::new(stack.clone(), project, chaos));
    Ok(Explorer::new(
        env,
        stack.clone(),
        Arc::new(Lines::new(true)),
        Arc::new(RunLines::new(quiet)),
    ))
}

/// Runs explore on `stack`'s running project `project_name` and puts tuned components
/// back unless asked not to.
pub(crate) async fn explore_on(
    cli: &Cli,
    stack: &Stack,
    runtime: &DockerRuntime,
    opts: &ExploreOptions,
    keep_tuned: bool,
) -> Result<ExploreReport> {
    let explorer = explorer_for(stack, runtime, cli.quiet)?;
    let report = tokio::select! {
        r = explorer.explore(opts) => r.map_err(anyhow::Error::from),
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    // Whatever happened: nothing explore applied may stay (an interrupted run leaves its
    // faults in the ledger), and the tuned components go back to the stack file's settings.
    let chaos = Chaos::docker(stack.clone(), runtime.clone())?;
    if !chaos.list().await.unwrap_or_default().is_empty() {
        let _ = chaos.heal(None).await;
    }
    let tuned: Vec<String> = report
        .as_ref()
        .map(|r| r.tuned.keys().cloned().collect())
        .unwrap_or_default();
    if !keep_tuned && !tuned.is_empty() {
        if !cli.quiet {
            eprintln!(
                "explore: putting {} back to the stack file's settings",
                tuned.join(", ")
            );
        }
        let project = Project::new(stack.clone(), Arc::new(runtime.clone()));
        let up = UpOptions {
            components: tuned,
            check_images: false,
            ..UpOptions::default()
        };
        project
            .up(&up, &msctl_stack::progress::silent())
            .await
            .context("restoring the tuned components")?;
    }
    report
}

/// Writes the reports asked for.
pub(crate) fn write_reports(
    report: &ExploreReport,
    json: Option<&Path>,
    junit: Option<&Path>,
    html: Option<&Path>,
    png: Option<&Path>,
) -> Result<()> {
    let write = |p: &Path, bytes: &[u8]| {
        std::fs::write(p, bytes).with_context(|| format!("writing {}", p.display()))
    };
    if let Some(p) = json {
        write(p, msctl_explore::report::json(report).as_bytes())?;
    }
    if let Some(p) = junit {
        write(p, msctl_explore::report::junit(report).as_bytes())?;
    }
    if let Some(p) = html {
        write(p, msctl_explore::report::html::html(report).as_bytes())?;
    }
    if let Some(p) = png {
        let run = report.runs.iter().position(|r| !r.passed).unwrap_or(0);
        let bytes = msctl_explore::report::png::png(report, run)
            .map_err(|e| anyhow::anyhow!("drawing {}: {e}", p.display()))?;
        write(p, &bytes)?;
    }
    Ok(())
}

/// Runs `msctl explore`.
pub async fn run(cli: &Cli, args: &ExploreArgs) -> Result<u8> {
    let stack = crate::load(cli)?;
    let project_name = cli.project.clone().unwrap_or_else(|| stack.name.clone());
    let opts = args.options(&stack, &project_name)?;
    let docker = engine::connect().await?;
    let runtime = DockerRuntime::new(docker, project_name.clone());
    if !cli.quiet {
        eprintln!(
            "msctl explore: project \"{project_name}\", seed {}, {} run(s) of {} — replay with --seed {}",
            opts.seed,
            opts.runs,
            humantime::format_duration(opts.duration),
            opts.seed
        );
    }
    let mut opts = opts;
    if args.no_tune {
        opts.tune.clear();
    }
    if args.dry_run {
        let plans = explorer_for(&stack, &runtime, false)?.plans(&opts).await?;
        for (i, plan) in plans.iter().enumerate() {
            print!("{}", schedule_text(i, plans.len(), plan));
        }
        return Ok(0);
    }
    let report = explore_on(cli, &stack, &runtime, &opts, args.keep_tuned).await?;
    write_reports(
        &report,
        args.report.as_deref(),
        args.junit.as_deref(),
        args.html.as_deref(),
        args.png.as_deref(),
    )?;
    let passed = report.runs.iter().filter(|r| r.passed).count();
    println!(
        "msctl explore: {passed} of {} runs passed (seeds {}–{})",
        report.runs.len(),
        opts.seed,
        opts.seed + u64::from(opts.runs) - 1
    );
    for r in &report.runs {
        println!("{}", run_summary(r));
    }
    if let Some(s) = &report.shrink {
        println!(
            "shrunk seed {} for checker {}: {} → {} faults ({} → {}), {} candidates in {:.0}s; reproduced {}/{}: {}",
            s.run_seed,
            s.checker,
            s.events_before,
            s.events_after,
            s.params_before,
            s.params_after,
            s.candidates,
            s.seconds,
            s.reproduced,
            s.reproduction_runs,
            s.scenario_file.display()
        );
        if let Some(back) = &s.stepped_back {
            println!("  stepped back: {back}");
        }
        for line in &s.remaining {
            println!("  fault {line}");
        }
        println!("  run it: msctl scenario run {}", s.scenario_file.display());
    }
    if passed < report.runs.len() {
        println!("replay: {}", report.replay);
    }
    Ok(if passed == report.runs.len() {
        0
    } else {
        crate::exit::FAILED
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Wrap {
        #[command(flatten)]
        args: ExploreArgs,
    }

    fn parse(args: &[&str]) -> Result<ExploreArgs, clap::Error> {
        Wrap::try_parse_from(std::iter::once("explore").chain(args.iter().copied())).map(|w| w.args)
    }

    #[test]
    fn every_flag_parses() {
        let a = parse(&[
            "--seed",
            "42",
            "--runs",
            "5",
            "--duration",
            "2m",
            "--clients",
            "4",
            "--think",
            "100ms",
            "--faults",
            "kill,pause,http-fault",
            "--targets",
            "postgres,product-service",
            "--fault-count",
            "9",
            "--settle",
            "30s",
            "--shrink",
            "--shrink-tries",
            "3",
            "--reproduce",
            "4",
            "--max-candidates",
            "20",
            "--tune",
            "order-service.SAGA_DEADLINE=15s",
            "--no-tune",
            "--keep-tuned",
            "--report",
            "r.json",
            "--junit",
            "j.xml",
            "--html",
            "e.html",
            "--png",
            "e.png",
            "--out",
            "dir",
        ])
        .expect("parses");
        assert_eq!(a.seed, Some(42));
        assert_eq!(a.runs, 5);
        assert_eq!(a.duration, Duration::from_secs(120));
        assert_eq!(
            a.faults,
            Some(KindList(vec![
                KindName::Kill,
                KindName::Pause,
                KindName::HttpFault
            ]))
        );
        assert_eq!(a.targets, vec!["postgres", "product-service"]);
        assert_eq!(a.fault_count, Some(9));
        assert!(a.shrink && a.no_tune && a.keep_tuned);
        assert_eq!(
            a.tune,
            vec![("order-service".into(), "SAGA_DEADLINE".into(), "15s".into())]
        );
        assert_eq!(a.png, Some(PathBuf::from("e.png")));
    }

    #[test]
    fn unknown_kinds_and_malformed_tunings_are_refused_by_name() {
        let e = parse(&["--faults", "kill,explode"]).expect_err("refused");
        assert!(e.to_string().contains("explode"), "{e}");
        let e = parse(&["--tune", "SAGA_DEADLINE=1s"]).expect_err("refused");
        assert!(e.to_string().contains("COMPONENT.VAR=VALUE"), "{e}");
    }
}
