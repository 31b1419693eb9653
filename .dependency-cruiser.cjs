// Import rules checked by `npm run lint` (dependency-cruiser): no cycles, and each folder imports
// only the folders below it on the data path (docs/architecture.md has the picture).
/** Folders a layer may import, besides itself and Node's built-ins. */
const below = {
  protocol: [],
  platform: [],
  devices: ['protocol'],
  // What else speaks of device memory on the machine: tt-metal's SHM regions, the driver's holders.
  sources: ['protocol', 'devices', 'platform'],
  state: ['protocol'],
  persist: ['protocol', 'state', 'platform'],
  report: ['protocol', 'state', 'devices', 'persist', 'sources'],
  analysis: ['protocol', 'state', 'report'],
  metrics: ['protocol', 'state', 'devices', 'report', 'sources'],
  control: ['protocol', 'state', 'devices', 'report', 'analysis', 'metrics', 'sources'],
  client: ['protocol'],
  // The terminal and the page read the control API through the client, in report/'s JSON shapes.
  // `top` without a server reads the sources itself.
  ui: ['client', 'protocol', 'report', 'sources'],
};

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'An import cycle: the layers no longer read straight down.',
      from: {},
      to: { circular: true },
    },
    ...Object.entries(below).map(([layer, allowed]) => ({
      name: `${layer}-imports-below-only`,
      severity: 'error',
      comment: `src/${layer}/ may import only ${allowed.length ? allowed.join(', ') : 'itself'}.`,
      from: { path: `^src/${layer}/` },
      to: {
        path: '^src/',
        pathNot: [`^src/${layer}/`, ...allowed.map((a) => `^src/${a}/`)],
      },
    })),
    {
      name: 'server-is-top',
      severity: 'error',
      comment: 'Only the CLI (and the server itself) may import src/server/.',
      from: { path: '^src/', pathNot: ['^src/server/', '^src/cli/'] },
      to: { path: '^src/server/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
