// Once the data channels are open the signaling server can go away: the chat goes on and the page says so.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ENGINES } from './support/engines.js';
import { openChat, sendMessage, waitForConnected, waitForLink, waitForMessage } from './support/browser.js';
import { startSignalingServer } from './support/processes.js';

for (const engine of ENGINES) {
for (const signal of ['SIGKILL', 'SIGTERM']) {
  // SIGKILL: the sockets just break. SIGTERM: the server says `shutdown` first and exits.
  test(`${engine.name}: chat goes on after the signaling server is stopped with ${signal}, with a notice`, { timeout: 90_000 }, (t) =>
    serverGoesAway(t, signal),
  );
}

async function serverGoesAway(t, signal) {
  const server = await startSignalingServer();
  t.after(() => server.child.kill());
  const browser = await engine.launch();
  t.after(() => browser.close());

  const ada = await browser.newPage();
  const grace = await browser.newPage();
  const adaId = await openChat(ada, server.httpUrl, 'gone', 'Ada');
  const graceId = await openChat(grace, server.httpUrl, 'gone', 'Grace');
  await waitForLink(ada, { peerId: graceId });
  await waitForLink(grace, { peerId: adaId });
  await waitForConnected(ada, 1);
  await waitForConnected(grace, 1);
  assert.equal(await ada.isVisible('#server-notice'), false);

  await server.child.kill(signal);
  assert.notEqual(server.child.exitStatus, null, 'the server exited');

  for (const page of [ada, grace]) {
    await page.waitForSelector('#server-notice', { state: 'visible' });
    const notice = await page.textContent('#server-notice');
    assert.match(notice, /signaling server is unreachable/i);
    assert.match(notice, /chat goes on directly with 1 connected peer/i);
    assert.equal(await page.getAttribute('#signaling-status', 'data-state'), 'reconnecting');
  }

  await sendMessage(ada, 'still here without the server');
  assert.equal((await waitForMessage(grace, 'still here without the server')).from, 'Ada');
  await sendMessage(grace, 'me too');
  assert.equal((await waitForMessage(ada, 'me too')).from, 'Grace');

  // The link itself is unaffected.
  assert.equal(await ada.getAttribute(`#peer-list [data-peer-id="${graceId}"]`, 'data-state'), 'direct');
  assert.deepEqual(browser.pageErrors, []);
}
}
