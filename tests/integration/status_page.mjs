// status_page.mjs - drives Debian's headless Chromium (through playwright-core)
// over levee's status page, for tests/integration/test_status_page.py.
//
//   node status_page.mjs render URL [--no-js]
//       one JSON line: what the page shows (title, routes, sections, styles)
//   node status_page.mjs watch URL ROUTE [--no-js] [--timeout-ms N]
//       a JSON line {"requests": N} as soon as the page shows ROUTE, then
//       waits for the page to reload itself (its meta refresh, not ours)
//       until ROUTE's count is larger, and prints {"requests": M, "reloads": K}
//   node status_page.mjs screenshot URL FILE.png
//
// playwright-core is found under $LEVEE_TOOLS/node/node_modules (default
// ${XDG_CACHE_HOME:-~/.cache}/levee/tools); Chromium at $CHROMIUM or
// /usr/bin/chromium. Exit 2 with a message when either is missing.
import { createRequire } from "node:module";
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import { tmpdir, homedir } from "node:os";
import { join } from "node:path";

const tools = process.env.LEVEE_TOOLS ||
  join(process.env.XDG_CACHE_HOME || join(homedir(), ".cache"), "levee", "tools");
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";

function fail(code, msg) {
  process.stderr.write(msg + "\n");
  process.exit(code);
}

let chromium;
try {
  const require = createRequire(join(tools, "node", "package.json"));
  ({ chromium } = require("playwright-core"));
} catch (e) {
  fail(2, `playwright-core not found under ${join(tools, "node", "node_modules")} (deploy/install-tools.sh installs it): ${e.message}`);
}
if (!existsSync(chromiumPath))
  fail(2, `chromium not found at ${chromiumPath} (Debian package chromium)`);

const [mode, url, ...rest] = process.argv.slice(2);
if (!mode || !url)
  fail(64, "usage: status_page.mjs render|watch|screenshot URL ...");
const noJs = rest.includes("--no-js");
const tIdx = rest.indexOf("--timeout-ms");
const timeoutMs = tIdx >= 0 ? Number(rest[tIdx + 1]) : 30000;

// Without these Chromium waits on the network this machine does not have.
const args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];

const profile = mkdtempSync(join(tmpdir(), "levee-chromium-"));
let context;

async function main() {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath, headless: true, args, javaScriptEnabled: !noJs,
    viewport: { width: 1400, height: 900 },
  });
  const page = context.pages()[0] || await context.newPage();
  const console_errors = [];
  page.on("console", (m) => { if (m.type() === "error") console_errors.push(m.text()); });
  page.setDefaultTimeout(timeoutMs);

  const resp = await page.goto(url, { waitUntil: "load" });
  if (mode === "render") {
    const d = await page.evaluate(() => {
      const text = (sel) => { const e = document.querySelector(sel); return e ? e.textContent.trim() : null; };
      const routes = {};
      for (const tr of document.querySelectorAll("#routes-table tbody tr")) {
        const cell = (f) => { const e = tr.querySelector(`[data-field="${f}"]`); return e ? e.textContent.trim() : null; };
        routes[tr.dataset.route] = { requests: cell("requests"), hit_ratio: cell("hit-ratio"), p99: cell("p99"),
          cells: [...tr.children].map((td) => td.textContent.trim()) };
      }
      const meta = document.querySelector('meta[http-equiv="refresh"]');
      return {
        title: document.title, routes, refresh: meta ? meta.getAttribute("content") : null,
        tier: text("#tier-name"), tier_section: !!document.querySelector("#tier"),
        tiers: [...document.querySelectorAll("#tiers-table tbody tr")].map((tr) => tr.textContent),
        breakers: [...document.querySelectorAll("#breakers tbody tr")].map((tr) => tr.textContent),
        redis: text("#redis"), kafka: text("#kafka"), version: text("#version"), checksum: text("#checksum"),
        reload: text("#reload"), scripts: document.scripts.length,
        header_bg: getComputedStyle(document.querySelector("header")).backgroundColor,
        body: document.body.innerText,
      };
    });
    d.status = resp.status();
    d.console_errors = console_errors;
    process.stdout.write(JSON.stringify(d) + "\n");
  } else if (mode === "watch") {
    const route = rest[0];
    const count = () => page.locator(`#routes-table tr[data-route="${route}"] [data-field="requests"]`)
      .first().textContent({ timeout: timeoutMs }).then((t) => Number(t.trim()));
    const first = await count();
    process.stdout.write(JSON.stringify({ requests: first }) + "\n");
    const deadline = Date.now() + timeoutMs;
    let reloads = 0, now = first;
    while (now <= first) {
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(`route ${route} still shows ${now} requests after ${reloads} self-reloads`);
      await page.waitForEvent("load", { timeout: left });
      reloads++;
      now = await count();
    }
    process.stdout.write(JSON.stringify({ requests: now, reloads }) + "\n");
  } else if (mode === "screenshot") {
    await page.screenshot({ path: rest[0], fullPage: true });
    process.stdout.write(JSON.stringify({ screenshot: rest[0] }) + "\n");
  } else {
    fail(64, `unknown mode ${mode}`);
  }
}

main().then(async () => {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}, async (e) => {
  process.stderr.write(`status_page.mjs: ${e.stack || e}\n`);
  if (context)
    await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
  process.exit(1);
});
