export { UdpReceiver, type AddressInfo, type CloseOptions, type ReceiverStats } from './receiver.js';
export { UdpSender, type SenderOptions } from './sender.js';
export { Batch } from './batch.js';
export {
  defaults, minimumRingBytes, type Backend, type ReceiverOptions, type Overflow, type SocketType, type YieldEvery,
} from './options.js';
export { nativeLayout } from './layout.js';
/** Why the native addon did not load (the dgram backend then serves), or null. */
export { nativeLoadError } from './native.js';
