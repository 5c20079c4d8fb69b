// Bad input to the commands this engineer's area owns (generate, convert, score): every case from
// issue #13 and the adversarial pass, run through the real CLI in a child process. Each must exit
// with status 1 and a message that names the problem, and never touch the files it reads.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import '../../src/engine/index.js';
import { deviceUnavailableReason } from '../../src/engine/registry.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { writeSafetensors } from '../../src/io/safetensors.js';
import { andromedaFamily } from '../../src/train/andromeda-adapter.js';
import { printable } from '../../src/cli/printable.js';
import { loadModelForInference } from '../../src/inference/load.js';

const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const fixture = fileURLToPath(new URL('../../../tests/fixtures/xtransformers-1.20/andromeda-tiny', import.meta.url));

interface Run {
  status: number | null;
  stdout: Buffer;
  stderr: string;
}

function andromeda(args: string[], cwd: string): Run {
  const r = spawnSync(process.execPath, [cli, ...args], { cwd, timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString('utf8') };
}

/** Runs a command that must fail: status 1, stderr matching `message`. */
function fails(args: string[], cwd: string, message: RegExp): Run {
  const r = andromeda(args, cwd);
  assert.equal(r.status, 1, `andromeda ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  assert.match(r.stderr, message);
  return r;
}

function tokens(dir: string, name: string, shape: number[], values: number[]): string {
  const path = join(dir, name);
  writeSafetensors(path, new Map([['tokens', Tensor.fromArray(values, shape, 'int32').keep()]]));
  return path;
}

describe('cli: bad input is a clear error and never damages an input', () => {
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'andromeda-cli-'));
    const converted = andromeda(['convert', fixture, 'ck'], dir);
    assert.equal(converted.status, 0, converted.stderr);
    tokens(dir, 'in.safetensors', [1, 4], [1, 2, 3, 4]);
  });

  test('score will not write over its input or into its checkpoint', () => {
    const input = readFileSync(join(dir, 'in.safetensors'));
    const weights = readFileSync(join(dir, 'ck', 'model.safetensors'));
    fails(
      ['score', 'ck', 'in.safetensors', 'in.safetensors'],
      dir,
      /<out.safetensors> in.safetensors would overwrite the input in.safetensors/,
    );
    fails(['score', 'ck', 'in.safetensors', './ck/../in.safetensors'], dir, /would overwrite the input/);
    fails(
      ['score', 'ck', 'in.safetensors', 'ck/model.safetensors'],
      dir,
      /would overwrite a file of the checkpoint ck/,
    );
    fails(['score', 'ck', 'in.safetensors', 'ck'], dir, /<out.safetensors> ck is a directory/);
    fails(['score', 'ck', 'in.safetensors', 'missing/out.safetensors'], dir, /folder .*missing does not exist/);
    assert.deepEqual(readFileSync(join(dir, 'in.safetensors')), input);
    assert.deepEqual(readFileSync(join(dir, 'ck', 'model.safetensors')), weights);
    const ok = andromeda(['score', 'ck', 'in.safetensors', 'out.safetensors'], dir);
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout.toString(), /^loss \d+\.\d+ on \[1, 4\] tokens/);
  });

  test('score refuses tokens with nothing to score instead of printing loss 0', () => {
    tokens(dir, 'empty-batch.safetensors', [0, 4], []);
    tokens(dir, 'one-token.safetensors', [2, 1], [5, 6]);
    const r = fails(
      ['score', 'ck', 'empty-batch.safetensors', 'o.safetensors'],
      dir,
      /tokens \[0, 4\] hold no next-token prediction to score/,
    );
    assert.doesNotMatch(r.stdout.toString(), /loss/);
    fails(
      ['score', 'ck', 'one-token.safetensors', 'o.safetensors'],
      dir,
      /tokens \[2, 1\] hold no next-token prediction/,
    );
    writeSafetensors(
      join(dir, 'float-tokens.safetensors'),
      new Map([['tokens', Tensor.fromArray([1, 2], [1, 2]).keep()]]),
    );
    fails(
      ['score', 'ck', 'float-tokens.safetensors', 'o.safetensors'],
      dir,
      /tokens must be integers \(int32 or int64\), got F32/,
    );
  });

  test('paths that are directories, missing or files where a directory belongs are named', () => {
    mkdirSync(join(dir, 'a-dir'), { recursive: true });
    fails(['score', 'ck', 'a-dir', 'o.safetensors'], dir, /<in.safetensors> a-dir is a directory/);
    fails(['score', 'ck', 'nowhere.safetensors', 'o.safetensors'], dir, /nowhere.safetensors: cannot open: ENOENT/);
    fails(['score', 'nowhere', 'in.safetensors', 'o.safetensors'], dir, /checkpoint nowhere does not exist/);
    fails(['convert', fixture, 'in.safetensors'], dir, /<out dir> in.safetensors is a file/);
    fails(['tokenize', '--out', 'in.safetensors'], dir, /--out in.safetensors is a file; give a directory/);
    fails(
      ['tokenize', '--out', 'in.safetensors/sub'],
      dir,
      /--out in.safetensors\/sub: .*in.safetensors is a file, not a folder/,
    );
    fails(
      ['convert', fixture, 'in.safetensors/sub/deeper'],
      dir,
      /<out dir> in.safetensors\/sub\/deeper: .*in.safetensors is a file, not a folder/,
    );
    fails(
      ['score', 'ck', 'in.safetensors', 'in.safetensors/x.safetensors'],
      dir,
      /in.safetensors is a file, not a folder/,
    );
    fails(['convert', 'in.safetensors', 'o'], dir, /source in.safetensors is a file/);
    cpSync(fixture, join(dir, 'source'), { recursive: true });
    fails(['convert', 'source', 'source', '--force'], dir, /<out dir> source is the source directory/);
    fails(
      ['generate', 'ck', '--tokenizer', 'byte', '--prompt-file', 'a-dir'],
      dir,
      /--prompt-file a-dir is a directory/,
    );
    fails(
      ['generate', 'ck', '--tokenizer', 'byte', '--prompt-file', 'nowhere.txt'],
      dir,
      /--prompt-file nowhere.txt: cannot read it \(ENOENT\)/,
    );
  });

  test('tensor names and config keys are printed with their control characters escaped', () => {
    const evil = '\u001b[31mred\u001b]0;title\u0007';
    writeSafetensors(join(dir, 'escape.safetensors'), new Map([[evil, Tensor.fromArray([1], [1]).keep()]]));
    const r = fails(
      ['score', 'ck', 'escape.safetensors', 'o.safetensors'],
      dir,
      /no 'tokens' tensor \(it has: \\x1b\[31mred\\x1b\]0;title\\x07\)/,
    );
    assert.ok(!r.stderr.includes('\u001b'), 'a raw escape character reached the terminal');
    assert.equal(printable('a\u202eb\tc\n'), 'a\\u202eb\tc\n');
  });

  test('convert rejects absurd or malformed configs before building anything', () => {
    const variant = (name: string, edit: (config: Record<string, any>) => unknown): string => {
      const target = join(dir, name);
      cpSync(fixture, target, { recursive: true });
      const config = JSON.parse(readFileSync(join(fixture, 'config.json'), 'utf8'));
      writeFileSync(join(target, 'config.json'), JSON.stringify(edit(config) ?? config));
      return name;
    };
    const started = Date.now();
    fails(
      [
        'convert',
        variant('deep', (c) => {
          c.decoder.depth = 1_000_000;
        }),
        'o',
      ],
      dir,
      /depth 1000000 is more than the 10000 layers a model can have/,
    );
    fails(
      [
        'convert',
        variant('wide', (c) => {
          c.decoder.dim = 2 ** 20;
        }),
        'o',
      ],
      dir,
      /parameters take .* GiB at 4 bytes each, more than this machine's .* of memory/,
    );
    fails(
      [
        'convert',
        variant('huge-vocab', (c) => {
          c.wrapper.num_tokens = 1e300;
        }),
        'o',
      ],
      dir,
      /vocabSize 1e\+300 is more than int32 token ids can address/,
    );
    fails(
      [
        'convert',
        variant('null-decoder', (c) => {
          c.decoder = null;
        }),
        'o',
      ],
      dir,
      /expected \{"wrapper": \{...TransformerWrapper arguments\}, "decoder"/,
    );
    fails(
      [
        'convert',
        variant('fractional', (c) => {
          c.decoder.heads = 2.5;
        }),
        'o',
      ],
      dir,
      /heads must be a positive integer, got 2.5/,
    );
    assert.ok(Date.now() - started < 30_000, 'the configs were refused up front, not after building the model');
    const broken = variant('broken-json', () => undefined);
    writeFileSync(join(dir, broken, 'config.json'), '{"wrapper": ');
    fails(['convert', broken, 'o'], dir, /broken-json\/config.json: not valid JSON/);
  });

  test('generate plans its KV cache before allocating and names --max-tokens', () => {
    fails(
      ['generate', 'ck', '--tokenizer', 'byte', '--max-tokens', '2147483000'],
      dir,
      /--max-tokens 2147483000: the KV cache for 2147483\d+ positions would take .* GiB, more than this machine's/,
    );
    fails(
      ['generate', 'ck', '--tokenizer', 'byte', '--max-tokens', '1e12'],
      dir,
      /--max-tokens must be an integer from 0 to 2147483646, got "1e12"/,
    );
    fails(['generate', 'ck', '--tokenizer', 'byte', '--max-tokens=-1'], dir, /--max-tokens must be an integer from 0/);
  });

  test('generate continues a prompt file byte for byte, invalid UTF-8 included', () => {
    const prompt = Buffer.from([0x43, 0x61, 0x66, 0xe9, 0xff]);
    writeFileSync(join(dir, 'prompt.bin'), prompt);
    const r = andromeda(
      [
        'generate',
        'ck',
        '--tokenizer',
        'byte',
        '--prompt-file',
        'prompt.bin',
        '--max-tokens',
        '2',
        '--temperature',
        '0',
      ],
      dir,
    );
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.stdout.subarray(0, prompt.length), prompt);
    // Generated tokens are written as their bytes: the byte tokenizer's output decodes back exactly.
    assert.equal(r.stdout.length, prompt.length + 2 + 1, 'two generated bytes and a newline');
    fails(
      ['generate', 'ck', '--prompt', 'x', '--prompt-file', 'prompt.bin'],
      dir,
      /give --prompt or --prompt-file, not both/,
    );
  });

  test(
    'a device this machine does not have is reported as such, not as a corrupt checkpoint',
    { skip: deviceUnavailableReason('cuda') === null && 'this machine has a CUDA device' },
    () => {
      const r = fails(['generate', 'ck', '--device', 'cuda', '--tokenizer', 'byte'], dir, /--device cuda: /);
      assert.doesNotMatch(r.stderr, /corrupt/);
      fails(['score', 'ck', 'in.safetensors', 'o.safetensors', '--device', 'cuda:3'], dir, /--device cuda:3: /);
      return assert.rejects(
        loadModelForInference(join(dir, 'ck'), 'cuda', 'byte'),
        /device cuda cannot be used here: /,
      );
    },
  );

  test("a vocabSize given with a preset is kept, not replaced by the tokenizer's", () => {
    assert.equal(andromedaFamily.presetConfig('tiny', 257, { vocabSize: 10 }).vocabSize, 10);
    assert.equal(andromedaFamily.presetConfig('tiny', 257, { vocabSize: 1000 }).vocabSize, 1000);
    assert.equal(andromedaFamily.presetConfig('tiny', 257).vocabSize, 257);
  });
});
