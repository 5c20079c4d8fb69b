/**
 * Base class of every layer: a tree of named parameters (trainable leaves), buffers (non-trainable
 * state) and child modules. A module owns its tensors: they are taken out of every `tidy` scope when
 * registered and freed by `dispose()`. Parameter tensors carry their dotted path as `name`, so
 * errors and gradient reports can say which weight they concern.
 */
import { Tensor } from '../tensor/tensor.js';
import { DTYPES, isFloating, type DType } from '../tensor/dtype.js';
import { formatShape, shapesEqual } from '../tensor/shape.js';
import { keep } from '../tensor/scope.js';
import { noGrad } from '../autograd/grad-mode.js';
import { cast, toDevice } from '../ops/convert.js';

export class StateDictError extends Error {
  override name = 'StateDictError';
}

export interface LoadStateDictOptions {
  /** When false, missing and unexpected names are tolerated (shapes must still match). Default true. */
  strict?: boolean;
}

interface BufferSlot {
  tensor: Tensor;
  /** Persistent buffers are part of the state dict. */
  persistent: boolean;
}

export abstract class Module {
  /** Training mode (dropout and similar behave differently in eval mode). */
  training = true;
  private readonly ownParameters = new Map<string, Tensor>();
  private readonly ownBuffers = new Map<string, BufferSlot>();
  private readonly children = new Map<string, Module>();
  private pathPrefix = '';

  /** Registers a trainable leaf: marks it as requiring gradients, names it, and takes ownership. */
  protected addParameter(name: string, value: Tensor): Tensor {
    this.assertFreeName(name);
    if (value.gradFn)
      throw new Error(`addParameter('${name}'): a parameter must be a leaf tensor, not the result of an operation`);
    if (!isFloating(value.dtype))
      throw new TypeError(`addParameter('${name}'): a parameter must be floating point, got ${value.dtype}`);
    keep(value);
    value.requireGrad(true);
    value.name = this.pathPrefix + name;
    this.ownParameters.set(name, value);
    return value;
  }

  protected addBuffer(name: string, value: Tensor, persistent = true): Tensor {
    this.assertFreeName(name);
    keep(value);
    value.name = this.pathPrefix + name;
    this.ownBuffers.set(name, { tensor: value, persistent });
    return value;
  }

  protected addModule<M extends Module>(name: string, module: M): M {
    this.assertFreeName(name);
    this.children.set(name, module);
    module.setPath(`${this.pathPrefix}${name}.`);
    return module;
  }

  /** The current tensor of an own parameter (it is replaced by `to()`, so never cache it). */
  protected param(name: string): Tensor {
    const t = this.ownParameters.get(name);
    if (!t) throw new Error(`internal: ${this.constructor.name} has no parameter '${name}'`);
    return t;
  }

  protected buffer(name: string): Tensor {
    const slot = this.ownBuffers.get(name);
    if (!slot) throw new Error(`internal: ${this.constructor.name} has no buffer '${name}'`);
    return slot.tensor;
  }

  private assertFreeName(name: string): void {
    if (!/^[A-Za-z0-9_]+$/.test(name))
      throw new Error(`${this.constructor.name}: invalid member name '${name}' (letters, digits and _ only)`);
    if (this.ownParameters.has(name) || this.ownBuffers.has(name) || this.children.has(name)) {
      throw new Error(`${this.constructor.name}: '${name}' is already registered`);
    }
  }

  private setPath(prefix: string): void {
    this.pathPrefix = prefix;
    for (const [name, t] of this.ownParameters) t.name = prefix + name;
    for (const [name, slot] of this.ownBuffers) slot.tensor.name = prefix + name;
    for (const [name, child] of this.children) child.setPath(`${prefix}${name}.`);
  }

  /** [path, tensor] for every parameter of this module and its descendants, in registration order. */
  namedParameters(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [name, t] of this.ownParameters) out.push([prefix + name, t]);
    for (const [name, child] of this.children) out.push(...child.namedParameters(`${prefix}${name}.`));
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  namedBuffers(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [name, slot] of this.ownBuffers) out.push([prefix + name, slot.tensor]);
    for (const [name, child] of this.children) out.push(...child.namedBuffers(`${prefix}${name}.`));
    return out;
  }

  /** [path, module] for this module ('' ) and every descendant. */
  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [[prefix.replace(/\.$/, ''), this]];
    for (const [name, child] of this.children) out.push(...child.namedModules(`${prefix}${name}.`));
    return out;
  }

  /** Total number of parameter elements. */
  parameterCount(): number {
    return this.parameters().reduce((n, t) => n + t.size, 0);
  }

  /** The live parameter and persistent buffer tensors by path (not copies: do not dispose them). */
  stateDict(): Map<string, Tensor> {
    const out = new Map<string, Tensor>(this.namedParameters());
    const persistent = (m: Module, prefix: string): void => {
      for (const [name, slot] of m.ownBuffers) if (slot.persistent) out.set(prefix + name, slot.tensor);
      for (const [name, child] of m.children) persistent(child, `${prefix}${name}.`);
    };
    persistent(this, '');
    return out;
  }

  /**
   * Copies values into the existing tensors (converting dtype and device), so references held
   * elsewhere (an optimizer's) stay valid. Mismatches are reported all at once.
   */
  loadStateDict(
    state: ReadonlyMap<string, Tensor> | Readonly<Record<string, Tensor>>,
    options: LoadStateDictOptions = {},
  ): void {
    const given = state instanceof Map ? state : new Map(Object.entries(state));
    const own = this.stateDict();
    const missing = [...own.keys()].filter((k) => !given.has(k));
    const unexpected = [...given.keys()].filter((k) => !own.has(k));
    const misShaped = [...own]
      .filter(([k, t]) => given.has(k) && !shapesEqual(given.get(k)!.shape, t.shape))
      .map(([k, t]) => `${k}: model ${formatShape(t.shape)}, given ${formatShape(given.get(k)!.shape)}`);
    const strict = options.strict ?? true;
    const problems: string[] = [];
    if (strict && missing.length) problems.push(`missing (${missing.length}): ${missing.join(', ')}`);
    if (strict && unexpected.length) problems.push(`unexpected (${unexpected.length}): ${unexpected.join(', ')}`);
    if (misShaped.length) problems.push(`wrong shape (${misShaped.length}): ${misShaped.join('; ')}`);
    if (problems.length)
      throw new StateDictError(
        `loadStateDict: the given tensors do not match ${this.constructor.name}:\n  ${problems.join('\n  ')}`,
      );
    noGrad(() => {
      for (const [name, target] of own) {
        const source = given.get(name);
        if (!source) continue;
        source.assertAlive('loadStateDict', name);
        const local = source.device === target.device ? source : toDevice(source, target.device);
        if (target.size > 0) target.engine.copy(local.strided(), target.strided(), target.shape);
        if (local !== source) local.dispose();
      }
    });
  }

  /** Moves every tensor to a device ('cpu', 'cuda:0') or casts floating tensors to a dtype. Gradients are dropped. */
  to(target: string): this {
    const isDType = (DTYPES as readonly string[]).includes(target);
    const convert = (t: Tensor): Tensor =>
      noGrad(() => {
        if (isDType) return isFloating(t.dtype) ? cast(t, target as DType) : t;
        return toDevice(t, target);
      });
    for (const [name, t] of this.ownParameters) {
      const moved = convert(t);
      if (moved === t) continue;
      keep(moved).requireGrad(true);
      moved.name = t.name;
      t.dispose();
      this.ownParameters.set(name, moved);
    }
    for (const slot of this.ownBuffers.values()) {
      const moved = convert(slot.tensor);
      if (moved === slot.tensor) continue;
      keep(moved).name = slot.tensor.name;
      slot.tensor.dispose();
      slot.tensor = moved;
    }
    for (const child of this.children.values()) child.to(target);
    return this;
  }

  train(mode = true): this {
    this.training = mode;
    for (const child of this.children.values()) child.train(mode);
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Frees the gradients of every parameter. */
  zeroGrad(): void {
    for (const t of this.parameters()) {
      t.grad?.dispose();
      t.grad = null;
    }
  }

  /** Frees every tensor this module and its descendants own (parameters with their gradients, buffers). */
  dispose(): void {
    for (const t of this.ownParameters.values()) t.dispose();
    for (const slot of this.ownBuffers.values()) slot.tensor.dispose();
    for (const child of this.children.values()) child.dispose();
  }
}

/** An indexed list of child modules, named 0, 1, 2, … */
export class ModuleList<M extends Module> extends Module implements Iterable<M> {
  private readonly items: M[];

  constructor(items: readonly M[]) {
    super();
    this.items = [...items];
    this.items.forEach((m, i) => this.addModule(String(i), m));
  }

  get length(): number {
    return this.items.length;
  }

  at(index: number): M {
    const m = this.items[index];
    if (!m) throw new RangeError(`ModuleList: index ${index} is out of range (length ${this.items.length})`);
    return m;
  }

  [Symbol.iterator](): Iterator<M> {
    return this.items[Symbol.iterator]();
  }
}
