import { Tensor } from '../tensor/tensor.js';
import { keep } from '../tensor/scope.js';
import type { AdamW8bitItem, AdamWArgs, Engine } from '../engine/engine.js';
import { AdamW } from './adamw.js';
import { QUANT_BLOCK, adamw8bitMaps } from './adamw8bit-map.js';
import type { OptimizerState, StepOptions } from './optimizer.js';

/** One parameter's quantized moments: codes four to an int32 word, one float32 absmax per block. */
interface QuantizedSlots {
  mCodes: Tensor;
  vCodes: Tensor;
  mAbsmax: Tensor;
  vAbsmax: Tensor;
}

const SLOT_NAMES = ['mCodes', 'vCodes', 'mAbsmax', 'vAbsmax'] as const;

/** Sizes of a parameter's state buffers (int32 words of codes, float32 absmax values). */
export function adamw8bitSlotSizes(count: number): { codeWords: number; blocks: number } {
  return { codeWords: Math.ceil(count / 4), blocks: Math.ceil(count / QUANT_BLOCK) };
}

/**
 * AdamW with 8-bit moments (block-wise dynamic quantization, as bitsandbytes' 8-bit optimizers): each moment
 * element is a one-byte code into a 256-value map (signed for m, unsigned for v; adamw8bit-map.ts) times a
 * float32 absmax per block of 256 elements — about 2.03 bytes of state per parameter instead of 8. The master
 * weights stay float32 and the update is AdamW's, on the dequantized moments, in one fused pass per group
 * (Engine.adamw8bitMany; native/fused/adamw8bit/). Hyperparameters, groups, validation and weight copies are
 * AdamW's; only the moment storage differs.
 */
export class AdamW8bit extends AdamW {
  private readonly quantized = new Map<Tensor, QuantizedSlots>();

  private quantizedFor(p: Tensor): QuantizedSlots {
    let s = this.quantized.get(p);
    if (!s) {
      const { codeWords, blocks } = adamw8bitSlotSizes(p.size);
      // An absmax of 0 makes every code of its block dequantize to 0: the zero moments AdamW starts from.
      const zeros = (n: number, dtype: 'int32' | 'float32') => {
        const t = keep(Tensor.empty([n], dtype, p.device));
        if (n > 0) p.engine.fill(t.dense(), n, 0);
        return t;
      };
      s = {
        mCodes: zeros(codeWords, 'int32'),
        vCodes: zeros(codeWords, 'int32'),
        mAbsmax: zeros(blocks, 'float32'),
        vAbsmax: zeros(blocks, 'float32'),
      };
      this.quantized.set(p, s);
    }
    return s;
  }

  /** Bytes of optimizer state held now (codes and absmax values of every parameter stepped so far). */
  stateBytes(): number {
    let bytes = 0;
    for (const s of this.quantized.values()) for (const name of SLOT_NAMES) bytes += s[name].size * 4;
    return bytes;
  }

  override step(options: StepOptions = {}): void {
    this.checkStepOptions(options, 'AdamW8bit.step');
    this.stepCount++;
    const t = this.stepCount;
    const maps = adamw8bitMaps();
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
          ? { sumOfSquares: options.clip.sumOfSquares.dense('AdamW8bit.step'), maxNorm: options.clip.maxNorm }
          : null,
      };
      const temporaries: Tensor[] = [];
      const byEngine = new Map<Engine, AdamW8bitItem[]>();
      for (const p of g.params) {
        if (!p.grad || p.size === 0) continue;
        const s = this.quantizedFor(p);
        const grad = p.grad.isContiguous() ? p.grad : p.grad.contiguous();
        if (grad !== p.grad) temporaries.push(grad);
        const shadow = this.shadows.get(p) ?? null;
        const item: AdamW8bitItem = {
          param: p.dense('AdamW8bit.step'),
          grad: grad.dense('AdamW8bit.step'),
          mCodes: s.mCodes.dense(),
          vCodes: s.vCodes.dense(),
          mAbsmax: s.mAbsmax.dense(),
          vAbsmax: s.vAbsmax.dense(),
          count: p.size,
          shadow: shadow?.dense('AdamW8bit.step') ?? null,
        };
        const list = byEngine.get(p.engine) ?? [];
        list.push(item);
        byEngine.set(p.engine, list);
      }
      for (const [engine, items] of byEngine) engine.adamw8bitMany(items, maps, args);
      for (const tmp of temporaries) tmp.dispose();
    }
  }

  override stateDict(): OptimizerState {
    return {
      kind: 'adamw8bit',
      step: this.stepCount,
      groups: this.groups.map((g) => ({ ...g.hyper })),
      slots: this.parameters.map((p) => {
        const s = this.quantized.get(p);
        if (!s) return {};
        return {
          mCodes: s.mCodes.toArray() as Int32Array,
          vCodes: s.vCodes.toArray() as Int32Array,
          mAbsmax: s.mAbsmax.toArray() as Float32Array,
          vAbsmax: s.vAbsmax.toArray() as Float32Array,
        };
      }),
    };
  }

  override loadStateDict(state: OptimizerState): void {
    if (state.kind !== 'adamw8bit') {
      throw new Error(
        `AdamW8bit.loadStateDict: state is for '${state.kind}', not 'adamw8bit' (an optimizer's moments ` +
          `cannot be resumed by another optimizer)`,
      );
    }
    const params = this.parameters;
    if (state.slots.length !== params.length || state.groups.length !== this.groups.length) {
      throw new Error(
        `AdamW8bit.loadStateDict: state has ${state.slots.length} parameters in ${state.groups.length} groups, ` +
          `optimizer has ${params.length} in ${this.groups.length}`,
      );
    }
    // Check every slot before changing anything, so a bad state leaves the optimizer as it was.
    params.forEach((p, i) => {
      const slot = state.slots[i]!;
      const present = SLOT_NAMES.filter((name) => slot[name] !== undefined);
      if (present.length === 0) return;
      const { codeWords, blocks } = adamw8bitSlotSizes(p.size);
      for (const name of SLOT_NAMES) {
        const values = slot[name];
        const expected = name.endsWith('Codes') ? codeWords : blocks;
        if (!values || values.length !== expected) {
          throw new Error(
            `AdamW8bit.loadStateDict: ${name} of parameter ${i} (${p.name ?? ''}) has ` +
              `${values ? `${values.length} values` : 'no values'}, expected ${expected} for ${p.size} elements`,
          );
        }
        if (name.endsWith('Codes') && !(values instanceof Int32Array)) {
          throw new Error(
            `AdamW8bit.loadStateDict: ${name} of parameter ${i} (${p.name ?? ''}) must be an Int32Array ` +
              `of packed codes`,
          );
        }
      }
    });
    state.groups.forEach((h, i) => Object.assign(this.groups[i]!.hyper, h));
    this.stepCount = state.step;
    params.forEach((p, i) => {
      const slot = state.slots[i]!;
      if (slot.mCodes === undefined) return;
      const s = this.quantizedFor(p);
      p.engine.upload(s.mCodes.storage.handle, 0, slot.mCodes as Int32Array);
      p.engine.upload(s.vCodes.storage.handle, 0, slot.vCodes as Int32Array);
      p.engine.upload(s.mAbsmax.storage.handle, 0, Float32Array.from(slot.mAbsmax!));
      p.engine.upload(s.vAbsmax.storage.handle, 0, Float32Array.from(slot.vAbsmax!));
    });
  }

  override dispose(): void {
    for (const s of this.quantized.values()) for (const name of SLOT_NAMES) s[name].dispose();
    this.quantized.clear();
    super.dispose();
  }
}
