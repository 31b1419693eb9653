#!/usr/bin/env node
// `dump-remaining-buffers` = `ttalloc dump`
import { dumpCommand } from './commands/dump.js';
void dumpCommand('dump-remaining-buffers').parseAsync(process.argv.slice(2), { from: 'user' });
