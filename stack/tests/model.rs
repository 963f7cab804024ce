//! stack.toml parsing, validation and dependency ordering.

use std::path::Path;
use std::time::Duration;

use msctl_stack::model::{Condition, ConfigErrors, HealthProbe, PortMapping, RestartPolicy, Stack};
use proptest::prelude::*;

fn parse(text: &str) -> Result<Stack, ConfigErrors> {
    Stack::parse(Path::new("stack.toml"), text)
}

fn first_error(text: &str) -> String {
    match parse(text) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e.0[0].to_string(),
    }
}

const GOOD: &str = r#"
name = "shop"

[components.postgres]
image = "msctl/postgres:dev"
environment = { POSTGRES_PASSWORD = "msctl", MAX = 5 }
ports = ["15432:5432"]
volumes = { data = "/var/lib/postgresql/data" }
profiles = ["infra"]
health = { command = ["pg_isready"], interval = "1s", retries = 60 }

[components.seed]
image = "msctl/tools:dev"
command = ["seed"]
restart = "no"
depends_on = { postgres = "healthy" }

[components.api]
image = "msctl/services:dev"
replicas = 2
ports = ["8080"]
depends_on = { seed = "completed_successfully", cache = "service_started" }
health = { http = "/health", port = 8080 }
metrics = { port = 8080 }

[components.cache]
image = "redis"
depends_on = ["postgres"]
health = { tcp = 6379 }
profiles = ["infra"]
"#;

#[test]
fn a_valid_stack_parses_into_typed_components() {
    let s = parse(GOOD).expect("valid");
    assert_eq!(s.name, "shop");
    let pg = &s.components["postgres"];
    assert_eq!(
        pg.ports,
        vec![PortMapping {
            host: 15432,
            container: 5432
        }]
    );
    assert_eq!(pg.environment["MAX"], "5");
    assert_eq!(pg.volumes[0].name, "data");
    let h = pg.health.as_ref().expect("health");
    assert_eq!(h.interval, Duration::from_secs(1));
    assert_eq!(h.retries, 60);
    let api = &s.components["api"];
    assert_eq!(api.replicas, 2);
    assert_eq!(api.ports[0].host, 0);
    assert_eq!(
        api.health.as_ref().map(|h| h.probe.clone()),
        Some(HealthProbe::Http {
            port: 8080,
            path: "/health".into()
        })
    );
    let cond = |n: &str| {
        api.depends_on
            .iter()
            .find(|d| d.component == n)
            .map(|d| d.condition)
    };
    assert_eq!(cond("seed"), Some(Condition::CompletedSuccessfully));
    assert_eq!(cond("cache"), Some(Condition::Started));
    assert_eq!(s.components["seed"].restart, RestartPolicy::No);
    assert_eq!(
        s.components["cache"].depends_on[0].condition,
        Condition::Started
    );
    assert_eq!(
        api.metrics.as_ref().map(|m| m.path.as_str()),
        Some("/metrics")
    );
}

#[test]
fn start_order_puts_dependencies_first() {
    let s = parse(GOOD).expect("valid");
    let order = s.graph.order();
    let pos = |n: &str| order.iter().position(|x| x == n).expect("present");
    assert!(pos("postgres") < pos("seed"));
    assert!(pos("seed") < pos("api"));
    assert!(pos("cache") < pos("api"));
    assert!(pos("postgres") < pos("cache"));
}

#[test]
fn profile_selects_members_and_their_dependencies() {
    let s = parse(GOOD).expect("valid");
    assert_eq!(
        s.select(&[], &["infra".into()]).expect("ok"),
        vec!["postgres", "cache"]
    );
    assert_eq!(s.select(&[], &[]).expect("ok").len(), 4);
    assert_eq!(
        s.select(&["seed".into()], &[]).expect("ok"),
        vec!["postgres", "seed"]
    );
    assert!(s
        .select(&[], &["nope".into()])
        .expect_err("unknown profile")
        .contains("profile \"nope\""));
}

#[test]
fn unique_prefix_resolves_a_component() {
    let s = parse(GOOD).expect("valid");
    assert_eq!(
        s.resolve_component("post").expect("prefix").name,
        "postgres"
    );
    assert!(s.resolve_component("zzz").is_err());
}

#[test]
fn unknown_key_is_reported_with_line_and_column() {
    let text = "name = \"x\"\n[components.a]\nimage = \"i\"\nimgae = \"typo\"\n";
    let e = first_error(text);
    assert!(e.starts_with("stack.toml:4:1:"), "{e}");
    assert!(e.contains("imgae"), "{e}");
}

#[test]
fn toml_syntax_error_is_positioned() {
    let e = first_error("name = \"x\"\n[components.a]\nimage = = \"i\"\n");
    assert!(e.starts_with("stack.toml:3:"), "{e}");
}

#[test]
fn unknown_dependency_points_at_its_name() {
    let text =
        "name = \"x\"\n[components.a]\nimage = \"i\"\ndepends_on = { ghost = \"healthy\" }\n";
    let e = first_error(text);
    assert!(e.starts_with("stack.toml:4:16:"), "{e}");
    assert!(e.contains("\"ghost\""), "{e}");
}

#[test]
fn dependency_cycle_is_rejected_and_named() {
    let text = r#"name = "x"
[components.a]
image = "i"
depends_on = ["b"]
[components.b]
image = "i"
depends_on = ["c"]
[components.c]
image = "i"
depends_on = ["a"]
"#;
    let e = first_error(text);
    assert!(e.contains("dependency cycle: a -> b -> c -> a"), "{e}");
    assert!(e.starts_with("stack.toml:4:"), "{e}");
}

#[test]
fn duplicate_host_port_is_rejected() {
    let text = r#"name = "x"
[components.a]
image = "i"
ports = ["8080:80"]
[components.b]
image = "i"
ports = ["8080:81"]
"#;
    let e = first_error(text);
    assert!(e.starts_with("stack.toml:7:10:"), "{e}");
    assert!(e.contains("already published by component \"a\""), "{e}");
}

#[test]
fn fixed_host_port_with_replicas_is_rejected() {
    let text = "name = \"x\"\n[components.a]\nimage = \"i\"\nreplicas = 2\nports = [\"8080:80\"]\n";
    assert!(first_error(text).contains("taken twice"));
}

#[test]
fn non_loopback_publish_address_is_rejected() {
    let text = "name = \"x\"\n[components.a]\nimage = \"i\"\nports = [\"0.0.0.0:80:80\"]\n";
    assert!(first_error(text).contains("127.0.0.1 only"));
}

#[test]
fn completion_condition_needs_a_one_shot_job() {
    let text = r#"name = "x"
[components.job]
image = "i"
[components.a]
image = "i"
depends_on = { job = "completed_successfully" }
"#;
    assert!(first_error(text).contains("restart = \"no\""));
}

#[test]
fn bad_duration_and_condition_are_reported_together() {
    let text = r#"name = "x"
[components.a]
image = "i"
health = { tcp = 1, interval = "soon" }
[components.b]
image = "i"
depends_on = { a = "ready" }
"#;
    let errs = parse(text).expect_err("invalid").0;
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(errs[0].message.contains("\"soon\" is not a duration"));
    assert!(errs[1].message.contains("unknown condition \"ready\""));
}

#[test]
fn health_needs_exactly_one_probe() {
    let text = "name = \"x\"\n[components.a]\nimage = \"i\"\nhealth = { tcp = 1, http = \"/\" }\n";
    assert!(first_error(text).contains("exactly one of"));
}

#[test]
fn the_default_stack_file_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../stack.toml");
    if let Err(e) = Stack::load(&path) {
        panic!("{e}");
    }
}

proptest! {
    #[test]
    fn port_short_syntax_round_trips(host in 0u16.., container in 1u16..) {
        let pm = PortMapping::parse(&format!("{host}:{container}")).expect("valid");
        prop_assert_eq!(pm, PortMapping { host, container });
        let pm = PortMapping::parse(&format!("{container}/tcp")).expect("valid");
        prop_assert_eq!(pm, PortMapping { host: 0, container });
    }

    #[test]
    fn port_parser_never_panics(s in "\\PC{0,20}") {
        let _ = PortMapping::parse(&s);
    }

    /// Random DAGs (edges only from higher to lower index) always order dependencies first,
    /// and adding a back edge along an existing path is always reported as a cycle.
    #[test]
    fn order_respects_every_edge(n in 2usize..9, edges in proptest::collection::vec((0usize..9, 0usize..9), 0..20)) {
        let mut text = String::from("name = \"p\"\n");
        let mut kept = Vec::new();
        for i in 0..n {
            let deps: Vec<String> = edges.iter()
                .filter(|(a, b)| *a == i && *b < i && *b < n)
                .map(|(_, b)| format!("\"c{b}\""))
                .collect();
            for (a, b) in edges.iter().filter(|(a, b)| *a == i && *b < i && *b < n) { kept.push((*a, *b)); }
            text.push_str(&format!("[components.c{i}]\nimage = \"i\"\ndepends_on = [{}]\n", deps.join(", ")));
        }
        let s = parse(&text).expect("acyclic");
        let order = s.graph.order();
        prop_assert_eq!(order.len(), n);
        for (a, b) in &kept {
            let pa = order.iter().position(|x| *x == format!("c{a}"));
            let pb = order.iter().position(|x| *x == format!("c{b}"));
            prop_assert!(pb < pa);
        }
        if let Some((a, b)) = kept.first() {
            // b depends on a closes the loop a -> b -> a.
            let cyclic = text.replacen(&format!("[components.c{b}]\nimage = \"i\"\ndepends_on = ["), &format!("[components.c{b}]\nimage = \"i\"\ndepends_on = [\"c{a}\", "), 1);
            let e = parse(&cyclic).expect_err("cycle");
            prop_assert!(e.0.iter().any(|e| e.message.contains("dependency cycle")));
        }
    }
}

#[test]
fn seed_needs_a_published_port_and_an_existing_file() {
    let text = "name = \"x\"\n[components.a]\nimage = \"i\"\nports = [\"8080\"]\nseed = { file = \"nope.json\", port = 9000 }\n";
    let errs = parse(text).expect_err("invalid seed").0;
    assert!(
        errs.iter()
            .any(|e| e.message.contains("seed port 9000 must be published")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.message.contains("seed file nope.json does not exist")),
        "{errs:?}"
    );
}

#[test]
fn binaries_images_take_features_and_a_workspace() {
    use msctl_stack::model::ImageRecipe;
    let text = "name = \"x\"\n[images.\"shop/svc:broken\"]\nbinaries = [\"order-service\"]\nfeatures = [\"order-service/skip-compensation\"]\n[components.a]\nimage = \"shop/svc:broken\"\n";
    let stack = parse(text).expect("valid");
    let ImageRecipe::Binaries(cargo) = &stack.images["shop/svc:broken"] else {
        panic!("not a binaries image")
    };
    assert_eq!(cargo.binaries, vec!["order-service"]);
    assert_eq!(cargo.features, vec!["order-service/skip-compensation"]);
    assert_eq!(cargo.workspace, Path::new("."));

    let bad =
        "name = \"x\"\n[images.\"a:b\"]\nrecipe = \"fixtures/images/redis\"\nfeatures = [\"f\"]\n";
    let errs = parse(bad).expect_err("features on a recipe image").0;
    assert!(
        errs.iter().any(|e| e
            .message
            .contains("`features` only applies to a `binaries` image")),
        "{errs:?}"
    );
    let bad = "name = \"x\"\n[images.\"a:b\"]\nbinaries = [\"x\"]\nfeatures = [\"a b\"]\n";
    assert!(first_error(bad).contains("is not a cargo feature name"));
    let bad = "name = \"x\"\n[images.\"a:b\"]\nbinaries = [\"x\"]\nworkspace = \"no/such/dir\"\n";
    let e = first_error(bad);
    assert!(
        e.starts_with("stack.toml:4:13:") && e.contains("has no Cargo.toml"),
        "{e}"
    );
}
