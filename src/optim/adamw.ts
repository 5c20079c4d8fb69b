import { Tensor } from '../tensor/tensor.js';
import { keep } from '../tensor/scope.js';
import { formatShape, shapesEqual } from '../tensor/shape.js';
import type { AdamWArgs, AdamWItem, Engine } from '../engine/engine.js';
import { Optimizer, type OptimizerState, type ParamGroup, type StepOptions } from './optimizer.js';

export interface AdamWHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export const ADAMW_DEFAULTS: AdamWHyper = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 };

interface Slots {
  m: Tensor;
  v: Tensor;
}

/**
 * AdamW (Loshchilov & Hutter): Adam moments with weight decay applied to the weights directly,
 * p ← p·(1 − lr·wd) − lr·m̂/(√v̂ + eps). Parameters must be float32 (the master weights); the
 * moments are float32 too. Gradients may be any float dtype. Each group is one many-tensor engine call
 * (Engine.adamwMany; native/fused/adamw/), which also writes the bfloat16/float16 weight copies.
 */
export class AdamW extends Optimizer<AdamWHyper> {
  private readonly slots = new Map<Tensor, Slots>();
  protected shadows: ReadonlyMap<Tensor, Tensor> = new Map();

  constructor(groups: ParamGroup<Partial<AdamWHyper>>[] | Tensor[], defaults: Partial<AdamWHyper> = {}) {
    const base = { ...ADAMW_DEFAULTS, ...defaults };
    const normalized: ParamGroup<AdamWHyper>[] = isTensorList(groups)
      ? [{ params: groups, hyper: { ...base } }]
      : groups.map((g) => ({ params: g.params, hyper: { ...base, ...g.hyper } }));
    super(normalized);
    for (const g of this.groups) {
      validate(g.hyper);
      for (const p of g.params) {
        if (p.dtype !== 'float32')
          throw new TypeError(
            `AdamW: parameter ${p.name ?? ''} ${formatShape(p.shape)} is ${p.dtype}; master weights must be float32`,
          );
      }
    }
  }

  private slotsFor(p: Tensor): Slots {
    let s = this.slots.get(p);
    if (!s) {
      const m = keep(Tensor.empty(p.shape, 'float32', p.device));
      const v = keep(Tensor.empty(p.shape, 'float32', p.device));
      if (p.size > 0) {
        p.engine.fill(m.dense(), p.size, 0);
        p.engine.fill(v.dense(), p.size, 0);
      }
      s = { m, v };
      this.slots.set(p, s);
    }
    return s;
  }

  /**
   * Low-precision copies of parameters (master → copy, e.g. the bfloat16 compute weights of float32
   * masters): every step also writes each updated parameter into its copy, in the update's own pass.
   * Copies must be bfloat16 or float16, contiguous, and match their parameter's shape and device; pass
   * an empty map to stop.
   */
  setShadows(shadows: ReadonlyMap<Tensor, Tensor>): void {
    const own = new Set(this.parameters);
    for (const [p, copy] of shadows) {
      const name = p.name ?? formatShape(p.shape);
      if (!own.has(p)) throw new Error(`AdamW.setShadows: ${name} is not a parameter of this optimizer`);
      if (!shapesEqual(copy.shape, p.shape) || copy.device !== p.device) {
        throw new RangeError(
          `AdamW.setShadows: the ` +
            `copy of ${name} is ${formatShape(copy.shape)} on ${copy.device}, the parameter ${formatShape(p.shape)}` +
            ` on ${p.device}`,
        );
      }
      if (!copy.isContiguous()) throw new Error(`AdamW.setShadows: the copy of ${name} must be contiguous`);
      if (copy.dtype !== 'bfloat16' && copy.dtype !== 'float16') {
        throw new TypeError(
          `AdamW.setShadows: the copy of ${name} is ${copy.dtype}; weight copies must be bfloat16 or float16`,
        );
      }
    }
    this.shadows = new Map(shadows);
  }

  /** The fused step reads a clipping norm on the device (Engine AdamWArgs.clip). */
  override get clipsOnDevice(): boolean {
    return true;
  }

  step(options: StepOptions = {}): void {
    this.checkStepOptions(options, 'AdamW.step');
    this.stepCount++;
    const t = this.stepCount;
    for (const g of this.groups) {
      const h = g.hyper;
      const args: AdamWArgs = {
        lr: h.lr,
        beta1: h.beta1,
        beta2: h.beta2,
        eps: h.eps,
        weightDecay: h.weightDecay,
        biasCorrection1: 1 - h.beta1 ** t,
        biasCorrection2: 1 - h.beta2 ** t,
        gradScale: options.gradScale ?? 1,
        clip: options.clip
          ? { sumOfSquares: options.clip.sumOfSquares.dense('AdamW.step'), maxNorm: options.clip.maxNorm }
          : null,
      };
      const temporaries: Tensor[] = [];
      const byEngine = new Map<Engine, AdamWItem[]>();
      for (const p of g.params) {
        if (!p.grad || p.size === 0) continue;
        const { m, v } = this.slotsFor(p);
        const grad = p.grad.isContiguous() ? p.grad : p.grad.contiguous();
        if (grad !== p.grad) temporaries.push(grad);
        const shadow = this.shadows.get(p) ?? null;
        const item: AdamWItem = {
          param: p.dense('AdamW.step'),
          grad: grad.dense('AdamW.step'),
          m: m.dense(),
          v: v.dense(),
          count: p.size,
          shadow: shadow?.dense('AdamW.step') ?? null,
        };
        const list = byEngine.get(p.engine) ?? [];
        list.push(item);
        byEngine.set(p.engine, list);
      }
      for (const [engine, items] of byEngine) engine.adamwMany(items, args);
      for (const tmp of temporaries) tmp.dispose();
    }
  }

  stateDict(): OptimizerState {
    return {
      kind: 'adamw',
      step: this.stepCount,
      groups: this.groups.map((g) => ({ ...g.hyper })),
      slots: this.parameters.map((p) => {
        const s = this.slots.get(p);
        return s ? { m: s.m.toArray() as Float32Array, v: s.v.toArray() as Float32Array } : {};
      }),
    };
  }

  loadStateDict(state: OptimizerState): void {
    if (state.kind !== 'adamw') throw new Error(`AdamW.loadStateDict: state is for '${state.kind}', not 'adamw'`);
    const params = this.parameters;
    if (state.slots.length !== params.length || state.groups.length !== this.groups.length) {
      throw new Error(
        `AdamW.loadStateDict: state has ${state.slots.length} parameters in ${state.groups.length} groups, ` +
          `optimizer has ${params.length} in ${this.groups.length}`,
      );
    }
    state.groups.forEach((h, i) => Object.assign(this.groups[i]!.hyper, h));
    this.stepCount = state.step;
    params.forEach((p, i) => {
      const slot = state.slots[i]!;
      if (!slot.m || !slot.v) return;
      if (slot.m.length !== p.size || slot.v.length !== p.size) {
        throw new Error(
          `AdamW.loadStateDict: moments for parameter ${i} (${p.name ?? ''}) have ${slot.m.length} values, ` +
            `parameter has ${p.size}`,
        );
      }
      const s = this.slotsFor(p);
      p.engine.upload(s.m.storage.handle, 0, Float32Array.from(slot.m));
      p.engine.upload(s.v.storage.handle, 0, Float32Array.from(slot.v));
    });
  }

  dispose(): void {
    for (const s of this.slots.values()) {
      s.m.dispose();
      s.v.dispose();
    }
    this.slots.clear();
  }
}

function isTensorList(x: unknown[]): x is Tensor[] {
  return x.length === 0 || x[0] instanceof Tensor;
}

function validate(h: AdamWHyper): void {
  const bad = (msg: string) => {
    throw new RangeError(`AdamW: ${msg}`);
  };
  if (!(h.lr >= 0)) bad(`learning rate ${h.lr} must be ≥ 0`);
  if (!(h.beta1 >= 0 && h.beta1 < 1)) bad(`beta1 ${h.beta1} must be in [0, 1)`);
  if (!(h.beta2 >= 0 && h.beta2 < 1)) bad(`beta2 ${h.beta2} must be in [0, 1)`);
  if (!(h.eps > 0)) bad(`eps ${h.eps} must be > 0`);
  if (!(h.weightDecay >= 0)) bad(`weight decay ${h.weightDecay} must be ≥ 0`);
}
