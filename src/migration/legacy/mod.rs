//! Legacy Import: the old bot's database into Heimdall, in 7 steps.
//!
//! Each plugin registers the mapping of the legacy records that become its collections
//! ([`LegacyStepSpec`]); several plugins may contribute to one step (step 1, Settings, feeds
//! five plugins). The engine in [`engine`] reads each legacy collection once, in `_id`
//! order and in batches, hands every record to the step's mappers, checks which produced
//! documents already exist (by their unique key) and writes the rest. Every record ends
//! imported, skipped (with the reason) or failed (with the reason).

pub mod coerce;
pub mod engine;
mod map_thread;

pub use heimdall_base::legacy::*;
