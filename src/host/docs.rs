//! Documentation generated from the plugins' catalog, so that it stays true:
//! `heimdall docs` prints `docs/data-model.md` (a test compares the two).

use std::fmt::Write as _;

use crate::migration::legacy::LegacySource;
use crate::plugin::{GuildScope, Lifetime, Registry};

/// The data model: every collection with its key, guild scope, references, encrypted fields
/// and TTL; the clone steps in order; the legacy import steps.
pub fn data_model(reg: &Registry) -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "# Data model\n");
    let _ = writeln!(
        w,
        "Generated from the plugins' catalog by `heimdall docs` (a test fails when this file and the catalog differ: regenerate it with `cargo run -q -- docs > docs/data-model.md`). Each plugin declares its collections in its own folder under `plugins/`.\n"
    );
    let _ = writeln!(w, "## Collections\n");
    let _ = writeln!(
        w,
        "*Unique key*: besides `_id`, what identifies a document (a clone and an import skip a document whose key exists). *Guild*: the field naming the guild a document belongs to, or the parent it belongs through. *Copied*: durable collections are copied by a clone step; ephemeral ones (short-lived state) and internal ones (the bot's bookkeeping) never are.\n"
    );
    let _ = writeln!(
        w,
        "| plugin | collection | model | unique key | guild | references | encrypted | TTL | copied |"
    );
    let _ = writeln!(w, "|---|---|---|---|---|---|---|---|---|");
    for c in reg.collections() {
        let s = &c.spec;
        let key = if s.unique_key.is_empty() {
            "`_id`".to_string()
        } else {
            s.unique_key
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let guild = match s.scope {
            GuildScope::Field { field, nullable } => {
                format!("`{field}`{}", if nullable { " (may be null)" } else { "" })
            }
            GuildScope::Parent { via } => format!("through `{via}`"),
            GuildScope::Global => "—".into(),
        };
        let refs = if s.references.is_empty() {
            "—".to_string()
        } else {
            s.references
                .iter()
                .map(|r| {
                    format!(
                        "`{}` → `{}`{}",
                        r.field,
                        r.collection,
                        if r.optional { " (optional)" } else { "" }
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let enc = if s.encrypted.is_empty() {
            "—".to_string()
        } else {
            s.encrypted
                .iter()
                .map(|e| format!("`{e}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let ttl = s
            .ttl
            .map(|t| format!("`{}` {} s", t.field, t.expire_after_secs))
            .unwrap_or_else(|| "—".into());
        let copied = match s.lifetime {
            Lifetime::Durable => reg
                .clone_steps()
                .iter()
                .find(|st| st.spec.collections.contains(&s.name))
                .map(|st| format!("step {}", st.spec.order))
                .unwrap_or_default(),
            Lifetime::Ephemeral => "no (ephemeral)".into(),
            Lifetime::Internal => "no (internal)".into(),
        };
        let _ = writeln!(
            w,
            "| {} | `{}` | {} | {key} | {guild} | {refs} | {enc} | {ttl} | {copied} |",
            c.plugin, s.name, s.model
        );
    }
    let _ = writeln!(w, "\n## Instance Clone steps\n");
    let _ = writeln!(
        w,
        "The order is derived, not numbered by hand: the plugins in the binary's order, each plugin's steps as it declares them, a step moved later only as far as its references require (a referenced collection is copied first). Steps whose references are copied run side by side.\n"
    );
    let _ = writeln!(w, "| step | label | plugin | copies | not copied |");
    let _ = writeln!(w, "|---|---|---|---|---|");
    for st in reg.clone_steps() {
        let list = |v: &[&str]| {
            if v.is_empty() {
                "—".to_string()
            } else {
                v.iter()
                    .map(|c| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {} |",
            st.spec.order,
            st.spec.label,
            st.plugin,
            list(&st.spec.collections),
            list(&st.spec.skipped)
        );
    }
    let _ = writeln!(w, "\n## Legacy Import steps\n");
    let _ = writeln!(
        w,
        "Each step reads one collection of the old bot's database, in `_id` order, and hands every record to the mappers of the plugins that contribute to it. The old bot's format is described in [legacy-format.md](legacy-format.md).\n"
    );
    let _ = writeln!(w, "| step | label | reads | plugins |");
    let _ = writeln!(w, "|---|---|---|---|");
    let mut steps: Vec<(u16, &str, String, Vec<&str>)> = Vec::new();
    for (plugin, s) in reg.legacy_steps() {
        match steps.iter_mut().find(|x| x.0 == s.order) {
            Some(x) => x.3.push(plugin),
            None => steps.push((
                s.order,
                s.label,
                match s.source {
                    LegacySource::Collection(c) => format!("`{c}`"),
                    LegacySource::Modmail { default } => format!(
                        "the collection the owner names (`--modmail-collection`, default `{default}`)"
                    ),
                },
                vec![plugin],
            )),
        }
    }
    steps.sort_by_key(|s| s.0);
    for (order, label, source, plugins) in steps {
        let _ = writeln!(
            w,
            "| {order} | {label} | {source} | {} |",
            plugins.join(", ")
        );
    }
    out
}
