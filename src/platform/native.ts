// The server's small N-API addon (native/ttalloc_native.c, built from source by `npm ci`, see
// scripts/build-native.mjs), loaded once per process: the kernel's peer credentials of a
// connection (peer-cred.ts) and a plain read(2) for busy connections (socket-reader.ts). Both are
// optional: without the addon the server runs, and says what it does without.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Same path from src/server (tsx) and dist/server (built): both are two levels below the package.
 */
export const ADDON_PATH = fileURLToPath(
  new URL('../../build/Release/ttalloc_native.node', import.meta.url),
);

/** The addon's exports, unchecked: each user checks the function it needs. */
export type NativeAddon = Record<string, unknown>;

let cached: { addon: NativeAddon } | { addon: null; reason: string } | null = null;

/** The addon, or why it cannot be loaded. */
export function loadNative(): { addon: NativeAddon } | { addon: null; reason: string } {
  return (cached ??= load());
}

function load(): { addon: NativeAddon } | { addon: null; reason: string } {
  if (process.platform !== 'linux')
    return { addon: null, reason: `the addon is Linux-only (this is ${process.platform})` };
  const shown = relative(process.cwd(), ADDON_PATH).startsWith('..')
    ? ADDON_PATH
    : relative(process.cwd(), ADDON_PATH);
  if (!existsSync(ADDON_PATH))
    return { addon: null, reason: `the addon ${shown} was not built (npm run build:native)` };
  try {
    return { addon: createRequire(import.meta.url)(ADDON_PATH) as NativeAddon };
  } catch (e) {
    return {
      addon: null,
      reason: `the addon ${shown} does not load (${(e as Error).message.split('\n')[0]})`,
    };
  }
}
