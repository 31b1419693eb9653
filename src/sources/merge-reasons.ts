// Why a process that holds a device reports nothing: the likely reason, checked where the system
// lets us (its environment when we may read it, its user, its namespaces, the regions' slots), in
// the order a user would want to hear them. Each reason carries its fix.
import type { SilentReason } from './merge-types.js';
import type { ProcessIdentity, ShmScan } from './types.js';

export interface ReasonContext {
  shm: ShmScan;
  /** Our UID. */
  uid: number;
  knownTool(id: ProcessIdentity): string | null;
}

const SOCKET_FIX =
  'or report over the socket: run it with TT_ALLOC_TRACKING_ENABLED=1 and an allocation ' +
  'server on /tmp/tt_allocation_server.sock';

/** The likely reason `id` (a device holder no source reports memory for) shows nothing. */
export function silentReason(id: ProcessIdentity | null, ctx: ReasonContext): SilentReason {
  if (!id)
    return {
      code: 'unknown',
      text: 'its /proc entry could not be read (it may have exited)',
      fix: 'look again; `ttalloc doctor` checks the whole set-up',
    };
  const tool = ctx.knownTool(id);
  if (tool)
    return {
      code: 'known_tool',
      text: `${tool} holds the device without tt-metal: it allocates no device memory`,
      fix: 'nothing to do (it holds the device only while it runs)',
    };
  if (id.other_ipc_ns)
    return {
      code: 'other_ipc_namespace',
      text:
        'it runs in another IPC namespace (a container with its own /dev/shm): ' +
        'its regions are not ours',
      fix: `run the container with --ipc=host, or run ttalloc inside it, ${SOCKET_FIX}`,
    };
  const env = id.tracking_env;
  if (!env && id.uid !== null && id.uid !== ctx.uid)
    return {
      code: 'other_user',
      text:
        `it runs as ${id.user ?? `uid ${id.uid}`}: its environment and its regions ` +
        '(mode 0600) are not readable by us',
      fix: `run ttalloc as root or as ${id.user ?? `uid ${id.uid}`}`,
    };
  if (env?.shm_tracking_disabled && !env.alloc_tracking_enabled)
    return {
      code: 'tracking_disabled',
      text:
        'its environment sets TT_METAL_SHM_TRACKING_DISABLED=1 and not ' +
        'TT_ALLOC_TRACKING_ENABLED=1',
      fix: `unset TT_METAL_SHM_TRACKING_DISABLED in the shell that starts it, ${SOCKET_FIX}`,
    };
  const regions = ctx.shm.regions;
  const theirs = regions.find(
    (r) => r.status === 'unreadable' && id.uid !== null && r.owner_uid === id.uid,
  );
  if (theirs && id.uid !== ctx.uid)
    return {
      code: 'other_user',
      text:
        `its region ${theirs.path} belongs to ` +
        `${theirs.owner_user ?? `uid ${theirs.owner_uid}`} (mode 0600): we may not read it`,
      fix: `run ttalloc as root or as ${theirs.owner_user ?? `uid ${theirs.owner_uid}`}`,
    };
  const full = regions.find((r) => r.slots_full);
  if (full)
    return {
      code: 'slots_full',
      text: `all 64 process slots of ${full.path} are taken: a new process reports nothing there`,
      fix:
        'stop idle tt-metal processes; slots of crashed v2/v3 writers stay until the ' +
        'region is removed (rm it when no tt-metal runs)',
    };
  if (id.other_pid_ns)
    return {
      code: 'other_pid_namespace',
      text:
        `it runs in another PID namespace (PID ${id.ns_pids[id.ns_pids.length - 1] ?? '?'} ` +
        'there) and no slot matched it',
      fix: `run ttalloc in its namespace, or share the host's (--pid=host), ${SOCKET_FIX}`,
    };
  const v23 = regions.some((r) => r.status === 'ok' && (r.layout === 'v2' || r.layout === 'v3'));
  if (env?.alloc_tracking_enabled || (env && !env.shm_tracking_disabled && v23))
    return {
      code: 'no_allocation_yet',
      text: env.alloc_tracking_enabled
        ? 'tracking is on (TT_ALLOC_TRACKING_ENABLED=1) but it has reported no allocation yet'
        : 'SHM tracking is on but it has no slot yet: v2/v3 regions claim one on the first ' +
          'allocation',
      fix:
        'nothing, if it is still starting; else check it reaches the socket with ' +
        '`ttalloc doctor`',
    };
  if (env && !env.alloc_tracking_enabled)
    return {
      code: 'tracking_off',
      text: 'no SHM region has it and its environment lacks TT_ALLOC_TRACKING_ENABLED=1',
      fix: `a tt-metal without SHM tracking reports only over the socket: ${SOCKET_FIX.slice(3)}`,
    };
  return {
    code: 'unknown',
    text: 'no source reports memory for it and its environment is not readable',
    fix: 'run ttalloc as root to read its environment; `ttalloc doctor` checks the whole set-up',
  };
}
