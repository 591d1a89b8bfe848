/**
 * What the terminal does with keystrokes before the guest sees them, like a
 * tty: in line mode, local echo and editing (Backspace, Ctrl-U) and a line
 * sent on Enter; in raw mode, every key at once. Ctrl-D ends stdin (in line
 * mode after sending a pending partial line), Ctrl-C cancels the run.
 */
export interface Discipline {
  /** Bytes to send to the guest, in order. */
  send: (text: string) => void;
  /** Text to show locally (the echo). */
  echo: (text: string) => void;
  /** End of stdin (Ctrl-D). */
  eof: () => void;
  /** Stop the run (Ctrl-C). */
  cancel: () => void;
}

export class LineDiscipline {
  #line = "";
  raw = false;
  readonly #out: Discipline;

  constructor(out: Discipline) {
    this.#out = out;
  }

  /** Handles typed or pasted text (xterm's `onData`). */
  input(data: string): void {
    // Escape sequences (arrows, function keys) are not line editing here: drop them in line mode.
    if (!this.raw && data.startsWith("\x1b")) return;
    for (const ch of data) this.#char(ch);
  }

  #char(ch: string): void {
    if (ch === "\x03") {
      this.#line = "";
      this.#out.echo("^C\r\n");
      this.#out.cancel();
      return;
    }
    if (ch === "\x04") {
      if (this.#line) {
        this.#out.send(this.#line);
        this.#line = "";
        return;
      }
      this.#out.eof();
      return;
    }
    if (this.raw) {
      this.#out.send(ch === "\r" ? "\n" : ch);
      return;
    }
    if (ch === "\r" || ch === "\n") {
      this.#out.echo("\r\n");
      this.#out.send(this.#line + "\n");
      this.#line = "";
      return;
    }
    if (ch === "\x7f" || ch === "\b") {
      if (!this.#line) return;
      const chars = [...this.#line];
      chars.pop();
      this.#line = chars.join("");
      this.#out.echo("\b \b");
      return;
    }
    if (ch === "\x15") {
      this.#out.echo("\b \b".repeat([...this.#line].length));
      this.#line = "";
      return;
    }
    if (ch < " ") return;
    this.#line += ch;
    this.#out.echo(ch);
  }

  /** Forgets a partial line (a new run starts). */
  reset(): void {
    this.#line = "";
  }
}
