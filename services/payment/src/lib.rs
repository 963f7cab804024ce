//! payment-service: charge and refund, idempotent on the order id, over a ledger table;
//! declines are deterministic (a test card, an amount limit) so scenarios can force them.
//!
//! - [`config`]: settings; [`startup`]: [`startup::Application`]; [`db`]: create, migrate;
//! - [`domain`]: card and charge validation, decline rules; [`routes`]: handlers.

pub mod config;
pub mod db;
pub mod domain;
pub mod openapi;
pub mod routes;
pub mod startup;
pub mod state;
