// What `import { Reporter } from 'ttalloc'` costs an application: modules loaded and time.
// Usage: npm run build && node scripts/import-cost.mjs [dist/index.js]   (prints one JSON line)
import { register } from 'node:module';
import { MessageChannel } from 'node:worker_threads';
const { port1, port2 } = new MessageChannel();
const urls = [];
port1.on('message', (u) => urls.push(u));
port1.unref();
register(
  'data:text/javascript,' +
    encodeURIComponent(`
let port; export function initialize(d) { port = d.port; }
export async function load(url, ctx, next) { port.postMessage(url); return next(url, ctx); }`),
  { data: { port: port2 }, transferList: [port2] },
);
const t0 = performance.now();
const entry = process.argv[2]
  ? new URL(process.argv[2], `file://${process.cwd()}/`)
  : new URL('../dist/index.js', import.meta.url);
const m = await import(entry.href);
const ms = performance.now() - t0;
if (!m.Reporter) throw new Error('no Reporter');
await new Promise((r) => setTimeout(r, 50));
const files = urls.filter((u) => u.startsWith('file:'));
console.log(
  JSON.stringify({
    modules: urls.length,
    fileModules: files.length,
    ms: +ms.toFixed(1),
    promClient: files.some((u) => u.includes('prom-client')),
  }),
);
