/**
 * Learning-rate schedule (StableLM-3B-4E1T / Llama style): linear warmup from 0 to the peak,
 * cosine decay from the peak to a floor (default 4% of the peak), and an optional linear
 * cool-down to zero over the last steps.
 *
 *   step < warmup                     lr = peak · (step + 1) / warmup
 *   warmup ≤ step < decayEnd          lr = floor + (peak − floor) · ½(1 + cos(π · progress))
 *   decayEnd ≤ step < total           lr = floor · (total − step) / cooldown   (cool-down only)
 *
 * with decayEnd = total − cooldown and progress = (step − warmup) / (decayEnd − warmup − 1), so
 * the first decay step runs at the peak and the last one at the floor. Without a cool-down the
 * floor is kept past the end (e.g. when training continues beyond the planned steps).
 * `step` is the 0-based index of the optimizer update being taken.
 */
export interface ScheduleOptions {
  /** Peak learning rate. */
  peak: number;
  /** Total optimizer steps of the run. */
  totalSteps: number;
  /** Linear warmup steps (0 for none). */
  warmupSteps: number;
  /** Floor of the cosine decay as a fraction of the peak. Default 0.04 (StableLM). */
  minRatio?: number;
  /** Steps at the end that decay linearly from the floor to zero. Default 0 (none). */
  cooldownSteps?: number;
}

export function validateSchedule(o: ScheduleOptions): void {
  const bad = (msg: string): never => {
    throw new RangeError(`learning-rate schedule: ${msg}`);
  };
  if (!(o.peak >= 0 && Number.isFinite(o.peak))) bad(`peak learning rate must be a finite number ≥ 0, got ${o.peak}`);
  if (!Number.isInteger(o.totalSteps) || o.totalSteps < 1)
    bad(`total steps must be a positive integer, got ${o.totalSteps}`);
  if (!Number.isInteger(o.warmupSteps) || o.warmupSteps < 0)
    bad(`warmup steps must be an integer ≥ 0, got ${o.warmupSteps}`);
  const cooldown = o.cooldownSteps ?? 0;
  if (!Number.isInteger(cooldown) || cooldown < 0) bad(`cool-down steps must be an integer ≥ 0, got ${cooldown}`);
  if (o.warmupSteps + cooldown > o.totalSteps)
    bad(`warmup (${o.warmupSteps}) + cool-down (${cooldown}) exceed the ${o.totalSteps} total steps`);
  const ratio = o.minRatio ?? 0.04;
  if (!(ratio >= 0 && ratio <= 1)) bad(`minimum ratio must be in [0, 1], got ${ratio}`);
}

/** The learning rate for optimizer step `step` (0-based). */
export function learningRate(step: number, o: ScheduleOptions): number {
  const { peak, totalSteps, warmupSteps } = o;
  const cooldown = o.cooldownSteps ?? 0;
  const floor = peak * (o.minRatio ?? 0.04);
  if (step < warmupSteps) return (peak * (step + 1)) / warmupSteps;
  const decayEnd = totalSteps - cooldown;
  if (step >= decayEnd) {
    if (cooldown === 0) return floor;
    return (floor * Math.max(0, totalSteps - step)) / cooldown;
  }
  const span = decayEnd - warmupSteps;
  const progress = span <= 1 ? 0 : Math.min(1, (step - warmupSteps) / (span - 1));
  return floor + (peak - floor) * 0.5 * (1 + Math.cos(Math.PI * progress));
}
