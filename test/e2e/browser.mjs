// Drives Debian's Chromium, headless, through playwright-core against a
// callboxd web page that is in a call: both videos must update, Hang up
// must reach idle and Call must bring the call back. e2e_test.go runs it:
//
//   node browser.mjs <page URL> <output dir>
//
// It prints one line per step and exits non-zero on the first failure.
// Environment: CHROMIUM (default /usr/bin/chromium).
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [url, out] = process.argv.slice(2);
if (!url || !out) {
  console.error("usage: node browser.mjs <page URL> <output dir>");
  process.exit(2);
}
mkdirSync(out, { recursive: true });
const step = (msg) => console.log(`browser: ${msg}`);

// The flags known to work here: without the background-networking ones
// Chromium keeps dialling Google, and this machine's network refuses it.
const args = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const profile = mkdtempSync(join(tmpdir(), "callbox-chromium-")); // a fresh --user-data-dir
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args,
  viewport: { width: 1280, height: 900 },
});
const errors = [];
let failed = false;
try {
  const page = context.pages()[0] || (await context.newPage());
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => m.type() === "error" && errors.push("console: " + m.text()));

  // The streams never finish loading: wait for the document only.
  await page.goto(url, { waitUntil: "domcontentloaded" });
  await waitState(page, "in call");
  step("page loaded, state in call");

  for (const id of ["peer", "self"]) {
    await waitUpdates(page, id);
  }
  await page.screenshot({ path: join(out, "in-call.png"), fullPage: true });
  step(`screenshot ${join(out, "in-call.png")}`);

  await page.click("#hangup");
  await waitState(page, "idle");
  step("Hang up clicked: idle");
  await page.screenshot({ path: join(out, "idle.png"), fullPage: true });

  await page.click("#call");
  await waitState(page, "in call");
  step("Call clicked: in call");
  await waitUpdates(page, "peer");
  await page.screenshot({ path: join(out, "in-call-again.png"), fullPage: true });
  step(`screenshot ${join(out, "in-call-again.png")}`);

  if (errors.length) throw new Error("the page reported errors:\n" + errors.join("\n"));
  step("ok");
} catch (e) {
  failed = true;
  console.error("browser: FAILED: " + (e && e.stack ? e.stack : e));
  try {
    const page = context.pages()[0];
    if (page) await page.screenshot({ path: join(out, "failure.png"), fullPage: true });
  } catch (e2) { /* the screenshot is only a help */ }
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);

async function waitState(page, want) {
  await page.waitForFunction((w) => document.getElementById("state").textContent === w, want, { timeout: 20000 });
}

// waitUpdates waits until the <img> shows a decoded frame and then a
// different one: the synthetic camera draws its frame number, so a live
// stream changes its pixels. The image is drawn into a canvas and hashed.
async function waitUpdates(page, id) {
  const sample = () =>
    page.evaluate((id) => {
      const img = document.getElementById(id);
      if (!img.complete || img.naturalWidth === 0) return null;
      const c = document.createElement("canvas");
      c.width = img.naturalWidth;
      c.height = img.naturalHeight;
      const g = c.getContext("2d");
      g.drawImage(img, 0, 0);
      const d = g.getImageData(0, 0, c.width, c.height).data;
      let h = 2166136261;
      for (let i = 0; i < d.length; i += 7) h = Math.imul(h ^ d[i], 16777619) >>> 0;
      return { w: img.naturalWidth, h: img.naturalHeight, hash: h };
    }, id);
  const deadline = Date.now() + 20000;
  let first = null;
  for (;;) {
    const s = await sample();
    if (s && !first) first = s;
    if (s && first && s.hash !== first.hash) {
      step(`#${id} stream updates (${s.w}x${s.h})`);
      return;
    }
    if (Date.now() > deadline) {
      throw new Error(`#${id}: ${first ? "the image never changed" : "no image decoded"} within 20 s`);
    }
    await page.waitForTimeout(200);
  }
}
