//! The integration tests: one binary, a module per area. They run the real `fathometer`
//! binary against real Postfix, Dovecot, GnuPG, Chromium and Prometheus where the area needs
//! them (`.ci/run` starts and installs those), and share the helpers in [`support`].

mod support;

mod browser;
mod cli;
mod consensus;
mod discovery;
mod echolot_import;
mod echolot_vectors;
mod events;
mod hardening;
mod http;
mod imap;
mod mail;
mod mix;
mod mixmaster_client;
mod mixmaster_packets;
mod mixmaster_vectors;
mod openpgp_interop;
mod prometheus;
mod published;
mod remailer_double;
mod simulation;
mod systemd;
mod tls;
mod yamn;
