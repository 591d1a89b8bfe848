/**
 * The files a run sent back (`collect`): a list with a download link each,
 * text shown inline and images (png, jpg, gif, svg) previewed. Previews are
 * `data:` URLs (the page's CSP allows no `blob:` images); downloads are
 * `blob:` URLs, released when the list is cleared.
 */
import { humanBytes } from "../src/web.js";
import { $, h } from "./dom.js";
import { asText } from "./files-panel.js";

/** Image types previewed, by file extension. */
const IMAGE_TYPES: Record<string, string> = {
  png: "image/png",
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  gif: "image/gif",
  svg: "image/svg+xml",
};
/** Text longer than this is cut in the page (the download has all of it). */
const MAX_TEXT_CHARS = 100_000;
/** Images larger than this are not previewed (the download still works). */
const MAX_PREVIEW_BYTES = 8 * 1024 * 1024;

let urls: string[] = [];

function imageType(path: string): string | undefined {
  const ext = path.slice(path.lastIndexOf(".") + 1).toLowerCase();
  return path.includes(".") ? IMAGE_TYPES[ext] : undefined;
}

function base64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

/** Removes the list and releases its download URLs. */
export function clearOutFiles(): void {
  for (const url of urls) URL.revokeObjectURL(url);
  urls = [];
  $("out-files-list").replaceChildren();
  $("out-files").hidden = true;
}

/** Shows the collected files (path order, as they came). */
export function showOutFiles(files: ReadonlyMap<string, Uint8Array>): void {
  clearOutFiles();
  if (files.size === 0) return;
  const list = $("out-files-list");
  for (const [path, bytes] of files) {
    const type = imageType(path);
    const url = URL.createObjectURL(new Blob([bytes as Uint8Array<ArrayBuffer>], { type: type ?? "application/octet-stream" }));
    urls.push(url);
    const name = path.slice(path.lastIndexOf("/") + 1);
    const item = h(
      "li",
      { class: "out-file" },
      h(
        "div",
        { class: "out-file-head" },
        h("code", { class: "out-file-path" }, path),
        h("span", { class: "hint-inline" }, humanBytes(bytes.length)),
        h("a", { href: url, download: name, class: "out-file-download", "aria-label": `Download ${path}` }, "Download"),
      ),
    );
    const text = type === undefined || type === "image/svg+xml" ? asText(bytes) : undefined;
    if (type && bytes.length <= MAX_PREVIEW_BYTES) {
      item.append(h("img", { src: `data:${type};base64,${base64(bytes)}`, alt: `Preview of ${path}`, class: "out-file-image" }));
    } else if (text !== undefined) {
      const shown = text.length > MAX_TEXT_CHARS ? `${text.slice(0, MAX_TEXT_CHARS)}\n[cut here: download the file for the rest]` : text;
      item.append(h("pre", { class: "out-file-text", tabindex: "0", "aria-label": `Contents of ${path}` }, shown));
    } else {
      item.append(h("p", { class: "hint" }, "Binary contents: download the file to open it."));
    }
    list.append(item);
  }
  $("out-files").hidden = false;
}
