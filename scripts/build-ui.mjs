// Bundles the web dashboard into dist/ui/: our page sources plus uPlot from node_modules, so the
// server ships every asset itself (no CDN; works offline and behind firewalls).
import { copyFileSync, mkdirSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist', 'ui');
mkdirSync(out, { recursive: true });
const src = join(root, 'src', 'ui', 'web');
for (const f of readdirSync(src)) copyFileSync(join(src, f), join(out, f));
const uplot = join(dirname(createRequire(import.meta.url).resolve('uplot')), '..', 'dist');
for (const f of ['uPlot.iife.min.js', 'uPlot.min.css']) copyFileSync(join(uplot, f), join(out, f));
