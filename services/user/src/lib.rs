//! user-service: accounts (argon2id password hashes), JWT login through the kit, profile,
//! and logout by revoking the token's id in Redis.
//!
//! - [`config`]: settings; [`startup`]: [`startup::Application`]; [`db`]: create, migrate;
//! - [`domain`]: email, name, password, role; [`password`]: argon2id;
//! - [`revocation`]: the Redis revocation list; [`routes`]: handlers; [`seed`]: fixtures.

pub mod config;
pub mod db;
pub mod domain;
pub mod openapi;
pub mod password;
pub mod revocation;
pub mod routes;
pub mod seed;
pub mod startup;
pub mod state;
