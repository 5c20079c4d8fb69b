import type { Engine } from './engine.js';

/** Creates the engine for a device index; throws with a clear message when it cannot run here. */
export type EngineFactory = (index: number) => Engine;

const factories = new Map<string, EngineFactory>();
const instances = new Map<string, Engine>();
let defaultDevice = 'cpu';

export function registerEngineFactory(kind: string, factory: EngineFactory): void {
  factories.set(kind, factory);
}

/** Canonical device name: 'cpu', or 'cuda:N' ('cuda' means 'cuda:0'). */
export function normalizeDevice(device: string): string {
  if (device === 'cpu') return 'cpu';
  const m = /^(cuda)(?::(\d+))?$/.exec(device);
  if (!m) throw new Error(`unknown device '${device}' (expected 'cpu', 'cuda' or 'cuda:N')`);
  return `cuda:${m[2] ?? 0}`;
}

export function getEngine(device: string = defaultDevice): Engine {
  const name = normalizeDevice(device);
  const cached = instances.get(name);
  if (cached) return cached;
  const [kind, index] = name.split(':') as [string, string | undefined];
  const factory = factories.get(kind);
  if (!factory) throw new Error(`device '${name}': no ${kind} engine is registered in this build`);
  const engine = factory(Number(index ?? 0));
  instances.set(name, engine);
  return engine;
}

/** True when the engine for `device` can be created here (a CUDA engine needs the addon and a GPU). */
export function deviceAvailable(device: string): boolean {
  try {
    getEngine(device);
    return true;
  } catch {
    return false;
  }
}

/** Why `device` cannot be used here, or null when it can. */
export function deviceUnavailableReason(device: string): string | null {
  try {
    getEngine(device);
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

export function setDefaultDevice(device: string): void {
  defaultDevice = normalizeDevice(device);
}

export function getDefaultDevice(): string {
  return defaultDevice;
}

/** 'auto' picks CUDA when a GPU engine can start, else the CPU. */
export function resolveDevice(device: string | undefined): string {
  if (device === undefined || device === 'auto') return deviceAvailable('cuda:0') ? 'cuda:0' : 'cpu';
  return normalizeDevice(device);
}
