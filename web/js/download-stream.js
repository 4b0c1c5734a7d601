/**
 * Streamed downloads: a received file goes to the browser's downloads as it arrives, through the
 * service worker `download-worker.js`, so the page holds a few MiB of it whatever its size. The
 * page hands the worker a stream (transferred, so backpressure reaches back to the page) and opens
 * the worker's download URL in a hidden frame; the browser saves the response as an attachment.
 *
 * Needs a secure context (https, or http on localhost), service workers and transferable streams:
 * see {@link canStreamDownloads}.
 *
 * @module download-stream
 */

import { TransferError } from './transfer-error.js';

/** The worker's script; its scope is the whole origin, which holds the download URLs. */
const WORKER_URL = '/download-worker.js';
/** Path prefix of the worker's download URLs. */
const DOWNLOAD_PREFIX = '/download/';
/** Bytes the page queues ahead of the browser's download before a write waits. */
const QUEUE_BYTES = 8 * 1024 * 1024;
/** Longest wait for the worker to take a stream and for the browser to fetch it. */
const START_TIMEOUT_MS = 15_000;
/** Longest a write waits for the browser to take queued data. */
const STALL_TIMEOUT_MS = 60_000;
/**
 * How often the page messages the worker while a download streams: Firefox stops a worker that got
 * no event from a page for 30 s, even while its response is being read (and then ends the download
 * as if it were complete), and messages on a MessagePort do not count.
 */
const KEEPALIVE_MS = 5_000;

/** @type {Promise<ServiceWorkerRegistration>|null} */
let registered = null;
/** Downloads streaming now; the keepalive runs while there are any. */
let streaming = 0;
let keepalive = null;

/** Whether this browser can stream downloads (else files are held in memory until verified). */
export function canStreamDownloads() {
  if (!window.isSecureContext || !('serviceWorker' in navigator) || typeof ReadableStream !== 'function') return false;
  try {
    const stream = new ReadableStream();
    new MessageChannel().port1.postMessage(stream, [stream]);
    return true;
  } catch {
    return false;
  }
}

/** Resolves once `worker` is activated; fails if it is discarded or takes too long. */
function activated(worker) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('it did not start in time')), START_TIMEOUT_MS);
    const check = () => {
      if (worker.state === 'activated') resolve();
      else if (worker.state === 'redundant') reject(new Error('it failed to install'));
      else return;
      clearTimeout(timer);
      worker.removeEventListener('statechange', check);
    };
    worker.addEventListener('statechange', check);
    check();
  });
}

/**
 * Registers the download worker (once per page; its scope is the download URLs alone, so it sees
 * no other request) and resolves once it is active. A refusal (site data blocked, say) rejects,
 * and the next call tries again.
 * @returns {Promise<ServiceWorkerRegistration>}
 */
export function downloadWorker() {
  registered ??= (async () => {
    const registration = await navigator.serviceWorker.register(WORKER_URL, { scope: DOWNLOAD_PREFIX });
    const worker = registration.installing ?? registration.waiting ?? registration.active;
    if (worker) await activated(worker);
    return registration;
  })().catch((err) => {
    registered = null;
    throw new TransferError(`this browser refused the download worker (${err.message})`, { kind: 'download' });
  });
  return registered;
}

function startKeepalive(registration) {
  streaming += 1;
  // The active worker is looked up each time: a newer version may have taken over.
  keepalive ??= setInterval(() => registration.active?.postMessage({ type: 'keepalive' }), KEEPALIVE_MS);
}

function stopKeepalive() {
  streaming -= 1;
  if (streaming === 0) {
    clearInterval(keepalive);
    keepalive = null;
  }
}

/** Resolves with the first message of `type` on `port`; fails after `ms`, or at once on `unclaimed`. */
function answer(port, type, ms, what) {
  return new Promise((resolve, reject) => {
    const done = (settle) => {
      clearTimeout(timer);
      port.removeEventListener('message', listen);
      settle();
    };
    const timer = setTimeout(() => done(() => reject(new TransferError(what, { kind: 'download' }))), ms);
    const listen = (event) => {
      if (event.data?.type === type) done(resolve);
      else if (event.data?.type === 'unclaimed') done(() => reject(new TransferError(what, { kind: 'download' })));
    };
    port.addEventListener('message', listen);
  });
}

/**
 * One file on its way to the browser's downloads. Any error of `write` or `close` has already ended
 * the download as failed.
 * @typedef {object} DownloadStream
 * @property {(bytes: Uint8Array) => Promise<void>} write queues bytes; waits while the browser is behind
 * @property {() => Promise<void>} close hands over what is queued and ends the file: the download completes
 * @property {(reason: string) => void} fail ends the download as failed; what arrived is not a finished file
 */

/** `name` with any lone surrogate replaced, so it can be percent-encoded. */
const wellFormed = (name) => (typeof name.toWellFormed === 'function' ? name.toWellFormed() : name);

/**
 * Starts the download of a file of `size` bytes saved as `name`; resolves once the browser took it.
 * @param {string} name
 * @param {number} size
 * @returns {Promise<DownloadStream>}
 */
export async function startDownload(name, size) {
  const registration = await downloadWorker();
  const worker = registration.active;
  if (!worker) throw new TransferError('the download worker is not running', { kind: 'download' });
  let controller;
  let pulled = null;
  let cancelled = null;
  const wake = () => {
    pulled?.();
    pulled = null;
  };
  const stream = new ReadableStream(
    {
      start(c) {
        controller = c;
      },
      pull: wake,
      cancel(reason) {
        cancelled =
          `the browser stopped the download of ${name}${reason ? ` (${reason})` : ''}: it was cancelled, ` +
          'or the disk is full; free some space if it is, and receive again';
        wake();
      },
    },
    new ByteLengthQueuingStrategy({ highWaterMark: QUEUE_BYTES }),
  );
  const { port1, port2 } = new MessageChannel();
  port1.start();
  const id = crypto.randomUUID();
  const safeName = wellFormed(name);
  // The frame stays once the download started: removing it could stop the download it carries.
  const frame = document.createElement('iframe');
  try {
    const ready = answer(port1, 'ready', START_TIMEOUT_MS, 'the download worker did not answer');
    worker.postMessage({ type: 'download', id, name: safeName, size, stream, port: port2 }, [stream, port2]);
    await ready;
    const started = answer(port1, 'started', START_TIMEOUT_MS, `the browser did not start the download of ${name}`);
    frame.hidden = true;
    frame.src = `${DOWNLOAD_PREFIX}${id}/${encodeURIComponent(safeName)}`;
    document.body.append(frame);
    await started;
  } catch (err) {
    worker.postMessage({ type: 'forget', id });
    controller.error(err);
    frame.remove();
    throw err;
  }
  startKeepalive(registration);

  /** Resolves when the browser took some of the queue; fails when it took nothing for a while. */
  const taken = () =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        pulled = null;
        reject(new TransferError(`the browser took none of ${name} for ${STALL_TIMEOUT_MS / 1000} s`, { kind: 'download' }));
      }, STALL_TIMEOUT_MS);
      pulled = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  const check = () => {
    if (cancelled) throw new TransferError(cancelled, { kind: 'download' });
  };
  let ended = false;
  const fail = (reason) => {
    if (ended) return;
    ended = true;
    if (!cancelled) controller.error(new Error(reason));
    stopKeepalive();
  };
  /** Runs `step`; if it fails, so does the download. */
  const guarded = async (step) => {
    try {
      await step();
    } catch (err) {
      fail(err.message);
      throw err;
    }
  };
  return {
    write: (bytes) =>
      guarded(async () => {
        check();
        controller.enqueue(bytes);
        while (controller.desiredSize <= 0) {
          await taken();
          check();
        }
      }),
    close: () =>
      guarded(async () => {
        // The worker must live until the browser read everything: wait for the queue to empty.
        check();
        while (controller.desiredSize < QUEUE_BYTES) {
          await taken();
          check();
        }
        controller.close();
        ended = true;
        stopKeepalive();
      }),
    fail,
  };
}
