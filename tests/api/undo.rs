//! Undo from the journal: the target back as it was before a run, byte for byte, with
//! conflicts kept and listed, for clone and legacy runs, killed and resumed, twice.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::TryStreamExt;
use heimdall_host::migration::clone::MigrationEnv;
use heimdall_host::migration::runs::{RunRecord, RunStatus, RunStore};
use heimdall_host::migration::undo::{self, Outcome, UndoOptions, UndoPlan};
use heimdall_host::migration::{EventKind, FailPoint, MigrationMode};
use mongodb::bson::{doc, oid::ObjectId, Bson, Document, RawDocumentBuf};
use mongodb::Database;
use tokio_util::sync::CancellationToken;

use crate::clone::{env, opts, run, seeded, Recorder};
use crate::helpers::{fresh_db, OutputInTime};

const GUILD: &str = "123456789012345678";

/// Every document of every collection but the migration's own bookkeeping, as raw bytes:
/// "equal" here is byte for byte (field order and number types included).
pub async fn state(db: &Database) -> BTreeMap<String, Vec<Vec<u8>>> {
    let mut out = BTreeMap::new();
    for name in db.list_collection_names().await.unwrap() {
        if name.starts_with("migration_") {
            continue;
        }
        let mut docs: Vec<Vec<u8>> = db
            .collection::<RawDocumentBuf>(&name)
            .find(doc! {})
            .await
            .unwrap()
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.into_bytes())
            .collect();
        docs.sort();
        if !docs.is_empty() {
            out.insert(name, docs);
        }
    }
    out
}

/// Asserts two states are equal, naming the first collection that differs.
fn assert_same_state(a: &BTreeMap<String, Vec<Vec<u8>>>, b: &BTreeMap<String, Vec<Vec<u8>>>) {
    let names: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for n in names {
        let (x, y) = (a.get(n), b.get(n));
        assert!(
            x == y,
            "collection {n} differs: {} documents vs {}",
            x.map_or(0, |v| v.len()),
            y.map_or(0, |v| v.len())
        );
    }
}

/// An undo that must start, to its end.
pub async fn undo_run(e: &MigrationEnv, o: UndoOptions) -> RunRecord {
    match undo::start(
        e,
        o,
        Arc::new(Recorder::default()),
        CancellationToken::new(),
    )
    .await
    .unwrap()
    {
        Outcome::Run(r) => *r,
        Outcome::Plan(_) => panic!("expected a run"),
    }
}

/// The plan of an undo.
pub async fn undo_plan(e: &MigrationEnv, id: &str, force: bool) -> UndoPlan {
    let mut o = UndoOptions::new(id, "test");
    o.dry_run = true;
    o.force = force;
    match undo::start(
        e,
        o,
        Arc::new(Recorder::default()),
        CancellationToken::new(),
    )
    .await
    .unwrap()
    {
        Outcome::Plan(p) => p,
        Outcome::Run(_) => panic!("expected a plan"),
    }
}

fn totals(r: &RunRecord) -> (u64, u64, u64, u64) {
    let sum = |f: fn(&heimdall_host::migration::runs::CollectionResult) -> u64| {
        r.steps.iter().map(|s| s.sum(f)).sum::<u64>()
    };
    (
        sum(|c| c.removed),
        sum(|c| c.restored),
        sum(|c| c.conflicts),
        sum(|c| c.skipped),
    )
}

fn assert_verified(r: &RunRecord) {
    assert_eq!(r.status, RunStatus::Completed, "{:?}", r.message);
    assert!(
        r.verification.as_ref().is_some_and(|v| v.ok && v.undo),
        "{:?}",
        r.verification
    );
}

fn tag(id: impl Into<Bson>, name: &str, content: &str) -> Document {
    doc! { "_id": id.into(), "guildId": GUILD, "name": name, "content": content, "authorId": "1", "uses": 0i32 }
}

#[tokio::test]
async fn undo_of_an_overwrite_gives_the_target_back_byte_for_byte_and_twice_is_nothing() {
    // The target held data before: a first clone, then the community kept using it.
    let (source, target, e, _) = crate::clone::cloned("undo").await;
    let tags = target.collection::<Document>("tags");
    let some: Vec<Document> = crate::clone::docs(&target, "tags", doc! {}).await;
    assert!(some.len() >= 3, "the seed has tags");
    // Edited here (with an Int64 where the source has an Int32: bytes matter), removed here.
    tags.update_one(
        doc! { "_id": some[0].get("_id").unwrap().clone() },
        doc! { "$set": { "content": "edited on the target", "uses": 7i64 } },
    )
    .await
    .unwrap();
    tags.delete_one(doc! { "_id": some[1].get("_id").unwrap().clone() })
        .await
        .unwrap();
    // A huge document on the target that the source's small one will replace, and the
    // other way round; and `_id`s of other types new in the source.
    let huge = "h".repeat(15 * 1024 * 1024);
    tags.insert_one(tag("huge-on-target", "huge-a", &huge))
        .await
        .unwrap();
    let stags = source.collection::<Document>("tags");
    stags
        .insert_many([
            tag("huge-on-target", "huge-a", "small in the source"),
            tag("huge-in-source", "huge-b", &huge),
            tag(42i32, "int-id", "x"),
            tag(doc! { "k": 1 }, "doc-id", "y"),
        ])
        .await
        .unwrap();
    let before = state(&target).await;

    let mut o = opts(&source);
    o.overwrite = true;
    o.batch_size = 7;
    let overwrite = run(&e, o).await;
    assert!(overwrite.success(), "{:?}", overwrite.message);
    assert!(
        overwrite
            .steps
            .iter()
            .map(|s| s.sum(|c| c.overwritten))
            .sum::<u64>()
            > 0
    );
    assert_ne!(
        state(&target).await,
        before,
        "the overwrite changed the target"
    );

    let plan = undo_plan(&e, &overwrite.id, false).await;
    let mut o = UndoOptions::new(&overwrite.id, "test");
    o.batch_size = 5;
    let undone = undo_run(&e, o).await;
    assert_verified(&undone);
    assert_eq!(undone.mode, MigrationMode::Undo);
    assert_eq!(
        undone.options.undoes.as_deref(),
        Some(overwrite.id.as_str())
    );
    assert_same_state(&state(&target).await, &before);
    let (removed, restored, conflicts, _) = totals(&undone);
    assert_eq!(conflicts, 0);
    assert!(
        removed >= 4 && restored > 0,
        "{removed} removed, {restored} restored"
    );
    // The plan said exactly what the undo then did.
    assert_eq!(
        plan.collections.iter().map(|c| c.to_remove).sum::<u64>(),
        removed
    );
    assert_eq!(
        plan.collections.iter().map(|c| c.to_restore).sum::<u64>(),
        restored
    );

    // Twice: nothing more to do, nothing written, still verified.
    let again = undo_run(&e, UndoOptions::new(&overwrite.id, "test")).await;
    assert_verified(&again);
    let (removed, restored, conflicts, already) = totals(&again);
    assert_eq!((removed, restored, conflicts), (0, 0, 0));
    assert!(already > 0);
    assert_same_state(&state(&target).await, &before);

    // The undone run cannot be resumed; an undo cannot be undone.
    let store = RunStore::new(&target);
    assert_eq!(
        store
            .require(&overwrite.id)
            .await
            .unwrap()
            .undone_by
            .as_deref(),
        Some(undone.id.as_str())
    );
    let err = heimdall_host::migration::begin_resume(
        &e,
        &overwrite.id,
        None,
        Arc::new(Recorder::default()),
        CancellationToken::new(),
    )
    .await
    .map(|_| ())
    .expect_err("refused");
    assert!(format!("{err:#}").contains("was undone by"), "{err:#}");
    let err = undo::start(
        &e,
        UndoOptions::new(&undone.id, "test"),
        Arc::new(Recorder::default()),
        CancellationToken::new(),
    )
    .await
    .map(|_| ())
    .expect_err("refused");
    assert!(format!("{err:#}").contains("is itself an undo"), "{err:#}");
}

#[tokio::test]
async fn a_document_changed_since_the_run_is_listed_and_kept_unless_forced() {
    let source = seeded("undoc_src").await;
    let target = fresh_db("undoc_dst").await;
    let e = env(&target);
    let empty = state(&target).await;
    let r = run(&e, opts(&source)).await;
    assert!(r.success(), "{:?}", r.message);
    let tags = target.collection::<Document>("tags");
    let all = crate::clone::docs(&target, "tags", doc! {}).await;
    let edited = all[0].get("_id").unwrap().clone();
    let removed = all[1].get("_id").unwrap().clone();
    tags.update_one(
        doc! { "_id": edited.clone() },
        doc! { "$set": { "content": "edited after the clone", "pinned": true } },
    )
    .await
    .unwrap();
    tags.delete_one(doc! { "_id": removed.clone() })
        .await
        .unwrap();

    let plan = undo_plan(&e, &r.id, false).await;
    assert_eq!(plan.conflict_count, 1);
    assert!(
        plan.conflicts[0].reason.contains("content changed"),
        "{:?}",
        plan.conflicts
    );
    assert!(
        plan.conflicts[0].reason.contains("pinned added"),
        "{:?}",
        plan.conflicts
    );
    assert_eq!(plan.conflicts[0].collection, "tags");

    let undone = undo_run(&e, UndoOptions::new(&r.id, "test")).await;
    assert_verified(&undone);
    let (_, _, conflicts, already) = totals(&undone);
    assert_eq!(conflicts, 1);
    assert!(already >= 1, "the document removed since counts as undone");
    assert_eq!(undone.skip_count, 1);
    assert!(
        undone.skips[0].reason.starts_with("conflict:"),
        "{:?}",
        undone.skips
    );
    // Kept as edited; everything else the clone wrote is gone.
    let left = crate::clone::docs(&target, "tags", doc! {}).await;
    assert_eq!(left.len(), 1);
    assert_eq!(
        left[0].get_str("content").unwrap(),
        "edited after the clone"
    );

    // Forced: the edit goes too, and the target is as it was before the clone.
    let mut o = UndoOptions::new(&r.id, "test");
    o.force = true;
    let forced = undo_run(&e, o).await;
    assert_verified(&forced);
    assert_eq!(forced.forced, 1);
    assert_same_state(&state(&target).await, &empty);
}

#[tokio::test]
async fn an_undo_stopped_midway_resumes_to_the_same_end() {
    let source = seeded("undok_src").await;
    let target = fresh_db("undok_dst").await;
    target
        .collection::<Document>("tags")
        .insert_one(tag(ObjectId::new(), "kept", "was here before"))
        .await
        .unwrap();
    let before = state(&target).await;
    let e = env(&target);
    // Small batches: many journal entries per collection, to stop between.
    let mut o = opts(&source);
    o.batch_size = 20;
    let r = run(&e, o).await;
    assert!(r.success(), "{:?}", r.message);

    let mut stopping = env(&target);
    stopping.fail_point = Some(FailPoint::after("tags", 1));
    let mut o = UndoOptions::new(&r.id, "test");
    o.batch_size = 2;
    let stopped = undo_run(&stopping, o).await;
    assert_eq!(
        stopped.status,
        RunStatus::Cancelled,
        "{:?}",
        stopped.message
    );
    assert!(stopped.message.as_deref().unwrap().contains("resume"));
    assert_ne!(state(&target).await, before, "stopped halfway");

    let recorder = Arc::new(Recorder::default());
    let resumed = heimdall_host::migration::resume(
        &e,
        &stopped.id,
        None,
        recorder.clone(),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_verified(&resumed);
    assert_eq!(resumed.attempts, 2);
    assert_same_state(&state(&target).await, &before);
    let events = recorder.0.lock().unwrap();
    assert!(events.iter().all(|e| e.mode == MigrationMode::Undo));
    assert!(events.iter().any(|e| e.kind == Some(EventKind::Complete)));
}

#[tokio::test]
async fn undo_of_a_one_guild_clone_leaves_other_guilds_alone() {
    let source = seeded("undog_src").await;
    let target = seeded("undog_dst").await;
    // The target is another instance with data of its own, in other guilds and this one.
    target
        .collection::<Document>("tags")
        .insert_one(tag(ObjectId::new(), "local-only", "mine"))
        .await
        .unwrap();
    let before = state(&target).await;
    let e = env(&target);
    let guild = crate::clone::docs(&source, "tags", doc! {}).await[0]
        .get_str("guildId")
        .unwrap()
        .to_string();
    let mut o = opts(&source);
    o.guild = Some(guild);
    o.overwrite = true;
    let r = run(&e, o).await;
    assert_eq!(r.status, RunStatus::Completed, "{:?}", r.message);
    let undone = undo_run(&e, UndoOptions::new(&r.id, "test")).await;
    assert_verified(&undone);
    assert_same_state(&state(&target).await, &before);
}

#[tokio::test]
async fn undo_of_a_legacy_import_removes_what_it_imported() {
    let source = fresh_db("undol_src").await;
    heimdall::seed::seed_legacy(
        &source,
        &heimdall::seed::SeedOptions::new(crate::helpers::test_key()),
    )
    .await
    .unwrap();
    let target = seeded("undol_dst").await;
    let before = state(&target).await;
    let mut o = heimdall_host::migration::legacy::engine::LegacyOptions::new(
        crate::helpers::mongo_uri(),
        "test",
    );
    o.source_db = Some(source.name().to_string());
    let r = crate::legacy::import(&target, o, Arc::new(Recorder::default())).await;
    assert_eq!(r.status, RunStatus::Completed, "{:?}", r.message);
    assert!(r.imported() > 0);
    assert!(!r.journaled.is_empty());
    let e = env(&target);
    let undone = undo_run(&e, UndoOptions::new(&r.id, "test")).await;
    assert_verified(&undone);
    assert_same_state(&state(&target).await, &before);
}

#[tokio::test]
async fn a_pruned_journal_is_dropped_and_its_run_can_no_longer_be_undone() {
    let (_source, target, e, r) = crate::clone::cloned("undop").await;
    // Younger than the age given: kept.
    let kept = undo::prune(&target, std::time::Duration::from_secs(3600))
        .await
        .unwrap();
    assert!(kept.runs.is_empty());
    let pruned = undo::prune(&target, std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(pruned.runs, vec![r.id.clone()]);
    assert!(pruned.entries > 0);
    let left = target
        .collection::<Document>(heimdall_host::migration::journal::JOURNAL)
        .count_documents(doc! {})
        .await
        .unwrap();
    assert_eq!(left, 0);
    let err = undo::start(
        &e,
        UndoOptions::new(&r.id, "test"),
        Arc::new(Recorder::default()),
        CancellationToken::new(),
    )
    .await
    .map(|_| ())
    .expect_err("refused");
    let u = heimdall_host::error::user_error(&err).expect("a user error");
    assert_eq!(u.code, "journal_pruned");
}

#[tokio::test]
async fn a_clone_killed_mid_write_is_undone_by_a_cli_undo_itself_killed_and_resumed() {
    use crate::clone::{cli, cli_clone, wait_for_steps};
    use std::process::Stdio;
    let source = seeded("undocli_src").await;
    let target = fresh_db("undocli_dst").await;
    target
        .collection::<Document>("tags")
        .insert_one(tag("local", "local", "was here before"))
        .await
        .unwrap();
    let before = state(&target).await;

    // A clone killed -9 in the middle of its writes.
    let mut child = cli_clone(cli(&target), &source)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let clone_id = wait_for_steps(&target, 6).await;
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();

    // The plan, as JSON.
    let killed = state(&target).await;
    let out = cli(&target)
        .args(["migrate", "undo", &clone_id, "--dry-run", "--json"])
        .output_in_time();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["undoes"], clone_id.as_str());
    assert_eq!(plan["dryRun"], true);
    assert_same_state(&state(&target).await, &killed);

    // The undo, killed in turn, then resumed.
    let mut child = cli(&target)
        .args(["migrate", "undo", &clone_id, "--batch-size", "3", "--json"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let undo_id = loop {
        let newest = RunStore::new(&target).list(1).await.unwrap();
        if let Some(r) = newest.into_iter().find(|r| r.mode == MigrationMode::Undo) {
            let done = r
                .steps
                .iter()
                .filter(|s| s.status == heimdall_host::migration::runs::StepStatus::Completed)
                .count();
            if done >= 2 {
                break r.id;
            }
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the undo ended before it was killed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    let out = cli(&target)
        .args(["migrate", "resume", &undo_id, "--json"])
        .output_in_time();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["mode"], "undo");
    assert_eq!(v["status"], "completed");
    assert_eq!(v["verification"]["ok"], true);
    assert_same_state(&state(&target).await, &before);

    // Prune drops both journals (the undo keeps none of its own).
    let out = cli(&target)
        .args(["migrate", "prune", "--older-than", "0s", "--json"])
        .output_in_time();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["runs"], serde_json::json!([clone_id]));
}

#[tokio::test]
async fn a_clone_stopped_between_its_journal_and_its_writes_resumes_and_undoes_whole() {
    let source = seeded("jgap_src").await;
    let target = fresh_db("jgap_dst").await;
    let before = state(&target).await;
    // Stopped inside the second batch of tags: its journal entry is written, its tags not.
    let mut stopping = env(&target);
    stopping.fail_point = Some(FailPoint::before_insert("tags", 2));
    let mut o = opts(&source);
    o.batch_size = 5;
    o.parallelism = 1;
    let stopped = run(&stopping, o).await;
    assert_eq!(
        stopped.status,
        RunStatus::Cancelled,
        "{:?}",
        stopped.message
    );
    let tags = |db: &Database| db.collection::<Document>("tags");
    assert_eq!(
        tags(&target).count_documents(doc! {}).await.unwrap(),
        5,
        "the first batch only"
    );

    // The resume writes the same batch, and so the same journal entry, again.
    let e = env(&target);
    let resumed = crate::clone::resume_with(&e, &stopped.id).await;
    assert!(resumed.success(), "{:?}", resumed.message);
    assert_eq!(
        tags(&target).count_documents(doc! {}).await.unwrap(),
        tags(&source).count_documents(doc! {}).await.unwrap()
    );

    // Every document the run wrote is in its journal once: the undo leaves nothing behind.
    let undone = undo_run(&e, UndoOptions::new(&stopped.id, "test")).await;
    assert_verified(&undone);
    assert_same_state(&state(&target).await, &before);
}
