// WasmWiz from a web page: run a .wasm and stream its output into the page.
//
// Bundle it with your app (the "browser" export condition picks the gRPC-web
// client of @wasmwiz/sdk), e.g.
//   npx esbuild browser-snippet.mjs --bundle --format=esm --outfile=dist/browser-snippet.js
// and serve the page from the WasmWiz server's origin, or from an origin its
// CORS settings allow. Browsers speak gRPC-web only: `upload()` sends one
// PutModule and `run()` streams the events.
import { createClient, describeError } from "@wasmwiz/sdk";

/**
 * Runs the module at `wasmUrl` with `stdin` and calls `onOutput(stream, text)`
 * for every chunk as it arrives. Resolves with a one-line summary; rejects
 * with an Error whose message explains the failure in words.
 */
export async function runWasm({ baseUrl = location.origin, apiKey, wasmUrl, stdin = "", args = [], onOutput = () => {}, signal }) {
  const client = createClient({ baseUrl, apiKey }); // gRPC-web in a browser
  const bytes = new Uint8Array(await (await fetch(wasmUrl)).arrayBuffer());
  try {
    const { sha256 } = await client.upload(bytes); // skipped when already stored
    const decoders = { stdout: new TextDecoder(), stderr: new TextDecoder() };
    const run = client.run({ moduleSha256: sha256, stdin, args }, { signal });
    for await (const ev of run) {
      if (ev.type === "stdout" || ev.type === "stderr") onOutput(ev.type, decoders[ev.type].decode(ev.data, { stream: true }));
    }
    const r = await run.result();
    return `${r.outcomeName} · exit ${r.exitCode} · ${r.finished.fuelConsumed} fuel · ${Number(r.finished.durationUs) / 1000} ms`;
  } catch (e) {
    const { title, detail } = describeError(e); // e.g. "Rate limited", "… Try again in 42 s."
    throw new Error(`${title}: ${detail}`);
  }
}

// Example wiring (adapt to your page):
//   const out = document.querySelector("#out");
//   const summary = await runWasm({
//     apiKey: localStorage.getItem("wasmwiz.apiKey"),
//     wasmUrl: "/examples/echo.wasm",
//     stdin: "hi\n",
//     onOutput: (stream, text) => out.append(text),
//   });
