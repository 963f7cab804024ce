//! order-service against real Postgres and RabbitMQ (and, for the saga, the real
//! product-service and payment-service started in-process).

mod api;
mod broker;
mod events;
mod fuzz;
mod gateway;
mod helpers;
mod saga;
