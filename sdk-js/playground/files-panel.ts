/**
 * The Files panel: the guest's input files, one tab per file (path and
 * contents editable, text only), added as new files by path or uploaded with
 * the file picker (several at once), removed; and the `collect` patterns.
 *
 * Every change is checked before it is kept: the path with the SDK's own
 * rules, the total size against the filesystem limit in force (the Files
 * limit typed in, else the tier's, once a run has told it).
 */
import { filesTooLarge, humanBytes, pathProblem } from "../src/web.js";
import { $, h } from "./dom.js";

/** Where uploaded files go (rename them in their tab). */
const UPLOAD_DIR = "input";

const utf8 = new TextDecoder("utf-8", { fatal: true });
const encoder = new TextEncoder();

/** The text of `bytes` when they are UTF-8 without NUL bytes, else undefined (binary). */
export function asText(bytes: Uint8Array): string | undefined {
  if (bytes.includes(0)) return undefined;
  try {
    return utf8.decode(bytes);
  } catch {
    return undefined;
  }
}

/** What the panel needs from the page around it. */
export interface FilesPanelHost {
  /** Bytes the guest's filesystem may hold, when known. */
  maxBytes(): number | undefined;
  /** Shows a refusal (an Error or a WasmWizError). */
  refuse(e: unknown): void;
  /** Hides the last refusal. */
  clearRefusal(): void;
}

export class FilesPanel {
  readonly #files = new Map<string, Uint8Array>();
  #selected: string | undefined;
  readonly #host: FilesPanelHost;

  constructor(host: FilesPanelHost) {
    this.#host = host;
    $("new-file-btn").addEventListener("click", () => this.#addNew());
    $<HTMLInputElement>("new-file-path").addEventListener("keydown", (e) => {
      if (e.key === "Enter") {
        e.preventDefault();
        this.#addNew();
      }
    });
    const picker = $<HTMLInputElement>("files-input");
    $("files-upload-btn").addEventListener("click", () => picker.click());
    picker.addEventListener("change", () => {
      const chosen = [...(picker.files ?? [])];
      picker.value = "";
      void this.#upload(chosen);
    });
    $("file-remove").addEventListener("click", () => {
      if (this.#selected !== undefined) this.remove(this.#selected);
    });
    $<HTMLTextAreaElement>("file-text").addEventListener("input", () => this.#editText());
    $<HTMLInputElement>("file-path").addEventListener("change", () => this.#rename());
    this.#render();
  }

  /** The input files, path → bytes. */
  get files(): ReadonlyMap<string, Uint8Array> {
    return this.#files;
  }

  /** Bytes of all input files. */
  get totalBytes(): number {
    let n = 0;
    for (const bytes of this.#files.values()) n += bytes.length;
    return n;
  }

  /** The collect patterns: the field's, else `**` when there are files. */
  collect(): string[] {
    const typed = $<HTMLInputElement>("collect").value.split(/\s+/).filter(Boolean);
    if (typed.length) return typed;
    return this.#files.size ? ["**"] : [];
  }

  /** Replaces every file and the patterns (an example's). */
  replace(files: Record<string, string> | undefined, collect: string[] | undefined): void {
    this.#files.clear();
    for (const [path, text] of Object.entries(files ?? {})) this.#files.set(path, encoder.encode(text));
    this.#selected = this.#files.keys().next().value;
    $<HTMLInputElement>("collect").value = (collect ?? []).join(" ");
    this.#render();
  }

  /** Shows the count and size again (after the limit in force changed). */
  refreshTotal(): void {
    this.#renderTotal();
  }

  /** Removes one file. */
  remove(path: string): void {
    const paths = [...this.#files.keys()];
    const at = paths.indexOf(path);
    this.#files.delete(path);
    if (this.#selected === path) this.#selected = paths[at + 1] ?? paths[at - 1];
    this.#render();
    if (this.#selected !== undefined) document.getElementById(this.#tabId(this.#selected))?.focus();
    else $<HTMLInputElement>("new-file-path").focus();
  }

  /** Refuses the files when their total passes the limit in force (thrown: nothing is sent). */
  checkSize(): void {
    const max = this.#host.maxBytes();
    if (max !== undefined && this.totalBytes > max) throw filesTooLarge(this.totalBytes, max);
  }

  #addNew(): void {
    const input = $<HTMLInputElement>("new-file-path");
    const path = input.value.trim();
    if (!this.#checkPath(path)) return;
    if (!this.#files.has(path)) this.#files.set(path, new Uint8Array(0));
    this.#selected = path;
    input.value = "";
    this.#render();
    $<HTMLTextAreaElement>("file-text").focus();
  }

  async #upload(chosen: File[]): Promise<void> {
    this.#host.clearRefusal();
    // Sizes first: a file too big is refused before it is read into the page.
    const max = this.#host.maxBytes();
    const replaced = new Set(chosen.map((file) => `${UPLOAD_DIR}/${file.name}`));
    let total = chosen.reduce((n, file) => n + file.size, 0);
    for (const [path, bytes] of this.#files) if (!replaced.has(path)) total += bytes.length;
    if (max !== undefined && total > max) {
      this.#host.refuse(filesTooLarge(total, max));
      return;
    }
    const added = new Map<string, Uint8Array>();
    for (const file of chosen) added.set(`${UPLOAD_DIR}/${file.name}`, new Uint8Array(await file.arrayBuffer()));
    const before = new Map(this.#files);
    for (const [path, bytes] of added) this.#files.set(path, bytes);
    try {
      this.checkSize();
    } catch (e) {
      // Too big: keep the files as they were, upload nothing.
      this.#files.clear();
      for (const [path, bytes] of before) this.#files.set(path, bytes);
      this.#host.refuse(e);
      return;
    }
    this.#selected = [...added.keys()].pop() ?? this.#selected;
    this.#render();
  }

  #editText(): void {
    if (this.#selected === undefined) return;
    this.#files.set(this.#selected, encoder.encode($<HTMLTextAreaElement>("file-text").value));
    this.#renderTotal();
    $("file-size").textContent = humanBytes(this.#files.get(this.#selected)!.length);
  }

  #rename(): void {
    const from = this.#selected;
    const field = $<HTMLInputElement>("file-path");
    const to = field.value.trim();
    if (from === undefined || to === from) return;
    if (!this.#checkPath(to)) {
      field.value = from;
      return;
    }
    const renamed = new Map<string, Uint8Array>();
    for (const [path, bytes] of this.#files) if (path !== to) renamed.set(path === from ? to : path, bytes);
    this.#files.clear();
    for (const [path, bytes] of renamed) this.#files.set(path, bytes);
    this.#selected = to;
    this.#render();
  }

  /** True when `path` is a valid guest path; else the refusal is shown. */
  #checkPath(path: string): boolean {
    const problem = pathProblem(path);
    if (problem) {
      this.#host.refuse(new Error(`The path “${path}” cannot be used: ${problem}.`));
      return false;
    }
    this.#host.clearRefusal();
    return true;
  }

  #tabId(path: string): string {
    return `file-tab-${[...this.#files.keys()].indexOf(path)}`;
  }

  #render(): void {
    const tabs = $("file-tabs");
    tabs.replaceChildren();
    for (const path of this.#files.keys()) {
      const on = path === this.#selected;
      const tab = h(
        "button",
        { type: "button", role: "tab", id: this.#tabId(path), "aria-selected": String(on), "aria-controls": "file-panel", tabindex: on ? "0" : "-1", class: "file-tab" },
        path,
      );
      tab.addEventListener("click", () => {
        this.#selected = path;
        this.#render();
        document.getElementById(this.#tabId(path))?.focus();
      });
      tab.addEventListener("keydown", (e) => this.#tabKeys(e, path));
      tabs.append(tab);
    }
    tabs.hidden = this.#files.size === 0;
    const panel = $("file-panel");
    const bytes = this.#selected !== undefined ? this.#files.get(this.#selected) : undefined;
    panel.hidden = bytes === undefined;
    if (bytes !== undefined && this.#selected !== undefined) {
      panel.setAttribute("aria-labelledby", this.#tabId(this.#selected));
      $<HTMLInputElement>("file-path").value = this.#selected;
      $("file-size").textContent = humanBytes(bytes.length);
      const text = asText(bytes);
      const area = $<HTMLTextAreaElement>("file-text");
      area.hidden = text === undefined;
      area.value = text ?? "";
      $("file-binary").hidden = text !== undefined;
    }
    this.#renderTotal();
  }

  #tabKeys(e: KeyboardEvent, path: string): void {
    const paths = [...this.#files.keys()];
    const i = paths.indexOf(path);
    let next = -1;
    if (e.key === "ArrowRight") next = (i + 1) % paths.length;
    else if (e.key === "ArrowLeft") next = (i - 1 + paths.length) % paths.length;
    else if (e.key === "Home") next = 0;
    else if (e.key === "End") next = paths.length - 1;
    else if (e.key === "Delete") {
      e.preventDefault();
      this.remove(path);
      return;
    }
    if (next < 0) return;
    e.preventDefault();
    this.#selected = paths[next];
    this.#render();
    document.getElementById(this.#tabId(this.#selected!))?.focus();
  }

  #renderTotal(): void {
    const n = this.#files.size;
    const max = this.#host.maxBytes();
    $("files-total").textContent = n
      ? `${n} file${n === 1 ? "" : "s"} · ${humanBytes(this.totalBytes)}${max !== undefined ? ` of at most ${humanBytes(max)}` : ""}`
      : "No files: the guest gets no filesystem (unless you name patterns to collect).";
  }
}
