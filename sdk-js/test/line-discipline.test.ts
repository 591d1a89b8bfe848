/**
 * The playground terminal's line discipline (no browser needed): what
 * keystrokes send to the guest, echo locally, end or cancel.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { LineDiscipline } from "../playground/line-discipline.js";

function recorder(raw = false) {
  const log = { sent: [] as string[], echoed: "", eofs: 0, cancels: 0 };
  const d = new LineDiscipline({
    send: (t) => log.sent.push(t),
    echo: (t) => (log.echoed += t),
    eof: () => log.eofs++,
    cancel: () => log.cancels++,
  });
  d.raw = raw;
  return { d, log };
}

describe("line discipline", () => {
  it("sends nothing until Enter, then the line with a newline", () => {
    const { d, log } = recorder();
    d.input("1+2");
    assert.deepEqual(log.sent, []);
    d.input("\r");
    assert.deepEqual(log.sent, ["1+2\n"]);
  });

  it("echoes typed characters locally", () => {
    const { d, log } = recorder();
    d.input("ab");
    assert.equal(log.echoed, "ab");
  });

  it("Backspace removes the last character before sending", () => {
    const { d, log } = recorder();
    d.input("2*9\x7f4\r");
    assert.deepEqual(log.sent, ["2*4\n"]);
  });

  it("Ctrl-U forgets the whole line", () => {
    const { d, log } = recorder();
    d.input("oops\x15ok\r");
    assert.deepEqual(log.sent, ["ok\n"]);
  });

  it("a pasted block sends one write per line", () => {
    const { d, log } = recorder();
    d.input("1+1\r2+2\r");
    assert.deepEqual(log.sent, ["1+1\n", "2+2\n"]);
  });

  it("Ctrl-D on an empty line ends stdin", () => {
    const { d, log } = recorder();
    d.input("\x04");
    assert.equal(log.eofs, 1);
  });

  it("Ctrl-D after a partial line sends it without ending stdin", () => {
    const { d, log } = recorder();
    d.input("abc\x04");
    assert.deepEqual(log.sent, ["abc"]);
    assert.equal(log.eofs, 0);
  });

  it("Ctrl-C cancels", () => {
    const { d, log } = recorder();
    d.input("12\x03");
    assert.equal(log.cancels, 1);
    assert.deepEqual(log.sent, []);
  });

  it("raw mode sends every key at once, Enter as a newline, without echo", () => {
    const { d, log } = recorder(true);
    d.input("a");
    d.input("\r");
    assert.deepEqual(log.sent, ["a", "\n"]);
    assert.equal(log.echoed, "");
  });
});
