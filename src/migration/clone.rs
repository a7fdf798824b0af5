//! Instance Clone: one Heimdall instance into another, step by step.

use mongodb::bson::Document;

use crate::plugin::CollectionSpec;

/// What a plugin adds to the generic copy of its collections.
///
/// The engine streams, filters, remaps references and writes; a handler only adjusts a
/// document that needs something special before it is written.
pub trait CloneHandler: Send + Sync {
    /// Adjusts a source document (references already rewritten) before it is written.
    /// An `Err` records the document as failed with that reason.
    fn prepare(&self, _collection: &CollectionSpec, _doc: &mut Document) -> Result<(), String> {
        Ok(())
    }
}

/// The handler of every step that needs nothing special.
#[derive(Debug, Clone, Copy, Default)]
pub struct GenericHandler;

impl CloneHandler for GenericHandler {}
