// What a link does when its connection fails is one policy for both clients: the table "When a
// link fails" in docs/protocol.md. peer-client's negotiator is checked against it in Rust; here the
// page's own module, loaded by Chromium from the server, is checked against every row.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { launchBrowser } from './support/browser.js';
import { REPO_ROOT, startSignalingServer } from './support/processes.js';

/** Every situation of the table, with `*` expanded into both values. */
function failureTable() {
  const doc = fs.readFileSync(path.join(REPO_ROOT, 'docs/protocol.md'), 'utf8');
  const section = doc.split('### When a link fails')[1];
  assert.ok(section, 'docs/protocol.md has the failure table');
  const lines = section.split('\n');
  const start = lines.findIndex((line) => line.startsWith('|'));
  const table = [];
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith('|')) break;
    const [connected, first, polite, left, failed, action] = line.split('|').slice(1, -1).map((c) => c.trim());
    const values = (cell) => ({ yes: [true], no: [false], '*': [true, false] })[cell];
    for (const connectedBefore of values(connected))
      for (const firstOffer of values(first))
        for (const isPolite of values(polite))
          for (const attemptsLeft of values(left)) {
            table.push({
              situation: { connectedBefore, firstOffer, polite: isPolite, attemptsLeft, failed },
              action,
            });
          }
  }
  return table;
}

test('the page handles a failed link as docs/protocol.md says, row by row', { timeout: 60_000 }, async (t) => {
  const table = failureTable();
  assert.equal(table.length, 32, 'every situation once');
  const server = await startSignalingServer();
  t.after(() => server.child.kill());
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const page = await browser.newPage();
  await page.goto(server.httpUrl);

  const actions = await page.evaluate(async (situations) => {
    const { onFailure } = await import('/js/negotiation.js');
    return situations.map((situation) => onFailure(situation));
  }, table.map((row) => row.situation));
  table.forEach((row, i) => assert.equal(actions[i], row.action, JSON.stringify(row.situation)));
});
