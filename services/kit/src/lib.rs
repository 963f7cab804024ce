//! `service-kit`: what every service of the msctl reference stack shares.
pub mod resilience;
