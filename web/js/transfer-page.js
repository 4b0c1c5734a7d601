/**
 * The file-transfer page: receive with a code (typed, or from a `#code=` link), or pick files
 * and get a code to send them. Received files are streamed into a folder the user picks where
 * the browser has the File System Access API, or into the browser's downloads (through a service
 * worker); a page without a secure context holds each file in memory and offers it once verified.
 *
 * Names from the other side are inserted with `textContent`, never parsed as HTML.
 *
 * @module transfer-page
 */

import {
  Code,
  CodeError,
  blobSink,
  canStreamDownloads,
  directorySink,
  downloadSink,
  MAX_PEERS,
  joinSwarm,
  receiveOffer,
  sendFiles,
  sendToSwarm,
} from './transfer.js';
import { downloadWorker } from './download-stream.js';
import { droppedEntries, walkDropped } from './dropped-files.js';
import { drawQrCode } from './qr-code.js';

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

/** `42 s`, `3 min 5 s`, `1 h 2 min`: time left as a person reads it. */
export function humanDuration(seconds) {
  const s = Math.ceil(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

function showProgress({ total, done, file, bytesPerSecond, etaSeconds, files, fileNumber, fileBytes, fileDone, fileEtaSeconds }) {
  const bar = $('transfer-progress');
  bar.hidden = false;
  bar.max = Math.max(1, total);
  bar.value = done;
  const eta = etaSeconds === null ? '' : `, ${humanDuration(etaSeconds)} left`;
  $('transfer-rate').textContent = `${humanBytes(done)} of ${humanBytes(total)} at ${humanBytes(bytesPerSecond)}/s${eta}`;
  const fileBar = $('file-progress');
  fileBar.hidden = !file;
  if (!file) return;
  fileBar.max = Math.max(1, fileBytes);
  fileBar.value = fileDone;
  const percent = fileBytes ? Math.floor((fileDone / fileBytes) * 100) : 100;
  const fileEta = fileEtaSeconds === null || fileDone >= fileBytes ? '' : `, ${humanDuration(fileEtaSeconds)} left`;
  $('transfer-file').textContent = `File ${fileNumber} of ${files}: ${file} — ${percent} % of ${humanBytes(fileBytes)}${fileEta}`;
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
  sharing: 'Every file is here; passing pieces on to the other receivers…',
  seeded: 'Every piece is now with some receiver; they can finish among themselves.',
  done: 'Done.',
};

function onStatus(state, detail) {
  if (state === 'hashing') {
    const percent = detail.total ? Math.floor((detail.done / detail.total) * 100) : 100;
    return setStatus(`Hashing the files, ${percent} %…`, state);
  }
  if (state === 'unavailable') {
    const n = detail?.pieces ?? 0;
    return setStatus(`${n} piece${n === 1 ? ' is' : 's are'} held by no peer here; waiting for one that has them…`, state);
  }
  setStatus(STATUS_TEXT[state] ?? state, state);
}

/**
 * The offer under `code`: from one sender, or else from a swarm (several receivers, one code).
 * A `swarm` link goes to the swarm at once.
 */
async function findOffer(code, swarm, signal) {
  const url = signalingUrl();
  if (swarm) return joinSwarm({ url, code, onStatus, signal });
  try {
    return await receiveOffer({ url, code, onStatus, signal });
  } catch (err) {
    if (err.kind !== 'no-sender') throw err;
    // Nobody sends one-to-one with this code: a sender to several receivers may.
    try {
      return await joinSwarm({ url, code, onStatus, signal });
    } catch (swarmErr) {
      throw swarmErr.kind === 'no-sender' ? err : swarmErr;
    }
  }
}

/** Stops what runs now (the Cancel button). */
let cancel = null;

/** A fresh AbortSignal for the next transfer; the Cancel button aborts it. */
function cancellable() {
  const controller = new AbortController();
  cancel = controller;
  return controller.signal;
}

/** While a transfer runs, leaving the page asks first: it would stop the transfer. */
function warnBeforeLeaving(event) {
  event.preventDefault();
}

function busy(yes) {
  if (yes) window.addEventListener('beforeunload', warnBeforeLeaving);
  else window.removeEventListener('beforeunload', warnBeforeLeaving);
  for (const id of ['receive-connect', 'send-start', 'receive-code', 'send-files', 'send-folder', 'send-receivers']) $(id).disabled = yes;
  $('cancel').hidden = !yes;
  if (!yes) cancel = null;
}

async function receive(text, { swarm = false } = {}) {
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
    offer = await findOffer(code, swarm, cancellable());
  } catch (err) {
    busy(false);
    return showError(err);
  }
  // Downloads stream only if the download worker runs (a browser may refuse it: site data
  // blocked). Known before the offer shows, so its buttons work from the first click.
  const streams = streamed && (await downloadWorker().then(() => true, () => false));
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
  const folders = typeof window.showDirectoryPicker === 'function';
  $('accept-folder').hidden = !folders;
  $('download-note').textContent = downloadNote(folders, streams, offer.files);
  setFolderNote(folders && dropsFolders ? 'Or drop a folder on this card to save into it.' : '');
  // The first action takes the focus, so Enter accepts (the code was typed just before).
  $(folders ? 'accept-folder' : 'accept-download').focus();

  const decided = new Promise((resolve) => {
    /** A folder dropped on the card: the folder button saves into it once the browser lets it. */
    let droppedFolder = null;
    const useFolder = (handle) => {
      droppedFolder = handle;
      $('accept-folder').textContent = handle ? `Save into “${handle.name}”` : PICK_FOLDER;
    };
    if (folders && dropsFolders) {
      receiveDrop = {
        choose(handle) {
          useFolder(handle);
          setFolderNote(`Press “Save into ${handle.name}” to save the files there (the browser asks whether this page may).`);
          $('accept-folder').focus();
        },
        refuse: (why) => setFolderNote(why, 'refused'),
      };
    }
    $('accept-download').onclick = () => resolve(streams ? downloadSink(listDownload) : blobSink(offerDownload));
    $('accept-folder').onclick = async () => {
      if (droppedFolder) {
        const dir = droppedFolder;
        if (await mayWrite(dir)) return resolve(directorySink(dir));
        useFolder(null);
        setFolderNote(
          `This browser did not let the page save into “${dir.name}”. Choose a folder with “${PICK_FOLDER}”, ` +
            'drop one again and allow it, or accept as a download.',
          'refused',
        );
        return;
      }
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
  receiveDrop = null;
  $('accept-folder').textContent = PICK_FOLDER;
  setFolderNote('');
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
    const held = summary.skippedBytes ?? summary.heldBytes;
    const shared = summary.uploadedBytes === undefined ? '' : `; passed ${humanBytes(summary.uploadedBytes)} on to other receivers`;
    setStatus(
      `Received ${counts(summary.files, offer.dirs)} (${humanBytes(summary.receivedBytes)}) in ` +
        `${summary.seconds.toFixed(2)} s, every ${summary.uploadedBytes === undefined ? 'file' : 'piece'} BLAKE3-verified${shared}` +
        (held ? `; ${humanBytes(held)} were already here.` : '.'),
      'done',
    );
    document.body.dataset.transfer = 'done';
  } catch (err) {
    showError(err);
  } finally {
    busy(false);
  }
}

/** Whether this browser can stream downloads here (else each file waits in memory until verified). */
const streamed = canStreamDownloads();

/** What the download choice does in this browser, for an offer of `files` files. */
function downloadNote(folders, streams, files) {
  const resume = folders ? ' Save into a folder to be able to continue an interrupted transfer.' : '';
  if (streams) {
    const several = files > 1 ? ' The browser may ask whether this page may download several files: allow it, or the transfer stops.' : '';
    return 'Downloads are saved as they arrive and complete only once verified; a download cannot be ' +
      `continued, so an interrupted transfer starts over.${several}${resume}`;
  }
  const why = streamed
    ? 'This browser refused the page its download worker (are site data blocked?)'
    : 'This page is not a secure context (https, or localhost)';
  return `${why}, so each file waits in memory until it is verified, at most 2 GiB per file.${resume}`;
}

/** Lists a verified file the browser saved as a download. */
function listDownload(path, size) {
  const item = document.createElement('li');
  item.textContent = `${path} (${humanBytes(size)}) — in your downloads`;
  item.className = 'received-file';
  item.dataset.path = path;
  $('received-list').append(item);
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

/** The folder button's own label, which names a dropped folder while one is chosen. */
const PICK_FOLDER = 'Save into a folder…';

/** Whether a drop gives the page a handle it may ask to write into (Chromium's File System Access). */
const dropsFolders = typeof DataTransferItem === 'function' && 'getAsFileSystemHandle' in DataTransferItem.prototype;

/** While an offer waits for a choice: what a drop on the receive card does (`choose`, `refuse`). */
let receiveDrop = null;

/** The line under the offer's buttons about saving into a folder; `state` 'refused' marks a refusal. */
function setFolderNote(text, state = 'hint') {
  const note = $('folder-note');
  note.textContent = text;
  note.dataset.state = state;
  note.hidden = text === '';
}

/** Whether the page may write into `dir`, asking the browser (which may ask the user) if not yet. */
async function mayWrite(dir) {
  try {
    if ((await dir.queryPermission({ mode: 'readwrite' })) === 'granted') return true;
    return (await dir.requestPermission({ mode: 'readwrite' })) === 'granted';
  } catch {
    return false;
  }
}

/**
 * Makes `zone` take what is dropped on it while `accepts()` says so: outlined while something is
 * dragged over it, and `onDrop(dataTransfer)` called within the drop event (its items are gone
 * once the event returns).
 */
function dropZone(zone, accepts, onDrop) {
  zone.addEventListener('dragover', (event) => {
    if (!accepts()) return;
    event.dataTransfer.dropEffect = 'copy';
    zone.classList.add('dragging');
  });
  zone.addEventListener('dragleave', (event) => {
    if (!zone.contains(event.relatedTarget)) zone.classList.remove('dragging');
  });
  zone.addEventListener('drop', (event) => {
    zone.classList.remove('dragging');
    if (accepts()) onDrop(event.dataTransfer);
  });
}

/** A folder dropped on the receive card while an offer waits is where its files go. */
function acceptFolderDrops() {
  dropZone($('receive-view'), () => receiveDrop !== null, async (data) => {
    const target = receiveDrop;
    const items = [...data.items].filter((item) => item.kind === 'file');
    if (items.length !== 1) return target.refuse('Drop one folder to save the files into.');
    const handle = await items[0].getAsFileSystemHandle().catch(() => null);
    if (handle?.kind !== 'directory') return target.refuse('Drop a folder to save the files into, not a file.');
    if (receiveDrop === target) target.choose(handle);
  });
}

/** What was dropped on the page, walked; it stands for the pickers until they change. */
let dropped = null;

/** The files (and empty folders) to send: dropped ones, or the pickers'. */
function picked() {
  if (dropped) return dropped;
  // A folder's files carry their path inside it (`album/sub/a.jpg`).
  const files = [...$('send-files').files, ...$('send-folder').files].map((file) => ({
    path: file.webkitRelativePath || file.name,
    file,
  }));
  return { files, dirs: [] };
}

function showPicked() {
  const { files, dirs } = picked();
  const bytes = files.reduce((sum, { file }) => sum + file.size, 0);
  const empty = dirs.length ? ` and ${dirs.length} empty folder${dirs.length === 1 ? '' : 's'}` : '';
  $('send-picked').textContent = files.length || dirs.length ? `Ready: ${counts(files.length, 0)}${empty}, ${humanBytes(bytes)}.` : '';
}

/** Files and folders dropped on the send card replace what the pickers hold. */
function acceptDrops() {
  // A file dropped anywhere else must not make the browser leave the page to open it.
  for (const type of ['dragover', 'drop']) window.addEventListener(type, (event) => event.preventDefault());
  dropZone($('send-view'), () => !$('send-start').disabled, async (data) => {
    const entries = droppedEntries(data);
    try {
      dropped = await walkDropped(entries);
    } catch (err) {
      return showError(err);
    }
    $('send-files').value = '';
    $('send-folder').value = '';
    clearError();
    showPicked();
  });
  for (const id of ['send-files', 'send-folder']) {
    $(id).addEventListener('change', () => {
      dropped = null;
      showPicked();
    });
  }
}

async function send() {
  clearError();
  const { files, dirs } = picked();
  if (files.length === 0 && dirs.length === 0) return showError(new Error('pick or drop files or a folder to send'));
  const receivers = Number($('send-receivers').value);
  if (!Number.isInteger(receivers) || receivers < 1 || receivers > MAX_PEERS) {
    return showError(new Error(`the number of receivers is 1 to ${MAX_PEERS}`));
  }
  busy(true);
  document.body.dataset.transfer = 'waiting';
  $('swarm-peers').hidden = true;
  try {
    if (receivers > 1) {
      const peers = receiverList();
      const summary = await sendToSwarm({
        url: signalingUrl(),
        files,
        dirs,
        receivers,
        onCode: (code) => showCode(code, true),
        onStatus,
        onPeer: peers.update,
        onProgress: showProgress,
        signal: cancellable(),
      });
      const share = summary.totalBytes ? ` (${(summary.uploadedBytes / summary.totalBytes).toFixed(2)}× the files)` : '';
      setStatus(
        `Sent ${counts(summary.files, summary.dirs)} (${humanBytes(summary.totalBytes)}) to ${summary.receivers} receivers in ` +
          `${summary.seconds.toFixed(2)} s; uploaded ${humanBytes(summary.uploadedBytes)}${share}, the receivers passed on the rest.`,
        'done',
      );
    } else {
      const summary = await sendFiles({
        url: signalingUrl(),
        files,
        dirs,
        onCode: (code) => showCode(code, false),
        onStatus,
        onProgress: showProgress,
        signal: cancellable(),
      });
      setStatus(
        `Sent ${counts(summary.files, summary.dirs)} (${humanBytes(summary.sentBytes)}) in ${summary.seconds.toFixed(2)} s; ` +
          `${humanBytes(summary.skippedBytes)} were already on the receiver.`,
        'done',
      );
    }
    document.body.dataset.transfer = 'done';
  } catch (err) {
    showError(err);
  } finally {
    busy(false);
  }
}

/**
 * The receivers of a swarm as the sender sees them: one line each, with how much it holds, whether
 * it has everything, or why it left.
 */
function receiverList() {
  const list = $('swarm-peers');
  list.replaceChildren();
  list.hidden = false;
  /** @type {Map<string, {item: HTMLLIElement, name: string, holds: string, state: string}>} */
  const rows = new Map();
  const render = (row) => {
    row.item.textContent = `${row.name}: ${row.holds}${row.state ? ` — ${row.state}` : ''}`;
  };
  return {
    update(peer, news) {
      if (!news.joined && !rows.has(peer)) return;
      if (news.joined) {
        if (news.joined !== 'receiver' || rows.has(peer)) return;
        const item = document.createElement('li');
        item.className = 'swarm-peer';
        list.append(item);
        rows.set(peer, { item, name: `Receiver ${rows.size + 1}`, holds: 'proved the code', state: '' });
      }
      const row = rows.get(peer);
      if (news.holds !== undefined) row.holds = `${Math.floor((news.holds / Math.max(1, news.of)) * 100)} %`;
      if (news.finished) row.state = 'has every file';
      if (news.declined) row.state = 'declined';
      if (news.left && !row.state) row.state = 'left';
      if (news.dropped) row.state = `dropped: ${news.dropped}`;
      row.item.dataset.state = news.finished ? 'finished' : row.item.dataset.state ?? '';
      render(row);
    },
  };
}

/** A button that copies what `text()` returns and says so for a moment. */
function copyButton(id, text) {
  const button = $(id);
  const label = button.textContent;
  button.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(text());
      button.textContent = 'Copied';
    } catch {
      button.textContent = 'Select and copy it by hand';
    }
    setTimeout(() => (button.textContent = label), 2000);
  });
}

/** Shows the code, its link, QR code and receive command; `swarm`: for several receivers. */
function showCode(code, swarm) {
  const link = new URL('/', location.href);
  link.hash = `${swarm ? 'swarm' : 'code'}=${code.text}`;
  $('send-code').textContent = code.text;
  $('send-link').href = link.href;
  $('send-link').textContent = link.href;
  drawQrCode($('send-qr'), link.href);
  const server = signalingUrl();
  $('send-command').textContent = `peer-client receive${swarm ? ' --swarm' : ''} ${code.text} --server ${server}`;
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
  copyButton('copy-code', () => $('send-code').textContent);
  copyButton('copy-link', () => $('send-link').href);
  acceptDrops();
  acceptFolderDrops();
  const fragment = new URLSearchParams(location.hash.slice(1));
  const swarm = fragment.has('swarm');
  const code = fragment.get(swarm ? 'swarm' : 'code');
  if (code) {
    $('receive-code').value = code;
    // The code stays out of the address bar (and out of the history) once read.
    history.replaceState(null, '', location.pathname);
    receive(code, { swarm });
  }
  // The worker is ready before a transfer needs it; a failure shows when a download starts.
  if (streamed) downloadWorker().catch(() => {});
  document.body.dataset.ready = 'true';
}

main();
