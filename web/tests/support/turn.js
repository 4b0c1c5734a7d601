// A coturn TURN server on loopback, for tests of relayed links.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Child, freePort } from './processes.js';

const TURNSERVER = process.env.TURNSERVER_PATH ?? '/usr/bin/turnserver';

/**
 * Starts `turnserver` on 127.0.0.1 with one long-term user, relaying on loopback only.
 * @returns {Promise<{iceServers: RTCIceServer[], stop: () => Promise<void>}>}
 */
export async function startTurnServer() {
  if (!fs.existsSync(TURNSERVER)) {
    throw new Error(`${TURNSERVER} not found: install Debian's coturn package or set TURNSERVER_PATH`);
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'web-tests-turn-'));
  const port = await freePort();
  const minPort = 50_000 + Math.floor(Math.random() * 10_000);
  const child = new Child('turnserver', TURNSERVER, [
    '-n',
    '--listening-ip=127.0.0.1',
    '--relay-ip=127.0.0.1',
    `--listening-port=${port}`,
    '--lt-cred-mech',
    '--user=webtest:webtest-secret',
    '--realm=webtest.invalid',
    '--no-tls',
    '--no-dtls',
    '--no-tcp',
    '--allow-loopback-peers',
    '--no-cli',
    `--min-port=${minPort}`,
    `--max-port=${minPort + 100}`,
    `--userdb=${path.join(dir, 'turndb')}`,
    `--pidfile=${path.join(dir, 'turnserver.pid')}`,
    '--log-file=stdout',
    '--simple-log',
  ]);
  const removeDir = () => fs.rmSync(dir, { recursive: true, force: true });
  process.once('exit', removeDir);
  const stop = async () => {
    await child.kill();
    removeDir();
    process.off('exit', removeDir);
  };
  try {
    await child.waitForLine('Total General servers');
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    iceServers: [{ urls: [`turn:127.0.0.1:${port}?transport=udp`], username: 'webtest', credential: 'webtest-secret' }],
    stop,
  };
}
