//! product-service: the catalog, stock, and the reservation API used by the order saga.
//!
//! - [`config`]: settings from the environment; [`startup`]: [`startup::Application`];
//! - [`db`]: the migrations and the kit's create-if-missing, connect, migrate;
//! - [`domain`]: validated request values; [`routes`]: handlers;
//! - [`cache`]: the Redis read-through product cache; [`seed`]: fixtures loading.

pub mod cache;
pub mod config;
pub mod db;
pub mod domain;
pub mod openapi;
pub mod routes;
pub mod seed;
pub mod startup;
pub mod state;
