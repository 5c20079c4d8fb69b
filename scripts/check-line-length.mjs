// Fails, listing file:line, for any tracked .ts/.mjs/.js file line over 120 characters (Prettier does not break
// comments or long strings). Paths in .prettierignore are skipped.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const ignored = readFileSync('.prettierignore', 'utf8')
  .split('\n')
  .map((l) => l.trim().replace(/\/$/, ''))
  .filter((l) => l && !l.startsWith('#'));
const skip = (f) =>
  ignored.some((p) =>
    p.startsWith('*') ? f.endsWith(p.slice(1)) : f === p || f.startsWith(`${p}/`) || f.includes(`/${p}/`),
  );
const files = execFileSync('git', ['ls-files', '*.ts', '*.mjs', '*.js'], { encoding: 'utf8' })
  .split('\n')
  .filter((f) => f && !skip(f));
const long = files.flatMap((f) =>
  readFileSync(f, 'utf8')
    .split('\n')
    .flatMap((line, i) => (line.length > 120 ? [`${f}:${i + 1}: ${line.length} characters`] : [])),
);
if (long.length) {
  console.error(`${long.length} line(s) over 120 characters:\n${long.join('\n')}`);
  process.exit(1);
}
