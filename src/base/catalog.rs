//! The catalog every plugin declares, and the checks it must pass before the bot starts.
//!
//! A plugin declares its collections ([`CollectionSpec`]: unique key, guild scope,
//! references, encrypted fields, TTL, whether it is ephemeral), its clone steps and its
//! legacy mappings ([`crate::legacy`]). [`Catalog::new`] refuses an inconsistent catalog:
//! two plugins or collections with one name, a clone step naming a collection it does not
//! own, a durable collection no step copies, or a reference to a collection that is not
//! copied before the one that references it. The migration engine reads only this.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use mongodb::bson::Document;

use crate::legacy::LegacyStepSpec;

/// How a collection's documents belong to a guild.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuildScope {
    /// A `guildId` field. When `nullable`, null means "belongs to no guild" (DM reminders).
    Field {
        /// The field holding the guild id.
        field: &'static str,
        /// Whether null is allowed.
        nullable: bool,
    },
    /// No guild field: a document belongs to the guild of the parent its `via` field names.
    Parent {
        /// The reference field that names the parent.
        via: &'static str,
    },
    /// Not scoped to a guild (bot-wide or per-user settings).
    Global,
}

/// A field that holds the `_id` of a document in another collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reference {
    /// The referencing field.
    pub field: &'static str,
    /// The referenced collection.
    pub collection: &'static str,
    /// Whether the field may be absent or null.
    pub optional: bool,
}

/// A TTL index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ttl {
    /// The date field the TTL index is on.
    pub field: &'static str,
    /// `expireAfterSeconds`.
    pub expire_after_secs: u64,
}

/// Whether the clone copies a collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// Copied by a clone step.
    Durable,
    /// Short-lived state (game boards); never copied.
    Ephemeral,
    /// The bot's own bookkeeping (migration runs); never copied, not part of the 40.
    Internal,
}

/// One collection as its plugin declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionSpec {
    /// Collection name, e.g. `guild_configs`.
    pub name: &'static str,
    /// Model name, e.g. `GuildConfig`.
    pub model: &'static str,
    /// Fields of the unique key besides `_id` (empty: identified by `_id` only).
    pub unique_key: Vec<&'static str>,
    /// Indexes (not unique) for the look-ups its plugin makes by other fields than the
    /// unique key's first ones, each its fields in order.
    pub indexes: Vec<Vec<&'static str>>,
    /// How documents belong to a guild.
    pub scope: GuildScope,
    /// Fields referencing other collections.
    pub references: Vec<Reference>,
    /// Encrypted fields; `a[].b` means field `b` of every element of array `a`.
    pub encrypted: Vec<&'static str>,
    /// TTL index, if any.
    pub ttl: Option<Ttl>,
    /// Whether the clone copies it.
    pub lifetime: Lifetime,
}

impl CollectionSpec {
    /// A durable, guild-scoped (`guildId`) collection identified by `_id` only.
    pub fn new(name: &'static str, model: &'static str) -> Self {
        Self {
            name,
            model,
            unique_key: Vec::new(),
            indexes: Vec::new(),
            scope: GuildScope::Field {
                field: "guildId",
                nullable: false,
            },
            references: Vec::new(),
            encrypted: Vec::new(),
            ttl: None,
            lifetime: Lifetime::Durable,
        }
    }

    /// Sets the unique key.
    pub fn unique(mut self, fields: &[&'static str]) -> Self {
        self.unique_key = fields.to_vec();
        self
    }

    /// Adds an index on `fields` (in order), not unique: a look-up by them then reads what
    /// it finds, not the whole collection.
    pub fn index(mut self, fields: &[&'static str]) -> Self {
        self.indexes.push(fields.to_vec());
        self
    }

    /// Not scoped to a guild.
    pub fn global(mut self) -> Self {
        self.scope = GuildScope::Global;
        self
    }

    /// `guildId` may be null (the document belongs to no guild).
    pub fn nullable_guild(mut self) -> Self {
        self.scope = GuildScope::Field {
            field: "guildId",
            nullable: true,
        };
        self
    }

    /// Belongs to the guild of the parent named by reference field `via`.
    pub fn through_parent(mut self, via: &'static str) -> Self {
        self.scope = GuildScope::Parent { via };
        self
    }

    /// Adds a required reference.
    pub fn references(mut self, field: &'static str, collection: &'static str) -> Self {
        self.references.push(Reference {
            field,
            collection,
            optional: false,
        });
        self
    }

    /// Adds an optional reference (absent or null allowed).
    pub fn optional_reference(mut self, field: &'static str, collection: &'static str) -> Self {
        self.references.push(Reference {
            field,
            collection,
            optional: true,
        });
        self
    }

    /// Declares encrypted fields.
    pub fn encrypted(mut self, paths: &[&'static str]) -> Self {
        self.encrypted = paths.to_vec();
        self
    }

    /// Adds a TTL index.
    pub fn ttl(mut self, field: &'static str, expire_after_secs: u64) -> Self {
        self.ttl = Some(Ttl {
            field,
            expire_after_secs,
        });
        self
    }

    /// Ephemeral: a TTL index and never copied.
    pub fn ephemeral(self, field: &'static str, expire_after_secs: u64) -> Self {
        let mut s = self.ttl(field, expire_after_secs);
        s.lifetime = Lifetime::Ephemeral;
        s
    }

    /// The bot's own bookkeeping; never copied.
    pub fn internal(mut self) -> Self {
        self.lifetime = Lifetime::Internal;
        self.scope = GuildScope::Global;
        self
    }

    /// The reference through which a "through its parent" collection finds its guild.
    pub fn parent_reference(&self) -> Option<&Reference> {
        match self.scope {
            GuildScope::Parent { via } => self.references.iter().find(|r| r.field == via),
            _ => None,
        }
    }
}

/// One clone step as a plugin declares it.
#[derive(Clone)]
pub struct CloneStepSpec {
    /// Position in the clone, 1..=N: set by the [`Catalog`] from the plugins' order and the
    /// references (0 in a declaration).
    pub order: u16,
    /// Human label, e.g. "Core settings".
    pub label: &'static str,
    /// Collections copied by this step, in order.
    pub collections: Vec<&'static str>,
    /// Collections this step reports as deliberately skipped (ephemeral ones).
    pub skipped: Vec<&'static str>,
    /// The handler doing the copy (usually the generic one).
    pub handler: Arc<dyn CloneHandler>,
}

impl std::fmt::Debug for CloneStepSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloneStepSpec")
            .field("order", &self.order)
            .field("label", &self.label)
            .field("collections", &self.collections)
            .finish()
    }
}

impl CloneStepSpec {
    /// A step copying `collections` with the generic handler.
    pub fn new(label: &'static str, collections: &[&'static str]) -> Self {
        Self {
            order: 0,
            label,
            collections: collections.to_vec(),
            skipped: Vec::new(),
            handler: Arc::new(GenericHandler),
        }
    }

    /// Names collections the step reports as skipped (ephemeral).
    pub fn skipping(mut self, collections: &[&'static str]) -> Self {
        self.skipped = collections.to_vec();
        self
    }

    /// Uses a plugin's own handler.
    pub fn with_handler(mut self, handler: Arc<dyn CloneHandler>) -> Self {
        self.handler = handler;
        self
    }
}

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

    /// Whether [`prepare`](Self::prepare) may change a document. A handler that never does
    /// says `false`, and the engine writes the source's bytes as they are (no parse, no
    /// re-encoding) unless it has a reference of its own to rewrite.
    fn adjusts(&self) -> bool {
        true
    }
}

/// The handler of every step that needs nothing special.
#[derive(Debug, Clone, Copy, Default)]
pub struct GenericHandler;

impl CloneHandler for GenericHandler {
    fn adjusts(&self) -> bool {
        false
    }
}

/// What one plugin declares: its name, collections, clone steps and legacy mappings.
#[derive(Debug, Clone)]
pub struct Declared {
    /// The plugin's name.
    pub name: &'static str,
    /// Its collections.
    pub collections: Vec<CollectionSpec>,
    /// Its clone steps.
    pub clone_steps: Vec<CloneStepSpec>,
    /// Its contributions to the legacy steps.
    pub legacy_steps: Vec<LegacyStepSpec>,
}

/// A collection together with the plugin that declared it.
#[derive(Debug, Clone)]
pub struct RegisteredCollection {
    /// The owning plugin.
    pub plugin: &'static str,
    /// The declaration.
    pub spec: CollectionSpec,
}

/// A clone step together with the plugin that declared it.
#[derive(Debug, Clone)]
pub struct RegisteredStep {
    /// The owning plugin.
    pub plugin: &'static str,
    /// The declaration.
    pub spec: CloneStepSpec,
}

/// An inconsistency in the plugin catalog; start-up stops on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    /// Two plugins share a name.
    #[error("two plugins are named {0:?}; plugin names must be unique")]
    DuplicatePlugin(&'static str),
    /// Two declarations of one collection.
    #[error("collection {collection:?} is declared by plugin {first:?} and again by {second:?}")]
    DuplicateCollection {
        /// The collection.
        collection: &'static str,
        /// First declaring plugin.
        first: &'static str,
        /// Second declaring plugin.
        second: &'static str,
    },
    /// Clone steps whose references go round in a circle: no order copies each referenced
    /// collection first.
    #[error("the clone steps {0:?} reference each other in a circle; no order copies every referenced collection first")]
    StepCycle(Vec<&'static str>),
    /// A step names a collection nobody declared.
    #[error("clone step {step:?} names collection {collection:?}, which no plugin declares")]
    UnknownStepCollection {
        /// Step label.
        step: &'static str,
        /// The collection.
        collection: &'static str,
    },
    /// A step copies a collection of another plugin.
    #[error("clone step {step:?} of plugin {plugin:?} copies {collection:?}, which belongs to plugin {owner:?}")]
    StepCollectionNotOwned {
        /// Step label.
        step: &'static str,
        /// Step's plugin.
        plugin: &'static str,
        /// The collection.
        collection: &'static str,
        /// Its owner.
        owner: &'static str,
    },
    /// A collection is copied by two steps.
    #[error("collection {0:?} is copied by more than one clone step")]
    CollectionInTwoSteps(&'static str),
    /// A durable collection no step copies.
    #[error("collection {0:?} is durable but no clone step copies it")]
    CollectionNotCopied(&'static str),
    /// An ephemeral or internal collection in a step's copy list.
    #[error("collection {0:?} is ephemeral or internal and must not be copied by a clone step")]
    NotCopyable(&'static str),
    /// A reference to an unknown collection.
    #[error("{collection}.{field} references {target:?}, which no plugin declares")]
    UnknownReference {
        /// Referencing collection.
        collection: &'static str,
        /// Referencing field.
        field: &'static str,
        /// The missing target.
        target: &'static str,
    },
    /// A reference to a collection copied at or after the referencing one.
    #[error("{collection}.{field} references {target:?}, which is copied in step {target_step}, not before {collection:?} (step {step}); reorder the clone steps")]
    ReferenceNotEarlier {
        /// Referencing collection.
        collection: &'static str,
        /// Referencing field.
        field: &'static str,
        /// Referenced collection.
        target: &'static str,
        /// Step of the referencing collection.
        step: u16,
        /// Step of the referenced collection (0: never copied).
        target_step: u16,
    },
    /// "Through its parent" scope names no reference.
    #[error("collection {collection:?} belongs to its parent through {via:?}, which is not one of its references")]
    ParentWithoutReference {
        /// The collection.
        collection: &'static str,
        /// The named field.
        via: &'static str,
    },
    /// Legacy step numbers do not run 1..=N.
    #[error("legacy import steps must be numbered 1..=N without gaps; found step {0}")]
    LegacyStepGap(u16),
    /// Two contributions to one legacy step disagree on its label or source.
    #[error("the contributions to legacy step {0} disagree on its label or source collection")]
    LegacyStepMismatch(u16),
    /// A unique key on a field list that is not valid.
    #[error("collection {0:?} has an empty collection name or a unique key naming _id")]
    BadCollection(&'static str),
}

/// For each step, the other steps copying a collection it references, as indexes into
/// `steps` (sorted, without repeats).
fn step_dependencies<'a>(
    steps: &[RegisteredStep],
    spec_of: impl Fn(&str) -> Option<&'a CollectionSpec>,
) -> Vec<Vec<usize>> {
    let step_of: HashMap<&str, usize> = steps
        .iter()
        .enumerate()
        .flat_map(|(i, s)| s.spec.collections.iter().map(move |c| (*c, i)))
        .collect();
    steps
        .iter()
        .enumerate()
        .map(|(si, s)| {
            let mut deps: Vec<usize> = s
                .spec
                .collections
                .iter()
                .filter_map(|c| spec_of(c))
                .flat_map(|spec| spec.references.iter())
                .filter_map(|r| step_of.get(r.collection).copied())
                .filter(|&d| d != si)
                .collect();
            deps.sort_unstable();
            deps.dedup();
            deps
        })
        .collect()
}

/// Orders the clone steps: the plugins' order, each plugin's steps as it declares them, a
/// step moved later only as far as its references require (the step copying a referenced
/// collection comes first); then numbers them 1..=N. A cycle of references between steps is
/// refused.
fn derive_order(
    steps: Vec<RegisteredStep>,
    collections: &[RegisteredCollection],
) -> Result<Vec<RegisteredStep>, CatalogError> {
    let spec_of: HashMap<&str, &CollectionSpec> =
        collections.iter().map(|c| (c.spec.name, &c.spec)).collect();
    let deps = step_dependencies(&steps, |c| spec_of.get(c).copied());
    let mut placed = vec![false; steps.len()];
    let mut order = Vec::with_capacity(steps.len());
    while order.len() < steps.len() {
        let next = (0..steps.len()).find(|&i| !placed[i] && deps[i].iter().all(|&d| placed[d]));
        match next {
            Some(i) => {
                placed[i] = true;
                order.push(i);
            }
            None => {
                return Err(CatalogError::StepCycle(
                    (0..steps.len())
                        .filter(|&i| !placed[i])
                        .map(|i| steps[i].spec.label)
                        .collect(),
                ))
            }
        }
    }
    let mut slots: Vec<Option<RegisteredStep>> = steps.into_iter().map(Some).collect();
    Ok(order
        .into_iter()
        .enumerate()
        .map(|(k, i)| {
            let mut s = slots[i].take().expect("each step placed once");
            s.spec.order = (k + 1) as u16;
            s
        })
        .collect())
}

/// The checked catalog of all plugins: collections, clone steps, legacy steps.
pub struct Catalog {
    plugins: Vec<&'static str>,
    collections: Vec<RegisteredCollection>,
    steps: Vec<RegisteredStep>,
    legacy: Vec<(&'static str, LegacyStepSpec)>,
    /// Collection name → index in `collections`.
    index: HashMap<&'static str, usize>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("plugins", &self.plugins)
            .field("collections", &self.collections.len())
            .field("steps", &self.steps.len())
            .finish()
    }
}

impl Catalog {
    /// Checks the plugins' declarations and builds the catalog.
    pub fn new(plugins: Vec<Declared>) -> Result<Self, CatalogError> {
        let mut names = HashSet::new();
        let mut collections: Vec<RegisteredCollection> = Vec::new();
        let mut owner: HashMap<&'static str, &'static str> = HashMap::new();
        let mut steps: Vec<RegisteredStep> = Vec::new();
        let mut legacy: Vec<(&'static str, LegacyStepSpec)> = Vec::new();

        for p in &plugins {
            if !names.insert(p.name) {
                return Err(CatalogError::DuplicatePlugin(p.name));
            }
            for spec in p.collections.iter().cloned() {
                if spec.name.is_empty() || spec.unique_key.contains(&"_id") {
                    return Err(CatalogError::BadCollection(spec.name));
                }
                if let Some(first) = owner.insert(spec.name, p.name) {
                    return Err(CatalogError::DuplicateCollection {
                        collection: spec.name,
                        first,
                        second: p.name,
                    });
                }
                collections.push(RegisteredCollection {
                    plugin: p.name,
                    spec,
                });
            }
            for spec in p.clone_steps.iter().cloned() {
                steps.push(RegisteredStep {
                    plugin: p.name,
                    spec,
                });
            }
            for spec in p.legacy_steps.iter().cloned() {
                legacy.push((p.name, spec));
            }
        }

        // Every step copies collections of its own plugin, each in one step only.
        let mut copied: HashSet<&'static str> = HashSet::new();
        for s in &steps {
            for c in &s.spec.collections {
                let Some(&coll_owner) = owner.get(c) else {
                    return Err(CatalogError::UnknownStepCollection {
                        step: s.spec.label,
                        collection: c,
                    });
                };
                if coll_owner != s.plugin {
                    return Err(CatalogError::StepCollectionNotOwned {
                        step: s.spec.label,
                        plugin: s.plugin,
                        collection: c,
                        owner: coll_owner,
                    });
                }
                if !copied.insert(c) {
                    return Err(CatalogError::CollectionInTwoSteps(c));
                }
            }
        }
        let steps = derive_order(steps, &collections)?;

        // Position of every copied collection: (step order, index within the step).
        let mut position: HashMap<&'static str, (u16, usize)> = HashMap::new();
        for s in &steps {
            for (i, c) in s.spec.collections.iter().enumerate() {
                position.insert(c, (s.spec.order, i));
            }
        }

        for c in &collections {
            let spec = &c.spec;
            match (spec.lifetime, position.get(spec.name)) {
                (Lifetime::Durable, None) => {
                    return Err(CatalogError::CollectionNotCopied(spec.name))
                }
                (Lifetime::Ephemeral | Lifetime::Internal, Some(_)) => {
                    return Err(CatalogError::NotCopyable(spec.name))
                }
                _ => {}
            }
            if let GuildScope::Parent { via } = spec.scope {
                if spec.parent_reference().is_none() {
                    return Err(CatalogError::ParentWithoutReference {
                        collection: spec.name,
                        via,
                    });
                }
            }
            for r in &spec.references {
                if !owner.contains_key(r.collection) {
                    return Err(CatalogError::UnknownReference {
                        collection: spec.name,
                        field: r.field,
                        target: r.collection,
                    });
                }
                if let Some(&here) = position.get(spec.name) {
                    let there = position.get(r.collection).copied();
                    if there.is_none_or(|t| t >= here) {
                        return Err(CatalogError::ReferenceNotEarlier {
                            collection: spec.name,
                            field: r.field,
                            target: r.collection,
                            step: here.0,
                            target_step: there.map_or(0, |t| t.0),
                        });
                    }
                }
            }
        }

        legacy.sort_by_key(|(_, s)| s.order);
        let mut expected = 1;
        for (i, (_, s)) in legacy.iter().enumerate() {
            if i > 0 && legacy[i - 1].1.order == s.order {
                if legacy[i - 1].1.label != s.label || legacy[i - 1].1.source != s.source {
                    return Err(CatalogError::LegacyStepMismatch(s.order));
                }
                continue;
            }
            if s.order != expected {
                return Err(CatalogError::LegacyStepGap(s.order));
            }
            expected += 1;
        }

        let index = collections
            .iter()
            .enumerate()
            .map(|(i, c)| (c.spec.name, i))
            .collect();
        Ok(Self {
            plugins: plugins.iter().map(|p| p.name).collect(),
            collections,
            steps,
            legacy,
            index,
        })
    }

    /// The plugin names, in list order.
    pub fn plugin_names(&self) -> Vec<&'static str> {
        self.plugins.clone()
    }

    /// Every declared collection.
    pub fn collections(&self) -> &[RegisteredCollection] {
        &self.collections
    }

    /// A collection by name.
    pub fn collection(&self, name: &str) -> Option<&CollectionSpec> {
        self.index.get(name).map(|&i| &self.collections[i].spec)
    }

    /// The plugin that declares a collection.
    pub fn owner(&self, name: &str) -> Option<&'static str> {
        self.index.get(name).map(|&i| self.collections[i].plugin)
    }

    /// For each clone step (by index), the steps copying a collection it references: they
    /// must end before it starts.
    pub fn clone_step_dependencies(&self) -> Vec<Vec<usize>> {
        step_dependencies(&self.steps, |c| self.collection(c))
    }

    /// The clone steps in order.
    pub fn clone_steps(&self) -> &[RegisteredStep] {
        &self.steps
    }

    /// Every plugin's legacy step contributions, by step number.
    pub fn legacy_steps(&self) -> impl Iterator<Item = (&'static str, &LegacyStepSpec)> {
        self.legacy.iter().map(|(p, s)| (*p, s))
    }
}
