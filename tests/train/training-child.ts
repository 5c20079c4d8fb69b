// `andromeda train` for the CLI tests that need the trainer's test hooks: the command's own
// argument parsing, signal handling and summary (runTraining), with the hooks given as JSON in the
// first argument: {"stepDelayMs": n} slows every step down, {"saveDelayMs": n} pauses each
// checkpoint after its weights are written (and says so on stderr: "test: saving step N").
//
//   node dist/tests/train/training-child.js '{"stepDelayMs":200}' --data … --out …
import { setTimeout as sleep } from 'node:timers/promises';
import '../../src/train/andromeda-adapter.js';
import { parseTrainArgs, runTraining, summarize } from '../../src/cli/commands/train.js';

interface ChildHooks {
  stepDelayMs?: number;
  saveDelayMs?: number;
}

const [hooksJson = '{}', ...args] = process.argv.slice(2);
const hooks = JSON.parse(hooksJson) as ChildHooks;
try {
  const result = await runTraining(parseTrainArgs(args), {
    stepDelayMs: hooks.stepDelayMs,
    onCheckpointFile: hooks.saveDelayMs
      ? async (file) => {
          if (file !== 'model.safetensors') return;
          process.stderr.write('test: saving, paused after model.safetensors\n');
          await sleep(hooks.saveDelayMs);
        }
      : undefined,
  });
  result.model.dispose();
  process.stderr.write(summarize(result) + '\n');
} catch (error) {
  process.stderr.write(`andromeda train: ${(error as Error).message}\n`);
  process.exitCode = 1;
}
