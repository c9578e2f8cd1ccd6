// `udp-ring doctor`: runs the checks and prints the report as text or JSON.
// Loads the addon only to report whether it loads (backends/native/addon.ts never throws on
// import), so it works even where the addon does not.
import { runDoctor } from '../doctor/index.js';
import { renderReport } from '../doctor/render.js';

export interface DoctorCommandOptions {
  port?: number;
  seconds: number;
  json?: boolean;
  failOn?: 'warning' | 'critical';
  proc?: string;
  procLater?: string;
}

export async function doctor(options: DoctorCommandOptions): Promise<void> {
  const { nativeAddon } = await import('../../backends/native/addon.js');
  const report = await runDoctor({
    addon: nativeAddon,
    procRoot: options.proc ?? process.env.UDP_RING_PROC ?? '/proc',
    procRootLater: options.procLater ?? process.env.UDP_RING_PROC_LATER,
    seconds: options.seconds,
    port: options.port,
  });
  process.stdout.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : renderReport(report));
  // Exit 2, not 1: 1 stays "doctor itself failed" (bad option, unreadable /proc).
  const failing = options.failOn === 'warning' ? ['warning', 'critical'] : options.failOn === 'critical' ? ['critical'] : [];
  if (report.findings.some((f) => failing.includes(f.severity))) process.exitCode = 2;
}
