// Library entry: what a Node application or tool imports from the package. It loads the client
// side only (the Reporter, the control client and the wire codec): no server code, no prom-client.
// The server itself is `ttalloc/server`.
export { Reporter, type AllocNote, type ReporterOptions } from './client/reporter.js';
export { ControlClient, NoServerError, ServerError } from './client/control-client.js';
export { DEFAULT_SOCKET, resolveSocket } from './protocol/transport.js';
export {
  encodeFrame,
  decodeFrame,
  writeFrame,
  type FrameWords,
  type FrameFields,
  type DecodedFrame,
} from './protocol/codec.js';
export { MsgType, BufferType, ArchType, FRAME_SIZES } from './protocol/constants.js';
