//! msctl-chaos: fault primitives against a running msctl stack, a durable fault ledger, and
//! heal.
//!
//! [`Chaos`] is the whole API, shared by `msctl chaos …` and scenario `chaos` steps:
//! [`Chaos::apply`] a [`FaultSpec`] and get its [`FaultId`], [`Chaos::revert`] one fault,
//! [`Chaos::heal`] everything (or one target), [`Chaos::list`] what is active.
//!
//! The order of every apply is: resolve targets (only containers carrying the project
//! label) → work out the revert steps → write the fault to the ledger (state `pending`) →
//! apply → mark it `active`. A failure while applying reverts what was done. Revert runs
//! the recorded steps (each idempotent), removes the fault from the ledger, and waits until
//! the containers it touched are ready again — unless another fault still holds them down.

pub mod docker;
pub mod engine;
pub mod error;
pub mod fault;
pub mod http;
pub mod ledger;
pub mod netcmd;
pub mod target;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::future::join_all;
use msctl_stack::model::Stack;
use msctl_stack::runtime::{ContainerInfo, ContainerState, RuntimeError, LABEL_PROJECT};
use tokio::time::Instant;

pub use crate::engine::FaultEngine;
pub use crate::error::ChaosError;
pub use crate::fault::{FaultKind, FaultSpec, HttpFault, PartitionReset};
pub use crate::ledger::{FaultId, FaultLedger, FaultRecord, FaultState, Undo, Victim};
pub use crate::target::{Selector, Target};

use crate::http::AdminApi;
use crate::netcmd::Netem;

/// How long heal waits, by default, for a healed container to be ready again.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(120);

/// A fault that was applied.
#[derive(Debug, Clone)]
pub struct Applied {
    /// Its ledger entry, state active (one-shot faults like restart are already removed
    /// from the ledger).
    pub record: FaultRecord,
    /// From the call to the fault being in effect.
    pub took: Duration,
}

/// A fault that was reverted.
#[derive(Debug, Clone)]
pub struct Healed {
    /// Its former ledger entry.
    pub record: FaultRecord,
    /// From the call to the containers being ready again.
    pub took: Duration,
}

/// What `heal` did.
#[derive(Debug, Default)]
pub struct HealReport {
    /// Faults reverted, newest first.
    pub healed: Vec<Healed>,
    /// Faults that could not be reverted (they stay in the ledger), with why.
    pub failed: Vec<(FaultId, ChaosError)>,
    /// Helper containers left behind by a crashed msctl and removed now.
    pub helpers_removed: usize,
}

/// One apply action (the revert is recorded separately as [`Undo`]).
#[derive(Debug, Clone)]
enum Step {
    Kill(Victim, String),
    Stop(Victim, Duration),
    Restart(Victim, Duration),
    Pause(Victim),
    Disconnect(Victim, String),
    /// Unreachable routes to the addresses, then (with `true`) the open TCP connections to
    /// them destroyed.
    AddRoutes(Victim, Vec<Ipv4Addr>, bool),
    Netem(Victim),
    SetHttp(Victim, HttpFault),
}

impl Step {
    /// The container of a step that either happens whole or not at all (an engine call);
    /// `None` for helper-container steps, which may have half happened.
    fn refused_whole(&self) -> Option<&str> {
        match self {
            Step::Kill(v, _)
            | Step::Stop(v, _)
            | Step::Restart(v, _)
            | Step::Pause(v)
            | Step::Disconnect(v, _)
            | Step::SetHttp(v, _) => Some(v.id.as_str()),
            Step::AddRoutes(..) | Step::Netem(_) => None,
        }
    }
}

/// Fault injection on one project.
pub struct Chaos {
    stack: Stack,
    engine: Arc<dyn FaultEngine>,
    ledger: FaultLedger,
    admin: AdminApi,
    admin_token: Option<String>,
    ready_timeout: Duration,
}

fn victim(c: &ContainerInfo) -> Victim {
    Victim {
        id: c.id.clone(),
        name: c.name.clone(),
        component: c.component().unwrap_or("?").to_string(),
        replica: c.replica().unwrap_or(0),
    }
}

/// A container that is gone took its fault with it: reverting it is done.
fn gone(e: &ChaosError) -> bool {
    matches!(e, ChaosError::Runtime(RuntimeError::NotFound(_)))
}

impl Chaos {
    /// Chaos on `engine`'s project with `stack` for component lookups and `ledger` on disk.
    /// The admin token override is read from `MSCTL_ADMIN_TOKEN`.
    pub fn new(
        stack: Stack,
        engine: Arc<dyn FaultEngine>,
        ledger: FaultLedger,
    ) -> Result<Self, ChaosError> {
        Ok(Self {
            stack,
            engine,
            ledger,
            admin: AdminApi::new()?,
            admin_token: std::env::var("MSCTL_ADMIN_TOKEN").ok(),
            ready_timeout: DEFAULT_READY_TIMEOUT,
        })
    }

    /// Chaos on the real engine, with the ledger next to the stack file.
    pub fn docker(
        stack: Stack,
        runtime: msctl_stack::docker::DockerRuntime,
    ) -> Result<Self, ChaosError> {
        use msctl_stack::runtime::Runtime;
        let project = runtime.project().to_string();
        let ledger = FaultLedger::for_project(&stack.root, &project);
        let orchestrator = Arc::new(msctl_stack::orchestrator::Project::new(
            stack.clone(),
            Arc::new(runtime.clone()),
        ));
        let engine = Arc::new(docker::DockerFaultEngine::new(runtime, orchestrator));
        Self::new(stack, engine, ledger)
    }

    /// How long heal waits for readiness.
    pub fn with_ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// The ledger.
    pub fn ledger(&self) -> &FaultLedger {
        &self.ledger
    }

    /// The project name.
    pub fn project(&self) -> &str {
        self.engine.project()
    }

    fn network(&self) -> String {
        format!("{}-net", self.project())
    }

    /// The containers `target` means, by replica.
    pub async fn resolve(
        &self,
        target: &Target,
        seed: Option<u64>,
    ) -> Result<Vec<ContainerInfo>, ChaosError> {
        let component = match self.stack.resolve_component(&target.component) {
            Ok(c) => c.name.clone(),
            Err(unknown) => {
                // Not a component: maybe a container name. Ours is fine; anything else is
                // refused by name, so the user sees why.
                if target.selector == Selector::All {
                    if let Some(info) = self.engine.find_any(&target.component).await? {
                        if info.labels.get(LABEL_PROJECT).map(String::as_str)
                            == Some(self.project())
                            && !info.is_helper()
                        {
                            return Ok(vec![info]);
                        }
                        return Err(RuntimeError::NotOurs {
                            kind: "container",
                            name: target.component.clone(),
                            project: self.project().to_string(),
                        }
                        .into());
                    }
                }
                return Err(ChaosError::Usage(unknown));
            }
        };
        let mut list: Vec<ContainerInfo> = self
            .engine
            .containers()
            .await?
            .into_iter()
            .filter(|c| c.component() == Some(component.as_str()) && !c.is_helper())
            .filter(|c| c.labels.get(LABEL_PROJECT).map(String::as_str) == Some(self.project()))
            .collect();
        list.sort_by_key(|c| c.replica());
        if list.is_empty() {
            return Err(ChaosError::Usage(format!(
                "component \"{component}\" has no containers in project \"{}\"; run `msctl up {component}` first",
                self.project()
            )));
        }
        match target.selector {
            Selector::All => Ok(list),
            Selector::Replica(n) => {
                let replicas: Vec<String> = list
                    .iter()
                    .filter_map(|c| c.replica())
                    .map(|r| r.to_string())
                    .collect();
                list.into_iter()
                    .find(|c| c.replica() == Some(n))
                    .map(|c| vec![c])
                    .ok_or_else(|| {
                        ChaosError::Usage(format!(
                            "component \"{component}\" has no replica {n}; its replicas are {}",
                            replicas.join(", ")
                        ))
                    })
            }
            Selector::Random => {
                let seed = seed.unwrap_or(0);
                let i = target::pick(seed, &component, list.len());
                Ok(vec![list.swap_remove(i)])
            }
        }
    }

    async fn resolve_all(
        &self,
        targets: &[Target],
        seed: Option<u64>,
    ) -> Result<Vec<ContainerInfo>, ChaosError> {
        let mut out: Vec<ContainerInfo> = Vec::new();
        for t in targets {
            for c in self.resolve(t, seed).await? {
                if !out.iter().any(|o| o.id == c.id) {
                    out.push(c);
                }
            }
        }
        Ok(out)
    }

    fn grace(&self, v: &Victim) -> Duration {
        self.stack
            .components
            .get(&v.component)
            .map_or(Duration::from_secs(10), |c| c.stop_timeout)
    }

    async fn address(&self, v: &Victim) -> Result<Ipv4Addr, ChaosError> {
        let ep = self
            .engine
            .endpoint(&v.id, &self.network())
            .await?
            .ok_or_else(|| {
                ChaosError::Usage(format!(
                    "container {} is not on the project network {}; is it partitioned? (`msctl chaos list`)",
                    v.name,
                    self.network()
                ))
            })?;
        netcmd::ipv4(&ep.address, &v.name)
    }

    /// Works out the apply steps, the recorded revert steps and every container involved.
    async fn plan(
        &self,
        spec: &FaultSpec,
        seed: Option<u64>,
    ) -> Result<(Vec<Step>, Vec<Undo>, Vec<Victim>), ChaosError> {
        let infos = self.resolve_all(&spec.targets, seed).await?;
        for i in &infos {
            let fits = match spec.kind {
                FaultKind::Restart => true,
                FaultKind::Kill { .. } | FaultKind::Stop => {
                    matches!(i.state, ContainerState::Running | ContainerState::Paused)
                }
                _ => i.state == ContainerState::Running,
            };
            if !fits {
                return Err(ChaosError::Usage(format!(
                    "container {} is {}, so {} does not apply; heal it (`msctl chaos heal`) or start it (`msctl up`) first",
                    i.name,
                    i.state,
                    spec.kind.name()
                )));
            }
        }
        let victims: Vec<Victim> = infos.iter().map(victim).collect();
        let mut steps = Vec::new();
        let mut undo = Vec::new();
        let mut all = victims.clone();
        match &spec.kind {
            FaultKind::Kill { signal } => {
                let signal = fault::parse_signal(signal).map_err(ChaosError::Usage)?;
                for v in &victims {
                    steps.push(Step::Kill(v.clone(), signal.clone()));
                    undo.push(Undo::Start {
                        container: v.clone(),
                    });
                }
            }
            FaultKind::Stop => {
                for v in &victims {
                    steps.push(Step::Stop(v.clone(), self.grace(v)));
                    undo.push(Undo::Start {
                        container: v.clone(),
                    });
                }
            }
            FaultKind::Restart => {
                for v in &victims {
                    steps.push(Step::Restart(v.clone(), self.grace(v)));
                }
            }
            FaultKind::Pause => {
                for v in &victims {
                    steps.push(Step::Pause(v.clone()));
                    undo.push(Undo::Unpause {
                        container: v.clone(),
                    });
                }
            }
            FaultKind::Partition { from, .. } if from.is_empty() => {
                let network = self.network();
                for v in &victims {
                    let ep = self.engine.endpoint(&v.id, &network).await?.ok_or_else(|| {
                        ChaosError::Usage(format!(
                            "container {} is not on the project network {network}; it is partitioned already? (`msctl chaos list`)",
                            v.name
                        ))
                    })?;
                    let aliases = if ep.aliases.is_empty() {
                        vec![v.component.clone()]
                    } else {
                        ep.aliases
                    };
                    steps.push(Step::Disconnect(v.clone(), network.clone()));
                    undo.push(Undo::Connect {
                        container: v.clone(),
                        network: network.clone(),
                        aliases,
                    });
                }
            }
            FaultKind::Partition { from, reset } => {
                let others: Vec<Victim> = self
                    .resolve_all(from, seed)
                    .await?
                    .iter()
                    .map(victim)
                    .collect();
                if let Some(both) = others.iter().find(|o| victims.iter().any(|v| v.id == o.id)) {
                    return Err(ChaosError::Usage(format!(
                        "container {} is on both sides of the partition",
                        both.name
                    )));
                }
                let mut addresses = BTreeMap::new();
                for v in victims.iter().chain(&others) {
                    addresses.insert(v.id.clone(), self.address(v).await?);
                }
                let ips = |group: &[Victim]| -> Vec<Ipv4Addr> {
                    group
                        .iter()
                        .filter_map(|v| addresses.get(&v.id).copied())
                        .collect()
                };
                for (side, other) in [(&victims, &others), (&others, &victims)] {
                    for v in side.iter() {
                        let peer_ips = ips(other);
                        steps.push(Step::AddRoutes(
                            v.clone(),
                            peer_ips.clone(),
                            *reset == PartitionReset::Start,
                        ));
                        undo.push(Undo::DelRoutes {
                            container: v.clone(),
                            addresses: peer_ips.iter().map(ToString::to_string).collect(),
                            reset: *reset == PartitionReset::Heal,
                        });
                    }
                }
                all.extend(others);
            }
            FaultKind::Latency { .. } | FaultKind::Loss { .. } => {
                for v in &victims {
                    // Fails early, before anything is recorded, when it is not attached.
                    self.address(v).await?;
                    steps.push(Step::Netem(v.clone()));
                    undo.push(Undo::Netem {
                        container: v.clone(),
                    });
                }
            }
            FaultKind::HttpFault(h) => {
                let mut body = h.clone();
                if let Some(d) = spec.duration {
                    body.duration = Some(format!("{}s", d.as_secs().max(1)));
                }
                for (v, info) in victims.iter().zip(&infos) {
                    // Checked before recording: a missing token or port is a usage error.
                    self.admin_target(v, info)?;
                    steps.push(Step::SetHttp(v.clone(), body.clone()));
                    undo.push(Undo::ClearHttp {
                        container: v.clone(),
                    });
                }
            }
        }
        Ok((steps, undo, all))
    }

    fn admin_target(
        &self,
        v: &Victim,
        info: &ContainerInfo,
    ) -> Result<http::AdminTarget, ChaosError> {
        let c = self.stack.components.get(&v.component).ok_or_else(|| {
            ChaosError::Usage(format!(
                "container {} belongs to component \"{}\", which is not in {}; http faults need its admin port and token",
                v.name,
                v.component,
                self.stack.file.display()
            ))
        })?;
        http::admin_target(c, info, self.admin_token.clone())
    }

    /// The netem settings a container should carry: those of every recorded netem fault on
    /// it, except `without`.
    fn netem_for(
        &self,
        container: &str,
        without: Option<&str>,
    ) -> Result<Option<Netem>, ChaosError> {
        let file = self.ledger.read()?;
        Ok(Netem::combine(
            file.faults
                .iter()
                .filter(|f| Some(f.id.as_str()) != without && f.touches(container))
                .map(|f| &f.kind),
        ))
    }

    async fn set_netem(&self, v: &Victim, netem: Option<Netem>) -> Result<(), ChaosError> {
        let address = self.address(v).await?;
        let outs = self
            .engine
            .netns_exec(&v.id, &[netcmd::netem_script(address, netem.as_ref())])
            .await?;
        for out in &outs {
            netcmd::judge_netem(out, netem.is_some(), &v.name)?;
        }
        Ok(())
    }

    /// Adds or deletes the routes to `addresses` in one helper run; with `reset`, the
    /// open TCP connections to them are destroyed while the routes are in place (after
    /// adding them, before deleting them), so that no reconnect slips through.
    async fn routes(
        &self,
        v: &Victim,
        add: bool,
        addresses: &[Ipv4Addr],
        reset: bool,
    ) -> Result<(), ChaosError> {
        let routes = addresses.iter().map(|a| netcmd::route_command(add, *a));
        let resets: Vec<Vec<String>> = if reset {
            addresses
                .iter()
                .map(|a| netcmd::reset_command(*a))
                .collect()
        } else {
            Vec::new()
        };
        let cmds: Vec<Vec<String>> = if add {
            routes.chain(resets).collect()
        } else {
            resets.into_iter().chain(routes).collect()
        };
        let outs = self.engine.netns_exec(&v.id, &cmds).await?;
        for (cmd, out) in cmds.iter().zip(&outs) {
            if netcmd::is_reset(cmd) {
                netcmd::judge_reset(out, &v.name)?;
            } else {
                netcmd::judge_route(out, add, &v.name)?;
            }
        }
        Ok(())
    }

    async fn execute(&self, step: &Step) -> Result<(), ChaosError> {
        let e = &self.engine;
        match step {
            Step::Kill(v, signal) => e.kill(&v.id, signal).await,
            Step::Stop(v, grace) => e.stop(&v.id, *grace).await,
            Step::Restart(v, grace) => e.restart(&v.id, *grace).await,
            Step::Pause(v) => e.pause(&v.id).await,
            Step::Disconnect(v, network) => e.disconnect(&v.id, network).await,
            Step::AddRoutes(v, addresses, reset) => self.routes(v, true, addresses, *reset).await,
            Step::Netem(v) => {
                let netem = self.netem_for(&v.id, None)?;
                self.set_netem(v, netem).await
            }
            Step::SetHttp(v, body) => {
                let info = e.inspect(&v.id).await?;
                let target = self.admin_target(v, &info)?;
                let req = self.admin.set_request(&target, body)?;
                self.admin
                    .send(req, &format!("set the http fault on {}", v.name))
                    .await
            }
        }
    }

    /// A signal other than SIGKILL may leave the process shutting down gracefully for a
    /// while; starting the container then does nothing, and it exits afterwards for good.
    /// Wait (up to its stop grace and a little more) for it to exit; past that, finish what
    /// the fault began with SIGKILL.
    async fn await_exit(&self, container: &Victim) -> Result<(), ChaosError> {
        let grace = self
            .stack
            .components
            .get(&container.component)
            .map_or(Duration::from_secs(10), |c| c.stop_timeout);
        let deadline = Instant::now() + grace + Duration::from_secs(5);
        loop {
            let info = match self.engine.inspect(&container.id).await {
                Ok(i) => i,
                Err(e) if gone(&e) => return Ok(()),
                Err(e) => return Err(e),
            };
            if info.state != ContainerState::Running {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return self.engine.kill(&container.id, "SIGKILL").await;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn undo_one(&self, step: &Undo, fault: &str) -> Result<(), ChaosError> {
        let e = &self.engine;
        let result = match step {
            Undo::Start { container } => {
                self.await_exit(container).await?;
                e.start(&container.id).await
            }
            Undo::Unpause { container } => e.unpause(&container.id).await,
            Undo::Connect {
                container,
                network,
                aliases,
            } => e.connect(&container.id, network, aliases).await,
            Undo::DelRoutes {
                container,
                addresses,
                reset,
            } => {
                let info = e.inspect(&container.id).await?;
                if info.state != ContainerState::Running {
                    // Routes live in the network namespace, which a stopped container lost.
                    return Ok(());
                }
                let ips: Vec<Ipv4Addr> = addresses.iter().filter_map(|a| a.parse().ok()).collect();
                self.routes(container, false, &ips, *reset).await
            }
            Undo::Netem { container } => {
                let info = e.inspect(&container.id).await?;
                if info.state != ContainerState::Running {
                    return Ok(());
                }
                if e.endpoint(&container.id, &self.network()).await?.is_none() {
                    // Disconnected (partitioned): the interface, and its qdisc, are gone.
                    return Ok(());
                }
                let netem = self.netem_for(&container.id, Some(fault))?;
                self.set_netem(container, netem).await
            }
            Undo::ClearHttp { container } => {
                let info = e.inspect(&container.id).await?;
                if info.state != ContainerState::Running {
                    // The fault lives in the process's memory; a stopped one has none.
                    return Ok(());
                }
                let target = self.admin_target(container, &info)?;
                let req = self.admin.clear_request(&target)?;
                self.admin
                    .send(req, &format!("clear the http fault on {}", container.name))
                    .await
            }
        };
        match result {
            Err(err) if gone(&err) => Ok(()),
            other => other,
        }
    }

    /// Runs a fault's revert steps: containers in parallel, each container's steps in
    /// order. Returns the first error after trying every step.
    async fn run_undo(&self, record: &FaultRecord) -> Result<(), ChaosError> {
        let mut by_container: BTreeMap<&str, Vec<&Undo>> = BTreeMap::new();
        for u in &record.undo {
            by_container
                .entry(u.container().id.as_str())
                .or_default()
                .push(u);
        }
        let results = join_all(by_container.into_values().map(|steps| async move {
            for s in steps {
                self.undo_one(s, &record.id).await?;
            }
            Ok::<(), ChaosError>(())
        }))
        .await;
        results.into_iter().collect()
    }

    /// Applies a fault: records it in the ledger, then puts it in effect. With a
    /// `duration`, the fault is recorded with its expiry; reverting it on time is the
    /// caller's job ([`Chaos::apply_for`] does both), and `heal` catches it otherwise.
    pub async fn apply(&self, spec: &FaultSpec) -> Result<Applied, ChaosError> {
        let started = Instant::now();
        spec.validate()?;
        let random = spec
            .targets
            .iter()
            .chain(match &spec.kind {
                FaultKind::Partition { from, .. } => from.iter(),
                _ => [].iter(),
            })
            .any(|t| t.selector == Selector::Random);
        let seed = if random {
            Some(spec.seed.unwrap_or_else(target::fresh_seed))
        } else {
            spec.seed
        };
        let (steps, undo, containers) = self.plan(spec, seed).await?;
        let target_text = spec
            .targets
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let record = self.ledger.record(
            &spec.kind,
            target_text,
            seed,
            containers,
            undo,
            spec.duration,
        )?;
        tracing::info!(fault = %record.id, kind = %record.kind, target = %record.target, "applying");
        let mut results = join_all(steps.iter().map(|s| self.execute(s))).await;
        let failed: BTreeSet<&str> = steps
            .iter()
            .zip(&results)
            .filter(|(_, r)| r.is_err())
            .filter_map(|(s, _)| s.refused_whole())
            .collect();
        if let Some(Err(err)) = results
            .iter()
            .position(Result::is_err)
            .map(|i| results.swap_remove(i))
        {
            // Put back what did take effect (not what the engine refused outright: undoing
            // a kill that did not happen would start a container the user had stopped);
            // keep the record if even that fails, so that `heal` retries.
            let mut partial = record.clone();
            partial
                .undo
                .retain(|u| !failed.contains(u.container().id.as_str()));
            return match self.run_undo(&partial).await {
                Ok(()) => {
                    self.ledger.remove(&record.id)?;
                    Err(err)
                }
                Err(undo_err) => Err(ChaosError::HealIncomplete(vec![format!(
                    "{}: applying failed ({err}) and reverting it failed too ({undo_err})",
                    record.id
                )])),
            };
        }
        let mut record = record;
        if spec.kind.is_lasting() {
            self.ledger.activate(&record.id)?;
        } else {
            // Done already: nothing to revert, so nothing to keep.
            self.ledger.remove(&record.id)?;
        }
        record.state = FaultState::Active;
        Ok(Applied {
            record,
            took: started.elapsed(),
        })
    }

    /// Applies a fault, waits for its duration (or until `cancel` resolves, e.g. Ctrl-C)
    /// and reverts it. A fault without a duration is reverted only on `cancel`.
    pub async fn apply_for(
        &self,
        spec: &FaultSpec,
        cancel: impl Future<Output = ()>,
    ) -> Result<(Applied, Option<Healed>), ChaosError> {
        let applied = self.apply(spec).await?;
        if !spec.kind.is_lasting() {
            return Ok((applied, None));
        }
        let wait = async {
            match spec.duration {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = wait => {}
            _ = cancel => {}
        }
        let healed = self.revert(&applied.record.id).await?;
        Ok((applied, healed))
    }

    /// Reverts one fault and waits until the containers it touched are ready again.
    /// `None` when the fault is no longer in the ledger (already healed).
    pub async fn revert(&self, id: &str) -> Result<Option<Healed>, ChaosError> {
        let started = Instant::now();
        let Some(record) = self.ledger.get(id)? else {
            return Ok(None);
        };
        self.run_undo(&record).await?;
        self.ledger.remove(id)?;
        tracing::info!(fault = %record.id, "reverted");
        self.wait_ready(&record).await?;
        Ok(Some(Healed {
            record,
            took: started.elapsed(),
        }))
    }

    /// Waits for the containers of a reverted fault that no other fault holds down.
    async fn wait_ready(&self, record: &FaultRecord) -> Result<(), ChaosError> {
        let remaining = self.ledger.read()?.faults;
        let deadline = Instant::now() + self.ready_timeout;
        let ids: BTreeSet<&str> = record
            .containers
            .iter()
            .map(|c| c.id.as_str())
            .filter(|id| !remaining.iter().any(|f| f.touches(id)))
            .collect();
        let results = join_all(ids.into_iter().map(|id| async move {
            match self.engine.wait_ready(id, deadline).await {
                Err(e) if gone(&e) => Ok(()),
                other => other,
            }
        }))
        .await;
        results.into_iter().collect()
    }

    /// Does `record` concern `target` (a component, or one replica)?
    fn concerns(&self, record: &FaultRecord, component: &str, selector: Selector) -> bool {
        record.containers.iter().any(|c| {
            c.component == component
                && match selector {
                    Selector::Replica(n) => c.replica == n,
                    _ => true,
                }
        })
    }

    /// Reverts every fault in the ledger (newest first), or those touching `target`, and
    /// removes helper containers a crashed msctl left behind. Faults that cannot be
    /// reverted stay in the ledger and are reported in [`HealReport::failed`].
    pub async fn heal(&self, target: Option<&Target>) -> Result<HealReport, ChaosError> {
        let filter = match target {
            None => None,
            Some(t) if t.selector == Selector::Random => {
                return Err(ChaosError::Usage(format!(
                    "heal takes COMPONENT or COMPONENT#N, not \"{t}\""
                )))
            }
            Some(t) => {
                let name = match self.stack.resolve_component(&t.component) {
                    Ok(c) => c.name.clone(),
                    // A component no longer in the stack file may still have faults.
                    Err(e) => {
                        let file = self.ledger.read()?;
                        if file
                            .faults
                            .iter()
                            .any(|f| f.containers.iter().any(|c| c.component == t.component))
                        {
                            t.component.clone()
                        } else {
                            return Err(ChaosError::Usage(e));
                        }
                    }
                };
                Some((name, t.selector))
            }
        };
        let mut report = HealReport::default();
        let faults = self.ledger.read()?.faults;
        for f in faults.iter().rev() {
            if let Some((name, sel)) = &filter {
                if !self.concerns(f, name, *sel) {
                    continue;
                }
            }
            match self.revert(&f.id).await {
                Ok(Some(h)) => report.healed.push(h),
                Ok(None) => {}
                Err(e) => report.failed.push((f.id.clone(), e)),
            }
        }
        report.helpers_removed = self.engine.remove_helpers().await?;
        Ok(report)
    }

    /// The faults in the ledger, oldest first.
    pub async fn list(&self) -> Result<Vec<FaultRecord>, ChaosError> {
        Ok(self.ledger.read()?.faults)
    }

    /// `chaos unpause`: reverts the pause faults on `target` and unpauses any of its
    /// containers that are paused without a ledger entry. Returns the container names.
    pub async fn unpause(&self, target: &Target) -> Result<Vec<String>, ChaosError> {
        let containers = self.resolve(target, None).await?;
        let ids: BTreeSet<&str> = containers.iter().map(|c| c.id.as_str()).collect();
        for f in self.ledger.read()?.faults.iter().rev() {
            if matches!(f.kind, FaultKind::Pause)
                && f.containers.iter().any(|c| ids.contains(c.id.as_str()))
            {
                self.revert(&f.id).await?;
            }
        }
        let deadline = Instant::now() + self.ready_timeout;
        for c in &containers {
            self.engine.unpause(&c.id).await?;
            self.engine.wait_ready(&c.id, deadline).await?;
        }
        Ok(containers.into_iter().map(|c| c.name).collect())
    }

    /// Faults whose duration passed without a revert (their msctl died).
    pub async fn overdue(&self) -> Result<Vec<FaultRecord>, ChaosError> {
        let now = SystemTime::now();
        Ok(self
            .list()
            .await?
            .into_iter()
            .filter(|f| f.is_overdue(now))
            .collect())
    }
}

#[cfg(test)]
mod tests;
