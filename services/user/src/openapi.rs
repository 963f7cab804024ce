//! The OpenAPI document of user-service (served at `/openapi.json`).

use serde_json::{json, Value};

fn err(desc: &str) -> Value {
    json!({"description": desc, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

/// The document: the kit's common endpoints plus accounts and sessions.
pub fn document() -> Value {
    let uuid = json!({"type": "string", "format": "uuid"});
    let id_param = json!([{"name": "id", "in": "path", "required": true, "schema": uuid}]);
    let identity = json!([{"name": "X-User-Id", "in": "header", "required": true, "schema": uuid,
        "description": "set by the gateway from the JWT"}]);
    service_kit::openapi::document(
        "user-service",
        json!({
            "/api/v1/users/register": {"post": {"summary": "Create an account",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["email", "password", "name"], "properties": {
                        "email": {"type": "string", "format": "email"},
                        "password": {"type": "string", "minLength": 8, "maxLength": 128},
                        "name": {"type": "string", "minLength": 1, "maxLength": 100}}}}}},
                "responses": {"201": {"description": "the user"}, "409": err("email_taken"),
                    "422": err("invalid_email, invalid_name, weak_password")}}},
            "/api/v1/users/login": {"post": {"summary": "Exchange email and password for a JWT",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["email", "password"], "properties": {
                        "email": {"type": "string"}, "password": {"type": "string"}}}}}},
                "responses": {"200": {"description": "{token, token_type, expires_in, user_id}"},
                    "401": err("invalid_credentials")}}},
            "/api/v1/users/logout": {"post": {"summary": "Revoke the bearer token until it expires",
                "responses": {"200": {"description": "{status: logged_out, jti}"}, "401": err("no valid token"),
                    "503": err("revocation_unavailable")}}},
            "/api/v1/users/me": {
                "parameters": identity,
                "get": {"summary": "The caller's profile", "responses": {"200": {"description": "the user"},
                    "401": err("unauthorized or token_revoked")}},
                "patch": {"summary": "Change name, email or password (password needs current_password)",
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {
                        "type": "object", "properties": {"name": {"type": "string"}, "email": {"type": "string"},
                            "password": {"type": "string"}, "current_password": {"type": "string"}}}}}},
                    "responses": {"200": {"description": "the user"}, "403": err("wrong current password"),
                        "409": err("email_taken"), "422": err("invalid")}}},
            "/internal/tokens/{id}/revoked": {"parameters": id_param, "get": {
                "summary": "Whether a token id (jti) was revoked by logout",
                "responses": {"200": {"description": "{jti, revoked}"}, "503": err("revocation_unavailable")}}},
            "/internal/users/{id}": {"parameters": id_param, "get": {"summary": "A user's profile",
                "responses": {"200": {"description": "the user"}, "404": err("not_found")}}},
            "/admin/seed": {"post": {"summary": "Insert seed users that are missing (admin token)",
                "responses": {"200": {"description": "{created, existing}"}, "422": err("invalid seed")}}}
        }),
    )
}
