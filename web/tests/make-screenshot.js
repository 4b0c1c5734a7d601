// Writes docs/screenshot.png: the chat page of one browser with another browser and a
// `peer-client chat` connected. Run after `cargo build --bins`: node web/tests/make-screenshot.js

import path from 'node:path';
import { launchBrowser, openChat, sendMessage, waitForConnected, waitForMessage } from './support/browser.js';
import { REPO_ROOT, startPeerClient, startSignalingServer } from './support/processes.js';

const OUT = path.join(REPO_ROOT, 'docs', 'screenshot.png');
const ROOM = 'design-review';

const server = await startSignalingServer();
const browser = await launchBrowser({ viewport: { width: 1000, height: 620 } });
let cli = null;
try {
  const ada = await browser.newPage();
  const grace = await browser.newPage();
  await openChat(ada, server.httpUrl, ROOM, 'Ada');
  await openChat(grace, server.httpUrl, ROOM, 'Grace');
  cli = startPeerClient('chat', { wsUrl: server.wsUrl, room: ROOM, args: ['--name', 'Linus'] });
  await waitForConnected(ada, 2);
  await waitForConnected(grace, 2);
  await cli.waitForLine(/./, { stream: 'stdout' }).catch(() => {});

  await sendMessage(grace, 'Hi all! Is the new build up?');
  await waitForMessage(ada, 'Hi all! Is the new build up?');
  await sendMessage(ada, 'Yes, and this chat goes browser to browser, no server in the middle.');
  await waitForMessage(grace, 'Yes, and this chat goes browser to browser, no server in the middle.');
  cli.writeLine('Same from my terminal: peer-client chat talks to both of you directly.');
  await waitForMessage(ada, 'Same from my terminal: peer-client chat talks to both of you directly.');
  await sendMessage(grace, '<b>HTML</b> from a peer is shown as text.');
  await waitForMessage(ada, '<b>HTML</b> from a peer is shown as text.');

  await ada.screenshot({ path: OUT });
  console.log(`wrote ${OUT}`);
} finally {
  await cli?.kill();
  await browser.close();
  await server.child.kill();
}
