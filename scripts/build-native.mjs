#!/usr/bin/env node
// Builds the peer-credentials addon (native/peer_cred.c → build/Release/peer_cred.node) from
// source with node-gyp, against the Node headers on this machine. Run by `npm ci` / `npm install`
// (the "install" script) and by `npm run build:native`.
//
// It never fails the install: without a compiler or headers the server still runs, prints
// "peer credentials unavailable: …; PIDs are taken from the messages", and `ttalloc stats` says so.
// No prebuilt binaries and no header downloads: if the headers are not here, we say so and stop.
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const OUT = join(ROOT, 'build', 'Release', 'peer_cred.node');
const prefix = dirname(dirname(process.execPath));
const say = (msg) => process.stderr.write(`ttalloc: ${msg}\n`);
const giveUp = (why) => {
  rmSync(OUT, { force: true }); // never leave a stale addon that does not match this source
  say(`peer-credentials addon NOT built (${why}).`);
  say('the server will run without it: PIDs are taken from the messages, other users are kept out by the socket permissions only.');
  say('install python3, make and a C compiler, then run `npm run build:native` to build it.');
  process.exit(0);
};

if (process.platform !== 'linux') giveUp(`SO_PEERCRED is Linux-only; this is ${process.platform}`);

// node-gyp: the one npm runs us with, else the one bundled with npm next to this node.
const gyp = [process.env.npm_config_node_gyp, join(prefix, 'lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js')]
  .find((p) => p && existsSync(p));
if (!gyp) giveUp('node-gyp not found (it ships with npm)');

// Headers: npm's nodedir setting, else the ones installed with this node. Never download them.
const nodedir = [process.env.npm_config_nodedir, prefix].find((d) => d && existsSync(join(d, 'include/node/node_api.h')));
if (!nodedir) giveUp(`no Node headers (include/node/node_api.h) under ${process.env.npm_config_nodedir ?? prefix}`);

const r = spawnSync(process.execPath, [gyp, 'rebuild', `--nodedir=${nodedir}`, `--directory=${ROOT}`], {
  encoding: 'utf8', timeout: 180_000, env: { ...process.env, npm_config_nodedir: nodedir },
});
if (r.error || r.status !== 0) {
  const tail = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n').filter((l) => !/^gyp (info|ERR! (stack|System|command|cwd|node -v|node-gyp -v|not ok))/.test(l)).slice(-10).join('\n');
  if (tail) process.stderr.write(`${tail}\n`);
  giveUp(r.error ? `node-gyp: ${r.error.message}` : `node-gyp exited with ${r.status ?? r.signal}`);
}

// It must also load into this node and read a real peer: our own end of a Unix socket.
const check = spawnSync(process.execPath, ['-e', `
  const { peerCred } = require(${JSON.stringify(OUT)});
  const net = require('node:net'), os = require('node:os'), path = require('node:path'), fs = require('node:fs');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ttalloc-peercred-'));
  const sock = path.join(dir, 's');
  const srv = net.createServer((c) => {
    const cred = peerCred(c._handle.fd);
    const ok = cred.pid === process.pid && cred.uid === process.getuid() && cred.gid === process.getgid();
    process.stdout.write(ok ? 'ok' : 'wrong answer ' + JSON.stringify(cred));
    c.destroy(); srv.close(); fs.rmSync(dir, { recursive: true, force: true });
  }).listen(sock, () => net.connect(sock).on('error', () => {}));
`], { encoding: 'utf8', timeout: 30_000 });
if (check.status !== 0 || check.stdout !== 'ok') {
  giveUp(`built, but it does not work here: ${(check.stdout || check.stderr || check.error?.message || '').trim().split('\n').slice(-1)[0]}`);
}
say(`built the peer-credentials addon (${join('build', 'Release', 'peer_cred.node')}): the server takes PIDs and UIDs from the kernel`);
