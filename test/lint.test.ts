// The lint step (`npm run lint`) catches what it is there for: each house rule is broken once in
// a planted file, and the real tools, with the project's own configs (.prettierrc.json,
// eslint.config.js, .dependency-cruiser.cjs), must name the rule; a clean planted file passes all
// three. Through the tools' Node APIs, so that TypeScript loads once and the file takes seconds.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';
import * as prettier from 'prettier';
import { cruise, type ICruiseResult } from 'dependency-cruiser';
import extractDepcruiseOptions from 'dependency-cruiser/config-utl/extract-depcruise-options';
import extractTSConfig from 'dependency-cruiser/config-utl/extract-ts-config';
import { tempDir } from './helpers/server.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

// Formatted, short lines, one statement a line, four parameters, importing only below itself.
const CLEAN = `import { HEADER_BYTES } from '../protocol/frame.js';

export function total(a: number, b: number, c: number, d: number): number {
  return a + b + c + d + HEADER_BYTES;
}
`;

/** Files for dependency-cruiser, laid out as a project's src/ (its rules name src/ paths). */
const TREE: Record<string, string> = {
  'src/protocol/frame.ts': 'export const HEADER_BYTES = 8;\n',
  'src/client/total.ts': CLEAN,
  // A cycle inside one layer, so that only no-circular applies.
  'src/state/a.ts': "import { b } from './b.js';\n\nexport const a = (): number => b() + 1;\n",
  'src/state/b.ts': "import { a } from './a.js';\n\nexport const b = (): number => a() - 1;\n",
  // The client side reaching into the server.
  'src/server/core.ts': 'export const PORT = 1;\n',
  'src/client/leak.ts': "import { PORT } from '../server/core.js';\n\nexport const p = PORT;\n",
};

let dir: string, eslint: ESLint;

before(() => {
  dir = tempDir('ttalloc-lint-');
  for (const [path, text] of Object.entries(TREE)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  eslint = new ESLint({ cwd: ROOT });
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The rules ESLint reports for `text` as if it were a file in src/ of this project. */
async function eslintRules(text: string): Promise<(string | null)[]> {
  const [result] = await eslint.lintText(text, { filePath: join(ROOT, 'src/planted.ts') });
  return result.messages.map((m) => m.ruleId);
}

/** Whether `prettier --check` would accept `text` as a file in src/ of this project. */
async function prettierAccepts(text: string): Promise<boolean> {
  const filepath = join(ROOT, 'src/planted.ts');
  const options = await prettier.resolveConfig(filepath, { editorconfig: true });
  assert.ok(options, 'the project has a prettier config');
  return prettier.check(text, { ...options, filepath });
}

/** dependency-cruiser's violations, as "rule from -> to", for src/ under `baseDir`. */
async function depcruiseViolations(baseDir: string): Promise<string[]> {
  const options = await extractDepcruiseOptions(join(ROOT, '.dependency-cruiser.cjs'));
  const tsConfig = extractTSConfig(join(ROOT, 'tsconfig.json'));
  const { output } = await cruise(['src'], { ...options, baseDir }, undefined, { tsConfig });
  return (output as ICruiseResult).summary.violations.map(
    (v) => `${v.rule.name} ${v.from} -> ${v.to}`,
  );
}

test('prettier --check: a badly formatted file fails, a clean one passes', async () => {
  assert.equal(await prettierAccepts('export const  x = {a:1,b:"two"}\n'), false);
  assert.equal(await prettierAccepts(CLEAN), true);
});

test('eslint: long lines, two statements a line, five parameters, each by its rule', async () => {
  const long = `export const s = '${'x'.repeat(90)}';\n`;
  assert.ok(long.length > 101);
  assert.deepEqual(await eslintRules(long), ['max-len']);
  const twoStatements =
    'export function twice(n: number): number {\n  let m = n; m *= 2;\n  return m;\n}\n';
  assert.deepEqual(await eslintRules(twoStatements), ['max-statements-per-line']);
  const fiveParams =
    'export function sum(a: number, b: number, c: number, d: number, e: number): number {\n' +
    '  return a + b + c + d + e;\n}\n';
  assert.deepEqual(await eslintRules(fiveParams), ['max-params']);
  assert.deepEqual(await eslintRules(CLEAN), []);
});

test('dependency-cruiser: an import cycle and a layer violation, each by its rule', async () => {
  assert.deepEqual((await depcruiseViolations(dir)).sort(), [
    'client-imports-below-only src/client/leak.ts -> src/server/core.ts',
    'no-circular src/state/a.ts -> src/state/b.ts',
    'server-is-top src/client/leak.ts -> src/server/core.ts',
  ]);
});

test("the project's src/ has no import cycles", async () => {
  const cycles = (await depcruiseViolations(ROOT)).filter((v) => v.startsWith('no-circular '));
  assert.deepEqual(cycles, []);
});
