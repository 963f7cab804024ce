//! `msctl`: boot a microservices stack on the local Docker engine, inspect it and tear it
//! down. This file is wiring only: parse arguments, load the stack, call the library, print.

mod chaos;
mod dash;
mod explore_cmd;
mod output;
mod progress;
mod scenario;
mod test_cmd;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use futures_util::StreamExt;
use msctl_stack::compose;
use msctl_stack::docker::DockerRuntime;
use msctl_stack::engine::{self, EngineUnreachable};
use msctl_stack::model::{ConfigErrors, Stack};
use msctl_stack::orchestrator::{Action, OrchestratorError, Project, UpOptions};
use msctl_stack::runtime::{ImageBuild, LogOptions, Runtime};

use output::Format;
use progress::Verbosity;

/// Boot, test and break a microservices stack on the local Docker engine.
#[derive(Debug, Parser)]
#[command(name = "msctl", version, about, propagate_version = true)]
struct Cli {
    /// The stack file. Given before the command (`msctl -f other.toml up`), as with docker
    /// compose, so that `logs -f` can mean follow.
    #[arg(long, short = 'f', env = "MSCTL_FILE", default_value = "stack.toml")]
    file: PathBuf,
    /// Project name (prefix of every container, network and volume); defaults to the
    /// stack file's `name`.
    #[arg(long, short = 'p', global = true, env = "MSCTL_PROJECT")]
    project: Option<String>,
    /// Output format for ps and other listings.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Format::Text)]
    output: Format,
    /// Show every progress message.
    #[arg(long, short = 'v', global = true, conflicts_with = "quiet")]
    verbose: bool,
    /// Show errors only.
    #[arg(long, short = 'q', global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build missing images and boot the stack in dependency order; wait until healthy.
    Up(UpArgs),
    /// Remove the project's containers and network (and volumes with --volumes).
    Down {
        /// Also remove the project's named volumes (database data).
        #[arg(long)]
        volumes: bool,
    },
    /// List the project's containers: component, replica, state, health, ports, uptime.
    Ps,
    /// Show container logs.
    Logs(LogsArgs),
    /// Restart every replica of a component and wait until it is ready.
    Restart {
        /// Component name (a unique prefix is enough).
        component: String,
        /// How long to wait for it to be ready again.
        #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// Load fixtures (fixtures/seed) into the components that declare `seed`; idempotent.
    Seed {
        /// Only these components.
        component: Vec<String>,
    },
    /// Build images.
    #[command(subcommand)]
    Images(ImagesCommand),
    /// Validate configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Inject faults (kill, stop, pause, partition, latency, loss, http) and heal them.
    #[command(subcommand)]
    Chaos(chaos::ChaosCommand),
    /// Run scenario files (requests, chaos, load, SQL invariants) against the stack.
    #[command(subcommand)]
    Scenario(scenario::ScenarioCommand),
    /// Live terminal dashboard: components, upstreams, sagas, traffic, faults, logs.
    Dash,
    /// CI smoke test: up → seed → smoke scenarios → heal → down; exit 1 when one fails.
    Test(test_cmd::TestArgs),
    /// Random fault schedules under a real workload, checked against invariants; replay
    /// by --seed, --shrink a failure to a minimal scenario.
    Explore(explore_cmd::ExploreArgs),
}

#[derive(Debug, Args)]
struct UpArgs {
    /// Only these components (and what they depend on).
    component: Vec<String>,
    /// Only the components of this profile (and what they depend on); repeatable.
    #[arg(long)]
    profile: Vec<String>,
    /// Rebuild images even when they are up to date.
    #[arg(long)]
    build: bool,
    /// Never pull; build the base image with debootstrap.
    #[arg(long)]
    offline: bool,
    /// Return once every container is started, without waiting for health.
    #[arg(long)]
    no_wait: bool,
    /// How long to wait for the stack to become healthy.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

#[derive(Debug, Args)]
struct LogsArgs {
    /// Component (a unique prefix is enough); all components when omitted.
    component: Option<String>,
    /// Keep following new lines.
    #[arg(long, short = 'f')]
    follow: bool,
    /// Only the last N lines of each container.
    #[arg(long)]
    tail: Option<u64>,
    /// Only lines newer than this (e.g. 10m).
    #[arg(long, value_parser = humantime::parse_duration)]
    since: Option<Duration>,
}

#[derive(Debug, Subcommand)]
enum ImagesCommand {
    /// Build every image the stack file defines (the base image first).
    Build {
        /// Never pull; build the base image with debootstrap.
        #[arg(long)]
        offline: bool,
        /// Rebuild even when up to date.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate the stack file.
    Check,
    /// Print an equivalent docker-compose file (JSON, which is YAML) for the selection.
    Compose(ComposeArgs),
}

#[derive(Debug, Args)]
struct ComposeArgs {
    /// Only these components (and what they depend on), as with `up`.
    component: Vec<String>,
    /// Only the components of this profile (and what they depend on); repeatable.
    #[arg(long)]
    profile: Vec<String>,
}

/// Exit codes of the command-line contract.
pub(crate) mod exit {
    pub const FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const ENGINE: u8 = 3;
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("msctl: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILED);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("msctl: {e:#}");
            ExitCode::from(exit_code(&e))
        }
    }
}

/// Maps an error to the contract's exit code by what caused it.
fn exit_code(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if cause.is::<ConfigErrors>() {
            return exit::USAGE;
        }
        if cause.is::<EngineUnreachable>() {
            return exit::ENGINE;
        }
        if let Some(OrchestratorError::Selection(_)) = cause.downcast_ref::<OrchestratorError>() {
            return exit::USAGE;
        }
    }
    exit::FAILED
}

fn load(cli: &Cli) -> Result<Stack> {
    Ok(Stack::load(&cli.file)?)
}

async fn project(cli: &Cli, stack: Stack) -> Result<Project> {
    let docker = engine::connect().await?;
    let name = cli.project.clone().unwrap_or_else(|| stack.name.clone());
    let runtime: Arc<dyn Runtime> = Arc::new(DockerRuntime::new(docker, name));
    Ok(Project::new(stack, runtime))
}

async fn run(cli: Cli) -> Result<u8> {
    let verbosity = if cli.quiet {
        Verbosity::Quiet
    } else if cli.verbose {
        Verbosity::Verbose
    } else {
        Verbosity::Normal
    };
    let progress = progress::sink(verbosity);
    match &cli.command {
        Command::Config(ConfigCommand::Check) => {
            let stack = load(&cli)?;
            let scenarios = scenario::check_catalog(&stack)?;
            println!(
                "{}: ok ({} components, {} images); {scenarios} scenarios ok",
                cli.file.display(),
                stack.components.len(),
                stack.images.len()
            );
            Ok(0)
        }
        Command::Config(ConfigCommand::Compose(args)) => {
            let stack = load(&cli)?;
            let selection = stack
                .select(&args.component, &args.profile)
                .map_err(OrchestratorError::Selection)?;
            let name = cli.project.clone().unwrap_or_else(|| stack.name.clone());
            print!("{}", compose::render(&stack, &name, &selection));
            Ok(0)
        }
        Command::Up(args) => {
            let stack = load(&cli)?;
            let project = project(&cli, stack).await?;
            let started = Instant::now();
            let opts = UpOptions {
                components: args.component.clone(),
                profiles: args.profile.clone(),
                build: ImageBuild {
                    offline: args.offline,
                    force: args.build,
                },
                wait: !args.no_wait,
                timeout: args.timeout,
                // As `docker compose up`: existing images as they are, missing ones built.
                check_images: false,
            };
            let report = project.up(&opts, &progress).await?;
            let mut counts = [0usize; 4];
            for (_, actions) in &report.components {
                for a in actions {
                    counts[match a {
                        Action::Keep { .. } => 0,
                        Action::Start { .. } => 1,
                        Action::Create => 2,
                        Action::Recreate { .. } => 3,
                    }] += 1;
                }
            }
            if cli.output == Format::Json {
                println!("{}", serde_json::to_string_pretty(&project.ps().await?)?);
            } else if !cli.quiet {
                println!(
                    "msctl: project \"{}\" is up in {:.1}s: {} created, {} recreated, {} started, {} unchanged{}",
                    project.name(),
                    started.elapsed().as_secs_f64(),
                    counts[2],
                    counts[3],
                    counts[1],
                    counts[0],
                    if report.removed.is_empty() {
                        String::new()
                    } else {
                        format!(", {} surplus removed", report.removed.len())
                    }
                );
                print!("{}", output::ps_table(&project.ps().await?));
            }
            Ok(0)
        }
        Command::Down { volumes } => {
            let stack = load(&cli)?;
            let project = project(&cli, stack).await?;
            let removed = project.down(*volumes, &progress).await?;
            if !cli.quiet {
                println!(
                    "msctl: project \"{}\" is down ({} resources removed{})",
                    project.name(),
                    removed.len(),
                    if *volumes {
                        ", volumes included"
                    } else {
                        "; volumes kept"
                    }
                );
            }
            Ok(0)
        }
        Command::Ps => {
            let stack = load(&cli)?;
            let project = project(&cli, stack).await?;
            let rows = project.ps().await?;
            match cli.output {
                Format::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
                Format::Text => print!("{}", output::ps_table(&rows)),
            }
            Ok(0)
        }
        Command::Logs(args) => {
            let stack = load(&cli)?;
            let project = project(&cli, stack).await?;
            logs(&project, args).await
        }
        Command::Restart { component, timeout } => {
            let stack = load(&cli)?;
            let project = project(&cli, stack).await?;
            let names = project.restart(component, *timeout, &progress).await?;
            if !cli.quiet {
                println!("msctl: restarted {}", names.join(", "));
            }
            Ok(0)
        }
        Command::Chaos(cmd) => chaos::run(&cli, cmd, &progress).await,
        Command::Scenario(cmd) => scenario::run(&cli, cmd).await,
        Command::Dash => dash::run(load(&cli)?, cli.project.clone()).await,
        Command::Test(args) => test_cmd::run(&cli, args, &progress).await,
        Command::Explore(args) => explore_cmd::run(&cli, args).await,
        Command::Seed { component } => {
            let stack = load(&cli)?;
            let project = project(&cli, stack).await?;
            let results = project.seed(component, &progress).await?;
            if cli.output == Format::Json {
                println!("{}", serde_json::to_string_pretty(&results)?);
            } else if results.is_empty() {
                println!(
                    "msctl: no component declares `seed` in {}",
                    cli.file.display()
                );
            } else {
                for r in results {
                    println!("{}: {} -> {}", r.component, r.file, r.answer);
                }
            }
            Ok(0)
        }
        Command::Images(ImagesCommand::Build { offline, force }) => {
            let stack = load(&cli)?;
            let project = project(&cli, stack).await?;
            let built = project
                .build_all_images(
                    ImageBuild {
                        offline: *offline,
                        force: *force,
                    },
                    &progress,
                )
                .await?;
            for (tag, id) in built {
                println!(
                    "{tag}  {}",
                    id.trim_start_matches("sha256:").get(..12).unwrap_or(&id)
                );
            }
            Ok(0)
        }
    }
}

async fn logs(project: &Project, args: &LogsArgs) -> Result<u8> {
    let containers = match &args.component {
        Some(c) => project.containers_of(c).await?,
        None => project
            .runtime()
            .list_containers()
            .await?
            .into_iter()
            .filter(|c| !c.is_helper())
            .collect(),
    };
    if containers.is_empty() {
        anyhow::bail!("no containers to show logs for; is the stack up? (`msctl ps`)");
    }
    let since = args
        .since
        .map(|d| {
            SystemTime::now()
                .checked_sub(d)
                .context("--since is too far back")
        })
        .transpose()?;
    let width = containers.iter().map(|c| c.name.len()).max().unwrap_or(0);
    let streams = containers.iter().map(|c| {
        let name = c.name.clone();
        project
            .runtime()
            .logs(
                &c.id,
                LogOptions {
                    follow: args.follow,
                    tail: args.tail,
                    since,
                },
            )
            .map(move |l| (name.clone(), l))
    });
    let mut merged = futures_util::stream::select_all(streams);
    loop {
        tokio::select! {
            item = merged.next() => match item {
                None => break,
                Some((name, Ok(line))) => println!("{name:<width$} | {}", line.text),
                Some((name, Err(e))) => eprintln!("msctl: logs of {name}: {e}"),
            },
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("msctl").chain(args.iter().copied()))
    }

    #[test]
    fn up_flags_parse() {
        let cli = parse(&[
            "-f",
            "x.toml",
            "up",
            "postgres",
            "--profile",
            "infra",
            "--build",
            "--no-wait",
            "--timeout",
            "90s",
        ])
        .expect("valid");
        assert_eq!(cli.file, PathBuf::from("x.toml"));
        let Command::Up(a) = cli.command else {
            panic!("not up")
        };
        assert_eq!(a.component, vec!["postgres"]);
        assert_eq!(a.profile, vec!["infra"]);
        assert!(a.build && a.no_wait && !a.offline);
        assert_eq!(a.timeout, Duration::from_secs(90));
    }

    #[test]
    fn global_flags_parse_after_the_command() {
        let cli = parse(&["ps", "--output", "json", "--project", "demo"]).expect("valid");
        assert_eq!(cli.output, Format::Json);
        assert_eq!(cli.project.as_deref(), Some("demo"));
    }

    #[test]
    fn logs_flags_parse() {
        let cli = parse(&["logs", "redis", "-f", "--tail", "5", "--since", "10m"]).expect("valid");
        let Command::Logs(a) = cli.command else {
            panic!("not logs")
        };
        assert_eq!(a.component.as_deref(), Some("redis"));
        assert!(a.follow);
        assert_eq!(a.tail, Some(5));
        assert_eq!(a.since, Some(Duration::from_secs(600)));
    }

    #[test]
    fn down_images_restart_config_parse() {
        assert!(matches!(
            parse(&["down", "--volumes"]).expect("valid").command,
            Command::Down { volumes: true }
        ));
        assert!(matches!(
            parse(&["images", "build", "--offline"])
                .expect("valid")
                .command,
            Command::Images(ImagesCommand::Build {
                offline: true,
                force: false
            })
        ));
        assert!(matches!(
            parse(&["restart", "product"]).expect("valid").command,
            Command::Restart { .. }
        ));
        assert!(matches!(
            parse(&["config", "check"]).expect("valid").command,
            Command::Config(ConfigCommand::Check)
        ));
    }

    #[test]
    fn config_compose_flags_parse() {
        let cli = parse(&[
            "-p",
            "bench",
            "config",
            "compose",
            "gateway",
            "--profile",
            "infra",
        ])
        .expect("valid");
        assert_eq!(cli.project.as_deref(), Some("bench"));
        let Command::Config(ConfigCommand::Compose(a)) = cli.command else {
            panic!("not config compose")
        };
        assert_eq!(a.component, vec!["gateway"]);
        assert_eq!(a.profile, vec!["infra"]);
        let Command::Config(ConfigCommand::Compose(a)) =
            parse(&["config", "compose"]).expect("valid").command
        else {
            panic!("not config compose")
        };
        assert!(a.component.is_empty() && a.profile.is_empty());
        assert!(parse(&["config", "compose", "--profile"]).is_err());
    }

    #[test]
    fn bad_flags_are_usage_errors() {
        assert!(parse(&["up", "--timeout", "soon"]).is_err());
        assert!(parse(&["ps", "--output", "yaml"]).is_err());
        assert!(parse(&["-v", "-q", "ps"]).is_err());
    }

    #[test]
    fn exit_codes_follow_the_contract() {
        let unreachable = anyhow::Error::new(EngineUnreachable {
            endpoint: "tcp://x".into(),
            reason: "refused".into(),
        });
        assert_eq!(exit_code(&unreachable), exit::ENGINE);
        let config = anyhow::Error::new(ConfigErrors(vec![]));
        assert_eq!(exit_code(&config), exit::USAGE);
        assert_eq!(exit_code(&anyhow::anyhow!("boom")), exit::FAILED);
    }
}
