// Chat templates: the model's own (tokenizer_config.json, rendered with @huggingface/jinja) or the
// documented default transcript; template errors reach the client as 400s.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import OpenAI from 'openai';
import { ByteTokenizer } from '../../src/data/tokenizer/byte.js';
import { ChatTemplate, DEFAULT_CHAT_TEMPLATE } from '../../src/serve/chat-template.js';
import { loadChatTemplate, templateSearchDirs } from '../../src/serve/chat-template-file.js';
import { tempDir } from '../train/helpers.js';
import { MODEL_ID, startServer } from './helpers.js';

const tokenizer = new ByteTokenizer({ specialTokens: ['<|endoftext|>', '<|im_start|>', '<|im_end|>'] });
const CHATML =
  "{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

test('the default template: a plain transcript that starts a document and ends with "Assistant:"', async () => {
  const template = loadChatTemplate([await tempDir()], tokenizer);
  assert.equal(template.isDefault, true);
  assert.equal(template.source.template, DEFAULT_CHAT_TEMPLATE);
  const messages = [
    { role: 'system' as const, content: 'Be brief.' },
    {
      role: 'user' as const,
      content: [
        { type: 'text' as const, text: 'Hi ' },
        { type: 'text' as const, text: 'there' },
      ],
    },
  ];
  assert.equal(template.render(messages), '<|endoftext|>System: Be brief.\n\nUser: Hi there\n\nAssistant:');
  const ids = template.encode(messages);
  assert.equal(ids[0], tokenizer.eosId, 'the start-of-document token is the special id, not its characters');
  assert.equal(ids.length, 1 + 'System: Be brief.\n\nUser: Hi there\n\nAssistant:'.length);
  assert.ok(template.stops.includes('\nUser:'));
});

test("a model's template from tokenizer_config.json, in the checkpoint or its run directory", async () => {
  const run = await tempDir();
  const checkpoint = join(run, 'checkpoints', 'step-000010');
  await mkdir(checkpoint, { recursive: true });
  await writeFile(
    join(run, 'tokenizer_config.json'),
    JSON.stringify({
      chat_template: [
        { name: 'tool_use', template: 'wrong one' },
        { name: 'default', template: '{{ bos_token }}' + CHATML },
      ],
      bos_token: { content: '<|endoftext|>', lstrip: false },
      eos_token: '<|im_end|>',
    }),
  );
  const template = loadChatTemplate(templateSearchDirs(checkpoint), tokenizer);
  assert.equal(template.source.file, join(run, 'tokenizer_config.json'));
  assert.deepEqual(template.stops, []);
  const text = template.render([{ role: 'user', content: 'hello' }]);
  assert.equal(text, '<|endoftext|><|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n');
  const ids = template.encode([{ role: 'user', content: 'hello' }]);
  assert.deepEqual(Array.from(ids.slice(0, 2)), [tokenizer.eosId, tokenizer.specialTokens.get('<|im_start|>')]);
  // One in the checkpoint itself comes first.
  await writeFile(join(checkpoint, 'tokenizer_config.json'), JSON.stringify({ chat_template: CHATML }));
  assert.equal(
    loadChatTemplate(templateSearchDirs(checkpoint), tokenizer).source.file,
    join(checkpoint, 'tokenizer_config.json'),
  );
  await writeFile(join(checkpoint, 'tokenizer_config.json'), JSON.stringify({ chat_template: 5 }));
  assert.throws(() => loadChatTemplate(templateSearchDirs(checkpoint), tokenizer), /chat_template must be a string/);
  await writeFile(join(checkpoint, 'tokenizer_config.json'), '{oops');
  assert.throws(() => loadChatTemplate(templateSearchDirs(checkpoint), tokenizer), /not valid JSON/);
});

test("a template's raise_exception is a 400 naming the problem", async () => {
  const strict = new ChatTemplate(
    {
      template:
        "{% if messages[0].role != 'user' %}{{ raise_exception('Conversations must start with a user message') }}" +
        '{% endif %}' +
        CHATML,
      file: '/models/strict/tokenizer_config.json',
      bosToken: '',
      eosToken: '<|endoftext|>',
    },
    new ByteTokenizer(),
  );
  const server = await startServer({ chatTemplate: strict });
  try {
    const error = await server.client.chat.completions
      .create({ model: MODEL_ID, messages: [{ role: 'assistant', content: 'hi' }] })
      .catch((e: unknown) => e);
    assert.ok(error instanceof OpenAI.BadRequestError, String(error));
    assert.match(error.message, /Conversations must start with a user message/);
    assert.equal(error.param, 'messages');
    const ok = await server.client.chat.completions.create({
      model: MODEL_ID,
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 3,
    });
    // The server's byte tokenizer has no ChatML tokens: the markers are plain text, one token a byte.
    assert.equal(ok.usage!.prompt_tokens, strict.render([{ role: 'user', content: 'hi' }]).length);
  } finally {
    await server.close();
  }
});
