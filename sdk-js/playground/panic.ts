/**
 * A Rust panic, read from stderr: Rust's std prints
 * "thread 'main' panicked at src/bin/panic.rs:7:5:\n<message>" (or, before
 * Rust 1.73, "panicked at '<message>', src/...") and then aborts, which on
 * wasm is an `unreachable` trap.
 */

/** The panic's message when stderr holds a Rust panic report; else `undefined`. */
export function panicMessage(stderr: string): string | undefined {
  const at = stderr.indexOf("panicked at ");
  if (at < 0) return undefined;
  const rest = stderr.slice(at + "panicked at ".length);
  const old = /^'([^]*?)', \S+:\d+:\d+/.exec(rest);
  if (old) return old[1]!.trim();
  const nl = rest.indexOf("\n");
  if (nl < 0) return rest.replace(/:$/, "").trim();
  const message = rest
    .slice(nl + 1)
    .split("\n")
    .filter((line) => !/^note: /.test(line))
    .join("\n")
    .trim();
  return message || rest.slice(0, nl).replace(/:$/, "").trim();
}
