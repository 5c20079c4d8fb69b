/**
 * Text from files (tensor names, config keys, paths inside checkpoints) made safe to print on a terminal:
 * control characters — escape sequences that would recolour, move the cursor or retitle the terminal —
 * and the bidirectional overrides that reorder what is shown are written as visible \x1b-style escapes.
 * Line breaks and tabs stay, since messages use them for layout.
 */
const UNSAFE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

export function printable(text: string): string {
  return text.replace(UNSAFE, (c) => {
    const code = c.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}
