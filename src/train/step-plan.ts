/**
 * How many steps the run will take: --steps, or fewer when --max-minutes will stop it first.
 * The learning-rate schedule and the ETA follow this plan, so a time-capped run still warms up,
 * decays and ends at the floor instead of stopping high on the cosine.
 *
 * With a time budget the trainer measures the first MEASURED_STEPS steps of the session (the very
 * first is left out: it includes one-time setup) and plans
 *
 *   planned = min(--steps, step + floor(PLAN_MARGIN × seconds left / seconds per step))
 *
 * (the margin absorbs steps that come out slower than measured, so the run reaches the end of its
 * schedule before the budget's hard stop cuts it short)
 *
 * At each evaluation and checkpoint the plan is checked against the session's wall-clock pace so
 * far (which includes them) and shortened if the run would not reach its end in time.
 * Steps before the decision use the --steps schedule; with a warmup of at least MEASURED_STEPS + 1
 * steps (the default is 100) that makes no difference, because warmup does not depend on the total.
 * The plan is saved in the checkpoints' trainer state: a resumed run keeps it (and so the same
 * schedule) unless --steps or --max-minutes is given anew, which plans again.
 */
export const MEASURED_STEPS = 3;
export const PLAN_MARGIN = 0.95;

export interface StepPlan {
  /** The step the run ends at; the schedule's total. */
  totalSteps: number;
  /** What ends the run: reaching --steps, or the time budget. */
  limit: 'steps' | 'time';
  /** Seconds per step measured when the plan was made from a time budget. */
  secondsPerStep?: number;
}

export function stepsOnlyPlan(steps: number): StepPlan {
  return { totalSteps: steps, limit: 'steps' };
}

/**
 * The plan for a run at `step` with `secondsLeft` of its budget and `secondsPerStep` measured:
 * at least one more step, at most `maxSteps`.
 */
export function planFromThroughput(
  step: number,
  maxSteps: number,
  secondsLeft: number,
  secondsPerStep: number,
): StepPlan {
  const affordable = step + Math.max(1, Math.floor((PLAN_MARGIN * secondsLeft) / secondsPerStep));
  if (affordable >= maxSteps) return stepsOnlyPlan(maxSteps);
  return { totalSteps: affordable, limit: 'time', secondsPerStep };
}

/** Whether a saved plan is well formed for a run of at most `maxSteps`. */
export function isStepPlan(value: unknown, maxSteps: number): value is StepPlan {
  const p = value as Partial<StepPlan> | null;
  return (
    typeof p === 'object' &&
    p !== null &&
    Number.isInteger(p.totalSteps) &&
    p.totalSteps! >= 1 &&
    p.totalSteps! <= maxSteps &&
    (p.limit === 'steps' || p.limit === 'time')
  );
}
