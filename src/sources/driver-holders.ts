// Holders of a device that are not tt-metal: they open /dev/tenstorrent/N (so the driver lists
// them) but allocate no device memory, so neither the socket nor SHM ever reports them. The
// views flag such a holder as "not a tt-metal process" instead of "reports nothing".
import { readIdentity, type IdentityOptions } from '../platform/processes.js';
import type { ProcessIdentity } from './types.js';

export interface KnownHolder {
  /** The command name as /proc/PID/comm shows it (a script run by its shebang: its file name). */
  name: string;
  /** What it is, for the views' reason text. */
  what: string;
  /** Where the name comes from: our sources, a public repository, or "guess". */
  source: string;
}

/**
 * The known non-tt-metal holders. A Python tool run as `python3 -m module` shows comm python3;
 * `modules` names the module so the command line still tells.
 */
export const KNOWN_HOLDERS: readonly (KnownHolder & { modules?: string[] })[] = [
  {
    name: 'tt-smi',
    what: 'tt-smi (system management: lists holders and telemetry, no memory)',
    source: 'SHM-LAYOUT.md §4 and issue 13 (official tt-smi); repository tenstorrent/tt-smi',
    modules: ['tt_smi'],
  },
  {
    name: 'tt-flash',
    what: 'tt-flash (firmware flashing; may hold the device exclusively)',
    source: 'SHM-LAYOUT.md §2 ("flashing tools"); repository tenstorrent/tt-flash',
    modules: ['tt_flash'],
  },
  {
    name: 'tt-topology',
    what: 'tt-topology (programs the Ethernet topology of n300 meshes)',
    source: 'repository tenstorrent/tt-topology; command name a guess from the repository name',
    modules: ['tt_topology'],
  },
  {
    name: 'tt-burnin',
    what: 'tt-burnin (burn-in stress tool)',
    source: 'repository tenstorrent/tt-burnin; command name a guess from the repository name',
    modules: ['tt_burnin'],
  },
  {
    name: 'tt-exalens',
    what: 'tt-exalens (debugger: reads the chip directly)',
    source: 'repository tenstorrent/tt-exalens; command name a guess from the repository name',
    modules: ['ttexalens'],
  },
  {
    name: 'tt-toplike',
    what: 'tt-toplike (a telemetry monitor)',
    source: 'repository tenstorrent/tt-toplike; command name a guess from the repository name',
  },
];
// Not in the table: luwen is the library tt-smi and tt-flash open the device through, not a
// command of its own (a process using it shows as its tool); telemetry collectors have no
// name in our sources.

/** The known non-tt-metal holder `id` is, by comm or by the script or module its argv runs. */
export function knownHolder(id: Pick<ProcessIdentity, 'comm' | 'cmdline'>): KnownHolder | null {
  const argv = (id.cmdline ?? '').split(' ').slice(0, 3);
  const base = argv.map((a) => a.slice(a.lastIndexOf('/') + 1));
  for (const h of KNOWN_HOLDERS) {
    if (id.comm === h.name || base.includes(h.name)) return h;
    const m = argv.indexOf('-m');
    if (m >= 0 && h.modules?.includes(argv[m + 1] ?? '')) return h;
  }
  return null;
}

/** readIdentity typed as the sources' JSON shape (a compile-time check that the two agree). */
export const readProcessIdentity: (
  pid: number,
  procRoot?: string,
  opts?: IdentityOptions,
) => ProcessIdentity = readIdentity;
