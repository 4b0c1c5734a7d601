// The download service worker: answers `/download/ID/NAME` with the stream a page handed over for
// that id, as an attachment, so the browser saves a received file as it arrives instead of the
// page holding all of it (js/download-stream.js is the page's side). Its scope is `/download/`, so
// no other request of the site passes through it.

/** Path prefix of the downloads this worker answers. */
const PREFIX = '/download/';
/** Longest a handed-over stream waits for the browser to fetch it (less than the page waits). */
const UNCLAIMED_MS = 10_000;

/** Streams handed over and not fetched yet, by id. */
const waiting = new Map();

/** `name` as an RFC 8187 value: UTF-8, percent-encoded beyond the characters it allows. */
function headerValue(name) {
  return encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

self.addEventListener('install', () => self.skipWaiting());

self.addEventListener('message', (event) => {
  const message = event.data;
  if (message?.type === 'forget') {
    // The page gave up on it (it never started).
    waiting.get(message.id)?.stream.cancel('the page gave up').catch(() => {});
    waiting.delete(message.id);
    return;
  }
  // Other messages (`keepalive`) only keep this worker running while a download streams.
  if (message?.type !== 'download') return;
  const { id, name, size, stream, port } = message;
  if (typeof id !== 'string' || !(stream instanceof ReadableStream) || !(port instanceof MessagePort)) return;
  waiting.set(id, { name: String(name), size, stream, port });
  setTimeout(() => {
    if (!waiting.delete(id)) return;
    stream.cancel('the browser did not fetch the download').catch(() => {});
    port.postMessage({ type: 'unclaimed' });
  }, UNCLAIMED_MS);
  port.postMessage({ type: 'ready' });
});

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (url.origin !== self.location.origin || !url.pathname.startsWith(PREFIX)) return;
  const id = url.pathname.slice(PREFIX.length).split('/')[0];
  const download = waiting.get(id);
  if (!download) {
    event.respondWith(new Response('this download is over or was never started\n', { status: 404 }));
    return;
  }
  waiting.delete(id);
  const headers = {
    'Content-Type': 'application/octet-stream',
    'Content-Disposition': `attachment; filename*=UTF-8''${headerValue(download.name)}`,
    'X-Content-Type-Options': 'nosniff',
    'Cache-Control': 'no-store',
  };
  if (Number.isSafeInteger(download.size) && download.size >= 0) headers['Content-Length'] = String(download.size);
  event.respondWith(new Response(download.stream, { headers }));
  download.port.postMessage({ type: 'started' });
});
