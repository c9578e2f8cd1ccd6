import './backends/index.js';

export { UdpReceiver, type AddressInfo, type CloseOptions, type ReceiverStats } from './core/receiver.js';
export { UdpSender, type SenderOptions } from './core/sender.js';
export { Batch } from './core/batch.js';
export {
  defaults, minimumRingBytes, type Backend, type BackendChoice, type ReceiverOptions, type Overflow, type SocketType, type YieldEvery,
} from './core/options.js';
export { nativeLayout } from './backends/native/layout.js';
/** Why the native addon did not load (then only backend 'dgram' or 'auto' opens), or null; and which file loaded. */
export { nativeLoadError, nativeAddon } from './backends/native/addon.js';
