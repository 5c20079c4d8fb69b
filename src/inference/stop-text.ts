/**
 * The text a request streams, with its stop strings cut out. Stop strings are matched on the decoded
 * text, so they are found wherever token boundaries fall (a stop string may end in the middle of a
 * token, or span several). Text that could still be the start of a stop string is held back until the
 * next token decides it, so the stop string itself is never emitted, not even in part.
 */
import type { Tokenizer } from '../data/tokenizer/tokenizer.js';
import { TokenTextStream } from './text-stream.js';

export interface StopTextPiece {
  /** Text that is now safe to emit (possibly ''). */
  text: string;
  /** True when a stop string was found: `text` ends just before it and nothing more comes. */
  stopped: boolean;
}

export class StopTextFilter {
  private readonly stream: TokenTextStream;
  /** All text decoded so far (held back text included). */
  private decoded = '';
  /** Characters of `decoded` already emitted. */
  private emitted = 0;
  private stopped = false;
  private readonly longestStop: number;

  constructor(
    tokenizer: Tokenizer,
    private readonly stops: readonly string[],
  ) {
    for (const stop of stops) if (stop === '') throw new RangeError('stop strings must not be empty');
    this.stream = new TokenTextStream(tokenizer);
    this.longestStop = Math.max(0, ...stops.map((s) => s.length));
  }

  /** The emitted text so far. */
  get text(): string {
    return this.decoded.slice(0, this.emitted);
  }

  /** Adds one token's text. */
  push(id: number): StopTextPiece {
    if (this.stopped) throw new Error('StopTextFilter: a token after the stop string');
    return this.advance(this.stream.push(id), false);
  }

  /** Ends the text (decoder tail included) and emits everything not yet emitted, short of a stop string. */
  finish(): StopTextPiece {
    if (this.stopped) return { text: '', stopped: true };
    return this.advance(this.stream.flush(), true);
  }

  private advance(piece: string, final: boolean): StopTextPiece {
    // A stop string wholly inside the emitted text would already have stopped the stream, so a new
    // match ends in `piece`: the search can start a stop string's length before it.
    const searchFrom = Math.max(0, this.decoded.length - this.longestStop + 1);
    this.decoded += piece;
    let stopAt = -1;
    for (const stop of this.stops) {
      const at = this.decoded.indexOf(stop, searchFrom);
      if (at >= 0 && (stopAt < 0 || at < stopAt)) stopAt = at;
    }
    if (stopAt >= 0) {
      this.stopped = true;
      return { text: this.emit(stopAt), stopped: true };
    }
    return { text: this.emit(final ? this.decoded.length : this.decoded.length - this.heldBack()), stopped: false };
  }

  /** Length of the longest tail of the text that begins some stop string (it may yet complete it). */
  private heldBack(): number {
    let held = 0;
    for (const stop of this.stops) {
      for (let k = Math.min(stop.length - 1, this.decoded.length); k > held; k--) {
        if (this.decoded.endsWith(stop.slice(0, k))) {
          held = k;
          break;
        }
      }
    }
    return Math.min(held, this.decoded.length - this.emitted);
  }

  private emit(end: number): string {
    const out = this.decoded.slice(this.emitted, end);
    this.emitted = Math.max(this.emitted, end);
    return out;
  }
}
