// Two browser pages in one room chat both ways over a data channel: two Chromium pages, and a
// Firefox page with a Chromium page, whichever joins first (and so answers).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { launchBrowser, openChat, sendMessage, waitForConnected, waitForLink, waitForMessage } from './support/browser.js';
import { ENGINES } from './support/engines.js';
import { startSignalingServer } from './support/processes.js';

test('two browser pages chat both ways', { timeout: 90_000 }, async (t) => {
  const server = await startSignalingServer();
  t.after(() => server.child.kill());
  const browser = await launchBrowser();
  t.after(() => browser.close());

  const ada = await browser.newPage();
  const grace = await browser.newPage();
  const adaId = await openChat(ada, server.httpUrl, 'b2b', 'Ada');
  const graceId = await openChat(grace, server.httpUrl, 'b2b', 'Grace');
  assert.notEqual(adaId, graceId);

  // Each page lists the other with a working link; on loopback it is direct, not relayed.
  assert.equal(await waitForLink(ada, { peerId: graceId }), graceId);
  assert.equal(await waitForLink(grace, { peerId: adaId }), adaId);
  assert.equal(await ada.getAttribute(`#peer-list [data-peer-id="${graceId}"] .link-state`, 'data-state'), 'direct');
  await waitForConnected(ada, 1);
  await waitForConnected(grace, 1);

  await sendMessage(ada, 'hello from Ada');
  assert.deepEqual(await waitForMessage(grace, 'hello from Ada'), { from: 'Ada', text: 'hello from Ada' });
  await sendMessage(grace, 'hi Ada, Grace here ✓');
  assert.deepEqual(await waitForMessage(ada, 'hi Ada, Grace here ✓'), { from: 'Grace', text: 'hi Ada, Grace here ✓' });

  // The sender's name learnt from its messages is shown in the peer list.
  await ada.waitForFunction((id) => document.querySelector(`#peer-list [data-peer-id="${id}"] .peer-name`).textContent === 'Grace', graceId);

  // At phone width the page is one column (peers above the conversation) and nothing scrolls sideways.
  await ada.setViewportSize({ width: 390, height: 800 });
  const layout = await ada.evaluate(() => {
    const peers = document.querySelector('.peers').getBoundingClientRect();
    const talk = document.querySelector('.conversation').getBoundingClientRect();
    const send = document.querySelector('#compose button').getBoundingClientRect();
    return {
      stacked: peers.bottom <= talk.top,
      overflow: document.documentElement.scrollWidth - window.innerWidth,
      sendVisible: send.right <= window.innerWidth && send.width > 0,
    };
  });
  assert.deepEqual(layout, { stacked: true, overflow: 0, sendVisible: true });
  await sendMessage(ada, 'from a phone-sized window');
  await waitForMessage(grace, 'from a phone-sized window');
  assert.deepEqual(browser.pageErrors, []);
});

for (const [first, second] of [ENGINES, [...ENGINES].reverse()]) {
  test(`a ${first.name} page and a ${second.name} page that joins later chat both ways`, { timeout: 90_000 }, async (t) => {
    const server = await startSignalingServer();
    t.after(() => server.child.kill());
    const firstBrowser = await first.launch();
    t.after(() => firstBrowser.close());
    const secondBrowser = await second.launch();
    t.after(() => secondBrowser.close());

    const ada = await firstBrowser.newPage();
    const adaId = await openChat(ada, server.httpUrl, 'mixed', 'Ada');
    const grace = await secondBrowser.newPage();
    const graceId = await openChat(grace, server.httpUrl, 'mixed', 'Grace');
    assert.equal(await waitForLink(ada, { peerId: graceId }), graceId);
    assert.equal(await waitForLink(grace, { peerId: adaId }), adaId);
    await waitForConnected(ada, 1);
    await waitForConnected(grace, 1);
    await sendMessage(ada, `from ${first.name}`);
    assert.deepEqual(await waitForMessage(grace, `from ${first.name}`), { from: 'Ada', text: `from ${first.name}` });
    await sendMessage(grace, `from ${second.name} ✓`);
    assert.deepEqual(await waitForMessage(ada, `from ${second.name} ✓`), { from: 'Grace', text: `from ${second.name} ✓` });
    assert.deepEqual(firstBrowser.pageErrors, []);
    assert.deepEqual(secondBrowser.pageErrors, []);
  });
}
