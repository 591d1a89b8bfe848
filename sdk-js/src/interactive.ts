/**
 * Interactive sessions: a person (or a program) talks to a running guest.
 * The session starts the run at once, buffers its events until they are
 * read, and sends writes one after another in the order they were made.
 * How bytes reach the guest depends on the transport (`Run` + `WriteStdin`
 * over gRPC-web, `Execute` with `stream_stdin` over gRPC); that is the
 * `send` function given by the client.
 *
 * @module
 */
import { Code, WasmWizError } from "./errors.js";
import type { BytesLike, RunEvent, RunResult, RunStream } from "./client.js";

/** A running interactive execution. */
export interface InteractiveSession extends AsyncIterable<RunEvent> {
  /** Resolves with `Started.execution_id` once the guest started. */
  readonly executionId: Promise<string>;
  /**
   * Sends bytes (text as UTF-8) to the guest's stdin. Writes are sent one at
   * a time, in call order; the promise resolves when the server took them.
   */
  write(data: BytesLike): Promise<void>;
  /** Ends the guest's stdin (EOF) after the writes made before. */
  close(): Promise<void>;
  /** Stops the guest (the run ends with CANCELLED). */
  cancel(): void;
  /** Everything the run produced, once it ends (rejects with a {@link WasmWizError}). */
  result(): Promise<RunResult>;
}

/** Sends one piece of stdin, or the end of it (`eof`), to the execution. */
export type SendStdin = (executionId: string, data: Uint8Array, eof: boolean) => Promise<void>;

/** An unbounded queue read by one async iterator; `fail` ends it with an error. */
class EventQueue<T> implements AsyncIterable<T> {
  #items: T[] = [];
  #wake: (() => void) | undefined;
  #done = false;
  #error: unknown;
  #taken = false;

  push(v: T): void {
    this.#items.push(v);
    this.#wake?.();
  }

  end(error?: unknown): void {
    this.#done = true;
    this.#error = error;
    this.#wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T> {
    if (this.#taken) throw new Error("an interactive session can be iterated only once; use result()");
    this.#taken = true;
    for (;;) {
      if (this.#items.length) {
        yield this.#items.shift()!;
        continue;
      }
      if (this.#done) {
        if (this.#error !== undefined) throw this.#error;
        return;
      }
      await new Promise<void>((r) => (this.#wake = r));
      this.#wake = undefined;
    }
  }
}

/** @internal Built by `WasmWizClient.interactive`. */
export class Session implements InteractiveSession {
  readonly executionId: Promise<string>;
  readonly #events = new EventQueue<RunEvent>();
  readonly #stream: RunStream;
  readonly #abort: AbortController;
  readonly #send: SendStdin;
  /** The last write in flight: the next one waits for it (order is kept). */
  #chain: Promise<void> = Promise.resolve();
  #closed = false;
  /** Rejects once the run ended: a write still waiting for the execution id then fails instead of hanging. */
  readonly #ended: Promise<never>;

  /**
   * `send` must settle on its own once the run has ended (`onEnd` is told
   * when it does, so a transport can fail the writes it still holds).
   */
  constructor(stream: RunStream, abort: AbortController, send: SendStdin, onEnd?: (error: unknown) => void) {
    this.#stream = stream;
    this.#abort = abort;
    this.#send = send;
    let started!: (id: string) => void;
    let failed!: (e: unknown) => void;
    this.executionId = new Promise<string>((resolve, reject) => {
      started = resolve;
      failed = reject;
    });
    this.executionId.catch(() => undefined);
    let rejectEnded!: (e: unknown) => void;
    this.#ended = new Promise<never>((_, reject) => (rejectEnded = reject));
    const ended = (e: unknown) => {
      rejectEnded(e);
      onEnd?.(e);
    };
    this.#ended.catch(() => undefined);
    void (async () => {
      try {
        for await (const ev of stream) {
          if (ev.type === "started") started(ev.started.executionId);
          this.#events.push(ev);
        }
        failed(new WasmWizError(Code.FailedPrecondition, "the run ended before it started"));
        this.#events.end();
        ended(new WasmWizError(Code.FailedPrecondition, "the run has ended; its stdin takes no more writes"));
      } catch (e) {
        failed(e);
        this.#events.end(e);
        ended(e);
      }
    })();
  }

  [Symbol.asyncIterator](): AsyncIterator<RunEvent> {
    return this.#events[Symbol.asyncIterator]();
  }

  write(data: BytesLike): Promise<void> {
    if (this.#closed) return Promise.reject(new WasmWizError(Code.FailedPrecondition, "stdin was closed; no more writes"));
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
    return this.#enqueue(bytes, false);
  }

  close(): Promise<void> {
    if (this.#closed) return this.#chain;
    this.#closed = true;
    return this.#enqueue(new Uint8Array(0), true);
  }

  cancel(): void {
    this.#abort.abort();
  }

  result(): Promise<RunResult> {
    return this.#stream.result();
  }

  #enqueue(bytes: Uint8Array, eof: boolean): Promise<void> {
    const next = this.#chain
      .catch(() => undefined)
      .then(async () => {
        const id = await Promise.race([this.executionId, this.#ended]);
        try {
          // Not raced against the run's end: the write that makes a guest
          // exit often reaches its answer after the stream has closed, and
          // that answer still tells whether the bytes were delivered. The
          // server answers every write once the guest is gone.
          await this.#send(id, bytes, eof);
        } catch (e) {
          throw WasmWizError.from(e);
        }
      });
    this.#chain = next;
    return next;
  }
}

/**
 * Stdin chunks pushed by the session and pulled by the `Execute` request
 * stream; each push resolves when the stream took the chunk, or fails once
 * the run ended before it was taken.
 */
export class StdinFeed implements AsyncIterable<{ data: Uint8Array; eof: boolean }> {
  readonly #queue = new EventQueue<{ data: Uint8Array; eof: boolean; taken: () => void }>();
  /** Rejects the pushes not yet taken. */
  readonly #waiting = new Set<(error: unknown) => void>();
  #ended: { error: unknown } | undefined;

  push(data: Uint8Array, eof: boolean): Promise<void> {
    if (this.#ended) return Promise.reject(this.#ended.error);
    return new Promise<void>((resolve, reject) => {
      this.#waiting.add(reject);
      const taken = () => {
        this.#waiting.delete(reject);
        resolve();
      };
      this.#queue.push({ data, eof, taken });
      if (eof) this.#queue.end();
    });
  }

  /** The run ended: writes the request stream has not taken fail with `error`. */
  end(error: unknown): void {
    this.#ended = { error };
    for (const reject of this.#waiting) reject(error);
    this.#waiting.clear();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<{ data: Uint8Array; eof: boolean }> {
    for await (const item of this.#queue) {
      item.taken();
      yield { data: item.data, eof: item.eof };
      if (item.eof) return;
    }
  }
}
