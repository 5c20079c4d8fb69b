// The records of the benches' JSON-lines logs (bench/results/logs/…/*.jsonl), for benches that fit or re-plan
// earlier runs' measurements instead of measuring (bench/cpu-plan-calibrate.ts and bench/cpu-plan-threads.ts with
// --refit, bench/plan-repredict.ts) and for the tests that hold the planner to them (tests/plan/).
import { readFileSync } from 'node:fs';

/** Every record of the files, in order (one JSON value a non-empty line). */
export function readJsonlLogs(files: readonly string[]): any[] {
  return files.flatMap((file) =>
    readFileSync(file, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line)),
  );
}
