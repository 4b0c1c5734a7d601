// Many transfers in a row, each direction: native → Chromium, Chromium → native, native → native.
// Every one must complete with verified files; a run that stops moving fails the test with both
// sides' state. For hundreds of runs by hand: node web/tests/stress-transfer.js --runs 300.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { StressHarness, spread } from './support/stress.js';
import { tempDir } from './support/transfer.js';

/** Runs per direction (STRESS_RUNS overrides). */
const RUNS = Number(process.env.STRESS_RUNS ?? 30);
const MiB = 1024 * 1024;

for (const direction of ['native-to-chromium', 'chromium-to-native', 'native-to-native']) {
  test(`${RUNS} transfers ${direction} in a row, every one verified`, { timeout: RUNS * 30_000 }, async (t) => {
    const harness = await StressHarness.start({
      dir: tempDir(t),
      bytes: 3 * MiB + 12345,
      browser: direction.includes('chromium'),
    });
    t.after(() => harness.close());
    const times = [];
    for (let i = 1; i <= RUNS; i += 1) {
      try {
        times.push((await harness.run(direction)).ms);
      } catch (err) {
        assert.fail(`run ${i} of ${RUNS}: ${err.message}\n${JSON.stringify(err.state ?? {}, null, 2)}`);
      }
    }
    const { min, median, max } = spread(times);
    t.diagnostic(`${RUNS} runs ${direction}: ${min} / ${median} / ${max} ms per run (min / median / max)`);
  });
}
