/**
 * The file-transfer page: receive with a code (typed, or from a `#code=` link), or pick files
 * and get a code to send them. Received files are streamed into a folder the user picks where
 * the browser has the File System Access API, or offered as downloads once verified.
 *
 * Names from the other side are inserted with `textContent`, never parsed as HTML.
 *
 * @module transfer-page
 */

import { Code, CodeError, blobSink, directorySink, receiveOffer, sendFiles } from './transfer.js';

/** Entries of an offer listed by name; the rest are counted. */
const LISTED = 50;

const $ = (id) => document.getElementById(id);

function signalingUrl() {
  const url = new URL('/ws', location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.href;
}

/** `1.5 MB`-style sizes (SI units, like the native client). */
export function humanBytes(n) {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let value = n;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return unit === 0 ? `${n} B` : `${value.toFixed(1)} ${units[unit]}`;
}

function counts(files, dirs) {
  const f = `${files} file${files === 1 ? '' : 's'}`;
  return dirs ? `${f} and ${dirs} folder${dirs === 1 ? '' : 's'}` : f;
}

function setStatus(text, state) {
  const status = $('transfer-status');
  status.textContent = text;
  status.dataset.state = state;
}

function showError(err) {
  const box = $('transfer-error');
  box.textContent = err instanceof Error ? err.message : String(err);
  box.hidden = false;
  setStatus('The transfer stopped.', 'failed');
  document.body.dataset.transfer = 'failed';
}

function clearError() {
  $('transfer-error').hidden = true;
  $('transfer-error').textContent = '';
}

function showProgress({ total, done, file, bytesPerSecond, etaSeconds }) {
  const bar = $('transfer-progress');
  bar.hidden = false;
  bar.max = Math.max(1, total);
  bar.value = done;
  const eta = etaSeconds === null ? '' : `, ${Math.ceil(etaSeconds)} s left`;
  $('transfer-rate').textContent =
    `${humanBytes(done)} of ${humanBytes(total)} at ${humanBytes(bytesPerSecond)}/s${eta}` + (file ? ` — ${file}` : '');
}

const STATUS_TEXT = {
  joining: 'Joining the signaling server…',
  waiting: 'Waiting for the receiver…',
  connecting: 'Connecting to the sender…',
  authenticating: 'Checking the code with the other side…',
  authenticated: 'The other side proved it knows the code.',
  offered: 'Waiting for the receiver to accept…',
  sending: 'Sending…',
  receiving: 'Receiving…',
  confirming: 'Waiting for the receiver to confirm…',
  done: 'Done.',
};

function onStatus(state) {
  setStatus(STATUS_TEXT[state] ?? state, state);
}

/** Stops what runs now (the Cancel button). */
let cancel = null;

/** A fresh AbortSignal for the next transfer; the Cancel button aborts it. */
function cancellable() {
  const controller = new AbortController();
  cancel = controller;
  return controller.signal;
}

function busy(yes) {
  for (const id of ['receive-connect', 'send-start', 'receive-code', 'send-files', 'send-folder']) $(id).disabled = yes;
  $('cancel').hidden = !yes;
  if (!yes) cancel = null;
}

async function receive(text) {
  clearError();
  let code;
  try {
    code = Code.parse(text);
  } catch (err) {
    if (err instanceof CodeError) return showError(err);
    throw err;
  }
  busy(true);
  document.body.dataset.transfer = 'connecting';
  let offer;
  try {
    offer = await receiveOffer({ url: signalingUrl(), code, onStatus, signal: cancellable() });
  } catch (err) {
    busy(false);
    return showError(err);
  }
  document.body.dataset.transfer = 'offered';
  $('offer-summary').textContent = `Offered: ${counts(offer.files, offer.dirs)}, ${humanBytes(offer.totalBytes)} in all.`;
  const list = $('offer-list');
  list.replaceChildren();
  for (const entry of offer.entries.slice(0, LISTED)) {
    const item = document.createElement('li');
    item.textContent = entry.kind === 'dir' ? `${entry.path}/` : `${entry.path} (${humanBytes(entry.size)})`;
    list.append(item);
  }
  if (offer.entries.length > LISTED) {
    const item = document.createElement('li');
    item.textContent = `… and ${offer.entries.length - LISTED} more`;
    list.append(item);
  }
  $('offer').hidden = false;
  setStatus('Accept to receive these files.', 'offered');
  $('accept-folder').hidden = typeof window.showDirectoryPicker !== 'function';

  const decided = new Promise((resolve) => {
    $('accept-download').onclick = () => resolve(blobSink(offerDownload));
    $('accept-folder').onclick = async () => {
      try {
        const dir = await window.showDirectoryPicker({ mode: 'readwrite', id: 'transfer' });
        resolve(directorySink(dir));
      } catch {
        // The picker was dismissed: the choice stays open.
      }
    };
    $('decline').onclick = () => resolve(null);
    cancel?.signal.addEventListener('abort', () => resolve(null), { once: true });
  });
  const sink = await decided;
  $('offer').hidden = true;
  if (!sink) {
    await offer.decline();
    setStatus('Declined; nothing was written.', 'declined');
    document.body.dataset.transfer = 'declined';
    busy(false);
    return;
  }
  try {
    const summary = await offer.accept(sink, { onStatus, onProgress: showProgress });
    setStatus(
      `Received ${counts(summary.files, offer.dirs)} (${humanBytes(summary.receivedBytes)}) in ` +
        `${summary.seconds.toFixed(2)} s, every file BLAKE3-verified` +
        (summary.skippedBytes ? `; ${humanBytes(summary.skippedBytes)} were already here.` : '.'),
      'done',
    );
    document.body.dataset.transfer = 'done';
  } catch (err) {
    showError(err);
  } finally {
    busy(false);
  }
}

/** Lists a verified file as a download link (and starts the download). */
function offerDownload(path, blob) {
  const item = document.createElement('li');
  const link = document.createElement('a');
  link.href = URL.createObjectURL(blob);
  link.download = path.split('/').join('_');
  link.textContent = `${path} (${humanBytes(blob.size)})`;
  link.className = 'received-file';
  link.dataset.path = path;
  item.append(link);
  $('received-list').append(item);
  link.click();
}

async function send() {
  clearError();
  // A folder's files carry their path inside it (`album/sub/a.jpg`).
  const picked = [...$('send-files').files, ...$('send-folder').files].map((file) => ({
    path: file.webkitRelativePath || file.name,
    file,
  }));
  if (picked.length === 0) return showError(new Error('pick files or a folder to send'));
  busy(true);
  document.body.dataset.transfer = 'waiting';
  try {
    const summary = await sendFiles({
      url: signalingUrl(),
      files: picked,
      onCode: showCode,
      onStatus,
      onProgress: showProgress,
      signal: cancellable(),
    });
    setStatus(
      `Sent ${counts(summary.files, summary.dirs)} (${humanBytes(summary.sentBytes)}) in ${summary.seconds.toFixed(2)} s; ` +
        `${humanBytes(summary.skippedBytes)} were already on the receiver.`,
      'done',
    );
    document.body.dataset.transfer = 'done';
  } catch (err) {
    showError(err);
  } finally {
    busy(false);
  }
}

function showCode(code) {
  const link = new URL('/', location.href);
  link.hash = `code=${code.text}`;
  $('send-code').textContent = code.text;
  $('send-link').href = link.href;
  $('send-link').textContent = link.href;
  const server = signalingUrl();
  $('send-command').textContent = `peer-client receive ${code.text} --server ${server}`;
  $('send-code-box').hidden = false;
  document.body.dataset.code = code.text;
}

function main() {
  $('receive-form').addEventListener('submit', (event) => {
    event.preventDefault();
    receive($('receive-code').value);
  });
  $('send-form').addEventListener('submit', (event) => {
    event.preventDefault();
    send();
  });
  $('cancel').addEventListener('click', () => cancel?.abort());
  $('copy-code').addEventListener('click', () => navigator.clipboard?.writeText($('send-code').textContent));
  const code = new URLSearchParams(location.hash.slice(1)).get('code');
  if (code) {
    $('receive-code').value = code;
    // The code stays out of the address bar (and out of the history) once read.
    history.replaceState(null, '', location.pathname);
    receive(code);
  }
  document.body.dataset.ready = 'true';
}

main();
