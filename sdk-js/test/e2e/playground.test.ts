/**
 * End-to-end tests of the playground in headless Chromium (playwright-core
 * driving the system Chromium; no browser downloads) against a real
 * wasmwiz-server. Screenshots go to sdk-js/test-results/ (or
 * $E2E_SCREENSHOT_DIR).
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { launchBrowser, type Browser } from "../helpers/browser.js";
import { createClient } from "../../src/node.js";
import { build } from "esbuild";
import {
  EXAMPLES_JS_DIR,
  REPO_DIR,
  SDK_DIR,
  guest,
  linkSdkIntoExamples,
  paddedModule,
  startServer,
  type TestServer,
} from "../helpers/server.js";

const SHOTS = process.env.E2E_SCREENSHOT_DIR ?? join(SDK_DIR, "test-results");
mkdirSync(SHOTS, { recursive: true });

let server: TestServer;
let browser: Browser;
const problems: string[] = [];

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

async function openPlayground(key?: string): Promise<Page> {
  const page = await browser.context.newPage();
  page.on("console", (m) => {
    if (m.type() === "error" && !/status of 40[0-9]|Failed to load resource/.test(m.text())) problems.push(m.text());
  });
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
  await page.goto(server.baseUrl + "/");
  await page.waitForSelector("html[data-ready='true']", { timeout: 15_000 });
  if (key !== undefined) {
    await page.fill("#api-key", key);
  }
  return page;
}

async function text(page: Page, selector: string): Promise<string> {
  return ((await page.textContent(selector)) ?? "").trim();
}

async function waitText(page: Page, selector: string, pattern: RegExp, timeout = 60_000): Promise<string> {
  await page.waitForFunction(
    ([sel, src, flags]) => new RegExp(src!, flags).test(document.querySelector(sel!)?.textContent ?? ""),
    [selector, pattern.source, pattern.flags] as const,
    { timeout },
  );
  return text(page, selector);
}

/** Waits until the run is over: stats shown or an error shown, and the Run button usable again. */
async function waitRunDone(page: Page, timeout = 120_000): Promise<void> {
  await page.waitForFunction(
    () =>
      !(document.getElementById("run-btn") as HTMLButtonElement).disabled &&
      (!document.getElementById("stats")!.hidden || !document.getElementById("error-box")!.hidden),
    undefined,
    { timeout },
  );
}

describe("playground", () => {
  it("is served at / with security headers, its assets and the examples", async () => {
    const res = await fetch(server.baseUrl + "/");
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/html/);
    const csp = res.headers.get("content-security-policy") ?? "";
    assert.match(csp, /default-src 'self'/, `CSP: ${csp}`);
    assert.match(csp, /script-src 'self'/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    assert.equal(res.headers.get("x-content-type-options"), "nosniff");
    const html = await res.text();
    assert.match(html, /<script type="module" src="\/playground.js">/);

    const js = await fetch(server.baseUrl + "/playground.js");
    assert.equal(js.status, 200);
    assert.match(js.headers.get("content-type") ?? "", /javascript/);
    const css = await fetch(server.baseUrl + "/playground.css");
    assert.equal(css.status, 200);
    assert.match(css.headers.get("content-type") ?? "", /text\/css/);
    for (const name of ["hello", "echo", "hash", "progress", "clockrand", "argsenv", "exitcode", "stderr", "trap", "loop", "fib", "rust_wordfreq", "rust_panic", "fsreport", "calc", "guess"]) {
      const wasm = await fetch(`${server.baseUrl}/examples/${name}.wasm`);
      assert.equal(wasm.status, 200, `/examples/${name}.wasm`);
      const bytes = new Uint8Array(await wasm.arrayBuffer());
      assert.deepEqual(bytes, guest(name), `${name}.wasm served byte for byte`);
    }
  });

  it("enters a key, runs an example and streams output before the final stats", { timeout: 180_000 }, async () => {
    const page = await openPlayground(server.adminKey);
    await waitText(page, "#key-status", /admin@test\.local/);
    await page.selectOption("#example", "progress");
    await page.fill("#args", "6");
    await page.check("#keep-module"); // so "Run again by hash" can run it

    // Record when output appears and when the stats appear.
    await page.evaluate(() => {
      const w = window as unknown as { __timeline: { kind: string; t: number; text: string }[] };
      w.__timeline = [];
      const consoleEl = document.getElementById("console")!;
      const stats = document.getElementById("stats")!;
      new MutationObserver(() => {
        w.__timeline.push({ kind: "output", t: performance.now(), text: consoleEl.textContent ?? "" });
      }).observe(consoleEl, { childList: true, subtree: true, characterData: true });
      new MutationObserver(() => {
        if (!stats.hidden) w.__timeline.push({ kind: "stats", t: performance.now(), text: "" });
      }).observe(stats, { attributes: true, attributeFilter: ["hidden"] });
    });
    await page.click("#run-btn");
    await waitText(page, "#console", /tick 0/);
    const statsHiddenAtFirstTick = await page.isHidden("#stats");
    await page.screenshot({ path: join(SHOTS, "playground-streaming.png"), fullPage: true });
    await waitRunDone(page);

    const timeline = await page.evaluate(
      () => (window as unknown as { __timeline: { kind: string; t: number; text: string }[] }).__timeline,
    );
    const firstTick = timeline.find((e) => e.kind === "output" && e.text.includes("tick 0"));
    const stats = timeline.find((e) => e.kind === "stats");
    assert.ok(firstTick, "output appeared");
    assert.ok(stats, "stats appeared");
    assert.ok(firstTick!.t < stats!.t, "output before the stats");
    assert.ok(!firstTick!.text.includes("done"), "the first output was partial (streamed)");
    assert.ok(statsHiddenAtFirstTick, "stats hidden while the output streamed");
    const partials = new Set(timeline.filter((e) => e.kind === "output").map((e) => e.text));
    assert.ok(partials.size >= 3, `output grew in several steps (${partials.size})`);

    assert.equal(await text(page, "#console"), "tick 0\ntick 1\ntick 2\ntick 3\ntick 4\ntick 5\ndone");
    assert.match(await text(page, "#stat-outcome"), /Success/);
    assert.equal(await text(page, "#stat-exit"), "0");
    assert.match(await text(page, "#stat-fuel"), /^[\d,]+$/);
    assert.match(await text(page, "#stat-time"), /(µs|ms|s)$/);
    assert.match(await text(page, "#stat-memory"), /(B|KiB|MiB)$/);
    const sha = await text(page, "#stat-sha");
    assert.equal(sha, createHash("sha256").update(guest("progress")).digest("hex"));
    assert.match(await text(page, "#run-state"), /Success/);
    await page.screenshot({ path: join(SHOTS, "playground-run.png"), fullPage: true });

    // Run again by hash (the module was kept on the first run).
    assert.equal(await page.isEnabled("#rerun-btn"), true);
    await page.click("#rerun-btn");
    await waitRunDone(page);
    assert.ok(await page.isHidden("#error-box"), await text(page, "#error-box"));
    assert.match(await text(page, "#stat-outcome"), /Success/);
    assert.equal(await text(page, "#stat-sha"), sha);
    assert.match(await text(page, "#stat-cache"), /from cache/);

    // The key is remembered when asked to.
    await page.check("#key-remember");
    await page.reload();
    await page.waitForSelector("html[data-ready='true']");
    assert.equal(await page.inputValue("#api-key"), server.adminKey);
    await page.close();
  });

  it("runs a dropped custom module and explains an invalid one", { timeout: 120_000 }, async () => {
    const page = await openPlayground(server.adminKey);
    const custom = paddedModule(guest("echo"), 100, "e2e-custom");
    const sha = createHash("sha256").update(custom).digest("hex");

    const drop = async (bytes: Uint8Array, name: string) => {
      const dataTransfer = await page.evaluateHandle(
        ({ data, fileName }) => {
          const dt = new DataTransfer();
          dt.items.add(new File([new Uint8Array(data)], fileName, { type: "application/wasm" }));
          return dt;
        },
        { data: Array.from(bytes), fileName: name },
      );
      await page.dispatchEvent("#dropzone", "drop", { dataTransfer });
    };

    await drop(custom, "my-echo.wasm");
    await waitText(page, "#module-info", new RegExp(`sha256 ${sha}`));
    await waitText(page, "#module-info", /stored/);
    assert.equal(await page.inputValue("#example"), "__custom__");
    await page.fill("#stdin", "dropped and echoed\n");
    await page.click("#run-btn");
    await waitRunDone(page);
    assert.ok(await page.isHidden("#error-box"), await text(page, "#error-box"));
    assert.equal(await text(page, "#console"), "dropped and echoed");
    assert.equal(await text(page, "#stat-sha"), sha);
    await page.screenshot({ path: join(SHOTS, "playground-custom.png"), fullPage: true });

    await drop(new TextEncoder().encode("this is not WebAssembly"), "broken.wasm");
    await page.waitForSelector("#error-box:not([hidden])");
    assert.equal(await text(page, "#error-title"), "Invalid module");
    assert.match(await text(page, "#error-detail"), /^module: .+/);
    await page.screenshot({ path: join(SHOTS, "playground-invalid-module.png"), fullPage: true });
    await page.close();
  });

  it("shows a limit above the tier next to the field, in its units", { timeout: 60_000 }, async () => {
    const key = await server.createKey("e2e-limit@test.local", "free");
    const page = await openPlayground(key);
    await waitText(page, "#key-status", /e2e-limit/);
    await page.selectOption("#example", "hello");
    await page.click("#limits-details > summary");
    await page.fill("#limit-memory", "2048");
    await page.click("#run-btn");
    await waitRunDone(page);
    await page.waitForSelector("#limit-memory-error");
    assert.equal(await text(page, "#limit-memory-error"), "Memory 2 GiB is above the free tier's 128 MiB.");
    assert.equal(await page.getAttribute("#limit-memory", "aria-invalid"), "true");
    assert.match(await page.getAttribute("#limit-memory", "aria-describedby") ?? "", /limit-memory-error/);
    await page.screenshot({ path: join(SHOTS, "playground-limit-field.png"), fullPage: true });

    await page.fill("#limit-memory", "");
    await page.click("#run-btn");
    await waitRunDone(page);
    assert.equal(await page.$("#limit-memory-error"), null, "the note goes once the run is accepted");
    assert.equal(await page.getAttribute("#limit-memory", "aria-invalid"), null);
    await page.close();
  });

  it("a dropped module above the tier is refused before it is uploaded", { timeout: 120_000 }, async () => {
    const key = await server.createKey("e2e-module-size@test.local", "free");
    const page = await openPlayground(key);
    await waitText(page, "#key-status", /e2e-module-size/);
    const big = paddedModule(guest("echo"), 11 << 20, "e2e-big");
    const dataTransfer = await page.evaluateHandle(
      ({ b64, fileName }) => {
        const bin = atob(b64);
        const bytes = new Uint8Array(bin.length);
        for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], fileName, { type: "application/wasm" }));
        return dt;
      },
      { b64: Buffer.from(big).toString("base64"), fileName: "big.wasm" },
    );
    await page.dispatchEvent("#dropzone", "drop", { dataTransfer });
    await page.waitForSelector("#dropzone-error");
    assert.match(await text(page, "#dropzone-error"), /^This module 11(\.\d)? MiB is above the free tier's 10 MiB; nothing was uploaded\.$/);
    assert.equal(await text(page, "#error-title"), "Module too large");
    assert.match(await text(page, "#module-info"), /Not uploaded/);
    const me = await createClient({ baseUrl: server.baseUrl, apiKey: key, transport: "grpc-web" }).account.whoAmI();
    assert.equal(me.storedModules, 0n, "nothing was stored");
    await page.close();
  });

  it("files: add a file, run fsreport, read the collected report and download it", { timeout: 120_000 }, async () => {
    const page = await openPlayground(server.adminKey);
    await waitText(page, "#key-status", /admin@test\.local/);
    await page.selectOption("#example", "fsreport");
    const tabs = await page.$$eval("#file-tabs [role=tab]", (els) => els.map((el) => el.textContent));
    assert.deepEqual(tabs, ["input/poem.txt", "input/todo.txt", "input/README.md"], "the example's inputs are preloaded");
    await page.fill("#new-file-path", "input/extra.txt");
    await page.click("#new-file-btn");
    await page.fill("#file-text", "one two three\n");
    await page.click("#run-btn");
    await waitRunDone(page);
    assert.ok(await page.isHidden("#error-box"), await text(page, "#error-box"));
    await page.waitForSelector("#out-files:not([hidden])");
    assert.deepEqual(await page.$$eval(".out-file-path", (els) => els.map((el) => el.textContent)), ["out/report.txt"]);
    const report = "extra.txt 1 3\npoem.txt 7 21\ntodo.txt 2 6\ntotal 10 30\n";
    assert.equal(await text(page, ".out-file-text"), report.trim());
    assert.equal(await page.getAttribute(".out-file-download", "download"), "report.txt");
    await page.screenshot({ path: join(SHOTS, "playground-files.png"), fullPage: true });
    const [download] = await Promise.all([page.waitForEvent("download"), page.click(".out-file-download")]);
    assert.equal(download.suggestedFilename(), "report.txt");
    assert.equal(readFileSync((await download.path())!, "utf8"), report);
    await page.close();
  });

  it("files above the Files limit are refused before they are uploaded", { timeout: 60_000 }, async () => {
    const page = await openPlayground(server.adminKey);
    await waitText(page, "#key-status", /admin@test\.local/);
    await page.selectOption("#example", "fsreport");
    await page.click("#limits-details summary");
    await page.fill("#limit-fs", "1");
    await page.setInputFiles("#files-input", { name: "big.txt", mimeType: "text/plain", buffer: Buffer.alloc(2048, "a") });
    await waitText(page, "#error-title", /Files too large/);
    assert.match(await text(page, "#error-detail"), /above limits\.fsBytes 1 KiB/);
    const tabs = await page.$$eval("#file-tabs [role=tab]", (els) => els.map((el) => el.textContent));
    assert.ok(!tabs.includes("input/big.txt"), "the file was not added");
    await page.close();
  });

  it("a collected image is previewed", { timeout: 120_000 }, async () => {
    const page = await openPlayground(server.adminKey);
    await waitText(page, "#key-status", /admin@test\.local/);
    await page.setInputFiles("#file-input", { name: "fscopy.wasm", mimeType: "application/wasm", buffer: Buffer.from(guest("fscopy")) });
    await waitText(page, "#module-info", /stored/);
    const png = Buffer.from("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==", "base64");
    await page.setInputFiles("#files-input", { name: "dot.png", mimeType: "image/png", buffer: png });
    await page.fill("#args", "input/dot.png\ninput/copy.png");
    await page.click("#run-btn");
    await waitRunDone(page);
    assert.ok(await page.isHidden("#error-box"), await text(page, "#error-box"));
    await page.waitForSelector("img.out-file-image");
    assert.equal(await page.getAttribute("img.out-file-image", "src"), `data:image/png;base64,${png.toString("base64")}`);
    assert.equal(await page.getAttribute("img.out-file-image", "alt"), "Preview of input/copy.png");
    assert.ok(await page.$eval("img.out-file-image", (img) => (img as HTMLImageElement).naturalWidth === 1), "the image decoded");
    await page.screenshot({ path: join(SHOTS, "playground-files-image.png"), fullPage: true });
    await page.close();
  });

  it("Stop cancels a running guest", { timeout: 60_000 }, async () => {
    const page = await openPlayground(server.adminKey);
    await waitText(page, "#key-status", /admin@test\.local/);
    await page.selectOption("#example", "loop");
    await page.fill("#limit-fuel", "");
    await page.fill("#limit-timeout", "60000");
    await page.click("#run-btn");
    await waitText(page, "#run-state", /Running/);
    const t0 = Date.now();
    await page.click("#stop-btn");
    await waitText(page, "#run-state", /Stopped/, 10_000);
    assert.ok(Date.now() - t0 < 10_000, "stopped promptly");
    assert.ok(await page.isHidden("#error-box"), "a user's stop is not an error");
    assert.match(await text(page, "#console"), /\[stopped after [\d.]+ ?(µs|ms|s); fuel used so far is unknown/);
    assert.match(await text(page, "#run-state"), /^Stopped after [\d.]+ ?(µs|ms|s)$/);
    assert.equal(await page.isEnabled("#run-btn"), true);
    await page.close();
  });

  it("shows a bad key's error in words", async () => {
    const page = await openPlayground("wwz_notakey_notasecret");
    await waitText(page, "#key-status", /not accepted/);
    await page.selectOption("#example", "hello");
    await page.click("#run-btn");
    await waitRunDone(page);
    await page.waitForSelector("#error-box:not([hidden])");
    assert.equal(await text(page, "#error-title"), "The API key was not accepted");
    assert.match(await text(page, "#error-detail"), /create-key/);
    assert.ok(await page.isHidden("#stats"));
    await page.screenshot({ path: join(SHOTS, "playground-bad-key.png"), fullPage: true });
    await page.close();
  });

  it("rate limiting is explained with the wait (keyboard only)", { timeout: 120_000 }, async () => {
    const key = await server.createKey("e2e-ratelimit@test.local", "free");
    const page = await openPlayground(key);
    await waitText(page, "#key-status", /e2e-ratelimit/);
    await page.selectOption("#example", "hello");
    let limited = false;
    for (let i = 0; i < 30 && !limited; i++) {
      await page.focus("#stdin");
      await page.keyboard.press("Control+Enter");
      await page.waitForFunction(() => (document.getElementById("run-btn") as HTMLButtonElement).disabled === false);
      await waitRunDone(page);
      limited = await page.isVisible("#error-box");
    }
    assert.ok(limited, "the rate limit was hit");
    assert.equal(await text(page, "#error-title"), "Rate limited");
    assert.match(await text(page, "#error-detail"), /Try again in \d+ s/);
    await page.screenshot({ path: join(SHOTS, "playground-rate-limited.png"), fullPage: true });
    await page.close();
  });

  it("account view: tier, allowance, usage chart, own keys", { timeout: 120_000 }, async () => {
    const key = await server.createKey("e2e-account@test.local", "free");
    const page = await openPlayground(key);
    await waitText(page, "#key-status", /e2e-account/);
    for (const ex of ["hello", "stderr"]) {
      await page.selectOption("#example", ex);
      await page.click("#run-btn");
      await waitRunDone(page);
    }
    // Keyboard: focus the Run tab and move right to Account.
    await page.focus("#tab-run");
    await page.keyboard.press("ArrowRight");
    assert.equal(await page.getAttribute("#tab-account", "aria-selected"), "true");
    await waitText(page, "#acct-email", /e2e-account@test\.local/);
    assert.match(await text(page, "#acct-tier"), /free/);
    assert.match(await text(page, "#text-minute"), /^\d+ of 10 left$/);
    assert.match(await text(page, "#text-day"), /^\d+ of 500 left$/);
    assert.equal(await text(page, "#usage-exec"), "2");
    assert.equal(await page.locator("#chart-exec svg rect.bar").count(), 14);
    assert.equal(await page.locator("#chart-fuel svg rect.bar").count(), 14);
    assert.equal(await page.locator("#keys-table tbody tr").count(), 1);

    await page.fill("#new-key-label", "e2e-laptop");
    await page.click("#new-key-form button[type=submit]");
    await waitText(page, "#new-key-secret", /^wwz_/);
    await waitText(page, "#keys-table", /e2e-laptop/);
    assert.equal(await page.locator("#keys-table tbody tr").count(), 2);
    await page.screenshot({ path: join(SHOTS, "playground-account.png"), fullPage: true });

    page.once("dialog", (d) => void d.accept());
    const row = page.locator("#keys-table tbody tr", { hasText: "e2e-laptop" });
    await row.locator("button", { hasText: "Revoke" }).click();
    await page.waitForFunction(() =>
      [...document.querySelectorAll("#keys-table tbody tr")].some((tr) => /e2e-laptop/.test(tr.textContent ?? "") && /revoked/.test(tr.textContent ?? "")),
    );
    await page.close();
  });

  it("account view lists the detached runs submitted with the SDK; Refresh shows new ones", { timeout: 120_000 }, async () => {
    const key = await server.createKey("e2e-detached@test.local", "free");
    const sdk = createClient({ baseUrl: server.baseUrl, apiKey: key });
    const first = await sdk.submit({ module: guest("hello") });
    await first.result();
    const page = await openPlayground(key);
    await waitText(page, "#key-status", /e2e-detached/);
    await page.click("#tab-account");
    await waitText(page, "#runs-table", new RegExp(first.executionId));
    const firstRow = page.locator(`#runs-table tbody tr[data-execution-id="${first.executionId}"]`);
    assert.deepEqual(
      (await firstRow.locator("td").allTextContents()).slice(1, 3),
      ["finished", "success"],
    );
    assert.match(await text(page, "#runs-status"), /^1 most recent detached run, newest first\.$/);

    const second = await sdk.submit({ module: guest("exitcode"), args: ["2"] });
    await second.result();
    await page.focus("#runs-refresh");
    await page.keyboard.press("Enter");
    await waitText(page, "#runs-status", /^2 most recent/);
    const ids = await page.locator("#runs-table tbody tr").evaluateAll((rows) => rows.map((r) => r.getAttribute("data-execution-id")));
    assert.deepEqual(ids, [second.executionId, first.executionId]);
    assert.equal(await page.locator("#runs-table tbody tr").first().locator("td").nth(2).textContent(), "exit nonzero");
    await page.screenshot({ path: join(SHOTS, "playground-detached-runs.png"), fullPage: true });
    await page.close();
  });

  it("runs the Rust examples: std on WASI, and a panic reads as a panic with its message", { timeout: 120_000 }, async () => {
    const page = await openPlayground(server.adminKey);
    await page.selectOption("#example", "rust_wordfreq");
    await page.click("#run-btn");
    await waitRunDone(page);
    assert.ok(await page.isHidden("#error-box"), await text(page, "#error-box"));
    assert.match(await text(page, "#stat-outcome"), /Success/);
    assert.equal(await text(page, "#console"), "4 the\n2 dog\n2 fox");

    await page.selectOption("#example", "rust_panic");
    await page.click("#run-btn");
    await waitRunDone(page);
    assert.match(await text(page, "#stat-outcome"), /^The program panicked: index out of bounds: the len is 3 but the index is \d+$/);
    const consoleText = await text(page, "#console");
    assert.match(consoleText, /about to panic/);
    assert.match(consoleText, /index out of bounds/);
    await page.close();
  });

  it("works on a narrow screen without horizontal scrolling", async () => {
    const page = await openPlayground(server.adminKey);
    await page.setViewportSize({ width: 390, height: 844 });
    await page.selectOption("#example", "stderr");
    await page.click("#run-btn");
    await waitRunDone(page);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `no horizontal overflow (got ${overflow}px)`);
    await page.screenshot({ path: join(SHOTS, "playground-mobile.png"), fullPage: true });
    await page.close();
  });

  it("examples/js/browser-snippet.mjs, bundled, streams a run in the browser", { timeout: 60_000 }, async () => {
    linkSdkIntoExamples();
    const bundle = await build({
      stdin: {
        contents: 'import { runWasm } from "./browser-snippet.mjs"; globalThis.WasmWizExample = { runWasm };',
        resolveDir: EXAMPLES_JS_DIR,
        loader: "js",
      },
      bundle: true,
      write: false,
      format: "iife",
      platform: "browser",
      logLevel: "silent",
    });
    const page = await openPlayground();
    await page.evaluate(bundle.outputFiles[0]!.text);
    const result = await page.evaluate(async (apiKey) => {
      const w = globalThis as unknown as {
        WasmWizExample: { runWasm(o: object): Promise<string> };
      };
      const chunks: string[] = [];
      const summary = await w.WasmWizExample.runWasm({
        apiKey,
        wasmUrl: "/examples/echo.wasm",
        stdin: "from the snippet\n",
        onOutput: (_stream: string, t: string) => chunks.push(t),
      });
      const bad = await w.WasmWizExample.runWasm({ apiKey: "wwz_bad", wasmUrl: "/examples/echo.wasm" }).catch((e: Error) => e.message);
      return { summary, output: chunks.join(""), bad };
    }, server.adminKey);
    assert.equal(result.output, "from the snippet\n");
    assert.match(result.summary, /^SUCCESS · exit 0 · \d+ fuel/);
    assert.match(result.bad, /^The API key was not accepted/);
    await page.close();
  });

  it("has no accessibility violations (axe-core), light and dark", { timeout: 60_000 }, async () => {
    const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
    // A detached run, so the account view's runs table has a row to audit.
    await (await createClient({ baseUrl: server.baseUrl, apiKey: server.adminKey }).submit({ module: guest("hello") })).result();
    const page = await openPlayground(server.adminKey);
    await waitText(page, "#key-status", /admin@test\.local/);
    await page.selectOption("#example", "stderr");
    await page.click("#run-btn");
    await waitRunDone(page);
    await page.evaluate(axeSource);
    const audit = async (where: string) => {
      const violations = await page.evaluate(async () => {
        const axe = (globalThis as unknown as { axe: { run(ctx: Document): Promise<{ violations: { id: string; impact: string; nodes: { target: string[] }[] }[] }> } }).axe;
        const res = await axe.run(document);
        return res.violations.map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
      });
      assert.deepEqual(violations, [], `axe violations on ${where}`);
    };
    for (const scheme of ["light", "dark"] as const) {
      await page.emulateMedia({ colorScheme: scheme });
      await page.click("#tab-run");
      await audit(`the run view (${scheme})`);
      await page.click("#tab-account");
      await waitText(page, "#acct-email", /admin@test\.local/);
      await page.waitForSelector("#runs-table tbody tr[data-execution-id]");
      await audit(`the account view (${scheme})`);
    }
    // The Files panel and the files that came back.
    await page.click("#tab-run");
    await page.selectOption("#example", "fsreport");
    await page.click("#run-btn");
    await waitRunDone(page);
    await page.waitForSelector("#out-files:not([hidden])");
    for (const scheme of ["light", "dark"] as const) {
      await page.emulateMedia({ colorScheme: scheme });
      await audit(`the run view with files in and out (${scheme})`);
    }
    await page.emulateMedia({ colorScheme: "light" });
    await page.close();
  });

  it("shows each example's source (C, Rust, WAT) beside it, as bundled from examples/guests", async () => {
    const page = await openPlayground();
    for (const [name, path, language] of [
      ["hello", "examples/guests/hello.c", "C"],
      ["rust_wordfreq", "examples/guests/rust/src/bin/wordfreq.rs", "Rust"],
      ["trap", "examples/guests/trap.wat", "WAT"],
    ] as const) {
      await page.selectOption("#example", name);
      assert.equal(await text(page, "#example-source-path"), `${path} (${language})`);
      const shown = await page.evaluate(() => document.getElementById("example-source")!.textContent);
      assert.equal(shown, readFileSync(join(REPO_DIR, path), "utf8"));
    }
    await page.close();
  });

  it("a share link restores the example, stdin, args and limits, and never holds the key", { timeout: 60_000 }, async () => {
    const page = await openPlayground(server.adminKey);
    await page.selectOption("#example", "echo");
    await page.fill("#stdin", "shared stdin ✓\n");
    await page.fill("#args", "one\ntwo words");
    await page.click("#limits-details > summary");
    await page.fill("#limit-fuel", "1e9");
    await page.fill("#limit-timeout", "2500");
    await page.click("#share-btn");
    const url = await waitText(page, "#share-url", /#share=/);
    await page.close();
    assert.ok(!url.includes(server.adminKey), "the key is not in the link");
    const fragment = Buffer.from(url.split("#share=")[1]!, "base64url").toString("utf8");
    assert.ok(!fragment.includes("wwz_"), "no key in the fragment");

    const other = await browser.context.newPage();
    await other.goto(url);
    await other.waitForSelector("html[data-ready='true']");
    assert.equal(await other.inputValue("#example"), "echo");
    assert.equal(await other.inputValue("#stdin"), "shared stdin ✓\n");
    assert.equal(await other.inputValue("#args"), "one\ntwo words");
    assert.equal(await other.inputValue("#limit-fuel"), "1e9");
    assert.equal(await other.inputValue("#limit-timeout"), "2500");
    await other.close();
  });

  it("accepts 1e9-style fuel as the CLI does, and explains a fuel that is not a whole number", { timeout: 60_000 }, async () => {
    const page = await openPlayground(server.adminKey);
    await page.selectOption("#example", "loop");
    await page.fill("#limit-fuel", "2e7");
    await page.click("#run-btn");
    await waitRunDone(page);
    assert.match(await text(page, "#stat-outcome"), /Out of fuel/);
    assert.ok(Number((await text(page, "#stat-fuel")).replace(/\D/g, "")) <= 20_000_000);

    await page.fill("#limit-fuel", "1.5e-3");
    await page.click("#run-btn");
    await page.waitForSelector("#error-box:not([hidden])");
    assert.match(await text(page, "#error-box"), /Fuel must be a whole number, e\.g\. 1000000, 1_000_000 or 1e9/);
    await page.close();
  });

  it("does not remember the key unless asked, and warns about an admin key", { timeout: 60_000 }, async () => {
    const page = await openPlayground();
    await page.evaluate(() => localStorage.clear());
    await page.reload();
    await page.waitForSelector("html[data-ready='true']");
    assert.equal(await page.isChecked("#key-remember"), false, "off by default");
    await page.fill("#api-key", server.adminKey);
    await waitText(page, "#key-status", /admin@test\.local/);
    assert.equal(await page.isVisible("#key-admin-warning"), true);
    assert.match(await text(page, "#key-admin-warning"), /admin key/);
    await page.reload();
    await page.waitForSelector("html[data-ready='true']");
    assert.equal(await page.inputValue("#api-key"), "", "not remembered");

    await page.fill("#api-key", server.freeKey);
    await waitText(page, "#key-status", /free@test\.local/);
    assert.equal(await page.isHidden("#key-admin-warning"), true, "no warning for a normal key");
    await page.close();
  });

  it("runs examples inline without storing them, unless the user keeps them", { timeout: 120_000 }, async () => {
    const key = await server.createKey("e2e-inline@test.local", "free");
    const account = createClient({ baseUrl: server.baseUrl, apiKey: key, transport: "grpc-web" }).account;
    const page = await openPlayground(key);
    await waitText(page, "#key-status", /e2e-inline/);
    await page.selectOption("#example", "hello");
    await page.click("#run-btn");
    await waitRunDone(page);
    assert.match(await text(page, "#stat-outcome"), /Success/);
    assert.equal((await account.whoAmI()).storedModules, 0n, "the example was not stored");
    assert.equal(await page.isEnabled("#rerun-btn"), false, "nothing stored to run by hash");

    await page.check("#keep-module");
    await page.click("#run-btn");
    await waitRunDone(page);
    assert.equal((await account.whoAmI()).storedModules, 1n, "kept when asked");
    assert.equal(await page.isEnabled("#rerun-btn"), true);
    await page.close();
  });

  it("shows upload progress while a large module is stored", { timeout: 120_000 }, async () => {
    const page = await openPlayground(server.adminKey);
    await waitText(page, "#key-status", /admin@test\.local/);
    await page.evaluate(() => {
      const w = window as unknown as { __progress: string[] };
      w.__progress = [];
      const box = document.getElementById("upload-progress")!;
      new MutationObserver(() => {
        if (!box.hidden) w.__progress.push(document.getElementById("upload-label")!.textContent ?? "");
      }).observe(box, { attributes: true, attributeFilter: ["hidden"], subtree: true, childList: true, characterData: true });
    });
    const big = paddedModule(guest("echo"), 6 << 20, "e2e-progress");
    const dataTransfer = await page.evaluateHandle(
      ({ b64, fileName }) => {
        const bin = atob(b64);
        const bytes = new Uint8Array(bin.length);
        for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], fileName, { type: "application/wasm" }));
        return dt;
      },
      { b64: Buffer.from(big).toString("base64"), fileName: "big-echo.wasm" },
    );
    await page.dispatchEvent("#dropzone", "drop", { dataTransfer });
    await waitText(page, "#module-info", /stored/);
    const seen = await page.evaluate(() => (window as unknown as { __progress: string[] }).__progress);
    assert.ok(seen.some((t) => /^Uploading big-echo\.wasm \(6(\.\d)? MiB\)… 100%$/.test(t)), JSON.stringify(seen));
    assert.equal(await page.isHidden("#upload-progress"), true, "hidden once stored");
    await page.close();
  });

  it("runs calc in the terminal: 1+2 Enter answers = 3 and Ctrl-D ends the run", { timeout: 120_000 }, async () => {
    const page = await openPlayground(server.adminKey);
    await waitText(page, "#key-status", /admin@test\.local/);
    await page.selectOption("#example", "calc");
    assert.equal(await page.isChecked("#interactive"), true, "calc runs interactively");
    await page.click("#run-btn");
    await page.click("#terminal");
    await waitText(page, "#terminal .xterm-rows", />/);
    await page.keyboard.type("1+2");
    await page.keyboard.press("Enter");
    await waitText(page, "#terminal .xterm-rows", /= 3/);
    await page.keyboard.press("Control+d");
    await waitRunDone(page);
    assert.match(await text(page, "#terminal .xterm-rows"), /bye/);
    assert.match(await text(page, "#stat-outcome"), /success/i);
    await page.screenshot({ path: join(SHOTS, "playground-terminal.png"), fullPage: true });
    await page.close();
  });

  it("edits the line locally before sending it: Backspace removes the last character", { timeout: 120_000 }, async () => {
    const page = await openPlayground(server.adminKey);
    await waitText(page, "#key-status", /admin@test\.local/);
    await page.selectOption("#example", "calc");
    await page.click("#run-btn");
    await page.click("#terminal");
    await waitText(page, "#terminal .xterm-rows", />/);
    await page.keyboard.type("2*9");
    await page.keyboard.press("Backspace");
    await page.keyboard.type("4");
    await page.keyboard.press("Enter");
    await waitText(page, "#terminal .xterm-rows", /= 8/);
    await page.keyboard.press("Control+d");
    await waitRunDone(page);
    await page.close();
  });

  it("Ctrl-C in the terminal stops an interactive run", { timeout: 120_000 }, async () => {
    const page = await openPlayground(server.adminKey);
    await waitText(page, "#key-status", /admin@test\.local/);
    await page.selectOption("#example", "guess");
    await page.click("#run-btn");
    await page.click("#terminal");
    await waitText(page, "#terminal .xterm-rows", /Guess a number/);
    await page.keyboard.press("Control+c");
    await waitText(page, "#run-state", /Stopped/);
    assert.equal(await page.isDisabled("#stop-btn"), true);
    await page.close();
  });

  it("the terminal has an accessible label and no axe violations", { timeout: 60_000 }, async () => {
    const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
    const page = await openPlayground(server.adminKey);
    await page.selectOption("#example", "calc");
    assert.equal(await page.isVisible("#terminal"), true);
    assert.match((await page.getAttribute("#terminal", "aria-label")) ?? "", /terminal/i);
    await page.evaluate(axeSource);
    const violations = await page.evaluate(async () => {
      const axe = (globalThis as unknown as { axe: { run(ctx: Document): Promise<{ violations: { id: string; impact: string; nodes: { target: string[] }[] }[] }> } }).axe;
      const res = await axe.run(document);
      return res.violations.map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
    });
    assert.deepEqual(violations, []);
    await page.close();
  });

  it("logged no script errors or CSP violations", () => {
    assert.deepEqual(problems, []);
  });
});
