#!/usr/bin/env node
// `allocation-server` = `ttalloc server`
import { serverCommand } from './commands/server.js';
void serverCommand('allocation-server').parseAsync(process.argv.slice(2), { from: 'user' });
