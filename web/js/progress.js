/**
 * A transfer's progress as the user sees it.
 *
 * @module progress
 */

/**
 * Progress of a transfer: total and done bytes, a rate and the time left, and the same for the
 * current file with its number among the files.
 */
export class Progress {
  /** @param {(state: object) => void} onProgress */
  constructor(onProgress) {
    this._on = onProgress;
    this.total = 0;
    this.done = 0;
    this.file = '';
    this.files = 0;
    this.fileNumber = 0;
    this.fileBytes = 0;
    this.fileDone = 0;
    this._started = 0;
    this._counted = 0;
    this._last = 0;
  }

  /** Starts the count of `total` bytes in `files` files. */
  begin(total, files) {
    this.total = total;
    this.files = files;
    this._started = performance.now();
    this._emit(true);
  }

  /** The next file, of `size` bytes, starts. */
  setFile(path, size) {
    this.file = path;
    this.fileNumber += 1;
    this.fileBytes = size;
    this.fileDone = 0;
    this._emit(true);
  }

  /** Bytes that need not be moved (already held). */
  skip(n) {
    this.done += n;
    this.fileDone += n;
    this._emit(false);
  }

  advance(n) {
    this.done += n;
    this.fileDone += n;
    this._counted += n;
    this._emit(false);
  }

  end() {
    this._emit(true);
  }

  _emit(force) {
    const now = performance.now();
    if (!force && now - this._last < 200 && this.done < this.total) return;
    this._last = now;
    const seconds = Math.max(0.001, (now - this._started) / 1000);
    const rate = this._counted / seconds;
    const left = this.total - this.done;
    this._on({
      total: this.total,
      done: this.done,
      file: this.file,
      bytesPerSecond: rate,
      etaSeconds: rate > 0 ? left / rate : null,
      files: this.files,
      fileNumber: this.fileNumber,
      fileBytes: this.fileBytes,
      fileDone: this.fileDone,
      fileEtaSeconds: rate > 0 ? (this.fileBytes - this.fileDone) / rate : null,
    });
  }
}
