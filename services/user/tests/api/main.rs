//! Integration tests of user-service against real Postgres and Redis (booted with
//! `msctl_stack::testing::TestInfra`), each test on a fresh database.

mod helpers;
mod malformed;
mod users;
