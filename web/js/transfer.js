/**
 * File transfer with `peer-client send` / `receive` (or another page) under a code phrase, as
 * docs/transfer.md specifies: one `transfer` data channel, SPAKE2 and key confirmation over the
 * DTLS fingerprints before anything else, a manifest, resume claims, files as binary frames between
 * `file` and `file_end` with a BLAKE3 hash per file.
 *
 * ```js
 * import { receiveOffer, sendFiles, Code } from './js/transfer.js';
 * const sent = await sendFiles({ url, files, code: Code.generate(), onStatus, onProgress });
 * ```
 *
 * @module transfer
 */

export { Code, CodeError } from './code.js';
export {
  IDLE_TIMEOUT_MS,
  MAX_BLOB_FILE_BYTES,
  MAX_ENTRIES,
  MAX_PATH_BYTES_TOTAL,
  MISMATCH_MESSAGE,
  STEP_TIMEOUT_MS,
  TRANSFER_CHANNEL,
  TRANSFER_LABEL,
} from './transfer-limits.js';
export { TransferError, printable } from './transfer-error.js';
export { checkManifest, pathProblem } from './manifest.js';
export { TransferLink } from './transfer-link.js';
export { Progress } from './progress.js';
export { sendFiles } from './transfer-send.js';
export { blobSink, directorySink, downloadSink } from './sinks.js';
export { canStreamDownloads } from './download-stream.js';
export { IncomingOffer, receiveOffer } from './transfer-receive.js';
export { MAX_PEERS, SwarmOffer, joinSwarm, sendToSwarm } from './swarm.js';
