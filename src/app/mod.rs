//! The application: what the binary's commands and the daemon do, wired from the pipeline's
//! stages. It owns the I/O the stages leave out (the store, the state directory, the clock,
//! SMTP and the mailbox), and is the only layer that combines them.

pub mod consensus;
pub mod context;
pub mod daemon;
pub mod echolot;
pub mod environment;
pub mod import;
pub mod ingest;
pub mod keys;
pub mod notify;
pub mod outbox;
pub mod probes;
pub mod report;
pub mod schedule;
pub mod secret;
pub mod state;
pub mod systemd;
