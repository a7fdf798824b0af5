// Drives the owners' migration page of the dashboard app in Debian's headless Chromium
// (playwright-core). Started by the Rust integration test `dashboard::...`, which runs the
// bot, a Discord stand-in and seeds the databases; it passes what it needs in the
// environment and reads one JSON line from stdout.
//
//   BASE_URL, CONTROL_URL (POST /as/{user}: who is logged in on "Discord"), OWNER, STRANGER,
//   SOURCE_URI, SOURCE_DB, LEGACY_DB, SCREENSHOT

import { chromium } from "playwright-core";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const base = env("BASE_URL");
const out = { pageErrors: [] };

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});

async function loggedIn(user) {
  await fetch(`${env("CONTROL_URL")}/as/${user}`, { method: "POST" });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.on("pageerror", (e) => out.pageErrors.push(String(e)));
  await page.goto(`${base}/migrations`);
  await page.click("a.button.discord");
  await page.waitForURL(`${base}/`);
  await page.goto(`${base}/migrations`);
  return { context, page };
}

try {
  // A logged-in user who is not an owner is told so, and sees no migration console.
  const stranger = await loggedIn(env("STRANGER"));
  await stranger.page.waitForSelector('[data-testid="not-owner"]');
  out.strangerError = await stranger.page.textContent('[data-testid="not-owner"] .error');
  out.strangerForms = await stranger.page.locator(".migration-form").count();
  await stranger.context.close();

  // The owner: the page goes live over the gateway.
  const { page } = await loggedIn(env("OWNER"));
  await page.waitForSelector('[data-testid="migrations"]');
  await page.waitForSelector('[data-testid="live"][data-status="live"]');

  // Bad input: a database that does not exist. The error says which, and what exists.
  const form = '.migration-form[data-mode="clone"]';
  await page.fill(`${form} [name=source]`, env("SOURCE_URI"));
  await page.fill(`${form} [name=sourceDb]`, "no_such_db_anywhere");
  await page.click(`${form} button[type=submit]`);
  await page.waitForSelector("#form-error");
  out.badDbError = await page.textContent("#form-error");

  // A dry run shows the plan: every clone step, nothing written.
  await page.fill(`${form} [name=sourceDb]`, env("SOURCE_DB"));
  await page.check(`${form} [name=dryRun]`);
  await page.click(`${form} button[type=submit]`);
  await page.waitForSelector("#plan");
  out.planRows = await page.locator("#plan-body tr").count();
  out.planInsert = await page.$$eval("#plan-body tr", (rows) => rows.reduce((a, r) => a + Number(r.dataset.insert), 0));

  // The real run: watch it live until it completes, noting what moved while it ran.
  await page.evaluate(() => {
    window.__seen = { running: false, runningSteps: new Set(), statuses: [], countsWhileRunning: false };
    new MutationObserver(() => {
      const el = document.querySelector("#run-status");
      if (!el) return;
      const s = el.textContent;
      if (window.__seen.statuses.at(-1) !== s) window.__seen.statuses.push(s);
      if (s === "running") window.__seen.running = true;
      for (const tr of document.querySelectorAll("#steps tr[data-status=running]")) {
        window.__seen.runningSteps.add(tr.dataset.step);
        if (Number(tr.dataset.imported) > 0) window.__seen.countsWhileRunning = true;
      }
    }).observe(document.querySelector('[data-testid="migrations"]'), { subtree: true, childList: true, characterData: true, attributes: true });
  });
  // Without "dry run", the plan comes first, with a Confirm button; nothing is written yet.
  await page.uncheck(`${form} [name=dryRun]`);
  await page.click(`${form} button[type=submit]`);
  await page.waitForSelector("#confirm");
  out.confirmPlanInsert = await page.$$eval("#plan-body tr", (rows) => rows.reduce((a, r) => a + Number(r.dataset.insert), 0));
  out.runsBeforeConfirm = await page.evaluate(async () => (await (await fetch("/api/dev/migrations")).json()).length);
  await page.click("#confirm");
  await page.waitForSelector("#run");
  await page.waitForFunction(() => document.querySelector("#run-status")?.textContent === "completed", null, { timeout: 60000 });
  await page.waitForSelector("#result");
  out.runId = await page.textContent("#run-id");
  out.counts = await page.textContent("#run-counts");
  out.verification = await page.textContent("#verification");
  out.stepRows = await page.locator("#steps tr").count();
  out.completedRows = await page.locator("#steps tr[data-status=completed]").count();
  out.barFull = await page.$eval("#run-bar", (b) => b.value === b.max);
  const seen = await page.evaluate(() => ({ ...window.__seen, runningSteps: [...window.__seen.runningSteps] }));
  out.sawRunning = seen.running;
  out.runningSteps = seen.runningSteps.length;
  out.statuses = seen.statuses;
  out.countsWhileRunning = seen.countsWhileRunning;
  // The history row says what the header says.
  const row = `#history tr[data-run="${out.runId}"]`;
  await page.waitForFunction((sel) => document.querySelector(sel)?.dataset.status === "completed", row);
  out.historyRow = await page.$eval(row, (tr) => ({ status: tr.dataset.status, imported: Number(tr.dataset.imported) }));
  out.headerImported = await page.$$eval("#steps tr", (rows) => rows.reduce((a, r) => a + Number(r.dataset.imported), 0));
  await page.screenshot({ path: env("SCREENSHOT"), fullPage: true });

  // After a reload the owner is still logged in, and the run is in the history.
  await page.reload();
  await page.waitForSelector(`${row}`);
  out.historyStatus = await page.$eval(row, (tr) => tr.dataset.status);

  // Undo the run: its plan first (what goes, what comes back), then Confirm, live to the end.
  await page.click(`${row} button`);
  await page.waitForFunction((id) => document.querySelector("#run-id")?.textContent === id, out.runId);
  await page.click("#undo");
  await page.waitForSelector("#undo-plan");
  out.undoPlanRemove = await page.$$eval("#undo-plan-body tr", (rows) => rows.reduce((a, r) => a + Number(r.dataset.remove), 0));
  out.undoPlanRows = await page.locator("#undo-plan-body tr").count();
  out.runsBeforeUndoConfirm = await page.evaluate(async () => (await (await fetch("/api/dev/migrations")).json()).length);
  await page.screenshot({ path: env("SCREENSHOT").replace(/\.png$/, "-undo-plan.png"), fullPage: true });
  await page.click("#confirm-undo");
  await page.waitForFunction((id) => { const r = document.querySelector("#run-id")?.textContent; return r && r !== id; }, out.runId);
  out.undoRunId = await page.textContent("#run-id");
  await page.waitForFunction(() => document.querySelector("#run-status")?.textContent === "completed", null, { timeout: 60000 });
  await page.waitForSelector("#result");
  out.undoCounts = await page.textContent("#run-counts");
  out.undoVerification = await page.textContent("#verification");
  out.undoHeaders = await page.$$eval("#run thead th", (ths) => ths.map((th) => th.textContent));
  out.undoButtonOnUndo = await page.locator("#undo").count();
  await page.screenshot({ path: env("SCREENSHOT").replace(/\.png$/, "-undone.png"), fullPage: true });

  // Legacy Import tab: a dry run of the old bot's database lists its 7 steps.
  await page.click('[role=tab][data-mode="legacy"]');
  const lf = '.migration-form[data-mode="legacy"]';
  await page.fill(`${lf} [name=source]`, env("SOURCE_URI"));
  await page.fill(`${lf} [name=sourceDb]`, env("LEGACY_DB"));
  await page.check(`${lf} [name=dryRun]`);
  await page.click(`${lf} button[type=submit]`);
  await page.waitForSelector("#plan");
  out.legacyPlanRows = await page.locator("#plan-body tr").count();

  // Logging out ends the session on the server.
  await page.click("header button");
  await page.waitForURL(`${base}/login`);
  out.afterSignOut = await page.evaluate(async () => (await fetch("/api/dev/migrations")).status);
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
