// GenerationStream on its own: the engine's side (its sink) driven by hand, consumed by iteration or by a
// listener.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GenerationStream, type GenerationResult, type TokenEvent } from '../../src/inference/generation-stream.js';

function streamWithCancel(): { stream: GenerationStream; cancels: () => number } {
  let cancels = 0;
  // The engine's cancel ends the request through its sink, as the scheduler does.
  const stream: GenerationStream = new GenerationStream(7, 3, () => {
    cancels++;
    stream.sink.finish('cancelled');
  });
  return { stream, cancels: () => cancels };
}

const event = (tokenId: number, text: string): TokenEvent => ({ tokenId, text });

test('a listener gets the events so far at once, later ones as they come, then the result once', async () => {
  const { stream } = streamWithCancel();
  stream.sink.token(event(1, 'a'));
  stream.sink.token(event(2, ''));
  const seen: string[] = [];
  const ends: GenerationResult[] = [];
  stream.listen({ token: (e) => seen.push(`${e.tokenId}:${e.text}`), end: (r) => ends.push(r) });
  assert.deepEqual(seen, ['1:a', '2:']);
  stream.sink.token(event(3, 'bc'));
  assert.deepEqual(seen, ['1:a', '2:', '3:bc'], 'delivered synchronously, within the sink call');
  assert.equal(ends.length, 0);
  stream.sink.finish('length');
  assert.equal(ends.length, 1);
  assert.equal(ends[0]!.finishReason, 'length');
  assert.equal(ends[0]!.text, 'abc');
  assert.deepEqual(ends[0]!.tokenIds, [1, 2, 3]);
  assert.deepEqual(ends[0]!.usage, { promptTokens: 3, completionTokens: 3 });
  assert.equal(await stream.result, ends[0]);
});

test('a listener that comes after the end gets every event and the end at once', () => {
  const { stream } = streamWithCancel();
  stream.sink.token(event(5, 'x'));
  stream.sink.finish('stop');
  const calls: string[] = [];
  stream.listen({ token: (e) => calls.push(`token ${e.text}`), end: (r) => calls.push(`end ${r.finishReason}`) });
  assert.deepEqual(calls, ['token x', 'end stop']);
});

test('one consumer per stream: listening and iterating exclude each other', () => {
  const listened = streamWithCancel().stream;
  listened.listen({ token: () => {}, end: () => {} });
  assert.throws(() => listened[Symbol.asyncIterator](), /already listened; one consumer per stream/);
  assert.throws(() => listened.listen({ token: () => {}, end: () => {} }), /already listened/);
  const iterated = streamWithCancel().stream;
  iterated[Symbol.asyncIterator]();
  assert.throws(() => iterated.listen({ token: () => {}, end: () => {} }), /already iterated/);
});

test('a listener that throws gets no more tokens; its request is cancelled after the step, as an error', async () => {
  const { stream, cancels } = streamWithCancel();
  const seen: number[] = [];
  const ends: GenerationResult[] = [];
  stream.listen({
    token: (e) => {
      seen.push(e.tokenId);
      if (e.tokenId === 2) throw new Error('listener broke');
    },
    end: (r) => ends.push(r),
  });
  stream.sink.token(event(1, 'a'));
  assert.doesNotThrow(() => stream.sink.token(event(2, 'b')), 'the engine never sees the throw');
  stream.sink.token(event(3, 'c'));
  assert.deepEqual(seen, [1, 2]);
  assert.equal(cancels(), 0, 'not cancelled within the step');
  const result = await stream.result;
  assert.equal(cancels(), 1);
  assert.equal(result.finishReason, 'error');
  assert.equal(result.error?.message, 'listener broke');
  assert.deepEqual(ends, [result]);
});

test('iteration still sees every event, then throws the error of a failed request', async () => {
  const { stream } = streamWithCancel();
  stream.sink.token(event(1, 'a'));
  setImmediate(() => {
    stream.sink.token(event(2, 'b'));
    stream.sink.finish('error', new Error('device lost'));
  });
  const seen: string[] = [];
  await assert.rejects(async () => {
    for await (const e of stream) seen.push(e.text);
  }, /device lost/);
  assert.deepEqual(seen, ['a', 'b']);
});
