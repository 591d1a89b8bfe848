/**
 * Launches the system Chromium through playwright-core (no browser
 * downloads): env `CHROMIUM_PATH`, else /usr/bin/chromium.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserContext } from "playwright-core";

export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--no-first-run",
  "--disable-sync",
  "--disable-quic",
];

export interface Browser {
  context: BrowserContext;
  close(): Promise<void>;
}

/** A persistent context in a fresh user-data-dir (removed on close). */
export async function launchBrowser(viewport = { width: 1360, height: 960 }): Promise<Browser> {
  const userDataDir = mkdtempSync(join(tmpdir(), "wasmwiz-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
    headless: true,
    args: CHROMIUM_ARGS,
    viewport,
    colorScheme: "light",
    reducedMotion: "reduce",
  });
  return {
    context,
    async close() {
      await context.close().catch(() => undefined);
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}
