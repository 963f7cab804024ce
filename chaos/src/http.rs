//! HTTP faults through a service's own admin API: `POST /admin/faults` with the fault as
//! JSON and `DELETE /admin/faults` to clear it, authorised with the `X-Admin-Token` header.
//!
//! Requests go from the host to the replica's admin port as published on 127.0.0.1 — never
//! to a container address. Which container port is the admin port: the component's
//! `ADMIN_PORT` environment variable when set (the kit's separate admin listener), else
//! its `PORT` (the kit serves the admin API on its one port), else the port of its HTTP
//! health check, else its only published port. The token is the component's
//! `ADMIN_TOKEN` from stack.toml, or `MSCTL_ADMIN_TOKEN` from msctl's environment.

use std::time::Duration;

use msctl_stack::model::{Component, HealthProbe};
use msctl_stack::runtime::ContainerInfo;

use crate::error::ChaosError;
use crate::fault::HttpFault;

/// Header carrying the admin token (services/kit `admin.rs`).
pub const ADMIN_TOKEN_HEADER: &str = "x-admin-token";
/// Path of the fault endpoint.
pub const FAULTS_PATH: &str = "/admin/faults";

/// Where and how to reach one replica's admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminTarget {
    /// `http://127.0.0.1:<host port>`.
    pub base_url: String,
    /// The admin token.
    pub token: String,
}

/// The container port of a component's admin API.
pub fn admin_port(c: &Component) -> Result<u16, ChaosError> {
    for var in ["ADMIN_PORT", "PORT"] {
        if let Some(p) = c.environment.get(var).and_then(|p| p.parse::<u16>().ok()) {
            return Ok(p);
        }
    }
    if let Some(HealthProbe::Http { port, .. }) = c.health.as_ref().map(|h| &h.probe) {
        return Ok(*port);
    }
    match c.ports.as_slice() {
        [one] => Ok(one.container),
        _ => Err(ChaosError::Usage(format!(
            "cannot tell which port of component \"{}\" serves /admin/faults; set components.{}.environment.ADMIN_PORT (or PORT)",
            c.name, c.name
        ))),
    }
}

/// The admin token for a component: `MSCTL_ADMIN_TOKEN` wins over stack.toml.
pub fn admin_token(c: &Component, env_override: Option<String>) -> Result<String, ChaosError> {
    env_override
        .filter(|t| !t.is_empty())
        .or_else(|| c.environment.get("ADMIN_TOKEN").cloned())
        .ok_or_else(|| {
            ChaosError::Usage(format!(
                "component \"{}\" has no admin token: set components.{}.environment.ADMIN_TOKEN in the stack file or MSCTL_ADMIN_TOKEN",
                c.name, c.name
            ))
        })
}

/// Where to send the admin request for one running replica.
pub fn admin_target(
    c: &Component,
    container: &ContainerInfo,
    env_override: Option<String>,
) -> Result<AdminTarget, ChaosError> {
    let port = admin_port(c)?;
    let host_port = container
        .ports
        .iter()
        .find(|p| p.container == port)
        .map(|p| p.host)
        .ok_or_else(|| {
            ChaosError::Usage(format!(
                "container {} does not publish its admin port {port} on 127.0.0.1; add \"{port}\" to components.{}.ports",
                container.name, c.name
            ))
        })?;
    Ok(AdminTarget {
        base_url: format!("http://127.0.0.1:{host_port}"),
        token: admin_token(c, env_override)?,
    })
}

/// A client for the admin API.
#[derive(Debug, Clone)]
pub struct AdminApi {
    client: reqwest::Client,
}

impl AdminApi {
    /// A client with a short timeout: the admin API answers at once or not at all.
    pub fn new() -> Result<Self, ChaosError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            // Only loopback is ever addressed; a proxy from the environment must not
            // intercept it.
            .no_proxy()
            .build()
            .map_err(|e| ChaosError::Http(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self { client })
    }

    /// The `POST /admin/faults` request (built, not sent).
    pub fn set_request(
        &self,
        target: &AdminTarget,
        fault: &HttpFault,
    ) -> Result<reqwest::Request, ChaosError> {
        self.client
            .post(format!("{}{FAULTS_PATH}", target.base_url))
            .header(ADMIN_TOKEN_HEADER, &target.token)
            .json(fault)
            .build()
            .map_err(|e| ChaosError::Http(format!("cannot build the request: {e}")))
    }

    /// The `DELETE /admin/faults` request (built, not sent).
    pub fn clear_request(&self, target: &AdminTarget) -> Result<reqwest::Request, ChaosError> {
        self.client
            .delete(format!("{}{FAULTS_PATH}", target.base_url))
            .header(ADMIN_TOKEN_HEADER, &target.token)
            .build()
            .map_err(|e| ChaosError::Http(format!("cannot build the request: {e}")))
    }

    /// Sends a request built above; a non-2xx answer is an error quoting the body.
    pub async fn send(&self, request: reqwest::Request, what: &str) -> Result<(), ChaosError> {
        let url = request.url().to_string();
        let resp = self
            .client
            .execute(request)
            .await
            .map_err(|e| ChaosError::Http(format!("{what}: {url}: {e}")))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let body = resp.text().await.unwrap_or_default();
        Err(ChaosError::Http(format!(
            "{what}: {url} answered {status}: {}",
            body.trim()
        )))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use msctl_stack::model::PortMapping;
    use msctl_stack::runtime::{ContainerState, Health};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// Built through the stack file parser, so that new `Component` fields do not break
    /// these tests.
    fn component(env: &[(&str, &str)], health_port: Option<u16>) -> Component {
        let env: Vec<String> = env.iter().map(|(k, v)| format!("{k} = \"{v}\"")).collect();
        let health = health_port.map_or(String::new(), |p| {
            format!("health = {{ http = \"/health\", port = {p} }}\n")
        });
        let text = format!(
            "name = \"p\"\n[components.product-service]\nimage = \"x\"\nports = [\"8080\", \"9000\"]\nenvironment = {{ {} }}\n{health}",
            env.join(", ")
        );
        let stack = msctl_stack::model::Stack::parse(std::path::Path::new("stack.toml"), &text)
            .expect("valid stack");
        stack.components["product-service"].clone()
    }

    fn container(host: u16) -> ContainerInfo {
        ContainerInfo {
            id: "abc".into(),
            name: "p-product-service-1".into(),
            labels: BTreeMap::new(),
            state: ContainerState::Running,
            health: Health::Healthy,
            exit_code: None,
            started_at: None,
            restart_count: 0,
            ports: vec![
                PortMapping {
                    host,
                    container: 8080,
                },
                PortMapping {
                    host: host + 1,
                    container: 9000,
                },
            ],
            image_id: "i".into(),
        }
    }

    #[test]
    fn the_admin_port_comes_from_admin_port_then_port_then_health_then_the_only_port() {
        assert_eq!(
            admin_port(&component(
                &[("PORT", "8080"), ("ADMIN_PORT", "9000")],
                Some(8080)
            ))
            .expect("port"),
            9000
        );
        assert_eq!(
            admin_port(&component(&[("ADMIN_PORT", "9000")], None)).expect("port"),
            9000
        );
        assert_eq!(
            admin_port(&component(&[("PORT", "9000")], Some(8080))).expect("port"),
            9000
        );
        assert_eq!(admin_port(&component(&[], Some(8080))).expect("port"), 8080);
        let e = admin_port(&component(&[], None)).expect_err("ambiguous");
        assert!(e.is_usage() && e.to_string().contains("PORT"), "{e}");
    }

    #[test]
    fn with_an_admin_port_the_request_goes_to_its_published_port() {
        let c = component(
            &[
                ("PORT", "8080"),
                ("ADMIN_PORT", "9000"),
                ("ADMIN_TOKEN", "t"),
            ],
            Some(8080),
        );
        let t = admin_target(&c, &container(40123), None).expect("target");
        assert_eq!(
            t.base_url, "http://127.0.0.1:40124",
            "the host port of 9000"
        );
    }

    #[test]
    fn the_request_goes_to_the_published_loopback_port_with_the_token() {
        let c = component(&[("PORT", "8080"), ("ADMIN_TOKEN", "s3cret")], None);
        let t = admin_target(&c, &container(40123), None).expect("target");
        assert_eq!(t.base_url, "http://127.0.0.1:40123");
        let api = AdminApi::new().expect("client");
        let fault = HttpFault {
            status: Some(503),
            first_n: Some(2),
            ..HttpFault::default()
        };
        let req = api.set_request(&t, &fault).expect("request");
        assert_eq!(req.method(), reqwest::Method::POST);
        assert_eq!(req.url().as_str(), "http://127.0.0.1:40123/admin/faults");
        assert_eq!(
            req.headers().get(ADMIN_TOKEN_HEADER).map(|v| v.as_bytes()),
            Some(&b"s3cret"[..])
        );
        let body = req.body().and_then(|b| b.as_bytes()).expect("body");
        assert_eq!(body, br#"{"status":503,"first_n":2}"#);
        let lost = HttpFault {
            after: true,
            ..fault
        };
        let req = api.set_request(&t, &lost).expect("request");
        let body = req.body().and_then(|b| b.as_bytes()).expect("body");
        assert_eq!(body, br#"{"status":503,"first_n":2,"after":true}"#);
        let del = api.clear_request(&t).expect("request");
        assert_eq!(del.method(), reqwest::Method::DELETE);
        // The environment override wins over stack.toml.
        let t2 = admin_target(&c, &container(40123), Some("env".into())).expect("target");
        assert_eq!(t2.token, "env");
    }

    #[test]
    fn missing_token_or_unpublished_port_are_usage_errors() {
        let c = component(&[("PORT", "7000")], None);
        assert!(admin_target(&c, &container(1), Some("t".into()))
            .expect_err("unpublished")
            .is_usage());
        let c = component(&[("PORT", "8080")], None);
        assert!(admin_target(&c, &container(1), None)
            .expect_err("no token")
            .is_usage());
    }

    /// A one-shot HTTP server on 127.0.0.1:0 answering `status`; returns its port and the
    /// raw request it saw.
    async fn one_shot(status: &'static str) -> (u16, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let task = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            let mut buf = vec![0u8; 4096];
            let mut seen = Vec::new();
            loop {
                let n = s.read(&mut buf).await.expect("read");
                seen.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&seen);
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if body.len() >= len {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            let body = r#"{"code":"invalid_fault"}"#;
            s.write_all(
                format!(
                    "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            )
            .await
            .expect("write");
            String::from_utf8_lossy(&seen).to_string()
        });
        (port, task)
    }

    #[tokio::test]
    async fn sending_posts_json_and_reports_refusals_with_the_body() {
        let api = AdminApi::new().expect("client");
        let (port, seen) = one_shot("200 OK").await;
        let t = AdminTarget {
            base_url: format!("http://127.0.0.1:{port}"),
            token: "tok".into(),
        };
        let fault = HttpFault {
            error_rate: Some(0.25),
            ..HttpFault::default()
        };
        api.send(api.set_request(&t, &fault).expect("req"), "set")
            .await
            .expect("2xx");
        let raw = seen.await.expect("server");
        assert!(raw.starts_with("POST /admin/faults HTTP/1.1"), "{raw}");
        assert!(
            raw.to_ascii_lowercase().contains("x-admin-token: tok"),
            "{raw}"
        );
        assert!(raw
            .to_ascii_lowercase()
            .contains("content-type: application/json"));
        assert!(raw.ends_with(r#"{"error_rate":0.25}"#), "{raw}");

        let (port, _seen) = one_shot("400 Bad Request").await;
        let t = AdminTarget {
            base_url: format!("http://127.0.0.1:{port}"),
            token: "tok".into(),
        };
        let e = api
            .send(api.clear_request(&t).expect("req"), "clear")
            .await
            .expect_err("400");
        assert!(
            e.to_string().contains("400") && e.to_string().contains("invalid_fault"),
            "{e}"
        );
    }
}
