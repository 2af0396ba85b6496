// @ts-check
import simpleImportSort from 'eslint-plugin-simple-import-sort';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: ['dist/**', 'node_modules/**', 'bench/results/**', '.data/**', '.scratch/**', '.test-build/**'],
  },
  ...tseslint.configs.recommended,
  // The library's own code is also linted with type information (tests, benchmarks and
  // scripts with the rules above only).
  ...tseslint.configs.recommendedTypeChecked.map((config) => ({ ...config, files: ['src/**/*.ts'] })),
  {
    files: ['src/**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      // Off: here it calls assertions unnecessary that tsc (the build's checker) requires.
      '@typescript-eslint/no-unnecessary-type-assertion': 'off',
    },
  },
  {
    // Sorted imports and exports in all TypeScript (src, test, bench, scripts, examples);
    // `npx eslint --fix .` sorts them.
    files: ['**/*.ts'],
    plugins: { 'simple-import-sort': simpleImportSort },
    rules: {
      'simple-import-sort/imports': 'error',
      'simple-import-sort/exports': 'error',
    },
  },
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': 'off',
    },
  },
);
