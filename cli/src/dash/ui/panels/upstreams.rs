//! Gateway upstreams: per service its instances with breaker state, remaining ejection,
//! ejection count, in-flight requests and failures.

use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::{block, breaker_color};
use crate::dash::state::Snapshot;

/// Draws one line per service and one per instance.
pub fn draw(frame: &mut Frame, area: Rect, snap: &Snapshot) {
    let mut lines: Vec<Line> = Vec::new();
    if let Some(u) = &snap.upstreams.data {
        if u.services.is_empty() {
            lines.push(Line::from("no upstream used yet"));
        }
        for s in &u.services {
            let mut head = vec![Span::styled(
                s.service.clone(),
                Style::default().add_modifier(Modifier::BOLD),
            )];
            if s.stale {
                head.push(Span::raw(" (stale view)"));
            }
            if s.instances.is_empty() {
                head.push(Span::raw(" no instances"));
            }
            lines.push(Line::from(head));
            for i in &s.instances {
                let ejected = i
                    .ejected_for_ms
                    .map_or_else(String::new, |ms| format!(" for {:.0}s", ms as f64 / 1000.0));
                lines.push(Line::from(vec![
                    Span::raw(format!(" {} ", short_id(&i.id))),
                    Span::styled(
                        format!("{}{ejected}", i.breaker),
                        Style::default().fg(breaker_color(&i.breaker)),
                    ),
                    Span::raw(format!(
                        " ej {} fl {} fail {}/{}",
                        i.ejections, i.in_flight, i.failures, i.requests
                    )),
                ]));
            }
        }
    }
    frame.render_widget(
        Paragraph::new(lines).block(block("gateway upstreams", snap.upstreams.status())),
        area,
    );
}

/// Instance ids are `<service>-<uuid>`-like; the tail tells replicas apart in little room.
fn short_id(id: &str) -> String {
    let n = id.chars().count();
    if n <= 14 {
        id.to_string()
    } else {
        let tail: String = id.chars().skip(n - 13).collect();
        format!("…{tail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dash::state::{Feed, Instance, Upstream, Upstreams};
    use crate::dash::ui::testing::{render, text};

    fn instance(id: &str, breaker: &str, ejected: Option<u64>, ejections: u64) -> Instance {
        Instance {
            id: id.into(),
            address: "product-service".into(),
            port: 8080,
            breaker: breaker.into(),
            ejected_for_ms: ejected,
            ejections,
            in_flight: 0,
            requests: 40,
            failures: 5,
        }
    }

    #[test]
    fn breakers_and_ejections_show_per_instance() {
        let mut snap = Snapshot::new("msctl");
        snap.upstreams = Feed::ok(Upstreams {
            load_balancing: "round_robin".into(),
            services: vec![Upstream {
                service: "product-service".into(),
                stale: false,
                instances: vec![
                    instance("prod-1", "closed", None, 0),
                    instance("prod-2", "open", Some(8000), 1),
                ],
            }],
        });
        let lines = render(40, 6, &snap, draw);
        let t = text(&lines);
        assert!(t.contains("product-service"), "{t}");
        let l1 = lines.iter().find(|l| l.contains("prod-1")).expect("prod-1");
        assert!(l1.contains("closed") && l1.contains("ej 0"), "{l1}");
        let l2 = lines.iter().find(|l| l.contains("prod-2")).expect("prod-2");
        assert!(l2.contains("open for 8s") && l2.contains("ej 1"), "{l2}");
    }

    #[test]
    fn an_unreachable_gateway_is_shown_as_lost() {
        let mut snap = Snapshot::new("msctl");
        snap.upstreams.set(Err("no running gateway".into()));
        let t = text(&render(60, 4, &snap, draw));
        assert!(t.contains("lost: no running gateway"), "{t}");
    }
}
