//! `msctl test`: the CI smoke test. Build images if needed → `up` under a project of its
//! own → seed → run the smoke scenarios → heal every fault → summary → `down --volumes`
//! (unless `--keep`). Exit 0 when every scenario passed, 1 otherwise.
//!
//! It never touches the developer's running stack: the project defaults to
//! `<stack name>-smoke`, so `msctl up` and `msctl test` can run side by side (ports are
//! ephemeral). When anything fails — `up`, a scenario, the heal — each container's logs,
//! `ps`, the fault ledger and the scenario reports are saved into an artifacts folder whose
//! path is printed, for CI to upload.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use clap::Args;
use futures_util::StreamExt;
use indexmap::IndexMap;
use msctl_chaos::Chaos;
use msctl_explore::report::model::ExploreReport;
use msctl_explore::ExploreOptions;
use msctl_scenarios::report::{self, ScenarioReport, Status};
use msctl_scenarios::{catalog, Engine, RunOptions, StackEnvironment};
use msctl_stack::docker::DockerRuntime;
use msctl_stack::engine;
use msctl_stack::model::Stack;
use msctl_stack::orchestrator::{Project, UpOptions};
use msctl_stack::progress::ProgressSink;
use msctl_stack::runtime::{ImageBuild, LogOptions};

use crate::scenario::{parse_all, summary, Lines};
use crate::Cli;

/// The scenarios `msctl test` runs when none are named.
pub const DEFAULT_SCENARIOS: [&str; 4] =
    ["smoke", "order-saga", "breaker-trip", "saga-crash-recovery"];

/// `msctl test` arguments.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// Run these scenarios (catalog names or paths; repeatable) instead of the default
    /// smoke set (smoke, order-saga, breaker-trip, saga-crash-recovery).
    #[arg(long = "scenario", value_name = "NAME|PATH")]
    pub scenarios: Vec<String>,
    /// Write a JUnit XML report here.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write a JSON report here.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Leave the stack running afterwards (default: `down --volumes`).
    #[arg(long)]
    pub keep: bool,
    /// Where to save logs and `ps` on failure (a timestamped folder is made inside).
    #[arg(long, value_name = "DIR", default_value = "msctl-artifacts")]
    pub artifacts: PathBuf,
    /// Set a scenario variable (repeatable): --var card=4242424242424242
    #[arg(long = "var", value_name = "K=V", value_parser = crate::scenario::parse_var)]
    pub vars: Vec<(String, String)>,
    /// Never pull; build the base image with debootstrap.
    #[arg(long)]
    pub offline: bool,
    /// How long `up` may take to get every component healthy.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// After the scenarios, one seeded `msctl explore` run with a workload this long
    /// (random faults under clients, then every checker).
    #[arg(long, value_name = "DUR", default_value = "45s", value_parser = humantime::parse_duration)]
    pub explore: Duration,
    /// Skip the explore run.
    #[arg(long, conflicts_with = "explore_seed")]
    pub no_explore: bool,
    /// Seed of the explore run (default: a fresh one, printed).
    #[arg(long)]
    pub explore_seed: Option<u64>,
}

/// How the run went, phase by phase.
#[derive(Debug, Default)]
struct Timings {
    up: Option<Duration>,
    scenarios: Option<Duration>,
    explore: Option<Duration>,
    down: Option<Duration>,
}

/// Runs `msctl test`.
pub async fn run(cli: &Cli, args: &TestArgs, progress: &ProgressSink) -> Result<u8> {
    let started = Instant::now();
    let stack = crate::load(cli)?;
    let dir = catalog::dir(&stack.root);
    let names: Vec<String> = if args.scenarios.is_empty() {
        DEFAULT_SCENARIOS.iter().map(|s| s.to_string()).collect()
    } else {
        args.scenarios.clone()
    };
    let files: Vec<PathBuf> = names
        .iter()
        .map(|a| catalog::find(a, &dir))
        .collect::<Result<_, _>>()
        .map_err(crate::scenario::usage)?;
    // Every file is parsed before anything starts: a broken one is exit 2, not a red CI run
    // after minutes of booting.
    let scenarios = parse_all(&files)?;

    let docker = engine::connect().await?;
    let project_name = cli
        .project
        .clone()
        .unwrap_or_else(|| format!("{}-smoke", stack.name));
    let runtime = DockerRuntime::new(docker, project_name.clone());
    let project = Project::new(stack.clone(), Arc::new(runtime.clone()));
    let chaos = Chaos::docker(stack.clone(), runtime.clone())?;
    say(
        cli,
        format!(
            "msctl test: project \"{project_name}\", scenarios {}",
            scenarios
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );

    let mut timings = Timings::default();
    let outcome = tokio::select! {
        o = body(cli, args, &stack, &project, &runtime, chaos, &scenarios, &mut timings, progress) => o,
        _ = tokio::signal::ctrl_c() => Outcome::Interrupted,
    };

    // Whatever happened: heal what the ledger still holds (a scenario interrupted or
    // failed mid-fault), save artifacts on failure, then tear down.
    let chaos = Chaos::docker(stack.clone(), runtime.clone())?;
    let ledger = chaos.list().await.ok().unwrap_or_default();
    let heal_error = if ledger.is_empty() {
        None
    } else {
        say(
            cli,
            format!("== heal ({} faults still active)", ledger.len()),
        );
        match chaos.heal(None).await {
            Ok(r) if r.failed.is_empty() => None,
            Ok(r) => Some(
                r.failed
                    .iter()
                    .map(|(id, e)| format!("{id}: {e}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            Err(e) => Some(e.to_string()),
        }
    };
    let explored_ok = match &outcome {
        Outcome::Ran(_, Some(Ok(e))) => e.runs.iter().all(|r| r.passed),
        Outcome::Ran(_, Some(Err(_))) => false,
        _ => true,
    };
    let passed = matches!(&outcome, Outcome::Ran(r, _) if r.iter().all(|r| r.status == Status::Passed))
        && heal_error.is_none()
        && explored_ok;

    let (reports, explored) = match &outcome {
        Outcome::Ran(r, e) => (r.as_slice(), e.as_ref()),
        _ => (&[][..], None),
    };
    write_reports(args, reports)?;

    let mut saved = None;
    if !passed {
        let explore_report = explored.and_then(|e| e.as_ref().ok()).map(|b| &**b);
        match save_artifacts(&args.artifacts, &project, reports, &ledger, explore_report).await {
            Ok(dir) => saved = Some(dir),
            Err(e) => eprintln!("msctl: could not save the artifacts: {e:#}"),
        }
    }

    if args.keep {
        say(
            cli,
            format!("== keeping project \"{project_name}\" up (--keep); remove it with `msctl -p {project_name} down --volumes`"),
        );
    } else {
        say(cli, "== down".to_string());
        let t = Instant::now();
        if let Err(e) = project.down(true, progress).await {
            eprintln!("msctl: down of project \"{project_name}\" failed: {e}");
        }
        timings.down = Some(t.elapsed());
    }

    // The summary.
    if !reports.is_empty() {
        print!("{}", summary(reports));
    }
    match explored {
        Some(Ok(e)) => {
            for r in &e.runs {
                println!("{}", crate::explore_cmd::run_summary(r));
            }
            if e.runs.iter().any(|r| !r.passed) {
                println!("        replay: {}", e.replay);
            }
        }
        Some(Err(msg)) => println!("FAILED  explore: {msg}"),
        None => {}
    }
    match &outcome {
        Outcome::UpFailed(e) => println!("msctl test: FAILED: the stack did not come up: {e:#}"),
        Outcome::Interrupted => println!("msctl test: interrupted"),
        Outcome::Ran(..) => {}
    }
    if let Some(e) = &heal_error {
        println!("msctl test: FAILED: faults could not be healed: {e}");
    }
    let secs =
        |d: Option<Duration>| d.map_or("-".to_string(), |d| format!("{:.1}s", d.as_secs_f64()));
    println!(
        "msctl test: {} in {:.1}s (up {}, scenarios {}, explore {}, down {})",
        if passed { "PASSED" } else { "FAILED" },
        started.elapsed().as_secs_f64(),
        secs(timings.up),
        secs(timings.scenarios),
        secs(timings.explore),
        secs(timings.down),
    );
    if let Some(dir) = saved {
        println!(
            "msctl test: logs, ps and reports saved in {}",
            dir.display()
        );
    }
    Ok(if passed { 0 } else { crate::exit::FAILED })
}

enum Outcome {
    /// `up` (or the seed after it) failed.
    UpFailed(anyhow::Error),
    /// Scenarios ran; their reports, and the explore run's (`None` when skipped).
    Ran(
        Vec<ScenarioReport>,
        Option<Result<Box<ExploreReport>, String>>,
    ),
    /// Ctrl-C.
    Interrupted,
}

#[allow(clippy::too_many_arguments)]
async fn body(
    cli: &Cli,
    args: &TestArgs,
    stack: &Stack,
    project: &Project,
    runtime: &DockerRuntime,
    chaos: Chaos,
    scenarios: &[msctl_scenarios::Scenario],
    timings: &mut Timings,
    progress: &ProgressSink,
) -> Outcome {
    say(cli, "== up".to_string());
    let t = Instant::now();
    let opts = UpOptions {
        build: ImageBuild {
            offline: args.offline,
            force: false,
        },
        wait: true,
        timeout: args.timeout,
        ..UpOptions::default()
    };
    if let Err(e) = project.up(&opts, progress).await {
        return Outcome::UpFailed(e.into());
    }
    // `up` seeds what it creates; seeding again is idempotent and covers a kept stack.
    if let Err(e) = project.seed(&[], progress).await {
        return Outcome::UpFailed(e.into());
    }
    timings.up = Some(t.elapsed());
    say(
        cli,
        format!(
            "msctl test: stack up and seeded in {:.1}s",
            t.elapsed().as_secs_f64()
        ),
    );

    let t = Instant::now();
    let reports = match run_scenarios(cli, args, stack, project, chaos, scenarios).await {
        Ok(r) => r,
        Err(e) => return Outcome::UpFailed(e),
    };
    timings.scenarios = Some(t.elapsed());
    let scenarios_passed = reports.iter().all(|r| r.status == Status::Passed);
    if args.no_explore || !scenarios_passed {
        if !args.no_explore {
            say(cli, "== explore skipped: a scenario failed".to_string());
        }
        return Outcome::Ran(reports, None);
    }
    let t = Instant::now();
    let explored = explore(cli, args, stack, project, runtime).await;
    timings.explore = Some(t.elapsed());
    Outcome::Ran(
        reports,
        Some(explored.map(Box::new).map_err(|e| format!("{e:#}"))),
    )
}

/// One short seeded explore run, its scenario files next to the artifacts.
async fn explore(
    cli: &Cli,
    args: &TestArgs,
    stack: &Stack,
    project: &Project,
    runtime: &DockerRuntime,
) -> Result<ExploreReport> {
    let opts = ExploreOptions {
        seed: args
            .explore_seed
            .unwrap_or_else(msctl_chaos::target::fresh_seed),
        runs: 1,
        duration: args.explore,
        clients: 6,
        settle: Duration::from_secs(60),
        out_dir: args.artifacts.join(format!("{}-explore", project.name())),
        ..ExploreOptions::default()
    };
    say(
        cli,
        format!(
            "== explore: seed {} for {} (replay: msctl -p {} explore --seed {} --duration {})",
            opts.seed,
            humantime::format_duration(opts.duration),
            project.name(),
            opts.seed,
            humantime::format_duration(opts.duration)
        ),
    );
    // The smoke stack is torn down (or kept for more tests): put tuned components back
    // only when it is kept.
    crate::explore_cmd::explore_on(cli, stack, runtime, &opts, !args.keep).await
}

async fn run_scenarios(
    cli: &Cli,
    args: &TestArgs,
    stack: &Stack,
    project: &Project,
    chaos: Chaos,
    scenarios: &[msctl_scenarios::Scenario],
) -> Result<Vec<ScenarioReport>> {
    let env_project = Project::new(stack.clone(), project.runtime().clone());
    let env = Arc::new(StackEnvironment::new(stack.clone(), env_project, chaos));
    let observer = Arc::new(Lines::new(cli.quiet));
    let engine = Engine::new(env, observer).map_err(anyhow::Error::msg)?;
    let opts = RunOptions {
        vars: args.vars.iter().cloned().collect::<IndexMap<_, _>>(),
        run_id: None,
    };
    let mut reports = Vec::new();
    for s in scenarios {
        say(cli, format!("== scenario {}", s.name));
        reports.push(engine.run(s, &opts).await);
    }
    engine.close().await;
    Ok(reports)
}

fn write_reports(args: &TestArgs, reports: &[ScenarioReport]) -> Result<()> {
    if let Some(path) = &args.report {
        std::fs::write(path, report::json(reports))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.junit {
        std::fs::write(path, report::junit(reports))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Saves `ps.json`, `ps.txt`, every container's whole log, the fault ledger as it was
/// before the heal, and the scenario reports into `<root>/<project>-<UTC time>/`.
async fn save_artifacts(
    root: &Path,
    project: &Project,
    reports: &[ScenarioReport],
    ledger: &[msctl_chaos::ledger::FaultRecord],
    explored: Option<&ExploreReport>,
) -> Result<PathBuf> {
    let stamp = humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .replace([':', '-'], "")
        .trim_end_matches('Z')
        .to_string();
    let dir = root.join(format!("{}-{stamp}", project.name()));
    let logs_dir = dir.join("logs");
    std::fs::create_dir_all(&logs_dir)
        .with_context(|| format!("creating {}", logs_dir.display()))?;
    let rows = project.ps().await?;
    std::fs::write(dir.join("ps.json"), serde_json::to_string_pretty(&rows)?)?;
    std::fs::write(dir.join("ps.txt"), crate::output::ps_table(&rows))?;
    std::fs::write(
        dir.join("faults.json"),
        serde_json::to_string_pretty(ledger)?,
    )?;
    if !reports.is_empty() {
        std::fs::write(dir.join("report.json"), report::json(reports))?;
        std::fs::write(dir.join("junit.xml"), report::junit(reports))?;
        std::fs::write(dir.join("summary.txt"), summary(reports))?;
    }
    if let Some(e) = explored {
        crate::explore_cmd::write_reports(
            e,
            Some(&dir.join("explore.json")),
            Some(&dir.join("explore.junit.xml")),
            Some(&dir.join("explore.html")),
            Some(&dir.join("explore.png")),
        )?;
    }
    for c in project.runtime().list_containers().await? {
        let mut text = String::new();
        let mut lines = project.runtime().logs(
            &c.id,
            LogOptions {
                follow: false,
                tail: None,
                since: None,
            },
        );
        while let Some(line) = lines.next().await {
            match line {
                Ok(l) => {
                    text.push_str(&l.text);
                    text.push('\n');
                }
                Err(e) => {
                    text.push_str(&format!("msctl: reading the log failed: {e}\n"));
                    break;
                }
            }
        }
        std::fs::write(logs_dir.join(format!("{}.log", c.name)), text)?;
    }
    Ok(dir)
}

fn say(cli: &Cli, line: String) {
    if !cli.quiet {
        eprintln!("{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<crate::Cli, clap::Error> {
        crate::Cli::try_parse_from(std::iter::once("msctl").chain(args.iter().copied()))
    }

    #[test]
    fn test_flags_parse() {
        let cli = parse(&[
            "test",
            "--junit",
            "j.xml",
            "--scenario",
            "smoke",
            "--scenario",
            "order-saga",
            "--keep",
            "--artifacts",
            "out",
            "--var",
            "card=1",
            "--timeout",
            "90s",
        ])
        .expect("valid");
        let crate::Command::Test(a) = cli.command else {
            panic!("not test")
        };
        assert_eq!(a.junit, Some(PathBuf::from("j.xml")));
        assert_eq!(a.scenarios, vec!["smoke", "order-saga"]);
        assert!(a.keep && !a.offline);
        assert_eq!(a.artifacts, PathBuf::from("out"));
        assert_eq!(a.vars, vec![("card".into(), "1".into())]);
        assert_eq!(a.timeout, Duration::from_secs(90));
    }

    // The CI examples users copy must call flags that exist.
    #[test]
    fn the_ci_examples_call_msctl_with_valid_flags() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/ci");
        let mut seen = 0;
        for name in ["github-actions.yml", "gitlab-ci.yml"] {
            let text = std::fs::read_to_string(dir.join(name)).expect("example exists");
            for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
                let Some(at) = line.find("msctl ") else {
                    continue;
                };
                let cmd = line[at..].trim();
                if !(cmd.starts_with("msctl test") || cmd.starts_with("msctl config")) {
                    continue;
                }
                let args: Vec<&str> = cmd.split_whitespace().skip(1).collect();
                parse(&args).unwrap_or_else(|e| panic!("{name}: `{cmd}`: {e}"));
                seen += 1;
            }
        }
        assert!(
            seen >= 4,
            "the examples run msctl config check and msctl test"
        );
    }

    #[test]
    fn test_defaults_run_the_smoke_set_and_tear_down() {
        let cli = parse(&["test"]).expect("valid");
        let crate::Command::Test(a) = cli.command else {
            panic!("not test")
        };
        assert!(a.scenarios.is_empty() && !a.keep && a.junit.is_none());
        assert_eq!(a.artifacts, PathBuf::from("msctl-artifacts"));
        assert_eq!(
            DEFAULT_SCENARIOS,
            ["smoke", "order-saga", "breaker-trip", "saga-crash-recovery"]
        );
        assert!(parse(&["test", "--timeout", "soon"]).is_err());
    }
}
