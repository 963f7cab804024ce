//! The OpenAPI document of payment-service (served at `/openapi.json`).

use serde_json::{json, Value};

fn err(desc: &str) -> Value {
    json!({"description": desc, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

/// The document: the kit's common endpoints plus charge, refund and read.
pub fn document() -> Value {
    let uuid = json!({"type": "string", "format": "uuid"});
    let id_param = json!([{"name": "id", "in": "path", "required": true, "schema": uuid}]);
    service_kit::openapi::document(
        "payment-service",
        json!({
            "/internal/payments/charge": {
                "post": {"summary": "Charge an order (idempotent on order_id). Declined: card 4000000000000002, or amount_cents > 1000000",
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {
                        "type": "object", "required": ["order_id", "amount_cents", "card"], "properties": {
                            "order_id": uuid, "amount_cents": {"type": "integer", "minimum": 1},
                            "card": {"type": "string", "description": "12-19 digits, Luhn-valid"}}}}}},
                    "responses": {"200": {"description": "{order_id, status: captured, payment_id, amount_cents}"},
                        "402": err("declined, with reason"), "409": err("payment_refunded or payment_voided"),
                        "422": err("invalid_card or invalid_amount")}}
            },
            "/internal/payments/{id}/refund": {
                "parameters": id_param,
                "post": {"summary": "Refund an order's capture (idempotent; nothing captured → nothing_to_refund)",
                    "responses": {"200": {"description": "{status: refunded|nothing_to_refund}"}}}
            },
            "/internal/ledger/totals": {
                "get": {"summary": "Money captured and refunded", "responses": {"200": {"description": "{captured_cents, refunded_cents, net_cents, captures, refunds}"}}}
            },
            "/api/v1/payments/{id}": {
                "parameters": id_param,
                "get": {"summary": "The payment of an order with its ledger rows",
                    "responses": {"200": {"description": "payment"}, "400": err("invalid_id"), "404": err("not_found")}}
            }
        }),
    )
}
