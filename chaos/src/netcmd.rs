//! The `tc` and `ip` command lines run in a helper container inside a target's network
//! namespace, and how their answers are judged.
//!
//! netem shapes egress only, so a latency fault on a container delays everything it sends:
//! replies to its clients and its own requests to peers. When several netem faults hit one
//! container, one qdisc carries them all: the largest delay (with its jitter) and the
//! largest loss; healing one recomputes the qdisc from the rest.

use std::net::Ipv4Addr;

use crate::engine::ExecOutput;
use crate::error::ChaosError;
use crate::fault::FaultKind;

/// What one netem qdisc does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Netem {
    /// Added delay, ms.
    pub delay_ms: u64,
    /// Jitter, ms.
    pub jitter_ms: u64,
    /// Loss, percent.
    pub loss_percent: f64,
}

impl Netem {
    /// The combined effect of the netem faults in `kinds`; `None` when there are none.
    pub fn combine<'a>(kinds: impl IntoIterator<Item = &'a FaultKind>) -> Option<Netem> {
        let mut out: Option<Netem> = None;
        for k in kinds {
            if !matches!(k, FaultKind::Latency { .. } | FaultKind::Loss { .. }) {
                continue;
            }
            let cur = out.get_or_insert(Netem {
                delay_ms: 0,
                jitter_ms: 0,
                loss_percent: 0.0,
            });
            match k {
                FaultKind::Latency {
                    delay_ms,
                    jitter_ms,
                } if *delay_ms > cur.delay_ms => {
                    cur.delay_ms = *delay_ms;
                    cur.jitter_ms = *jitter_ms;
                }
                FaultKind::Loss { percent } if *percent > cur.loss_percent => {
                    cur.loss_percent = *percent;
                }
                _ => {}
            }
        }
        out
    }

    /// The netem arguments (`delay 200ms 20ms loss 5%`).
    pub fn args(&self) -> String {
        let mut s = String::new();
        if self.delay_ms > 0 {
            s.push_str(&format!("delay {}ms", self.delay_ms));
            if self.jitter_ms > 0 {
                s.push_str(&format!(" {}ms", self.jitter_ms));
            }
        }
        if self.loss_percent > 0.0 {
            if !s.is_empty() {
                s.push(' ');
            }
            s.push_str(&format!("loss {}%", self.loss_percent));
        }
        s
    }
}

/// A shell script that finds the interface holding `address` and sets (or with `None`
/// clears) its root qdisc. The interface is looked up rather than assumed to be eth0: a
/// container on several networks has several.
pub fn netem_script(address: Ipv4Addr, netem: Option<&Netem>) -> Vec<String> {
    let lookup = format!(
        "dev=$(ip -o -4 addr show to {address} | cut -d' ' -f2 | cut -d@ -f1); \
         [ -n \"$dev\" ] || {{ echo \"no interface holds {address}\"; exit 3; }}; "
    );
    let action = match netem {
        Some(n) => format!("tc qdisc replace dev \"$dev\" root netem {}", n.args()),
        None => "tc qdisc del dev \"$dev\" root".to_string(),
    };
    vec!["sh".into(), "-c".into(), format!("{lookup}{action} 2>&1")]
}

/// Judges the answer to [`netem_script`].
pub fn judge_netem(out: &ExecOutput, setting: bool, container: &str) -> Result<(), ChaosError> {
    if out.code == 0 {
        return Ok(());
    }
    let text = out.output.trim();
    if !setting
        && (text.contains("No such file")
            || text.contains("handle of zero")
            || text.contains("Cannot find"))
    {
        // Nothing to delete: already clear (e.g. the container restarted since).
        return Ok(());
    }
    if text.contains("qdisc kind is unknown") {
        return Err(ChaosError::Network(format!(
            "the Docker engine's kernel has no netem qdisc (sch_netem), so latency and loss faults are not available here (tc in the network namespace of {container} said: {text}); on the engine host run `modprobe sch_netem`, or use a kernel built with CONFIG_NET_SCH_NETEM"
        )));
    }
    Err(ChaosError::Network(format!(
        "tc in the network namespace of {container} failed (exit {}): {text}",
        out.code
    )))
}

/// `ip route add|del unreachable <address>/32`. `unreachable` rather than `blackhole`:
/// connects then fail with "No route to host", which reads as a partition in service logs,
/// where a blackhole route gives a puzzling "Invalid argument".
pub fn route_command(add: bool, address: Ipv4Addr) -> Vec<String> {
    vec![
        "ip".into(),
        "route".into(),
        if add { "add" } else { "del" }.into(),
        "unreachable".into(),
        format!("{address}/32"),
    ]
}

/// `ss -K -t dst <address>`: destroys the open TCP connections to `address` in the network
/// namespace (SOCK_DESTROY; each gets ECONNABORTED on its next read or write). Needs a
/// kernel with CONFIG_INET_DIAG_DESTROY.
pub fn reset_command(address: Ipv4Addr) -> Vec<String> {
    vec![
        "ss".into(),
        "-K".into(),
        "-t".into(),
        "dst".into(),
        address.to_string(),
    ]
}

/// Whether `cmd` is a [`reset_command`].
pub fn is_reset(cmd: &[String]) -> bool {
    cmd.first().is_some_and(|c| c == "ss")
}

/// Judges the answer to [`reset_command`].
pub fn judge_reset(out: &ExecOutput, container: &str) -> Result<(), ChaosError> {
    let text = out.output.trim();
    if out.code == 0 && !text.contains("Operation not supported") {
        return Ok(());
    }
    Err(ChaosError::Network(format!(
        "ss -K in the network namespace of {container} could not reset its connections (exit {}): {text}; the engine's kernel needs CONFIG_INET_DIAG_DESTROY, or leave --reset out",
        out.code
    )))
}

/// Judges the answer to [`route_command`]: adding an existing route or deleting a missing
/// one is "already so".
pub fn judge_route(out: &ExecOutput, add: bool, container: &str) -> Result<(), ChaosError> {
    let text = out.output.trim();
    if out.code == 0
        || (add && text.contains("File exists"))
        || (!add && text.contains("No such process"))
    {
        return Ok(());
    }
    Err(ChaosError::Network(format!(
        "ip route in the network namespace of {container} failed (exit {}): {text}",
        out.code
    )))
}

/// Parses an engine-reported address.
pub fn ipv4(text: &str, container: &str) -> Result<Ipv4Addr, ChaosError> {
    text.parse().map_err(|_| {
        ChaosError::Network(format!(
            "container {container} has no IPv4 address on the project network (got \"{text}\")"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(code: i64, output: &str) -> ExecOutput {
        ExecOutput {
            code,
            output: output.into(),
        }
    }

    #[test]
    fn netem_combines_the_largest_delay_and_loss() {
        let kinds = [
            FaultKind::Latency {
                delay_ms: 100,
                jitter_ms: 10,
            },
            FaultKind::Loss { percent: 5.0 },
            FaultKind::Latency {
                delay_ms: 300,
                jitter_ms: 30,
            },
            FaultKind::Pause,
        ];
        let n = Netem::combine(&kinds).expect("some");
        assert_eq!(n.args(), "delay 300ms 30ms loss 5%");
        assert_eq!(Netem::combine(&[FaultKind::Pause]), None);
        assert_eq!(
            Netem::combine(&[FaultKind::Loss { percent: 12.5 }])
                .expect("some")
                .args(),
            "loss 12.5%"
        );
    }

    #[test]
    fn netem_script_looks_up_the_interface() {
        let n = Netem {
            delay_ms: 200,
            jitter_ms: 20,
            loss_percent: 0.0,
        };
        let script = netem_script(Ipv4Addr::new(172, 18, 0, 3), Some(&n));
        assert_eq!(script[..2], ["sh", "-c"]);
        assert!(script[2].contains("ip -o -4 addr show to 172.18.0.3"));
        assert!(script[2].contains("tc qdisc replace dev \"$dev\" root netem delay 200ms 20ms"));
        let clear = netem_script(Ipv4Addr::new(172, 18, 0, 3), None);
        assert!(clear[2].contains("tc qdisc del dev \"$dev\" root"));
    }

    // The engine here answered exactly this when sch_netem was missing; it must become a
    // clear error, not a generic failure.
    #[test]
    fn a_missing_netem_module_is_named() {
        let e = judge_netem(
            &out(2, "Error: Specified qdisc kind is unknown."),
            true,
            "p-redis-1",
        )
        .expect_err("no netem");
        assert!(e.to_string().contains("sch_netem"), "{e}");
        assert!(judge_netem(
            &out(2, "Error: Cannot delete qdisc with handle of zero."),
            false,
            "x"
        )
        .is_ok());
        assert!(judge_netem(
            &out(1, "RTNETLINK answers: Operation not permitted"),
            true,
            "x"
        )
        .is_err());
    }

    #[test]
    fn routes_are_idempotent() {
        let a = Ipv4Addr::new(10, 1, 2, 3);
        assert_eq!(
            route_command(true, a).join(" "),
            "ip route add unreachable 10.1.2.3/32"
        );
        assert!(judge_route(&out(2, "RTNETLINK answers: File exists"), true, "x").is_ok());
        assert!(judge_route(&out(2, "RTNETLINK answers: No such process"), false, "x").is_ok());
        assert!(judge_route(&out(2, "RTNETLINK answers: No such process"), true, "x").is_err());
        assert!(ipv4("", "x").is_err());
    }
}
