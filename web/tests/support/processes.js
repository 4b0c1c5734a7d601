// Starts the real signaling-server and peer-client binaries for the browser tests.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Root of the repository. */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
/** The web client served from disk, so the tests see the files as they are now. */
export const WEB_DIR = path.join(REPO_ROOT, 'web');

const TARGET_DIR = process.env.CARGO_TARGET_DIR
  ? path.resolve(REPO_ROOT, process.env.CARGO_TARGET_DIR)
  : path.join(REPO_ROOT, 'target');

/** Longest a process may take to start listening or to print an awaited line. */
const START_TIMEOUT_MS = 15_000;
/** Lines of output kept per process, for error messages. */
const MAX_LOG_LINES = 5000;

function binary(name, envVar) {
  const file = process.env[envVar] ?? path.join(TARGET_DIR, 'debug', name);
  if (!fs.existsSync(file)) {
    throw new Error(`${file} does not exist: build it first with \`cargo build --bins\` (or set ${envVar})`);
  }
  return file;
}

/** Asks the kernel for a free loopback port. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Children still running; killed when the test process exits, whatever the reason. */
const running = new Set();
process.on('exit', () => {
  for (const child of running) child.proc.kill('SIGKILL');
});

/**
 * A child process whose output is collected line by line.
 */
export class Child {
  /**
   * @param {string} label Name used in logs and errors.
   * @param {string} file Program to run.
   * @param {string[]} args
   * @param {Record<string, string|undefined>} [env] Added to this process's environment; `undefined` removes a variable.
   */
  constructor(label, file, args, env = {}) {
    this.label = label;
    /** @type {{stream: string, line: string}[]} every line printed so far (bounded) */
    this.output = [];
    /** Lines dropped from the front of `output` to keep it bounded. */
    this._dropped = 0;
    this._waiters = new Set();
    this.exitStatus = null;
    const fullEnv = { ...process.env, NO_COLOR: '1', ...env };
    for (const [key, value] of Object.entries(fullEnv)) if (value === undefined) delete fullEnv[key];
    this.proc = spawn(file, args, {
      cwd: REPO_ROOT,
      env: fullEnv,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    running.add(this);
    this.exited = new Promise((resolve) => {
      this.proc.on('exit', (code, signal) => {
        running.delete(this);
        this.exitStatus = { code, signal };
        resolve(this.exitStatus);
        for (const waiter of [...this._waiters]) waiter.onExit();
      });
    });
    this.proc.on('error', (err) => this._push('stderr', `spawn failed: ${err.message}`));
    this.proc.stdin.on('error', () => {}); // writing to a process that died is reported by its exit
    this._collect(this.proc.stdout, 'stdout');
    this._collect(this.proc.stderr, 'stderr');
  }

  /** How many lines have been printed so far; pass it as `after` to wait only for newer lines. */
  get cursor() {
    return this._dropped + this.output.length;
  }

  _collect(stream, name) {
    let rest = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk) => {
      rest += chunk;
      const parts = rest.split('\n');
      rest = parts.pop();
      for (const line of parts) this._push(name, line);
    });
    stream.on('end', () => {
      if (rest) this._push(name, rest);
    });
  }

  _push(stream, line) {
    const entry = { stream, line: line.replace(/\x1b\[[0-9;]*m/g, '') };
    this.output.push(entry);
    if (this.output.length > MAX_LOG_LINES) {
      this.output.shift();
      this._dropped += 1;
    }
    for (const waiter of [...this._waiters]) waiter.onLine(entry);
  }

  /**
   * Waits for a line of output that matches `pattern`.
   * @param {RegExp|string} pattern
   * @param {{stream?: 'stdout'|'stderr'|'any', timeoutMs?: number, after?: number}} [options]
   *   `after`: a `cursor` taken earlier; only lines printed since then count.
   * @returns {Promise<string>} the line
   */
  waitForLine(pattern, { stream = 'any', timeoutMs = START_TIMEOUT_MS, after = 0 } = {}) {
    const matches = (entry) =>
      (stream === 'any' || entry.stream === stream) &&
      (typeof pattern === 'string' ? entry.line.includes(pattern) : pattern.test(entry.line));
    const earlier = this.output.slice(Math.max(0, after - this._dropped)).find(matches);
    if (earlier) return Promise.resolve(earlier.line);
    return new Promise((resolve, reject) => {
      const finish = (err, line) => {
        clearTimeout(timer);
        this._waiters.delete(waiter);
        if (err) reject(err);
        else resolve(line);
      };
      const waiter = {
        onLine: (entry) => {
          if (matches(entry)) finish(null, entry.line);
        },
        onExit: () =>
          finish(new Error(`${this.label} exited (${JSON.stringify(this.exitStatus)}) before printing ${pattern}\n${this.log()}`)),
      };
      const timer = setTimeout(
        () => finish(new Error(`${this.label} printed no line matching ${pattern} within ${timeoutMs} ms\n${this.log()}`)),
        timeoutMs,
      );
      if (this.exitStatus) waiter.onExit();
      else this._waiters.add(waiter);
    });
  }

  /** Writes one line to the process's standard input. */
  writeLine(text) {
    this.proc.stdin.write(`${text}\n`);
  }

  /** The collected output, for failure messages. */
  log() {
    return this.output.map((e) => `  [${this.label} ${e.stream}] ${e.line}`).join('\n');
  }

  /** Kills the process (SIGKILL unless told otherwise) and waits until it is gone. */
  async kill(signal = 'SIGKILL') {
    if (!this.exitStatus) this.proc.kill(signal);
    await Promise.race([this.exited, new Promise((r) => setTimeout(r, 5000))]);
  }
}

async function waitUntilServing(url, child) {
  const deadline = Date.now() + START_TIMEOUT_MS;
  let lastError = null;
  while (Date.now() < deadline) {
    if (child.exitStatus) break;
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(1000) });
      if (response.ok) return;
      lastError = new Error(`HTTP ${response.status}`);
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`signaling-server did not serve ${url}: ${lastError?.message ?? 'exited'}\n${child.log()}`);
}

/**
 * Starts `signaling-server --listen 127.0.0.1:PORT --web-dir web`. Without `port` it listens on
 * port 0 and reads the port it got from the `listening on ADDR` line it prints on stdout.
 * @param {{port?: number, args?: string[], embedded?: boolean}} [options]
 *   `embedded`: serve the copy of web/ built into the binary instead of the files on disk.
 * @returns {Promise<{child: Child, httpUrl: string, wsUrl: string, port: number}>}
 */
export async function startSignalingServer({ port = 0, args: extraArgs = [], embedded = false } = {}) {
  const file = binary('signaling-server', 'SIGNALING_SERVER_BIN');
  const webArgs = embedded ? [] : ['--web-dir', WEB_DIR];
  const child = new Child('signaling-server', file, ['--listen', `127.0.0.1:${port}`, ...webArgs, ...extraArgs], {
    RUST_LOG: process.env.RUST_LOG ?? 'info',
    // Only the command line decides where the page comes from.
    SIGNALING_WEB_DIR: undefined,
  });
  try {
    const line = await child.waitForLine(/^listening on 127\.0\.0\.1:\d+$/, { stream: 'stdout' });
    const bound = Number(line.slice(line.lastIndexOf(':') + 1));
    if (port !== 0 && bound !== port) throw new Error(`asked for port ${port}, got ${bound}`);
    const httpUrl = `http://127.0.0.1:${bound}/`;
    await waitUntilServing(httpUrl, child);
    return { child, httpUrl, wsUrl: `ws://127.0.0.1:${bound}/ws`, port: bound };
  } catch (err) {
    await child.kill();
    throw err;
  }
}

/**
 * Starts `peer-client <mode> --server URL --room ROOM [args...]`.
 * @param {'chat'|'echo'} mode
 */
export function startPeerClient(mode, { wsUrl, room, args = [] }) {
  const file = binary('peer-client', 'PEER_CLIENT_BIN');
  return new Child(`peer-client ${mode}`, file, [mode, '--server', wsUrl, '--room', room, ...args], {
    RUST_LOG: process.env.RUST_LOG ?? 'info',
  });
}
