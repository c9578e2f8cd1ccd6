export { UdpReceiver, type AddressInfo, type ReceiverStats } from './receiver.js';
export { UdpSender, type SenderOptions } from './sender.js';
export { Batch } from './batch.js';
export { defaults, minimumRingBytes, type ReceiverOptions, type Overflow, type SocketType } from './options.js';
export { nativeLayout } from './layout.js';
