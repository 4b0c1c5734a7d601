/**
 * The file transfer's limits and fixed values, one table with the native client's
 * (docs/transfer.md, "Limits"; a test holds both clients to it).
 *
 * @module transfer-limits
 */

/** Label of the data channel a transfer runs on. */
export const TRANSFER_LABEL = 'transfer';
/**
 * The transfer channel both sides create under one SCTP stream id (negotiated out of band): it
 * opens as soon as the association is up, a round trip before an in-band channel would.
 */
export const TRANSFER_CHANNEL = { label: TRANSFER_LABEL, id: 0 };
/** Longest wait for the server's welcome, the channel to the sender, and each handshake message. */
export const STEP_TIMEOUT_MS = 30_000;
/** Largest file-data frame sent. */
export const MAX_CHUNK_BYTES = 256 * 1024;
/** Data queued in the channel above which the sender waits. */
export const SEND_HIGH_WATER = 1024 * 1024;
/** Queued data at which the sender resumes. */
export const SEND_LOW_WATER = 256 * 1024;
/** Most manifest entries accepted. */
export const MAX_ENTRIES = 100_000;
/** Most bytes (UTF-8) of all offered paths together, as the native receiver counts them. */
export const MAX_PATH_BYTES_TOTAL = 16 * 1024 * 1024;
/**
 * File data a receiving page holds at most before its sink took it: announced in its `accept`, so
 * the sender keeps no more than this unreported (docs/transfer.md, "Receive window").
 */
export const RECEIVE_WINDOW = 16 * 1024 * 1024;
/** Most bytes of received frames waiting to be written before the transfer stops. */
export const MAX_INBOX_BYTES = 256 * 1024 * 1024;
/** Most frames waiting to be handled. */
export const MAX_INBOX_FRAMES = 200_000;
/** A disconnected link may come back within this time. */
export const DISCONNECT_GRACE_MS = 8000;
/**
 * Longest a receiver waits for the sender's next frame while data is expected, and a sender for
 * any of its queued data to be acknowledged (for room in the channel, or for the receiver's final
 * `done`): the native client's bounds (`--idle-timeout`).
 */
export const IDLE_TIMEOUT_MS = 60_000;
/** Slowest hashing assumed of a sender that checks a resume claim, in bytes per second (as natively). */
export const SLOWEST_HASH_RATE = 25_000_000;
/** How often a waiting sender looks at what the channel still holds. */
export const ACK_CHECK_MS = 250;
/** How long a finished side waits for the other to close first. */
export const CLOSE_WAIT_MS = 5000;
/** Largest file a Blob sink accepts: it holds the whole file in memory until it is verified. */
export const MAX_BLOB_FILE_BYTES = 2 * 1024 * 1024 * 1024;
/** Received data gathered into one write of a directory sink. */
export const WRITE_BATCH_BYTES = 2 * 1024 * 1024;
/** Most peers of the room a transfer tries to connect to at once. */
export const MAX_CANDIDATES = 8;
/** Generated codes tried when a number is already in use. */
export const CODE_ATTEMPTS = 5;
/** Suffix of files being received. */
export const PART_SUFFIX = '.part';
/** What a failed key confirmation means, as both clients say it. */
export const MISMATCH_MESSAGE = 'the code did not match, or someone is interfering with the connection';
