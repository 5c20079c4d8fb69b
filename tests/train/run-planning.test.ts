// Decisions made before and around the steps: the newest intact checkpoint when the latest is
// damaged, the step plan for a time budget (schedule and ETA end with it, and a resumed run keeps
// it), the memory plan against the device, and the run lock within one process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { train } from '../../src/train/trainer.js';
import { listCheckpoints, loadCheckpoint } from '../../src/train/run-checkpoint.js';
import { readMetrics, type TrainRecord } from '../../src/train/metrics-log.js';
import { learningRate } from '../../src/train/schedule.js';
import { MEASURED_STEPS, PLAN_MARGIN, planFromThroughput } from '../../src/train/step-plan.js';
import { checkTrainingMemory, planTrainingMemory } from '../../src/train/memory-plan.js';
import { acquireRunLock, RunLockError } from '../../src/train/run-lock.js';
import { ConfigError } from '../../src/train/config.js';
import { andromedaFamily } from '../../src/train/andromeda-adapter.js';
import { quickstartConfig } from '../../src/cli/commands/quickstart.js';
import { deviceMemory } from '../../src/train/memory-plan.js';
import { quiet, smallDataset, tempDir, toyConfig } from './helpers.js';
import { toyFamily } from './toy-model.js';

const flipByte = (path: string) => {
  const bytes = readFileSync(path);
  bytes[bytes.length - 3] ^= 0xff;
  writeFileSync(path, bytes);
};

test(
  'resume and loading a run directory ' + 'take the newest intact checkpoint when the latest is damaged, and say so',
  async () => {
    const data = await smallDataset();
    const out = await tempDir();
    const cfg = toyConfig(data, out, { steps: 12, evalEvery: 0, checkpointEvery: 4, keepCheckpoints: 0 });
    (await train(cfg, { family: toyFamily(8), ...quiet, skipFinalEval: true })).model.dispose();
    const [, eight, twelve] = listCheckpoints(out);
    flipByte(join(twelve.dir, 'model.safetensors'));

    const warnings: string[] = [];
    const loaded = await loadCheckpoint(out, 'cpu', (m) => warnings.push(m));
    for (const t of loaded.weights.values()) t.dispose();
    assert.equal(loaded.dir, eight.dir);
    assert.equal(warnings.length, 1);
    assert.match(
      warnings[0],
      new RegExp(
        String.raw`step-000012 is corrupt: model\.safetensors does not match its SHA-256 checksum.*` +
          String.raw`trying the previous one \(step 8\)`,
      ),
    );

    const lines: string[] = [];
    const resumed = await train(cfg, {
      family: toyFamily(8),
      log: (l) => lines.push(l),
      progress: false,
      resume: true,
      skipFinalEval: true,
    });
    resumed.model.dispose();
    assert.equal(resumed.startStep, 8);
    assert.equal(resumed.step, 12);
    assert.ok(
      lines.some((l) => /step-000012 is corrupt.*trying the previous one \(step 8\)/.test(l)),
      lines.join('\n'),
    );
    assert.ok(lines.some((l) => /resuming .* from step 8 /.test(l)));

    for (const c of listCheckpoints(out)) flipByte(join(c.dir, 'model.safetensors'));
    await assert.rejects(
      train(cfg, { family: toyFamily(8), ...quiet, resume: true }),
      /every checkpoint in .* is damaged/,
    );
    await assert.rejects(
      loadCheckpoint(out, 'cpu', () => {}),
      /every checkpoint in .* is damaged/,
    );
  },
);

test('planFromThroughput: the steps the remaining time affords, never more than --steps, at least one', () => {
  assert.deepEqual(planFromThroughput(4, 1000, 60, 0.5), {
    totalSteps: 4 + Math.floor((PLAN_MARGIN * 60) / 0.5),
    limit: 'time',
    secondsPerStep: 0.5,
  });
  assert.deepEqual(planFromThroughput(4, 100, 60, 0.5), { totalSteps: 100, limit: 'steps' });
  assert.deepEqual(planFromThroughput(4, 100, 0.1, 0.5), { totalSteps: 5, limit: 'time', secondsPerStep: 0.5 });
});

test(
  'a time budget is planned for: the schedule decays to its floor by the time the budget stops the run, and a ' +
    'resume keeps the plan',
  { timeout: 60_000 },
  async () => {
    const data = await smallDataset();
    const out = await tempDir();
    const lines: string[] = [];
    const cfg = toyConfig(data, out, {
      steps: 10_000,
      warmup: 2,
      maxMinutes: 0.1,
      evalEvery: 0,
      checkpointEvery: 5,
      keepCheckpoints: 0,
      lr: 0.01,
      minLrRatio: 0.1,
    });
    const result = await train(cfg, {
      family: toyFamily(8),
      log: (l) => lines.push(l),
      progress: false,
      stepDelayMs: 150,
      skipFinalEval: true,
    });
    result.model.dispose();
    assert.equal(result.stoppedBy, 'time');
    assert.equal(result.plan.limit, 'time');
    assert.ok(
      result.plan.totalSteps > MEASURED_STEPS + 1 && result.plan.totalSteps < 100,
      `planned ${result.plan.totalSteps} steps`,
    );
    const planned = lines
      .map((l) =>
        new RegExp(
          `^plan: --max-minutes 0.1 allows about (\\d+) of the 10000 steps \\(0\\.\\d+ s/step measured over ` +
            `steps 2–${MEASURED_STEPS + 1}`,
        ).exec(l),
      )
      .find((m) => m);
    assert.ok(planned, lines.join('\n'));
    // Checkpoints (not in the first measurement) may shorten the plan later, never lengthen it.
    assert.ok(result.plan.totalSteps <= Number(planned[1]), lines.join('\n'));
    const steps = readMetrics(join(out, 'metrics.jsonl')).filter((r): r is TrainRecord => r.kind === 'train');
    const last = steps[steps.length - 1];
    // At (or a step or two before) the planned end the cosine is at or near its floor of 0.1 × peak;
    // following --steps instead it would still be at the peak.
    assert.ok(
      last.step >= result.plan.totalSteps - 2,
      `stopped at step ${last.step} of ${result.plan.totalSteps} planned`,
    );
    assert.ok(last.lr < 0.5 * cfg.lr, `last learning rate ${last.lr}`);
    const trainerState = JSON.parse(readFileSync(join(listCheckpoints(out).pop()!.dir, 'trainer.json'), 'utf8'));
    assert.deepEqual(trainerState.plan, result.plan, 'the plan is saved with the checkpoint');

    // Resuming from an earlier checkpoint follows the plan saved in it: the same learning rates, to the same end.
    const resumeFrom = listCheckpoints(out).find((c) => c.step > MEASURED_STEPS + 1)!;
    const savedPlan = JSON.parse(readFileSync(join(resumeFrom.dir, 'trainer.json'), 'utf8')).plan;
    assert.equal(savedPlan.limit, 'time');
    for (const c of listCheckpoints(out))
      if (c.step > resumeFrom.step) writeFileSync(join(c.dir, 'checkpoint.json'), '{}');
    const resumed = await train(cfg, { family: toyFamily(8), ...quiet, resume: true, skipFinalEval: true });
    resumed.model.dispose();
    assert.equal(resumed.startStep, resumeFrom.step);
    assert.deepEqual(resumed.plan, savedPlan);
    assert.equal(resumed.step, savedPlan.totalSteps);
    const schedule = {
      peak: cfg.lr,
      totalSteps: savedPlan.totalSteps,
      warmupSteps: cfg.warmup,
      minRatio: cfg.minLrRatio,
    };
    const after = readMetrics(join(out, 'metrics.jsonl')).filter(
      (r): r is TrainRecord => r.kind === 'train' && r.step > resumeFrom.step,
    );
    assert.deepEqual(
      after.map((r) => r.lr),
      after.map((r) => learningRate(r.step - 1, schedule)),
    );
    assert.equal(after[after.length - 1].lr, cfg.lr * cfg.minLrRatio, 'the last planned step runs at the floor');
  },
);

test('the memory plan passes the quickstart on this machine and refuses what cannot fit, naming the flags', () => {
  const qs = quickstartConfig('cpu');
  const modelConfig = andromedaFamily.presetConfig(qs.preset, 257) as unknown as Record<string, unknown>;
  const parameterCount = andromedaFamily.parameterCount!(modelConfig as never);
  const input = { parameterCount, modelConfig, vocabSize: 257, config: qs, computeBytes: 4, mixedPrecision: false };
  const plan = planTrainingMemory(input);
  assert.equal(
    plan.bytes,
    plan.parts.reduce((a, p) => a + p.bytes, 0),
  );
  assert.equal(plan.parts[0].bytes, 16 * parameterCount, 'float32 weights, gradients, AdamW m and v');
  assert.equal(checkTrainingMemory(plan, deviceMemory('cpu')), null);

  const tight = { total: plan.bytes - 1, free: plan.bytes - 1, what: 'a small device' };
  assert.throws(
    () => checkTrainingMemory(plan, tight),
    (e: unknown) =>
      e instanceof ConfigError && /needs at least .* but a small device is .*lower/.test((e as Error).message),
  );
  assert.match(
    checkTrainingMemory(plan, { total: plan.bytes, free: plan.bytes / 2, what: 'a busy device' }) ?? '',
    /warning: .* only .* of a busy device is free now/,
  );
  const checkpointed = planTrainingMemory({ ...input, config: { ...qs, activationCheckpointing: true } });
  assert.ok(checkpointed.bytes < plan.bytes, 'activation checkpointing plans less memory');
  const doubled = planTrainingMemory({ ...input, config: { ...qs, batchSize: qs.batchSize * 2 } });
  assert.ok(
    doubled.bytes > plan.bytes && doubled.parts[0].bytes === plan.parts[0].bytes,
    'a bigger batch plans more activations, the same weights',
  );
});

test('one run per directory within a process too; the lock is free again once released', async () => {
  const out = await tempDir();
  const lock = acquireRunLock(out, () => {});
  assert.throws(
    () => acquireRunLock(out, () => {}),
    (e: unknown) => e instanceof RunLockError && new RegExp(`PID ${process.pid}`).test((e as Error).message),
  );
  lock.release();
  acquireRunLock(out, () => {}).release();
});
