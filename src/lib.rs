//! fathometer: an Echolot-style pinger that measures how reliable anonymous remailers are.
//!
//! The pipeline, one module per stage (see docs/ARCHITECTURE.md):
//! [`scheduler`] decides when each remailer and chain is pinged; the daemon ([`daemon`])
//! records due pings in the [`store`]; [`stats`] turns the ping history into reliability and
//! latency; [`publisher`] renders the files clients scrape. [`sender`] builds and mails pings
//! (type I via [`openpgp`], type II via [`mixmaster`]), [`ingest`] matches what comes back,
//! and [`discovery`] learns remailers' capabilities and keys from their replies. [`config`] reads the operator's
//! TOML, [`import`] reads ping histories from CSV, [`secret`] keeps the pinger's secret.

pub mod app;
pub mod cli;
pub mod compose;
pub mod config;
pub mod ingest;
pub mod matching;
pub mod model;
pub mod publish;
pub mod schedule;
pub mod send;
pub mod simulation;
pub mod stats;
pub mod store;
