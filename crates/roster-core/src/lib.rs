//! Roster's domain: what a user, a privilege and a directory entry are, and the sync planner that turns
//! (the users we have, the entries a directory returned, the options) into a plan.
//!
//! Nothing in this crate does I/O or reads the clock: the store, the connectors and the front ends depend on
//! it, never the other way round. That keeps the planner a pure function that tests can drive with plain values.

pub mod clock;
pub mod directory;
pub mod dn;
pub mod filter;
#[cfg(test)]
mod fuzz;
pub mod ldif;
pub mod names;
pub mod plan;
pub mod privileges;
pub mod throttle;
pub mod user;

pub use clock::{Clock, Timestamp};
pub use names::{EmailAddress, NameError, UserName};
pub use privileges::{FolderRight, Privilege};
