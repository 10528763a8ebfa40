//! What only fathometer's tests need, kept out of the shipped binary: the decoder a Mixmaster
//! remailer runs on a type II packet, and the remailer's secret keys. The integration tests
//! and the remailer doubles use them (no real remailer can run where the tests run); the
//! pinger itself only ever builds packets.

pub mod mixmaster;
