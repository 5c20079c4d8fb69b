import { Tensor } from '../tensor/tensor.js';
import { keep } from '../tensor/scope.js';
import { Optimizer, type OptimizerState, type ParamGroup, type StepOptions } from './optimizer.js';

export interface SGDHyper {
  lr: number;
  momentum: number;
  weightDecay: number;
  nesterov: boolean;
}

export const SGD_DEFAULTS: SGDHyper = { lr: 1e-2, momentum: 0, weightDecay: 0, nesterov: false };

/** Stochastic gradient descent with optional (Nesterov) momentum and L2 weight decay, as torch.optim.SGD. */
export class SGD extends Optimizer<SGDHyper> {
  private readonly momentumBuffers = new Map<Tensor, Tensor>();

  constructor(groups: ParamGroup<Partial<SGDHyper>>[] | Tensor[], defaults: Partial<SGDHyper> = {}) {
    const base = { ...SGD_DEFAULTS, ...defaults };
    const normalized =
      groups.length === 0 || groups[0] instanceof Tensor
        ? [{ params: groups as Tensor[], hyper: { ...base } }]
        : (groups as ParamGroup<Partial<SGDHyper>>[]).map((g) => ({
            params: g.params,
            hyper: { ...base, ...g.hyper },
          }));
    super(normalized);
    for (const g of this.groups) {
      if (!(g.hyper.lr >= 0)) throw new RangeError(`SGD: learning rate ${g.hyper.lr} must be ≥ 0`);
      if (!(g.hyper.momentum >= 0)) throw new RangeError(`SGD: momentum ${g.hyper.momentum} must be ≥ 0`);
    }
  }

  step(options: StepOptions = {}): void {
    this.checkStepOptions(options, 'SGD.step');
    this.stepCount++;
    for (const group of this.groups) {
      const h = group.hyper;
      for (const p of group.params) {
        if (!p.grad || p.size === 0) continue;
        const be = p.engine;
        const n = p.size;
        // d = gradScale·g + wd·p
        const d = Tensor.empty(p.shape, p.dtype, p.device);
        const g = p.grad.isContiguous() ? p.grad : p.grad.contiguous();
        be.unary('scale', g.dense('SGD.step'), d.dense(), n, options.gradScale ?? 1);
        if (g !== p.grad) g.dispose();
        if (h.weightDecay) {
          const decay = Tensor.empty(p.shape, p.dtype, p.device);
          be.unary('scale', p.dense(), decay.dense(), n, h.weightDecay);
          be.binary('add', d.strided(), decay.strided(), d.dense(), p.shape);
          decay.dispose();
        }
        let update = d;
        if (h.momentum) {
          let buf = this.momentumBuffers.get(p);
          if (!buf) {
            buf = keep(Tensor.empty(p.shape, p.dtype, p.device));
            be.copy(d.strided(), buf.strided(), p.shape);
            this.momentumBuffers.set(p, buf);
          } else {
            be.unary('scale', buf.dense(), buf.dense(), n, h.momentum);
            be.binary('add', buf.strided(), d.strided(), buf.dense(), p.shape);
          }
          if (h.nesterov) {
            const look = Tensor.empty(p.shape, p.dtype, p.device);
            be.unary('scale', buf.dense(), look.dense(), n, h.momentum);
            be.binary('add', d.strided(), look.strided(), d.dense(), p.shape);
            look.dispose();
          } else update = buf;
        }
        const scaled = Tensor.empty(p.shape, p.dtype, p.device);
        be.unary('scale', update.dense(), scaled.dense(), n, -h.lr);
        be.binary('add', p.strided(), scaled.strided(), p.dense(), p.shape);
        scaled.dispose();
        d.dispose();
      }
    }
  }

  stateDict(): OptimizerState {
    return {
      kind: 'sgd',
      step: this.stepCount,
      groups: this.groups.map((g) => ({ ...g.hyper })),
      slots: this.parameters.map((p) => {
        const b = this.momentumBuffers.get(p);
        return b ? { momentum: b.toArray() as Float32Array } : {};
      }),
    };
  }

  loadStateDict(state: OptimizerState): void {
    if (state.kind !== 'sgd') throw new Error(`SGD.loadStateDict: state is for '${state.kind}', not 'sgd'`);
    const params = this.parameters;
    if (state.slots.length !== params.length)
      throw new Error(`SGD.loadStateDict: state has ${state.slots.length} parameters, optimizer has ${params.length}`);
    state.groups.forEach((h, i) => Object.assign(this.groups[i]!.hyper, h));
    this.stepCount = state.step;
    params.forEach((p, i) => {
      const values = state.slots[i]!.momentum;
      if (!values) return;
      if (values.length !== p.size)
        throw new Error(
          `SGD.loadStateDict: momentum for parameter ${i} has ${values.length} values, parameter has ${p.size}`,
        );
      this.momentumBuffers.get(p)?.dispose();
      this.momentumBuffers.set(p, keep(Tensor.fromArray(values, p.shape, p.dtype, p.device)));
    });
  }

  dispose(): void {
    for (const b of this.momentumBuffers.values()) b.dispose();
    this.momentumBuffers.clear();
  }
}
