//! The owners' migration page in a real browser: Debian's headless Chromium driven by
//! playwright-core (`dashboard/tests/migrations.mjs`), against the bot this test starts and
//! the Discord stand-in it logs in through.

use std::time::Duration;

use heimdall::seed::{seed_legacy, SeedOptions};
use heimdall_host::migration::runs::RunStore;
use serde_json::Value;

use crate::app_browser::control;
use crate::clone::seeded;
use crate::helpers::{fresh_db, mongo_uri, test_key, OWNER_ID};
use crate::login::{app_with_discord, STAFF};

fn dashboard_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboard")
}

/// Runs a browser script; its last stdout line is its JSON report.
pub async fn browser(script: &str, env: &[(&str, String)]) -> Value {
    let dir = dashboard_dir();
    assert!(
        dir.join("node_modules/playwright-core").exists()
            && std::path::Path::new("/usr/bin/chromium").exists(),
        "the browser tests need playwright-core and Debian's chromium: run \
         HEIMDALL_NEED_BROWSER=1 ./scripts/install-deps.sh (./scripts/test.sh does)"
    );
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(dir.join("tests").join(script)).current_dir(&dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(180), cmd.output())
        .await
        .expect("the browser test took over 3 minutes")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("a JSON report")
}

#[tokio::test]
async fn the_migration_page_clones_an_instance_with_live_progress_in_chromium() {
    let (app, discord) = app_with_discord().await;
    let source = seeded("dash_src").await;
    let legacy = fresh_db("dash_legacy").await;
    seed_legacy(&legacy, &SeedOptions::new(test_key()))
        .await
        .unwrap();
    let ctl = control(&app, &discord).await;
    let shot = tempfile::Builder::new().suffix(".png").tempfile().unwrap();
    let report = browser(
        "migrations.mjs",
        &[
            ("BASE_URL", app.address.clone()),
            ("CONTROL_URL", ctl),
            ("OWNER", OWNER_ID.to_string()),
            ("STRANGER", STAFF.to_string()),
            ("SOURCE_URI", mongo_uri()),
            ("SOURCE_DB", source.name().to_string()),
            ("LEGACY_DB", legacy.name().to_string()),
            ("SCREENSHOT", shot.path().display().to_string()),
        ],
    )
    .await;

    // A non-owner is turned away with a reason, and gets no form; bad input gets a clear error.
    assert!(
        report["strangerError"].as_str().unwrap().contains("owners"),
        "{report}"
    );
    assert_eq!(report["strangerForms"], 0);
    let bad = report["badDbError"].as_str().unwrap();
    assert!(bad.contains("no_such_db_anywhere"), "{bad}");

    // The dry run listed all 24 steps and what they would insert.
    let record = RunStore::new(&app.db)
        .get(report["runId"].as_str().unwrap())
        .await
        .unwrap()
        .expect("the page's run is a record");
    assert_eq!(report["planRows"], 24);
    assert_eq!(report["planInsert"].as_u64().unwrap(), record.imported());
    // Starting showed the plan first, with nothing written until Confirm; its counts are what
    // the run then did.
    assert_eq!(report["runsBeforeConfirm"], 0, "{report}");
    assert_eq!(
        report["confirmPlanInsert"].as_u64(),
        Some(record.imported()),
        "{report}"
    );

    // The run was watched live: running, steps running, then completed with every step done.
    assert!(report["sawRunning"].as_bool().unwrap(), "{report}");
    assert!(report["runningSteps"].as_u64().unwrap() >= 1, "{report}");
    assert_eq!(
        report["statuses"].as_array().unwrap().last().unwrap(),
        "completed"
    );
    assert_eq!(report["stepRows"], 24);
    assert_eq!(report["completedRows"], 24);
    assert_eq!(report["barFull"], true, "{report}");
    let counts = report["counts"].as_str().unwrap();
    let grouped = heimdall::plugins::dev::discord::num(record.imported());
    assert!(counts.contains(&format!("imported {grouped}")), "{counts}");
    assert!(report["verification"]
        .as_str()
        .unwrap()
        .starts_with("Verified"));
    // The history row agrees with the run's header and record.
    assert_eq!(report["historyRow"]["status"], "completed");
    assert_eq!(
        report["historyRow"]["imported"].as_u64(),
        Some(record.imported())
    );
    assert_eq!(report["headerImported"].as_u64(), Some(record.imported()));
    assert_eq!(report["historyStatus"], "completed");
    // The undo: its plan named what the run imported, nothing started before Confirm, then
    // it ran to a verified end that the page showed, and the bot's data is gone again.
    assert_eq!(
        report["undoPlanRemove"].as_u64(),
        Some(record.imported()),
        "{report}"
    );
    assert_eq!(report["runsBeforeUndoConfirm"], 1, "{report}");
    let undo_id = report["undoRunId"].as_str().unwrap();
    let undone = RunStore::new(&app.db).require(undo_id).await.unwrap();
    assert_eq!(undone.options.undoes.as_deref(), report["runId"].as_str());
    assert!(undone.success(), "{:?}", undone.message);
    let counts = report["undoCounts"].as_str().unwrap();
    assert!(counts.contains(&format!("removed {grouped}")), "{counts}");
    assert!(report["undoVerification"]
        .as_str()
        .unwrap()
        .contains("back as it was"));
    assert!(report["undoHeaders"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h == "Removed"));
    assert_eq!(report["undoButtonOnUndo"], 0, "an undo cannot be undone");
    let tags = app
        .db
        .collection::<mongodb::bson::Document>("tags")
        .count_documents(mongodb::bson::doc! {})
        .await
        .unwrap();
    assert_eq!(tags, 0);
    assert_eq!(report["legacyPlanRows"], 7);
    assert_eq!(
        report["afterSignOut"], 401,
        "the session still works after logging out"
    );
    assert_eq!(report["pageErrors"], serde_json::json!([]));
    assert!(std::fs::metadata(shot.path()).unwrap().len() > 10_000);
    // `HEIMDALL_KEEP_SCREENSHOTS=DIR` keeps the finished run's page for a look.
    if let Ok(dir) = std::env::var("HEIMDALL_KEEP_SCREENSHOTS") {
        for suffix in ["", "-undo-plan", "-undone"] {
            let from = shot.path().with_file_name(format!(
                "{}{suffix}.png",
                shot.path().file_stem().unwrap().to_string_lossy()
            ));
            std::fs::copy(
                &from,
                std::path::Path::new(&dir).join(format!("migrations{suffix}.png")),
            )
            .unwrap();
        }
    }
}
