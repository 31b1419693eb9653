// Where the two sockets live (docs/protocol.md, "Transport"). The runtime's client hard-codes the
// default path; every one of our tools also honours --socket and $TT_ALLOC_SERVER_SOCKET.

/** The data socket path the runtime's AllocationClient connects to. */
export const DEFAULT_SOCKET = '/tmp/tt_allocation_server.sock';

/** The control socket (HTTP/JSON for our CLI and views) sits beside the data socket. */
export function controlPathFor(socketPath: string): string {
  return `${socketPath}.ctl`;
}

/**
 * The data socket path a command uses: --socket, else $TT_ALLOC_SERVER_SOCKET, else the default.
 */
export function resolveSocket(flag?: string): string {
  return flag || process.env.TT_ALLOC_SERVER_SOCKET || DEFAULT_SOCKET;
}
