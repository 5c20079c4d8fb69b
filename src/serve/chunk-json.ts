/**
 * The JSON of a streamed chunk whose only varying part is its text, without serializing the whole chunk
 * for every token: the chunk is serialized once with a marker where the text goes, and each token's
 * chunk is the two sides of the marker around `JSON.stringify(text)` — the same bytes as serializing the
 * chunk with that text, since JSON.stringify serializes a string the same wherever it stands.
 */
const HOLE = '\u0000\u0001chunk text\u0001\u0000';
const HOLE_JSON = JSON.stringify(HOLE);

export class ChunkJson {
  private readonly before: string;
  private readonly after: string;
  /** False when the marker occurs elsewhere in the chunk too (in a model name, say): chunks are serialized whole. */
  private readonly split: boolean;

  /** `build` makes the chunk for a text; it is called once here (and per chunk only if the marker is ambiguous). */
  constructor(private readonly build: (text: string) => unknown) {
    const parts = JSON.stringify(build(HOLE)).split(HOLE_JSON);
    this.split = parts.length === 2;
    this.before = parts[0]!;
    this.after = parts[1] ?? '';
  }

  of(text: string): string {
    return this.split ? this.before + JSON.stringify(text) + this.after : JSON.stringify(this.build(text));
  }
}
