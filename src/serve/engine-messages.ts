/**
 * The messages between the HTTP thread's EngineLink (./engine-link.ts) and the main thread's engine host
 * (./engine-host.ts). Everything here survives structured cloning: no functions, no AbortSignals (a
 * cancellation is its own message) and errors as their name and message.
 *
 * The engine's tokens travel in one `tokens` message per engine step, whatever the number of streams:
 * a flat list of records, in the order the engine emitted them (a stream's end after its last token).
 */
import type { EngineStats, FinishReason, GenerationParams } from '../inference/engine.js';

/** HTTP thread → engine. */
export type LinkMessage =
  | {
      kind: 'submit';
      /** Answered by a `submitted` or `refused` message with this id. */
      requestId: number;
      choices: { context: Int32Array; params: Omit<GenerationParams, 'signal'> }[];
    }
  | { kind: 'cancel'; streamId: number }
  | { kind: 'stats'; requestId: number };

/** Which error the engine refused a request with, so that the HTTP thread answers 429, 400 or 500. */
export type RefusalKind = 'queue-full' | 'range' | 'other';

/** Engine → HTTP thread. */
export type HostMessage =
  | {
      kind: 'submitted';
      requestId: number;
      /** Per choice: the engine's stream id and the prompt tokens it counts. */
      streams: { streamId: number; promptTokens: number }[];
    }
  | { kind: 'refused'; requestId: number; refusal: RefusalKind; message: string }
  | { kind: 'tokens'; records: TokenRecords }
  | { kind: 'stats'; requestId: number; stats: EngineStats };

/**
 * A step's events, flattened: a token is
 *   streamId, tokenId, text, logprob (null when not asked), topLogprobs (null when none)
 * and a stream's end is
 *   -(streamId + 1), finishReason, error message (null unless the reason is 'error').
 */
export type TokenRecords = (number | string | null | { tokenId: number; logprob: number }[])[];

/** Fields per record: both kinds have five, so the reader steps by this. */
export const RECORD_FIELDS = 5;

/** The end record's stream field, negative so it cannot be read as a token's. */
export function endMarker(streamId: number): number {
  return -(streamId + 1);
}

export function streamOfEndMarker(marker: number): number {
  return -marker - 1;
}

export type { FinishReason };
