//! Heimdall's base types, shared by every crate above it: the plugins' catalog and its
//! checks ([`catalog`], [`legacy`]), errors a user reads as they are ([`error`]), values that
//! must never be printed ([`secret`]) and Discord ids ([`ids`]).
//! It depends on no other Heimdall crate.

pub mod batch;
pub mod catalog;
pub mod crypto;
pub mod db;
pub mod error;
pub mod ids;
pub mod legacy;
pub mod net;
pub mod numbering;
pub mod secret;
pub mod settings;
