/** Model families the trainer and generator can build, by name (checkpoints record the name). */
import type { ModelFamily } from './model.js';

const families = new Map<string, ModelFamily<any>>();

export function registerModelFamily(name: string, family: ModelFamily<any>): void {
  families.set(name, family);
}

export function getModelFamily(name: string): ModelFamily<any> {
  const family = families.get(name);
  if (!family) throw new Error(`unknown model family "${name}" (known: ${[...families.keys()].join(', ') || 'none'})`);
  return family;
}
