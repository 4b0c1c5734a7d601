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

/** @type {Promise<ServiceWorker>|null} */
let activeWorker = null;
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

/** Registers the download worker (once per page) and resolves to it once active. */
export function downloadWorker() {
  activeWorker ??= navigator.serviceWorker
    .register(WORKER_URL, { scope: '/' })
    .then(() => navigator.serviceWorker.ready)
    .then((registration) => registration.active)
    .catch((err) => {
      activeWorker = null;
      throw new TransferError(`this browser refused the download worker (${err.message}); save into a folder instead`);
    });
  return activeWorker;
}

function startKeepalive(worker) {
  streaming += 1;
  keepalive ??= setInterval(() => worker.postMessage({ type: 'keepalive' }), KEEPALIVE_MS);
}

function stopKeepalive() {
  streaming -= 1;
  if (streaming === 0) {
    clearInterval(keepalive);
    keepalive = null;
  }
}

/** Resolves with the first message of `type` on `port`, or fails after `ms`. */
function answer(port, type, ms, what) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new TransferError(what, { kind: 'download' })), ms);
    port.addEventListener('message', (event) => {
      if (event.data?.type !== type) return;
      clearTimeout(timer);
      resolve();
    });
  });
}

/**
 * One file on its way to the browser's downloads.
 * @typedef {object} DownloadStream
 * @property {(bytes: Uint8Array) => Promise<void>} write queues bytes; waits while the browser is behind
 * @property {() => Promise<void>} close hands over what is queued and ends the file: the download completes
 * @property {(reason: string) => void} fail ends the download as failed; what arrived is not a finished file
 */

/**
 * Starts the download of a file of `size` bytes saved as `name`; resolves once the browser took it.
 * @param {string} name
 * @param {number} size
 * @returns {Promise<DownloadStream>}
 */
export async function startDownload(name, size) {
  const worker = await downloadWorker();
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
        cancelled = `the download of ${name} was cancelled in the browser${reason ? ` (${reason})` : ''}`;
        wake();
      },
    },
    new ByteLengthQueuingStrategy({ highWaterMark: QUEUE_BYTES }),
  );
  const { port1, port2 } = new MessageChannel();
  port1.start();
  const id = crypto.randomUUID();
  const ready = answer(port1, 'ready', START_TIMEOUT_MS, 'the download worker did not answer');
  worker.postMessage({ type: 'download', id, name, size, stream, port: port2 }, [stream, port2]);
  await ready;
  const started = answer(port1, 'started', START_TIMEOUT_MS, `the browser did not start the download of ${name}`);
  // The frame stays: removing it could stop the download it carries.
  const frame = document.createElement('iframe');
  frame.hidden = true;
  frame.src = `${DOWNLOAD_PREFIX}${id}/${encodeURIComponent(name)}`;
  document.body.append(frame);
  await started;
  startKeepalive(worker);

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
  const end = () => {
    if (ended) return;
    ended = true;
    stopKeepalive();
  };
  return {
    async write(bytes) {
      check();
      controller.enqueue(bytes);
      while (controller.desiredSize <= 0) {
        await taken();
        check();
      }
    },
    async close() {
      try {
        // The worker must live until the browser read everything: wait for the queue to empty.
        while (controller.desiredSize < QUEUE_BYTES) {
          await taken();
          check();
        }
        controller.close();
      } finally {
        end();
      }
    },
    fail(reason) {
      if (!cancelled) controller.error(new Error(reason));
      end();
    },
  };
}
