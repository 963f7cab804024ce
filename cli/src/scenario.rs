//! `msctl scenario list|run`: find scenario files (catalog names or paths), parse them all
//! up front (a malformed file is a usage error, exit 2, before anything runs), run them
//! against the project with live per-step lines, then print a summary and write the
//! `--report` JSON and `--junit` XML.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use indexmap::IndexMap;
use indicatif::{ProgressBar, ProgressStyle};
use msctl_chaos::Chaos;
use msctl_scenarios::model::{Action, Scenario, Step};
use msctl_scenarios::report::{self, ScenarioReport, Status, StepReport};
use msctl_scenarios::{catalog, Engine, Observer, RunOptions, StackEnvironment};
use msctl_stack::docker::DockerRuntime;
use msctl_stack::engine;
use msctl_stack::model::{ConfigErrors, Stack};
use msctl_stack::orchestrator::{OrchestratorError, Project};

use crate::output::Format;
use crate::Cli;

/// `msctl scenario …`
#[derive(Debug, Subcommand)]
pub enum ScenarioCommand {
    /// List the bundled scenarios (scenarios/catalog/*.toml).
    List,
    /// Run scenarios by catalog name or path; exit 1 when one fails.
    Run(RunArgs),
}

/// `msctl scenario run` arguments.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Catalog names (`smoke`) or paths to scenario files.
    pub scenarios: Vec<String>,
    /// Run every scenario of the catalog.
    #[arg(long, conflicts_with = "scenarios")]
    pub all: bool,
    /// Set a variable (repeatable): --var email=a@b.c
    #[arg(long = "var", value_name = "K=V", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,
    /// Write a JUnit XML report here.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write a JSON report here.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

pub(crate) fn parse_var(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("--var {s:?} must be NAME=VALUE"))?;
    let k = k.trim();
    if k.is_empty()
        || !k
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!(
            "--var name {k:?} must be letters, digits, '_' or '-'"
        ));
    }
    Ok((k.to_string(), v.to_string()))
}

/// Parses every file, collecting all errors (each names file:line:col).
pub fn parse_all(files: &[PathBuf]) -> Result<Vec<Scenario>, ConfigErrors> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for f in files {
        match msctl_scenarios::model::load(f) {
            Ok(s) => out.push(s),
            Err(e) => errors.extend(e.0),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// For `msctl config check`: parses every catalog scenario; returns how many.
pub fn check_catalog(stack: &Stack) -> Result<usize> {
    let dir = catalog::dir(&stack.root);
    if !dir.is_dir() {
        return Ok(0);
    }
    let files = catalog::files(&dir).with_context(|| format!("reading {}", dir.display()))?;
    Ok(parse_all(&files)?.len())
}

/// A wrong scenario selection: exit 2, like a wrong component selection.
pub(crate) fn usage(message: String) -> anyhow::Error {
    anyhow::Error::new(OrchestratorError::Selection(message))
}

/// Runs `msctl scenario …`.
pub async fn run(cli: &Cli, cmd: &ScenarioCommand) -> Result<u8> {
    let stack = crate::load(cli)?;
    let dir = catalog::dir(&stack.root);
    match cmd {
        ScenarioCommand::List => {
            let files =
                catalog::files(&dir).with_context(|| format!("reading {}", dir.display()))?;
            let scenarios = parse_all(&files)?;
            match cli.output {
                Format::Json => {
                    let list: Vec<_> = scenarios
                        .iter()
                        .map(|s| {
                            serde_json::json!({
                                "name": s.name,
                                "file": s.file,
                                "description": s.description.trim(),
                                "steps": s.steps.len(),
                            })
                        })
                        .collect();
                    println!("{}", serde_json::to_string_pretty(&list)?);
                }
                Format::Text => {
                    let width = scenarios.iter().map(|s| s.name.len()).max().unwrap_or(4);
                    for s in &scenarios {
                        let first = s
                            .description
                            .split_whitespace()
                            .collect::<Vec<_>>()
                            .join(" ");
                        let short: String = first.chars().take(100).collect();
                        let dots = if first.chars().count() > 100 {
                            "…"
                        } else {
                            ""
                        };
                        println!(
                            "{:<width$}  {:>3} steps  {short}{dots}",
                            s.name,
                            s.steps.len()
                        );
                    }
                }
            }
            Ok(0)
        }
        ScenarioCommand::Run(args) => run_scenarios(cli, stack, &dir, args).await,
    }
}

async fn run_scenarios(cli: &Cli, stack: Stack, dir: &Path, args: &RunArgs) -> Result<u8> {
    let files: Vec<PathBuf> = if args.all {
        catalog::files(dir).with_context(|| format!("reading {}", dir.display()))?
    } else if args.scenarios.is_empty() {
        return Err(usage(
            "name at least one scenario (see `msctl scenario list`) or pass --all".into(),
        ));
    } else {
        args.scenarios
            .iter()
            .map(|a| catalog::find(a, dir))
            .collect::<Result<_, _>>()
            .map_err(usage)?
    };
    let scenarios = parse_all(&files)?;

    let docker = engine::connect().await?;
    let name = cli.project.clone().unwrap_or_else(|| stack.name.clone());
    let runtime = DockerRuntime::new(docker, name);
    let project = Project::new(stack.clone(), Arc::new(runtime.clone()));
    let chaos = Chaos::docker(stack.clone(), runtime.clone())?;
    let env = Arc::new(StackEnvironment::new(stack.clone(), project, chaos));
    let observer = Arc::new(Lines::new(cli.quiet));
    let engine = Engine::new(env, observer).map_err(anyhow::Error::msg)?;
    let opts = RunOptions {
        vars: args.vars.iter().cloned().collect::<IndexMap<_, _>>(),
        run_id: None,
    };

    let mut reports = Vec::new();
    for s in &scenarios {
        let r = tokio::select! {
            r = engine.run(s, &opts) => r,
            _ = tokio::signal::ctrl_c() => {
                let chaos = Chaos::docker(stack.clone(), runtime.clone())?;
                heal_own_faults(&chaos).await;
                return Ok(super::exit::FAILED);
            }
        };
        reports.push(r);
    }
    engine.close().await;

    if let Some(path) = &args.report {
        std::fs::write(path, report::json(&reports))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.junit {
        std::fs::write(path, report::junit(&reports))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    match cli.output {
        Format::Json => println!("{}", report::json(&reports)),
        Format::Text => print!("{}", summary(&reports)),
    }
    Ok(if reports.iter().all(|r| r.status == Status::Passed) {
        0
    } else {
        super::exit::FAILED
    })
}

/// After Ctrl-C: reverts the faults this process applied (the ledger records who applied
/// each one); faults of other msctl processes are left alone. What cannot be reverted
/// stays in the ledger for `msctl chaos heal`.
pub(crate) async fn heal_own_faults(chaos: &Chaos) {
    let me = std::process::id();
    let mine: Vec<_> = match chaos.list().await {
        Ok(faults) => faults.into_iter().filter(|f| f.pid == me).collect(),
        Err(e) => {
            eprintln!(
                "msctl: interrupted; cannot read the fault ledger ({e}): run `msctl chaos heal`"
            );
            return;
        }
    };
    if mine.is_empty() {
        eprintln!("msctl: interrupted");
        return;
    }
    eprintln!(
        "msctl: interrupted; reverting the {} fault(s) this run applied",
        mine.len()
    );
    for f in mine.iter().rev() {
        match chaos.revert(&f.id).await {
            Ok(_) => eprintln!("  healed {} ({} {})", f.id, f.kind.name(), f.target),
            Err(e) => eprintln!(
                "  could not revert {} ({e}); it stays in the ledger: run `msctl chaos heal`",
                f.id
            ),
        }
    }
}

/// The closing summary: one line per scenario, then what failed and where.
pub fn summary(reports: &[ScenarioReport]) -> String {
    let mut out = String::from("\n");
    for r in reports {
        let (passed, failed, errors, skipped) = r.counts();
        out.push_str(&format!(
            "{:<7} {}  ({passed} passed, {failed} failed, {errors} errors, {skipped} skipped; {:.1}s)\n",
            if r.status == Status::Passed { "PASSED" } else { "FAILED" },
            r.name,
            r.seconds
        ));
        if let Some(f) = r.first_failure() {
            out.push_str(&format!(
                "        {}:{}: step \"{}\" ({}, {}): {}\n",
                r.file.display(),
                f.line,
                f.name,
                f.kind,
                f.phase,
                f.message.as_deref().unwrap_or("failed")
            ));
        }
    }
    let failed = reports
        .iter()
        .filter(|r| r.status != Status::Passed)
        .count();
    out.push_str(&format!(
        "{} passed, {} failed\n",
        reports.len() - failed,
        failed
    ));
    out
}

/// Live per-step lines on stderr, and a progress bar for load phases on a terminal.
pub(crate) struct Lines {
    quiet: bool,
    terminal: bool,
    bar: Mutex<Option<(ProgressBar, Duration)>>,
    last_plain: Mutex<u64>,
}

impl Lines {
    pub(crate) fn new(quiet: bool) -> Self {
        Self {
            quiet,
            terminal: std::io::stderr().is_terminal(),
            bar: Mutex::new(None),
            last_plain: Mutex::new(0),
        }
    }
}

impl Observer for Lines {
    fn scenario_started(&self, s: &Scenario, run_id: &str) {
        if !self.quiet {
            eprintln!("scenario {} (run {run_id}) — {}", s.name, s.file.display());
        }
    }

    fn step_started(&self, _phase: &str, step: &Step) {
        if let Action::Load(l) = &step.action {
            if self.terminal && !self.quiet {
                let bar = ProgressBar::new(l.duration.as_millis() as u64);
                bar.set_style(
                    ProgressStyle::with_template("  load [{bar:30}] {elapsed}/{msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                );
                if let Ok(mut b) = self.bar.lock() {
                    *b = Some((bar, l.duration));
                }
            }
        }
    }

    fn load_progress(&self, _step: &Step, done: u64, errors: u64, elapsed: Duration) {
        if self.quiet {
            return;
        }
        if let Ok(b) = self.bar.lock() {
            if let Some((bar, total)) = b.as_ref() {
                bar.set_position(elapsed.as_millis().min(total.as_millis()) as u64);
                bar.set_message(format!(
                    "{}s  {done} requests, {errors} errors, {:.0} req/s",
                    total.as_secs(),
                    done as f64 / elapsed.as_secs_f64().max(0.001)
                ));
                return;
            }
        }
        // Not a terminal: a plain line every 5 s.
        let secs = elapsed.as_secs();
        if let Ok(mut last) = self.last_plain.lock() {
            if secs >= *last + 5 {
                *last = secs;
                eprintln!("    load: {secs}s, {done} requests, {errors} errors");
            }
        }
    }

    fn step_finished(&self, r: &StepReport) {
        if let Ok(mut b) = self.bar.lock() {
            if let Some((bar, _)) = b.take() {
                bar.finish_and_clear();
            }
        }
        if let Ok(mut last) = self.last_plain.lock() {
            *last = 0;
        }
        if self.quiet && r.status != Status::Failed && r.status != Status::Error {
            return;
        }
        let extra = match (&r.message, r.kind.as_str(), &r.details) {
            (Some(m), _, _) => format!(": {m}"),
            (None, "load", Some(d)) => format!(
                ": {} requests, {:.1} req/s, p50 {:.1}ms p95 {:.1}ms p99 {:.1}ms, errors {:.2}%",
                d["requests"],
                d["rps"].as_f64().unwrap_or(0.0),
                d["p50_ms"].as_f64().unwrap_or(0.0),
                d["p95_ms"].as_f64().unwrap_or(0.0),
                d["p99_ms"].as_f64().unwrap_or(0.0),
                d["error_rate"].as_f64().unwrap_or(0.0) * 100.0
            ),
            _ => String::new(),
        };
        let attempts = if r.attempts > 1 {
            format!(", {} attempts", r.attempts)
        } else {
            String::new()
        };
        eprintln!(
            "  {:<7} [{}] {}{extra} ({:.2}s{attempts})",
            r.status.word(),
            r.phase,
            r.name,
            r.seconds
        );
    }

    fn scenario_finished(&self, r: &ScenarioReport) {
        if !self.quiet {
            eprintln!(
                "scenario {}: {} in {:.1}s",
                r.name,
                if r.status == Status::Passed {
                    "passed"
                } else {
                    "FAILED"
                },
                r.seconds
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<crate::Cli, clap::Error> {
        use clap::Parser;
        crate::Cli::try_parse_from(std::iter::once("msctl").chain(args.iter().copied()))
    }

    #[test]
    fn run_flags_parse() {
        let cli = parse(&[
            "scenario", "run", "smoke", "x.toml", "--var", "a=1", "--var", "b=2", "--junit",
            "j.xml", "--report", "r.json",
        ])
        .expect("valid");
        let crate::Command::Scenario(ScenarioCommand::Run(a)) = cli.command else {
            panic!("not scenario run")
        };
        assert_eq!(a.scenarios, vec!["smoke", "x.toml"]);
        assert_eq!(
            a.vars,
            vec![("a".into(), "1".into()), ("b".into(), "2".into())]
        );
        assert_eq!(a.junit, Some(PathBuf::from("j.xml")));
        assert_eq!(a.report, Some(PathBuf::from("r.json")));
        assert!(!a.all);
        assert!(parse(&["scenario", "run", "--all"]).is_ok());
        assert!(parse(&["scenario", "run", "--all", "smoke"]).is_err());
        assert!(parse(&["scenario", "run", "--var", "novalue", "smoke"]).is_err());
        assert!(matches!(
            parse(&["scenario", "list"]).expect("valid").command,
            crate::Command::Scenario(ScenarioCommand::List)
        ));
    }

    #[test]
    fn summary_names_the_failing_step() {
        let r = ScenarioReport {
            name: "smoke".into(),
            file: PathBuf::from("scenarios/catalog/smoke.toml"),
            run_id: "r".into(),
            status: Status::Failed,
            seconds: 1.0,
            started_at: "2026-01-01T00:00:00".into(),
            faults: Vec::new(),
            steps: vec![StepReport {
                phase: "method".into(),
                name: "place an order".into(),
                kind: "request".into(),
                line: 40,
                status: Status::Failed,
                seconds: 0.1,
                attempts: 1,
                message: Some("expectation `status 202`: expected 202, saw 503".into()),
                details: None,
            }],
        };
        let s = summary(&[r]);
        assert!(s.contains("FAILED  smoke"), "{s}");
        assert!(s.contains("scenarios/catalog/smoke.toml:40: step \"place an order\" (request, method): expectation `status 202`: expected 202, saw 503"), "{s}");
        assert!(s.ends_with("0 passed, 1 failed\n"), "{s}");
    }

    #[test]
    fn vars_parse() {
        assert_eq!(
            parse_var("email=a=b@c").expect("valid"),
            ("email".to_string(), "a=b@c".to_string())
        );
        assert!(parse_var("novalue").is_err());
        assert!(parse_var("=x").is_err());
        assert!(parse_var("a b=x").is_err());
    }
}
