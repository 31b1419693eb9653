#!/usr/bin/env node
// Builds the server's native addon (native/ttalloc_native.c → build/Release/ttalloc_native.node:
// peer credentials, and direct reads of busy connections) from source with node-gyp, against the
// Node headers on this machine. Run by `npm ci` / `npm install` (the "install" script) and by
// `npm run build:native`.
//
// It never fails the install: without a compiler or headers the server still runs, prints
// "peer credentials unavailable: …; PIDs are taken from the messages", and `ttalloc stats` says so.
// No prebuilt binaries and no header downloads: if the headers are not here, we say so and stop.
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const OUT = join(ROOT, 'build', 'Release', 'ttalloc_native.node');
const prefix = dirname(dirname(process.execPath));
const say = (msg) => process.stderr.write(`ttalloc: ${msg}\n`);
const giveUp = (why) => {
  rmSync(OUT, { force: true }); // never leave a stale addon that does not match this source
  say(`native addon NOT built (${why}).`);
  say(
    'the server will run without it: PIDs are taken from the messages, ' +
      'other users are kept out by the socket permissions only,',
  );
  say(
    'and busy connections are read through epoll (which costs every client ~100 ns more per send).',
  );
  say('install python3, make and a C compiler, then run `npm run build:native` to build it.');
  process.exit(0);
};

if (process.platform !== 'linux') giveUp(`SO_PEERCRED is Linux-only; this is ${process.platform}`);

// node-gyp: the one npm runs us with, else the one bundled with npm next to this node.
const gyp = [
  process.env.npm_config_node_gyp,
  join(prefix, 'lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js'),
].find((p) => p && existsSync(p));
if (!gyp) giveUp('node-gyp not found (it ships with npm)');

// Headers: npm's nodedir setting, else the ones installed with this node. Never download them.
const nodedir = [process.env.npm_config_nodedir, prefix].find(
  (d) => d && existsSync(join(d, 'include/node/node_api.h')),
);
if (!nodedir)
  giveUp(
    `no Node headers (include/node/node_api.h) under ${process.env.npm_config_nodedir ?? prefix}`,
  );

const r = spawnSync(
  process.execPath,
  [gyp, 'rebuild', `--nodedir=${nodedir}`, `--directory=${ROOT}`],
  {
    encoding: 'utf8',
    timeout: 180_000,
    env: { ...process.env, npm_config_nodedir: nodedir },
  },
);
if (r.error || r.status !== 0) {
  const tail = `${r.stdout ?? ''}${r.stderr ?? ''}`
    .trim()
    .split('\n')
    .filter(
      (l) => !/^gyp (info|ERR! (stack|System|command|cwd|node -v|node-gyp -v|not ok))/.test(l),
    )
    .slice(-10)
    .join('\n');
  if (tail) process.stderr.write(`${tail}\n`);
  giveUp(r.error ? `node-gyp: ${r.error.message}` : `node-gyp exited with ${r.status ?? r.signal}`);
}

// It must also load into this node, read a real peer (our own end of a Unix socket) and read the
// bytes that end sent.
const check = spawnSync(
  process.execPath,
  [
    '-e',
    `
  const { peerCred, readInto } = require(${JSON.stringify(OUT)});
  const net = require('node:net');
  const os = require('node:os');
  const path = require('node:path');
  const fs = require('node:fs');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ttalloc-native-'));
  const sock = path.join(dir, 's');
  const srv = net.createServer({ pauseOnConnect: true }, (c) => {
    const cred = peerCred(c._handle.fd);
    const credOk =
      cred.pid === process.pid && cred.uid === process.getuid() && cred.gid === process.getgid();
    setTimeout(() => {
      const got = new Uint8Array(16);
      const n = readInto(c._handle.fd, got);
      const readOk = n === 2 && got[0] === 111 && got[1] === 107;
      const bad = credOk ? 'readInto returned ' + n : 'wrong credentials ' + JSON.stringify(cred);
      process.stdout.write(credOk && readOk ? 'ok' : bad);
      c.destroy();
      srv.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }, 100);
  }).listen(sock, () => net.connect(sock).on('error', () => {}).end('ok'));
`,
  ],
  { encoding: 'utf8', timeout: 30_000 },
);
if (check.status !== 0 || check.stdout !== 'ok') {
  const why = check.stdout || check.stderr || check.error?.message || '';
  giveUp(`built, but it does not work here: ${why.trim().split('\n').slice(-1)[0]}`);
}
const built = join('build', 'Release', 'ttalloc_native.node');
say(`built the native addon (${built}): the server takes PIDs and UIDs from the kernel`);
