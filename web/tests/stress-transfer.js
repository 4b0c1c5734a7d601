#!/usr/bin/env node
// Runs file transfers back to back and prints how many completed, stalled or failed, and the time
// per run: the long check by hand behind the stress test (web/tests/transfer-stress.test.js).
//
//   node web/tests/stress-transfer.js [--runs N] [--direction D[,D...]] [--mib M] [--stall-ms MS]
//
// D is native-to-chromium, chromium-to-native or native-to-native (default: all three, N each).
// Uses the debug binaries unless PEER_CLIENT_BIN / SIGNALING_SERVER_BIN name others. A stalled or
// failed run prints both sides' state (the page's channels and getStats(), the native log) and
// the command goes on with the next run; it exits non-zero if any run did not complete.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { DIRECTIONS, StressHarness, spread } from './support/stress.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '100' },
    direction: { type: 'string', default: DIRECTIONS.join(',') },
    mib: { type: 'string', default: '5' },
    'stall-ms': { type: 'string', default: '20000' },
  },
});
const runs = Number(values.runs);
/** Runs slower than this are listed with what the native side logged about SCTP. */
const SLOW_RUN_MS = 10_000;
const directions = values.direction.split(',');
for (const d of directions) if (!DIRECTIONS.includes(d)) throw new Error(`unknown direction ${d}; one of ${DIRECTIONS.join(', ')}`);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stress-transfer-'));
const harness = await StressHarness.start({
  dir,
  bytes: Math.round(Number(values.mib) * 1024 * 1024) + 12345,
  stallMs: Number(values['stall-ms']),
  browser: directions.some((d) => d.includes('chromium')),
});
const results = {};
try {
  for (const direction of directions) {
    const result = { ok: [], drops: [], stalls: 0, failures: 0 };
    results[direction] = result;
    for (let i = 1; i <= runs; i += 1) {
      try {
        const { ms, udpDrops, notes } = await harness.run(direction);
        if (ms > SLOW_RUN_MS) {
          console.log(`${direction}: run ${i} took ${ms} ms (${udpDrops} UDP datagrams dropped by full socket buffers)`);
          for (const line of notes.slice(0, 20)) console.log(`  ${line}`);
        }
        result.ok.push(ms);
        result.drops.push(udpDrops);
        if (i % 10 === 0) console.log(`${direction}: ${i}/${runs}, last ${ms} ms`);
      } catch (err) {
        if (err.stall) result.stalls += 1;
        else result.failures += 1;
        console.log(`${direction}: run ${i} ${err.stall ? 'STALLED' : 'FAILED'} (${err.udpDrops} UDP datagrams dropped by full socket buffers): ${err.message}`);
        if (err.state) console.log(JSON.stringify(err.state, null, 2));
      }
    }
  }
} finally {
  await harness.close();
  fs.rmSync(dir, { recursive: true, force: true });
}

console.log('\ndirection            runs  completed  stalled  failed  ms per run (min / median / max)  UDP drops per run (min / median / max)');
let bad = 0;
for (const [direction, r] of Object.entries(results)) {
  const { min, median, max } = spread(r.ok);
  const drops = spread(r.drops);
  bad += r.stalls + r.failures;
  console.log(
    `${direction.padEnd(20)} ${String(runs).padStart(4)}  ${String(r.ok.length).padStart(9)}  ${String(r.stalls).padStart(7)}  ${String(r.failures).padStart(6)}  ${min} / ${median} / ${max}  ${drops.min} / ${drops.median} / ${drops.max}`,
  );
}
process.exit(bad ? 1 : 0);
