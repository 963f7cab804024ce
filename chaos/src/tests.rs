//! `Chaos` against an in-memory engine: ledger-before-apply, rollback, heal after a crash,
//! timed reverts on paused time, target resolution and the label guard.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Mutex;

use async_trait::async_trait;
use msctl_stack::runtime::{ContainerState, Health, LABEL_COMPONENT, LABEL_REPLICA};

use super::*;
use crate::engine::{Endpoint, ExecOutput};

const STACK: &str = r#"
name = "p"
[components.redis]
image = "r"
replicas = 2
[components.postgres]
image = "pg"
stop_timeout = "3s"
[components.api]
image = "svc"
ports = ["8080"]
environment = { PORT = "8080", ADMIN_TOKEN = "tok" }
"#;

fn info(component: &str, replica: u32, labelled: bool) -> ContainerInfo {
    let mut labels = BTreeMap::new();
    if labelled {
        labels.insert(LABEL_PROJECT.to_string(), "p".to_string());
        labels.insert(LABEL_COMPONENT.to_string(), component.to_string());
        labels.insert(LABEL_REPLICA.to_string(), replica.to_string());
    }
    ContainerInfo {
        id: format!("id-{component}-{replica}"),
        name: if labelled {
            format!("p-{component}-{replica}")
        } else {
            component.to_string()
        },
        labels,
        state: ContainerState::Running,
        health: Health::Healthy,
        exit_code: None,
        started_at: None,
        restart_count: 0,
        ports: vec![],
        image_id: "img".into(),
    }
}

struct Fake {
    containers: Mutex<Vec<ContainerInfo>>,
    disconnected: Mutex<BTreeSet<String>>,
    calls: Mutex<Vec<String>>,
    /// Mutating calls made while the ledger had no record touching the container.
    unrecorded: Mutex<Vec<String>>,
    ledger: FaultLedger,
    fail_on: Option<String>,
    netem_missing: bool,
    /// A SIGTERM'd container keeps running for this many inspects (a graceful shutdown),
    /// then exits.
    graceful_exit_inspects: u32,
    lingering: Mutex<std::collections::BTreeMap<String, u32>>,
}

impl Fake {
    fn new(ledger: FaultLedger) -> Self {
        let mut containers = vec![
            info("redis", 1, true),
            info("redis", 2, true),
            info("postgres", 1, true),
            info("api", 1, true),
            info("stranger", 1, false),
        ];
        containers[4].name = "stranger".into();
        Self {
            containers: Mutex::new(containers),
            disconnected: Mutex::new(BTreeSet::new()),
            calls: Mutex::new(Vec::new()),
            unrecorded: Mutex::new(Vec::new()),
            ledger,
            fail_on: None,
            netem_missing: false,
            graceful_exit_inspects: 0,
            lingering: Mutex::new(std::collections::BTreeMap::new()),
        }
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().expect("lock").clone()
    }

    fn state(&self, id: &str) -> ContainerState {
        self.containers
            .lock()
            .expect("lock")
            .iter()
            .find(|c| c.id == id)
            .map(|c| c.state)
            .expect("known")
    }

    fn ours(&self, id: &str) -> Result<ContainerInfo, ChaosError> {
        let list = self.containers.lock().expect("lock");
        let c = list
            .iter()
            .find(|c| c.id == id)
            .ok_or_else(|| RuntimeError::NotFound(id.to_string()))?;
        if c.labels.get(LABEL_PROJECT).map(String::as_str) != Some("p") {
            return Err(RuntimeError::NotOurs {
                kind: "container",
                name: id.into(),
                project: "p".into(),
            }
            .into());
        }
        Ok(c.clone())
    }

    /// Logs a mutating call after the label check; notes it if the ledger had no record
    /// of the fault yet; fails it when told to.
    fn act(
        &self,
        id: &str,
        what: &str,
        state: Option<ContainerState>,
        applying: bool,
    ) -> Result<(), ChaosError> {
        let c = self.ours(id)?;
        let line = format!("{what} {}", c.name);
        if applying
            && !self
                .ledger
                .read()
                .expect("ledger")
                .faults
                .iter()
                .any(|f| f.touches(id))
        {
            self.unrecorded.lock().expect("lock").push(line.clone());
        }
        self.calls.lock().expect("lock").push(line.clone());
        if self.fail_on.as_deref() == Some(line.as_str()) {
            return Err(RuntimeError::Engine(format!("injected failure on {line}")).into());
        }
        if let Some(s) = state {
            for x in self.containers.lock().expect("lock").iter_mut() {
                if x.id == id {
                    x.state = s;
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl FaultEngine for Fake {
    fn project(&self) -> &str {
        "p"
    }
    async fn containers(&self) -> Result<Vec<ContainerInfo>, ChaosError> {
        Ok(self
            .containers
            .lock()
            .expect("lock")
            .iter()
            .filter(|c| c.labels.contains_key(LABEL_PROJECT))
            .cloned()
            .collect())
    }
    async fn find_any(&self, name: &str) -> Result<Option<ContainerInfo>, ChaosError> {
        Ok(self
            .containers
            .lock()
            .expect("lock")
            .iter()
            .find(|c| c.name == name || c.id == name)
            .cloned())
    }
    async fn inspect(&self, id: &str) -> Result<ContainerInfo, ChaosError> {
        let mut lingering = self.lingering.lock().expect("lock");
        if let Some(n) = lingering.get_mut(id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                lingering.remove(id);
                for x in self.containers.lock().expect("lock").iter_mut() {
                    if x.id == id {
                        x.state = ContainerState::Exited;
                    }
                }
            }
        }
        drop(lingering);
        self.ours(id)
    }
    async fn endpoint(&self, id: &str, network: &str) -> Result<Option<Endpoint>, ChaosError> {
        let c = self.ours(id)?;
        assert_eq!(network, "p-net");
        if self.disconnected.lock().expect("lock").contains(id) {
            return Ok(None);
        }
        let n = match c.component() {
            Some("redis") => 10,
            Some("postgres") => 20,
            _ => 30,
        } + c.replica().unwrap_or(0);
        Ok(Some(Endpoint {
            address: format!("10.0.0.{n}"),
            aliases: vec![c.component().unwrap_or("?").to_string()],
        }))
    }
    async fn kill(&self, id: &str, signal: &str) -> Result<(), ChaosError> {
        if signal != "SIGKILL" && self.graceful_exit_inspects > 0 {
            self.lingering
                .lock()
                .expect("lock")
                .insert(id.to_string(), self.graceful_exit_inspects);
            return self.act(id, &format!("kill {signal}"), None, true);
        }
        self.act(
            id,
            &format!("kill {signal}"),
            Some(ContainerState::Exited),
            true,
        )
    }
    async fn stop(&self, id: &str, grace: Duration) -> Result<(), ChaosError> {
        self.act(
            id,
            &format!("stop {}s", grace.as_secs()),
            Some(ContainerState::Exited),
            true,
        )
    }
    async fn start(&self, id: &str) -> Result<(), ChaosError> {
        // Docker's start of a running container does nothing.
        if self.ours(id)?.state == ContainerState::Running {
            return self.act(id, "start (no-op: still running)", None, false);
        }
        self.act(id, "start", Some(ContainerState::Running), false)
    }
    async fn restart(&self, id: &str, _grace: Duration) -> Result<(), ChaosError> {
        self.act(id, "restart", None, true)
    }
    async fn pause(&self, id: &str) -> Result<(), ChaosError> {
        self.act(id, "pause", Some(ContainerState::Paused), true)
    }
    async fn unpause(&self, id: &str) -> Result<(), ChaosError> {
        self.act(id, "unpause", Some(ContainerState::Running), false)
    }
    async fn disconnect(&self, id: &str, _network: &str) -> Result<(), ChaosError> {
        self.act(id, "disconnect", None, true)?;
        self.disconnected
            .lock()
            .expect("lock")
            .insert(id.to_string());
        Ok(())
    }
    async fn connect(
        &self,
        id: &str,
        _network: &str,
        aliases: &[String],
    ) -> Result<(), ChaosError> {
        self.act(id, &format!("connect [{}]", aliases.join(",")), None, false)?;
        self.disconnected.lock().expect("lock").remove(id);
        Ok(())
    }
    async fn netns_exec(
        &self,
        id: &str,
        commands: &[Vec<String>],
    ) -> Result<Vec<ExecOutput>, ChaosError> {
        let mut outs = Vec::new();
        for cmd in commands {
            let text = cmd.last().cloned().unwrap_or_default();
            let short = if text.contains("tc qdisc") {
                text.split("; ").last().unwrap_or("").to_string()
            } else {
                cmd.join(" ")
            };
            let applying = short.contains(" add ") || short.contains("replace");
            self.act(
                id,
                &format!("exec {}", short.trim_end_matches(" 2>&1")),
                None,
                applying,
            )?;
            outs.push(if self.netem_missing && short.contains("replace") {
                ExecOutput {
                    code: 2,
                    output: "Error: Specified qdisc kind is unknown.".into(),
                }
            } else if self.netem_missing {
                ExecOutput {
                    code: 2,
                    output: "Error: Cannot delete qdisc with handle of zero.".into(),
                }
            } else {
                ExecOutput {
                    code: 0,
                    output: String::new(),
                }
            });
        }
        Ok(outs)
    }
    async fn remove_helpers(&self) -> Result<usize, ChaosError> {
        Ok(0)
    }
    async fn wait_ready(&self, id: &str, _deadline: Instant) -> Result<(), ChaosError> {
        let c = self.ours(id)?;
        self.calls
            .lock()
            .expect("lock")
            .push(format!("ready {}", c.name));
        if c.state != ContainerState::Running {
            return Err(ChaosError::NotReady(format!("{} is {}", c.name, c.state)));
        }
        Ok(())
    }
}

fn setup(dir: &Path, tweak: impl FnOnce(&mut Fake)) -> (Arc<Fake>, Chaos) {
    let stack = Stack::parse(&dir.join("stack.toml"), STACK).expect("stack");
    let ledger = FaultLedger::for_project(dir, "p");
    let mut fake = Fake::new(ledger.clone());
    tweak(&mut fake);
    let fake = Arc::new(fake);
    let chaos = Chaos::new(stack, fake.clone(), ledger).expect("chaos");
    (fake, chaos)
}

fn t(text: &str) -> Target {
    text.parse().expect("target")
}

// Pins the durability promise: a fault is on disk before the engine is asked, so a crash
// between the two still leaves something for `heal` to undo.
#[tokio::test]
async fn every_fault_is_recorded_before_it_is_applied_and_heal_works_from_a_new_process() {
    let dir = tempfile::tempdir().expect("tmp");
    let (fake, chaos) = setup(dir.path(), |_| {});
    let applied = chaos
        .apply(&FaultSpec::new(
            FaultKind::Kill {
                signal: "SIGKILL".into(),
            },
            t("redis"),
        ))
        .await
        .expect("apply");
    assert_eq!(applied.record.state, FaultState::Active);
    assert_eq!(applied.record.containers.len(), 2);
    assert!(fake.unrecorded.lock().expect("lock").is_empty());
    assert_eq!(fake.state("id-redis-1"), ContainerState::Exited);
    drop(chaos);

    // "msctl died": a fresh Chaos on the same ledger heals it.
    let stack = Stack::parse(&dir.path().join("stack.toml"), STACK).expect("stack");
    let again = Chaos::new(
        stack,
        fake.clone(),
        FaultLedger::for_project(dir.path(), "p"),
    )
    .expect("chaos");
    assert_eq!(again.list().await.expect("list").len(), 1);
    let report = again.heal(None).await.expect("heal");
    assert_eq!(report.healed.len(), 1);
    assert!(report.failed.is_empty());
    assert_eq!(fake.state("id-redis-1"), ContainerState::Running);
    assert_eq!(fake.state("id-redis-2"), ContainerState::Running);
    let calls = fake.calls();
    assert!(calls.contains(&"start p-redis-1".to_string()), "{calls:?}");
    assert!(calls.contains(&"ready p-redis-2".to_string()), "{calls:?}");
    assert!(again.list().await.expect("list").is_empty());
}

#[tokio::test]
async fn a_failed_apply_reverts_what_took_effect_and_leaves_no_record() {
    let dir = tempfile::tempdir().expect("tmp");
    let (fake, chaos) = setup(dir.path(), |f| f.fail_on = Some("pause p-redis-2".into()));
    let e = chaos
        .apply(&FaultSpec::new(FaultKind::Pause, t("redis")))
        .await
        .expect_err("injected");
    assert!(e.to_string().contains("injected failure"), "{e}");
    assert_eq!(fake.state("id-redis-1"), ContainerState::Running);
    assert!(fake.calls().contains(&"unpause p-redis-1".to_string()));
    // What the engine refused is not "reverted".
    assert!(!fake.calls().contains(&"unpause p-redis-2".to_string()));
    assert!(chaos.list().await.expect("list").is_empty());
}

// Undoing a kill of an already stopped container would start it: refuse up front.
#[tokio::test]
async fn faults_on_a_container_in_the_wrong_state_are_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let (fake, chaos) = setup(dir.path(), |_| {});
    chaos
        .apply(&FaultSpec::new(FaultKind::Stop, t("postgres")))
        .await
        .expect("stop");
    for kind in [
        FaultKind::Kill {
            signal: "SIGKILL".into(),
        },
        FaultKind::Pause,
        FaultKind::Partition {
            from: vec![],
            reset: PartitionReset::Keep,
        },
    ] {
        let e = chaos
            .apply(&FaultSpec::new(kind, t("postgres")))
            .await
            .expect_err("exited");
        assert!(e.is_usage() && e.to_string().contains("is exited"), "{e}");
    }
    assert_eq!(chaos.list().await.expect("list").len(), 1);
    assert_eq!(fake.calls(), ["stop 3s p-postgres-1"]);
}

#[tokio::test(start_paused = true)]
async fn a_timed_fault_reverts_itself_after_its_duration() {
    let dir = tempfile::tempdir().expect("tmp");
    let (fake, chaos) = setup(dir.path(), |_| {});
    let started = Instant::now();
    let spec = FaultSpec {
        duration: Some(Duration::from_secs(30)),
        ..FaultSpec::new(FaultKind::Stop, t("postgres"))
    };
    let (applied, healed) = chaos
        .apply_for(&spec, std::future::pending())
        .await
        .expect("apply_for");
    assert!(applied.record.expires_at.is_some());
    assert!(healed.is_some());
    assert!(started.elapsed() >= Duration::from_secs(30));
    assert!(started.elapsed() < Duration::from_secs(31));
    // The component's own grace period is used.
    assert_eq!(
        fake.calls(),
        [
            "stop 3s p-postgres-1",
            "start p-postgres-1",
            "ready p-postgres-1"
        ]
    );
    assert!(chaos.list().await.expect("list").is_empty());
}

#[tokio::test(start_paused = true)]
async fn cancelling_a_timed_fault_reverts_it_early() {
    let dir = tempfile::tempdir().expect("tmp");
    let (fake, chaos) = setup(dir.path(), |_| {});
    let started = Instant::now();
    let spec = FaultSpec {
        duration: Some(Duration::from_secs(600)),
        ..FaultSpec::new(FaultKind::Pause, t("redis#2"))
    };
    let cancel = tokio::time::sleep(Duration::from_secs(5));
    chaos.apply_for(&spec, cancel).await.expect("apply_for");
    assert!(started.elapsed() < Duration::from_secs(6));
    assert_eq!(fake.state("id-redis-2"), ContainerState::Running);
}

#[tokio::test]
async fn random_targets_replay_with_the_same_seed() {
    let dir = tempfile::tempdir().expect("tmp");
    let (_fake, chaos) = setup(dir.path(), |_| {});
    let mut seen = BTreeSet::new();
    for seed in 0..16 {
        let a = chaos
            .resolve(&t("redis#random"), Some(seed))
            .await
            .expect("a");
        let b = chaos
            .resolve(&t("redis#random"), Some(seed))
            .await
            .expect("b");
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].id, b[0].id);
        seen.insert(a[0].id.clone());
    }
    assert_eq!(seen.len(), 2, "both replicas are reachable");
    // The seed is recorded when drawn.
    let applied = chaos
        .apply(&FaultSpec::new(FaultKind::Pause, t("redis#random")))
        .await
        .expect("apply");
    assert!(applied.record.seed.is_some());
}

#[tokio::test]
async fn targets_resolve_by_prefix_replica_and_container_name() {
    let dir = tempfile::tempdir().expect("tmp");
    let (_fake, chaos) = setup(dir.path(), |_| {});
    let names = |v: Vec<ContainerInfo>| v.into_iter().map(|c| c.name).collect::<Vec<_>>();
    assert_eq!(
        names(chaos.resolve(&t("red"), None).await.expect("prefix")),
        ["p-redis-1", "p-redis-2"]
    );
    assert_eq!(
        names(chaos.resolve(&t("redis#2"), None).await.expect("replica")),
        ["p-redis-2"]
    );
    assert_eq!(
        names(chaos.resolve(&t("p-redis-1"), None).await.expect("name")),
        ["p-redis-1"]
    );
    let e = chaos.resolve(&t("redis#3"), None).await.expect_err("no #3");
    assert!(e.is_usage() && e.to_string().contains("1, 2"), "{e}");
    let e = chaos
        .resolve(&t("nosuch"), None)
        .await
        .expect_err("unknown");
    assert!(e.is_usage() && e.to_string().contains("redis"), "{e}");
}

// Pins the safety rule: a container without the project label is refused by name, and the
// engine is never asked to touch it.
#[tokio::test]
async fn an_unlabeled_container_cannot_be_targeted() {
    let dir = tempfile::tempdir().expect("tmp");
    let (fake, chaos) = setup(dir.path(), |_| {});
    let e = chaos
        .apply(&FaultSpec::new(
            FaultKind::Kill {
                signal: "SIGKILL".into(),
            },
            t("stranger"),
        ))
        .await
        .expect_err("refused");
    assert!(e.is_usage(), "{e}");
    assert!(e.to_string().contains("stranger") && e.to_string().contains(LABEL_PROJECT));
    assert!(fake.calls().is_empty());
    assert!(chaos.list().await.expect("list").is_empty());
}

#[tokio::test]
async fn netem_faults_on_one_container_share_one_qdisc() {
    let dir = tempfile::tempdir().expect("tmp");
    let (fake, chaos) = setup(dir.path(), |_| {});
    let lat = chaos
        .apply(&FaultSpec::new(
            FaultKind::Latency {
                delay_ms: 200,
                jitter_ms: 20,
            },
            t("redis#1"),
        ))
        .await
        .expect("latency");
    let loss = chaos
        .apply(&FaultSpec::new(
            FaultKind::Loss { percent: 10.0 },
            t("redis#1"),
        ))
        .await
        .expect("loss");
    chaos.revert(&lat.record.id).await.expect("revert latency");
    chaos.revert(&loss.record.id).await.expect("revert loss");
    let execs: Vec<String> = fake
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("exec"))
        .collect();
    assert_eq!(
        execs,
        [
            "exec tc qdisc replace dev \"$dev\" root netem delay 200ms 20ms p-redis-1",
            "exec tc qdisc replace dev \"$dev\" root netem delay 200ms 20ms loss 10% p-redis-1",
            "exec tc qdisc replace dev \"$dev\" root netem loss 10% p-redis-1",
            "exec tc qdisc del dev \"$dev\" root p-redis-1",
        ]
    );
}

#[tokio::test]
async fn a_missing_netem_module_is_a_clear_error_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().expect("tmp");
    let (_fake, chaos) = setup(dir.path(), |f| f.netem_missing = true);
    let e = chaos
        .apply(&FaultSpec::new(
            FaultKind::Latency {
                delay_ms: 100,
                jitter_ms: 0,
            },
            t("redis"),
        ))
        .await
        .expect_err("no netem");
    assert!(e.to_string().contains("sch_netem"), "{e}");
    assert!(chaos.list().await.expect("list").is_empty());
}

#[tokio::test]
async fn partitions_disconnect_or_route_away_and_heal_restores_aliases_and_routes() {
    let dir = tempfile::tempdir().expect("tmp");
    let (fake, chaos) = setup(dir.path(), |_| {});
    chaos
        .apply(&FaultSpec::new(
            FaultKind::Partition {
                from: vec![],
                reset: PartitionReset::Keep,
            },
            t("postgres"),
        ))
        .await
        .expect("partition");
    let named = chaos
        .apply(&FaultSpec::new(
            FaultKind::Partition {
                from: vec![t("postgres")],
                reset: PartitionReset::Keep,
            },
            t("redis#1"),
        ))
        .await;
    // postgres is disconnected: it has no address to cut.
    assert!(named.expect_err("disconnected").is_usage());
    chaos.heal(Some(&t("postgres"))).await.expect("heal");
    let named = chaos
        .apply(&FaultSpec::new(
            FaultKind::Partition {
                from: vec![t("postgres")],
                reset: PartitionReset::Keep,
            },
            t("redis#1"),
        ))
        .await
        .expect("named");
    assert_eq!(named.record.containers.len(), 2);
    chaos.heal(None).await.expect("heal");
    let calls = fake.calls();
    for expected in [
        "disconnect p-postgres-1",
        "connect [postgres] p-postgres-1",
        "exec ip route add unreachable 10.0.0.21/32 p-redis-1",
        "exec ip route add unreachable 10.0.0.11/32 p-postgres-1",
        "exec ip route del unreachable 10.0.0.21/32 p-redis-1",
        "exec ip route del unreachable 10.0.0.11/32 p-postgres-1",
    ] {
        assert!(
            calls.contains(&expected.to_string()),
            "{expected} in {calls:?}"
        );
    }
    assert!(fake.unrecorded.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn a_partition_resets_the_connections_between_the_groups_at_its_start_or_at_its_heal() {
    let position = |calls: &[String], wanted: &str| {
        calls
            .iter()
            .position(|c| c == wanted)
            .unwrap_or_else(|| panic!("{wanted} in {calls:?}"))
    };
    for reset in [PartitionReset::Start, PartitionReset::Heal] {
        let dir = tempfile::tempdir().expect("tmp");
        let (fake, chaos) = setup(dir.path(), |_| {});
        chaos
            .apply(&FaultSpec::new(
                FaultKind::Partition {
                    from: vec![t("postgres")],
                    reset,
                },
                t("redis#1"),
            ))
            .await
            .expect("partition");
        chaos.heal(None).await.expect("heal");
        let calls = fake.calls();
        let add = position(
            &calls,
            "exec ip route add unreachable 10.0.0.21/32 p-redis-1",
        );
        let del = position(
            &calls,
            "exec ip route del unreachable 10.0.0.21/32 p-redis-1",
        );
        let kills: Vec<usize> = calls
            .iter()
            .enumerate()
            .filter(|(_, c)| c.as_str() == "exec ss -K -t dst 10.0.0.21 p-redis-1")
            .map(|(i, _)| i)
            .collect();
        // Both sides destroy their ends, once, while the routes are in place.
        assert_eq!(kills.len(), 1, "{reset:?}: {calls:?}");
        position(&calls, "exec ss -K -t dst 10.0.0.11 p-postgres-1");
        // Right after the route goes in (start), or right before it goes (heal).
        let next_to = match reset {
            PartitionReset::Start => add + 1,
            _ => del - 1,
        };
        assert_eq!(kills[0], next_to, "{reset:?}: {calls:?}");
    }
}

#[test]
fn a_reset_needs_a_group_to_reset_the_connections_to() {
    let e = FaultSpec::new(
        FaultKind::Partition {
            from: vec![],
            reset: PartitionReset::Heal,
        },
        t("redis"),
    )
    .validate()
    .expect_err("no from");
    assert!(e.to_string().contains("needs --from"), "{e}");
    let keep = FaultKind::Partition {
        from: vec![t("postgres")],
        reset: PartitionReset::Keep,
    };
    let json = serde_json::to_string(&keep).expect("json");
    assert!(!json.contains("reset"), "the default is left out: {json}");
    let heal = FaultKind::Partition {
        from: vec![t("postgres")],
        reset: PartitionReset::Heal,
    };
    let json = serde_json::to_string(&heal).expect("json");
    assert!(json.contains(r#""reset":"heal""#), "{json}");
    assert_eq!(
        serde_json::from_str::<FaultKind>(&json).expect("back"),
        heal
    );
    assert_eq!(heal.to_string(), "partition from postgres (reset at heal)");
}

#[tokio::test]
async fn heal_with_a_target_leaves_other_faults_alone() {
    let dir = tempfile::tempdir().expect("tmp");
    let (fake, chaos) = setup(dir.path(), |_| {});
    chaos
        .apply(&FaultSpec::new(FaultKind::Pause, t("redis#1")))
        .await
        .expect("pause redis");
    chaos
        .apply(&FaultSpec::new(FaultKind::Pause, t("postgres")))
        .await
        .expect("pause pg");
    let report = chaos.heal(Some(&t("redis#1"))).await.expect("heal");
    assert_eq!(report.healed.len(), 1);
    assert_eq!(fake.state("id-redis-1"), ContainerState::Running);
    assert_eq!(fake.state("id-postgres-1"), ContainerState::Paused);
    assert_eq!(chaos.list().await.expect("list").len(), 1);
    assert!(chaos.heal(Some(&t("redis#random"))).await.is_err());
}

#[tokio::test]
async fn restart_is_one_shot_and_leaves_no_record() {
    let dir = tempfile::tempdir().expect("tmp");
    let (fake, chaos) = setup(dir.path(), |_| {});
    let applied = chaos
        .apply(&FaultSpec::new(FaultKind::Restart, t("redis")))
        .await
        .expect("restart");
    assert_eq!(applied.record.containers.len(), 2);
    assert!(chaos.list().await.expect("list").is_empty());
    assert!(fake.unrecorded.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn http_faults_need_a_token_and_a_published_admin_port() {
    let dir = tempfile::tempdir().expect("tmp");
    let (fake, chaos) = setup(dir.path(), |_| {});
    // api publishes nothing in the fake: refused before anything is recorded.
    let e = chaos
        .apply(&FaultSpec::new(
            FaultKind::HttpFault(HttpFault {
                status: Some(503),
                ..HttpFault::default()
            }),
            t("api"),
        ))
        .await
        .expect_err("no port");
    assert!(e.is_usage() && e.to_string().contains("8080"), "{e}");
    assert!(fake.calls().is_empty());
    assert!(chaos.list().await.expect("list").is_empty());
}

// Found by `msctl explore` (seed 203): a SIGTERM'd RabbitMQ shuts down gracefully for
// seconds; the heal's start came while it was still running (a no-op), the stale health
// said "ready", and the broker then exited and stayed down.
#[tokio::test(start_paused = true)]
async fn healing_a_graceful_kill_waits_for_the_exit_before_starting_again() {
    let dir = tempfile::tempdir().expect("tmp");
    let (fake, chaos) = setup(dir.path(), |f| f.graceful_exit_inspects = 5);
    let applied = chaos
        .apply(&FaultSpec::new(
            FaultKind::Kill {
                signal: "SIGTERM".into(),
            },
            t("postgres"),
        ))
        .await
        .expect("apply");
    chaos.revert(&applied.record.id).await.expect("revert");
    let calls = fake.calls();
    assert!(
        calls.contains(&"start p-postgres-1".to_string()),
        "the container was not started after it exited: {calls:?}"
    );
    assert!(!calls.iter().any(|c| c.contains("no-op")), "{calls:?}");
    assert_eq!(fake.state("id-postgres-1"), ContainerState::Running);
}
