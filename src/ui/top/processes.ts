// The processes of `top` and `ps`, from every source: the server's merged reply when one
// answers, else the SHM regions and the driver read here (no socket figures then; the views say
// so in their header line).
import { NoServerError, type ControlClient } from '../../client/control-client.js';
import { processesReply } from '../../report/process-view.js';
import type { ProcessesResponse } from '../../report/types.js';
import { SourcesCache } from '../../sources/merge-cache.js';
import { defaultReaders } from '../../sources/merge-readers.js';

let local: SourcesCache | null = null;

/** Built here, from SHM and the driver only (the server is not running). */
export function localProcesses(): ProcessesResponse {
  local ??= new SourcesCache(defaultReaders());
  return processesReply(null, local.view(null), 'local');
}

/** The server's reply, or the local one when no server runs on the client's socket. */
export async function fetchProcesses(c: ControlClient): Promise<ProcessesResponse> {
  try {
    return await c.json<ProcessesResponse>('GET', '/v1/processes');
  } catch (e) {
    if (e instanceof NoServerError) return localProcesses();
    throw e;
  }
}

/** The header line saying where the figures come from. */
export function sourcesHeader(r: ProcessesResponse, socket: string): string {
  const s = r.sources;
  const parts: string[] = [];
  if (s) {
    const ok = s.shm.regions.filter((x) => x.status === 'ok').length;
    const bad = s.shm.regions.length - ok;
    parts.push(
      `SHM ${s.shm.root}: ${ok} region${ok === 1 ? '' : 's'}` +
        (bad ? ` (+${bad} unreadable)` : ''),
    );
    parts.push(
      s.driver.present
        ? `driver ${s.driver.version ?? '?'}: ${s.driver.cards.length} card(s), ` +
            `${s.holders} holder(s)`
        : 'no driver',
    );
    const silent = Object.values(s.silent).reduce((a, n) => a + (n ?? 0), 0);
    if (silent) parts.push(`${silent} silent holder(s)`);
  }
  const head =
    r.from === 'local'
      ? `no server on ${socket}: reading SHM and the driver directly`
      : `server on ${socket}`;
  return [head, ...parts].join(' · ');
}
