import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Tokenizer } from '../../data/tokenizer/tokenizer.js';
import { setDefaultDevice } from '../../engine/registry.js';
import { InferenceEngine, type GenerationStream } from '../../inference/engine.js';
import { MAX_CONTEXT_TOKENS } from '../../inference/generate.js';
import { loadModelForInference } from '../../inference/load.js';
import { loadChatTemplate, templateSearchDirs } from '../../serve/chat-template-file.js';
import type { ChatTemplate } from '../../serve/chat-template.js';
import type { ChatMessage } from '../../serve/openai-schema.js';
import { UsageError, type Command } from '../command.js';
import { numberFlag, parseCommandArgs, usableDevice } from '../args.js';
import { readJsonFile } from '../../io/bounded-read.js';

const USAGE = `Usage: andromeda chat <checkpoint> [options]

An interactive chat in the terminal: type a message and the reply streams back as it is written; the
conversation so far is the context of each reply. Prompts are rendered with the model's chat template
(chat_template in tokenizer_config.json of the checkpoint or its run directory, as transformers renders it);
models without one, such as Andromeda's own, get a plain "User: ... Assistant:" transcript.
<checkpoint> is a run directory (its latest checkpoint) or a checkpoints/step-NNNNNN directory.

In the chat:
  /reset     forget the conversation (the system prompt stays)
  /help      list these commands
  /bye       quit (also Ctrl-D; Ctrl-C stops a reply, and quits at the prompt)

Options:
  --system <text>        system prompt at the start of the conversation
  --max-tokens <n>       most tokens per reply (default: 512)
  --temperature <x>      0 = greedy; higher = more random (default: 0.7)
  --top-k <n>            sample among the k most likely tokens, 0 = all (default: 40)
  --top-p <p>            sample among the most likely tokens holding probability p (default: 0.95)
  --seed <n>             sampling seed of the first reply; reply i uses seed + i (default: 0)
  --device <d>           auto | cpu | cuda | cuda:N (default: auto)
  --tokenizer <spec>     tokenizer.json path or byte, for checkpoints without one
  --stats                after each reply, print its token counts and speed to stderr
  -h, --help             show this help

Example:
  andromeda chat runs/quickstart --system "You answer briefly."`;

const COMMANDS_HELP = '/reset forgets the conversation, /bye quits, /help shows this.';

export const chatCommand: Command = {
  name: 'chat',
  summary: "interactive terminal chat with a model: streaming, history, /reset, the model's chat template",
  usage: USAGE,
  async run(args: string[]): Promise<void> {
    const { values, positionals } = parseCommandArgs(
      args,
      {
        system: { type: 'string' },
        'max-tokens': { type: 'string' },
        temperature: { type: 'string' },
        'top-k': { type: 'string' },
        'top-p': { type: 'string' },
        seed: { type: 'string' },
        device: { type: 'string', default: 'auto' },
        tokenizer: { type: 'string' },
        stats: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      true,
    );
    if (positionals.length !== 1)
      throw new UsageError(
        positionals.length === 0
          ? 'give the checkpoint (a run directory or a checkpoint directory)'
          : `expected one checkpoint, got ${positionals.length} arguments: ${positionals.join(' ')}`,
      );
    const maxTokens = numberFlag(
      'max-tokens',
      values['max-tokens'],
      512,
      (n) => Number.isInteger(n) && n > 0 && n < MAX_CONTEXT_TOKENS,
      `an integer from 1 to ${MAX_CONTEXT_TOKENS - 1}`,
    );
    const temperature = numberFlag(
      'temperature',
      values.temperature,
      0.7,
      (n) => Number.isFinite(n) && n >= 0,
      'a number ≥ 0',
    );
    const topK = numberFlag('top-k', values['top-k'], 40, (n) => Number.isInteger(n) && n >= 0, 'an integer ≥ 0');
    const topP = numberFlag('top-p', values['top-p'], 0.95, (n) => n > 0 && n <= 1, 'a number in (0, 1]');
    const seed = numberFlag('seed', values.seed, 0, (n) => Number.isSafeInteger(n), 'an integer');
    if (values.system !== undefined && values.system.trim() === '')
      throw new UsageError('--system is empty; give a system prompt or leave the flag out');

    const device = usableDevice(values.device);
    setDefaultDevice(device);
    const loaded = await loadModelForInference(positionals[0]!, device, values.tokenizer);
    let engine: InferenceEngine | null = null;
    try {
      const template = loadChatTemplate(templateSearchDirs(loaded.dir), loaded.tokenizer);
      const contextLength = typeof loaded.config.maxSeqLen === 'number' ? loaded.config.maxSeqLen : MAX_CONTEXT_TOKENS;
      // One conversation, one request at a time: a small pool and batch suffice.
      engine = new InferenceEngine(loaded.model, loaded.tokenizer, { maxBatch: 1, memoryBytes: 256 * 2 ** 20 });
      process.stderr.write(
        `loaded ${loaded.dir} (step ${loaded.step}, ${device}); chat template: ` +
          `${template.source.file ?? 'default transcript'}\n${COMMANDS_HELP}\n`,
      );
      const chat = new ChatSession(template, values.system ?? null, Math.min(contextLength, MAX_CONTEXT_TOKENS));
      const stopTokenIds = replyEndIds(templateSearchDirs(loaded.dir), template, loaded.tokenizer);
      await chatLoop(chat, engine, { maxTokens, temperature, topK, topP, seed, stopTokenIds, stats: values.stats });
    } finally {
      await engine?.close();
      loaded.model.dispose();
    }
  },
};

/** The conversation: its messages, rendered and cut to the model's context. */
class ChatSession {
  private messages: ChatMessage[] = [];

  constructor(
    private readonly template: ChatTemplate,
    private readonly system: string | null,
    private readonly contextLength: number,
  ) {
    this.reset();
  }

  reset(): void {
    this.messages = this.system === null ? [] : [{ role: 'system', content: this.system }];
  }

  get stops(): readonly string[] {
    return this.template.stops;
  }

  /**
   * Adds the user's message and returns the prompt for the reply. When the conversation no longer fits the
   * context with room for `replyTokens`, the oldest exchanges are dropped (the system prompt stays), and
   * `dropped` says how many messages went.
   */
  ask(text: string, replyTokens: number): { prompt: Int32Array; dropped: number } {
    this.messages.push({ role: 'user', content: text });
    let dropped = 0;
    for (;;) {
      const prompt = this.template.encode(this.messages);
      if (prompt.length + replyTokens <= this.contextLength) return { prompt, dropped };
      const first = this.messages.findIndex((m) => m.role !== 'system');
      if (first < 0 || first === this.messages.length - 1) {
        this.messages.pop();
        throw new Error(
          `this message takes ${prompt.length} tokens with the chat template; with --max-tokens ${replyTokens} ` +
            `that exceeds the model's context of ${this.contextLength} tokens`,
        );
      }
      // Drop the oldest user message and the reply to it.
      const count = this.messages[first + 1]?.role === 'assistant' ? 2 : 1;
      this.messages.splice(first, count);
      dropped += count;
    }
  }

  answered(reply: string): void {
    this.messages.push({ role: 'assistant', content: reply });
  }

  /** The user's message was not answered (stopped before any text): forget it. */
  unanswered(): void {
    if (this.messages[this.messages.length - 1]?.role === 'user') this.messages.pop();
  }
}

/**
 * Tokens that end a reply besides the end-of-document token: the template's eos_token and generation_config.json's
 * eos_token_id (instruction-tuned models end a turn with their own token, e.g. Llama 3's <|eot_id|>).
 */
function replyEndIds(dirs: readonly string[], template: ChatTemplate, tokenizer: Tokenizer): number[] {
  const ids = new Set<number>();
  const templateEos = tokenizer.specialTokens.get(template.source.eosToken);
  if (templateEos !== undefined) ids.add(templateEos);
  for (const dir of dirs) {
    const file = join(dir, 'generation_config.json');
    if (!existsSync(file)) continue;
    let config: { eos_token_id?: unknown };
    try {
      config = readJsonFile(file) as { eos_token_id?: unknown };
    } catch (error) {
      throw new Error(`${file} is not valid JSON: ${(error as Error).message}`);
    }
    const listed = Array.isArray(config.eos_token_id) ? config.eos_token_id : [config.eos_token_id];
    for (const id of listed) if (Number.isInteger(id) && id >= 0 && id < tokenizer.vocabSize) ids.add(id as number);
    break;
  }
  return [...ids];
}

interface ReplySettings {
  stopTokenIds: readonly number[];
  maxTokens: number;
  temperature: number;
  topK: number;
  topP: number;
  seed: number;
  stats: boolean;
}

async function chatLoop(chat: ChatSession, engine: InferenceEngine, settings: ReplySettings): Promise<void> {
  const interactive = process.stdin.isTTY === true && process.stdout.isTTY === true;
  const lines = createInterface({ input: process.stdin, output: process.stdout, terminal: interactive });
  let replying: GenerationStream | null = null;
  // Ctrl-C stops the reply being written; at the prompt it ends the chat.
  lines.on('SIGINT', () => (replying ? replying.cancel() : lines.close()));
  const prompt = (): void => {
    if (interactive) lines.prompt();
  };
  lines.setPrompt('>>> ');
  prompt();
  let turn = 0;
  for await (const raw of lines) {
    const line = raw.trim();
    if (line === '') {
      prompt();
      continue;
    }
    if (line === '/bye' || line === '/exit' || line === '/quit') break;
    if (line === '/reset') {
      chat.reset();
      process.stdout.write('(conversation cleared)\n');
      prompt();
      continue;
    }
    if (line === '/help' || line === '/?') {
      process.stdout.write(`${COMMANDS_HELP}\n`);
      prompt();
      continue;
    }
    if (line.startsWith('/')) {
      process.stdout.write(`unknown command ${line.split(/\s/)[0]}; ${COMMANDS_HELP}\n`);
      prompt();
      continue;
    }
    let asked: { prompt: Int32Array; dropped: number };
    try {
      asked = chat.ask(raw, settings.maxTokens);
    } catch (error) {
      process.stdout.write(`(${(error as Error).message})\n`);
      prompt();
      continue;
    }
    if (asked.dropped > 0)
      process.stderr.write(`(the ${asked.dropped} oldest messages were dropped to fit the context)\n`);
    replying = engine.submit(asked.prompt, {
      maxTokens: settings.maxTokens,
      temperature: settings.temperature,
      topK: settings.topK,
      topP: settings.topP,
      seed: settings.seed + turn++,
      stop: chat.stops,
      stopTokenIds: settings.stopTokenIds,
      startWithEos: false, // the template starts the context itself (bos_token)
    });
    for await (const event of replying) process.stdout.write(event.text);
    const result = await replying.result;
    replying = null;
    if (result.error) throw result.error;
    if (result.text.length > 0) chat.answered(result.text);
    else chat.unanswered();
    process.stdout.write('\n');
    if (settings.stats) {
      const seconds = result.totalMs / 1000;
      process.stderr.write(
        `[prompt ${result.usage.promptTokens} tokens, reply ${result.usage.completionTokens} tokens in ` +
          `${seconds.toFixed(2)}s, finished: ${result.finishReason}]\n`,
      );
    }
    prompt();
  }
  lines.close();
}
