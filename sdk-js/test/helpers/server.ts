/**
 * Test fixture: starts a real `wasmwiz-server` on 127.0.0.1:0 with a fresh
 * data directory and an admin key (unlimited tier) and a free-tier user key.
 *
 * The binary: env `WASMWIZ_SERVER_BIN`, else `$CARGO_TARGET_DIR/debug/wasmwiz-server`,
 * else `<repo>/target/debug/wasmwiz-server`.
 */
import { spawn, execFile, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { createInterface } from "node:readline";

const execFileP = promisify(execFile);

/** sdk-js/ (this file is compiled to sdk-js/build/test/helpers/). */
export const SDK_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
export const REPO_DIR = resolve(SDK_DIR, "..");
export const GUESTS_DIR = join(REPO_DIR, "examples", "guests");

export function serverBin(): string {
  if (process.env.WASMWIZ_SERVER_BIN) return process.env.WASMWIZ_SERVER_BIN;
  if (process.env.CARGO_TARGET_DIR) return join(process.env.CARGO_TARGET_DIR, "debug", "wasmwiz-server");
  return join(REPO_DIR, "target", "debug", "wasmwiz-server");
}

/** The bytes of examples/guests/<name>.wasm. */
export function guest(name: string): Uint8Array {
  return new Uint8Array(readFileSync(join(GUESTS_DIR, `${name}.wasm`)));
}

export interface TestServer {
  baseUrl: string;
  dataDir: string;
  adminKey: string;
  /** A free-tier, non-admin key (user free@test.local). */
  freeKey: string;
  /** Everything the server printed so far. */
  output(): string;
  /** Creates another key with the CLI (the server keeps running). */
  createKey(email: string, tier: string, admin?: boolean): Promise<string>;
  stop(): Promise<void>;
}

async function createKeyCli(dataDir: string, email: string, tier: string, admin: boolean): Promise<string> {
  const args = ["admin", "create-key", "--email", email, "--tier", tier, "--data-dir", dataDir];
  if (admin) args.push("--admin");
  const { stdout } = await execFileP(serverBin(), args, { timeout: 60_000 });
  const lines = stdout.trim().split("\n");
  const key = lines[lines.length - 1]!.trim();
  if (!/^wwz_/.test(key)) throw new Error(`create-key printed no key: ${stdout}`);
  return key;
}

/** Starts a server on a free port; `extraArgs` go after `serve` (e.g. `--webhook-allow-http=true`). */
export async function startServer(extraArgs: string[] = []): Promise<TestServer> {
  const bin = serverBin();
  if (!existsSync(bin)) throw new Error(`wasmwiz-server not found at ${bin} (build it, or set WASMWIZ_SERVER_BIN)`);
  const dataDir = mkdtempSync(join(tmpdir(), "wasmwiz-js-"));
  const adminKey = await createKeyCli(dataDir, "admin@test.local", "unlimited", true);
  const freeKey = await createKeyCli(dataDir, "free@test.local", "free", false);

  const child: ChildProcess = spawn(bin, ["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, ...extraArgs], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "warn" },
  });
  let log = "";
  child.stderr!.on("data", (d: Buffer) => {
    log += d.toString();
  });
  const baseUrl = await new Promise<string>((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not print its address in 60 s:\n${log}`)), 60_000);
    const rl = createInterface({ input: child.stdout! });
    rl.on("line", (line) => {
      log += line + "\n";
      const m = /listening on (https?):\/\/([0-9.]+):(\d+)/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolveUrl(`${m[1]}://${m[2]}:${m[3]}`);
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before listening:\n${log}`));
    });
  });

  return {
    baseUrl,
    dataDir,
    adminKey,
    freeKey,
    output: () => log,
    createKey: (email, tier, admin = false) => createKeyCli(dataDir, email, tier, admin),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise<void>((r) => child.once("exit", () => r()));
        child.kill("SIGTERM");
        const t = setTimeout(() => child.kill("SIGKILL"), 15_000);
        await exited;
        clearTimeout(t);
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** hello.wasm plus one custom section of `padBytes` filler: runs like hello, other sha256. */
export function paddedModule(base: Uint8Array, padBytes: number, name = "pad"): Uint8Array {
  const leb = (n: number): number[] => {
    const out: number[] = [];
    do {
      let b = n & 0x7f;
      n = Math.floor(n / 128);
      if (n) b |= 0x80;
      out.push(b);
    } while (n);
    return out;
  };
  const nameBytes = new TextEncoder().encode(name);
  const payloadHead = [...leb(nameBytes.length), ...nameBytes];
  const payloadLen = payloadHead.length + padBytes;
  const head = [0x00, ...leb(payloadLen), ...payloadHead];
  const out = new Uint8Array(base.length + head.length + padBytes);
  out.set(base, 0);
  out.set(head, base.length);
  // Filler: a repeating pattern (not all zeros, so nothing can shortcut it).
  for (let i = base.length + head.length; i < out.length; i++) out[i] = i & 0xff;
  return out;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export const EXAMPLES_JS_DIR = join(REPO_DIR, "examples", "js");

/**
 * Makes `@wasmwiz/sdk` importable from examples/js/ the way `npm install`
 * there would (a node_modules symlink to sdk-js/; node_modules is ignored by
 * git). Needs sdk-js/dist (npm run build).
 */
export function linkSdkIntoExamples(): void {
  if (!existsSync(join(SDK_DIR, "dist", "node.js"))) throw new Error("sdk-js/dist is missing: run `npm run build` first");
  const scope = join(EXAMPLES_JS_DIR, "node_modules", "@wasmwiz");
  const link = join(scope, "sdk");
  mkdirSync(scope, { recursive: true });
  if (!existsSync(link)) symlinkSync(SDK_DIR, link, "dir");
}
