// Drives authfault's web UI in headless Chromium (Debian's chromium, through
// playwright-core). Started by tests/integration/ui.rs, which runs the proxy
// (binary), an upstream, and passes them in the environment:
//   ADMIN_URL, PROXY_URL, UPSTREAM_URL, CLOSED_URL, JWT, SCREENSHOT, CHROMIUM
// Exits non-zero, saying what failed, when the page does not behave.
import assert from "node:assert/strict";
import http from "node:http";
import { chromium } from "playwright-core";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const ADMIN = env("ADMIN_URL");
const PROXY = new URL(env("PROXY_URL"));
const UPSTREAM = env("UPSTREAM_URL");
const CLOSED = env("CLOSED_URL");
const JWT = env("JWT");
const ADMIN_TOKEN = env("ADMIN_TOKEN");

/** One request through the proxy (absolute-form); resolves to {status, body}. */
function viaProxy(url, headers = {}) {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const req = http.request({
      host: PROXY.hostname, port: PROXY.port, path: url, method: "GET",
      headers: { host: target.host, authorization: `Bearer ${JWT}`, ...headers },
    }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

const step = (name) => console.log(`- ${name}`);

/** Waits until the rules panel says rule `name` is (in)active. */
async function ruleIs(page, name, active) {
  await page.waitForFunction(([name, active]) => {
    for (const li of document.querySelectorAll("#rules li")) {
      if (li.querySelector("label").textContent === name) {
        return li.querySelector(".meta").textContent.includes(active ? " · active · " : " · inactive · ");
      }
    }
    return false;
  }, [name, active]);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1600, height: 900 } });
  const problems = [];
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  page.on("console", (msg) => { if (msg.type() === "error") problems.push(`console: ${msg.text()}`); });

  step("the page loads, asks for the admin token once, and goes live");
  await page.goto(ADMIN);
  await page.waitForSelector("#login:not([hidden])");
  await page.getByLabel(/needs its token/).fill("not-the-token");
  await page.click("#login button");
  await page.waitForFunction(() => document.getElementById("login-error").textContent.includes("refused"));
  await page.getByLabel(/needs its token/).fill(ADMIN_TOKEN);
  await page.click("#login button");
  await page.waitForFunction(() => document.getElementById("status").textContent === "live");
  // The browser logged the two refused calls (no token, wrong token); from
  // here on, nothing may fail.
  assert.equal(problems.length, 2, problems.join("\n"));
  problems.length = 0;
  assert.equal(await page.title(), "authfault");
  await page.waitForSelector("#rules li");

  // No reload: the row arrives over the live feed. No time limit either
  // beyond playwright's default; a loaded CI machine is slow, not wrong.
  step("a request through the proxy appears in the table without a reload");
  const first = `${UPSTREAM}/headers?first`;
  await viaProxy(first);
  await page.waitForSelector(`.row span[title="${first}"]`);

  step("toggling a rule on the page changes what the next request gets");
  const strip = page.getByLabel("strip-all", { exact: true });
  assert.equal(await strip.isChecked(), false);
  let seen = JSON.parse((await viaProxy(`${UPSTREAM}/headers?before-toggle`)).body);
  assert.ok(seen.authorization, "the credential passes while the rule is off");
  await strip.check();
  await ruleIs(page, "strip-all", true);
  seen = JSON.parse((await viaProxy(`${UPSTREAM}/headers?after-toggle`)).body);
  assert.equal(seen.authorization, undefined, "the rule switched on in the page strips the credential");
  await strip.uncheck();
  await ruleIs(page, "strip-all", false);
  seen = JSON.parse((await viaProxy(`${UPSTREAM}/headers?after-untoggle`)).body);
  assert.ok(seen.authorization, "switched off again, the credential passes");

  step("a scenario picked on the page, and exchanges of each verdict");
  await page.selectOption("#scenario", "expired");
  await ruleIs(page, "expire-jwt", true);
  await viaProxy(`${UPSTREAM}/answer/401?challenge`);   // enforced
  await viaProxy(`${UPSTREAM}/answer/200`);             // bypassed
  await viaProxy(`${UPSTREAM}/answer/500`);             // mismatch
  await viaProxy(`${CLOSED}/answer/401`);               // error
  await page.selectOption("#scenario", "");
  await ruleIs(page, "expire-jwt", false);
  await viaProxy(`${UPSTREAM}/canned`);                 // synthetic
  for (const verdict of ["enforced", "bypassed", "mismatch", "error", "synthetic", "untouched"]) {
    await page.waitForSelector(`.row .v-${verdict}`);
    // Colour is not the only carrier: the verdict is written out too.
    const text = await page.locator(`.row .v-${verdict}`).first().textContent();
    assert.ok(text.includes(verdict), `${verdict}: ${text}`);
  }

  step("filters narrow the table");
  const rows = async () => (await page.locator(".row").allTextContents()).join("\n");
  // Bypassed: the stripped /headers request (it answered 200) and the
  // expired token that /answer/200 accepted.
  await page.selectOption("#filter-verdict", "bypassed");
  assert.equal(await page.locator(".row").count(), 2, await rows());
  await page.selectOption("#filter-rule", "expire-jwt");
  assert.equal(await page.locator(".row").count(), 1, await rows());
  assert.match(await rows(), /\/answer\/200/);
  await page.selectOption("#filter-verdict", "");
  await page.selectOption("#filter-rule", "");
  await page.fill("#filter-host", "no-such-host");
  assert.equal(await page.locator(".row").count(), 0);
  await page.fill("#filter-host", "");

  step("the detail view shows the claim diff of an expire exchange");
  await page.locator(".row", { hasText: "/answer/200" }).click();
  const exp = page.locator("#detail tr.changed", { has: page.locator("th", { hasText: /^exp$/ }) });
  await exp.waitFor();
  const cells = await exp.locator("td").allTextContents();
  assert.match(cells[0], /expires in/, `before: ${cells[0]}`);
  assert.match(cells[1], /expired 1 h ago/, `after: ${cells[1]}`);
  assert.equal(cells[2], "changed");
  const detail = await page.locator("#detail").textContent();
  assert.ok(detail.includes("bypassed"), "the verdict");
  assert.ok(/sha256:[0-9a-f]{12}/.test(detail), "the fingerprints");

  step("keyboard: End selects the newest exchange, Enter opens its details");
  await page.focus("#list");
  await page.keyboard.press("End");
  const active = await page.getAttribute("#list", "aria-activedescendant");
  assert.match(active, /^exchange-\d+$/);
  await page.keyboard.press("ArrowUp");
  assert.notEqual(await page.getAttribute("#list", "aria-activedescendant"), active);
  await page.keyboard.press("Enter");
  assert.equal(await page.evaluate(() => document.activeElement.id), "detail");

  step("the token is kept for the tab: a reload goes live without asking");
  await page.reload();
  await page.waitForFunction(() => document.getElementById("status").textContent === "live");
  assert.equal(await page.isVisible("#login"), false);

  step("the raw token appears nowhere in the page");
  await page.locator(".row", { hasText: "/answer/401" }).first().click();
  const html = await page.content();
  const [, payload, signature] = JWT.split(".");
  for (const part of [JWT, payload, signature]) {
    assert.ok(!html.includes(part), "a part of the raw token is in the DOM");
  }
  assert.ok(!html.includes(ADMIN_TOKEN), "the admin token is in the DOM");

  if (process.env.SCREENSHOT) {
    await page.locator(".row", { hasText: "/answer/200" }).click();
    await page.screenshot({ path: process.env.SCREENSHOT });
    step(`screenshot: ${process.env.SCREENSHOT}`);
  }
  step("thousands of exchanges: only the rows in view are in the DOM");
  const before = await page.locator(".row").count();
  const bulk = 2000;
  for (let i = 0; i < bulk; i += 25) {
    await Promise.all(Array.from({ length: 25 }, (_, j) => viaProxy(`${UPSTREAM}/headers?bulk=${i + j}`)));
  }
  await page.waitForFunction((n) => document.getElementById("count").textContent.includes(`(${n})`), before + bulk);
  const inDom = await page.locator(".row").count();
  assert.ok(inDom < 80, `${inDom} rows in the DOM for ${before + bulk} exchanges`);
  await page.focus("#list");
  await page.keyboard.press("End");
  // The newest exchange is selected, drawn in the last row of the list.
  const last = await page.evaluate(() => {
    const row = document.querySelector('.row[aria-selected="true"]');
    const ids = [...document.querySelectorAll(".row")].map((r) => Number(r.dataset.id));
    return { top: row?.style.top, id: Number(row?.dataset.id), newest: Math.max(...ids) };
  });
  assert.equal(last.top, `${(before + bulk - 1) * 28}px`);
  assert.equal(last.id, last.newest);

  assert.deepEqual(problems, [], "no script errors on the page");
} finally {
  await browser.close();
}
