// A peer whose DTLS handshake failed starts over on a new connection and sends an offer with a new
// DTLS fingerprint (peer-client does this, see docs/webrtc-engine.md). The browser's link, which
// never connected, must start over on a fresh RTCPeerConnection and connect to the new one.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ENGINES } from './support/engines.js';
import { startSignalingServer } from './support/processes.js';

for (const engine of ENGINES) {
  test(`${engine.name}: an offer with a new DTLS fingerprint gets a fresh connection`, { timeout: 60_000 }, async (t) => {
    const server = await startSignalingServer();
    t.after(() => server.child.kill());
    const browser = await engine.launch();
    t.after(() => browser.close());
    const page = await browser.newPage();
    await page.goto(server.httpUrl);

    const result = await page.evaluate(async () => {
      const { PeerLink } = await import('/js/peer.js');
      let deliver = () => {};
      const answers = [];
      const link = new PeerLink({
        localId: 'b',
        remoteId: 'a',
        iceServers: [],
        initiator: false,
        sendSignal: (data) => {
          if (data.description?.type === 'answer') answers.push(data.description);
          deliver(data);
        },
      });
      const opened = new Promise((resolve) => {
        link.addEventListener('channel-open', (e) => resolve(e.detail.label), { once: true });
      });
      const message = new Promise((resolve) => {
        link.addEventListener('message', (e) => resolve(e.detail.data), { once: true });
      });
      const until = async (what, check) => {
        for (let i = 0; i < 200 && !check(); i += 1) await new Promise((r) => setTimeout(r, 50));
        if (!check()) throw new Error(`no ${what}`);
      };

      // The remote's first connection: its offer is answered, but nothing else reaches it, as if
      // its DTLS handshake failed.
      const first = new RTCPeerConnection();
      first.createDataChannel('chat');
      await first.setLocalDescription();
      link.handleSignal({ description: first.localDescription.toJSON() });
      await until('first answer', () => answers.length === 1);
      const firstPc = link.pc;

      // Its second connection, with a new certificate, is wired to the link both ways.
      const second = new RTCPeerConnection();
      const chat = second.createDataChannel('chat');
      second.onicecandidate = ({ candidate }) => link.handleSignal({ candidate: candidate ? candidate.toJSON() : null });
      deliver = (data) => {
        if (data.description?.type === 'answer') second.setRemoteDescription(data.description);
        else if (data.candidate) second.addIceCandidate(data.candidate).catch(() => {});
      };
      await second.setLocalDescription();
      link.handleSignal({ description: second.localDescription.toJSON() });
      const label = await Promise.race([opened, new Promise((r) => setTimeout(() => r('timeout'), 15_000))]);
      await until('open chat on the remote side', () => chat.readyState === 'open');
      chat.send('hello');
      const text = await Promise.race([message, new Promise((r) => setTimeout(() => r('timeout'), 10_000))]);
      const fingerprint = (d) => /^a=fingerprint:(.+)$/m.exec(d.sdp)[1];
      return {
        label,
        text,
        freshConnection: link.pc !== firstPc,
        firstClosed: firstPc.connectionState === 'closed',
        newLocalFingerprint: fingerprint(answers[0]) !== fingerprint(answers[1]),
        state: link.state,
      };
    });

    assert.equal(result.label, 'chat');
    assert.equal(result.text, 'hello');
    assert.ok(result.freshConnection, 'the link made a new RTCPeerConnection');
    assert.ok(result.firstClosed, 'the old connection is closed');
    assert.ok(result.newLocalFingerprint, 'the answer carries the new connection\'s certificate');
  });
}
