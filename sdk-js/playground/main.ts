/**
 * The WasmWiz playground: a single page served by the server at `/`, talking
 * gRPC-web to the same origin through `@wasmwiz/sdk`.
 *
 * # Layout
 * - key bar: the API key (remembered in localStorage only when asked),
 *   checked with WhoAmI; an admin key shows a warning.
 * - Run view: example (its source beside it, `example-sources.ts`) or
 *   dropped module, input files (`files-panel.ts`) → `Run` (examples inline,
 *   not stored unless "keep" is ticked; a dropped module by sha256 after
 *   `PutModule`; the files inline) → live console → stats → the files that
 *   came back (`out-files.ts`). A share link (`share.ts`) puts the inputs,
 *   never the key, in the URL fragment.
 * - Account view: WhoAmI (tier, allowance), GetUsage (SVG charts), own keys,
 *   recent detached runs (`detached-runs.ts`, ListExecutions).
 *
 * No inline scripts or styles (the page is served with a strict CSP); charts
 * are SVG elements built here.
 */
import {
  Code,
  Outcome,
  WasmWizError,
  createClient,
  createClientWithTransport,
  describeError,
  humanBytes,
  sha256Hex,
  timestampDate,
  type ApiKeyInfo,
  type LimitExceeded,
  type Finished,
  type GetUsageResponse,
  type LimitsInit,
  type RunOptions,
  type RunEvent,
  type RunResult,
  type Started,
  type WasmWizClient,
} from "../src/web.js";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { $, h } from "./dom.js";
import { fetchWithUploadProgress } from "./xhr-fetch.js";
import { EXAMPLE_SOURCES } from "./example-sources.js";
import { panicMessage } from "./panic.js";
import { parseCount } from "./count.js";
import { readShared, shareUrl, type SharedInputs } from "./share.js";
import { FilesPanel } from "./files-panel.js";
import { clearOutFiles, showOutFiles } from "./out-files.js";
import { TerminalPanel } from "./terminal.js";
import { loadDetachedRuns } from "./detached-runs.js";

// ---------------------------------------------------------------- examples

interface Example {
  name: string;
  title: string;
  description: string;
  stdin?: string;
  args?: string[];
  env?: Record<string, string>;
  limits?: { fuel?: string; timeoutMs?: string };
  /** Input files, preloaded in the Files panel. */
  files?: Record<string, string>;
  /** Collect patterns (empty: `**` when there are files). */
  collect?: string[];
  /** Run it in the terminal (the Interactive box ticked). */
  interactive?: boolean;
}

const EXAMPLES: Example[] = [
  { name: "hello", title: "hello — Hello, world (C)", description: "Prints a greeting and exits with 0." },
  {
    name: "calc",
    title: "calc — a calculator REPL (C, interactive)",
    description: "Type an expression such as 1+2*3 and press Enter: it answers each line at once. Ctrl-D or “quit” ends it.",
    interactive: true,
  },
  {
    name: "guess",
    title: "guess — guess the number (C, interactive)",
    description: "Guess a number from 1 to 100; it answers higher or lower. Change the random seed for another number.",
    interactive: true,
  },
  {
    name: "echo",
    title: "echo — copy stdin to stdout (C)",
    description: "Reads standard input until its end and writes it back, like cat.",
    stdin: "Hello from the playground!\nEvery byte of stdin comes back on stdout.\n",
  },
  {
    name: "progress",
    title: "progress — streamed ticks (C)",
    description: "Prints “tick N” lines with CPU work between them: watch the output arrive while it runs.",
    args: ["8"],
  },
  {
    name: "hash",
    title: "hash — FNV-1a over N MiB (C, CPU-bound)",
    description: "Generates argv[1] MiB of pseudo-random bytes and hashes them. Try 1, 8 or 40 and compare the fuel.",
    args: ["4"],
  },
  {
    name: "argsenv",
    title: "argsenv — arguments and environment (C)",
    description: "Prints argv and every environment variable it was given (nothing else is inherited).",
    args: ["first", "second argument"],
    env: { GREETING: "hello", LANG: "C.UTF-8" },
  },
  {
    name: "clockrand",
    title: "clockrand — virtual clock and seeded randomness (C)",
    description: "Reads the clocks, sleeps 1 s of virtual time and draws random bytes: the same seed always gives the same output.",
  },
  {
    name: "stderr",
    title: "stderr — both output streams (C)",
    description: "Writes one line to stdout and one to stderr.",
  },
  {
    name: "exitcode",
    title: "exitcode — non-zero exit (C)",
    description: "Exits with the status given as argv[1].",
    args: ["3"],
  },
  {
    name: "fsreport",
    title: "fsreport — files in, a report out (C)",
    description:
      "Counts the lines and words of every input/*.txt file and writes out/report.txt, which comes back below the output. Edit the files or add your own.",
    files: {
      "input/poem.txt": "The fog comes\non little cat feet.\n\nIt sits looking\nover harbor and city\non silent haunches\nand then moves on.\n",
      "input/todo.txt": "write the report\nread it back\n",
      "input/README.md": "Only .txt files are counted.\n",
    },
    collect: ["out/*"],
  },
  {
    name: "rust_wordfreq",
    title: "wordfreq — most frequent words (Rust)",
    description:
      "Counts the words on stdin with std's HashMap and prints the argv[1] most frequent. Tick Interactive to type the lines yourself; Ctrl-D counts them.",
    stdin: "the quick brown fox jumps over the lazy dog; the dog sleeps, the fox runs\n",
    args: ["3"],
  },
  {
    name: "rust_panic",
    title: "panic — a Rust panic (Rust)",
    description: "Indexes past the end of an array: the panic message goes to stderr, then the guest traps.",
  },
  {
    name: "trap",
    title: "trap — executes unreachable (WAT)",
    description: "Traps at once: the outcome is a trap of kind “unreachable”.",
  },
  {
    name: "loop",
    title: "loop — never ends (WAT)",
    description: "Spins forever: a limit stops it. Here fuel is capped at 50,000,000; press Stop to cancel sooner.",
    limits: { fuel: "50000000" },
  },
];

const CUSTOM = "__custom__";
const KEY_STORAGE = "wasmwiz.apiKey";
const MAX_CONSOLE_CHARS = 2_000_000;

// ---------------------------------------------------------------- helpers


const SVG_NS = "http://www.w3.org/2000/svg";
function s(tag: string, attrs: Record<string, string | number> = {}): SVGElement {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

const nf = new Intl.NumberFormat("en-US");
function fmtInt(n: bigint | number): string {
  return nf.format(n);
}

function fmtCompact(n: bigint | number): string {
  const v = Number(n);
  if (v < 1000) return String(v);
  const units = ["k", "M", "G", "T", "P", "E"];
  let x = v;
  let i = -1;
  while (x >= 1000 && i < units.length - 1) {
    x /= 1000;
    i++;
  }
  return `${Number(x.toPrecision(3))} ${units[i]}`;
}

function fmtBytes(n: bigint | number): string {
  const v = Number(n);
  if (v < 1024) return `${v} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let x = v;
  let i = -1;
  while (x >= 1024 && i < units.length - 1) {
    x /= 1024;
    i++;
  }
  return `${x >= 100 ? x.toFixed(0) : x.toFixed(1)} ${units[i]}`;
}

function fmtDuration(us: bigint | number): string {
  const v = Number(us);
  if (v < 1000) return `${v} µs`;
  if (v < 1_000_000) return `${(v / 1000).toFixed(v < 10_000 ? 2 : 1)} ms`;
  return `${(v / 1_000_000).toFixed(2)} s`;
}

function fmtDate(d: Date): string {
  return d.toISOString().slice(0, 16).replace("T", " ");
}

function parseLines(text: string): string[] {
  const lines = text.split("\n");
  if (lines.length && lines[lines.length - 1] === "") lines.pop();
  return text === "" ? [] : lines;
}

function parseEnv(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const eq = line.indexOf("=");
    if (eq <= 0) throw new Error(`Environment line “${line}” is not KEY=value`);
    env[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return env;
}

function parseWhole(id: string, label: string, scale = 1n): bigint | undefined {
  const raw = $<HTMLInputElement>(id).value.trim();
  if (raw === "") return undefined;
  if (!/^\d+$/.test(raw)) throw new Error(`${label} must be a whole number`);
  return BigInt(raw) * scale;
}

// ---------------------------------------------------------------- state

const state = {
  client: undefined as WasmWizClient | undefined,
  keyForClient: "",
  exampleBytes: new Map<string, Uint8Array>(),
  custom: undefined as { name: string; bytes: Uint8Array; sha256?: string; uploaded: boolean } | undefined,
  lastSha: "",
  running: undefined as AbortController | undefined,
  /** The tier's filesystem limit, as the last run without a Files limit reported it (per key). */
  tierFsBytes: undefined as { key: string; bytes: number } | undefined,
  stoppedByUser: false,
  accountStale: true,
  /** True when the last run's module is stored on the account (so "Run again by hash" can run it). */
  lastStored: false,
};

function apiKey(): string {
  return $<HTMLInputElement>("api-key").value.trim();
}

function client(): WasmWizClient {
  const key = apiKey();
  if (!state.client || state.keyForClient !== key) {
    state.client = createClient({ baseUrl: location.origin, apiKey: key, transport: "grpc-web" });
    state.keyForClient = key;
  }
  return state.client;
}

// ---------------------------------------------------------------- key bar

let whoTimer: ReturnType<typeof setTimeout> | undefined;
let whoSeq = 0;

function setKeyStatus(text: string, kind: "ok" | "bad" | "" = ""): void {
  const el = $("key-status");
  el.textContent = text;
  el.dataset["kind"] = kind;
}

async function checkKey(): Promise<void> {
  const key = apiKey();
  const seq = ++whoSeq;
  $("key-admin-warning").hidden = true;
  if (!key) {
    setKeyStatus("Paste an API key to run programs.");
    return;
  }
  setKeyStatus("Checking key…");
  try {
    const me = await client().account.whoAmI();
    if (seq !== whoSeq) return;
    setKeyStatus(`${me.email} · ${me.tier}${me.admin ? " · admin" : ""}`, "ok");
    $("key-admin-warning").hidden = !me.admin;
  } catch (e) {
    if (seq !== whoSeq) return;
    $("key-admin-warning").hidden = true;
    const err = WasmWizError.from(e);
    setKeyStatus(err.code === Code.Unauthenticated ? "Key not accepted" : describeError(err).title, "bad");
  }
}

function initKeyBar(): void {
  const input = $<HTMLInputElement>("api-key");
  const remember = $<HTMLInputElement>("key-remember");
  const toggle = $<HTMLButtonElement>("key-toggle");
  let saved: string | null = null;
  try {
    saved = localStorage.getItem(KEY_STORAGE);
  } catch {
    // storage disabled
  }
  if (saved) input.value = saved;
  // Off unless the user asked before (a saved key): a key on a shared device outlives the visit.
  remember.checked = saved !== null;

  const persist = () => {
    try {
      if (remember.checked && apiKey()) localStorage.setItem(KEY_STORAGE, apiKey());
      else localStorage.removeItem(KEY_STORAGE);
    } catch {
      // storage disabled
    }
  };
  input.addEventListener("input", () => {
    persist();
    state.accountStale = true;
    whoSeq++; // a check still running for the previous key must not report
    setKeyStatus(apiKey() ? "Checking key…" : "Paste an API key to run programs.");
    clearTimeout(whoTimer);
    whoTimer = setTimeout(() => void checkKey(), 400);
  });
  remember.addEventListener("change", persist);
  toggle.addEventListener("click", () => {
    const show = input.type === "password";
    input.type = show ? "text" : "password";
    toggle.textContent = show ? "Hide" : "Show";
    toggle.setAttribute("aria-pressed", String(show));
  });
  $("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    void checkKey();
  });
  void checkKey();
}

// ---------------------------------------------------------------- tabs

function initTabs(): void {
  const tabs = [$<HTMLButtonElement>("tab-run"), $<HTMLButtonElement>("tab-account")];
  const select = (tab: HTMLButtonElement, focus: boolean) => {
    for (const t of tabs) {
      const on = t === tab;
      t.setAttribute("aria-selected", String(on));
      t.tabIndex = on ? 0 : -1;
      $(t.getAttribute("aria-controls")!).hidden = !on;
    }
    if (focus) tab.focus();
    if (tab.id === "tab-account" && state.accountStale) void loadAccount();
    history.replaceState(null, "", tab.id === "tab-account" ? "#account" : "#run");
  };
  tabs.forEach((tab, i) => {
    tab.addEventListener("click", () => select(tab, false));
    tab.addEventListener("keydown", (e) => {
      let next = -1;
      if (e.key === "ArrowRight") next = (i + 1) % tabs.length;
      else if (e.key === "ArrowLeft") next = (i - 1 + tabs.length) % tabs.length;
      else if (e.key === "Home") next = 0;
      else if (e.key === "End") next = tabs.length - 1;
      if (next >= 0) {
        e.preventDefault();
        select(tabs[next]!, true);
      }
    });
  });
  if (location.hash === "#account") select(tabs[1]!, false);
}

// ---------------------------------------------------------------- run view: inputs

function applyExample(name: string): void {
  const ex = EXAMPLES.find((x) => x.name === name);
  const desc = $("example-desc");
  if (!ex) {
    desc.textContent = state.custom ? `Your module ${state.custom.name} (${fmtBytes(state.custom.bytes.length)}).` : "";
    showSource(undefined);
    return;
  }
  desc.textContent = ex.description;
  showSource(name);
  files.replace(ex.files, ex.collect);
  $<HTMLTextAreaElement>("stdin").value = ex.stdin ?? "";
  $<HTMLTextAreaElement>("args").value = (ex.args ?? []).join("\n");
  $<HTMLTextAreaElement>("env").value = Object.entries(ex.env ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join("\n");
  $<HTMLInputElement>("limit-fuel").value = ex.limits?.fuel ?? "";
  $<HTMLInputElement>("limit-timeout").value = ex.limits?.timeoutMs ?? "";
  $<HTMLInputElement>("limit-memory").value = "";
  $<HTMLInputElement>("limit-output").value = "";
  $<HTMLInputElement>("limit-fs").value = "";
  $<HTMLInputElement>("interactive").checked = ex.interactive ?? false;
  showTerminal(ex.interactive ?? false);
  if (ex.limits) ($<HTMLDetailsElement>("limits-details")).open = true;
}

/** Shows the example's source (C, Rust or WAT) beside it; none for a dropped module. */
function showSource(name: string | undefined): void {
  const src = name === undefined ? undefined : EXAMPLE_SOURCES[name];
  const box = $<HTMLDetailsElement>("example-source-box");
  box.hidden = !src;
  $("keep-module").parentElement!.hidden = !src;
  if (!src) return;
  $("example-source-path").textContent = `${src.path} (${src.language})`;
  $("example-source").textContent = src.text;
}

/** Fills the inputs from a share link's fragment. */
function applyShared(shared: SharedInputs): void {
  const sel = $<HTMLSelectElement>("example");
  if (EXAMPLES.some((x) => x.name === shared.example)) {
    sel.value = shared.example;
    applyExample(shared.example);
  }
  if (shared.stdin !== undefined) $<HTMLTextAreaElement>("stdin").value = shared.stdin;
  if (shared.args !== undefined) $<HTMLTextAreaElement>("args").value = shared.args.join("\n");
  if (shared.env !== undefined) {
    $<HTMLTextAreaElement>("env").value = Object.entries(shared.env)
      .map(([k, v]) => `${k}=${v}`)
      .join("\n");
  }
  const limits = shared.limits ?? {};
  const ids: Record<string, string> = { fuel: "limit-fuel", timeoutMs: "limit-timeout", memoryMiB: "limit-memory", outputKiB: "limit-output", fsKiB: "limit-fs", seed: "seed" };
  for (const [k, id] of Object.entries(ids)) {
    const v = limits[k as keyof typeof limits];
    if (v !== undefined) $<HTMLInputElement>(id).value = v;
  }
  if (Object.keys(limits).length) $<HTMLDetailsElement>("limits-details").open = true;
}

/** The current inputs, as a share link would carry them. */
function currentInputs(): SharedInputs {
  const limits: Record<string, string> = {};
  const ids: Record<string, string> = { fuel: "limit-fuel", timeoutMs: "limit-timeout", memoryMiB: "limit-memory", outputKiB: "limit-output", fsKiB: "limit-fs", seed: "seed" };
  for (const [k, id] of Object.entries(ids)) {
    const v = $<HTMLInputElement>(id).value.trim();
    if (v) limits[k] = v;
  }
  const env = $<HTMLTextAreaElement>("env").value;
  return {
    example: $<HTMLSelectElement>("example").value,
    stdin: $<HTMLTextAreaElement>("stdin").value,
    args: parseLines($<HTMLTextAreaElement>("args").value),
    ...(env.trim() ? { env: parseEnv(env) } : {}),
    ...(Object.keys(limits).length ? { limits } : {}),
  };
}

function renderExampleOptions(): void {
  const sel = $<HTMLSelectElement>("example");
  sel.replaceChildren();
  const group = h("optgroup", { label: "Bundled examples" });
  for (const ex of EXAMPLES) group.append(h("option", { value: ex.name }, ex.title));
  sel.append(group);
  if (state.custom) {
    sel.append(h("optgroup", { label: "Your module" }, h("option", { value: CUSTOM }, state.custom.name)));
  }
}

function setModuleInfo(nodes: (Node | string)[]): void {
  $("module-info").replaceChildren(...nodes);
}

/** "Run again by hash" refers to the last run's module: forget it when another module is picked. */
function forgetLastRun(): void {
  state.lastSha = "";
  if (!state.running) $<HTMLButtonElement>("rerun-btn").disabled = true;
}

async function loadCustom(file: File): Promise<void> {
  hideError();
  forgetLastRun();
  const bytes = new Uint8Array(await file.arrayBuffer());
  const sha = await sha256Hex(bytes);
  state.custom = { name: file.name, bytes, uploaded: false, ...(sha ? { sha256: sha } : {}) };
  renderExampleOptions();
  const sel = $<HTMLSelectElement>("example");
  sel.value = CUSTOM;
  applyExample(CUSTOM);
  setModuleInfo([
    h("strong", {}, file.name),
    ` · ${fmtBytes(bytes.length)}`,
    ...(sha ? [h("br"), "sha256 ", h("code", {}, sha)] : []),
  ]);
  output.clear(`${file.name} loaded: press Run.`);
  $("stats").hidden = true;
  setRunState("Idle", "idle");
  if (apiKey()) await storeCustom().catch(() => undefined);
}

/** Stores the dropped module with PutModule (skipped when the server has it). */
async function storeCustom(): Promise<string> {
  const custom = state.custom!;
  const progress = showUploadProgress(custom.name, custom.bytes.length);
  try {
    const up = await progress.client.upload(custom.bytes);
    custom.sha256 = up.sha256;
    custom.uploaded = true;
    const imports = up.info.imports.map((i) => i.name);
    setModuleInfo([
      h("strong", {}, custom.name),
      ` · ${fmtBytes(custom.bytes.length)} · ${up.uploaded ? (up.alreadyExisted ? "already stored" : "stored") : "already stored"}`,
      h("br"),
      "sha256 ",
      h("code", {}, up.sha256),
      ...(imports.length ? [h("br"), `imports: ${imports.join(", ")}`] : []),
    ]);
    return up.sha256;
  } catch (e) {
    showError(e);
    setRunState(describeError(e).title, "bad");
    const local = e instanceof WasmWizError && e.local;
    output.clear(local ? `${custom.name} was not uploaded.` : `The server refused ${custom.name}.`);
    $("module-info").append(
      h("br"),
      h("span", { class: "refused" }, local ? "Not uploaded (see the error)." : "Refused by the server (see the error)."),
    );
    throw e;
  } finally {
    progress.done();
  }
}

/** Modules above this show upload progress (smaller ones are sent at once). */
const PROGRESS_MIN_BYTES = 1024 * 1024;

/**
 * The client that stores a module, and the progress bar it drives. A large
 * module goes through a client whose `fetch` is XMLHttpRequest (gRPC-web
 * sends it in one `PutModule` request, and only XHR reports how much of a
 * request body went out); small ones through the usual client.
 */
function showUploadProgress(name: string, size: number): { client: WasmWizClient; done(): void } {
  if (size < PROGRESS_MIN_BYTES) return { client: client(), done: () => undefined };
  const box = $("upload-progress");
  const label = $("upload-label");
  const bar = $<HTMLProgressElement>("upload-bar");
  bar.removeAttribute("value");
  label.textContent = `Uploading ${name} (${fmtBytes(size)})…`;
  box.hidden = false;
  const onProgress = (sent: number, total: number) => {
    // The WhoAmI and GetModule calls before it go through here too: only the module's request counts.
    if (total < size) return;
    bar.value = sent / total;
    label.textContent = `Uploading ${name} (${fmtBytes(size)})… ${Math.floor((100 * sent) / total)}%`;
  };
  const transport = createGrpcWebTransport({ baseUrl: location.origin, fetch: fetchWithUploadProgress(onProgress) });
  return {
    client: createClientWithTransport(transport, "grpc-web", { baseUrl: location.origin, apiKey: apiKey() }),
    done() {
      box.hidden = true;
    },
  };
}

function initInputs(): void {
  renderExampleOptions();
  const sel = $<HTMLSelectElement>("example");
  sel.addEventListener("change", () => {
    forgetLastRun();
    applyExample(sel.value);
    if (sel.value !== CUSTOM) setModuleInfo([]);
  });
  applyExample(sel.value);
  const shared = readShared(location.hash);
  if (shared) applyShared(shared);

  $("share-btn").addEventListener("click", () => {
    let url: string;
    try {
      url = shareUrl(location.href, currentInputs());
    } catch (e) {
      showError(e);
      return;
    }
    $("share-url").textContent = url;
    void navigator.clipboard?.writeText(url).catch(() => undefined);
  });

  const drop = $("dropzone");
  const file = $<HTMLInputElement>("file-input");
  drop.addEventListener("click", () => file.click());
  drop.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      file.click();
    }
  });
  file.addEventListener("change", () => {
    const f = file.files?.[0];
    if (f) void loadCustom(f);
    file.value = "";
  });
  for (const ev of ["dragenter", "dragover"]) {
    drop.addEventListener(ev, (e) => {
      e.preventDefault();
      drop.classList.add("over");
    });
  }
  for (const ev of ["dragleave", "drop"]) {
    drop.addEventListener(ev, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    const f = (e as DragEvent).dataTransfer?.files?.[0];
    if (f) void loadCustom(f);
  });
  // A file dropped anywhere else must not navigate away from the page.
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => e.preventDefault());
}

// ---------------------------------------------------------------- run view: output

class Console {
  readonly el = $<HTMLPreElement>("console");
  #decoders = { stdout: new TextDecoder(), stderr: new TextDecoder() };
  #last: { stream: string; node: Text } | undefined;
  #chars = 0;
  #capped = false;

  clear(placeholder?: string): void {
    this.el.replaceChildren();
    if (placeholder) this.el.append(h("span", { class: "console-placeholder" }, placeholder));
    this.#decoders = { stdout: new TextDecoder(), stderr: new TextDecoder() };
    this.#last = undefined;
    this.#chars = 0;
    this.#capped = false;
  }

  write(stream: "stdout" | "stderr", data: Uint8Array, end = false): void {
    const text = this.#decoders[stream].decode(data, { stream: !end });
    if (!text || this.#capped) return;
    this.el.querySelector(".console-placeholder")?.remove();
    const stick = this.el.scrollTop + this.el.clientHeight >= this.el.scrollHeight - 8;
    let t = text;
    if (this.#chars + t.length > MAX_CONSOLE_CHARS) {
      t = t.slice(0, Math.max(0, MAX_CONSOLE_CHARS - this.#chars));
      this.#capped = true;
    }
    this.#chars += t.length;
    if (this.#last?.stream === stream) {
      this.#last.node.appendData(t);
    } else {
      const node = document.createTextNode(t);
      this.el.append(h("span", { class: stream === "stdout" ? "out" : "err" }, node));
      this.#last = { stream, node };
    }
    if (this.#capped) this.el.append(h("span", { class: "note" }, "\n[output shown here was cut at 2 MB]\n"));
    if (stick) this.el.scrollTop = this.el.scrollHeight;
  }

  flush(): void {
    this.write("stdout", new Uint8Array(0), true);
    this.write("stderr", new Uint8Array(0), true);
  }

  note(text: string): void {
    this.el.querySelector(".console-placeholder")?.remove();
    this.el.append(h("span", { class: "note" }, text));
    this.#last = undefined;
  }
}

let output: Console;

function setRunState(text: string, kind: "idle" | "running" | "ok" | "bad" | "warn"): void {
  const el = $("run-state");
  el.textContent = text;
  el.dataset["state"] = kind;
}

const countdowns = new Map<string, ReturnType<typeof setInterval>>();

function showError(e: unknown, box = "error"): void {
  const { title, detail } = e instanceof WasmWizError || isConnectLike(e) ? describeError(e) : { title: "Error", detail: String((e as Error)?.message ?? e) };
  showErrorText(title, detail, box);
  if (box === "error") showFieldError(e);
  // Rate limited or unavailable: count the wait down live.
  if (e instanceof WasmWizError && e.retryAfter !== undefined && (e.code === Code.ResourceExhausted || e.code === Code.Unavailable)) {
    const deadline = Date.now() + e.retryAfter * 1000;
    const tick = () => {
      const left = Math.ceil((deadline - Date.now()) / 1000);
      const again = new WasmWizError(e.code, e.rawMessage, { details: e.details, metadata: e.metadata, retryAfter: Math.max(0, left) });
      const words = describeError(again).detail;
      $(`${box}-detail`).textContent = left > 0 ? words : words.replace(/ Try again in .*$/, " You can try again now.");
      if (left <= 0) stopCountdown(box);
    };
    countdowns.set(box, setInterval(tick, 1000));
  }
}

function stopCountdown(box: string): void {
  clearInterval(countdowns.get(box));
  countdowns.delete(box);
}

function showErrorText(title: string, detail: string, box = "error"): void {
  stopCountdown(box);
  $(`${box}-title`).textContent = title;
  $(`${box}-detail`).textContent = detail;
  $(`${box}-box`).hidden = false;
}

function isConnectLike(e: unknown): boolean {
  return typeof e === "object" && e !== null && "code" in e && "rawMessage" in e;
}

function hideError(box = "error"): void {
  stopCountdown(box);
  $(`${box}-box`).hidden = true;
  if (box === "error") clearFieldErrors();
}

// ---------------------------------------------------------------- limit errors by their field

/** The input a request field came from (`module` is the dropzone). */
const FIELD_INPUTS: Record<string, string> = {
  "limits.fuel": "limit-fuel",
  "limits.memory_bytes": "limit-memory",
  "limits.timeout_ms": "limit-timeout",
  "limits.max_output_bytes": "limit-output",
  "limits.fs_bytes": "limit-fs",
  fs: "files-total",
  stdin: "stdin",
  args: "args",
  env: "env",
  module: "dropzone",
  module_size: "dropzone",
  size: "dropzone",
};

function limitAmount(value: number, unit: string): string {
  switch (unit) {
    case "bytes":
      return humanBytes(value);
    case "ms":
      return `${fmtInt(value)} ms`;
    case "count":
      return `${fmtInt(value)} items`;
    default:
      return fmtInt(value);
  }
}

/** The limit in the words of the form: "Memory 2 GiB is above the free tier's 128 MiB". */
function limitWords(limit: LimitExceeded, inputId: string, local: boolean): string {
  const whose = limit.tier ? `the ${limit.tier} tier's` : "the server's";
  if (inputId === "files-total") {
    return `These files hold ${limitAmount(limit.requested, limit.unit)}, above the ${limitAmount(limit.maximum, limit.unit)} the guest's filesystem may hold${local ? "; nothing was uploaded" : ""}.`;
  }
  const label = inputId === "dropzone" ? "This module" : (document.querySelector(`label[for="${inputId}"]`)?.textContent ?? limit.option).replace(/\s*\(.*\)$/, "");
  const said = `${label} ${limitAmount(limit.requested, limit.unit)} is above ${whose} ${limitAmount(limit.maximum, limit.unit)}`;
  if (inputId === "dropzone") return `${said}${local ? "; nothing was uploaded" : ""}.`;
  return inputId === "args" || inputId === "env" ? `${said} (args and env together).` : `${said}.`;
}

/** Shows a limit error next to the input the user typed it in. */
function showFieldError(e: unknown): void {
  if (!(e instanceof WasmWizError) || !e.limit) return;
  const inputId = FIELD_INPUTS[e.limit.field];
  if (!inputId) return;
  const input = $(inputId);
  if (document.getElementById(`${inputId}-error`)) return; // already shown (a refused upload is reported twice)
  const note = h("p", { class: "field-error", id: `${inputId}-error`, role: "alert" }, limitWords(e.limit, inputId, e.local));
  (inputId === "dropzone" ? $("module-info") : input).after(note);
  if (inputId === "files-total") return; // a summary, not an input
  input.setAttribute("aria-invalid", "true");
  input.setAttribute("aria-describedby", `${input.getAttribute("aria-describedby") ?? ""} ${inputId}-error`.trim());
  const details = input.closest("details");
  if (details) details.open = true;
}

function clearFieldErrors(): void {
  for (const note of document.querySelectorAll(".field-error")) {
    const inputId = note.id.replace(/-error$/, "");
    const input = document.getElementById(inputId);
    input?.removeAttribute("aria-invalid");
    const rest = (input?.getAttribute("aria-describedby") ?? "").split(" ").filter((id) => id && id !== note.id);
    if (rest.length) input?.setAttribute("aria-describedby", rest.join(" "));
    else input?.removeAttribute("aria-describedby");
    note.remove();
  }
}

const OUTCOME_WORDS: Record<number, string> = {
  [Outcome.SUCCESS]: "Success",
  [Outcome.EXIT_NONZERO]: "Exited with a non-zero code",
  [Outcome.TRAP]: "Trapped",
  [Outcome.OUT_OF_FUEL]: "Out of fuel",
  [Outcome.TIMEOUT]: "Timed out",
  [Outcome.MEMORY_LIMIT]: "Memory limit reached",
  [Outcome.OUTPUT_LIMIT]: "Output limit reached",
  [Outcome.CANCELLED]: "Cancelled",
};

function outcomeKind(o: Outcome): "ok" | "warn" | "bad" {
  if (o === Outcome.SUCCESS) return "ok";
  if (o === Outcome.EXIT_NONZERO || o === Outcome.CANCELLED) return "warn";
  return "bad";
}

function showStats(started: Started | undefined, f: Finished, stderr = ""): void {
  const kind = outcomeKind(f.outcome);
  let words = OUTCOME_WORDS[f.outcome] ?? "Unknown outcome";
  const panic = f.outcome === Outcome.TRAP && f.trapKind === "unreachable" ? panicMessage(stderr) : undefined;
  if (panic !== undefined) words = `The program panicked: ${panic}`;
  else if (f.outcome === Outcome.TRAP && f.trapKind) words += `: ${f.trapKind.replace(/_/g, " ")}`;
  const outcome = $("stat-outcome");
  outcome.replaceChildren(h("span", { class: `badge ${kind}` }, words));
  if (f.message && panic === undefined) outcome.append(h("span", { class: "outcome-msg" }, f.message));
  $("stat-exit").textContent = f.exitCode === -1 ? "— (did not exit)" : String(f.exitCode);
  $("stat-fuel").textContent = fmtInt(f.fuelConsumed);
  $("stat-time").textContent = fmtDuration(f.durationUs);
  $("stat-memory").textContent = fmtBytes(f.memoryPeakBytes);
  $("stat-output").textContent =
    `${fmtBytes(f.stdoutBytes)} out · ${fmtBytes(f.stderrBytes)} err${f.outputTruncated ? " · truncated" : ""}`;
  $("stat-cache").textContent = started ? (started.cacheHit ? "from cache" : "compiled now") : "—";
  $("stat-sha").textContent = started?.moduleSha256 ?? "—";
  $("stats").hidden = false;
  setRunState(words, kind);
}

function readLimits(): LimitsInit | undefined {
  const fuel = parseCount($<HTMLInputElement>("limit-fuel").value, "Fuel");
  const memoryBytes = parseWhole("limit-memory", "Memory", 1024n * 1024n);
  const timeoutMs = parseWhole("limit-timeout", "Timeout");
  const maxOutputBytes = parseWhole("limit-output", "Max output", 1024n);
  const fsBytes = parseWhole("limit-fs", "Files", 1024n);
  if (fuel === undefined && memoryBytes === undefined && timeoutMs === undefined && maxOutputBytes === undefined && fsBytes === undefined) return undefined;
  return {
    ...(fsBytes !== undefined ? { fsBytes } : {}),
    ...(fuel !== undefined ? { fuel } : {}),
    ...(memoryBytes !== undefined ? { memoryBytes } : {}),
    ...(timeoutMs !== undefined ? { timeoutMs } : {}),
    ...(maxOutputBytes !== undefined ? { maxOutputBytes } : {}),
  };
}

async function exampleBytes(name: string): Promise<Uint8Array> {
  const cached = state.exampleBytes.get(name);
  if (cached) return cached;
  const res = await fetch(`/examples/${encodeURIComponent(name)}.wasm`);
  if (!res.ok) throw new Error(`Could not load the example ${name}.wasm (HTTP ${res.status}).`);
  const bytes = new Uint8Array(await res.arrayBuffer());
  state.exampleBytes.set(name, bytes);
  return bytes;
}

function setRunning(running: boolean): void {
  $<HTMLButtonElement>("run-btn").disabled = running;
  $<HTMLButtonElement>("stop-btn").disabled = !running;
  $<HTMLButtonElement>("rerun-btn").disabled = running || !state.lastSha || !state.lastStored;
  $("run-form").setAttribute("aria-busy", String(running));
}

async function run(byHash: boolean): Promise<void> {
  if (state.running) return;
  hideError();
  if (!apiKey()) {
    showErrorText("No API key", "Paste an API key in the box at the top first (a fresh local server prints an admin key when it starts).");
    $<HTMLInputElement>("api-key").focus();
    return;
  }
  let common: Omit<RunOptions, "module" | "moduleSha256">;
  let limits: LimitsInit | undefined;
  try {
    const seed = parseWhole("seed", "Random seed");
    limits = readLimits();
    files.checkSize();
    const collect = files.collect();
    common = {
      stdin: $<HTMLTextAreaElement>("stdin").value,
      args: parseLines($<HTMLTextAreaElement>("args").value),
      env: parseEnv($<HTMLTextAreaElement>("env").value),
      ...(limits ? { limits } : {}),
      ...(seed !== undefined ? { randomSeed: seed } : {}),
      ...(files.files.size || collect.length ? { files: new Map(files.files), collect } : {}),
    };
  } catch (e) {
    showError(e);
    return;
  }
  const explicitFsLimit = limits?.fsBytes !== undefined;

  const ac = new AbortController();
  state.running = ac;
  state.stoppedByUser = false;
  setRunning(true);
  output.clear();
  $("stats").hidden = true;
  clearOutFiles();
  setRunState("Preparing…", "running");

  let started: Started | undefined;
  const stderrText: string[] = [];
  const stderrDecoder = new TextDecoder();
  const t0 = performance.now();
  try {
    const sel = $<HTMLSelectElement>("example").value;
    let options: RunOptions;
    let stored: boolean;
    if (byHash) {
      options = { moduleSha256: state.lastSha, ...common };
      stored = true;
    } else if (sel === CUSTOM && state.custom) {
      setRunState("Storing module…", "running");
      const sha = state.custom.uploaded && state.custom.sha256 ? state.custom.sha256 : await storeCustom();
      options = { moduleSha256: sha, ...common };
      stored = true;
    } else {
      // Examples go inline and are not stored on the account unless the user ticks "keep".
      const keep = $<HTMLInputElement>("keep-module").checked;
      options = { module: await exampleBytes(sel), keepModule: keep, ...common };
      stored = keep;
    }
    options.programName = sel === CUSTOM && state.custom ? state.custom.name : `${sel}.wasm`;
    setRunState("Starting…", "running");
    const interactive = $<HTMLInputElement>("interactive").checked;
    let stream: AsyncIterable<RunEvent> & { result(): Promise<RunResult> };
    if (interactive) {
      const { cache: _cache, expectedStdout: _expected, ...rest } = options;
      const session = client().interactive(rest, { signal: ac.signal });
      showTerminal(true);
      terminal.attach(session);
      stream = session;
    } else {
      showTerminal(false);
      stream = client().run(options, { signal: ac.signal });
    }
    for await (const ev of stream) {
      switch (ev.type) {
        case "started":
          started = ev.started;
          state.lastSha = ev.started.moduleSha256;
          state.lastStored = stored;
          // Without a Files limit the effective one is the tier's maximum: keep it for the size check.
          if (!explicitFsLimit && ev.started.limits?.fsBytes) {
            state.tierFsBytes = { key: apiKey(), bytes: Number(ev.started.limits.fsBytes) };
            files.refreshTotal();
          }
          $("stat-sha").textContent = ev.started.moduleSha256;
          setRunState("Running…", "running");
          break;
        case "stdout":
        case "stderr":
          if (ev.type === "stderr") stderrText.push(stderrDecoder.decode(ev.data, { stream: true }));
          output.write(ev.type, ev.data);
          if (interactive) terminal.write(ev.type, ev.data);
          break;
        case "finished":
          output.flush();
          if (ev.finished.stdoutBytes === 0n && ev.finished.stderrBytes === 0n) output.clear("(no output)");
          showStats(started, ev.finished, stderrText.join("") + stderrDecoder.decode());
          break;
      }
    }
    showOutFiles((await stream.result()).files);
  } catch (e) {
    output.flush();
    const err = e instanceof WasmWizError ? e : e instanceof Error ? e : new Error(String(e));
    if (state.stoppedByUser && err instanceof WasmWizError && err.code === Code.Canceled) {
      // The server reports fuel only in `finished`, which a stopped run never gets: say what is known.
      const elapsed = fmtDuration(BigInt(Math.round((performance.now() - t0) * 1000)));
      output.note(`\n[stopped after ${elapsed}; fuel used so far is unknown: the server reports fuel when a run finishes]\n`);
      setRunState(`Stopped after ${elapsed}`, "warn");
    } else {
      showError(err);
      setRunState(err instanceof WasmWizError ? describeError(err).title : "Error", "bad");
    }
  } finally {
    terminal.detach("[the program ended]");
    state.running = undefined;
    state.accountStale = true;
    setRunning(false);
  }
}

let terminal: TerminalPanel;

/** Interactive runs show the terminal instead of the plain console. */
function showTerminal(on: boolean): void {
  $("terminal").hidden = !on;
  $("console").hidden = on;
}

function initTerminal(): void {
  terminal = new TerminalPanel($("terminal"), {
    cancel: () => {
      state.stoppedByUser = true;
      state.running?.abort();
    },
    writeFailed: () => undefined, // the run's own end (or error) is what the page reports
  });
  const raw = $<HTMLInputElement>("raw-mode");
  raw.addEventListener("change", () => terminal.setRaw(raw.checked));
  const interactive = $<HTMLInputElement>("interactive");
  interactive.addEventListener("change", () => showTerminal(interactive.checked));
}

function initRun(): void {
  output = new Console();
  const form = $<HTMLFormElement>("run-form");
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    void run(false);
  });
  document.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey) && !$("panel-run").hidden) {
      e.preventDefault();
      void run(false);
    }
    if (e.key === "Escape" && state.running) {
      state.stoppedByUser = true;
      state.running.abort();
    }
  });
  $("stop-btn").addEventListener("click", () => {
    state.stoppedByUser = true;
    state.running?.abort();
  });
  $("rerun-btn").addEventListener("click", () => void run(true));
  $("clear-btn").addEventListener("click", () => {
    output.clear("Cleared.");
    $("stats").hidden = true;
    clearOutFiles();
    hideError();
    setRunState("Idle", "idle");
  });
  $("copy-sha").addEventListener("click", () => void copy($("stat-sha").textContent ?? "", $("copy-sha")));
}

async function copy(text: string, button: HTMLElement): Promise<void> {
  try {
    await navigator.clipboard.writeText(text);
    const old = button.textContent;
    button.textContent = "Copied";
    setTimeout(() => (button.textContent = old), 1500);
  } catch {
    // Clipboard unavailable (insecure context): select the text instead.
    const sel = window.getSelection();
    const range = document.createRange();
    range.selectNodeContents(button.previousElementSibling ?? button);
    sel?.removeAllRanges();
    sel?.addRange(range);
  }
}

// ---------------------------------------------------------------- account view

function barChart(
  container: HTMLElement,
  days: { date: string; value: number }[],
  opts: { label: string; format: (v: number) => string; cls: string },
): void {
  const W = Math.max(300, Math.round(container.clientWidth || 640));
  const H = 190;
  const pad = { l: 56, r: 8, t: 12, b: 28 };
  const max = Math.max(0, ...days.map((d) => d.value));
  const top = max === 0 ? 1 : niceCeil(max);
  const innerW = W - pad.l - pad.r;
  const innerH = H - pad.t - pad.b;
  const total = days.reduce((a, d) => a + d.value, 0);
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: `chart-svg ${opts.cls}`, role: "img", preserveAspectRatio: "xMidYMid meet" });
  const title = s("title");
  title.textContent = `${opts.label}: ${opts.format(total)} over ${days.length} days, at most ${opts.format(max)} on one day`;
  svg.append(title);
  for (const frac of [0, 0.5, 1]) {
    const y = pad.t + innerH * (1 - frac);
    svg.append(s("line", { x1: pad.l, x2: W - pad.r, y1: y, y2: y, class: "grid" }));
    const t = s("text", { x: pad.l - 6, y: y + 4, class: "axis", "text-anchor": "end" });
    t.textContent = opts.format(top * frac);
    svg.append(t);
  }
  const slot = innerW / Math.max(1, days.length);
  const bw = Math.max(2, slot * 0.7);
  days.forEach((d, i) => {
    const hgt = (d.value / top) * innerH;
    const x = pad.l + i * slot + (slot - bw) / 2;
    const bar = s("rect", {
      x: x.toFixed(1),
      y: (pad.t + innerH - hgt).toFixed(1),
      width: bw.toFixed(1),
      height: Math.max(d.value > 0 ? 1 : 0, hgt).toFixed(1),
      rx: 2,
      class: i === days.length - 1 ? "bar today" : "bar",
    });
    const tip = s("title");
    tip.textContent = `${d.date}: ${opts.format(d.value)}`;
    bar.append(tip);
    svg.append(bar);
    const every = Math.ceil(days.length / 7);
    if (i % every === 0 || i === days.length - 1) {
      const t = s("text", { x: (x + bw / 2).toFixed(1), y: H - 8, class: "axis", "text-anchor": "middle" });
      t.textContent = d.date.slice(5);
      svg.append(t);
    }
  });
  container.replaceChildren(svg);
}

function niceCeil(v: number): number {
  const exp = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * exp >= v) return m * exp;
  return 10 * exp;
}

let lastUsage: GetUsageResponse | undefined;
let resizeTimer: ReturnType<typeof setTimeout> | undefined;
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => {
    if (lastUsage && !$("panel-account").hidden) renderUsage(lastUsage);
  }, 150);
});

function renderUsage(u: GetUsageResponse): void {
  lastUsage = u;
  $("usage-exec").textContent = fmtInt(u.executions);
  $("usage-fuel").textContent = fmtCompact(u.fuelConsumed);
  $("usage-fuel").title = `${fmtInt(u.fuelConsumed)} fuel`;
  $("usage-time").textContent = fmtDuration(u.durationUs);
  const days = u.daily.map((d) => ({ date: d.date, exec: Number(d.executions), fuel: Number(d.fuelConsumed), us: d.durationUs }));
  barChart($("chart-exec"), days.map((d) => ({ date: d.date, value: d.exec })), {
    label: "Executions per day",
    format: (v) => fmtCompact(Math.round(v)),
    cls: "exec",
  });
  barChart($("chart-fuel"), days.map((d) => ({ date: d.date, value: d.fuel })), {
    label: "Fuel per day",
    format: (v) => fmtCompact(Math.round(v)),
    cls: "fuel",
  });
  const body = $<HTMLTableElement>("usage-table").tBodies[0]!;
  body.replaceChildren(
    ...[...days].reverse().map((d) =>
      h("tr", {}, h("td", {}, d.date), h("td", {}, fmtInt(d.exec)), h("td", {}, fmtInt(d.fuel)), h("td", {}, fmtDuration(d.us))),
    ),
  );
  const outcomes = Object.entries(u.byOutcome)
    .filter(([, n]) => n > 0n)
    .map(([k, n]) => `${k.replace(/^OUTCOME_/, "").toLowerCase().replace(/_/g, " ")}: ${fmtInt(n)}`);
  $("usage-outcomes").textContent = outcomes.length ? `By outcome — ${outcomes.join(" · ")}` : "No executions in this period yet.";
}

function renderKeys(keys: ApiKeyInfo[], currentKeyId: string): void {
  const body = $<HTMLTableElement>("keys-table").tBodies[0]!;
  body.replaceChildren(
    ...keys.map((k) => {
      const revoked = !!k.revokedAt;
      const expired = !!k.expiresAt && timestampDate(k.expiresAt).getTime() < Date.now();
      const status = revoked ? "revoked" : expired ? "expired" : k.keyId === currentKeyId ? "active · this key" : "active";
      const actions = h("td", { class: "actions-cell" });
      if (!revoked) {
        const btn = h("button", { type: "button", class: "small danger", "aria-label": `Revoke key ${k.keyId}${k.label ? ` (${k.label})` : ""}` }, "Revoke");
        btn.addEventListener("click", () => void revokeKey(k, k.keyId === currentKeyId));
        actions.append(btn);
      }
      return h(
        "tr",
        revoked ? { class: "revoked" } : {},
        h("td", {}, h("code", {}, k.keyId)),
        h("td", {}, k.label || "—"),
        h("td", {}, k.createdAt ? fmtDate(timestampDate(k.createdAt)) : "—"),
        h("td", {}, h("span", { class: `status ${revoked || expired ? "bad" : "ok"}` }, status)),
        actions,
      );
    }),
  );
  if (!keys.length) body.append(h("tr", {}, h("td", { colspan: "5" }, "No keys.")));
}

async function revokeKey(k: ApiKeyInfo, isCurrent: boolean): Promise<void> {
  const msg = isCurrent
    ? `Revoke key ${k.keyId}? It is the key this page is using: calls will stop working.`
    : `Revoke key ${k.keyId}${k.label ? ` (${k.label})` : ""}? Programs using it will stop working.`;
  if (!window.confirm(msg)) return;
  try {
    await client().account.revokeMyApiKey(k.keyId);
    await loadAccount();
  } catch (e) {
    showError(e, "account-error");
  }
}

let accountSeq = 0;

async function loadAccount(): Promise<void> {
  const seq = ++accountSeq;
  hideError("account-error");
  if (!apiKey()) {
    showErrorText("No API key", "Paste an API key in the box at the top to see your account.", "account-error");
    return;
  }
  $("panel-account").setAttribute("aria-busy", "true");
  const c = client();
  const days = Number($<HTMLSelectElement>("usage-days").value);
  try {
    const [me, usage, keys] = await Promise.all([c.account.whoAmI(), c.account.getUsage({ days }), c.account.listMyApiKeys()]);
    if (seq !== accountSeq) return;
    state.accountStale = false;
    $("acct-email").textContent = me.email;
    $("acct-tier").textContent = me.tier + (me.admin ? " · admin" : "");
    $("acct-key").textContent = me.keyId || "—";
    const l = me.limits;
    const allowance = (meter: string, text: string, left: bigint, of: bigint | undefined) => {
      const m = $<HTMLMeterElement>(meter);
      if (!l || l.unmetered || !of) {
        m.max = 1;
        m.value = 1;
        $(text).textContent = "unlimited";
        return;
      }
      m.max = Number(of);
      m.value = Number(left);
      m.low = Number(of) * 0.2;
      m.optimum = Number(of);
      $(text).textContent = `${fmtInt(left)} of ${fmtInt(of)} left`;
    };
    allowance("meter-minute", "text-minute", me.remainingThisMinute, l?.perMinute);
    allowance("meter-day", "text-day", me.remainingToday, l?.perDay);
    const dl = $("tier-limits");
    dl.replaceChildren();
    if (l) {
      const rows: [string, string][] = [
        ["Module size", fmtBytes(l.maxModuleBytes)],
        ["Stdin size", fmtBytes(l.maxStdinBytes)],
        ["Memory", fmtBytes(l.maxMemoryBytes)],
        ["Fuel", fmtCompact(l.maxFuel)],
        ["Timeout", fmtDuration(l.maxTimeoutMs * 1000n)],
        ["Output", fmtBytes(l.maxOutputBytes)],
        ["Concurrent runs", String(l.maxConcurrent)],
        [
          "Stored modules",
          `${fmtInt(me.storedModules)} of ${l.maxStoredModules ? fmtInt(l.maxStoredModules) : "no limit"}`,
        ],
        ["Stored bytes", `${fmtBytes(me.storedBytes)} of ${l.maxStoredBytes ? fmtBytes(l.maxStoredBytes) : "no limit"}`],
        ["Args and env", `${fmtInt(l.maxArgs)} items, ${fmtBytes(l.maxArgsBytes)}`],
      ];
      for (const [k, v] of rows) dl.append(h("div", {}, h("dt", {}, k), h("dd", {}, v)));
    }
    renderUsage(usage);
    renderKeys(keys, me.keyId);
  } catch (e) {
    if (seq === accountSeq) showError(e, "account-error");
  } finally {
    if (seq === accountSeq) $("panel-account").removeAttribute("aria-busy");
  }
  if (seq === accountSeq) await refreshDetachedRuns();
}

/** The "Detached runs" card on its own: its failure leaves the rest of the tab shown. */
async function refreshDetachedRuns(): Promise<void> {
  if (!apiKey()) return;
  try {
    await loadDetachedRuns(client());
  } catch (e) {
    showError(e, "account-error");
  }
}

function initAccount(): void {
  $("acct-refresh").addEventListener("click", () => void loadAccount());
  $("runs-refresh").addEventListener("click", () => void refreshDetachedRuns());
  $("usage-days").addEventListener("change", () => void loadAccount());
  $("new-key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    void (async () => {
      hideError("account-error");
      try {
        const label = $<HTMLInputElement>("new-key-label").value.trim();
        const created = await client().account.createMyApiKey({ label });
        $("new-key-secret").textContent = created.key;
        $("new-key").hidden = false;
        $<HTMLInputElement>("new-key-label").value = "";
        await loadAccount();
        $("new-key-copy").focus();
      } catch (err) {
        showError(err, "account-error");
      }
    })();
  });
  $("new-key-copy").addEventListener("click", () => void copy($("new-key-secret").textContent ?? "", $("new-key-copy")));
  $("new-key-use").addEventListener("click", () => {
    const input = $<HTMLInputElement>("api-key");
    input.value = $("new-key-secret").textContent ?? "";
    input.dispatchEvent(new Event("input"));
    $("new-key").hidden = true;
    void loadAccount();
  });
}

// ---------------------------------------------------------------- start

/** The filesystem limit in force: the Files limit typed in, else the tier's (once a run told it). */
function fsLimit(): number | undefined {
  const raw = $<HTMLInputElement>("limit-fs").value.trim();
  if (/^\d+$/.test(raw) && Number(raw) > 0) return Number(raw) * 1024;
  return state.tierFsBytes?.key === apiKey() ? state.tierFsBytes.bytes : undefined;
}

let files: FilesPanel;

function start(): void {
  files = new FilesPanel({ maxBytes: fsLimit, refuse: (e) => showError(e), clearRefusal: () => hideError() });
  $("limit-fs").addEventListener("input", () => files.refreshTotal());
  initKeyBar();
  initTabs();
  initInputs();
  initRun();
  initTerminal();
  initAccount();
  document.documentElement.dataset["ready"] = "true";
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
