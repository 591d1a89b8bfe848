/**
 * Files in and out of a run: the guest's per-execution in-memory filesystem.
 *
 * `files` gives the guest one writable directory `/` holding what you pass;
 * `collect` names glob patterns (`"out/*.png"`, `"**"`) of the files to send
 * back, which arrive as `result.files` (path → bytes, in path order). This
 * module is browser-safe; `filesFromDir` (Node only) lives in `node-files.ts`.
 *
 * Paths are relative, `/`-separated, with no empty, `.` or `..` segment:
 * they are checked before anything is sent, and so is the total size against
 * `limits.fsBytes` when you give one.
 *
 * @module
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { badFilePath, filesTooLarge } from "./errors.js";
import type { FilesystemSchema, FsEntrySchema } from "./gen/wasmwiz/v1/execution_pb.js";

/** The contents of one input file: bytes, or text (encoded as UTF-8). */
export type FileContents = Uint8Array | string;

/** One entry of an input tree: a file, a directory (for empty ones) or a symbolic link. */
export type FileEntry =
  | { path: string; file: FileContents; directory?: never; symlink?: never }
  | { path: string; directory: true; file?: never; symlink?: never }
  | { path: string; symlink: string; file?: never; directory?: never };

/**
 * What `files` accepts: path → contents (a plain object or a `Map`), or a
 * list of {@link FileEntry} (also directories and symlinks; what
 * `filesFromDir` returns).
 */
export type FilesInit = Record<string, FileContents> | Map<string, FileContents> | FileEntry[];

/** Bytes of one `FsEntry` message: larger files travel as consecutive pieces with the same path. */
export const PIECE_SIZE = 1024 * 1024;

const encoder = new TextEncoder();

/** An entry checked and with its bytes, ready for a request. */
export interface InputEntry {
  path: string;
  kind: { case: "file"; value: Uint8Array } | { case: "directory"; value: true } | { case: "symlink"; value: string };
}

/** The problem with a guest path, or undefined when it is valid. */
export function pathProblem(path: string): string | undefined {
  if (path === "") return "a path must not be empty";
  if (path.startsWith("/")) return "paths are relative to the guest's root: drop the leading '/'";
  if (path.includes("\0")) return "a path must not contain a NUL byte";
  for (const segment of path.split("/")) {
    if (segment === "..") return "'..' segments are not allowed";
    if (segment === ".") return "'.' segments are not allowed";
    if (segment === "") return "empty segments ('//' or a trailing '/') are not allowed";
  }
  return undefined;
}

function entriesOf(files: FilesInit): FileEntry[] {
  if (Array.isArray(files)) return files;
  const pairs = files instanceof Map ? [...files.entries()] : Object.entries(files);
  return pairs.map(([path, file]) => ({ path, file }));
}

/**
 * `files` as checked entries in path order (a later entry with the same path
 * replaces an earlier one). Throws a local INVALID_ARGUMENT {@link WasmWizError}
 * naming `field` for a bad path.
 */
export function inputEntries(files: FilesInit, field = "fs"): InputEntry[] {
  const byPath = new Map<string, InputEntry>();
  for (const entry of entriesOf(files)) {
    if (typeof entry.path !== "string") throw new TypeError("every file path must be a string");
    const problem = pathProblem(entry.path);
    if (problem) throw badFilePath(entry.path, problem, field);
    if (entry.file !== undefined) {
      const value = typeof entry.file === "string" ? encoder.encode(entry.file) : entry.file;
      if (!(value instanceof Uint8Array)) throw new TypeError(`the contents of ${entry.path} must be a Uint8Array or a string`);
      byPath.set(entry.path, { path: entry.path, kind: { case: "file", value } });
    } else if (entry.symlink !== undefined) {
      if (typeof entry.symlink !== "string" || !entry.symlink) throw new TypeError(`the target of symlink ${entry.path} must be a non-empty string`);
      byPath.set(entry.path, { path: entry.path, kind: { case: "symlink", value: entry.symlink } });
    } else if (entry.directory === true) {
      byPath.set(entry.path, { path: entry.path, kind: { case: "directory", value: true } });
    } else {
      throw new TypeError(`entry ${(entry as { path: string }).path} needs one of file, directory or symlink`);
    }
  }
  return [...byPath.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** What counts against `limits.fsBytes`: file contents and symlink targets, in bytes (as the server counts). */
export function totalBytes(entries: readonly InputEntry[]): number {
  let n = 0;
  for (const e of entries) {
    if (e.kind.case === "file") n += e.kind.value.length;
    else if (e.kind.case === "symlink") n += encoder.encode(e.kind.value).length;
  }
  return n;
}

/** Throws the local "files too large" error when `total` passes `maximum` (when one is given). */
export function checkTotal(total: number, maximum: number | undefined, field = "fs"): void {
  if (maximum !== undefined && maximum > 0 && total > maximum) throw filesTooLarge(total, maximum, field);
}

/** The input tree of a request: its entries (checked) and collect patterns. */
export interface InputFs {
  entries: InputEntry[];
  collect: string[];
}

/**
 * Resolves `files`/`collect` of a request; undefined when neither is given
 * (the guest then has no filesystem at all). `maxBytes` is `limits.fsBytes`.
 */
export function inputFs(
  files: FilesInit | undefined,
  collect: readonly string[] | undefined,
  maxBytes: number | undefined,
  field = "fs",
): InputFs | undefined {
  if (files === undefined && (collect === undefined || collect.length === 0)) return undefined;
  if (collect !== undefined && (!Array.isArray(collect) || collect.some((p) => typeof p !== "string" || p === ""))) {
    throw new TypeError("collect must be an array of non-empty glob patterns, e.g. [\"out/*\"]");
  }
  const entries = files === undefined ? [] : inputEntries(files, field);
  checkTotal(totalBytes(entries), maxBytes, field);
  return { entries, collect: [...(collect ?? [])] };
}

/** The whole tree as one `Filesystem` message (for `Run` and `RunBatch`). */
export function filesystemInit(fs: InputFs): MessageInitShape<typeof FilesystemSchema> {
  return { entries: fs.entries.map((e) => ({ path: e.path, kind: e.kind })), collect: fs.collect };
}

/** Every entry as `FsEntry` messages, files in consecutive pieces of at most `pieceSize` (for `fs_chunk`). */
export function* entryPieces(entries: readonly InputEntry[], pieceSize = PIECE_SIZE): Generator<MessageInitShape<typeof FsEntrySchema>> {
  for (const e of entries) {
    if (e.kind.case !== "file") {
      yield { path: e.path, kind: e.kind };
      continue;
    }
    const bytes = e.kind.value;
    if (bytes.length === 0) yield { path: e.path, kind: { case: "file", value: bytes } };
    for (let off = 0; off < bytes.length; off += pieceSize) {
      yield { path: e.path, kind: { case: "file", value: bytes.subarray(off, Math.min(bytes.length, off + pieceSize)) } };
    }
  }
}

/** Puts collected files back together from their pieces (pieces of one file arrive in order). */
export class FileCollector {
  readonly #parts = new Map<string, Uint8Array[]>();

  /** One more piece of `path`. */
  add(path: string, data: Uint8Array): void {
    const parts = this.#parts.get(path);
    if (parts) parts.push(data);
    else this.#parts.set(path, [data]);
  }

  /** Path → whole contents, in the order the files came (path order). */
  build(): Map<string, Uint8Array> {
    const out = new Map<string, Uint8Array>();
    for (const [path, parts] of this.#parts) {
      let n = 0;
      for (const p of parts) n += p.length;
      const whole = new Uint8Array(n);
      let off = 0;
      for (const p of parts) {
        whole.set(p, off);
        off += p.length;
      }
      out.set(path, whole);
    }
    return out;
  }
}
