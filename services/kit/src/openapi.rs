//! A minimal OpenAPI 3.1 document for `GET /openapi.json`.
//!
//! Services describe their own paths; the kit adds its common endpoints so every document
//! lists `/health`, `/ready`, `/metrics` and `/admin/faults`.

use serde_json::{json, Value};

/// An OpenAPI document titled `service` with `paths` (an object of path items) plus the
/// kit's common endpoints.
pub fn document(service: &str, paths: Value) -> Value {
    let mut all = json!({
        "/health": {"get": {"summary": "Liveness", "responses": {"200": {"description": "alive"}}}},
        "/ready": {"get": {"summary": "Readiness (dependencies reachable)",
            "responses": {"200": {"description": "ready"}, "503": {"description": "a dependency is down"}}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text exposition"}}}},
        "/admin/faults": {
            "post": {"summary": "Inject an HTTP fault (admin token)", "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/FaultSpec"}}}},
                "responses": {"200": {"description": "fault active"}, "400": {"description": "invalid fault"}, "401": {"description": "no token"}, "403": {"description": "wrong token"}}},
            "get": {"summary": "The active fault (admin token)", "responses": {"200": {"description": "fault or null"}}},
            "delete": {"summary": "Remove the fault (admin token)", "responses": {"204": {"description": "cleared"}}}
        }
    });
    if let (Some(all), Some(extra)) = (all.as_object_mut(), paths.as_object()) {
        for (k, v) in extra {
            all.insert(k.clone(), v.clone());
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": service, "version": env!("CARGO_PKG_VERSION")},
        "paths": all,
        "components": {"schemas": {
            "Error": {"type": "object", "required": ["code", "message"], "properties": {
                "code": {"type": "string"}, "message": {"type": "string"}, "request_id": {"type": "string"}}},
            "FaultSpec": {"type": "object", "properties": {
                "error_rate": {"type": "number", "minimum": 0, "maximum": 1},
                "status": {"type": "integer", "minimum": 400, "maximum": 599},
                "delay_ms": {"type": "integer", "minimum": 0},
                "path_prefix": {"type": "string"},
                "duration": {"type": "string", "description": "e.g. 30s"},
                "duration_ms": {"type": "integer", "minimum": 0},
                "first_n": {"type": "integer", "minimum": 0},
                "after": {"type": "boolean", "description": "apply after the handler: the request is served, then its answer is delayed (delay_ms) and, when failed, replaced by the injected error (a lost response)"}}}
        }}
    })
}
