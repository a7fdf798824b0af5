// Drives the dashboard app in Debian's headless Chromium (playwright-core). Started by the
// Rust integration test `app_browser::...`, which runs the bot and a Discord stand-in; it
// passes what it needs in the environment and reads one JSON line from stdout.
//
//   BASE_URL, CONTROL_URL (who is logged in on "Discord"; /warn and /tag through the
//   commands' logic), STAFF, MEMBER, ALPHA, BETA, SHOTS (a folder for screenshots)

import { chromium } from "playwright-core";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const base = env("BASE_URL");
const control = env("CONTROL_URL");
const [alpha, beta] = [env("ALPHA"), env("BETA")];
const shots = env("SHOTS");
const out = { pageErrors: [] };

const ctl = async (path) => (await fetch(control + path, { method: "POST" })).json();

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});

/** A browser context logged in as `user` through the whole flow; the page lands on `/`. */
async function loggedIn(user, name) {
  await ctl(`/as/${user}`);
  const context = await browser.newContext({ viewport: { width: 1200, height: 760 } });
  const page = await context.newPage();
  page.on("pageerror", (e) => out.pageErrors.push(`${name}: ${e}`));
  page.on("console", (m) => {
    if (m.type() === "error" && !/status of 4\d\d/.test(m.text())) out.pageErrors.push(`${name}: ${m.text()}`);
  });
  await page.goto(`${base}/`);
  await page.waitForSelector("a.button.discord");
  if (name === "a") await page.screenshot({ path: `${shots}/login.png` });
  await page.click("a.button.discord");
  await page.waitForURL(`${base}/`);
  await page.waitForSelector('[data-testid="guilds"], [data-testid="no-guilds"]');
  return { context, page };
}

const ids = (page) => page.$$eval('[data-testid="guilds"] li', (lis) => lis.map((li) => li.dataset.guild));
const live = (page) => page.waitForSelector('[data-testid="live"][data-status="live"]');

try {
  const a = await loggedIn(env("STAFF"), "a");
  out.landedOn = new URL(a.page.url()).pathname;
  out.picker = (await ids(a.page)).sort();
  await a.page.screenshot({ path: `${shots}/picker.png` });

  // Settings: two browsers on the same page; a save in one shows in the other.
  const b = await loggedIn(env("STAFF"), "b");
  for (const p of [a.page, b.page]) {
    await p.click(`[data-guild="${alpha}"] a`);
    await p.click('nav a[href$="/moderation"]');
    await p.waitForSelector('[data-testid="settings"] input[name="automodEnabled"]');
    await live(p);
  }
  await a.page.check('input[name="automodEnabled"]');
  await a.page.selectOption('select[name="modLogChannelId"]', "630000000000000001");
  await a.page.click('[data-testid="settings"] button[type="submit"]');
  await a.page.waitForSelector('[data-testid="settings-message"]');
  await b.page.waitForFunction(() => document.querySelector('input[name="automodEnabled"]').checked, null, { timeout: 5000 });
  await b.page.waitForFunction(() => document.querySelector('select[name="modLogChannelId"]').value === "630000000000000001", null, { timeout: 5000 });
  out.settingSeenLive = true;
  await b.page.screenshot({ path: `${shots}/settings.png` });

  // Infractions: a /warn through the command logic appears on the open page.
  await b.page.waitForSelector('[data-testid="infractions"]');
  const { case: first } = await ctl("/warn/640000000000000001");
  await b.page.waitForSelector(`tr[data-case="${first}"]`, { timeout: 5000 });
  out.warnSeen = true;

  // A dropped socket: the client reconnects, resumes from its last seq, and every case made
  // meanwhile appears.
  const c = await browser.newContext({ viewport: { width: 1200, height: 760 } });
  const cookies = await b.context.cookies();
  await c.addCookies(cookies);
  const cp = await c.newPage();
  cp.on("pageerror", (e) => out.pageErrors.push(`c: ${e}`));
  const routes = [];
  await cp.routeWebSocket(/\/ws$/, (ws) => {
    ws.connectToServer();
    routes.push(ws);
  });
  await cp.goto(`${base}/guilds/${alpha}/moderation`);
  await cp.waitForSelector('[data-testid="infractions"]');
  await live(cp);
  await cp.waitForSelector(`tr[data-case="${first}"]`);
  await routes[0].close({ code: 4999, reason: "network dropped" });
  const during = [await ctl("/warn/640000000000000002"), await ctl("/warn/640000000000000003")];
  for (let i = 0; i < 100 && routes.length < 2; i++) await new Promise((r) => setTimeout(r, 50));
  out.reconnected = routes.length >= 2;
  await live(cp);
  out.casesAfterDrop = [];
  for (const d of during) {
    out.casesAfterDrop.push(
      await cp.waitForSelector(`tr[data-case="${d.case}"]`, { timeout: 8000 }).then(() => true, () => false),
    );
  }
  await cp.screenshot({ path: `${shots}/infractions.png` });
  await c.close();

  // Tags: created on one page, shown on the other; a /tag create shows too.
  for (const p of [a.page, b.page]) await p.click('nav a[href$="/tags"]');
  await a.page.waitForSelector('tr[data-tag="rules"]');
  await b.page.waitForSelector('tr[data-tag="rules"]');
  await a.page.fill('input[name="tag-name"]', "welcome");
  await a.page.fill('input[name="tag-content"]', "Hello and welcome!");
  await a.page.click('[data-testid="tags"] form button[type="submit"]');
  out.tagSeenLive = await b.page.waitForSelector('tr[data-tag="welcome"]', { timeout: 5000 }).then(() => true, () => false);
  await ctl("/tag/faq");
  out.commandTagSeen = await a.page.waitForSelector('tr[data-tag="faq"]', { timeout: 5000 }).then(() => true, () => false);
  await a.page.screenshot({ path: `${shots}/tags.png` });

  // Modmail: a reply typed in one browser reaches the member and shows in the other.
  for (const p of [a.page, b.page]) {
    await p.click('nav a[href$="/modmail"]');
    await p.click('button[data-ticket="1"]');
    await p.waitForSelector(".messages li.member");
  }
  await a.page.fill('input[name="reply"]', "Thanks, we are checking.");
  await a.page.click('.conversation button[type="submit"]');
  out.replySeenLive = await b.page
    .waitForSelector('.messages li.staff:has-text("Thanks, we are checking.")', { timeout: 5000 })
    .then(() => true, () => false);
  await b.page.screenshot({ path: `${shots}/modmail.png` });

  // Suggestions: a decision in one browser shows in the other.
  for (const p of [a.page, b.page]) {
    await p.click('nav a[href$="/suggestions"]');
    await p.waitForSelector('tr[data-suggestion="2"]');
  }
  const decided = a.page.waitForResponse((r) => r.url().endsWith("/suggestions/items/2/status"));
  await a.page.selectOption('tr[data-suggestion="2"] select', "approved");
  out.decisionStatus = (await decided).status();
  out.suggestionSeenLive = await b.page
    .waitForFunction(() => document.querySelector('tr[data-suggestion="2"] select').value === "approved", null, { timeout: 5000 })
    .then(() => true, () => false);
  await b.page.screenshot({ path: `${shots}/suggestions.png` });

  // Access: staff give a role access from the page; the list shows it by name.
  await a.page.click('nav a[href$="/dashboard"]');
  await a.page.waitForSelector('[data-testid="access"] form');
  await a.page.selectOption('[data-testid="access"] select[name="target"]', "620000000000000009");
  await a.page.click('[data-testid="access"] button[type="submit"]');
  out.accessGranted = await a.page
    .waitForSelector('tr[data-entry="620000000000000009"]:has-text("@Moderator")', { timeout: 5000 })
    .then(() => true, () => false);
  await a.page.screenshot({ path: `${shots}/access.png` });

  // A secret setting: write-only.
  await a.page.click('nav a[href$="/minecraft"]');
  await a.page.waitForSelector('input[name="rconPassword"]');
  await a.page.fill('input[name="rconPassword"]', "hunter2");
  await a.page.click('[data-testid="settings"] button[type="submit"]');
  await a.page.waitForSelector('[data-testid="settings-message"]');
  await a.page.screenshot({ path: `${shots}/secret.png` });

  // Another server by URL: the no-access page.
  await a.page.goto(`${base}/guilds/${beta}`);
  out.noAccess = await a.page.waitForSelector('[data-testid="no-access"]', { timeout: 5000 }).then(() => true, () => false);
  await a.page.screenshot({ path: `${shots}/no-access.png` });

  // A member without rights: an empty picker that says why.
  const m = await loggedIn(env("MEMBER"), "m");
  out.memberPicker = await ids(m.page);
  out.memberEmptyText = await m.page.textContent('[data-testid="no-guilds"]');

  // Logging out ends the session in every browser.
  await a.page.goto(`${base}/`);
  await a.page.waitForSelector("header button");
  await a.page.click("header button");
  await a.page.waitForURL(`${base}/login`);
  out.afterLogout = await b.page.evaluate(async () => (await fetch("/api/auth/me")).status);
  // The other browser's open page notices (its socket was closed) and shows the login page.
  out.otherShowsLogin = await b.page
    .waitForSelector("a.button.discord", { timeout: 5000 })
    .then(() => true, () => false);
} catch (e) {
  // Where it stood, for whoever reads the failure.
  console.error(out);
  for (const ctx of browser.contexts()) for (const p of ctx.pages()) console.error(p.url(), (await p.content()).slice(0, 3000));
  throw e;
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
