// Queueing delay, from the kernel's receive timestamp (SO_TIMESTAMPNS) to the
// moment a batch is handed to the application, per datagram, in an HDR
// histogram of microseconds. Recording allocates nothing; reading does.
import type { Histogram } from 'hdr-histogram-js';

/** The clock the timestamps are against (the native backend's addon: CLOCK_REALTIME in microseconds). */
export interface RealtimeClock {
  realtimeMicros(): number;
}

export interface QueueDelaySummary {
  /** Datagrams measured. */
  count: number;
  /** Microseconds from kernel arrival to delivery: percentiles, mean and maximum. */
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

export class QueueDelay {
  readonly #histogram: Histogram;
  readonly #u32: Uint32Array;
  readonly #clock: RealtimeClock;

  private constructor(histogram: Histogram, u32: Uint32Array, clock: RealtimeClock) {
    this.#histogram = histogram;
    this.#u32 = u32;
    this.#clock = clock;
  }

  /**
   * Loads hdr-histogram-js (only for receivers that keep timestamps) and
   * returns a maker of QueueDelay over a ring, read against `clock` (long-lived: one call a batch).
   */
  static async loader(clock: RealtimeClock): Promise<(ring: SharedArrayBuffer) => QueueDelay> {
    const hdr = (await import('hdr-histogram-js')).default;
    return (ring) => {
      // 1 µs to an hour, three significant digits.
      const histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3 });
      return new QueueDelay(histogram, new Uint32Array(ring, 0, ring.byteLength >>> 2), clock);
    };
  }

  /**
   * Records the delay of `length` datagrams from descriptor slot `first`, whose
   * timestamps sit at `timestampsOffset` (8 bytes a slot), against one reading
   * of the clock.
   */
  record(timestampsOffset: number, first: number, length: number, mask: number): void {
    const now = this.#clock.realtimeMicros();
    const u32 = this.#u32;
    const histogram = this.#histogram;
    for (let i = 0; i < length; i++) {
      const at = (timestampsOffset + ((first + i) & mask) * 8) >>> 2;
      const delay = now - (u32[at] * 1e6 + u32[at + 1] / 1e3);
      // A clock stepped backwards can make it negative: count it as 0.
      histogram.recordValue(delay > 0 ? Math.round(delay) : 0);
    }
  }

  summary(): QueueDelaySummary {
    const h = this.#histogram;
    return {
      count: h.totalCount,
      p50: h.getValueAtPercentile(50),
      p90: h.getValueAtPercentile(90),
      p99: h.getValueAtPercentile(99),
      p999: h.getValueAtPercentile(99.9),
      max: h.maxValue,
      mean: h.mean,
    };
  }
}
