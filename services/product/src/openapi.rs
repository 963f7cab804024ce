//! The OpenAPI document of product-service (served at `/openapi.json`).

use serde_json::{json, Value};

fn err(desc: &str) -> Value {
    json!({"description": desc, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

/// The document: the kit's common endpoints plus the catalog and reservation API.
pub fn document() -> Value {
    let uuid = json!({"type": "string", "format": "uuid"});
    let id_param = json!([{"name": "id", "in": "path", "required": true, "schema": uuid}]);
    let product_body = json!({"type": "object", "required": ["name", "price_cents", "stock"], "properties": {
        "id": uuid, "name": {"type": "string", "minLength": 1, "maxLength": 200},
        "description": {"type": "string", "maxLength": 2000},
        "price_cents": {"type": "integer", "minimum": 0, "maximum": 100_000_000},
        "stock": {"type": "integer", "minimum": 0, "maximum": 1_000_000_000}}});
    let patch_body = json!({"type": "object", "properties": {
        "name": {"type": "string"}, "description": {"type": "string"},
        "price_cents": {"type": "integer"}, "stock": {"type": "integer", "description": "sets available"}}});
    let admin = "Catalog admins only: X-User-Id listed in PRODUCT_ADMIN_USERS, or X-Admin-Token.";
    service_kit::openapi::document(
        "product-service",
        json!({
            "/api/v1/products": {
                "get": {"summary": "Search products", "parameters": [
                    {"name": "q", "in": "query", "schema": {"type": "string", "maxLength": 200}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
                    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}}],
                    "responses": {"200": {"description": "{items, total, limit, offset}"}, "400": err("invalid query")}},
                "post": {"summary": "Create a product", "description": admin,
                    "requestBody": {"required": true, "content": {"application/json": {"schema": product_body}}},
                    "responses": {"201": {"description": "created"}, "401": err("no identity"), "403": err("not an admin"),
                        "409": err("product_exists"), "422": err("invalid product")}}
            },
            "/api/v1/products/{id}": {
                "parameters": id_param,
                "get": {"summary": "A product with stock {available, reserved, sold} (cached; X-Cache: hit|miss)",
                    "responses": {"200": {"description": "product"}, "400": err("invalid_id"), "404": err("not_found")}},
                "put": {"summary": "Change the given fields", "description": admin,
                    "requestBody": {"required": true, "content": {"application/json": {"schema": patch_body}}},
                    "responses": {"200": {"description": "product"}, "404": err("not_found"), "422": err("invalid")}},
                "delete": {"summary": "Delete (soft)", "description": admin,
                    "responses": {"204": {"description": "deleted"}, "404": err("not_found")}}
            },
            "/internal/reservations": {
                "post": {"summary": "Reserve stock for an order, all or nothing (idempotent on order_id)",
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {
                        "type": "object", "required": ["order_id", "items"], "properties": {
                            "order_id": uuid,
                            "items": {"type": "array", "minItems": 1, "maxItems": 100, "items": {
                                "type": "object", "required": ["product_id", "quantity"], "properties": {
                                    "product_id": uuid, "quantity": {"type": "integer", "minimum": 1, "maximum": 1_000_000}}}}}}}}},
                    "responses": {"200": {"description": "{order_id, status: reserved|committed, total_cents}"},
                        "409": err("out_of_stock (nothing reserved) or reservation_released"),
                        "422": err("invalid items")}}
            },
            "/internal/reservations/{id}/release": {
                "parameters": id_param,
                "post": {"summary": "Return held stock (idempotent; unknown order → 200 and a tombstone)",
                    "responses": {"200": {"description": "{status: released|committed}"}}}
            },
            "/internal/reservations/{id}/commit": {
                "parameters": id_param,
                "post": {"summary": "Sell held stock (idempotent)",
                    "responses": {"200": {"description": "{status: committed}"},
                        "404": err("reservation_not_found"), "409": err("reservation_released or out_of_stock")}}
            },
            "/admin/seed": {
                "post": {"summary": "Insert seed products that are missing (admin token)",
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {
                        "type": "object", "required": ["products"], "properties": {"products": {"type": "array", "items": product_body}}}}}},
                    "responses": {"200": {"description": "{created, existing}"}, "422": err("invalid seed")}}
            }
        }),
    )
}
