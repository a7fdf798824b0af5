//! Progress bars on stderr for the command line, and the end-of-run summary table.

use std::collections::HashMap;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use heimdall_host::migration::runs::RunRecord;
use heimdall_host::migration::{clock, EventKind, ProgressEvent, ProgressSink};

/// Draws an overall bar and one bar per active step (hidden when stderr is not a terminal).
pub struct TerminalSink {
    multi: MultiProgress,
    overall: ProgressBar,
    steps: Mutex<HashMap<u16, ProgressBar>>,
}

impl Default for TerminalSink {
    fn default() -> Self {
        Self::new()
    }
}

impl TerminalSink {
    /// Bars on stderr.
    pub fn new() -> Self {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let overall = multi.add(ProgressBar::new(0));
        overall.set_style(
            ProgressStyle::with_template(
                "{prefix:>12} [{bar:30.cyan/blue}] {pos}/{len} steps {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        overall.set_prefix("overall");
        Self {
            multi,
            overall,
            steps: Mutex::new(HashMap::new()),
        }
    }
}

impl ProgressSink for TerminalSink {
    fn emit(&self, e: &ProgressEvent) {
        self.overall.set_length(u64::from(e.total));
        self.overall.set_position(u64::from(e.completed));
        let mut steps = self.steps.lock().expect("bars");
        match e.kind() {
            EventKind::StepStart => {
                let bar = self.multi.add(ProgressBar::new(0));
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix:>12} [{bar:30.green/white}] {pos}/{len} {per_sec} eta {eta} {msg}",
                    )
                    .expect("valid template")
                    .progress_chars("=> "),
                );
                bar.set_prefix(format!("step {}", e.step));
                bar.set_message(e.label.clone());
                steps.insert(e.step, bar);
            }
            EventKind::StepProgress => {
                if let Some(bar) = steps.get(&e.step) {
                    bar.set_length(e.record_total.unwrap_or(0));
                    bar.set_position(e.record_index.unwrap_or(0));
                    bar.set_message(e.label.clone());
                }
                if let Some(p) = e.run_pace.filter(|p| p.per_second > 0.0) {
                    self.overall.set_message(format!(
                        "· {} documents/s · about {} left",
                        p.per_second.round(),
                        p.eta_ms.map(clock).unwrap_or_else(|| "–".into())
                    ));
                }
            }
            EventKind::Stalled => {
                // Said on the step's bar until it moves again.
                if let Some(bar) = steps.get(&e.step) {
                    bar.set_message(format!(
                        "{} — no progress for a while: is the source or this database answering?",
                        e.label
                    ));
                }
                let at = e
                    .collection
                    .as_ref()
                    .map(|c| format!(", collection {c}"))
                    .unwrap_or_default();
                self.multi
                    .println(format!(
                        "warning: step {} ({}{at}) has made no progress for a while; it goes on when the databases answer (Ctrl-C cancels; `heimdall migrate resume` continues later)",
                        e.step, e.label
                    ))
                    .ok();
            }
            EventKind::StepComplete => {
                if let Some(bar) = steps.remove(&e.step) {
                    bar.set_length(e.record_total.unwrap_or(0));
                    bar.set_position(e.record_index.unwrap_or(0));
                    bar.finish_and_clear();
                }
                self.overall.set_message(format!("· {} done", e.label));
            }
            EventKind::Following => {
                let lag = e.lag_ms.unwrap_or(0);
                self.overall.set_message(format!(
                    "· following the source: lag {}.{} s · {} changes applied (Ctrl-C: catch up, verify, stop)",
                    lag / 1000,
                    lag % 1000 / 100,
                    e.record_index.unwrap_or(0)
                ));
            }
            EventKind::Complete | EventKind::Error => {
                for (_, b) in steps.drain() {
                    b.finish_and_clear();
                }
                self.overall.finish_and_clear();
            }
        }
    }
}

/// One table row: step, label, collection, then six counts.
fn row(
    out: &mut String,
    order: &dyn std::fmt::Display,
    label: &str,
    name: &str,
    n: [&dyn std::fmt::Display; 6],
) {
    out.push_str(&format!(
        "{:>4}  {:<24} {:<30} {:>9} {:>9} {:>9} {:>8} {:>8} {:>8}\n",
        order.to_string(),
        label,
        name,
        n[0].to_string(),
        n[1].to_string(),
        n[2].to_string(),
        n[3].to_string(),
        n[4].to_string(),
        n[5].to_string()
    ));
}

/// The rows of collections a step does not copy.
fn not_copied(
    out: &mut String,
    order: u16,
    label: &str,
    skipped: &[heimdall_host::migration::runs::SkippedCollection],
) {
    for sk in skipped {
        out.push_str(&format!(
            "{:>4}  {:<24} {:<30} not copied: {}\n",
            order, label, sk.name, sk.reason
        ));
    }
}

/// The table printed for a clone's dry run.
pub fn plan_summary(plan: &heimdall_host::migration::clone::Plan) -> String {
    let mut out = format!("dry run against {} — nothing was written\n", plan.source);
    row(
        &mut out,
        &"step",
        "label",
        "collection",
        [
            &"found",
            &"insert",
            &"skip",
            &"remap",
            &"invalid",
            &"dangling",
        ],
    );
    for s in &plan.steps {
        for c in &s.collections {
            row(
                &mut out,
                &s.order,
                &s.label,
                &c.name,
                [
                    &c.found,
                    &(c.to_insert + c.to_overwrite),
                    &c.to_skip,
                    &c.to_remap,
                    &c.invalid,
                    &c.dangling,
                ],
            );
        }
        not_copied(&mut out, s.order, &s.label, &s.skipped_collections);
    }
    for e in plan.errors.iter().take(20) {
        out.push_str(&format!(
            "  would fail: {} {}: {}\n",
            e.collection, e.source_id, e.reason
        ));
    }
    for w in &plan.warnings {
        out.push_str(&format!("  warning: {w}\n"));
    }
    out
}

/// The plan of an undo: what it would remove, put back and leave.
pub fn undo_plan_summary(plan: &heimdall_host::migration::undo::UndoPlan) -> String {
    let mut out = format!(
        "undo of run {} ({}), dry run — nothing was written\n",
        plan.undoes,
        plan.undoes_mode.as_str()
    );
    row(
        &mut out,
        &"step",
        "plugin",
        "collection",
        [
            &"entries",
            &"remove",
            &"restore",
            &"as before",
            &"conflict",
            &"",
        ],
    );
    for (i, c) in plan.collections.iter().enumerate() {
        row(
            &mut out,
            &(i + 1),
            &c.plugin,
            &c.name,
            [
                &c.entries,
                &c.to_remove,
                &c.to_restore,
                &c.already_undone,
                &c.conflicts,
                &"",
            ],
        );
    }
    for e in plan.conflicts.iter().take(20) {
        out.push_str(&format!(
            "  conflict: {} {}: {}\n",
            e.collection, e.source_id, e.reason
        ));
    }
    if plan.conflict_count > 20 {
        out.push_str(&format!(
            "  … and {} more conflicts\n",
            plan.conflict_count - 20
        ));
    }
    if plan.conflict_count > 0 && !plan.force {
        out.push_str(
            "  conflicts are left as they are; --force undoes them too (their changes are lost)\n",
        );
    }
    out
}

/// The summary of an undo run.
fn undo_summary(record: &RunRecord) -> String {
    let mut out = String::new();
    row(
        &mut out,
        &"step",
        "label",
        "collection",
        [
            &"entries",
            &"removed",
            &"restored",
            &"as before",
            &"conflict",
            &"failed",
        ],
    );
    let mut totals = [0u64; 4];
    for s in &record.steps {
        for c in &s.collections {
            totals[0] += c.removed;
            totals[1] += c.restored;
            totals[2] += c.skipped;
            totals[3] += c.conflicts;
            row(
                &mut out,
                &s.order,
                &s.label,
                &c.name,
                [
                    &c.total,
                    &c.removed,
                    &c.restored,
                    &c.skipped,
                    &c.conflicts,
                    &c.failed,
                ],
            );
        }
    }
    out.push_str(&format!(
        "\nundo {} of run {} {}: removed {}, restored {}, already as before {}, conflicts {}{}\n",
        record.id,
        record.options.undoes.as_deref().unwrap_or("?"),
        record.status.as_str(),
        totals[0],
        totals[1],
        totals[2],
        totals[3],
        if record.forced > 0 {
            format!(" ({} undone anyway, --force)", record.forced)
        } else {
            String::new()
        }
    ));
    for k in record.skips.iter().take(20) {
        out.push_str(&format!(
            "  kept: {} {}: {}\n",
            k.collection, k.source_id, k.reason
        ));
    }
    for e in record.errors.iter().take(20) {
        out.push_str(&format!(
            "  error: {} {}: {}\n",
            e.collection, e.source_id, e.reason
        ));
    }
    if let Some(m) = &record.message {
        out.push_str(&format!("  {m}\n"));
    }
    if let Some(v) = &record.verification {
        out.push_str(&format!(
            "verification: {}\n",
            if v.ok {
                "ok — every document the run wrote is back as it was (conflicts aside)"
            } else {
                "FAILED — some documents are still as the run left them; resume the undo"
            }
        ));
    }
    out
}

/// The summary table printed at the end of a run.
pub fn summary(record: &RunRecord) -> String {
    if record.mode == heimdall_host::migration::MigrationMode::Undo {
        return undo_summary(record);
    }
    let mut out = String::new();
    row(
        &mut out,
        &"step",
        "label",
        "collection",
        [
            &"found",
            &"imported",
            &"skipped",
            &"remapped",
            &"failed",
            &"dangling",
        ],
    );
    for s in &record.steps {
        for c in &s.collections {
            row(
                &mut out,
                &s.order,
                &s.label,
                &c.name,
                [
                    &c.total,
                    &(c.inserted + c.overwritten),
                    &c.skipped,
                    &c.remapped,
                    &c.failed,
                    &c.dangling,
                ],
            );
        }
        not_copied(&mut out, s.order, &s.label, &s.skipped_collections);
    }
    out.push_str(&format!(
        "\nrun {} {}: imported {}, skipped {}, failed {} ({} errors)\n",
        record.id,
        record.status.as_str(),
        record.imported(),
        record.skipped(),
        record.failed(),
        record.error_count
    ));
    for e in record.errors.iter().take(20) {
        out.push_str(&format!(
            "  error: step {} {} {}: {}\n",
            e.step, e.collection, e.source_id, e.reason
        ));
    }
    if record.error_count > 20 {
        out.push_str(&format!(
            "  … and {} more (heimdall migrate status {} --json)\n",
            record.error_count - 20,
            record.id
        ));
    }
    for k in record.skips.iter().take(20) {
        out.push_str(&format!(
            "  skipped: step {} {} {}: {}\n",
            k.step, k.collection, k.source_id, k.reason
        ));
    }
    if record.skips.len() > 20 {
        out.push_str(&format!(
            "  … and {} more skipped records (heimdall migrate status {} --json)\n",
            record.skips.len() - 20,
            record.id
        ));
    }
    for w in &record.warnings {
        out.push_str(&format!("  warning: {w}\n"));
    }
    if let Some(m) = &record.message {
        out.push_str(&format!("  {m}\n"));
    }
    if let Some(v) = &record.verification {
        out.push_str(&format!(
            "verification: {}\n",
            if v.ok {
                "ok — every selected source document is in the target"
            } else {
                "FAILED — the target does not hold everything; resume the run to copy what is missing"
            }
        ));
        for c in v
            .collections
            .iter()
            .filter(|c| c.missing > 0 || c.differing > 0)
        {
            out.push_str(&format!(
                "  step {} {}: {} missing, {} differing of {}{}\n",
                c.step,
                c.name,
                c.missing,
                c.differing,
                c.source,
                if c.first_missing.is_empty() {
                    String::new()
                } else {
                    format!(" (first: {})", c.first_missing.join(", "))
                }
            ));
        }
    }
    out
}
