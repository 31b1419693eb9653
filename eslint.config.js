// Lint: typescript-eslint's recommended rules plus the house habits (docs/architecture.md):
// lines of at most 100 characters, one statement a line, at most four positional parameters
// (more take an options object; a hot-path exception says why, measured, beside its disable).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

export default tseslint.config(
  { ignores: ['dist/', 'build/', 'node_modules/', '.bench-build/', 'test-output/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      'max-len': ['error', { code: 100, ignoreUrls: true }],
      'max-statements-per-line': ['error', { max: 1 }],
      'max-params': ['error', 4],
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
    },
  },
  {
    // The dashboard's scripts run in the browser; common.js defines `ttalloc` for the others.
    files: ['src/ui/web/**/*.js'],
    languageOptions: { globals: { ...globals.browser, ttalloc: 'readonly' } },
  },
);
