//! `msctl dash`: a live terminal dashboard of the running stack (DESIGN §8).
//!
//! Shape (after oxker): [`state`] holds the domain data as a [`state::Snapshot`];
//! [`sources`] are background tasks (Docker events and stats, /metrics scrapes, the gateway
//! and order admin APIs, the fault ledger, logs) that send [`state::Update`]s over a
//! channel; [`input`] maps keys to typed actions; [`ui`] draws a frame from the snapshot.
//! The loop below only ever waits on the key stream, the channel and a redraw tick, so a
//! stuck source shows as stale in its panel instead of freezing the screen. Faults go
//! through [`msctl_chaos::Chaos`], so they land in the same ledger as `msctl chaos`.

pub mod input;
pub mod sources;
pub mod state;
pub mod ui;

use std::io::{self, Stdout};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use crossterm::event::{Event, EventStream};
use crossterm::execute;
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use futures_util::StreamExt;
use msctl_chaos::{Chaos, FaultKind, FaultSpec, PartitionReset, Target};
use msctl_stack::docker::DockerRuntime;
use msctl_stack::engine;
use msctl_stack::runtime::Runtime;
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use input::{Action, Command};
use sources::http::Endpoint;
use state::{Confirm, Snapshot, Update};

/// How often the screen is redrawn without news.
const REDRAW: Duration = Duration::from_secs(1);
/// Shortest time between two frames drawn for source updates.
const MIN_FRAME: Duration = Duration::from_millis(250);

/// Puts the terminal in raw mode on the alternate screen and restores it on drop — on a
/// normal exit, an error, or (with [`install_panic_hook`]) a panic.
struct TerminalGuard {
    terminal: Terminal<CrosstermBackend<Stdout>>,
}

fn restore() {
    let _ = disable_raw_mode();
    let _ = execute!(io::stdout(), LeaveAlternateScreen, crossterm::cursor::Show);
}

impl TerminalGuard {
    fn enter() -> Result<Self> {
        enable_raw_mode().context("cannot put the terminal in raw mode; is this a terminal?")?;
        let mut out = io::stdout();
        if let Err(e) = execute!(out, EnterAlternateScreen, crossterm::cursor::Hide) {
            restore();
            return Err(e).context("cannot switch to the alternate screen");
        }
        let terminal = Terminal::new(CrosstermBackend::new(out))?;
        Ok(Self { terminal })
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// Restores the terminal before the default panic message, so it is readable.
fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        default(info);
    }));
}

/// Runs the dashboard until `q`, Ctrl-C or SIGTERM.
pub async fn run(stack: msctl_stack::model::Stack, project: Option<String>) -> Result<u8> {
    let docker = engine::connect().await?;
    let name = project.unwrap_or_else(|| stack.name.clone());
    let runtime = DockerRuntime::new(docker.clone(), name.clone());
    let chaos = Arc::new(Chaos::docker(stack.clone(), runtime.clone())?);
    let runtime: Arc<dyn Runtime> = Arc::new(runtime);
    let stack = Arc::new(stack);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(1500))
        .build()
        .context("cannot build the HTTP client")?;
    let token = std::env::var("MSCTL_ADMIN_TOKEN")
        .unwrap_or_else(|_| sources::http::DEFAULT_ADMIN_TOKEN.to_string());

    let (tx, mut rx) = mpsc::channel::<Update>(512);
    let (rows_tx, rows_rx) = watch::channel(Vec::new());
    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    tracker.spawn(sources::docker::run(
        stack.clone(),
        runtime.clone(),
        docker,
        tx.clone(),
        rows_tx,
        cancel.clone(),
    ));
    tracker.spawn(sources::metrics::run(
        client.clone(),
        rows_rx.clone(),
        tx.clone(),
        cancel.clone(),
    ));
    for endpoint in [Endpoint::Upstreams, Endpoint::Sagas] {
        tracker.spawn(sources::http::run(
            endpoint,
            client.clone(),
            token.clone(),
            rows_rx.clone(),
            tx.clone(),
            cancel.clone(),
        ));
    }
    tracker.spawn(sources::faults::run(
        chaos.clone(),
        tx.clone(),
        cancel.clone(),
    ));
    tracker.close();

    install_panic_hook();
    let mut guard = TerminalGuard::enter()?;
    let mut snap = Snapshot::new(name);
    let mut keys = EventStream::new();
    let mut tick = tokio::time::interval(REDRAW);
    let mut logs: Option<CancellationToken> = None;
    let mut term = signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut keyed = false;
    // Sources send several messages a second (a stats sample per container); they are
    // folded into the snapshot as they come and drawn at most every MIN_FRAME, while a
    // key is drawn at once.
    let mut dirty = true;
    let mut last_draw = Instant::now();
    let result: Result<()> = loop {
        if dirty && (keyed || last_draw.elapsed() >= MIN_FRAME) {
            if let Err(e) = guard.terminal.draw(|f| ui::draw(f, &snap)) {
                break Err(e.into());
            }
            dirty = false;
            keyed = false;
            last_draw = Instant::now();
        }
        let next_frame = last_draw + MIN_FRAME;
        tokio::select! {
            _ = tick.tick() => dirty = true,
            _ = tokio::time::sleep_until(next_frame), if dirty => {}
            _ = tokio::signal::ctrl_c() => break Ok(()),
            _ = term.recv() => break Ok(()),
            update = rx.recv() => {
                let Some(update) = update else { break Ok(()) };
                snap.apply(update);
                while let Ok(more) = rx.try_recv() {
                    snap.apply(more);
                }
                dirty = true;
            }
            event = keys.next() => match event {
                Some(Ok(Event::Key(key))) => {
                    let Some(action) = input::action(key, snap.confirm.is_some()) else {
                        continue;
                    };
                    if action == Action::Quit {
                        break Ok(());
                    }
                    handle(action, &mut snap, &chaos, &runtime, &tx, &cancel, &mut logs, &tracker);
                    dirty = true;
                    keyed = true;
                }
                Some(Ok(Event::Resize(..))) => {
                    dirty = true;
                    keyed = true;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => break Err(e.into()),
                None => break Ok(()),
            },
        }
    };
    cancel.cancel();
    drop(guard);
    // Sources stop at once; a fault being applied finishes (its ledger entry must not be
    // left pending) unless it takes too long.
    let _ = tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await;
    result.map(|()| 0)
}

fn signal(kind: tokio::signal::unix::SignalKind) -> Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(kind).context("cannot listen for signals")
}

/// Applies one key action to the snapshot, starting work in the background.
#[allow(clippy::too_many_arguments)]
fn handle(
    action: Action,
    snap: &mut Snapshot,
    chaos: &Arc<Chaos>,
    runtime: &Arc<dyn Runtime>,
    tx: &mpsc::Sender<Update>,
    cancel: &CancellationToken,
    logs: &mut Option<CancellationToken>,
    tracker: &TaskTracker,
) {
    let n = snap.replicas.data.as_ref().map_or(0, Vec::len);
    let selected = snap.selected_replica().cloned();
    let command = match action {
        Action::Quit => return,
        Action::Up => {
            snap.selected = snap.selected.saturating_sub(1);
            None
        }
        Action::Down => {
            snap.selected = (snap.selected + 1).min(n.saturating_sub(1));
            None
        }
        Action::Help => {
            snap.show_help = !snap.show_help;
            None
        }
        Action::No => {
            snap.confirm = None;
            snap.show_help = false;
            None
        }
        Action::Yes => snap.confirm.take().map(|c| c.action),
        Action::Logs => {
            snap.show_logs = !snap.show_logs;
            if !snap.show_logs {
                if let Some(t) = logs.take() {
                    t.cancel();
                }
                snap.log_source = None;
            }
            None
        }
        Action::Heal => Some(Command::HealAll),
        Action::Kill | Action::PauseToggle | Action::Restart | Action::Partition => {
            let Some(r) = &selected else {
                snap.status = "no replica selected".to_string();
                return;
            };
            let t = r.target();
            let cmd = match action {
                Action::Kill => Command::Kill(t),
                Action::PauseToggle if r.state == "paused" => Command::Unpause(t),
                Action::PauseToggle => Command::Pause(t),
                Action::Restart => Command::Restart(t),
                _ => Command::Partition(t),
            };
            if cmd.is_destructive() {
                snap.confirm = Some(Confirm {
                    question: cmd.question(),
                    action: cmd,
                });
                None
            } else {
                Some(cmd)
            }
        }
    };
    // Follow the logs of whatever is selected now.
    if snap.show_logs {
        if let Some(r) = snap.selected_replica().cloned() {
            if snap.log_source.as_deref() != Some(r.name.as_str()) {
                if let Some(t) = logs.take() {
                    t.cancel();
                }
                let token = cancel.child_token();
                snap.log_source = Some(r.name.clone());
                snap.logs.clear();
                tracker.spawn(sources::logs::run(
                    runtime.clone(),
                    r.id.clone(),
                    r.name.clone(),
                    tx.clone(),
                    token.clone(),
                ));
                *logs = Some(token);
            }
        }
    }
    if let Some(cmd) = command {
        snap.busy += 1;
        snap.status = format!("{}…", cmd.question().trim_end_matches('?'));
        let chaos = chaos.clone();
        let tx = tx.clone();
        tracker.spawn(async move {
            let line = execute_command(&chaos, &cmd).await;
            let _ = tx.send(Update::Done(line)).await;
        });
    }
}

/// Runs one command through the chaos crate and says what happened, for the status bar.
async fn execute_command(chaos: &Chaos, cmd: &Command) -> String {
    let apply = |kind: FaultKind, target: &str| {
        let target = target.parse::<Target>();
        async move {
            let target = target.map_err(|e| format!("bad target: {e}"))?;
            chaos
                .apply(&FaultSpec::new(kind, target))
                .await
                .map_err(|e| e.to_string())
        }
    };
    let result = match cmd {
        Command::Kill(t) => apply(
            FaultKind::Kill {
                signal: "SIGKILL".to_string(),
            },
            t,
        )
        .await
        .map(|a| format!("{}: killed {t} (h heals)", a.record.id)),
        Command::Pause(t) => apply(FaultKind::Pause, t)
            .await
            .map(|a| format!("{}: paused {t} (p unpauses)", a.record.id)),
        Command::Restart(t) => apply(FaultKind::Restart, t)
            .await
            .map(|_| format!("restarted {t}")),
        Command::Partition(t) => apply(
            FaultKind::Partition {
                from: vec![],
                reset: PartitionReset::Keep,
            },
            t,
        )
        .await
        .map(|a| format!("{}: {t} cut off the network (h heals)", a.record.id)),
        Command::Unpause(t) => match t.parse::<Target>() {
            Ok(target) => chaos
                .unpause(&target)
                .await
                .map(|names| format!("unpaused {}", names.join(", ")))
                .map_err(|e| e.to_string()),
            Err(e) => Err(format!("bad target: {e}")),
        },
        Command::HealAll => match chaos.heal(None).await {
            Ok(r) if r.failed.is_empty() => Ok(format!("healed {} faults", r.healed.len())),
            Ok(r) => Err(format!(
                "healed {}, {} failed: {}",
                r.healed.len(),
                r.failed.len(),
                r.failed
                    .iter()
                    .map(|(id, e)| format!("{id}: {e}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            )),
            Err(e) => Err(e.to_string()),
        },
    };
    match result {
        Ok(line) => line,
        Err(e) => format!("failed: {e}"),
    }
}
