//! The route table: which service serves a path, which routes are public, and which paths
//! are refused before any routing (traversal tricks, `/internal`, `/admin`).

use axum::http::{Method, StatusCode};
use service_kit::ApiError;

/// Route name → service, for `/api/v1/<route>/**`.
pub const ROUTES: [(&str, &str); 5] = [
    ("users", "user-service"),
    ("products", "product-service"),
    ("orders", "order-service"),
    ("payments", "payment-service"),
    ("notifications", "notification-service"),
];

/// The service behind a route name.
pub fn service_for(route: &str) -> Option<&'static str> {
    ROUTES.iter().find(|(r, _)| *r == route).map(|(_, s)| *s)
}

/// A request matched to a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    /// Route name (`products`).
    pub route: &'static str,
    /// Service name (`product-service`).
    pub service: &'static str,
    /// Whether the route is reachable without a token.
    pub public: bool,
}

fn no_route() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no_route", "no route for this path")
}

/// Match `path` (the raw, still percent-encoded path) for `method`.
///
/// Refused with 400 `bad_path`: empty segments, `.`/`..` segments, percent-encoded `.`,
/// `/` or `\`, backslashes and control characters — forms that upstream frameworks could
/// normalise into a different path than the one checked here. Refused with 404: anything
/// outside `/api/v1/<route>`, and any `internal` or `admin` segment, which is never routed.
pub fn match_route(method: &Method, path: &str) -> Result<Matched, ApiError> {
    let bad = || ApiError::bad_request("bad_path", "path is not in normal form");
    let rest = path.strip_prefix("/api/v1/").ok_or_else(no_route)?;
    let lower = rest.to_ascii_lowercase();
    if lower.contains("%2e")
        || lower.contains("%2f")
        || lower.contains("%5c")
        || lower.contains('\\')
        || rest.bytes().any(|b| b.is_ascii_control())
    {
        return Err(bad());
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let segments: Vec<&str> = rest.split('/').collect();
    if segments
        .iter()
        .any(|s| s.is_empty() || *s == "." || *s == "..")
    {
        return Err(bad());
    }
    if segments
        .iter()
        .any(|s| s.eq_ignore_ascii_case("internal") || s.eq_ignore_ascii_case("admin"))
    {
        return Err(no_route());
    }
    let route_name = segments.first().copied().unwrap_or_default();
    let (route, service) = ROUTES
        .iter()
        .find(|(r, _)| *r == route_name)
        .copied()
        .ok_or_else(no_route)?;
    let public = match route {
        "users" => {
            *method == Method::POST
                && segments.len() == 2
                && (segments[1] == "register" || segments[1] == "login")
        }
        "products" => *method == Method::GET || *method == Method::HEAD,
        _ => false,
    };
    Ok(Matched {
        route,
        service,
        public,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_map_to_services_and_public_rules_hold() {
        let m = match_route(&Method::GET, "/api/v1/products/42").expect("routed");
        assert_eq!((m.service, m.public), ("product-service", true));
        assert!(
            match_route(&Method::GET, "/api/v1/products")
                .expect("routed")
                .public
        );
        assert!(
            !match_route(&Method::POST, "/api/v1/products")
                .expect("routed")
                .public
        );
        assert!(
            match_route(&Method::POST, "/api/v1/users/login")
                .expect("routed")
                .public
        );
        assert!(
            match_route(&Method::POST, "/api/v1/users/register")
                .expect("routed")
                .public
        );
        assert!(
            !match_route(&Method::GET, "/api/v1/users/me")
                .expect("routed")
                .public
        );
        assert!(
            !match_route(&Method::POST, "/api/v1/users/login/x")
                .expect("routed")
                .public
        );
        assert_eq!(
            match_route(&Method::GET, "/api/v1/orders/1")
                .expect("routed")
                .service,
            "order-service"
        );
    }

    #[test]
    fn internal_admin_unknown_and_tricky_paths_are_refused() {
        for (path, status) in [
            ("/internal/reserve", 404),
            ("/admin/faults", 404),
            ("/api/v1/products/internal/reserve", 404),
            ("/api/v1/products/ADMIN/faults", 404),
            ("/api/v1/widgets", 404),
            ("/api/v2/products", 404),
            ("/api/v1/products/../internal", 400),
            ("/api/v1/products/%2e%2e/internal", 400),
            ("/api/v1/products/a%2Fb", 400),
            ("/api/v1/products//x", 400),
            ("/api/v1/products/.", 400),
            ("/api/v1/products/a\\b", 400),
        ] {
            let err = match_route(&Method::GET, path).expect_err(path);
            assert_eq!(err.status.as_u16(), status, "{path}");
        }
    }
}
