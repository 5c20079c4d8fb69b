/** Hugging Face post-processors: the special tokens put around an encoded sequence (BOS, CLS/SEP, ...). */
import { readChildren, type Fail, type HfComponent } from './schema.js';

/** Wraps a single sequence's ids. Only called when special tokens are asked for. */
export type PostProcessor = (ids: number[]) => number[];

export function buildPostProcessor(component: HfComponent | null | undefined, fail: Fail): PostProcessor | null {
  if (!component) return null;
  switch (component.type) {
    case 'TemplateProcessing':
      return templateProcessing(component, fail);
    case 'RobertaProcessing':
    case 'BertProcessing': {
      const cls = readTokenPair(component, 'cls', fail);
      const sep = readTokenPair(component, 'sep', fail);
      return (ids) => [cls, ...ids, sep];
    }
    case 'ByteLevel':
      return (ids) => ids; // it only adjusts offsets, which Andromeda does not keep
    case 'Sequence': {
      const steps = readChildren(component, 'processors', fail)
        .map((c) => buildPostProcessor(c, fail))
        .filter((p): p is PostProcessor => p !== null);
      return (ids) => steps.reduce((current, step) => step(current), ids);
    }
    default:
      return fail(
        `post-processor ${JSON.stringify(component.type)} is not supported ` +
          `(supported: TemplateProcessing, RobertaProcessing, BertProcessing, ByteLevel, Sequence)`,
      );
  }
}

function readTokenPair(component: HfComponent, field: string, fail: Fail): number {
  const pair = component[field];
  if (!Array.isArray(pair) || typeof pair[0] !== 'string' || !Number.isInteger(pair[1]))
    fail(`${component.type} ${field} must be ["token", id], got ${JSON.stringify(pair)}`);
  return (pair as [string, number])[1];
}

type TemplatePiece = { SpecialToken: { id: string } } | { Sequence: { id: string } };

function templateProcessing(component: HfComponent, fail: Fail): PostProcessor {
  const single = component.single as TemplatePiece[] | undefined;
  if (!Array.isArray(single)) fail('TemplateProcessing has no "single" template');
  const specials = (component.special_tokens ?? {}) as Record<string, { ids?: number[] }>;
  const parts = single!.map((piece): number[] | 'sequence' => {
    if ('Sequence' in piece) {
      if (piece.Sequence.id !== 'A') fail(`TemplateProcessing single template names sequence ${piece.Sequence.id}`);
      return 'sequence';
    }
    if ('SpecialToken' in piece) {
      const ids = specials[piece.SpecialToken.id]?.ids;
      if (!Array.isArray(ids) || !ids.every(Number.isInteger))
        fail(`TemplateProcessing special token ${JSON.stringify(piece.SpecialToken.id)} has no ids`);
      return ids!;
    }
    return fail(`TemplateProcessing piece ${JSON.stringify(piece)} is neither SpecialToken nor Sequence`);
  });
  return (ids) => parts.flatMap((part) => (part === 'sequence' ? ids : part));
}
