// Drives the dashboard's migration page in Debian's headless Chromium (playwright-core).
// Started by the Rust integration test `dashboard::...`, which runs the bot and seeds the
// databases; it passes what it needs in the environment and reads one JSON line from stdout.
//
//   BASE_URL, OWNER_TOKEN, STRANGER_TOKEN, SOURCE_URI, SOURCE_DB, LEGACY_DB, SCREENSHOT

import { chromium } from "playwright-core";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const base = env("BASE_URL");
const out = {};

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
try {
  const page = await browser.newPage();
  const consoleErrors = [];
  page.on("pageerror", (e) => consoleErrors.push(String(e)));

  await page.goto(`${base}/dev.html`);

  // A signed-in user who is not an owner is told so, and sees no migration console.
  await page.fill("#token", env("STRANGER_TOKEN"));
  await page.click("#sign-in-form button");
  await page.waitForSelector("#sign-in-error:not([hidden])");
  out.strangerError = await page.textContent("#sign-in-error");
  check(await page.isHidden("#console"), "console hidden for a non-owner");

  // The owner signs in; the gateway connects.
  await page.fill("#token", env("OWNER_TOKEN"));
  await page.click("#sign-in-form button");
  await page.waitForSelector("#console:not([hidden])");
  await page.waitForFunction(() => document.querySelector("#gateway").textContent === "live");

  // Bad input: a database that does not exist. The error says which, and what exists.
  const form = "#clone-form";
  await page.fill(`${form} [name=source]`, env("SOURCE_URI"));
  await page.fill(`${form} [name=sourceDb]`, "no_such_db_anywhere");
  await page.click(`${form} button[type=submit]`);
  await page.waitForSelector("#form-error:not([hidden])");
  out.badDbError = await page.textContent("#form-error");

  // A dry run shows the plan: every clone step, nothing written.
  await page.fill(`${form} [name=sourceDb]`, env("SOURCE_DB"));
  await page.check(`${form} [name=dryRun]`);
  await page.click(`${form} button[type=submit]`);
  await page.waitForSelector("#plan:not([hidden])");
  out.planRows = await page.locator("#plan-body tr").count();
  out.planInsert = await page.$$eval("#plan-body tr", (rows) =>
    rows.reduce((a, r) => a + Number(r.children[3].textContent.replace(/,/g, "")), 0));

  // The real run: watch it live until it completes.
  await page.evaluate(() => {
    window.__seen = { running: false, runningSteps: new Set(), statuses: [] };
    new MutationObserver(() => {
      const s = document.querySelector("#run-status").textContent;
      if (window.__seen.statuses.at(-1) !== s) window.__seen.statuses.push(s);
      if (s === "running") window.__seen.running = true;
      for (const tr of document.querySelectorAll("#steps tr[data-status=running]")) {
        window.__seen.runningSteps.add(tr.dataset.step);
      }
    }).observe(document.querySelector("#run"), { subtree: true, childList: true, characterData: true, attributes: true });
  });
  await page.uncheck(`${form} [name=dryRun]`);
  await page.click(`${form} button[type=submit]`);
  await page.waitForSelector("#run:not([hidden])");
  await page.waitForFunction(() => document.querySelector("#run-status").textContent === "completed", null, { timeout: 60000 });
  await page.waitForSelector("#result:not([hidden])");
  out.runId = await page.textContent("#run-id");
  out.counts = await page.textContent("#run-counts");
  out.verification = await page.textContent("#verification");
  out.stepRows = await page.locator("#steps tr").count();
  out.completedRows = await page.locator("#steps tr[data-status=completed]").count();
  const seen = await page.evaluate(() => ({ ...window.__seen, runningSteps: [...window.__seen.runningSteps] }));
  out.sawRunning = seen.running;
  out.runningSteps = seen.runningSteps.length;
  out.statuses = seen.statuses;
  await page.screenshot({ path: env("SCREENSHOT"), fullPage: true });

  // After a reload the owner is still signed in, and the run is in the history.
  await page.reload();
  await page.waitForSelector(`#history tr[data-run="${out.runId}"]`);
  out.historyStatus = await page.textContent(`#history tr[data-run="${out.runId}"] td:nth-child(3)`);

  // Legacy Import tab: a dry run of the old bot's database lists its 7 steps.
  await page.click("#tab-legacy");
  const lf = "#legacy-form";
  await page.fill(`${lf} [name=source]`, env("SOURCE_URI"));
  await page.fill(`${lf} [name=sourceDb]`, env("LEGACY_DB"));
  await page.check(`${lf} [name=dryRun]`);
  await page.click(`${lf} button[type=submit]`);
  await page.waitForSelector("#plan:not([hidden])");
  out.legacyPlanRows = await page.locator("#plan-body tr").count();

  // Signing out ends the session on the server: the old token no longer opens the API.
  const oldToken = await page.evaluate(() => localStorage.getItem("heimdall.token"));
  await page.click("#sign-out");
  await page.waitForSelector("#sign-in:not([hidden])");
  out.afterSignOut = await page.evaluate(async (t) =>
    (await fetch("/api/dev/migrations", { headers: { Authorization: `Bearer ${t}` } })).status, oldToken);

  out.pageErrors = consoleErrors;
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
