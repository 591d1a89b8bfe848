/**
 * Input trees from the local disk (Node only: the browser bundle never
 * imports this module, so it does not pull in `node:fs`).
 *
 * ```ts
 * import { createClient, filesFromDir } from "@wasmwiz/sdk";
 * const files = await filesFromDir("testdata", { prefix: "input" });
 * const result = await client.execute({ module, files, collect: ["out/*"] }).result();
 * ```
 *
 * @module
 */
import { lstat, readFile, readdir, readlink } from "node:fs/promises";
import { join } from "node:path";
import type { FileEntry } from "./files.js";

/** Options of {@link filesFromDir}. */
export interface FilesFromDirOptions {
  /** Where the directory's contents go in the guest's tree (default: its root). */
  prefix?: string;
}

/**
 * Reads a local directory into input entries, in path order: regular files
 * with their bytes, symbolic links as links (never followed), and empty
 * directories. Anything else (a socket, a device) is refused.
 */
export async function filesFromDir(dir: string, options: FilesFromDirOptions = {}): Promise<FileEntry[]> {
  const root = await lstat(dir);
  if (!root.isDirectory()) throw new Error(`not a directory: ${dir}`);
  const out: FileEntry[] = [];
  const prefix = options.prefix ?? "";
  const empty = await addChildren(dir, prefix, out);
  if (empty && prefix) out.push({ path: prefix, directory: true });
  return out;
}

/** Adds the entries under `local` at `prefix`; true when it has none. */
async function addChildren(local: string, prefix: string, out: FileEntry[]): Promise<boolean> {
  const names = (await readdir(local)).sort();
  for (const name of names) {
    const path = prefix ? `${prefix}/${name}` : name;
    const full = join(local, name);
    const info = await lstat(full);
    if (info.isSymbolicLink()) {
      out.push({ path, symlink: await readlink(full) });
    } else if (info.isDirectory()) {
      if (await addChildren(full, path, out)) out.push({ path, directory: true });
    } else if (info.isFile()) {
      out.push({ path, file: new Uint8Array(await readFile(full)) });
    } else {
      throw new Error(`not a regular file, directory or symlink: ${full}`);
    }
  }
  return names.length === 0;
}
