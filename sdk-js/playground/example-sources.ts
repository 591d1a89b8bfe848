/**
 * The source of every bundled example, shown beside it. The files in
 * examples/guests are bundled as text at build time (esbuild's text loader,
 * scripts/build-playground.mjs), so the page shows exactly what was compiled.
 */
import argsenv from "../../examples/guests/argsenv.c";
import calc from "../../examples/guests/calc.c";
import guess from "../../examples/guests/guess.c";
import clockrand from "../../examples/guests/clockrand.c";
import echo from "../../examples/guests/echo.c";
import exitcode from "../../examples/guests/exitcode.c";
import fsreport from "../../examples/guests/fsreport.c";
import hash from "../../examples/guests/hash.c";
import hello from "../../examples/guests/hello.c";
import progress from "../../examples/guests/progress.c";
import stderr from "../../examples/guests/stderr.c";
import loop from "../../examples/guests/loop.wat";
import trap from "../../examples/guests/trap.wat";
import rustPanic from "../../examples/guests/rust/src/bin/panic.rs";
import rustWordfreq from "../../examples/guests/rust/src/bin/wordfreq.rs";

/** One example's source: its language and the file it lives in (in the repository). */
export interface ExampleSource {
  language: "C" | "Rust" | "WAT";
  path: string;
  text: string;
}

const c = (name: string, text: string): ExampleSource => ({ language: "C", path: `examples/guests/${name}.c`, text });
const wat = (name: string, text: string): ExampleSource => ({ language: "WAT", path: `examples/guests/${name}.wat`, text });
const rust = (name: string, text: string): ExampleSource => ({
  language: "Rust",
  path: `examples/guests/rust/src/bin/${name}.rs`,
  text,
});

/** Example name → its source. */
export const EXAMPLE_SOURCES: Record<string, ExampleSource> = {
  hello: c("hello", hello),
  calc: c("calc", calc),
  guess: c("guess", guess),
  echo: c("echo", echo),
  progress: c("progress", progress),
  hash: c("hash", hash),
  argsenv: c("argsenv", argsenv),
  clockrand: c("clockrand", clockrand),
  stderr: c("stderr", stderr),
  exitcode: c("exitcode", exitcode),
  fsreport: c("fsreport", fsreport),
  rust_wordfreq: rust("wordfreq", rustWordfreq),
  rust_panic: rust("panic", rustPanic),
  trap: wat("trap", trap),
  loop: wat("loop", loop),
};
