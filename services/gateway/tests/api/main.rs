//! Gateway integration tests: one binary, real servers on 127.0.0.1.

mod auth;
mod binary;
mod discovery;
mod helpers;
mod malformed;
mod resilience;
mod routing;
