/**
 * Chat prompts: a conversation rendered to text by the model's chat template — the Jinja `chat_template`
 * of Hugging Face's tokenizer_config.json, rendered with @huggingface/jinja as transformers renders it
 * (`messages`, `bos_token`, `eos_token`, `add_generation_prompt`; `raise_exception` is built in) — then tokenized with
 * special tokens recognised, so a template's control tokens become their ids.
 *
 * Models without a template (Andromeda's own checkpoints are trained on plain documents) get
 * DEFAULT_CHAT_TEMPLATE: the conversation as a plain transcript that starts a new document, one
 * "Role: content" paragraph per message, ending with "Assistant:" for the reply. A base model continues
 * such a transcript naturally; DEFAULT_TEMPLATE_STOPS end the reply where the model starts the next
 * turn by itself.
 */
import { existsSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { Template } from '@huggingface/jinja';
import type { Tokenizer } from '../data/tokenizer/tokenizer.js';
import { CHECKPOINT_DIR } from '../train/run-checkpoint.js';
import type { ChatMessage } from './openai-schema.js';
import { readJsonFile } from '../io/bounded-read.js';

export const DEFAULT_CHAT_TEMPLATE =
  '{{ bos_token }}{% for message in messages %}' +
  "{{ message.role | capitalize }}: {{ message.content | trim }}{{ '\\n\\n' }}" +
  "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}";

/** Where the default template's reply ends: the model beginning another turn. */
export const DEFAULT_TEMPLATE_STOPS: readonly string[] = ['\nUser:', '\nSystem:', '\nDeveloper:'];

/** A template asked to stop (raise_exception) or failed to render: the conversation is at fault (HTTP 400). */
export class ChatTemplateError extends Error {
  override name = 'ChatTemplateError';
}

export interface ChatTemplateSource {
  template: string;
  /** tokenizer_config.json it came from, or null for the default. */
  file: string | null;
  bosToken: string;
  eosToken: string;
}

export class ChatTemplate {
  private readonly template: Template;

  constructor(
    readonly source: ChatTemplateSource,
    private readonly tokenizer: Tokenizer,
  ) {
    try {
      this.template = new Template(source.template);
    } catch (error) {
      throw new Error(`chat template of ${source.file ?? 'the default'} does not parse: ${(error as Error).message}`);
    }
  }

  get isDefault(): boolean {
    return this.source.file === null;
  }

  /** Stop strings every chat reply gets (the default template's turn markers; none for a model's own). */
  get stops(): readonly string[] {
    return this.isDefault ? DEFAULT_TEMPLATE_STOPS : [];
  }

  render(messages: readonly ChatMessage[], addGenerationPrompt = true): string {
    const plain = messages.map((m) => ({
      role: m.role,
      content: typeof m.content === 'string' ? m.content : m.content.map((part) => part.text).join(''),
      ...(m.name === undefined ? {} : { name: m.name }),
    }));
    try {
      return this.template.render({
        messages: plain,
        bos_token: this.source.bosToken,
        eos_token: this.source.eosToken,
        add_generation_prompt: addGenerationPrompt,
      });
    } catch (error) {
      // Templates refuse conversations they cannot render with raise_exception (which @huggingface/jinja provides).
      throw new ChatTemplateError(`the chat template failed on this conversation: ${(error as Error).message}`);
    }
  }

  /** Token ids of the rendered conversation, the template's special tokens as their ids. */
  encode(messages: readonly ChatMessage[]): Int32Array {
    return this.tokenizer.encode(this.render(messages), { allowSpecial: true });
  }
}

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
