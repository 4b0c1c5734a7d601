// The memory a browser uses, read from /proc: its main process and everything below it, and the
// part of that which runs pages (Chromium's renderers, Firefox's content processes).

import fs from 'node:fs';

function readProc(pid, file) {
  try {
    return fs.readFileSync(`/proc/${pid}/${file}`, 'utf8');
  } catch {
    return null; // the process ended meanwhile
  }
}

/** Every process as {pid, ppid, cmdline}. */
function processes() {
  const all = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = readProc(name, 'stat');
    const cmdline = readProc(name, 'cmdline');
    if (stat === null || cmdline === null) continue;
    // The command name (field 2) may hold spaces; the parent pid follows its closing parenthesis.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    all.push({ pid: Number(name), ppid, cmdline: cmdline.split('\0') });
  }
  return all;
}

function rssBytes(pid) {
  const status = readProc(pid, 'status');
  const match = status && /^VmRSS:\s+(\d+) kB/m.exec(status);
  return match ? Number(match[1]) * 1024 : 0;
}

/**
 * Whether a process runs web pages rather than the browser itself, its GPU, network or sockets:
 * Chromium's renderers, Firefox's content processes for web pages. (Chromium rewrites its
 * children's command lines into one string, so the words are looked for in the joined line.)
 */
function runsPages(cmdline) {
  return /(^| )(--type=renderer|-isForBrowser)( |$)/.test(cmdline.join(' '));
}

/** The pid of Chromium's main process for the profile in `userDataDir`, or null. */
export function chromiumPid(userDataDir) {
  const main = processes().find(
    (p) => p.cmdline.includes(`--user-data-dir=${userDataDir}`) && !p.cmdline.some((arg) => arg.startsWith('--type=')),
  );
  return main?.pid ?? null;
}

/**
 * Resident memory of the browser whose main process is `pid`: `total` over it and all its
 * descendants, `pages` over those that run pages, and each process's own figure by pid.
 * @param {number} pid
 * @returns {{total: number, pages: number, processes: Map<number, {rss: number, kind: string}>}}
 */
export function browserMemory(pid) {
  const all = processes();
  const tree = new Set([pid]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const p of all) {
      if (!tree.has(p.pid) && tree.has(p.ppid)) {
        tree.add(p.pid);
        grew = true;
      }
    }
  }
  let total = 0;
  let pages = 0;
  const each = new Map();
  for (const p of all) {
    if (!tree.has(p.pid)) continue;
    const rss = rssBytes(p.pid);
    const kind = p.pid === pid ? 'main' : runsPages(p.cmdline) ? 'pages' : 'other';
    total += rss;
    if (kind === 'pages') pages += rss;
    each.set(p.pid, { rss, kind });
  }
  return { total, pages, processes: each };
}

/**
 * Samples {@link browserMemory} every `everyMs` until stopped; `stop()` returns the peaks of the
 * totals and the process that grew most above its first sample (`{kind, growth}`).
 */
export function sampleMemory(pid, everyMs = 250) {
  const peak = { total: 0, pages: 0 };
  const first = new Map();
  const highest = new Map();
  const sample = () => {
    const now = browserMemory(pid);
    peak.total = Math.max(peak.total, now.total);
    peak.pages = Math.max(peak.pages, now.pages);
    for (const [p, { rss, kind }] of now.processes) {
      if (!first.has(p)) first.set(p, rss);
      highest.set(p, { kind, rss: Math.max(rss, highest.get(p)?.rss ?? 0) });
    }
  };
  sample();
  const timer = setInterval(sample, everyMs);
  return {
    stop() {
      clearInterval(timer);
      sample();
      let grower = { kind: 'none', growth: 0 };
      for (const [p, { kind, rss }] of highest) {
        if (rss - first.get(p) > grower.growth) grower = { kind, growth: rss - first.get(p) };
      }
      return { ...peak, grower };
    },
  };
}
