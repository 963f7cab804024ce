//! Integration tests of payment-service against a real Postgres (booted with
//! `msctl_stack::testing::TestInfra`), each test on a fresh database.

mod helpers;
mod malformed;
mod payments;
