/**
 * A `fetch` for the gRPC-web transport that reports upload progress:
 * `fetch` has no upload progress events, `XMLHttpRequest` does. Used only to
 * store a large dropped module (one `PutModule` request); everything else
 * goes through the browser's `fetch`.
 */

/** `fetch`, over XMLHttpRequest, calling `onProgress(sent, total)` as the request body goes out. */
export function fetchWithUploadProgress(onProgress: (sent: number, total: number) => void): typeof fetch {
  return (input, init) =>
    new Promise<Response>((resolve, reject) => {
      const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
      const xhr = new XMLHttpRequest();
      xhr.open(init?.method ?? "GET", url);
      xhr.responseType = "arraybuffer";
      new Headers(init?.headers).forEach((value, name) => xhr.setRequestHeader(name, value));
      xhr.upload.onprogress = (e) => {
        if (e.lengthComputable) onProgress(e.loaded, e.total);
      };
      xhr.onload = () => {
        const headers = new Headers();
        for (const line of xhr.getAllResponseHeaders().trim().split(/[\r\n]+/)) {
          const colon = line.indexOf(":");
          if (colon > 0) headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
        }
        resolve(new Response(xhr.response as ArrayBuffer, { status: xhr.status, statusText: xhr.statusText, headers }));
      };
      xhr.onerror = () => reject(new TypeError("the upload failed (network error)"));
      xhr.onabort = () => reject(new DOMException("the upload was aborted", "AbortError"));
      const signal = init?.signal;
      if (signal) {
        if (signal.aborted) {
          reject(new DOMException("the upload was aborted", "AbortError"));
          return;
        }
        signal.addEventListener("abort", () => xhr.abort(), { once: true });
      }
      xhr.send((init?.body ?? null) as XMLHttpRequestBodyInit | null);
    });
}
