/**
 * Finding a model's chat template on disk: the `chat_template` of the tokenizer_config.json next to the
 * checkpoint (or in the run directory above it), else the default transcript (./chat-template.ts).
 */
import { existsSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Tokenizer } from '../data/tokenizer/tokenizer.js';
import { CHECKPOINT_DIR } from '../train/run-checkpoint.js';
import { readJsonFile } from '../io/bounded-read.js';
import { ChatTemplate, DEFAULT_CHAT_TEMPLATE } from './chat-template.js';

/** Text of a special token as tokenizer_config.json writes it: a string or an AddedToken {content}. */
function tokenText(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object' && typeof (value as { content?: unknown }).content === 'string')
    return (value as { content: string }).content;
  return null;
}

function eosText(tokenizer: Tokenizer): string {
  for (const [text, id] of tokenizer.specialTokens) if (id === tokenizer.eosId) return text;
  return new TextDecoder().decode(tokenizer.tokenBytes(tokenizer.eosId));
}

/**
 * The chat template of a model directory: tokenizer_config.json in `dirs` (searched in order: the
 * checkpoint, then the run directory above it), else the default. A named template list takes the
 * template named "default", as transformers does.
 */
export function loadChatTemplate(dirs: readonly string[], tokenizer: Tokenizer): ChatTemplate {
  const eos = eosText(tokenizer);
  for (const dir of dirs) {
    const file = join(dir, 'tokenizer_config.json');
    if (!existsSync(file) || !statSync(file).isFile()) continue;
    let config: Record<string, unknown>;
    try {
      config = readJsonFile(file) as Record<string, unknown>;
    } catch (error) {
      throw new Error(`${file} is not valid JSON: ${(error as Error).message}`);
    }
    if (typeof config !== 'object' || config === null) throw new Error(`${file} does not hold a JSON object`);
    const raw = config.chat_template;
    if (raw === undefined || raw === null) continue;
    let template: string | undefined;
    if (typeof raw === 'string') template = raw;
    else if (Array.isArray(raw)) {
      const named = raw.find((t) => t && typeof t === 'object' && (t as { name?: unknown }).name === 'default') as
        { template?: unknown } | undefined;
      if (typeof named?.template === 'string') template = named.template;
    }
    if (template === undefined)
      throw new Error(`${file}: chat_template must be a string or a list holding a template named "default"`);
    return new ChatTemplate(
      {
        template,
        file,
        bosToken: tokenText(config.bos_token) ?? '',
        eosToken: tokenText(config.eos_token) ?? eos,
      },
      tokenizer,
    );
  }
  return new ChatTemplate({ template: DEFAULT_CHAT_TEMPLATE, file: null, bosToken: eos, eosToken: eos }, tokenizer);
}

/** Directories a chat template is looked for in, for a model loaded from `checkpointDir`. */
export function templateSearchDirs(checkpointDir: string): string[] {
  // A run's checkpoints live in <run>/checkpoints/step-N: the run directory is two levels up.
  const parent = dirname(checkpointDir);
  return basename(parent) === CHECKPOINT_DIR ? [checkpointDir, dirname(parent)] : [checkpointDir];
}
