/**
 * What the tests of the serverless example and `bench/serverless_cost.ts` share: its data, the
 * example started as a process, load from concurrent clients over 127.0.0.1, and replays of
 * what the store says it applied.
 *
 * @module
 */
import assert from "node:assert/strict";
import { type OptimizerState, step } from "../mod.ts";
import type { JournalRecord } from "../store.ts";
import { type Batch, batchGradient, initialParams, optimizer } from "./serverless_handler.ts";

/** `count` batches of linear-regression data, with ids `${tag}0`, `${tag}1`, …. */
export function batches(count: number, features: number, tag = "r", seed = 99): Required<Batch>[] {
  let a = seed;
  const rand = () => ((a = (Math.imul(a, 1664525) + 1013904223) >>> 0) / 4294967296) * 2 - 1;
  return Array.from({ length: count }, (_, i) => {
    const x = Array.from({ length: 8 }, () => Array.from({ length: features }, rand));
    const y = x.map((row) => row.reduce((s, v, j) => s + v * (j + 1) / features, 0.5));
    return { x, y, id: `${tag}${i}` };
  });
}

/** The same batches applied one after another in one process; the state after them. */
export async function replay(applied: Batch[], features: number): Promise<OptimizerState> {
  let state = await optimizer.init(initialParams(features));
  for (const batch of applied) {
    batchGradient(state.params, batch, state.grads);
    state = step(state);
  }
  return state;
}

/**
 * The journal's steps replayed in one process: each contribution's gradient computed at the
 * parameters of its base step, their mean over samples taken in the journal's order (float64
 * sums, one division, rounded to float32: written here independently of the store), one step
 * each. The state after them.
 */
export async function replayJournal(
  journal: readonly JournalRecord[],
  byId: ReadonlyMap<string, Batch>,
  features: number,
  keep = Infinity, // how many steps' parameters to keep (a contribution's base is that recent)
): Promise<OptimizerState> {
  let state = await optimizer.init(initialParams(features));
  const paramsAt = new Map([[0, copy(state.params)]]);
  for (const record of journal) {
    const size = features + 1;
    const sum = new Float64Array(size);
    let samples = 0;
    for (const e of record.entries) {
      const batch = byId.get(e.id)!;
      const g = initialParams(features);
      batchGradient(paramsAt.get(e.base)!, batch, g);
      for (let j = 0; j < features; j++) sum[j] += e.samples * g.w[j];
      sum[features] += e.samples * g.b[0];
      samples += e.samples;
    }
    for (let j = 0; j < features; j++) state.grads.w[j] = sum[j] / samples;
    state.grads.b[0] = sum[features] / samples;
    state = step(state);
    assert.equal(state.step, record.step, "one step a journal record");
    paramsAt.set(state.step, copy(state.params));
    paramsAt.delete(state.step - keep);
  }
  return state;
}

const copy = (params: Readonly<Record<string, Float32Array>>) =>
  Object.fromEntries(Object.entries(params).map(([k, v]) => [k, v.slice()]));

/** Posts a batch to `/step`. */
export const post = (base: string, body: unknown) =>
  fetch(`${base}/step`, { method: "POST", body: JSON.stringify(body) });

/** The example, started as its own process; resolves once it listens. */
export class ExampleServer {
  readonly child: Deno.ChildProcess;
  base = "";
  private output = "";
  private reading: Promise<void>;

  private constructor(args: string[], script: URL) {
    this.child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--unstable-kv",
        "--allow-net=127.0.0.1",
        "--allow-read",
        "--allow-write",
        script.pathname,
        "--port",
        "0",
        ...args,
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const collect = async (stream: ReadableStream<Uint8Array>) => {
      for await (const text of stream.pipeThrough(new TextDecoderStream())) this.output += text;
    };
    this.reading = Promise.all([collect(this.child.stdout), collect(this.child.stderr)]).then(
      () => {},
    );
  }

  /** Starts the example (or another `script` that takes `--port` and says so alike). */
  static async start(
    args: string[],
    script: URL = new URL("./serverless_handler.ts", import.meta.url),
  ): Promise<ExampleServer> {
    const server = new ExampleServer(args, script);
    const deadline = Date.now() + 60_000;
    while (!/Listening on (http:\/\/127\.0\.0\.1:\d+)\//.test(server.output)) {
      if (Date.now() > deadline) {
        server.child.kill("SIGKILL");
        await server.stopped();
        throw new Error(`The example did not start:\n${server.output}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    server.base = /Listening on (http:\/\/127\.0\.0\.1:\d+)\//.exec(server.output)![1];
    return server;
  }

  /** Waits for the process to end; its exit status. */
  async stopped(): Promise<Deno.CommandStatus> {
    const status = await this.child.status;
    await this.reading;
    return status;
  }

  /** Ends it with SIGTERM (a clean shutdown) and checks it exited cleanly. */
  async stop(): Promise<void> {
    this.child.kill("SIGTERM");
    const status = await this.stopped();
    assert.equal(status.code, 0, this.output);
  }

  get log(): string {
    return this.output;
  }
}

export interface Answer {
  batch: Required<Batch>;
  status?: number;
  body?: {
    step: number;
    loss: number;
    id: string;
    attempts?: number;
    base?: number;
    duplicate?: boolean;
    pending?: boolean;
    error?: string;
  };
  /** Times it was sent (more than once after a connection failed). */
  sent?: number;
  /** Ms from its first sending to its answer. */
  ms?: number;
}

/**
 * Sends `data` to `base`, `concurrency` at a time, and stops sending once a request fails (the
 * server died: that request and those in flight have no status). `onAnswer` sees each answer.
 */
export async function load(
  base: string,
  data: Required<Batch>[],
  concurrency: number,
  onAnswer?: (answer: Answer) => void,
): Promise<Answer[]> {
  const answers: Answer[] = [];
  let next = 0;
  let halt = false;
  const worker = async () => {
    while (!halt && next < data.length) {
      const answer: Answer = { batch: data[next++] };
      answers.push(answer);
      try {
        const res = await post(base, answer.batch);
        answer.status = res.status;
        answer.body = await res.json();
      } catch {
        answer.status = undefined;
        halt = true;
        continue;
      }
      onAnswer?.(answer);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return answers;
}

/** A seeded random number generator in [0, 1). */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => ((a = (Math.imul(a ^ (a >>> 15), 2246822519) + 3266489917) >>> 0) / 4294967296);
}

/**
 * Sends `data` from `clients` concurrent clients, client `c` to `target(c)` (read again before
 * each try, so that a restarted server is found), each request at most `tries` times: a request
 * whose connection fails (its server was killed) is sent again, with the same id, after
 * `pause` ms, by `send` (default {@linkcode post}). `onAnswer` sees each answer. Every answer has a status unless all its tries
 * failed.
 */
export async function loadRetrying(
  target: (client: number) => string,
  data: Required<Batch>[],
  clients: number,
  options: {
    tries?: number;
    pause?: number;
    onAnswer?: (a: Answer) => void;
    send?: (base: string, batch: Required<Batch>) => Promise<Response>;
  } = {},
): Promise<Answer[]> {
  const { tries = 400, pause = 50, onAnswer, send = post } = options;
  const answers: Answer[] = [];
  let next = 0;
  const client = async (c: number) => {
    while (next < data.length) {
      const answer: Answer = { batch: data[next++], sent: 0 };
      answers.push(answer);
      const start = performance.now();
      while (answer.status === undefined && answer.sent! < tries) {
        answer.sent!++;
        try {
          const res = await send(target(c), answer.batch);
          answer.body = await res.json();
          answer.status = res.status;
        } catch {
          await new Promise((r) => setTimeout(r, pause));
        }
      }
      answer.ms = performance.now() - start;
      onAnswer?.(answer);
    }
  };
  await Promise.all(Array.from({ length: clients }, (_, c) => client(c)));
  return answers;
}
