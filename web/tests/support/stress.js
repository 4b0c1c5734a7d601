// Transfers run back to back, native ↔ Chromium and native ↔ native, each one checked end to end:
// the stress test runs a few dozen of each, `stress-transfer.js` hundreds. A run that makes no
// progress for `stallMs` is a stall: both sides' state is captured (the page's channels and
// `getStats()`, the native side's log) before the run is ended, so a stall explains itself.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { launchBrowser } from './browser.js';
import { startSignalingServer } from './processes.js';
import { randomFile, runPeerClient, sha256File } from './transfer.js';

const MiB = 1024 * 1024;

/** Directions a stress run can take. */
export const DIRECTIONS = ['native-to-chromium', 'chromium-to-native', 'native-to-native'];

/**
 * Records every RTCPeerConnection and data channel a page makes, and what each channel received,
 * so a stalled run can say where the bytes stopped. Runs in the page before its own scripts.
 */
function instrumentPage() {
  const connections = [];
  const watch = (channel) => {
    const seen = { label: channel.label, channel, bytes: 0, messages: 0, lastAt: 0 };
    channel.addEventListener('message', ({ data }) => {
      seen.bytes += typeof data === 'string' ? data.length : (data.byteLength ?? data.size ?? 0);
      seen.messages += 1;
      seen.lastAt = performance.now();
    });
    return seen;
  };
  const Native = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Native {
    constructor(...args) {
      super(...args);
      this.__channels = [];
      connections.push(this);
      this.addEventListener('datachannel', ({ channel }) => this.__channels.push(watch(channel)));
    }

    createDataChannel(...args) {
      const channel = super.createDataChannel(...args);
      this.__channels.push(watch(channel));
      return channel;
    }
  };
  window.__stressConnections = connections;
}

/** What the page knows of its connections: states, channels, and the `getStats()` that matter. */
async function pageState(page) {
  return page
    .evaluate(async () => {
      const now = performance.now();
      const out = {
        transfer: document.body.dataset.transfer,
        status: document.getElementById('transfer-status')?.textContent,
        rate: document.getElementById('transfer-rate')?.textContent,
        error: document.getElementById('transfer-error')?.textContent,
        connections: [],
      };
      for (const pc of window.__stressConnections ?? []) {
        const stats = [];
        (await pc.getStats()).forEach((s) => {
          if (['data-channel', 'transport', 'peer-connection', 'local-candidate', 'remote-candidate'].includes(s.type)) stats.push(s);
          if (s.type === 'candidate-pair' && (s.nominated || s.state === 'succeeded')) stats.push(s);
        });
        out.connections.push({
          connectionState: pc.connectionState,
          iceConnectionState: pc.iceConnectionState,
          sctp: pc.sctp && { state: pc.sctp.state, maxMessageSize: pc.sctp.maxMessageSize },
          channels: pc.__channels.map((c) => ({
            label: c.label,
            readyState: c.channel.readyState,
            bufferedAmount: c.channel.bufferedAmount,
            bytesReceived: c.bytes,
            messagesReceived: c.messages,
            msSinceLastMessage: c.lastAt ? Math.round(now - c.lastAt) : null,
          })),
          stats,
        });
      }
      return out;
    })
    .catch((err) => ({ unavailable: err.message }));
}

/** Datagrams the kernel dropped because a UDP socket's receive buffer was full (all sockets). */
function udpReceiveBufferDrops() {
  try {
    const lines = fs.readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Udp:'));
    const names = lines[0].split(/\s+/);
    return Number(lines[1].split(/\s+/)[names.indexOf('RcvbufErrors')]);
  } catch {
    return NaN;
  }
}

/** The UDP sockets of the browser and the native programs, with their buffers (`ss -uamp`). */
function udpSockets() {
  try {
    const out = execFileSync('ss', ['-uampH'], { encoding: 'utf8', timeout: 5000 });
    return out
      .split('\n')
      .filter((line) => /chrom|peer-client|firefox/.test(line))
      .map((line) => line.replace(/\s+/g, ' '));
  } catch (err) {
    return [`ss failed: ${err.message}`];
  }
}

/** The end of a native program's log, without the lines every handshake prints. */
function logTail(child, lines = Number(process.env.STRESS_LOG_LINES ?? 150)) {
  return child
    .log()
    .split('\n')
    .filter((line) => !line.includes('Unsupported Extension'))
    .slice(-lines)
    .join('\n');
}

/** The lines of a native log that tell of SCTP retransmission trouble. */
function sctpTrouble(child) {
  return child.output.map((e) => e.line).filter((line) => /rtc_sctp|retransmission|acknowledged nothing/.test(line));
}

/** A file set like the one a user sends: one large file, a small one, an empty one. */
function makeFiles(dir, bytes) {
  fs.mkdirSync(dir, { recursive: true });
  return [randomFile(dir, 'big.bin', bytes), randomFile(dir, 'small.txt', 1000), randomFile(dir, 'empty', 0)];
}

function expectSame(files, dir) {
  for (const file of files) {
    const copy = path.join(dir, path.basename(file));
    if (!fs.existsSync(copy)) throw new Error(`${path.basename(file)} was not received`);
    if (sha256File(copy) !== sha256File(file)) throw new Error(`${path.basename(file)} differs from what was sent`);
  }
}

/** Resolves when `predicate()` holds; polls every 100 ms, bounded by `ms`. */
async function until(predicate, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await predicate()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Watches a run's progress (`progress()` returns a number that grows while bytes move, or `done`);
 * rejects with a stall once it stays put for `stallMs` before `finished` settles.
 */
function stallWatch(progress, stallMs) {
  let timer;
  let stopped = false;
  const stalled = new Promise((_, reject) => {
    let last = -1;
    let since = Date.now();
    const tick = async () => {
      if (stopped) return;
      const now = await progress().catch(() => last);
      if (now !== last) {
        last = now;
        since = Date.now();
      } else if (Date.now() - since > stallMs) {
        const err = new Error(`no progress for ${stallMs} ms (stuck at ${now})`);
        err.stall = true;
        reject(err);
        return;
      }
      timer = setTimeout(tick, 250);
    };
    tick();
  });
  stalled.catch(() => {});
  return {
    stalled,
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

/** Bytes the page shows as received or sent (its progress line), or -1 before it shows any. */
async function pageProgress(page) {
  return page.evaluate(() => {
    const channels = (window.__stressConnections ?? []).flatMap((pc) => pc.__channels);
    const received = channels.reduce((sum, c) => sum + c.bytes, 0);
    const sent = channels.reduce((sum, c) => sum + (c.channel.readyState === 'open' ? c.channel.bufferedAmount : 0), 0);
    return `${document.body.dataset.transfer}:${received}:${sent}:${document.getElementById('transfer-rate')?.textContent}`;
  });
}

/** Bytes under `dir` (files being received included), or -1 while it is empty. */
function bytesUnder(dir) {
  let total = -1;
  const walk = (at) => {
    for (const entry of fs.readdirSync(at, { withFileTypes: true })) {
      const full = path.join(at, entry.name);
      if (entry.isDirectory()) walk(full);
      else total = Math.max(total, 0) + (fs.statSync(full, { throwIfNoEntry: false })?.size ?? 0);
    }
  };
  try {
    walk(dir);
  } catch {
    // a file renamed while walking: counted next time
  }
  return total;
}

/**
 * A harness: one signaling server and one browser for many runs; each run makes its own page,
 * processes and files' copies.
 */
export class StressHarness {
  /**
   * @param {{dir: string, bytes?: number, stallMs?: number, runMs?: number}} options
   */
  static async start({ dir, bytes = 5 * MiB + 12345, stallMs = 20_000, runMs = 90_000, browser = true }) {
    const harness = new StressHarness();
    harness.dir = dir;
    harness.stallMs = stallMs;
    harness.runMs = runMs;
    harness.files = makeFiles(path.join(dir, 'src'), bytes);
    harness.server = await startSignalingServer();
    harness.browser = browser ? await launchBrowser() : null;
    harness.count = 0;
    return harness;
  }

  async close() {
    await this.browser?.close();
    await this.server.child.kill();
  }

  /**
   * One transfer in `direction`. Resolves `{ms}` when the files arrived verified and both sides
   * ended well; rejects with an error whose `stall` is true when the run stopped moving, and
   * whose `state` holds both sides' state then.
   */
  async run(direction) {
    this.count += 1;
    const out = path.join(this.dir, `out-${this.count}`);
    fs.mkdirSync(out);
    const code = `${(this.count % 900) + 1}-apple-tiger`;
    const started = Date.now();
    const dropsBefore = udpReceiveBufferDrops();
    const cleanup = [];
    this._notes = [];
    try {
      if (direction === 'native-to-chromium') await this._nativeToChromium(code, out, cleanup);
      else if (direction === 'chromium-to-native') await this._chromiumToNative(out, cleanup);
      else if (direction === 'native-to-native') await this._nativeToNative(code, out, cleanup);
      else throw new Error(`unknown direction ${direction}`);
      return { ms: Date.now() - started, udpDrops: udpReceiveBufferDrops() - dropsBefore, notes: this._notes };
    } catch (err) {
      err.udpDrops = udpReceiveBufferDrops() - dropsBefore;
      throw err;
    } finally {
      for (const step of cleanup.reverse()) await step().catch(() => {});
      fs.rmSync(out, { recursive: true, force: true });
    }
  }

  /** Runs `body` under a stall watch; on a stall or timeout, attaches `state()` to the error. */
  async _watched(progress, state, body) {
    const watch = stallWatch(progress, this.stallMs);
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(Object.assign(new Error(`the run took over ${this.runMs} ms`), { stall: true })), this.runMs);
    });
    try {
      await Promise.race([body(), watch.stalled, timeout]);
    } catch (err) {
      err.state = { ...(await state()), udpSockets: udpSockets() };
      throw err;
    } finally {
      watch.stop();
      clearTimeout(timer);
    }
  }

  /** Starts `peer-client ARGS...`; `cleanup` kills it and keeps what it logged about SCTP. */
  _native(label, args, cleanup) {
    const child = runPeerClient(label, args);
    cleanup.push(async () => {
      this._notes.push(...sctpTrouble(child));
      await child.kill();
    });
    return child;
  }

  /** Starts `peer-client send` of the harness's files under `code`; resolves once it waits. */
  async _sender(code, cleanup) {
    const sender = this._native('peer-client send', ['send', ...this.files, '--server', this.server.wsUrl, '--code', code, '--json'], cleanup);
    await sender.waitForLine('"event":"code"', { stream: 'stdout' });
    return sender;
  }

  /** Starts `peer-client receive CODE` into `out`. */
  _receiver(code, out, cleanup) {
    return this._native('peer-client receive', ['receive', code, '--server', this.server.wsUrl, '--out', out, '--yes'], cleanup);
  }

  /** Waits until the page's transfer ended; throws unless it ended well. */
  async _pageDone(page) {
    await until(async () => ['done', 'failed'].includes(await page.getAttribute('body', 'data-transfer')), this.runMs, 'for the page to finish');
    if ((await page.getAttribute('body', 'data-transfer')) !== 'done') {
      throw new Error(`the page failed: ${await page.textContent('#transfer-error')}`);
    }
  }

  async _newPage(cleanup) {
    const page = await this.browser.newPage();
    cleanup.push(() => page.close());
    await page.addInitScript(instrumentPage);
    const errors = [];
    page.on('pageerror', (err) => errors.push(err.message));
    return { page, errors };
  }

  async _nativeToChromium(code, out, cleanup) {
    const sender = await this._sender(code, cleanup);
    const { page, errors } = await this._newPage(cleanup);
    const saved = [];
    page.on('download', (download) => {
      saved.push(download.saveAs(path.join(out, download.suggestedFilename())));
    });
    const state = async () => ({ page: await pageState(page), sender: logTail(sender) });
    await this._watched(() => pageProgress(page), state, async () => {
      await page.goto(`${this.server.httpUrl}#code=${code}`);
      await page.waitForSelector('#offer', { state: 'visible' });
      await page.click('#accept-download');
      await this._pageDone(page);
      await Promise.all(saved);
      const status = await sender.exited;
      if (status.code !== 0) throw new Error(`the sender exited with ${JSON.stringify(status)}`);
    });
    expectSame(this.files, out);
    if (errors.length) throw new Error(`page errors: ${errors.join('; ')}`);
  }

  async _chromiumToNative(out, cleanup) {
    const { page, errors } = await this._newPage(cleanup);
    let receiver = null;
    const state = async () => ({ page: await pageState(page), receiver: receiver && logTail(receiver) });
    await this._watched(
      async () => `${await pageProgress(page)}:${bytesUnder(out)}`,
      state,
      async () => {
        await page.goto(`${this.server.httpUrl}transfer.html`);
        await page.setInputFiles('#send-files', this.files);
        await page.click('#send-start');
        await page.waitForFunction(() => document.body.dataset.code);
        const code = await page.getAttribute('body', 'data-code');
        receiver = this._receiver(code, out, cleanup);
        const status = await receiver.exited;
        if (status.code !== 0) throw new Error(`the receiver exited with ${JSON.stringify(status)}`);
        await this._pageDone(page);
      },
    );
    expectSame(this.files, out);
    if (errors.length) throw new Error(`page errors: ${errors.join('; ')}`);
  }

  async _nativeToNative(code, out, cleanup) {
    const sender = await this._sender(code, cleanup);
    const receiver = this._receiver(code, out, cleanup);
    const state = async () => ({
      sender: logTail(sender),
      receiver: logTail(receiver),
    });
    const progress = async () => `${bytesUnder(out)}:${receiver.exitStatus ? 'exited' : ''}`;
    await this._watched(progress, state, async () => {
      const [sent, received] = await Promise.all([sender.exited, receiver.exited]);
      if (sent.code !== 0) throw new Error(`the sender exited with ${JSON.stringify(sent)}`);
      if (received.code !== 0) throw new Error(`the receiver exited with ${JSON.stringify(received)}`);
    });
    expectSame(this.files, out);
  }
}

/** min / median / max of a list of numbers. */
export function spread(values) {
  if (values.length === 0) return { min: NaN, median: NaN, max: NaN };
  const sorted = [...values].sort((a, b) => a - b);
  return { min: sorted[0], median: sorted[Math.floor(sorted.length / 2)], max: sorted[sorted.length - 1] };
}
