// Malformed and hostile requests for the server's fuzz test and load benchmark: each kind sends one
// request (raw bytes over a socket where fetch would refuse to send it) and returns the HTTP status the
// server answered, or 0 when the connection closed without an answer. Every one should get a 4xx.
import { connect } from 'node:net';

export interface HostileRequest {
  kind: string;
  send(): Promise<{ status: number; body: string }>;
}

/** A deterministic generator (tests must reproduce). */
function random(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
}

/** Sends raw bytes, in pieces `delayMs` apart, and reads the status line of the answer (0: none). */
export function rawRequest(
  base: string,
  pieces: (string | Buffer)[],
  delayMs = 0,
  giveUpMs = 30_000,
): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve) => {
    const socket = connect(Number(port), hostname);
    let received = '';
    let settled = false;
    const finish = (): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const match = /^HTTP\/1\.[01] (\d{3})/.exec(received);
      resolve({ status: match ? Number(match[1]) : 0, body: received.slice(received.indexOf('\r\n\r\n') + 4) });
    };
    const timer = setTimeout(finish, giveUpMs);
    socket.on('data', (data) => {
      received += data.toString('latin1');
    });
    socket.on('close', finish);
    socket.on('error', finish);
    socket.on('connect', async () => {
      for (const piece of pieces) {
        if (socket.destroyed) return;
        socket.write(piece);
        if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
      }
    });
  });
}

async function postJson(url: string, body: string | Buffer, contentType = 'application/json') {
  try {
    const payload = typeof body === 'string' ? body : new Uint8Array(body);
    const response = await fetch(url, { method: 'POST', headers: { 'content-type': contentType }, body: payload });
    return { status: response.status, body: await response.text() };
  } catch {
    return { status: 0, body: '' };
  }
}

const NOT_A_NUMBER: unknown[] = ['5', true, [], {}, 'NaN', [1], { $gt: 1 }];
/** Values of the wrong type (or shape) for each field; null is not among them (OpenAI accepts it as absent). */
const WRONG_VALUES: Record<string, unknown[]> = {
  model: [5, true, null, {}, [], ''],
  prompt: [5, true, null, {}, [1, 'a'], [[]], [-1], [0.5], []],
  max_tokens: [...NOT_A_NUMBER, 3.5],
  temperature: NOT_A_NUMBER,
  top_p: NOT_A_NUMBER,
  n: [...NOT_A_NUMBER, 1.5],
  stop: [5, true, {}, [1], [''], ''],
  seed: [...NOT_A_NUMBER, 0.25],
  logprobs: [...NOT_A_NUMBER, 2.5],
  stream: ['yes', 1, {}, []],
  stream_options: ['x', 1, { include_usage: 'yes' }, { other: true }],
  presence_penalty: NOT_A_NUMBER,
  frequency_penalty: NOT_A_NUMBER,
};

/** Values of the right type out of each field's range. */
const OUT_OF_RANGE: Record<string, number[]> = {
  max_tokens: [-1, 0, -1e308, 1e308, 2 ** 40],
  temperature: [-0.5, -1e308, 2.5, 1e308],
  top_p: [-0.5, 0, 1.5],
  n: [-1, 0, 1e9],
  logprobs: [-1, 1e9],
  seed: [2 ** 53, -(2 ** 60), 1e308],
  frequency_penalty: [-2.5, -1e308, 1e308],
  presence_penalty: [-2.5, 3],
};

/**
 * `count` hostile requests against the server at `base` serving `model`, mixed over every kind.
 * `slowLoris` is how many of them trickle their body more slowly than the server's request timeout.
 */
export function hostileRequests(base: string, model: string, count: number, seed = 1, slowLoris = 4): HostileRequest[] {
  const rand = random(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)]!;
  const completions = `${base}/v1/completions`;
  const chat = `${base}/v1/chat/completions`;
  const valid = JSON.stringify({ model, prompt: 'the white whale', max_tokens: 4 });
  const host = new URL(base).host;
  const kinds: (() => HostileRequest)[] = [
    () => {
      const cut = valid.slice(0, Math.floor(rand() * (valid.length - 1)));
      return { kind: 'truncated JSON', send: () => postJson(completions, cut || '{') };
    },
    () => {
      const bytes = Buffer.from(Array.from({ length: 64 }, () => Math.floor(rand() * 256)));
      return { kind: 'random bytes', send: () => postJson(completions, bytes) };
    },
    () => {
      const literal = pick(['NaN', '-NaN', 'Infinity', '-Infinity', '1e400', '-1e400', '0x10', '01', '.5', '+1']);
      const field = pick(['temperature', 'max_tokens', 'top_p', 'seed', 'n', 'presence_penalty']);
      return {
        kind: 'bad number',
        send: () => postJson(completions, `{"model": "${model}", "prompt": "a", "${field}": ${literal}}`),
      };
    },
    () => {
      const field = pick(Object.keys(WRONG_VALUES));
      const value = pick(WRONG_VALUES[field]!);
      const body = { model, prompt: 'the', max_tokens: 4, [field]: value };
      return { kind: `wrong type of ${field}`, send: () => postJson(completions, JSON.stringify(body)) };
    },
    () => {
      const field = pick(Object.keys(OUT_OF_RANGE));
      const value = pick(OUT_OF_RANGE[field]!);
      const body = { model, prompt: 'the', max_tokens: 4, [field]: value };
      return { kind: `negative or huge ${field}`, send: () => postJson(completions, JSON.stringify(body)) };
    },

    () => ({
      kind: '1 MB stop string',
      send: () => postJson(completions, JSON.stringify({ model, prompt: 'a', stop: 's'.repeat(1 << 20) })),
    }),
    () => ({
      kind: 'huge body',
      send: () => postJson(chat, JSON.stringify({ model, messages: [{ role: 'user', content: 'x'.repeat(2 << 20) }] })),
    }),
    () => {
      const name = pick(['logit_bias', 'tools', 'functions', 'response_format', 'best_of', 'echo', 'suffix', 'zzz']);
      return {
        kind: 'unknown field',
        send: () => postJson(completions, JSON.stringify({ model, prompt: 'a', [name]: 1 })),
      };
    },
    () => ({
      kind: 'deep nesting',
      send: () => postJson(completions, `{"model": "${model}", "prompt": ${'['.repeat(5000)}${']'.repeat(5000)}}`),
    }),
    () => ({
      kind: 'prototype keys',
      send: () => postJson(completions, `{"model": "${model}", "prompt": "a", "constructor": {"prototype": {"x": 1}}}`),
    }),
    () => ({
      kind: 'unknown model',
      send: () => postJson(completions, JSON.stringify({ model: 'gpt-' + Math.floor(rand() * 1e6), prompt: 'a' })),
    }),
    () => {
      const messages = pick<unknown>([
        [],
        [{ role: 'user' }],
        [{ role: 'user', content: 5 }],
        [{ role: 'tool', content: 'x' }],
        'hello',
        [{ role: 'user', content: [{ type: 'image_url', image_url: 'x' }] }],
      ]);
      return { kind: 'bad messages', send: () => postJson(chat, JSON.stringify({ model, messages })) };
    },
    () => ({
      kind: 'context overflow',
      send: () => postJson(completions, JSON.stringify({ model, prompt: 'w'.repeat(5000), max_tokens: 10 })),
    }),
    () => ({
      kind: 'wrong content type',
      send: () => postJson(completions, valid, 'application/x-www-form-urlencoded'),
    }),
    () => ({
      kind: 'invalid UTF-8',
      send: () =>
        postJson(
          completions,
          Buffer.concat([
            Buffer.from(`{"model": "${model}", "prompt": "`),
            Buffer.from([0xff, 0xfe, 0xc0]),
            Buffer.from('"}'),
          ]),
        ),
    }),
    () => ({
      kind: 'short body for its Content-Length',
      send: () =>
        rawRequest(
          base,
          [
            `POST /v1/completions HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\n` +
              `Content-Length: 100\r\nConnection: close\r\n\r\n{"model"`,
          ],
          0,
          10_000,
        ),
    }),
    () => ({
      kind: 'malformed request line',
      send: () => rawRequest(base, [`GARBAGE / HTTP/9.9\r\n\r\n`], 0, 10_000),
    }),
  ];
  const requests: HostileRequest[] = [];
  for (let i = 0; i < slowLoris; i++) {
    const body = Buffer.from(valid);
    const head =
      `POST /v1/completions HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n`;
    // One byte every 250 ms: the whole body would take longer than the server's request timeout.
    const pieces = [head, ...Array.from(body, (b) => Buffer.of(b))];
    requests.push({ kind: 'slow-loris upload', send: () => rawRequest(base, pieces, 250, 60_000) });
  }
  while (requests.length < count) requests.push(pick(kinds)());
  return requests;
}
