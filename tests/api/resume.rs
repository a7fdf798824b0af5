//! Resume over `_id`s of many BSON types: a run stopped at every type boundary in turn and
//! resumed each time ends exactly as an uninterrupted run, in both modes.

use std::sync::Arc;

use heimdall_host::migration::clone::{self, CloneOptions, MigrationEnv, Outcome};
use heimdall_host::migration::legacy::engine::{self as legacy, LegacyOptions};
use heimdall_host::migration::runs::{RunRecord, RunStatus};
use heimdall_host::migration::EventKind;
use heimdall_host::migration::FailPoint;
use mongodb::bson::{
    doc, oid::ObjectId, spec::BinarySubtype, Binary, Bson, DateTime, Document, Timestamp,
};
use mongodb::Database;
use tokio_util::sync::CancellationToken;

use crate::clone::{docs, env, opts, Recorder};
use crate::helpers::{fresh_db, mongo_uri};

const GUILD: &str = "123456789012345678";

/// `_id`s of thirteen BSON types, grouped by MongoDB's sort brackets (numbers of three
/// types share one): the runs below stop after each group.
pub fn mixed_ids() -> Vec<Vec<Bson>> {
    vec![
        vec![Bson::MinKey],
        vec![Bson::Null],
        vec![Bson::Int32(5), Bson::Int64(7), Bson::Double(8.5)],
        vec![Bson::String("a-id".into()), Bson::String("b-id".into())],
        vec![Bson::Document(doc! { "legacy": 1, "n": "x" })],
        vec![Bson::Binary(Binary {
            subtype: BinarySubtype::Generic,
            bytes: vec![1, 2, 3],
        })],
        vec![
            Bson::ObjectId(ObjectId::parse_str("5f0000000000000000000001").unwrap()),
            Bson::ObjectId(ObjectId::parse_str("5f0000000000000000000002").unwrap()),
        ],
        vec![Bson::Boolean(false), Bson::Boolean(true)],
        vec![Bson::DateTime(DateTime::from_millis(1_600_000_000_000))],
        vec![Bson::Timestamp(Timestamp {
            time: 1_600_000_000,
            increment: 1,
        })],
        vec![Bson::MaxKey],
    ]
}

fn created() -> DateTime {
    DateTime::from_millis(1_577_836_800_000)
}

/// The index ranges a sync reads the target's other `_id` types with find every `_id` of
/// every type exactly once, under its own bracket (a NaN among the numbers too).
#[tokio::test]
async fn every_id_type_is_found_by_its_brackets_index_ranges() {
    use futures::TryStreamExt;
    use heimdall_host::migration::id_order::{bracket, whole_bracket, BRACKET_COUNT};
    let db = fresh_db("brackets").await;
    let c = db.collection::<Document>("t");
    let mut ids: Vec<Bson> = mixed_ids().into_iter().flatten().collect();
    ids.push(Bson::Double(f64::NAN));
    ids.push(Bson::Double(f64::NEG_INFINITY));
    ids.push(Bson::String(String::new()));
    for id in &ids {
        c.insert_one(doc! { "_id": id.clone() }).await.unwrap();
    }
    let mut found: Vec<(usize, Bson)> = Vec::new();
    for b in 0..BRACKET_COUNT {
        for f in whole_bracket(b) {
            let docs: Vec<Document> = c.find(f).await.unwrap().try_collect().await.unwrap();
            found.extend(docs.into_iter().map(|d| (b, d.get("_id").unwrap().clone())));
        }
    }
    assert_eq!(found.len(), ids.len(), "each once: {found:?}");
    for (b, id) in &found {
        assert_eq!(*b, bracket(id), "{id:?} under its own bracket");
    }
}

/// Runs `first`, then resumes with the next fail point each time, until the run completes.
/// Each attempt stops after one more group of `_id`s.
async fn chain<F>(target: &Database, collection: &str, first: F) -> RunRecord
where
    F: FnOnce(MigrationEnv) -> futures::future::BoxFuture<'static, RunRecord>,
{
    let groups = mixed_ids();
    let mut e = env(target);
    e.fail_point = Some(FailPoint::after(collection, groups[0].len() as u64));
    let mut record = first(e).await;
    for (i, g) in groups.iter().enumerate().skip(1) {
        assert_eq!(
            record.status,
            RunStatus::Cancelled,
            "attempt {i} should have stopped at the fail point: {:?}",
            record.message
        );
        let mut e = env(target);
        // The last attempt runs to the end.
        e.fail_point = (i + 1 < groups.len()).then(|| FailPoint::after(collection, g.len() as u64));
        record = crate::clone::resume_with(&e, &record.id).await;
    }
    assert_eq!(record.status, RunStatus::Completed, "{:?}", record.message);
    assert_eq!(record.attempts as usize, groups.len());
    record
}

#[tokio::test]
async fn clone_resumed_at_every_type_boundary_copies_every_document() {
    let source = fresh_db("mix_src").await;
    let all: Vec<Bson> = mixed_ids().into_iter().flatten().collect();
    let tags: Vec<Document> = all
        .iter()
        .enumerate()
        .map(|(i, id)| {
            doc! { "_id": id.clone(), "guildId": GUILD, "name": format!("tag-{i}"), "content": "c", "authorId": "1", "uses": 0 }
        })
        .collect();
    source
        .collection::<Document>("tags")
        .insert_many(&tags)
        .await
        .unwrap();

    let target = fresh_db("mix_dst").await;
    let src_name = source.name().to_string();
    let record = chain(&target, "tags", move |e| {
        Box::pin(async move {
            let mut o = crate::clone::opts_named(&src_name);
            o.batch_size = 1;
            crate::clone::run(&e, o).await
        })
    })
    .await;
    assert!(
        record.verification.as_ref().unwrap().ok,
        "{:?}",
        record.verification
    );
    assert_eq!(record.failed(), 0);
    let copied = docs(&target, "tags", doc! {}).await;
    assert_eq!(copied.len(), all.len(), "every _id type is in the target");
    assert_eq!(copied, docs(&source, "tags", doc! {}).await);

    // And the same as one uninterrupted run.
    let reference = fresh_db("mix_ref").await;
    crate::clone::run(&env(&reference), opts(&source)).await;
    assert_eq!(copied, docs(&reference, "tags", doc! {}).await);
}

#[tokio::test]
async fn legacy_resumed_at_every_type_boundary_imports_every_record() {
    let source = fresh_db("lmix_src").await;
    source.create_collection("modmail").await.unwrap();
    let all: Vec<Bson> = mixed_ids().into_iter().flatten().collect();
    let tags: Vec<Document> = all
        .iter()
        .enumerate()
        .map(|(i, id)| {
            doc! { "_id": id.clone(), "guildID": GUILD, "name": format!("Tag {i}"), "content": "c", "owner": "111111111111111111", "createdAt": created() }
        })
        .collect();
    source
        .collection::<Document>("tags")
        .insert_many(&tags)
        .await
        .unwrap();
    let lopts = |source: &Database| {
        let mut o = LegacyOptions::new(mongo_uri(), "test");
        o.source_db = Some(source.name().to_string());
        o.batch_size = 1;
        o
    };

    let target = fresh_db("lmix_dst").await;
    let o = lopts(&source);
    let record = chain(&target, "tags", move |e| {
        Box::pin(
            async move { crate::legacy::import_in(&e, o, Arc::new(Recorder::default())).await },
        )
    })
    .await;
    assert!(
        record.verification.as_ref().unwrap().ok,
        "{:?}",
        record.verification
    );
    assert_eq!(record.failed(), 0, "{:?}", record.errors);
    let imported = docs(&target, "tags", doc! {}).await;
    assert_eq!(imported.len(), all.len(), "one tag per legacy record");

    let reference = fresh_db("lmix_ref").await;
    let r = crate::legacy::import_in(
        &env(&reference),
        lopts(&source),
        Arc::new(Recorder::default()),
    )
    .await;
    assert_eq!(r.status, RunStatus::Completed);
    assert_eq!(imported, docs(&reference, "tags", doc! {}).await);
}

/// The durable collections in clone-step order.
pub fn clone_collections() -> Vec<&'static str> {
    let reg = heimdall_host::plugin::Registry::new(heimdall::plugins::all()).unwrap();
    reg.clone_steps()
        .iter()
        .flat_map(|s| s.spec.collections.iter().copied())
        .collect()
}

/// The durable collections in the order a run with options `o` copies them, from the
/// step-start events of an uninterrupted run into a scratch database.
async fn run_order(o: &CloneOptions) -> Vec<&'static str> {
    let scratch = fresh_db("order_dst").await;
    let rec = Arc::new(Recorder::default());
    let out = clone::start(
        &env(&scratch),
        o.clone(),
        rec.clone(),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert!(matches!(out, Outcome::Run(r) if r.status == RunStatus::Completed));
    let reg = heimdall_host::plugin::Registry::new(heimdall::plugins::all()).unwrap();
    let events = rec.0.lock().unwrap();
    events
        .iter()
        .filter(|e| e.kind() == EventKind::StepStart)
        .flat_map(|e| {
            let step = reg.clone_steps().iter().find(|s| s.spec.order == e.step);
            step.expect("a step of the catalog")
                .spec
                .collections
                .iter()
                .copied()
        })
        .collect()
}

#[tokio::test]
async fn a_clone_stopped_in_every_collection_in_turn_ends_as_an_exact_copy() {
    let source = crate::clone::seeded("every_src").await;
    let target = fresh_db("every_dst").await;
    let mut o = opts(&source);
    o.batch_size = 25;
    // One step at a time, so each attempt stops in the next collection of the run's order.
    o.parallelism = 1;
    let order = run_order(&o).await;
    assert_eq!(order.len(), clone_collections().len());
    let mut record: Option<RunRecord> = None;
    let mut stops = 0;
    for c in order {
        if record
            .as_ref()
            .is_some_and(|r| r.status == RunStatus::Completed)
        {
            break;
        }
        let mut e = env(&target);
        e.fail_point = Some(FailPoint::after(c, 1));
        let r = match &record {
            None => crate::clone::run(&e, o.clone()).await,
            Some(prev) => crate::clone::resume_with(&e, &prev.id).await,
        };
        // A collection finished in an earlier attempt (steps run side by side) has no
        // batch left to stop in.
        if r.status == RunStatus::Cancelled {
            stops += 1;
        } else {
            assert_eq!(r.status, RunStatus::Completed, "{:?}", r.message);
        }
        record = Some(r);
    }
    let mut r = record.unwrap();
    if r.status != RunStatus::Completed {
        r = crate::clone::resume_with(&env(&target), &r.id).await;
    }
    assert_eq!(r.status, RunStatus::Completed, "{:?}", r.message);
    assert!(stops >= 20, "only {stops} attempts were stopped");
    assert!(r.verification.as_ref().unwrap().ok);
    crate::clone::assert_same_docs(&source, &target, &clone_collections()).await;
}

#[tokio::test]
async fn a_legacy_import_stopped_in_every_step_matches_an_uninterrupted_one() {
    let source = fresh_db("lev_src").await;
    heimdall::seed::seed_legacy(
        &source,
        &heimdall::seed::SeedOptions::new(crate::helpers::test_key()),
    )
    .await
    .unwrap();
    let lopts = |batch: usize| {
        let mut o = LegacyOptions::new(mongo_uri(), "test");
        o.source_db = Some(source.name().to_string());
        o.batch_size = batch;
        o
    };
    let reference = fresh_db("lev_ref").await;
    let _ = legacy::start(
        &env(&reference),
        lopts(500),
        Arc::new(Recorder::default()),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    let target = fresh_db("lev_dst").await;
    let names = [
        "guildsettings",
        "tags",
        "suggestions",
        "modmail",
        "warnings",
        "reminders",
        "reactionroles",
    ];
    let mut record: Option<RunRecord> = None;
    for c in names {
        let mut e = env(&target);
        e.fail_point = Some(FailPoint::after(c, 1));
        let r = match &record {
            None => crate::legacy::import_in(&e, lopts(3), Arc::new(Recorder::default())).await,
            Some(prev) => crate::clone::resume_with(&e, &prev.id).await,
        };
        assert_eq!(
            r.status,
            RunStatus::Cancelled,
            "stopped in {c}: {:?}",
            r.message
        );
        record = Some(r);
    }
    let r = crate::clone::resume_with(&env(&target), &record.unwrap().id).await;
    assert_eq!(r.status, RunStatus::Completed, "{:?}", r.message);
    assert!(r.verification.as_ref().unwrap().ok, "{:?}", r.verification);
    assert_eq!(r.attempts, 8);
    crate::legacy::assert_imported_alike(&reference, &target, "an uninterrupted import").await;
}

/// Batches are bounded by bytes as well as by count: three documents of 5 MB make two
/// batches, whatever the batch size, and a run stopped after the first one resumes to the
/// same end.
#[tokio::test]
async fn big_documents_come_in_batches_bounded_by_bytes() {
    let source = fresh_db("bytes_src").await;
    let five_mb = "x".repeat(5 * 1024 * 1024);
    let tags: Vec<Document> = (0..3)
        .map(|i| doc! { "_id": i, "guildId": GUILD, "name": format!("big-{i}"), "content": &five_mb, "authorId": "1", "uses": 0 })
        .collect();
    source
        .collection::<Document>("tags")
        .insert_many(&tags)
        .await
        .unwrap();
    let target = fresh_db("bytes_dst").await;
    let mut e = env(&target);
    e.fail_point = Some(FailPoint::after("tags", 1));
    let mut o = crate::clone::opts_named(source.name());
    o.batch_size = 500;
    let first = crate::clone::run(&e, o).await;
    assert_eq!(first.status, RunStatus::Cancelled, "{:?}", first.message);
    let tags_done = first
        .steps
        .iter()
        .flat_map(|s| &s.collections)
        .find(|c| c.name == "tags")
        .unwrap();
    assert_eq!(
        tags_done.processed, 2,
        "the first batch stopped at 8 MB: two 5 MB documents, not all three"
    );
    let done = crate::clone::resume_with(&env(&target), &first.id).await;
    assert!(done.success(), "{:?}", done.message);
    assert_eq!(
        docs(&target, "tags", doc! {}).await,
        docs(&source, "tags", doc! {}).await
    );
}
