export { UdpReceiver, type AddressInfo, type CloseOptions, type ReceiverStats } from './receiver.js';
export { UdpSender, type SenderOptions } from './sender.js';
export { Batch } from './batch.js';
export {
  defaults, minimumRingBytes, type Backend, type BackendChoice, type ReceiverOptions, type Overflow, type SocketType, type YieldEvery,
} from './options.js';
export { nativeLayout } from './layout.js';
/** Why the native addon did not load (then only backend 'dgram' or 'auto' opens), or null; and which file loaded. */
export { nativeLoadError, nativeAddon } from './native.js';
