/**
 * Streams decoded text while tokens arrive. A token may end in the middle of a multi-byte UTF-8
 * character (byte-level tokenizers split them freely), so bytes go through a streaming
 * TextDecoder that holds an incomplete sequence back until the rest arrives; `flush` emits what
 * is left (an incomplete tail becomes U+FFFD, as in `Tokenizer.decode`).
 */
import type { Tokenizer } from '../data/tokenizer/tokenizer.js';

export class TokenTextStream {
  // ignoreBOM keeps a generated U+FEFF instead of dropping it, as Tokenizer.decode does.
  private readonly decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
  private text = '';

  constructor(
    private readonly tokenizer: Tokenizer,
    private readonly write: (text: string) => void = () => {},
  ) {}

  /** Adds one token; returns (and writes) the text it completes, possibly ''. */
  push(id: number): string {
    const piece = this.decoder.decode(this.tokenizer.tokenBytes(id), { stream: true });
    if (piece) {
      this.text += piece;
      this.write(piece);
    }
    return piece;
  }

  /** Ends the stream: emits any bytes still held back. */
  flush(): string {
    const piece = this.decoder.decode();
    if (piece) {
      this.text += piece;
      this.write(piece);
    }
    return piece;
  }

  /** All text emitted so far. */
  get value(): string {
    return this.text;
  }
}
