// `ttalloc/server`: the allocation server as a library (tests, embedding).
export { AllocationServer, type ServerOptions } from './server.js';
export { DEFAULT_SOCKET } from '../protocol/transport.js';
