//! A migration's promise against what no seeder produces: documents removed from the target
//! behind the run's back, the target reached under another name, a resume pointed at other
//! data, a process paused past its lease, and a thousand failures with huge `_id`s.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use heimdall_host::migration::clone::{self, Outcome};
use heimdall_host::migration::legacy::engine::{self as legacy, LegacyOptions};
use heimdall_host::migration::runs::{RunRecord, RunStatus, RunStore, StepStatus};
use heimdall_host::migration::FailPoint;
use heimdall_host::plugin::Registry;
use mongodb::bson::{doc, oid::ObjectId, Document};
use mongodb::Database;
use tokio_util::sync::CancellationToken;

use crate::clone::{
    assert_same_docs, cli, cli_clone, docs, env, opts, run, seeded, snapshot, wait_for_steps,
    Recorder,
};
use crate::helpers::{fresh_db, mongo_uri, spawn_app, test_key, AUTH_SECRET, OWNER_ID};

async fn resume(target: &Database, id: &str) -> RunRecord {
    crate::clone::resume_with(&env(target), id).await
}

fn durable() -> Vec<&'static str> {
    crate::clone::durable(&Registry::new(heimdall::plugins::all()).unwrap())
}

#[tokio::test]
async fn verification_sees_documents_removed_behind_the_runs_back() {
    let source = seeded("vsrc").await;
    let target = fresh_db("vdst").await;
    // Stop inside the modmail messages: steps that ended before are copied, others not yet.
    let mut e = env(&target);
    e.fail_point = Some(FailPoint::after("modmail_messages", 1));
    let mut o = opts(&source);
    o.batch_size = 50;
    let r = run(&e, o).await;
    assert_eq!(r.status, RunStatus::Cancelled);
    // Someone deletes copied documents from the target meanwhile: three of a collection
    // the stopped run had copied whole.
    let (step, name) = r
        .steps
        .iter()
        .flat_map(|s| s.collections.iter().map(move |c| (s, c)))
        .find(|(s, c)| s.status == StepStatus::Completed && c.inserted >= 3)
        .map(|(s, c)| (s.order, c.name.clone()))
        .expect("a step copied before the stop");
    let gone: Vec<Document> = docs(&target, &name, doc! {})
        .await
        .into_iter()
        .take(3)
        .collect();
    assert_eq!(gone.len(), 3);
    for d in &gone {
        target
            .collection::<Document>(&name)
            .delete_one(doc! { "_id": d.get("_id").unwrap().clone() })
            .await
            .unwrap();
    }
    let r = resume(&target, &r.id).await;
    // The run's own counts say everything was copied; the independent check says not.
    assert_eq!(r.failed(), 0);
    assert_eq!(r.status, RunStatus::Failed, "{:?}", r.message);
    let v = r.verification.as_ref().unwrap();
    assert!(!v.ok);
    let gc = v.collections.iter().find(|c| c.name == name).unwrap();
    assert_eq!(gc.missing, 3, "{gc:?}");
    assert_eq!(gc.step, step);
    let first = gone[0].get_object_id("_id").unwrap().to_hex();
    assert!(gc.first_missing.contains(&first), "{:?}", gc.first_missing);
    let message = r.message.clone().unwrap();
    assert!(
        message.contains(name.as_str()) && message.contains("3 of") && message.contains("resume"),
        "{message}"
    );
    assert_eq!(r.to_json()["success"], false);

    // A resume copies what is missing, and then the check passes.
    let r = resume(&target, &r.id).await;
    assert_eq!(r.status, RunStatus::Completed, "{:?}", r.message);
    assert!(r.verification.as_ref().unwrap().ok);
    assert_eq!(r.to_json()["success"], true);
    assert_same_docs(&source, &target, &durable()).await;
}

#[tokio::test]
async fn verification_sees_documents_whose_contents_trade_places() {
    // After such a swap the target still holds as many documents with the same contents;
    // only each `_id` with its own content tells it from the source.
    let source = seeded("swsrc").await;
    let target = fresh_db("swdst").await;
    let last = *crate::resume::clone_collections().last().unwrap();
    let mut e = env(&target);
    e.fail_point = Some(FailPoint::after(last, 1));
    let mut o = opts(&source);
    o.batch_size = 25;
    // One step at a time: the modmail messages (among the most work, copied early) are
    // copied when the last collection in the catalog stops.
    o.parallelism = 1;
    let r = run(&e, o).await;
    assert_eq!(r.status, RunStatus::Cancelled, "{:?}", r.message);
    let messages = target.collection::<Document>("modmail_messages");
    let copied = docs(&target, "modmail_messages", doc! {}).await;
    let (a, b) = (copied[0].clone(), copied[1].clone());
    let content = |d: &Document| {
        let mut d = d.clone();
        d.remove("_id");
        d
    };
    assert_ne!(content(&a), content(&b));
    let mut a_as_b = content(&b);
    a_as_b.insert("_id", a.get("_id").unwrap().clone());
    let mut b_as_a = content(&a);
    b_as_a.insert("_id", b.get("_id").unwrap().clone());
    for d in [a_as_b, b_as_a] {
        let id = d.get("_id").unwrap().clone();
        messages.replace_one(doc! { "_id": id }, d).await.unwrap();
    }
    let r = resume(&target, &r.id).await;
    assert_eq!(r.status, RunStatus::Failed, "{:?}", r.message);
    let v = r.verification.as_ref().unwrap();
    let mm = v
        .collections
        .iter()
        .find(|c| c.name == "modmail_messages")
        .unwrap();
    assert!(!mm.ok, "{mm:?}");
    assert_eq!((mm.differing, mm.missing), (2, 0), "{mm:?}");
    assert!(r.message.clone().unwrap().contains("modmail_messages"));
}

#[tokio::test]
async fn legacy_verification_sees_records_removed_behind_the_runs_back() {
    let source = crate::legacy::legacy_db("lvsrc").await;
    let target = fresh_db("lvdst").await;
    let o = crate::legacy::opts(&source);
    let r = crate::legacy::import_in(&env(&target), o, Arc::new(Recorder::default())).await;
    assert_eq!(r.status, RunStatus::Completed, "{:?}", r.message);
    assert!(r.verification.as_ref().unwrap().ok, "{:?}", r.verification);
    // Cancelled runs resume; here the owner's completed run is checked by making the
    // shortfall visible through a second run over a damaged target.
    let before = docs(&target, "tags", doc! {}).await;
    let victim = before[0].clone();
    target
        .collection::<Document>("tags")
        .delete_one(doc! { "_id": victim.get("_id").unwrap().clone() })
        .await
        .unwrap();
    // A new import puts it back (it is missing, so it is imported) and verifies.
    let o = crate::legacy::opts(&source);
    let mut e = env(&target);
    // Stop right after the tags step's first batch: the deleted tag is re-imported in it.
    e.fail_point = Some(FailPoint::after("tags", 1));
    let r2 = crate::legacy::import_in(&e, o, Arc::new(Recorder::default())).await;
    assert_eq!(r2.status, RunStatus::Cancelled);
    // Behind its back, another tag goes.
    let victim2 = docs(&target, "tags", doc! {}).await[1].clone();
    target
        .collection::<Document>("tags")
        .delete_one(doc! { "_id": victim2.get("_id").unwrap().clone() })
        .await
        .unwrap();
    let r3 = resume(&target, &r2.id).await;
    assert_eq!(r3.status, RunStatus::Failed, "{:?}", r3.message);
    let v = r3.verification.as_ref().unwrap();
    let tags = v.collections.iter().find(|c| c.name == "tags").unwrap();
    assert_eq!(tags.missing, 1, "{tags:?}");
    assert_eq!(r3.to_json()["success"], false);
    let r4 = resume(&target, &r2.id).await;
    assert_eq!(r4.status, RunStatus::Completed, "{:?}", r4.message);
    assert!(r4.verification.as_ref().unwrap().ok);
    assert_eq!(docs(&target, "tags", doc! {}).await, before);
}

/// A legacy import of the seeded old-bot database (databases named from `prefix`), with
/// `fail_point`. The target and the run.
async fn legacy_seeded_with(prefix: &str, fail_point: FailPoint) -> (Database, RunRecord) {
    let source = crate::legacy::legacy_db(&format!("{prefix}src")).await;
    let target = fresh_db(&format!("{prefix}dst")).await;
    let mut e = env(&target);
    e.fail_point = Some(fail_point);
    let o = crate::legacy::opts(&source);
    let r = crate::legacy::import_in(&e, o, Arc::new(Recorder::default())).await;
    (target, r)
}

/// [`legacy_seeded_with`] whose first tag record gets `field` changed in the source once
/// the tags step is imported and before it is verified (an old bot still running).
async fn legacy_with_a_tag_changed_meanwhile(prefix: &str, field: &'static str) -> RunRecord {
    legacy_seeded_with(prefix, FailPoint::source_change("tags", field))
        .await
        .1
}

/// The import took a tag as it was; the old bot changed its content before the
/// verification read it again: the tag differs from what the record now says, and the run
/// is not verified (the import's own mapping of the records is not taken for the
/// source's).
#[tokio::test]
async fn legacy_verification_sees_a_record_changed_in_the_source_meanwhile() {
    let r = legacy_with_a_tag_changed_meanwhile("lsc", "content").await;
    assert_eq!(r.status, RunStatus::Failed, "{:?}", r.message);
    let v = r.verification.as_ref().expect("verified");
    let tags = v.collections.iter().find(|c| c.name == "tags").unwrap();
    assert_eq!(tags.differing, 1, "{tags:?}");
    assert!(!tags.ok, "{tags:?}");
    for c in v.collections.iter().filter(|c| c.name != "tags") {
        assert!(c.ok, "{c:?}");
    }
}

/// The same with a field no mapper reads: the target still holds what every record maps
/// to, and the run is verified (checked record by record, as the records read again are
/// not byte for byte the ones imported).
#[tokio::test]
async fn legacy_verification_passes_a_source_change_no_mapper_reads() {
    let r = legacy_with_a_tag_changed_meanwhile("lsu", "editedMeanwhile").await;
    assert_eq!(r.status, RunStatus::Completed, "{:?}", r.message);
    let v = r.verification.as_ref().expect("verified");
    assert!(v.ok, "{v:?}");
    let tags = v.collections.iter().find(|c| c.name == "tags").unwrap();
    assert_eq!(tags.differing, 0, "{tags:?}");
    assert_eq!(tags.matching, tags.found, "{tags:?}");
}

/// A legacy import of the seeded old-bot database (databases named from `prefix`) stopped
/// after modmail's (step 4) first batch: tags (step 2) are in. The target and the run.
async fn legacy_stopped_in_modmail(prefix: &str) -> (Database, RunRecord) {
    let (target, r) = legacy_seeded_with(prefix, FailPoint::after("modmail", 1)).await;
    assert_eq!(r.status, RunStatus::Cancelled, "{:?}", r.message);
    (target, r)
}

/// Content changed in the target between a run's import and its verification (a staff
/// member editing a tag, a message's attachment list rewritten) is counted as differing,
/// read from what the target holds, nested lists included; the run is not verified.
#[tokio::test]
async fn legacy_verification_sees_content_changed_behind_the_runs_back() {
    let (target, r) = legacy_stopped_in_modmail("lc").await;
    let tag = docs(&target, "tags", doc! {}).await[0].clone();
    target
        .collection::<Document>("tags")
        .update_one(
            doc! { "_id": tag.get("_id").unwrap().clone() },
            doc! { "$set": { "content": "changed by staff after the import" } },
        )
        .await
        .unwrap();
    let message = docs(
        &target,
        "modmail_messages",
        doc! { "attachments.0": { "$exists": true } },
    )
    .await
    .into_iter()
    .next()
    .expect("an imported message with attachments");
    target
        .collection::<Document>("modmail_messages")
        .update_one(
            doc! { "_id": message.get("_id").unwrap().clone() },
            doc! { "$set": { "attachments.0": "https://elsewhere.example/x.png" } },
        )
        .await
        .unwrap();
    let r2 = resume(&target, &r.id).await;
    let v = r2.verification.as_ref().expect("verified");
    for name in ["tags", "modmail"] {
        let c = v.collections.iter().find(|c| c.name == name).unwrap();
        assert_eq!(c.differing, 1, "{c:?}");
        assert_eq!(c.matching + c.differing, c.found, "{c:?}");
        assert_ne!(c.source_digest, c.target_digest, "{c:?}");
    }
    let modmail = v.collections.iter().find(|c| c.name == "modmail").unwrap();
    assert!(!modmail.ok, "{modmail:?}");
    assert_eq!(r2.status, RunStatus::Failed, "{:?}", r2.message);
}

/// A tag the import wrote, put back by someone else under a new `_id` with the same content
/// (as a restore from an export would): the run's documents no longer add up to the
/// source's, though every count and every content does; the tag is reported missing.
#[tokio::test]
async fn legacy_verification_sees_a_document_moved_to_another_id() {
    let (target, r) = legacy_stopped_in_modmail("li").await;
    let tags = target.collection::<Document>("tags");
    let mut tag = docs(&target, "tags", doc! {}).await[0].clone();
    let old_id = tag.get("_id").unwrap().clone();
    tags.delete_one(doc! { "_id": old_id.clone() })
        .await
        .unwrap();
    tag.insert("_id", mongodb::bson::oid::ObjectId::new());
    tags.insert_one(&tag).await.unwrap();
    let before = tags.count_documents(doc! {}).await.unwrap();

    let r2 = resume(&target, &r.id).await;
    assert_eq!(r2.status, RunStatus::Failed, "{:?}", r2.message);
    let v = r2.verification.as_ref().expect("verified");
    let t = v.collections.iter().find(|c| c.name == "tags").unwrap();
    assert_eq!(t.missing, 1, "{t:?}");
    assert!(!t.ok, "{t:?}");
    // Only the tags are in question: every other step adds up.
    for c in v.collections.iter().filter(|c| c.name != "tags") {
        assert!(c.ok, "{c:?}");
    }
    // The resume wrote no second copy of it.
    assert_eq!(tags.count_documents(doc! {}).await.unwrap(), before);
}

/// The test server's connection string naming database `db`.
fn uri_with_db(db: &str) -> String {
    let uri = mongo_uri();
    match uri.split_once("/?") {
        Some((a, q)) => format!("{a}/{db}?{q}"),
        None => format!("{}/{db}", uri.trim_end_matches('/')),
    }
}

/// The port of the test server.
fn port() -> u16 {
    let uri = mongo_uri();
    let hostport = uri
        .trim_start_matches("mongodb://")
        .split('/')
        .next()
        .unwrap();
    hostport.rsplit(':').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn the_target_is_refused_under_every_alias() {
    let target = seeded("alias").await;
    let before = snapshot(&target).await;
    let p = port();
    let mut aliases = vec![
        format!("mongodb://127.0.0.1:{p}"),
        format!("mongodb://localhost:{p}"),
        format!("mongodb://127.1:{p}/?directConnection=true"),
        format!("mongodb://0.0.0.0:{p}/?directConnection=true"),
        format!("mongodb://[::ffff:127.0.0.1]:{p}"),
        format!("mongodb://LOCALHOST:{p}/?appName=other"),
        format!("mongodb://127.0.0.1:{p},localhost:{p}/?connectTimeoutMS=5000"),
        format!("mongodb://127.0.0.1:{p}/{}", target.name()),
    ];
    if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        if std::net::ToSocketAddrs::to_socket_addrs(&(h.trim(), p))
            .is_ok_and(|mut a| a.any(|a| a.ip().is_loopback()))
        {
            aliases.push(format!("mongodb://{}:{p}", h.trim()));
        }
    }
    if std::env::var("MONGODB_TEST_URI").is_ok() {
        aliases.truncate(1);
    }
    for uri in aliases {
        let mut o = clone::CloneOptions::new(uri.clone(), "test");
        o.source_db = Some(target.name().to_string());
        o.overwrite = true;
        let err = clone::start(
            &env(&target),
            o,
            Arc::new(Recorder::default()),
            CancellationToken::new(),
        )
        .await
        .err()
        .unwrap_or_else(|| panic!("{uri} was not refused"));
        let u = heimdall_host::error::user_error(&err).unwrap_or_else(|| panic!("{uri}: {err:#}"));
        assert_eq!(u.code, "source_is_target", "{uri}: {}", u.message);
        let mut lo = LegacyOptions::new(uri.clone(), "test");
        lo.source_db = Some(target.name().to_string());
        let err = legacy::start(
            &env(&target),
            lo,
            Arc::new(Recorder::default()),
            CancellationToken::new(),
        )
        .await
        .err()
        .unwrap_or_else(|| panic!("legacy: {uri} was not refused"));
        let u = heimdall_host::error::user_error(&err).unwrap();
        assert_eq!(u.code, "source_is_target", "legacy {uri}: {}", u.message);
    }
    assert_eq!(snapshot(&target).await, before, "nothing was written");
}

#[tokio::test]
async fn resume_against_another_source_is_refused_unless_forced() {
    let source = seeded("rsrc").await;
    let other = seeded("rother").await;
    let target = fresh_db("rdst").await;
    let mut e = env(&target);
    e.fail_point = Some(FailPoint::after("tags", 1));
    // The database named in the connection string, as an owner would.
    let mut o = clone::CloneOptions::new(uri_with_db(source.name()), "test");
    o.batch_size = 10;
    let r = run(&e, o).await;
    assert_eq!(r.status, RunStatus::Cancelled);
    let other_uri = uri_with_db(other.name());
    let err = heimdall_host::migration::resume(
        &env(&target),
        &r.id,
        Some(other_uri.clone()),
        Arc::new(Recorder::default()),
        CancellationToken::new(),
    )
    .await
    .unwrap_err();
    let u = heimdall_host::error::user_error(&err).unwrap();
    assert_eq!(u.code, "source_changed");
    assert!(
        u.message.contains(source.name()) && u.message.contains(other.name()),
        "names both: {}",
        u.message
    );
    // The same name, dropped and seeded again, is another data set too.
    let again = crate::helpers::client().await.database(source.name());
    again.drop().await.unwrap();
    heimdall::seed::seed_instance(&again, &heimdall::seed::SeedOptions::new(test_key()))
        .await
        .unwrap();
    let err = heimdall_host::migration::resume(
        &env(&target),
        &r.id,
        None,
        Arc::new(Recorder::default()),
        CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert_eq!(
        heimdall_host::error::user_error(&err).unwrap().code,
        "source_changed"
    );
    assert_eq!(
        RunStore::new(&target).require(&r.id).await.unwrap().status,
        RunStatus::Cancelled,
        "a refused resume changes nothing"
    );
    // Forced: it goes on, and the record says so.
    let forced = heimdall_host::migration::begin_resume_with(
        &env(&target),
        &r.id,
        Some(other_uri),
        true,
        Arc::new(Recorder::default()),
        CancellationToken::new(),
    )
    .await
    .unwrap()
    .run()
    .await
    .unwrap();
    assert!(
        forced
            .warnings
            .iter()
            .any(|w| w.contains("forced") && w.contains(other.name())),
        "{:?}",
        forced.warnings
    );
    assert!(forced.options.source.contains(other.name()));
}

#[tokio::test]
async fn a_process_paused_past_its_lease_stops_and_writes_nothing_more() {
    let source = seeded("psrc").await;
    let target = fresh_db("pdst").await;
    let mut cmd = cli(&target);
    cmd.env("HEIMDALL_MIGRATION_LEASE_SECS", "2");
    let child = cli_clone(cmd, &source)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let store = RunStore::new(&target);
    let run_id = wait_for_steps(&target, 4).await;
    let pid = child.id() as i32;
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    // Past the lease: another process may take the run over.
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let mut e = env(&target);
    e.lease_ttl = Duration::from_secs(2);
    let pending = heimdall_host::migration::begin_resume(
        &e,
        &run_id,
        None,
        Arc::new(Recorder::default()),
        CancellationToken::new(),
    )
    .await
    .expect("the paused process's lease expired: the run can be taken over");
    // The paused process wakes up while the new holder works.
    let waker = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid, libc::SIGCONT) };
        child.wait_with_output().unwrap()
    });
    let record = pending.run().await.unwrap();
    let out = waker.join().unwrap();
    assert_eq!(record.status, RunStatus::Completed, "{:?}", record.message);
    assert!(record.verification.as_ref().unwrap().ok);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("lost the lease"), "{stderr}");
    // The old process wrote nothing after waking: the record is the new holder's.
    let after = store.require(&run_id).await.unwrap();
    assert_eq!(after, record);
    assert!(after.message.is_none());
    assert_same_docs(&source, &target, &durable()).await;
}

#[tokio::test]
async fn a_thousand_failures_with_huge_ids_keep_the_record_small() {
    let source = fresh_db("hsrc").await;
    // A valid tag so the source looks like Heimdall's, then tags without a name (they fail)
    // whose `_id`s are long strings: 1,000 of 16 KB and four of 3 MB.
    let tags = source.collection::<Document>("tags");
    tags.insert_one(doc! { "_id": ObjectId::new(), "guildId": "123456789012345678", "name": "ok", "content": "c", "authorId": "1" })
        .await
        .unwrap();
    let mut bad: Vec<Document> = (0..1000)
        .map(|i| doc! { "_id": format!("{i:05}{}", "x".repeat(16_000)), "guildId": "123456789012345678", "content": "no name" })
        .collect();
    for i in 0..4 {
        bad.push(doc! { "_id": format!("!big{i}{}", "y".repeat(3_000_000)), "guildId": "123456789012345678", "content": "no name" });
    }
    for chunk in bad.chunks(200) {
        tags.insert_many(chunk).await.unwrap();
    }
    let app = spawn_app().await;
    let e = heimdall::plugins::dev::migration_env(&app.data);
    let r = run(&e, opts(&source)).await;
    assert_eq!(r.status, RunStatus::Completed, "{:?}", r.message);
    assert_eq!(r.failed(), 1004);
    assert_eq!(r.error_count, 1004);
    assert!(r.verification.as_ref().unwrap().ok, "{:?}", r.verification);
    let raw = app
        .db
        .collection::<Document>("migration_runs")
        .find_one(doc! { "_id": &r.id })
        .await
        .unwrap()
        .unwrap();
    let size = mongodb::bson::to_vec(&raw).unwrap().len();
    assert!(size < 2 * 1024 * 1024, "the run record is {size} bytes");
    assert!(r.errors.iter().all(|e| e.source_id.len() < 400));
    let big = r
        .errors
        .iter()
        .find(|e| e.source_id.starts_with("!big0"))
        .expect("the 3 MB _id is listed, shortened");
    assert!(big.source_id.contains("sha256"), "{}", big.source_id);
    assert_eq!(big.id_digest.len(), 32);

    // Every failure, page by page, through the API.
    let auth = format!(
        "Bearer {}",
        heimdall_host::auth::mint(
            AUTH_SECRET,
            OWNER_ID.parse().unwrap(),
            Duration::from_secs(600)
        )
    );
    let mut seen = std::collections::HashSet::new();
    let mut after: Option<String> = None;
    loop {
        let mut url = format!(
            "{}/api/dev/migrations/{}/failures?kind=error&limit=300",
            app.address, r.id
        );
        if let Some(a) = &after {
            url.push_str(&format!("&after={}", urlencode(a)));
        }
        let resp = app
            .http
            .get(url)
            .header("Authorization", &auth)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let v: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(v["total"], 1004);
        for item in v["items"].as_array().unwrap() {
            assert!(seen.insert(item["idDigest"].as_str().unwrap().to_string()));
            assert!(item["reason"].as_str().unwrap().contains("name"));
        }
        match v["next"].as_str() {
            Some(n) => after = Some(n.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 1004);
    let resp = app
        .http
        .get(format!(
            "{}/api/dev/migrations/{}/failures?kind=nope",
            app.address, r.id
        ))
        .header("Authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Stops the source server when the run reaches step `step`.
struct KillAt {
    step: u16,
    server: std::sync::Mutex<Option<heimdall_host::embedded::EmbeddedServer>>,
}

impl heimdall_host::migration::ProgressSink for KillAt {
    fn emit(&self, e: &heimdall_host::migration::ProgressEvent) {
        if e.step == self.step {
            if let Some(s) = self.server.lock().unwrap().take() {
                drop(s);
            }
        }
    }
}

/// A server of the test's own (one it may pause or stop), its data under `dir`; and its
/// options, to start it again.
fn own_server(
    dir: &std::path::Path,
) -> (
    heimdall_host::embedded::EmbeddedServer,
    heimdall_host::embedded::ServerOptions,
) {
    let mut so = heimdall_host::embedded::ServerOptions::new(dir.join("db"));
    so.cache_size = "256M".into();
    (heimdall_host::embedded::start(&so).unwrap(), so)
}

/// Sends `SIGCONT` to a paused process when dropped (a failing test leaves no server paused).
struct Resumes(i32);

impl Drop for Resumes {
    fn drop(&mut self) {
        // SAFETY: signalling a server this test started.
        unsafe { libc::kill(self.0, libc::SIGCONT) };
    }
}

/// Every command-line run ends by closing its MongoDB clients; a server that stops
/// answering right then (paused, cut off) must not keep the command from ending.
#[tokio::test]
async fn closing_a_client_ends_in_time_when_its_server_stops_answering() {
    if std::env::var("MONGODB_TEST_URI").is_ok() {
        return; // needs a server of its own to pause
    }
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = own_server(dir.path());
    let client = heimdall_host::db::connect(&server.uri, Duration::from_secs(10))
        .await
        .unwrap();
    // A pooled connection and a session for the close to end on the server.
    client
        .database("closing")
        .collection::<Document>("c")
        .insert_one(doc! { "a": 1 })
        .await
        .unwrap();
    let pid = server.pid as i32;
    // SAFETY: signalling a server this test started.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let _resumes = Resumes(pid);
    let start = std::time::Instant::now();
    heimdall_host::db::close(client).await;
    let took = start.elapsed();
    let limit = heimdall_host::db::CLOSE_WITHIN + Duration::from_secs(3);
    assert!(
        took < limit,
        "closing took {took:?} with the server paused (at most {limit:?})"
    );
}

#[tokio::test]
async fn a_source_that_dies_mid_run_fails_in_plain_words_and_resumes() {
    if std::env::var("MONGODB_TEST_URI").is_ok() {
        return; // needs a second local server it can stop
    }
    let dir = tempfile::tempdir().unwrap();
    let (server, mut so) = own_server(dir.path());
    let uri = server.uri.clone();
    let port: u16 = uri
        .trim_start_matches("mongodb://")
        .split('/')
        .next()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let client = heimdall_host::db::connect(&uri, Duration::from_secs(10))
        .await
        .unwrap();
    let src = client.database("dying");
    heimdall::seed::seed_instance(&src, &heimdall::seed::SeedOptions::new(test_key()))
        .await
        .unwrap();
    let target = fresh_db("ddst").await;
    let mut o = clone::CloneOptions::new(uri.clone(), "test");
    o.source_db = Some("dying".into());
    o.batch_size = 20;
    o.parallelism = 1;
    let sink = Arc::new(KillAt {
        step: 5,
        server: std::sync::Mutex::new(Some(server)),
    });
    let r = match clone::start(&env(&target), o, sink, CancellationToken::new())
        .await
        .unwrap()
    {
        Outcome::Run(r) => *r,
        Outcome::Plan(_) => panic!(),
    };
    assert_eq!(r.status, RunStatus::Failed);
    let m = r.message.clone().unwrap();
    assert!(
        m.contains("stopped answering") && m.contains("heimdall migrate resume"),
        "{m}"
    );
    assert!(
        !m.contains("Kind:") && !m.contains("topology"),
        "no driver dump: {m}"
    );
    // The source comes back on the same port; the resume finishes the copy.
    so.port = port;
    let _server = heimdall_host::embedded::start(&so).unwrap();
    let r = resume(&target, &r.id).await;
    assert_eq!(r.status, RunStatus::Completed, "{:?}", r.message);
    assert!(r.verification.as_ref().unwrap().ok);
    let client = heimdall_host::db::connect(&uri, Duration::from_secs(10))
        .await
        .unwrap();
    let src = client.database("dying");
    assert_same_docs(&src, &target, &durable()).await;
}

/// A TCP relay to the test server that a test can freeze: while `paused`, bytes wait.
struct Relay {
    uri: String,
    paused: Arc<std::sync::atomic::AtomicBool>,
}

/// Copies `from` to `to`, holding each chunk while `paused`.
async fn pipe(
    mut from: impl tokio::io::AsyncRead + Unpin,
    mut to: impl tokio::io::AsyncWrite + Unpin,
    paused: Arc<std::sync::atomic::AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while paused.load(std::sync::atomic::Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

async fn relay() -> Relay {
    let upstream: String = mongo_uri()
        .trim_start_matches("mongodb://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let paused = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let p = paused.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                continue;
            };
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::spawn(pipe(cr, sw, p.clone()));
            tokio::spawn(pipe(sr, cw, p.clone()));
        }
    });
    Relay {
        uri: format!("mongodb://127.0.0.1:{port}/?directConnection=true"),
        paused,
    }
}

/// Freezes the relay when step `at` starts and thaws it when the stall is reported.
struct FreezeAt {
    at: u16,
    paused: Arc<std::sync::atomic::AtomicBool>,
    events: std::sync::Mutex<Vec<heimdall_host::migration::ProgressEvent>>,
}

impl heimdall_host::migration::ProgressSink for FreezeAt {
    fn emit(&self, e: &heimdall_host::migration::ProgressEvent) {
        use heimdall_host::migration::EventKind;
        use std::sync::atomic::Ordering;
        match e.kind() {
            EventKind::StepStart if e.step == self.at => self.paused.store(true, Ordering::SeqCst),
            EventKind::Stalled => self.paused.store(false, Ordering::SeqCst),
            _ => {}
        }
        self.events.lock().unwrap().push(e.clone());
    }
}

#[tokio::test]
async fn a_source_that_stops_answering_mid_run_is_reported_as_stalled_until_it_moves() {
    use heimdall_host::migration::EventKind;
    let source = seeded("stallsrc").await;
    let target = fresh_db("stalldst").await;
    let relay = relay().await;
    let mut e = env(&target);
    e.stall_after = Duration::from_secs(1);
    let mut o = clone::CloneOptions::new(relay.uri.clone(), "test");
    o.source_db = Some(source.name().to_string());
    o.batch_size = 20;
    o.parallelism = 1;
    let sink = Arc::new(FreezeAt {
        at: 10,
        paused: relay.paused.clone(),
        events: std::sync::Mutex::new(Vec::new()),
    });
    let started = std::time::SystemTime::now();
    let r = match clone::start(&e, o, sink.clone(), CancellationToken::new())
        .await
        .unwrap()
    {
        Outcome::Run(r) => *r,
        Outcome::Plan(_) => panic!("not a dry run"),
    };
    assert_eq!(r.status, RunStatus::Completed, "{:?}", r.message);
    assert!(r.verification.as_ref().unwrap().ok);
    let events = sink.events.lock().unwrap().clone();
    let stalls: Vec<_> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.kind() == EventKind::Stalled)
        .collect();
    assert_eq!(stalls.len(), 1, "one stall, reported once");
    let (at, stall) = stalls[0];
    assert_eq!((stall.step, stall.label.as_str()), (10, "Infractions"));
    assert!(
        matches!(
            stall.collection.as_deref(),
            Some("infractions" | "mod_notes")
        ),
        "the stall names the collection: {:?}",
        stall.collection
    );
    let since = stall.stalled_since.expect("since when");
    let began = started
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!(since >= began, "{since} {began}");
    // It moved again: progress of the same step came after the stall.
    assert!(
        events[at + 1..]
            .iter()
            .any(|e| e.step == 10 && e.kind() != EventKind::Stalled),
        "no progress after the stall"
    );
}

/// Pauses a server (`SIGSTOP`) when the run reaches step `step`.
struct PauseAt {
    step: u16,
    pid: i32,
    paused: std::sync::atomic::AtomicBool,
}

impl heimdall_host::migration::ProgressSink for PauseAt {
    fn emit(&self, e: &heimdall_host::migration::ProgressEvent) {
        use std::sync::atomic::Ordering;
        if e.step == self.step && !self.paused.swap(true, Ordering::SeqCst) {
            // SAFETY: signalling a server this test started.
            unsafe { libc::kill(self.pid, libc::SIGSTOP) };
        }
    }
}

/// A server of the test's own to pause: its client, the server and the guard that resumes
/// it (a failing test leaves no server paused).
async fn pausable(
    dir: &std::path::Path,
) -> (
    mongodb::Client,
    heimdall_host::embedded::EmbeddedServer,
    Resumes,
) {
    let (server, _) = own_server(dir);
    let client = heimdall_host::db::connect(&server.uri, Duration::from_secs(10))
        .await
        .unwrap();
    let resumes = Resumes(server.pid as i32);
    (client, server, resumes)
}

/// A clone, one step at a time in batches of 20, that pauses server `pid` at step 5; it must
/// end within a minute (`what` stopped answering).
async fn clone_pausing(
    e: &heimdall_host::migration::clone::MigrationEnv,
    mut o: clone::CloneOptions,
    pid: i32,
    what: &str,
) -> anyhow::Result<Outcome> {
    o.batch_size = 20;
    o.parallelism = 1;
    let sink = Arc::new(PauseAt {
        step: 5,
        pid,
        paused: Default::default(),
    });
    tokio::time::timeout(
        Duration::from_secs(60),
        clone::start(e, o, sink, CancellationToken::new()),
    )
    .await
    .unwrap_or_else(|_| panic!("the run still waits on {what} that stopped answering"))
}

/// Resumes server `pid`, then run `run_id`: it must finish a verified copy.
async fn resumed_verifies(
    e: &heimdall_host::migration::clone::MigrationEnv,
    pid: i32,
    run_id: &str,
    source: &Database,
) {
    // SAFETY: signalling a server this test started.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    let r = crate::clone::resume_with(e, run_id).await;
    assert_eq!(r.status, RunStatus::Completed, "{:?}", r.message);
    assert!(r.verification.as_ref().unwrap().ok);
    assert_same_docs(source, &e.target, &durable()).await;
}

/// The bot's own database stops answering mid-run (paused; the driver has no socket
/// timeout): the run must not wait for ever. Its lease cannot be renewed, so it stops,
/// says so in plain words, and once the database answers again it resumes to a verified
/// copy.
#[tokio::test]
async fn a_run_whose_database_stops_answering_ends_in_time_and_resumes() {
    if std::env::var("MONGODB_TEST_URI").is_ok() {
        return; // needs a server of its own to pause
    }
    let source = seeded("tpsrc").await;
    let dir = tempfile::tempdir().unwrap();
    let (client, server, _resumes) = pausable(dir.path()).await;
    let target = client.database("paused_target");
    let mut e = env(&target);
    e.target_uri = server.uri.clone();
    e.lease_ttl = Duration::from_secs(2);
    let pid = server.pid as i32;
    let Err(err) = clone_pausing(&e, opts(&source), pid, "a database").await else {
        panic!("the run went on although its database was paused");
    };
    let m = err.to_string();
    assert!(
        m.contains("stopped answering") && m.contains("heimdall migrate resume"),
        "{m}"
    );
    // SAFETY: signalling a server this test started.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    let run_id = RunStore::new(&target)
        .list(1)
        .await
        .unwrap()
        .into_iter()
        .next()
        .expect("the run's record")
        .id;
    assert!(m.contains(&run_id), "{m}");
    resumed_verifies(&e, pid, &run_id, &source).await;
}

/// The source stops answering mid-run (paused): calls in flight to it would be waited for
/// for ever. The run stops within the read wait, its record says why and how to go on, and
/// once the source answers again the resume finishes a verified copy.
#[tokio::test]
async fn a_run_whose_source_stops_answering_fails_in_plain_words_and_resumes() {
    if std::env::var("MONGODB_TEST_URI").is_ok() {
        return; // needs a server of its own to pause
    }
    let dir = tempfile::tempdir().unwrap();
    let (client, server, _resumes) = pausable(dir.path()).await;
    let source = client.database("paused_source");
    heimdall::seed::seed_instance(&source, &heimdall::seed::SeedOptions::new(test_key()))
        .await
        .unwrap();
    let target = fresh_db("spdst").await;
    let mut e = env(&target);
    e.read_wait = Duration::from_secs(2);
    let mut o = clone::CloneOptions::new(server.uri.clone(), "test");
    o.source_db = Some(source.name().into());
    let pid = server.pid as i32;
    let r = match clone_pausing(&e, o, pid, "a source").await.unwrap() {
        Outcome::Run(r) => *r,
        Outcome::Plan(_) => panic!("not a dry run"),
    };
    assert_eq!(r.status, RunStatus::Failed);
    let m = r.message.clone().unwrap();
    assert!(
        m.contains("source")
            && m.contains("did not answer within 2 s")
            && m.contains(&format!("heimdall migrate resume {}", r.id)),
        "{m}"
    );
    resumed_verifies(&e, pid, &r.id, &source).await;
}
