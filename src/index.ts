// Library entry: what a Node application or tool imports from the package.
export { Reporter, type ReporterOptions } from './client/reporter.js';
export { ControlClient, NoServerError, ServerError, resolveSocket } from './client/control-client.js';
export { encodeFrame, decodeFrame, writeFrame, type FrameFields, type DecodedFrame } from './protocol/codec.js';
export { MsgType, BufferType, ArchType, FRAME_SIZES } from './protocol/constants.js';
export { AllocationServer, DEFAULT_SOCKET, type ServerOptions } from './server/server.js';
