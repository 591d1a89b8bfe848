/**
 * The playground's terminal for interactive runs: an xterm.js screen that
 * shows the guest's output as it is written and turns keystrokes (and
 * pasted text) into stdin writes through the {@link LineDiscipline}.
 */
import { Terminal } from "@xterm/xterm";
import type { InteractiveSession } from "../src/web.js";
import { LineDiscipline } from "./line-discipline.js";
import { routeStyleElementsToConstructedSheets } from "./xterm-csp.js";

/** Hooks the terminal calls for Ctrl-C and failed writes. */
export interface TerminalHooks {
  /** Ctrl-C: the user stops the run. */
  cancel(): void;
  /** A write or the EOF failed (the run usually ended meanwhile). */
  writeFailed(e: unknown): void;
}

export class TerminalPanel {
  readonly #term: Terminal;
  readonly #discipline: LineDiscipline;
  #session: InteractiveSession | undefined;
  readonly #host: HTMLElement;
  #opened = false;
  #decoders = { stdout: new TextDecoder(), stderr: new TextDecoder() };

  constructor(host: HTMLElement, hooks: TerminalHooks) {
    routeStyleElementsToConstructedSheets();
    this.#term = new Terminal({
      convertEol: true,
      cursorBlink: true,
      rows: 16,
      fontFamily: "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace",
      fontSize: 13,
      scrollback: 5000,
      screenReaderMode: false,
    });
    this.#host = host;
    this.#discipline = new LineDiscipline({
      send: (text) => {
        const s = this.#session;
        if (s) s.write(text).catch((e: unknown) => hooks.writeFailed(e));
      },
      echo: (text) => {
        if (this.#session) this.#term.write(text);
      },
      eof: () => {
        const s = this.#session;
        if (!s) return;
        this.#term.write("^D\r\n");
        s.close().catch((e: unknown) => hooks.writeFailed(e));
      },
      cancel: () => {
        if (this.#session) hooks.cancel();
      },
    });
    this.#term.onData((data) => this.#discipline.input(data));
  }

  /** Line mode (local echo and editing, default) or raw mode (every key at once). */
  setRaw(raw: boolean): void {
    this.#discipline.raw = raw;
  }

  /** Starts feeding `session` with what is typed; clears the screen. */
  attach(session: InteractiveSession): void {
    // Opened on first use, once visible: xterm measures its cells when it opens.
    if (!this.#opened) {
      this.#term.open(this.#host);
      this.#opened = true;
    }
    this.#term.clear();
    this.#decoders = { stdout: new TextDecoder(), stderr: new TextDecoder() };
    this.#discipline.reset();
    this.#session = session;
    this.#term.focus();
  }

  /** The run ended: keystrokes go nowhere until the next run. */
  detach(note?: string): void {
    const attached = this.#session !== undefined;
    this.#session = undefined;
    this.#discipline.reset();
    if (note && attached) this.#term.write(`\r\n\x1b[2m${note}\x1b[0m\r\n`);
  }

  /** Shows guest output (UTF-8, split sequences kept across chunks); stderr in red. */
  write(stream: "stdout" | "stderr", data: Uint8Array): void {
    const text = this.#decoders[stream].decode(data, { stream: true });
    this.#term.write(stream === "stderr" ? `\x1b[31m${text}\x1b[0m` : text);
  }
}
