//! What only fathometer's tests need. The remailer's side of a type II packet (the decoder
//! and secret keys) moved into the crate, where `fathometer simulate` and `fathometer demo`
//! use it for their simulated remailers; it is re-exported here for the tests.

pub use fathometer::simulation::mixmaster;
