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
 * turn by itself. Where a model's template is found: ./chat-template-file.ts.
 */
import { Template } from '@huggingface/jinja';
import type { Tokenizer } from '../data/tokenizer/tokenizer.js';
import type { ChatMessage } from './openai-schema.js';

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
